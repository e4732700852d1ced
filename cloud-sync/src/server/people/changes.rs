//! The feed of changes to a tenant's people that its nodes pull: every write to a person,
//! their site assignments or their templates appends a change in the same transaction,
//! numbered per tenant in commit order (so a cursor never skips a change that commits late)
//! and stamped with the cloud's hybrid logical clock — or, for a version a node pushed that
//! won (`uploads`), with that node's. An erasure leaves a tombstone: the id stays
//! erased, and creating a person under it again is refused.

use crate::server::store::{
    Store, StoreError, TenantScope,
    exec::{Exec, in_tenant},
};
use rollcall_protocol::merge::{Clock, Hlc};
use rollcall_service::clock::now_ms;

/// One entry of the feed: the latest change of a person after a cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct PersonChangeRow {
    pub change_id: u64,
    pub person_id: String,
    pub hlc: Hlc,
    pub erased: bool,
}

/// The cloud's clock stamps every version it makes with this origin.
pub const CLOUD_ORIGIN: &str = "cloud";

/// Serialises a tenant's writers to the feed ([`Exec::lock_sequence`]).
pub(crate) const FEED_LOCK: i32 = 0x7065_6f70; // "peop"

/// A timestamp from its stored columns.
pub(crate) fn stored_hlc(ms: i64, counter: i64, origin: String) -> Hlc {
    Hlc {
        ms: ms.max(0).unsigned_abs(),
        counter: u32::try_from(counter).unwrap_or(u32::MAX),
        origin,
    }
}

/// The columns a timestamp is stored in.
pub(crate) fn hlc_columns(h: &Hlc) -> (i64, i64) {
    (
        i64::try_from(h.ms).unwrap_or(i64::MAX),
        i64::from(h.counter),
    )
}

/// The next change number and the cloud's timestamp for a change of its own, from the
/// tenant's last change number and the latest timestamp in its feed `(id, ms, counter)` (a
/// node's winning version may be later than the cloud's own last one).
fn next_change(last: Option<(i64, i64, i64)>, wall_ms: i64) -> (i64, Hlc) {
    let (id, seen) = match last {
        Some((id, ms, counter)) => (id, Some(stored_hlc(ms, counter, CLOUD_ORIGIN.into()))),
        None => (0, None),
    };
    let hlc = Clock::resume(CLOUD_ORIGIN, seen.as_ref()).tick(wall_ms.max(0).unsigned_abs());
    (id + 1, hlc)
}

fn row_of(
    change_id: i64,
    person_id: String,
    (ms, counter, origin): (i64, i64, String),
    erased: bool,
) -> PersonChangeRow {
    PersonChangeRow {
        change_id: change_id.max(0).unsigned_abs(),
        person_id,
        hlc: stored_hlc(ms, counter, origin),
        erased,
    }
}

/// The tenant's last change number and latest timestamp.
const LAST: &str = "SELECT (SELECT max(change_id) FROM person_changes WHERE tenant_id = $1),
            hlc_ms, hlc_counter FROM person_changes
     WHERE tenant_id = $1 ORDER BY hlc_ms DESC, hlc_counter DESC LIMIT 1";

const INSERT: &str = "INSERT INTO person_changes
        (tenant_id, change_id, person_id, hlc_ms, hlc_counter, hlc_origin, erased)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A person's current version in the feed `(ms, counter, origin, erased)`.
const CURRENT: &str = "SELECT hlc_ms, hlc_counter, hlc_origin, erased FROM person_changes
     WHERE tenant_id = $1 AND person_id = $2 ORDER BY change_id DESC LIMIT 1";

impl Store {
    /// Drops superseded changes from the feed (hourly); how many went.
    pub async fn compact_person_changes(&self, scope: &TenantScope) -> Result<u64, StoreError> {
        in_tenant!(internal self, scope, |tx| tx.execute(COMPACT, &[&tx.tenant()]))
    }

