//! A node's push, stored in one transaction: what the database already holds for the batch's
//! ids and sequence numbers is looked up, [`plan`] decides each event (the same on every
//! backend), the accepted events are written, the node's watermark moves, and the push's
//! alarms, audit lines, voice records (`records`) and people (`people::uploads`) follow in the
//! same transaction. The acknowledgement answers for every item.

use std::collections::{HashMap, HashSet};

use crate::server::sealing::MasterKey;
use crate::server::{
    audit::store::{Audit, with_ack},
    people::{templates::data_key, uploads::ingest_people},
    records::store::ingest_records,
    store::{
        NodeRow, Store, StoreError, TenantScope, encode_event,
        exec::{Exec, PgTx, in_tenant},
    },
};
use rollcall_protocol::wire::{AttendanceEvent, MAX_GAPS, PushAck, PushBatch, Rejected, SeqRange};
use rollcall_service::clock::now_ms;

impl Store {
    /// Stores a batch in one transaction: each event once (idempotent by id), duplicates
    /// acknowledged, invalid items rejected without blocking the others.
    pub async fn ingest(
        &self,
        scope: &TenantScope,
        node: &NodeRow,
        events: Vec<AttendanceEvent>,
        audit: Audit,
    ) -> Result<PushAck, StoreError> {
        let batch = PushBatch {
            protocol: rollcall_protocol::wire::PROTOCOL_VERSION,
            events,
            alarms: vec![],
            audit: vec![],
            people: vec![],
            voice: vec![],
        };
        self.ingest_batch(scope, node, batch, None, audit).await
    }

    /// Stores a whole push in one transaction: its events as [`Store::ingest`] does, and its
    /// alarms and audit lines (see `records`), and its people (see `people::uploads`: their
    /// templates are sealed with the tenant's data key, which `master` opens); the
    /// acknowledgement answers for every item.
    pub async fn ingest_batch(
        &self,
        scope: &TenantScope,
        node: &NodeRow,
        batch: PushBatch,
        master: Option<&MasterKey>,
        audit: Audit,
    ) -> Result<PushAck, StoreError> {
        if !batch.people.is_empty() && master.is_none() {
            return Err(StoreError::Inconsistent(
                "people pushed without the master key to seal their templates".into(),
            ));
        }
        let (node, master) = (node.clone(), master.cloned());
        in_tenant!(internal self, scope, |tx| push(
            tx,
            &node,
            &batch,
            master.as_ref(),
            &audit
        ))
    }
}

