//! How a push's records are judged, the same on every backend: each is checked, then accepted,
//! a duplicate (the same id under the same stream and sequence number), or refused with a reason;
//! a refusal settles its sequence number unless the node will push it again.

use std::collections::{HashMap, HashSet};

use crate::server::{
    store::{NodeRow, StoreError},
    sync::ingest::nul_reason,
};
use rollcall_protocol::wire::{
    AlarmRecord, AuditRecord, MAX_RECORD_DETAIL, PushAck, PushBatch, Rejected, VoiceRecord,
};

/// Which stream a record belongs to, as stored in `node_records.stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Alarm,
    Audit,
    Voice,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Alarm => "alarm",
            Stream::Audit => "audit",
            Stream::Voice => "voice",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "alarm" => Some(Stream::Alarm),
            "audit" => Some(Stream::Audit),
            "voice" => Some(Stream::Voice),
            _ => None,
        }
    }
}

/// A record to insert, as its row.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordRow {
    pub id: String,
    pub stream: Stream,
    pub seq: i64,
    /// The alarm's kind or the audit line's action.
    pub kind: String,
    pub node_time_ms: i64,
    /// The record as JSON.
    pub body: String,
}

/// What the database already holds that the batch's records could collide with.
#[derive(Debug, Default)]
pub struct Existing {
    /// Record id → (node id, stream, sequence number), within the tenant.
    pub by_id: HashMap<String, (String, Stream, u64)>,
    /// This node's (stream, sequence number) → the id stored under it.
    pub by_seq: HashMap<(Stream, u64), String>,
    /// The audio samples (sha256) of the batch's voice records that the tenant holds.
    pub blobs: HashSet<String>,
}

impl Existing {
    /// Notes a stored row (`stream` as the database has it; an unknown one is ignored).
    pub fn hold(&mut self, node: &NodeRow, id: String, node_id: String, stream: &str, seq: i64) {
        let Some(stream) = Stream::parse(stream) else {
            return;
        };
        if node_id == node.id {
            self.by_seq.insert((stream, seq.unsigned_abs()), id.clone());
        }
        self.by_id.insert(id, (node_id, stream, seq.unsigned_abs()));
    }
}

/// A record of the batch, whichever its stream.
struct Item<'a> {
    id: &'a str,
    stream: Stream,
    seq: u64,
    kind: &'a str,
    node_time_ms: i64,
    invalid: Option<String>,
    /// The audio it points at (voice records).
    blob: Option<&'a str>,
    body: Result<String, serde_json::Error>,
}

fn items(batch: &PushBatch) -> Vec<Item<'_>> {
    let alarms = batch.alarms.iter().map(|a| Item {
        id: &a.id,
        stream: Stream::Alarm,
        seq: a.seq,
        kind: &a.kind,
        node_time_ms: a.node_time_ms,
        invalid: invalid_alarm(a).or_else(|| nul_reason(a)),
        blob: None,
        body: serde_json::to_string(a),
    });
    let audit = batch.audit.iter().map(|a| Item {
        id: &a.id,
        stream: Stream::Audit,
        seq: a.seq,
        kind: &a.action,
        node_time_ms: a.node_time_ms,
        invalid: invalid_audit(a).or_else(|| nul_reason(a)),
        blob: None,
        body: serde_json::to_string(a),
    });
    let voice = batch.voice.iter().map(|v| Item {
        id: &v.id,
        stream: Stream::Voice,
        seq: v.seq,
        kind: &v.outcome,
        node_time_ms: v.node_time_ms,
        invalid: invalid_voice(v).or_else(|| nul_reason(v)),
        blob: Some(&v.audio_sha256),
        body: serde_json::to_string(v),
    });
    alarms.chain(audit).chain(voice).collect()
}

/// Whether a batch has records of any stream.
pub fn has_records(batch: &PushBatch) -> bool {
    !(batch.alarms.is_empty() && batch.audit.is_empty() && batch.voice.is_empty())
}

