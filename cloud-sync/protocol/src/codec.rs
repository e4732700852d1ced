//! How sync bodies are encoded: JSON, or CBOR (RFC 8949) — the same serde types, about a third
//! smaller before compression — negotiated by content type. A push says what it is in
//! `Content-Type`; the cloud answers in the same encoding.

use serde::{Serialize, de::DeserializeOwned};

/// The encodings a sync body may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Cbor,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not the encoding at all (truncated, not JSON, not CBOR).
    #[error("{0}")]
    Syntax(String),
    /// Well-formed, but not the expected shape.
    #[error("{0}")]
    Shape(String),
}

impl Encoding {
    pub const JSON: &'static str = "application/json";
    pub const CBOR: &'static str = "application/cbor";

    /// The encoding a `Content-Type` names (parameters ignored); `None` for any other type.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let media = value.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case(Self::JSON) {
            Some(Encoding::Json)
        } else if media.eq_ignore_ascii_case(Self::CBOR) {
            Some(Encoding::Cbor)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Json => Self::JSON,
            Encoding::Cbor => Self::CBOR,
        }
    }

    pub fn encode<T: Serialize>(self, value: &T) -> Vec<u8> {
        match self {
            // Serialising our own types to memory cannot fail (no maps with non-string keys).
            Encoding::Json => serde_json::to_vec(value).unwrap_or_default(),
            Encoding::Cbor => {
                let mut out = Vec::new();
                let _ = ciborium::into_writer(value, &mut out);
                out
            }
        }
    }

    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, DecodeError> {
        match self {
            Encoding::Json => serde_json::from_slice(bytes).map_err(|e| {
                if e.is_data() {
                    DecodeError::Shape(e.to_string())
                } else {
                    DecodeError::Syntax(e.to_string())
                }
            }),
            Encoding::Cbor => ciborium::from_reader(bytes).map_err(|e| match e {
                ciborium::de::Error::Semantic(_, why) => DecodeError::Shape(why),
                other => DecodeError::Syntax(other.to_string()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{AlarmRecord, AttendanceEvent, AuditRecord, Decision, PushBatch};
    use proptest::prelude::*;

    fn batch(n: u64) -> PushBatch {
        PushBatch {
            protocol: 1,
            events: (1..=n)
                .map(|seq| AttendanceEvent {
                    id: format!("01J{seq:023}"),
                    seq,
                    site_id: "hq".into(),
                    person_id: Some(format!("p{}", seq % 7)),
                    decision: Decision::Granted,
                    similarity: Some(0.8),
                    risk_score: 0.1,
                    reasons: vec![],
                    position: None,
                    node_time_ms: 1_700_000_000_000 + seq as i64,
                    card: None,
                    hlc: None,
                })
                .collect(),
            alarms: vec![AlarmRecord {
                id: "01J0000000000000000000ALRM".into(),
                seq: 1,
                kind: "door_forced".into(),
                pd: Some(1),
                detail: "door 1 opened without a grant".into(),
                node_time_ms: 1_700_000_000_000,
            }],
            audit: vec![AuditRecord {
                id: "01J0000000000000000000AUDT".into(),
                seq: 1,
                actor: "admin".into(),
                action: "person.deleted".into(),
                subject: "p1".into(),
                detail: "Ann; 2 face template(s) deleted".into(),
                node_time_ms: 1_700_000_000_000,
            }],
            people: vec![crate::wire::PersonUpload {
                id: "01J0000000000000000000PRSN".into(),
                person_id: "ann".into(),
                hlc: crate::merge::Hlc {
                    ms: 1_700_000_000_000,
                    counter: 2,
                    origin: "node-1".into(),
                },
                state: crate::wire::PersonState::Assigned {
                    display_name: "Ann".into(),
                    templates: vec![crate::wire::TemplateRecord {
                        id: "t1".into(),
                        model: "mobilefacenet".into(),
                        vector: "AACAPw==".into(),
                    }],
                },
            }],
            voice: vec![crate::wire::VoiceRecord {
                id: "01J0000000000000000000VOIC".into(),
                seq: 1,
                person_id: Some("ann".into()),
                outcome: "verified".into(),
                score: Some(0.91),
                device: "phone-7".into(),
                phrase: Some("seven four two".into()),
                audio_sha256: "ab".repeat(32),
                audio_bytes: 48_044,
                duration_ms: 1_500,
                node_time_ms: 1_700_000_000_000,
            }],
        }
    }

    #[test]
    fn both_encodings_round_trip_and_cbor_is_smaller() {
        let b = batch(200);
        let (json, cbor) = (Encoding::Json.encode(&b), Encoding::Cbor.encode(&b));
        assert!(cbor.len() < json.len(), "{} vs {}", cbor.len(), json.len());
        assert_eq!(Encoding::Json.decode::<PushBatch>(&json).expect("json"), b);
        assert_eq!(Encoding::Cbor.decode::<PushBatch>(&cbor).expect("cbor"), b);
        // Truncated: syntax; well-formed but the wrong shape: shape.
        assert!(matches!(
            Encoding::Cbor.decode::<PushBatch>(&cbor[..cbor.len() / 2]),
            Err(DecodeError::Syntax(_))
        ));
        let other = Encoding::Cbor.encode(&vec![1u32, 2, 3]);
        assert!(matches!(
            Encoding::Cbor.decode::<PushBatch>(&other),
            Err(DecodeError::Shape(_))
        ));
    }

    #[test]
    fn content_types_are_recognised_with_parameters_and_case() {
        assert_eq!(
            Encoding::from_content_type("Application/CBOR"),
            Some(Encoding::Cbor)
        );
        assert_eq!(
            Encoding::from_content_type("application/json; charset=utf-8"),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    proptest! {
        /// Junk never panics the CBOR reader.
        #[test]
        fn junk_cbor_is_an_error_not_a_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Encoding::Cbor.decode::<PushBatch>(&bytes);
        }
    }
}