/// The whole push, in the caller's transaction; its audit entry says what became of the items.
async fn push(
    tx: &impl Exec,
    node: &NodeRow,
    batch: &PushBatch,
    master: Option<&MasterKey>,
    audit: &Audit,
) -> Result<PushAck, StoreError> {
    let events = &batch.events;
    let received = now_ms();
    // One push per node at a time: a retried request racing its original waits here and then
    // sees the first one's rows as duplicates. The node's row stays locked until commit, so
    // concurrent pushes also move its watermark in turn (SQLite's one writer does as much).
    let watermark: i64 = tx
        .query_opt(
            &format!(
                "SELECT watermark FROM nodes WHERE id = $1 AND tenant_id = $2{}",
                tx.dialect().lock_rows()
            ),
            &[&node.id, &tx.tenant()],
            |r| r.get(0),
        )
        .await?
        .ok_or_else(|| StoreError::Inconsistent(format!("node `{}` is not registered", node.id)))?;
    let mut plan = match tx.postgres() {
        Some(pg) => insert_optimistically(pg, node, events, received).await?,
        None => {
            let existing = look_up_each(tx, node, events).await?;
            let plan = plan(node, events, &existing);
            let insert = tx
                .prepare(
                    "INSERT INTO events (id, tenant_id, node_id, site_id, seq, person_id, decision,
                                         node_time_ms, received_ms, body)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .await?;
            for e in &plan.insert {
                tx.execute_prepared(
                    &insert,
                    &[
                        &e.id,
                        &tx.tenant(),
                        &node.id,
                        &e.site_id,
                        &to_i64(e.seq),
                        &e.person_id,
                        &e.decision.as_str(),
                        &e.node_time_ms,
                        &received,
                        &encode_event(e)?,
                    ],
                )
                .await?;
            }
            plan
        }
    };
    let settle = tx
        .prepare(
            "INSERT INTO sync_rejections (tenant_id, node_id, seq, event_id, reason, at_ms)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .await?;
    for (seq, e, reason) in &plan.settled_rejections {
        tx.execute_prepared(
            &settle,
            &[
                &tx.tenant(),
                &node.id,
                &to_i64(*seq),
                &e.id,
                reason,
                &received,
            ],
        )
        .await?;
    }
    let above: Vec<u64> = tx
        .query(
            "SELECT seq FROM events WHERE node_id = $1 AND seq > $2
             UNION SELECT seq FROM sync_rejections WHERE node_id = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
            &[&node.id, &watermark, &i64::from(SCAN_ABOVE_WATERMARK)],
            |r| Ok(r.get::<i64>(0)?.unsigned_abs()),
        )
        .await?;
    let (watermark, missing) = advance(watermark.unsigned_abs(), &above);
    tx.execute(
        "UPDATE nodes SET last_seen_ms = $1, watermark = $3, lag_ms = coalesce($4, lag_ms)
         WHERE id = $2 AND tenant_id = $5",
        &[
            &received,
            &node.id,
            &to_i64(watermark),
            &lag_ms(&plan, received),
            &tx.tenant(),
        ],
    )
    .await?;
    plan.ack.watermark = watermark;
    plan.ack.missing = missing;
    let status =
        crate::server::nodes::status::on_push(tx, node, lag_ms(&plan, received), received).await?;
    let alarms = ingest_records(tx, node, batch, received, &mut plan.ack).await?;
    if let (Some(master), false) = (master, batch.people.is_empty()) {
        let dek = data_key(tx, master).await?;
        ingest_people(tx, node, &batch.people, &dek, &mut plan.ack).await?;
    }
    // Published last: the tenant's stream head stays locked for the least time.
    let mut published =
        crate::server::realtime::messages::attendance_events(&node.id, &plan.insert, received);
    published.extend(alarms.iter().map(crate::server::realtime::messages::alarm));
    published.extend(status);
    let notes = crate::server::notifications::sources::of_push(tx, &alarms, &plan.insert).await?;
    published.extend(crate::server::notifications::inbox::notify(tx, &notes, received).await?);
    crate::server::realtime::stream::publish(tx, &published).await?;
    tx.append_audit(&with_ack(audit, &plan.ack)).await?;
    Ok(plan.ack)
}

fn to_i64(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// SQLite, in process: what is stored under each event's id and under each of its sequence
/// numbers, a lookup each (no round trips to save; the two statements prepared once).
async fn look_up_each(
    tx: &impl Exec,
    node: &NodeRow,
    events: &[AttendanceEvent],
) -> Result<Existing, StoreError> {
    let mut existing = Existing::default();
    let by_id = tx
        .prepare("SELECT node_id, seq FROM events WHERE tenant_id = $1 AND id = $2")
        .await?;
    let by_seq = tx
        .prepare("SELECT id FROM events WHERE node_id = $1 AND seq = $2")
        .await?;
    for e in events {
        if let Some((n, s)) = tx
            .query_opt_prepared(&by_id, &[&tx.tenant(), &e.id], |r| {
                Ok((r.get::<String>(0)?, r.get::<i64>(1)?))
            })
            .await?
        {
            existing.by_id.insert(e.id.clone(), (n, s.unsigned_abs()));
        }
        if let Some(id) = tx
            .query_opt_prepared(&by_seq, &[&node.id, &to_i64(e.seq)], |r| r.get::<String>(0))
            .await?
        {
            existing.by_seq.insert(e.seq, id);
        }
    }
    Ok(existing)
}

/// PostgreSQL, in few round trips: this node's rows under the batch's sequence numbers (one
/// range scan when the batch is about contiguous, the usual case), then the accepted events in
/// one `unnest` insert on the optimistic guess that no id of the batch is stored yet. If a
/// unique key refuses a row, its id is stored already (a duplicate under another sequence
/// number, or another node's): undo, look the ids up and judge the batch again.
async fn insert_optimistically<'e>(
    pg: &PgTx<'_, '_>,
    node: &NodeRow,
    events: &'e [AttendanceEvent],
    received: i64,
) -> Result<Plan<'e>, StoreError> {
    let seqs: Vec<i64> = events.iter().map(|e| to_i64(e.seq)).collect();
    let (lo, hi) = (
        seqs.iter().copied().min().unwrap_or(0),
        seqs.iter().copied().max().unwrap_or(0),
    );
    let read =
        |r: &crate::server::store::exec::Row<'_>| Ok((r.get::<i64>(0)?, r.get::<String>(1)?));
    let rows = if hi.saturating_sub(lo) <= 4 * seqs.len() as i64 {
        pg.query_native(
            "SELECT seq, id FROM events WHERE node_id = $1 AND seq BETWEEN $2 AND $3",
            &[&node.id, &lo, &hi],
            read,
        )
        .await?
    } else {
        pg.query_native(
            "SELECT seq, id FROM events WHERE node_id = $1 AND seq = ANY($2)",
            &[&node.id, &seqs],
            read,
        )
        .await?
    };
    let seq_set: HashSet<i64> = seqs.iter().copied().collect();
    let mut existing = Existing::default();
    for (seq, id) in rows {
        if seq_set.contains(&seq) {
            // Also known by id: a batch pushed again is all duplicates, no second look.
            existing
                .by_id
                .insert(id.clone(), (node.id.clone(), seq.unsigned_abs()));
            existing.by_seq.insert(seq.unsigned_abs(), id);
        }
    }
    pg.batch("SAVEPOINT ingest").await?;
    let first = plan(node, events, &existing);
    match insert_all(pg, node, received, &first.insert).await {
        Ok(_) => return Ok(first),
        Err(StoreError::Postgres(e))
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {}
        Err(e) => return Err(e),
    }
    pg.batch("ROLLBACK TO SAVEPOINT ingest").await?;
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let tenant = pg.tenant();
    for (id, owner, seq) in pg
        .query_native(
            "SELECT id, node_id, seq FROM events WHERE tenant_id = $1 AND id = ANY($2)",
            &[&tenant, &ids],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?)),
        )
        .await?
    {
        existing.by_id.insert(id, (owner, seq.unsigned_abs()));
    }
    let again = plan(node, events, &existing);
    insert_all(pg, node, received, &again.insert).await?;
    Ok(again)
}