/// The ids, (stream, sequence number) pairs and audio digests of a batch's records, for the
/// backends' lookups.
pub fn keys(batch: &PushBatch) -> (Vec<&str>, Vec<(Stream, i64)>, Vec<&str>) {
    let items = items(batch);
    let ids = items.iter().map(|i| i.id).collect();
    let seqs = items.iter().map(|i| (i.stream, to_i64(i.seq))).collect();
    let blobs = items.iter().filter_map(|i| i.blob).collect();
    (ids, seqs, blobs)
}

pub(crate) fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A refused record whose sequence number the node will never fill with another line: settled,
/// so it does not hold its stream's watermark back (the node keeps it as a dead letter).
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub stream: Stream,
    pub seq: i64,
    pub id: String,
    pub reason: String,
}

/// The rows to insert and the refusals to settle.
#[derive(Debug, Default)]
pub struct Planned {
    pub rows: Vec<RecordRow>,
    pub settled: Vec<Settled>,
}

/// Decides each record of a batch, appending the outcomes to `ack`.
pub fn plan(
    node: &NodeRow,
    batch: &PushBatch,
    existing: &Existing,
    ack: &mut PushAck,
) -> Result<Planned, StoreError> {
    let mut rows = Vec::new();
    let mut settled = Vec::new();
    let mut ids_in_batch: HashMap<&str, (Stream, u64)> = HashMap::new();
    let mut seqs_in_batch: HashMap<(Stream, u64), &str> = HashMap::new();
    for item in items(batch) {
        let key = (item.stream, item.seq);
        // A refusal settles the sequence number unless another line is stored under it, or the
        // node will push this one again (its audio was missing).
        let reject = |ack: &mut PushAck, settled: &mut Vec<Settled>, reason: String| {
            if crate::server::sync::ingest::valid_seq(item.seq)
                && !existing.by_seq.contains_key(&key)
                && !seqs_in_batch.contains_key(&key)
                && !reason.starts_with("blob_missing")
            {
                settled.push(Settled {
                    stream: item.stream,
                    seq: to_i64(item.seq),
                    id: item.id.to_owned(),
                    reason: reason.clone(),
                });
            }
            ack.rejected.push(Rejected {
                id: item.id.to_owned(),
                reason,
            })
        };
        if let Some(reason) = item.invalid {
            reject(ack, &mut settled, reason);
            continue;
        }
        let stored = existing
            .by_id
            .get(item.id)
            .map(|(n, s, q)| (n.as_str(), *s, *q))
            .or_else(|| {
                ids_in_batch
                    .get(item.id)
                    .map(|&(s, q)| (node.id.as_str(), s, q))
            });
        match stored {
            Some((owner, stream, seq)) if owner == node.id && (stream, seq) == key => {
                ack.duplicate.push(item.id.to_owned());
                continue;
            }
            Some(_) => {
                reject(
                    ack,
                    &mut settled,
                    "id_conflict: this id is already stored for another node, stream or sequence number"
                        .into(),
                );
                continue;
            }
            None => {}
        }
        if let Some(sha) = item.blob
            && !existing.blobs.contains(sha)
        {
            reject(
                ack,
                &mut settled,
                format!(
                    "blob_missing: the audio {sha} is not in the cloud; upload it (PUT /api/v1/sync/blobs/{sha}) and push again"
                ),
            );
            continue;
        }
        if existing.by_seq.contains_key(&key) || seqs_in_batch.contains_key(&key) {
            reject(
                ack,
                &mut settled,
                format!(
                    "sequence_conflict: {} sequence number {} is already stored with another id",
                    item.stream.as_str(),
                    item.seq
                ),
            );
            continue;
        }
        let body = item.body.map_err(|source| StoreError::Corrupt {
            id: item.id.to_owned(),
            source,
        })?;
        ids_in_batch.insert(item.id, key);
        seqs_in_batch.insert(key, item.id);
        ack.accepted.push(item.id.to_owned());
        rows.push(RecordRow {
            id: item.id.to_owned(),
            stream: item.stream,
            seq: to_i64(item.seq),
            kind: item.kind.to_owned(),
            node_time_ms: item.node_time_ms,
            body,
        });
    }
    Ok(Planned { rows, settled })
}

