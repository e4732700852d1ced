//! Browser sessions: the server side of the session cookie. Only the token's sha256 is kept; a
//! session ends at its expiry, at logout, or when its user is disabled.

use rusqlite::{OptionalExtension, params};

use super::{
    PgStore, SqliteStore, Store, StoreError, TenantScope,
    audit::Audit,
    blocking,
    postgres::{append_audit as pg_audit, scoped},
    sqlite::append_audit,
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
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.create_session(&scope, &session, &audit)).await
            }
            Store::Postgres(p) => p.create_session(&scope, &session, &audit).await,
        }
    }

    /// The session of this token if it is the tenant's, unexpired and not ended.
    pub async fn live_session(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
    ) -> Result<Option<LiveSession>, StoreError> {
        let (scope, hash) = (scope.clone(), token_sha256.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.live_session(&scope, &hash)).await,
            Store::Postgres(p) => p.live_session(&scope, &hash).await,
        }
    }

    /// Deletes the tenant's sessions that ended (expired or logged out) before `before_ms`; how
    /// many went. They no longer authenticate anyone; this only keeps the table small.
    pub async fn purge_sessions(
        &self,
        scope: &TenantScope,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    Ok(s.conn.execute(
                        "DELETE FROM browser_sessions WHERE tenant_id = ?1
                           AND (expires_ms <= ?2 OR revoked_ms <= ?2)",
                        params![scope.id, before_ms],
                    )? as u64)
                })
                .await
            }
            Store::Postgres(p) => {
                p.execute_scoped(
                    &scope,
                    "DELETE FROM browser_sessions WHERE tenant_id = $1
                       AND (expires_ms <= $2 OR revoked_ms <= $2)",
                    &[&scope.id, &before_ms],
                )
                .await
            }
        }
    }

    /// Ends a session (logout); `false` if there was no live one.
    pub async fn end_session(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let (scope, hash) = (scope.clone(), token_sha256.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.end_session(&scope, &hash, &audit)).await,
            Store::Postgres(p) => p.end_session(&scope, &hash, &audit).await,
        }
    }
}

impl SqliteStore {
    fn create_session(
        &mut self,
        scope: &TenantScope,
        s: &NewSession,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO browser_sessions (token_sha256, tenant_id, user_id, created_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![s.token_sha256, scope.id, s.user_id, now_ms(), s.expires_ms],
        )?;
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn live_session(
        &self,
        scope: &TenantScope,
        hash: &str,
    ) -> Result<Option<LiveSession>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT user_id, expires_ms FROM browser_sessions
             WHERE tenant_id = ?1 AND token_sha256 = ?2 AND revoked_ms IS NULL AND expires_ms > ?3",
        )?;
        Ok(stmt
            .query_row(params![scope.id, hash, now_ms()], |r| {
                Ok(LiveSession {
                    user_id: r.get(0)?,
                    expires_ms: r.get(1)?,
                })
            })
            .optional()?)
    }

    fn end_session(
        &mut self,
        scope: &TenantScope,
        hash: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let n = self.write_audited(
            scope.id,
            "UPDATE browser_sessions SET revoked_ms = ?3
             WHERE tenant_id = ?1 AND token_sha256 = ?2 AND revoked_ms IS NULL",
            params![scope.id, hash, now_ms()],
            audit,
        )?;
        Ok(n > 0)
    }
}

impl PgStore {
    async fn create_session(
        &self,
        scope: &TenantScope,
        s: &NewSession,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        tx.execute(
            "INSERT INTO browser_sessions (token_sha256, tenant_id, user_id, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &s.token_sha256,
                &scope.id,
                &s.user_id,
                &now_ms(),
                &s.expires_ms,
            ],
        )
        .await?;
        pg_audit(&tx, scope.id, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn live_session(
        &self,
        scope: &TenantScope,
        hash: &str,
    ) -> Result<Option<LiveSession>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let row = tx
            .query_opt(
                "SELECT user_id, expires_ms FROM browser_sessions
                 WHERE tenant_id = $1 AND token_sha256 = $2 AND revoked_ms IS NULL AND expires_ms > $3",
                &[&scope.id, &hash, &now_ms()],
            )
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| LiveSession {
            user_id: r.get(0),
            expires_ms: r.get(1),
        }))
    }

    async fn end_session(
        &self,
        scope: &TenantScope,
        hash: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let n = self
            .write_audited(
                scope,
                "UPDATE browser_sessions SET revoked_ms = $3
                 WHERE tenant_id = $1 AND token_sha256 = $2 AND revoked_ms IS NULL",
                &[&scope.id, &hash, &now_ms()],
                audit,
            )
            .await?;
        Ok(n > 0)
    }
}