/// Inserts pushed events in one statement, one array per column (a unique key's refusal fails
/// it whole).
async fn insert_all(
    pg: &PgTx<'_, '_>,
    node: &NodeRow,
    received: i64,
    events: &[&AttendanceEvent],
) -> Result<u64, StoreError> {
    if events.is_empty() {
        return Ok(0);
    }
    let id: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let seq: Vec<i64> = events.iter().map(|e| to_i64(e.seq)).collect();
    let person_id: Vec<Option<&str>> = events.iter().map(|e| e.person_id.as_deref()).collect();
    let decision: Vec<&str> = events.iter().map(|e| e.decision.as_str()).collect();
    let node_time_ms: Vec<i64> = events.iter().map(|e| e.node_time_ms).collect();
    let body = events
        .iter()
        .map(|e| encode_event(e))
        .collect::<Result<Vec<_>, _>>()?;
    pg.execute_native(
        "INSERT INTO events (id, tenant_id, node_id, site_id, seq, person_id, decision,
                             node_time_ms, received_ms, body)
         SELECT u.id, $1, $2, $3, u.seq, u.person_id, u.decision, u.node_time_ms, $4, u.body
         FROM unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::bigint[], $10::text[])
              AS u(id, seq, person_id, decision, node_time_ms, body)",
        &[
            &pg.tenant(),
            &node.id,
            &node.site_id,
            &received,
            &id,
            &seq,
            &person_id,
            &decision,
            &node_time_ms,
            &body,
        ],
    )
    .await
}

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
    if let Some(reason) = nul_reason(e) {
        return Some(reason);
    }
    if e.site_id != node.site_id {
        return Some(format!(
            "site_mismatch: this node is registered for site `{}`, not `{}`",
            node.site_id, e.site_id
        ));
    }
    rollcall_protocol::checks::invalid_event_fields(e)
}

/// Why a pushed item cannot be stored if one of its strings holds the NUL character (which
/// PostgreSQL cannot store): refused alone, naming the field, rather than failing the batch.
pub(crate) fn nul_reason<T: serde::Serialize + ?Sized>(item: &T) -> Option<String> {
    rollcall_service::text::nul_field(item).map(|field| {
        format!(
            "invalid_text: {field}: {}",
            rollcall_service::text::NUL_REFUSED
        )
    })
}

pub(crate) use rollcall_protocol::checks::valid_seq;

pub(crate) fn ulid_like(id: &str) -> bool {
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
