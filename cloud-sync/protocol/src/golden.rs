//! The golden payloads of protocol version 1: one value of every shape the protocol carries (a
//! push with each stream, its acknowledgement, the people, site and revocation pulls, node
//! registration, a signed config bundle), and the JSON and CBOR files made from them, checked
//! in under `golden/`. The protocol's own tests check that the files decode to these values and
//! that encoding the values gives the files; the node's and the cloud's tests read the files
//! through their own decoding paths. A change that an old node or an old cloud could not read
//! fails them: change the files only together with [`crate::wire::PROTOCOL_VERSION`], or for a
//! change old peers still read (re-bless with `ROLLCALL_BLESS_GOLDEN=1`).

use std::path::PathBuf;

use crate::{
    bundle::{BundleSigner, ConfigBundle},
    codec::Encoding,
    merge::Hlc,
    wire::{
        AlarmRecord, AttendanceEvent, AuditRecord, CardRevocation, Decision, EventReason, Fix,
        NodeCredential, NodeIdentity, PROTOCOL_VERSION, PeoplePage, PersonChange, PersonState,
        PersonUpload, PushAck, PushBatch, RegisterNode, Rejected, RevocationPage, SeqRange,
        SiteConfig, SitePull, StreamMark, TemplateRecord, VoiceRecord,
    },
};

/// Where the files are.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden");

/// One payload, of the type its direction carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Node → cloud: `POST /api/v1/sync/push`.
    Push(Box<PushBatch>),
    /// Cloud → node: the push's answer.
    Ack(PushAck),
    /// Cloud → node: `GET /api/v1/sync/people`.
    People(PeoplePage),
    /// Cloud → node: `GET /api/v1/sync/site`.
    Site(SitePull),
    /// Cloud → node: `GET /api/v1/sync/revocations`.
    Revocations(RevocationPage),
    /// Admin → cloud: `POST /api/v1/nodes`.
    Register(RegisterNode),
    /// Cloud → admin → node: the node's credential.
    Credential(NodeCredential),
    /// Cloud → node: `GET /api/v1/sync/whoami`.
    Identity(NodeIdentity),
    /// Cloud → installer → node: a signed `node.toml`.
    Bundle(ConfigBundle),
}

/// A golden payload and the name of its files.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: &'static str,
    pub payload: Payload,
}

impl Case {
    /// The file of this case in `encoding`.
    pub fn path(&self, encoding: Encoding) -> PathBuf {
        let ext = match encoding {
            Encoding::Json => "json",
            Encoding::Cbor => "cbor",
        };
        PathBuf::from(DIR).join(format!("{}.{ext}", self.name))
    }

    /// The payload in `encoding`, as it goes on the wire.
    pub fn encode(&self, encoding: Encoding) -> Vec<u8> {
        match &self.payload {
            Payload::Push(v) => encoding.encode(v.as_ref()),
            Payload::Ack(v) => encoding.encode(v),
            Payload::People(v) => encoding.encode(v),
            Payload::Site(v) => encoding.encode(v),
            Payload::Revocations(v) => encoding.encode(v),
            Payload::Register(v) => encoding.encode(v),
            Payload::Credential(v) => encoding.encode(v),
            Payload::Identity(v) => encoding.encode(v),
            Payload::Bundle(v) => encoding.encode(v),
        }
    }

    /// `bytes` decoded as this case's type (with the type's own rules), or why not.
    pub fn decode(&self, encoding: Encoding, bytes: &[u8]) -> Result<Payload, String> {
        let e = |e: crate::codec::DecodeError| e.to_string();
        Ok(match &self.payload {
            Payload::Push(_) => Payload::Push(Box::new(encoding.decode(bytes).map_err(e)?)),
            Payload::Ack(_) => Payload::Ack(encoding.decode(bytes).map_err(e)?),
            Payload::People(_) => Payload::People(encoding.decode(bytes).map_err(e)?),
            Payload::Site(_) => Payload::Site(encoding.decode(bytes).map_err(e)?),
            Payload::Revocations(_) => Payload::Revocations(encoding.decode(bytes).map_err(e)?),
            Payload::Register(_) => Payload::Register(encoding.decode(bytes).map_err(e)?),
            Payload::Credential(_) => Payload::Credential(encoding.decode(bytes).map_err(e)?),
            Payload::Identity(_) => Payload::Identity(encoding.decode(bytes).map_err(e)?),
            Payload::Bundle(_) => Payload::Bundle(encoding.decode(bytes).map_err(e)?),
        })
    }
}

