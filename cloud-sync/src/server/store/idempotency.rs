//! Stored responses of requests sent with an `Idempotency-Key`, per tenant and caller, for 24
//! hours: the same key with the same request gets the stored response again; the same key with a
//! different request is refused; a key whose first request is still running is refused too.

use rusqlite::{OptionalExtension, params};

use super::{PgStore, SqliteStore, Store, StoreError, TenantScope, blocking, postgres::scoped};
use rollcall_service::clock::now_ms;

/// How long a key is remembered.
pub const KEY_TTL_MS: i64 = 24 * 3600 * 1000;

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
}

/// fingerprint, status, content type, body
type KeyRow = (String, Option<i64>, Option<String>, Option<Vec<u8>>);

fn judge(row: Option<KeyRow>, fingerprint: &str) -> Begin {
    match row {
        None => Begin::Started,
        Some((fp, _, _, _)) if fp != fingerprint => Begin::Mismatch,
        Some((_, Some(status), content_type, body)) => Begin::Replay(Stored {
            status: u16::try_from(status).unwrap_or(500),
            content_type: content_type.unwrap_or_default(),
            body: body.unwrap_or_default(),
        }),
        Some(_) => Begin::InProgress,
    }
}

impl Store {
    pub async fn idem_begin(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Begin, StoreError> {
        let (scope, caller, key, fp) = (
            scope.clone(),
            caller.to_owned(),
            key.to_owned(),
            fingerprint.to_owned(),
        );
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.idem_begin(&scope, &caller, &key, &fp)).await
            }
            Store::Postgres(p) => p.idem_begin(&scope, &caller, &key, &fp).await,
        }
    }

    /// Records the response of a started key.
    pub async fn idem_finish(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
        response: Stored,
    ) -> Result<(), StoreError> {
        let (scope, caller, key) = (scope.clone(), caller.to_owned(), key.to_owned());
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.idem_finish(&scope, &caller, &key, &response)).await
            }
            Store::Postgres(p) => p.idem_finish(&scope, &caller, &key, &response).await,
        }
    }

    /// Deletes the tenant's keys older than [`KEY_TTL_MS`]; how many went.
    pub async fn idem_purge(&self, scope: &TenantScope) -> Result<u64, StoreError> {
        let scope = scope.clone();
        let before = now_ms() - KEY_TTL_MS;
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    Ok(s.conn.execute(
                        "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND created_ms <= ?2",
                        params![scope.id, before],
                    )? as u64)
                })
                .await
            }
            Store::Postgres(p) => {
                p.execute_scoped(
                    &scope,
                    "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND created_ms <= $2",
                    &[&scope.id, &before],
                )
                .await
            }
        }
    }

    /// Forgets a started key whose request failed on the server's side, so a retry runs again.
    pub async fn idem_abandon(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        let (scope, caller, key) = (scope.clone(), caller.to_owned(), key.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.idem_abandon(&scope, &caller, &key)).await,
            Store::Postgres(p) => p.idem_abandon(&scope, &caller, &key).await,
        }
    }
}

impl SqliteStore {
    pub fn idem_begin(
        &mut self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
        fp: &str,
    ) -> Result<Begin, StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND caller = ?2 AND key = ?3 AND created_ms <= ?4",
            params![scope.id, caller, key, now - KEY_TTL_MS],
        )?;
        let row = tx
            .query_row(
                "SELECT fingerprint, status, content_type, body FROM idempotency_keys
                 WHERE tenant_id = ?1 AND caller = ?2 AND key = ?3",
                params![scope.id, caller, key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let begin = judge(row, fp);
        if begin == Begin::Started {
            tx.execute(
                "INSERT INTO idempotency_keys (tenant_id, caller, key, fingerprint, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![scope.id, caller, key, fp, now],
            )?;
        }
        tx.commit()?;
        Ok(begin)
    }

    pub fn idem_finish(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
        r: &Stored,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE idempotency_keys SET status = ?4, content_type = ?5, body = ?6
             WHERE tenant_id = ?1 AND caller = ?2 AND key = ?3",
            params![scope.id, caller, key, r.status, r.content_type, r.body],
        )?;
        Ok(())
    }

    pub fn idem_abandon(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = ?1 AND caller = ?2 AND key = ?3 AND status IS NULL",
            params![scope.id, caller, key],
        )?;
        Ok(())
    }
}

impl PgStore {
    pub async fn idem_begin(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
        fp: &str,
    ) -> Result<Begin, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        tx.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND caller = $2 AND key = $3 AND created_ms <= $4",
            &[&scope.id, &caller, &key, &(now - KEY_TTL_MS)],
        )
        .await?;
        // Insert first: of two concurrent first uses, exactly one inserts.
        let inserted = tx
            .execute(
                "INSERT INTO idempotency_keys (tenant_id, caller, key, fingerprint, created_ms) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT DO NOTHING",
                &[&scope.id, &caller, &key, &fp, &now],
            )
            .await?;
        let begin = if inserted == 1 {
            Begin::Started
        } else {
            let row = tx
                .query_opt(
                    "SELECT fingerprint, status::bigint, content_type, body FROM idempotency_keys
                     WHERE tenant_id = $1 AND caller = $2 AND key = $3",
                    &[&scope.id, &caller, &key],
                )
                .await?
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)));
            match judge(row, fp) {
                Begin::Started => Begin::InProgress,
                other => other,
            }
        };
        tx.commit().await?;
        Ok(begin)
    }

    pub async fn idem_finish(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
        r: &Stored,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        tx.execute(
            "UPDATE idempotency_keys SET status = $4, content_type = $5, body = $6
             WHERE tenant_id = $1 AND caller = $2 AND key = $3",
            &[
                &scope.id,
                &caller,
                &key,
                &i32::from(r.status),
                &r.content_type,
                &r.body,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn idem_abandon(
        &self,
        scope: &TenantScope,
        caller: &str,
        key: &str,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        tx.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND caller = $2 AND key = $3 AND status IS NULL",
            &[&scope.id, &caller, &key],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
