//! Stored responses of requests sent with an `Idempotency-Key`, per tenant and caller, for 24
//! hours: the same key with the same request gets the stored response again (unless the caller's
//! role has changed since); the same key with a different request is refused; a key whose first
//! request is still running is refused too, for up to [`IN_PROGRESS_LEASE_MS`] — after that the
//! first request is taken to have died with its process, and the key is free again.

use crate::server::store::{
    Store, StoreError, TenantScope,
    exec::{Exec, in_tenant},
};
use rollcall_service::clock::now_ms;

/// How long a key is remembered.
pub const KEY_TTL_MS: i64 = 24 * 3600 * 1000;

/// How long a first request may hold its key unfinished: twice the default request timeout
/// (`rollcall_service::serve`), after which no request of a live server still runs it.
pub const IN_PROGRESS_LEASE_MS: i64 = 2 * 60 * 1000;

/// A stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// What presenting a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begin {
    /// First use (or the old use expired): run the request, then [`Store::idem_finish`].
    Started,
    /// Done before with the same request: answer this.
    Replay(Stored),
    /// Used before with a different request.
    Mismatch,
    /// The first request with this key has not finished.
    InProgress,
    /// Done before, by the caller in another role: not replayed (its answer may be one the
    /// caller may no longer see).
    RoleChanged,
}

/// fingerprint, status, content type, body, role
type KeyRow = (String, Option<i64>, Option<String>, Option<Vec<u8>>, String);

fn judge(row: Option<KeyRow>, fingerprint: &str, role: &str) -> Begin {
    match row {
        None => Begin::Started,
        Some((fp, ..)) if fp != fingerprint => Begin::Mismatch,
        Some((_, Some(_), _, _, stored_role)) if stored_role != role => Begin::RoleChanged,
        Some((_, Some(status), content_type, body, _)) => Begin::Replay(Stored {
            status: u16::try_from(status).unwrap_or(500),
            content_type: content_type.unwrap_or_default(),
            body: body.unwrap_or_default(),
        }),
        Some(_) => Begin::InProgress,
    }
}

impl Store {
    /// Presents `key` for a request of `caller`, acting in `role`, fingerprinted `fingerprint`.
    pub async fn idem_begin(
        &self,
        scope: &TenantScope,
        caller: &str,
        role: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Begin, StoreError> {
        let (caller, role) = (caller.to_owned(), role.to_owned());
        let (key, fp) = (key.to_owned(), fingerprint.to_owned());
        in_tenant!(internal self, scope, |tx| begin(tx, &caller, &role, &key, &fp))
    }

    /// Records the response of a started key.
    pub async fn idem_finish(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
        response: Stored,
    ) -> Result<(), StoreError> {
        let (caller, key) = (caller.to_owned(), key.to_owned());
        in_tenant!(internal self, scope, |tx| async {
            tx.execute(
                "UPDATE idempotency_keys SET status = $4, content_type = $5, body = $6
                 WHERE tenant_id = $1 AND caller = $2 AND key = $3",
                &[
                    &tx.tenant(),
                    &caller,
                    &key,
                    &i32::from(response.status),
                    &response.content_type,
                    &response.body,
                ],
            )
            .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Deletes the tenant's keys older than [`KEY_TTL_MS`]; how many went.
    pub async fn idem_purge(&self, scope: &TenantScope) -> Result<u64, StoreError> {
        let before = now_ms() - KEY_TTL_MS;
        in_tenant!(internal self, scope, |tx| tx.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND created_ms <= $2",
            &[&tx.tenant(), &before],
        ))
    }

    /// Forgets a started key whose request failed on the server's side, so a retry runs again.
    pub async fn idem_abandon(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        let (caller, key) = (caller.to_owned(), key.to_owned());
        in_tenant!(internal self, scope, |tx| async {
            tx.execute(
                "DELETE FROM idempotency_keys
                 WHERE tenant_id = $1 AND caller = $2 AND key = $3 AND status IS NULL",
                &[&tx.tenant(), &caller, &key],
            )
            .await?;
            Ok::<_, StoreError>(())
        })
    }
}

async fn begin(
    tx: &impl Exec,
    caller: &str,
    role: &str,
    key: &str,
    fp: &str,
) -> Result<Begin, StoreError> {
    let now = now_ms();
    // Expired, or left unfinished past its lease (its process died mid-request).
    tx.execute(
        "DELETE FROM idempotency_keys
         WHERE tenant_id = $1 AND caller = $2 AND key = $3
           AND (created_ms <= $4 OR (status IS NULL AND created_ms <= $5))",
        &[
            &tx.tenant(),
            &caller,
            &key,
            &(now - KEY_TTL_MS),
            &(now - IN_PROGRESS_LEASE_MS),
        ],
    )
    .await?;
    // Insert first: of two concurrent first uses (replicas on one PostgreSQL), exactly one
    // inserts.
    let inserted = tx
        .execute(
            "INSERT INTO idempotency_keys (tenant_id, caller, key, fingerprint, created_ms, role)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[&tx.tenant(), &caller, &key, &fp, &now, &role],
        )
        .await?;
    if inserted == 1 {
        return Ok(Begin::Started);
    }
    let row = tx
        .query_opt(
            "SELECT fingerprint, CAST(status AS BIGINT), content_type, body, role
             FROM idempotency_keys WHERE tenant_id = $1 AND caller = $2 AND key = $3",
            &[&tx.tenant(), &caller, &key],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .await?;
    Ok(match judge(row, fp, role) {
        Begin::Started => Begin::InProgress,
        other => other,
    })
}
