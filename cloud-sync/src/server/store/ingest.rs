//! How a pushed batch is judged, the same on every backend: the backend reports what it already
//! holds for the batch's ids and sequence numbers, [`plan`] decides, the backend writes the
//! accepted events in the same transaction.

use std::collections::{HashMap, HashSet};

use super::NodeRow;
use rollcall_protocol::wire::{AttendanceEvent, MAX_GAPS, PushAck, Rejected, SeqRange};

/// Most stored sequence numbers above the watermark looked at per push: a node far out of order
/// advances its watermark over several pushes.
pub const SCAN_ABOVE_WATERMARK: u32 = 10_000;

/// The new watermark and the gaps above it, from the old watermark and the node's stored
/// sequence numbers above it in ascending order.
pub fn advance(watermark: u64, above: &[u64]) -> (u64, Vec<SeqRange>) {
    let mut w = watermark;
    let mut rest = above.iter().copied().filter(|&s| s > watermark).peekable();
    while rest.peek() == Some(&(w + 1)) {
        w += 1;
        rest.next();
    }
    let mut gaps = Vec::new();
    let mut last_held = w;
    for seq in rest {
        if seq > last_held + 1 && gaps.len() < MAX_GAPS {
            gaps.push(SeqRange {
                first: last_held + 1,
                last: seq - 1,
            });
        }
        last_held = last_held.max(seq);
    }
    (w, gaps)
}

/// What the database already holds that the batch could collide with.
#[derive(Debug, Default)]
pub struct Existing {
    /// Event id → (node id, sequence number) of the stored event, within the tenant.
    pub by_id: HashMap<String, (String, u64)>,
    /// Sequence numbers of this node already stored, with the id stored under each.
    pub by_seq: HashMap<u64, String>,
}

/// The outcome of a batch before it is written.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    pub insert: Vec<&'a AttendanceEvent>,
    pub ack: PushAck,
    /// Sequence numbers of rejected items that are not stored under another id: recorded as
    /// settled (the node dead-letters them), so they do not hold the watermark back forever.
    pub settled_rejections: Vec<(u64, &'a AttendanceEvent, String)>,
}

/// Decides each event of a batch: accepted (to insert), duplicate (stored before with the same
/// node and sequence number, or repeated within the batch) or rejected with a reason. A rejected
/// item never blocks the ones behind it.
pub fn plan<'a>(node: &NodeRow, events: &'a [AttendanceEvent], existing: &Existing) -> Plan<'a> {
    let mut out = Plan::default();
    let mut ids_in_batch: HashMap<&str, u64> = HashMap::new();
    let mut seqs_in_batch: HashSet<u64> = HashSet::new();
    for e in events {
        if let Some(reason) = invalid(node, e) {
            if valid_seq(e.seq) && !existing.by_seq.contains_key(&e.seq) {
                out.settled_rejections.push((e.seq, e, reason.clone()));
            }
            out.ack.rejected.push(Rejected {
                id: e.id.clone(),
                reason,
            });
            continue;
        }
        let stored = existing
            .by_id
            .get(&e.id)
            .map(|(n, s)| (n.as_str(), *s))
            .or_else(|| {
                ids_in_batch
                    .get(e.id.as_str())
                    .map(|s| (node.id.as_str(), *s))
            });
        match stored {
            Some((owner, seq)) if owner == node.id && seq == e.seq => {
                out.ack.duplicate.push(e.id.clone());
                continue;
            }
            Some(_) => {
                let reason =
                    "id_conflict: this id is already stored for another node or sequence number";
                if !existing.by_seq.contains_key(&e.seq) && !seqs_in_batch.contains(&e.seq) {
                    out.settled_rejections.push((e.seq, e, reason.into()));
                }
                out.ack.rejected.push(Rejected {
                    id: e.id.clone(),
                    reason: reason.into(),
                });
                continue;
            }
            None => {}
        }
        if existing.by_seq.contains_key(&e.seq) || seqs_in_batch.contains(&e.seq) {
            out.ack.rejected.push(Rejected {
                id: e.id.clone(),
                reason: format!(
                    "sequence_conflict: sequence number {} is already stored with another id",
                    e.seq
                ),
            });
            continue;
        }
        ids_in_batch.insert(&e.id, e.seq);
        seqs_in_batch.insert(e.seq);
        out.ack.accepted.push(e.id.clone());
        out.insert.push(e);
    }
    out
}

/// How far behind the node was, as of this push: its receipt time minus the node time of the
/// newest event it brought in; `None` if it brought none (the node's lag stays as it was).
pub fn lag_ms(plan: &Plan<'_>, received_ms: i64) -> Option<i64> {
    plan.insert
        .iter()
        .map(|e| e.node_time_ms)
        .max()
        .map(|newest| (received_ms - newest).max(0))
}

/// Why an event cannot be stored, if it cannot.
fn invalid(node: &NodeRow, e: &AttendanceEvent) -> Option<String> {
    if !ulid_like(&e.id) {
        return Some("invalid_id: event id must be a 26-character ULID".into());
    }
    if e.site_id != node.site_id {
        return Some(format!(
            "site_mismatch: this node is registered for site `{}`, not `{}`",
            node.site_id, e.site_id
        ));
    }
    if !valid_seq(e.seq) {
        return Some("invalid_seq: sequence numbers start at 1".into());
    }
    if !(0.0..=1.0).contains(&e.risk_score) {
        return Some("invalid_score: risk_score must be in [0, 1]".into());
    }
    None
}

