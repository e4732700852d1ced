//! Browser sessions: the server side of the session cookie. Only the token's sha256 is kept; a
//! session ends at its expiry, at logout, or when its user is disabled.

use crate::server::{
    audit::store::Audit,
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

/// A session as stored at login.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token_sha256: String,
    pub user_id: String,
    pub expires_ms: i64,
}

/// A live session: whose it is and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSession {
    pub user_id: String,
    pub expires_ms: i64,
}

impl Store {
    pub async fn create_session(
        &self,
        scope: &TenantScope,
        session: NewSession,
        audit: Audit,
    ) -> Result<(), StoreError> {
        in_tenant!(write self, scope, audit, |tx| create(tx, &session))
    }

    /// The session of this token if it is the tenant's, unexpired and not ended.
    pub async fn live_session(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
    ) -> Result<Option<LiveSession>, StoreError> {
        let hash = token_sha256.to_owned();
        in_tenant!(read self, scope, |tx| live(tx, &hash))
    }

    /// Deletes the tenant's sessions that ended (expired or logged out) before `before_ms`; how
    /// many went. They no longer authenticate anyone; this only keeps the table small.
    pub async fn purge_sessions(
        &self,
        scope: &TenantScope,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        in_tenant!(internal self, scope, |tx| tx.execute(
            "DELETE FROM browser_sessions WHERE tenant_id = $1
               AND (expires_ms <= $2 OR revoked_ms <= $2)",
            &[&tx.tenant(), &before_ms],
        ))
    }

    /// Ends a session (logout); `false` if there was no live one.
    pub async fn end_session(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let hash = token_sha256.to_owned();
        in_tenant!(write self, scope, audit, |tx| end(tx, &hash))
    }
}

async fn create(tx: &impl Exec, s: &NewSession) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO browser_sessions (token_sha256, tenant_id, user_id, created_ms, expires_ms)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &s.token_sha256,
            &tx.tenant(),
            &s.user_id,
            &now_ms(),
            &s.expires_ms,
        ],
    )
    .await?;
    Ok(())
}

async fn live(tx: &impl Exec, hash: &str) -> Result<Option<LiveSession>, StoreError> {
    tx.query_opt(
        "SELECT user_id, expires_ms FROM browser_sessions
         WHERE tenant_id = $1 AND token_sha256 = $2 AND revoked_ms IS NULL AND expires_ms > $3",
        &[&tx.tenant(), &hash, &now_ms()],
        |r| {
            Ok(LiveSession {
                user_id: r.get(0)?,
                expires_ms: r.get(1)?,
            })
        },
    )
    .await
}

async fn end(tx: &impl Exec, hash: &str) -> Result<bool, StoreError> {
    let n = tx
        .execute(
            "UPDATE browser_sessions SET revoked_ms = $3
             WHERE tenant_id = $1 AND token_sha256 = $2 AND revoked_ms IS NULL",
            &[&tx.tenant(), &hash, &now_ms()],
        )
        .await?;
    Ok(n > 0)
}