fn common(id: &str, seq: u64, detail: &str) -> Option<String> {
    if !crate::server::sync::ingest::ulid_like(id) {
        return Some("invalid_id: record id must be a 26-character ULID".into());
    }
    if !crate::server::sync::ingest::valid_seq(seq) {
        return Some("invalid_seq: sequence numbers start at 1".into());
    }
    if detail.len() > MAX_RECORD_DETAIL {
        return Some(format!(
            "invalid_record: detail is {} bytes, at most {MAX_RECORD_DETAIL}",
            detail.len()
        ));
    }
    None
}

fn word(s: &str, max: usize, extra: &[u8]) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || extra.contains(&b))
}

fn invalid_alarm(a: &AlarmRecord) -> Option<String> {
    common(&a.id, a.seq, &a.detail).or_else(|| {
        (!word(&a.kind, 40, b""))
            .then(|| "invalid_record: an alarm kind is 1-40 of a-z and `_`".into())
    })
}

fn invalid_audit(a: &AuditRecord) -> Option<String> {
    common(&a.id, a.seq, &a.detail).or_else(|| {
        if !word(&a.action, 64, b".") {
            Some("invalid_record: an audit action is 1-64 of a-z, `_` and `.`".into())
        } else if !(1..=64).contains(&a.actor.len()) || a.subject.len() > 200 {
            Some("invalid_record: an audit actor is 1-64 bytes, a subject at most 200".into())
        } else {
            None
        }
    })
}