/// The key the golden bundle is signed with (a fixed test key, never a tenant's).
pub fn bundle_signer() -> BundleSigner {
    BundleSigner::from_secret([7; 32])
}

const NODE: &str = "01KDT99000000000000000000A";

/// A ULID-shaped id (Crockford base32, 26 characters): `kind` tells the streams apart.
fn ulid(kind: u8, n: u64) -> String {
    format!("01KDT{kind:02}{n:019}")
}
const AT: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn hlc(counter: u32) -> Hlc {
    Hlc {
        ms: AT as u64,
        counter,
        origin: NODE.into(),
    }
}

fn event(seq: u64) -> AttendanceEvent {
    AttendanceEvent {
        id: ulid(1, seq),
        seq,
        site_id: "hq".into(),
        person_id: Some("E-1042".into()),
        decision: Decision::Granted,
        similarity: Some(0.8125),
        risk_score: 0.25,
        reasons: vec![EventReason {
            code: "new_device".into(),
            text: "first check-in from this device".into(),
            weight: 0.25,
        }],
        position: Some(Fix {
            lat: 48.8584,
            lon: 2.2945,
            accuracy_m: 12.5,
        }),
        node_time_ms: AT + seq as i64,
        card: None,
        hlc: None,
    }
}

fn push() -> PushBatch {
    PushBatch {
        protocol: PROTOCOL_VERSION,
        events: vec![],
        alarms: vec![],
        audit: vec![],
        people: vec![],
        voice: vec![],
    }
}

fn assigned() -> PersonState {
    PersonState::Assigned {
        display_name: "Ada Lovelace".into(),
        templates: vec![TemplateRecord {
            id: ulid(6, 10),
            model: "mobilefacenet-v1".into(),
            vector: "AACAPwAAAD8AAIA+AAAAAA==".into(),
        }],
    }
}