    /// Each person with a change after `cursor`, by their latest change, oldest first; at most
    /// `limit`.
    pub async fn person_changes_after(
        &self,
        scope: &TenantScope,
        cursor: u64,
        limit: u32,
    ) -> Result<Vec<PersonChangeRow>, StoreError> {
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        in_tenant!(read self, scope, |tx| tx.query(
            CHANGES_AFTER,
            &[&tx.tenant(), &cursor, &i64::from(limit)],
            |r| Ok(row_of(
                r.get(0)?,
                r.get(1)?,
                (r.get(2)?, r.get(3)?, r.get(4)?),
                r.get(5)?,
            )),
        ))
    }
}

/// Deletes every change that a later change of the same person supersedes: a pull lists each
/// person by their latest change only, so no cursor sees a difference.
const COMPACT: &str = "DELETE FROM person_changes WHERE tenant_id = $1
     AND change_id < (SELECT MAX(n.change_id) FROM person_changes n
                      WHERE n.tenant_id = person_changes.tenant_id
                        AND n.person_id = person_changes.person_id)";

const CHANGES_AFTER: &str =
    "SELECT c.change_id, c.person_id, c.hlc_ms, c.hlc_counter, c.hlc_origin, c.erased
     FROM person_changes c
     JOIN (SELECT person_id, MAX(change_id) AS last FROM person_changes
           WHERE tenant_id = $1 AND change_id > $2 GROUP BY person_id) l
       ON c.person_id = l.person_id AND c.change_id = l.last
     WHERE c.tenant_id = $1
     ORDER BY c.change_id LIMIT $3";

/// Appends a change of `person_id` to the feed, in the caller's transaction, stamped with the
/// cloud's clock.
pub(crate) async fn note_change(
    tx: &impl Exec,
    person_id: &str,
    erased: bool,
) -> Result<(), StoreError> {
    note_version(tx, person_id, None, erased).await
}

/// Appends a change stamped with `version` (a node's that won), or with the cloud's clock, and
/// publishes it (`person.changed`). The transaction holds the tenant's feed lock from here
/// until it commits, so change numbers commit in order.
pub(crate) async fn note_version(
    tx: &impl Exec,
    person_id: &str,
    version: Option<&Hlc>,
    erased: bool,
) -> Result<(), StoreError> {
    tx.lock_sequence(FEED_LOCK).await?;
    let last = tx
        .query_opt(LAST, &[&tx.tenant()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .await?;
    let (id, tick) = next_change(last, now_ms());
    let hlc = version.unwrap_or(&tick);
    let (ms, counter) = hlc_columns(hlc);
    tx.execute(
        INSERT,
        &[
            &tx.tenant(),
            &id,
            &person_id,
            &ms,
            &counter,
            &hlc.origin,
            &erased,
        ],
    )
    .await?;
    let live =
        crate::server::realtime::messages::person_changed(person_id, id, &hlc.origin, erased);
    crate::server::realtime::stream::publish(tx, &[live]).await?;
    Ok(())
}

/// A person's current version in the feed, and whether it is an erasure.
pub(crate) async fn current_version(
    tx: &impl Exec,
    person_id: &str,
) -> Result<Option<(Hlc, bool)>, StoreError> {
    tx.query_opt(CURRENT, &[&tx.tenant(), &person_id], |r| {
        Ok((stored_hlc(r.get(0)?, r.get(1)?, r.get(2)?), r.get(3)?))
    })
    .await
}

/// Whether `person_id` was erased (its id may not be used again).
pub(crate) async fn was_erased(tx: &impl Exec, person_id: &str) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM person_changes WHERE tenant_id = $1 AND person_id = $2 AND erased",
            &[&tx.tenant(), &person_id],
            |_| Ok(()),
        )
        .await?
        .is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_numbered_and_stamped_after_the_last() {
        let (id, first) = next_change(None, 1_000);
        assert_eq!((id, first.ms, first.counter), (1, 1_000, 0));
        // Same millisecond, or a clock that stepped back: the counter orders them.
        let (id, second) = next_change(Some((1, 1_000, 0)), 900);
        assert_eq!((id, second.ms, second.counter), (2, 1_000, 1));
        assert!(second > first);
        let (_, later) = next_change(Some((2, 1_000, 1)), 2_000);
        assert_eq!((later.ms, later.counter), (2_000, 0));
    }
}