fn invalid_voice(v: &VoiceRecord) -> Option<String> {
    common(&v.id, v.seq, "").or_else(|| {
        if let Some(reason) = rollcall_protocol::wire::invalid_voice_fields(
            v.person_id.as_deref(),
            &v.outcome,
            v.score,
            &v.device,
            v.phrase.as_deref(),
        ) {
            Some(reason)
        } else if !crate::server::records::voice::is_sha256(&v.audio_sha256) {
            Some("invalid_record: audio_sha256 is 64 lowercase hex digits".into())
        } else if v.audio_bytes > rollcall_protocol::wav::MAX_AUDIO_BYTES as u64
            || v.duration_ms > rollcall_protocol::wav::MAX_AUDIO_MS
        {
            Some("invalid_record: the audio is larger or longer than any accepted".into())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::records::store::decode;
    use crate::server::store::test_node as node;
    use proptest::prelude::*;

    fn id(i: u8) -> String {
        format!("01HZZZZZZZZZZZZZZZZZZZZZZ{}", (b'A' + i) as char)
    }

    fn alarm(i: u8, seq: u64) -> AlarmRecord {
        AlarmRecord {
            id: id(i),
            seq,
            kind: "door_forced".into(),
            pd: Some(0),
            detail: "door 1".into(),
            node_time_ms: 1_000 + seq as i64,
        }
    }

    fn line(i: u8, seq: u64) -> AuditRecord {
        AuditRecord {
            id: id(i),
            seq,
            actor: "admin".into(),
            action: "person.deleted".into(),
            subject: "p1".into(),
            detail: String::new(),
            node_time_ms: 1_000 + seq as i64,
        }
    }

    fn batch(alarms: &[AlarmRecord], audit: &[AuditRecord]) -> PushBatch {
        PushBatch {
            protocol: 1,
            events: vec![],
            alarms: alarms.to_vec(),
            audit: audit.to_vec(),
            people: vec![],
            voice: vec![],
        }
    }

    fn voice(i: u8, seq: u64, sha: &str) -> VoiceRecord {
        VoiceRecord {
            id: id(i),
            seq,
            person_id: Some("E-1042".into()),
            outcome: "verified".into(),
            score: Some(0.93),
            device: "phone-7".into(),
            phrase: Some("four two seven".into()),
            audio_sha256: sha.into(),
            audio_bytes: 48_044,
            duration_ms: 1_500,
            node_time_ms: 2_000,
        }
    }

    #[test]
    fn voice_records_are_stored_once_their_audio_is_and_checked() {
        let (held, lost) = ("a".repeat(64), "b".repeat(64));
        let existing = Existing {
            blobs: [held.clone()].into(),
            ..Existing::default()
        };
        let mut push = batch(&[alarm(0, 1)], &[]);
        push.voice = vec![
            voice(1, 1, &held),
            voice(2, 2, &lost),
            VoiceRecord {
                outcome: "maybe".into(),
                ..voice(3, 3, &held)
            },
            VoiceRecord {
                score: Some(1.5),
                ..voice(4, 4, &held)
            },
            VoiceRecord {
                audio_sha256: "AB".repeat(32),
                ..voice(5, 5, &held)
            },
            VoiceRecord {
                person_id: Some("-x".into()),
                ..voice(6, 6, &held)
            },
            // Voice sequence 1 is not alarm sequence 1.
        ];
        let mut ack = PushAck::default();
        let rows = plan(&node(), &push, &existing, &mut ack)
            .expect("plan")
            .rows;
        assert_eq!(ack.accepted, [id(0), id(1)]);
        assert_eq!(rows[1].stream, Stream::Voice);
        assert_eq!(rows[1].kind, "verified");
        let reasons: Vec<&str> = ack.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].starts_with("blob_missing"), "{reasons:?}");
        assert!(
            reasons[1..].iter().all(|r| r.starts_with("invalid_record")),
            "{reasons:?}"
        );
        assert_eq!(reasons.len(), 5);
    }

    #[test]
    fn refusals_settle_their_sequence_numbers_unless_the_line_will_come_again() {
        let mut existing = Existing {
            blobs: ["a".repeat(64)].into(),
            ..Existing::default()
        };
        existing.hold(&node(), id(9), "n2".into(), "alarm", 7);
        existing.hold(&node(), id(8), "n1".into(), "alarm", 3);
        let mut push = batch(
            &[
                AlarmRecord {
                    kind: "Bad".into(),
                    ..alarm(0, 1)
                },
                // Another node's id, under a free sequence number: settled.
                alarm(9, 2),
                // Another id under a stored sequence number: that one holds it.
                alarm(1, 3),
            ],
            &[],
        );
        push.voice = vec![voice(2, 1, &"b".repeat(64))];
        let mut ack = PushAck::default();
        let planned = plan(&node(), &push, &existing, &mut ack).expect("plan");
        assert!(planned.rows.is_empty());
        let settled: Vec<(Stream, i64)> =
            planned.settled.iter().map(|s| (s.stream, s.seq)).collect();
        assert_eq!(settled, [(Stream::Alarm, 1), (Stream::Alarm, 2)], "{ack:?}");
        assert_eq!(
            ack.rejected.len(),
            4,
            "the voice record waits for its audio, unsettled"
        );
    }

    #[test]
    fn streams_number_apart_and_repeats_are_duplicates_or_conflicts() {
        let mut ack = PushAck::default();
        let alarms = [alarm(0, 1), alarm(0, 1), alarm(1, 1), alarm(2, 2)];
        // Audit sequence 1 is not alarm sequence 1; the same id in another stream is a conflict.
        let audit = [line(3, 1), line(2, 2)];
        let rows = plan(
            &node(),
            &batch(&alarms, &audit),
            &Existing::default(),
            &mut ack,
        )
        .expect("plan")
        .rows;
        assert_eq!(ack.accepted, [id(0), id(2), id(3)]);
        assert_eq!(ack.duplicate, [id(0)]);
        assert!(
            ack.rejected[0]
                .reason
                .starts_with("sequence_conflict: alarm")
        );
        assert!(ack.rejected[1].reason.starts_with("id_conflict"));
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].stream, Stream::Audit);
        assert_eq!(rows[2].kind, "person.deleted");
        let back: AuditRecord = decode(&rows[2].id, &rows[2].body).expect("body");
        assert_eq!(back, audit[0]);
    }

    #[test]
    fn what_is_stored_decides_duplicates_and_conflicts() {
        let mut existing = Existing::default();
        existing.hold(&node(), id(0), "n1".into(), "alarm", 1);
        existing.hold(&node(), id(1), "n2".into(), "alarm", 1);
        let mut ack = PushAck::default();
        let alarms = [alarm(0, 1), alarm(1, 2), alarm(2, 1), alarm(3, 2)];
        let rows = plan(&node(), &batch(&alarms, &[]), &existing, &mut ack)
            .expect("plan")
            .rows;
        assert_eq!(ack.duplicate, [id(0)]);
        assert_eq!(ack.accepted, [id(3)]);
        assert!(
            ack.rejected[0].reason.starts_with("id_conflict"),
            "another node's id"
        );
        assert!(ack.rejected[1].reason.starts_with("sequence_conflict"));
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn invalid_records_are_refused_with_a_reason() {
        let long = "x".repeat(MAX_RECORD_DETAIL + 1);
        let bad_alarms = [
            AlarmRecord {
                id: "short".into(),
                ..alarm(0, 1)
            },
            AlarmRecord {
                seq: 0,
                ..alarm(1, 1)
            },
            AlarmRecord {
                kind: "Door Forced".into(),
                ..alarm(2, 2)
            },
            AlarmRecord {
                detail: long,
                ..alarm(3, 3)
            },
        ];
        let bad_audit = [
            AuditRecord {
                action: String::new(),
                ..line(4, 1)
            },
            AuditRecord {
                actor: String::new(),
                ..line(5, 2)
            },
        ];
        let mut ack = PushAck::default();
        let rows = plan(
            &node(),
            &batch(&bad_alarms, &bad_audit),
            &Existing::default(),
            &mut ack,
        )
        .expect("plan")
        .rows;
        assert!(rows.is_empty());
        let reasons: Vec<&str> = ack.rejected.iter().map(|r| r.reason.as_str()).collect();
        assert!(reasons[0].starts_with("invalid_id"), "{reasons:?}");
        assert!(reasons[1].starts_with("invalid_seq"), "{reasons:?}");
        assert!(reasons[2].contains("alarm kind"), "{reasons:?}");
        assert!(reasons[3].contains("detail is"), "{reasons:?}");
        assert!(reasons[4].contains("audit action"), "{reasons:?}");
        assert!(reasons[5].contains("audit actor"), "{reasons:?}");
    }

    proptest! {
        /// Every record gets exactly one outcome, and nothing inserted collides with another
        /// inserted row or with what is stored.
        #[test]
        fn every_record_has_one_outcome(
            alarms in proptest::collection::vec((0u8..6, 0u64..5), 0..20),
            audit in proptest::collection::vec((0u8..6, 0u64..5), 0..20),
            stored in proptest::collection::vec((0u8..6, any::<bool>(), 1u64..5, any::<bool>()), 0..6),
        ) {
            let alarms: Vec<_> = alarms.iter().map(|&(i, s)| alarm(i, s)).collect();
            let audit: Vec<_> = audit.iter().map(|&(i, s)| line(i, s)).collect();
            let mut existing = Existing::default();
            for &(i, is_alarm, s, mine) in &stored {
                let stream = if is_alarm { "alarm" } else { "audit" };
                let key = (Stream::parse(stream).expect("stream"), s);
                if existing.by_id.contains_key(&id(i)) || (mine && existing.by_seq.contains_key(&key)) {
                    continue;
                }
                existing.hold(&node(), id(i), if mine { "n1" } else { "n2" }.into(), stream, s as i64);
            }
            let mut ack = PushAck::default();
            let rows = plan(&node(), &batch(&alarms, &audit), &existing, &mut ack).expect("plan").rows;
            prop_assert_eq!(ack.accepted.len() + ack.duplicate.len() + ack.rejected.len(), alarms.len() + audit.len());
            prop_assert_eq!(rows.len(), ack.accepted.len());
            let mut ids = std::collections::HashSet::new();
            let mut keys = std::collections::HashSet::new();
            for r in &rows {
                prop_assert!(ids.insert(r.id.clone()) && !existing.by_id.contains_key(&r.id));
                let key = (r.stream, r.seq.unsigned_abs());
                prop_assert!(keys.insert(key) && !existing.by_seq.contains_key(&key));
            }
        }
    }
}