pub(super) fn valid_seq(seq: u64) -> bool {
    seq != 0 && seq <= i64::MAX as u64
}

pub(super) fn ulid_like(id: &str) -> bool {
    id.len() == 26
        && id.bytes().all(|b| {
            b.is_ascii_digit()
                || (b.is_ascii_uppercase() && !matches!(b, b'I' | b'L' | b'O' | b'U'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store::{test_event as event, test_node as node};
    use proptest::prelude::*;

    #[test]
    fn the_watermark_climbs_over_what_is_held_and_names_the_gaps() {
        let r = |first, last| SeqRange { first, last };
        assert_eq!(advance(0, &[]), (0, vec![]));
        assert_eq!(advance(0, &[1, 2, 3]), (3, vec![]));
        assert_eq!(advance(0, &[2, 3]), (0, vec![r(1, 1)]));
        assert_eq!(advance(2, &[3, 5, 6, 9]), (3, vec![r(4, 4), r(7, 8)]));
        assert_eq!(
            advance(5, &[1, 2, 6]),
            (6, vec![]),
            "at or below it: ignored"
        );
    }

    proptest! {
        /// Against a reference: the watermark is the longest held prefix, and the gaps with the
        /// held numbers cover exactly 1..=max without overlap.
        #[test]
        fn watermark_and_gaps_match_a_reference(held in proptest::collection::btree_set(1u64..200, 0..60)) {
            let above: Vec<u64> = held.iter().copied().collect();
            let (w, gaps) = advance(0, &above);
            let mut reference = 0;
            while held.contains(&(reference + 1)) {
                reference += 1;
            }
            prop_assert_eq!(w, reference);
            let max = held.iter().max().copied().unwrap_or(0);
            for s in 1..=max {
                let in_gap = gaps.iter().any(|g| (g.first..=g.last).contains(&s));
                prop_assert!(in_gap != held.contains(&s), "seq {} held {} in gap {}", s, held.contains(&s), in_gap);
            }
            for g in &gaps {
                prop_assert!(g.first <= g.last && g.first > w);
            }
        }
    }

    #[test]
    fn repeats_within_a_batch_are_duplicates_or_conflicts() {
        let a = "01HZZZZZZZZZZZZZZZZZZZZZZA";
        let b = "01HZZZZZZZZZZZZZZZZZZZZZZB";
        let events = [
            event(a, 1, "hq"),
            event(a, 1, "hq"),
            event(b, 1, "hq"),
            event(a, 2, "hq"),
        ];
        let p = plan(&node(), &events, &Existing::default());
        assert_eq!(p.ack.accepted, [a]);
        assert_eq!(p.ack.duplicate, [a]);
        assert!(p.ack.rejected[0].reason.starts_with("sequence_conflict"));
        assert!(p.ack.rejected[1].reason.starts_with("id_conflict"));
        assert_eq!(p.insert.len(), 1);
    }

    #[test]
    fn the_lag_is_that_of_the_newest_new_event_or_unchanged() {
        let a = "01HZZZZZZZZZZZZZZZZZZZZZZA";
        let b = "01HZZZZZZZZZZZZZZZZZZZZZZB";
        let mut newer = event(b, 2, "hq");
        newer.node_time_ms += 5_000;
        let events = [event(a, 1, "hq"), newer.clone()];
        let p = plan(&node(), &events, &Existing::default());
        assert_eq!(lag_ms(&p, newer.node_time_ms + 700), Some(700));
        // A clock ahead of the cloud's: no negative lag.
        assert_eq!(lag_ms(&p, newer.node_time_ms - 10), Some(0));
        // Only duplicates: nothing new, the lag stays as it was.
        let mut held = Existing::default();
        held.by_id.insert(a.into(), ("n1".into(), 1));
        held.by_seq.insert(1, a.into());
        let p = plan(&node(), &events[..1], &held);
        assert_eq!(lag_ms(&p, 0), None);
    }

    proptest! {
        /// Every item gets exactly one outcome, in batch order within each list, and nothing
        /// accepted collides with another accepted item or with what is stored.
        #[test]
        fn every_item_has_one_outcome(items in proptest::collection::vec((0u8..6, 0u64..6, any::<bool>()), 0..40),
                                      stored in proptest::collection::vec((0u8..6, 1u64..6), 0..6)) {
            let id = |i: u8| format!("01HZZZZZZZZZZZZZZZZZZZZZZ{}", (b'A' + i) as char);
            let events: Vec<_> = items.iter().map(|&(i, s, here)| event(&id(i), s, if here { "hq" } else { "elsewhere" })).collect();
            let mut existing = Existing::default();
            for &(i, s) in &stored {
                if existing.by_seq.contains_key(&s) || existing.by_id.contains_key(&id(i)) { continue; }
                existing.by_id.insert(id(i), ("n1".into(), s));
                existing.by_seq.insert(s, id(i));
            }
            let p = plan(&node(), &events, &existing);
            prop_assert_eq!(p.ack.accepted.len() + p.ack.duplicate.len() + p.ack.rejected.len(), events.len());
            let mut ids = HashSet::new();
            let mut seqs = HashSet::new();
            for e in &p.insert {
                prop_assert!(ids.insert(e.id.clone()) && !existing.by_id.contains_key(&e.id));
                prop_assert!(seqs.insert(e.seq) && !existing.by_seq.contains_key(&e.seq));
            }
        }
    }
}
