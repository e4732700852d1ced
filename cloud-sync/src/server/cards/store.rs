//! Cards the tenant's admins revoked (lost, stolen, their holder gone): every node of the tenant
//! pulls them (`GET /api/v1/sync/revocations`) and its readers refuse them, whoever holds them.
//! One row per card, renumbered in commit order at each change (PostgreSQL writers of a tenant
//! take a transaction lock first), so a node's cursor sees every card once as it stands now,
//! reinstatements included.

use serde::Serialize;

use crate::server::{
    audit::store::Audit,
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};
use rollcall_protocol::wire::CardRevocation;
use rollcall_service::clock::now_ms;

/// Serialises a tenant's revocation writers ([`Exec::lock_sequence`]).
const LOCK: i32 = 0x7265_766b; // "revk"

/// A revoked card as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RevokedCard {
    pub card: String,
    pub reason: String,
    pub revoked_ms: i64,
    /// Who revoked it.
    pub revoked_by: String,
}

const SET: &str = "INSERT INTO card_revocations (tenant_id, card, revoked, reason, changed_ms, changed_by, change_id)
     VALUES ($1, $2, $3, $4, $5, $6,
             (SELECT coalesce(max(change_id), 0) + 1 FROM card_revocations WHERE tenant_id = $1))
     ON CONFLICT (tenant_id, card) DO UPDATE SET revoked = excluded.revoked, reason = excluded.reason,
        changed_ms = excluded.changed_ms, changed_by = excluded.changed_by, change_id = excluded.change_id";
const IS_REVOKED: &str =
    "SELECT 1 FROM card_revocations WHERE tenant_id = $1 AND card = $2 AND revoked";
const LIST: &str = "SELECT card, reason, changed_ms, changed_by FROM card_revocations
     WHERE tenant_id = $1 AND revoked ORDER BY changed_ms DESC, card";
const AFTER: &str = "SELECT change_id, card, revoked, reason, changed_ms FROM card_revocations
     WHERE tenant_id = $1 AND change_id > $2 ORDER BY change_id LIMIT $3";

fn revoked_card(card: String, reason: String, revoked_ms: i64, revoked_by: String) -> RevokedCard {
    RevokedCard {
        card,
        reason,
        revoked_ms,
        revoked_by,
    }
}

fn change(
    change_id: i64,
    card: String,
    revoked: bool,
    reason: String,
    changed_ms: i64,
) -> (u64, CardRevocation) {
    (
        change_id.max(0).unsigned_abs(),
        CardRevocation {
            card,
            revoked,
            reason,
            changed_ms,
        },
    )
}

impl Store {
    /// Revokes `card` (`revoked`) with `reason`, or reinstates it; when it changed (`None`:
    /// reinstating a card that is not revoked changes nothing). Audited.
    pub async fn set_card_revoked(
        &self,
        scope: &TenantScope,
        card: &str,
        revoked: bool,
        reason: &str,
        audit: Audit,
    ) -> Result<Option<i64>, StoreError> {
        let (card, reason) = (card.to_owned(), reason.to_owned());
        let by = audit.actor.clone();
        in_tenant!(write self, scope, audit, |tx| set(tx, &card, revoked, &reason, &by))
    }

    /// The tenant's revoked cards, most recently revoked first.
    pub async fn revoked_cards(&self, scope: &TenantScope) -> Result<Vec<RevokedCard>, StoreError> {
        in_tenant!(read self, scope, |tx| tx.query(LIST, &[&tx.tenant()], |r| Ok(
            revoked_card(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)
        )))
    }

    /// Cards changed after `cursor`, oldest change first, each with its change number; at most
    /// `limit`.
    pub async fn revocations_after(
        &self,
        scope: &TenantScope,
        cursor: u64,
        limit: u32,
    ) -> Result<Vec<(u64, CardRevocation)>, StoreError> {
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        in_tenant!(read self, scope, |tx| tx.query(
            AFTER,
            &[&tx.tenant(), &cursor, &i64::from(limit)],
            |r| Ok(change(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        ))
    }
}

async fn set(
    tx: &impl Exec,
    card: &str,
    revoked: bool,
    reason: &str,
    by: &str,
) -> Result<Option<i64>, StoreError> {
    tx.lock_sequence(LOCK).await?;
    let held = tx
        .query_opt(IS_REVOKED, &[&tx.tenant(), &card], |_| Ok(()))
        .await?
        .is_some();
    if !revoked && !held {
        return Ok(None);
    }
    let now = now_ms();
    tx.execute(SET, &[&tx.tenant(), &card, &revoked, &reason, &now, &by])
        .await?;
    Ok(Some(now))
}
