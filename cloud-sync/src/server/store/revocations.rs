//! Cards the tenant's admins revoked (lost, stolen, their holder gone): every node of the tenant
//! pulls them (`GET /api/v1/sync/revocations`) and its readers refuse them, whoever holds them.
//! One row per card, renumbered in commit order at each change (PostgreSQL writers of a tenant
//! take a transaction lock first), so a node's cursor sees every card once as it stands now,
//! reinstatements included.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{
    SqliteStore, Store, StoreError, TenantScope,
    audit::Audit,
    blocking,
    postgres::{append_audit as pg_audit, scoped},
    sqlite::append_audit,
};
use rollcall_protocol::wire::CardRevocation;
use rollcall_service::clock::now_ms;

/// Serialises a tenant's revocation writers on PostgreSQL (with the tenant id as second key).
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
        let (scope, card, reason) = (scope.clone(), card.to_owned(), reason.to_owned());
        let by = audit.actor.clone();
        let now = now_ms();
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s: &mut SqliteStore| {
                    let tx = s.conn.transaction()?;
                    let held = tx
                        .query_row(
                            &super::exec::sqlite_placeholders(IS_REVOKED),
                            params![scope.id, card],
                            |_| Ok(()),
                        )
                        .optional()?
                        .is_some();
                    if !revoked && !held {
                        return Ok(None);
                    }
                    tx.execute(
                        &super::exec::sqlite_placeholders(SET),
                        params![scope.id, card, revoked, reason, now, by],
                    )?;
                    append_audit(&tx, scope.id, &audit)?;
                    tx.commit()?;
                    Ok(Some(now))
                })
                .await
            }
            Store::Postgres(p) => {
                let mut client = p.client().await?;
                let tx = scoped(&mut client, &scope).await?;
                super::postgres::lock_tenant(&tx, LOCK, scope.id).await?;
                let held = tx
                    .query_opt(IS_REVOKED, &[&scope.id, &card])
                    .await?
                    .is_some();
                if !revoked && !held {
                    return Ok(None);
                }
                tx.execute(SET, &[&scope.id, &card, &revoked, &reason, &now, &by])
                    .await?;
                pg_audit(&tx, scope.id, &audit).await?;
                tx.commit().await?;
                Ok(Some(now))
            }
        }
    }

    /// The tenant's revoked cards, most recently revoked first.
    pub async fn revoked_cards(&self, scope: &TenantScope) -> Result<Vec<RevokedCard>, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    let mut stmt = s
                        .conn
                        .prepare_cached(&super::exec::sqlite_placeholders(LIST))?;
                    let rows = stmt.query_map([scope.id], |r| {
                        Ok(revoked_card(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })?;
                    Ok(rows.collect::<Result<_, _>>()?)
                })
                .await
            }
            Store::Postgres(p) => Ok(p
                .query_scoped(&scope, LIST, &[&scope.id])
                .await?
                .iter()
                .map(|r| revoked_card(r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect()),
        }
    }

    /// Cards changed after `cursor`, oldest change first, each with its change number; at most
    /// `limit`.
    pub async fn revocations_after(
        &self,
        scope: &TenantScope,
        cursor: u64,
        limit: u32,
    ) -> Result<Vec<(u64, CardRevocation)>, StoreError> {
        let scope = scope.clone();
        let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    let mut stmt = s
                        .conn
                        .prepare_cached(&super::exec::sqlite_placeholders(AFTER))?;
                    let rows = stmt.query_map(params![scope.id, cursor, limit], |r| {
                        Ok(change(
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                        ))
                    })?;
                    Ok(rows.collect::<Result<_, _>>()?)
                })
                .await
            }
            Store::Postgres(p) => Ok(p
                .query_scoped(&scope, AFTER, &[&scope.id, &cursor, &i64::from(limit)])
                .await?
                .iter()
                .map(|r| change(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect()),
        }
    }
}