/// Every golden case, in a fixed order.
pub fn cases() -> Vec<Case> {
    let case = |name, payload| Case { name, payload };
    let events = PushBatch {
        events: vec![
            event(1),
            AttendanceEvent {
                person_id: None,
                decision: Decision::Denied,
                similarity: None,
                position: None,
                card: Some("12:3456".into()),
                hlc: Some(hlc(0)),
                ..event(2)
            },
            AttendanceEvent {
                decision: Decision::Review,
                card: Some("raw:12:ab0c".into()),
                ..event(3)
            },
        ],
        ..push()
    };
    let alarms = PushBatch {
        alarms: vec![
            AlarmRecord {
                id: ulid(2, 1),
                seq: 1,
                kind: "tamper".into(),
                pd: Some(1),
                detail: "reader cover opened".into(),
                node_time_ms: AT,
            },
            AlarmRecord {
                id: ulid(2, 2),
                seq: 2,
                kind: "power".into(),
                pd: None,
                detail: "mains lost".into(),
                node_time_ms: AT + 1,
            },
        ],
        ..push()
    };
    let audit = PushBatch {
        audit: vec![AuditRecord {
            id: ulid(3, 1),
            seq: 1,
            actor: "admin".into(),
            action: "person.created".into(),
            subject: "E-1042".into(),
            detail: "enrolled at the kiosk".into(),
            node_time_ms: AT,
        }],
        ..push()
    };
    let people = PushBatch {
        people: vec![
            PersonUpload {
                id: ulid(4, 1),
                person_id: "E-1042".into(),
                hlc: hlc(1),
                state: assigned(),
            },
            PersonUpload {
                id: ulid(4, 2),
                person_id: "E-7".into(),
                hlc: hlc(2),
                state: PersonState::Unassigned,
            },
        ],
        ..push()
    };
    let voice = PushBatch {
        voice: vec![
            VoiceRecord {
                id: ulid(5, 1),
                seq: 1,
                person_id: Some("E-1042".into()),
                outcome: "verified".into(),
                score: Some(0.75),
                device: "kiosk-mic".into(),
                phrase: Some("my voice is my passport".into()),
                audio_sha256: "ab".repeat(32),
                audio_bytes: 32_044,
                duration_ms: 1000,
                node_time_ms: AT,
            },
            VoiceRecord {
                id: ulid(5, 2),
                seq: 2,
                person_id: None,
                outcome: "inconclusive".into(),
                score: None,
                device: "kiosk-mic".into(),
                phrase: None,
                audio_sha256: "cd".repeat(32),
                audio_bytes: 6_444,
                duration_ms: 200,
                node_time_ms: AT + 1,
            },
        ],
        ..push()
    };
    let mixed = PushBatch {
        events: vec![event(4)],
        alarms: alarms.alarms.clone(),
        audit: audit.audit.clone(),
        people: people.people.clone(),
        voice: voice.voice.clone(),
        ..push()
    };
    let ack = PushAck {
        accepted: vec![event(4).id],
        duplicate: vec![event(1).id],
        rejected: vec![Rejected {
            id: event(3).id,
            reason: "site_mismatch: the event's site is not the node's".into(),
        }],
        watermark: 4,
        missing: vec![SeqRange { first: 6, last: 9 }],
        streams: vec![
            StreamMark {
                stream: "alarm".into(),
                watermark: 2,
                missing: vec![],
            },
            StreamMark {
                stream: "voice".into(),
                watermark: 0,
                missing: vec![SeqRange { first: 2, last: 2 }],
            },
        ],
    };
    let people_page = PeoplePage {
        protocol: PROTOCOL_VERSION,
        items: vec![
            PersonChange {
                id: "E-1042".into(),
                hlc: Hlc {
                    origin: "cloud".into(),
                    ..hlc(3)
                },
                state: assigned(),
            },
            PersonChange {
                id: "E-7".into(),
                hlc: hlc(4),
                state: PersonState::Unassigned,
            },
            PersonChange {
                id: "E-9".into(),
                hlc: hlc(5),
                state: PersonState::Erased,
            },
        ],
        cursor: 17,
        more: true,
    };
    let site = SitePull {
        protocol: PROTOCOL_VERSION,
        site: Some(SiteConfig {
            id: "hq".into(),
            name: "Headquarters".into(),
            geofence_geojson: r#"{"type":"Polygon","coordinates":[[[2.28,48.85],[2.30,48.85],[2.30,48.87],[2.28,48.85]]]}"#.into(),
            fraud_policy_json: Some(r#"{"review_above":0.5}"#.into()),
            updated_ms: AT,
        }),
    };
    let revocations = RevocationPage {
        protocol: PROTOCOL_VERSION,
        items: vec![
            CardRevocation {
                card: "12:3456".into(),
                revoked: true,
                reason: "lost".into(),
                changed_ms: AT,
            },
            CardRevocation {
                card: "raw:12:ab0c".into(),
                revoked: false,
                reason: String::new(),
                changed_ms: AT + 1,
            },
        ],
        cursor: 2,
        more: false,
    };
    vec![
        case("push-events", Payload::Push(Box::new(events))),
        case("push-alarms", Payload::Push(Box::new(alarms))),
        case("push-audit", Payload::Push(Box::new(audit))),
        case("push-people", Payload::Push(Box::new(people))),
        case("push-voice", Payload::Push(Box::new(voice))),
        case("push-all-streams", Payload::Push(Box::new(mixed))),
        case("push-ack", Payload::Ack(ack)),
        case("pull-people", Payload::People(people_page)),
        case(
            "pull-site-none",
            Payload::Site(SitePull {
                protocol: PROTOCOL_VERSION,
                site: None,
            }),
        ),
        case("pull-site", Payload::Site(site)),
        case("pull-revocations", Payload::Revocations(revocations)),
        case(
            "register-node",
            Payload::Register(RegisterNode {
                site_id: "hq".into(),
                replaces: Some(NODE.into()),
            }),
        ),
        case(
            "node-credential",
            Payload::Credential(NodeCredential {
                node_id: NODE.into(),
                tenant: "acme".into(),
                site_id: "hq".into(),
                token: "rcn_golden-token".into(),
            }),
        ),
        case(
            "node-identity",
            Payload::Identity(NodeIdentity {
                node_id: NODE.into(),
                site_id: "hq".into(),
                tenant: "acme".into(),
                server_time_ms: AT,
            }),
        ),
        case(
            "bundle",
            Payload::Bundle(bundle_signer().sign(
                "acme",
                "hq",
                3,
                AT,
                "[node]\nsite_id = \"hq\"\n".into(),
            )),
        ),
    ]
}
