//! Users, refresh tokens and platform secrets on SQLite.

use rusqlite::{OptionalExtension, params};

use super::{
    SqliteStore, StoreError, TenantScope,
    audit::Audit,
    sqlite::append_audit,
    users::{Credentials, NewRefresh, NewUser, RefreshUse, Role, User, fresh_secret, parse_role},
};
use rollcall_service::clock::now_ms;

/// user id, family, expires, used, revoked
type StoredRefresh = (String, String, i64, Option<i64>, Option<i64>);

const USER_COLUMNS: &str = "id, email, display_name, role, created_ms, disabled_ms";

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        display_name: r.get(2)?,
        role: parse_role(&r.get::<_, String>(3)?),
        created_ms: r.get(4)?,
        disabled_ms: r.get(5)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

impl SqliteStore {
    pub fn create_user(
        &mut self,
        scope: &TenantScope,
        u: &NewUser,
        audit: &Audit,
    ) -> Result<User, StoreError> {
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO users (id, tenant_id, email, display_name, role, password_hash, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![u.id, scope.id, u.email, u.display_name, u.role.as_str(), u.password_hash, now_ms()],
        );
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a user with email `{}` already exists",
                    u.email
                )));
            }
            other => other?,
        };
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        self.user(scope, &u.id)?
            .ok_or_else(|| StoreError::Conflict("the new user vanished".into()))
    }

    pub fn credentials(
        &self,
        scope: &TenantScope,
        email: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {USER_COLUMNS}, password_hash FROM users WHERE tenant_id = ?1 AND email = ?2"
                ),
                params![scope.id, email],
                |r| {
                    Ok(Credentials {
                        user: user_row(r)?,
                        password_hash: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn user(&self, scope: &TenantScope, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = ?1 AND id = ?2"),
                params![scope.id, id],
                user_row,
            )
            .optional()?)
    }

    pub fn users(&self, scope: &TenantScope) -> Result<Vec<User>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE tenant_id = ?1 ORDER BY email"
        ))?;
        let rows = stmt.query_map([scope.id], user_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn update_user(
        &mut self,
        scope: &TenantScope,
        id: &str,
        role: Option<Role>,
        display_name: Option<String>,
        disabled: Option<bool>,
        audit: &Audit,
    ) -> Result<Option<User>, StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let changed = tx.execute(
            "UPDATE users SET role = coalesce(?3, role), display_name = coalesce(?4, display_name),
                    disabled_ms = CASE ?5 WHEN 1 THEN coalesce(disabled_ms, ?6) WHEN 0 THEN NULL ELSE disabled_ms END
             WHERE tenant_id = ?1 AND id = ?2",
            params![scope.id, id, role.map(Role::as_str), display_name, disabled, now],
        )?;
        if disabled == Some(true) {
            for table in ["refresh_tokens", "browser_sessions"] {
                tx.execute(
                    &format!("UPDATE {table} SET revoked_ms = ?3 WHERE tenant_id = ?1 AND user_id = ?2 AND revoked_ms IS NULL"),
                    params![scope.id, id, now],
                )?;
            }
        }
        if changed > 0 {
            append_audit(&tx, scope.id, audit)?;
        }
        tx.commit()?;
        self.user(scope, id)
    }

    pub fn insert_refresh(
        &mut self,
        scope: &TenantScope,
        t: &NewRefresh,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO refresh_tokens (token_sha256, tenant_id, user_id, family, issued_ms, expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![t.token_sha256, scope.id, t.user_id, t.family, now_ms(), t.expires_ms],
        )?;
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        Ok(())
    }

    pub fn use_refresh(
        &mut self,
        scope: &TenantScope,
        hash: &str,
    ) -> Result<RefreshUse, StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let found: Option<StoredRefresh> = tx
            .query_row(
                "SELECT user_id, family, expires_ms, used_ms, revoked_ms FROM refresh_tokens
                 WHERE tenant_id = ?1 AND token_sha256 = ?2",
                params![scope.id, hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let outcome = match found {
            None => RefreshUse::Invalid,
            Some((_, family, _, used, revoked)) if used.is_some() || revoked.is_some() => {
                tx.execute(
                    "UPDATE refresh_tokens SET revoked_ms = ?3 WHERE tenant_id = ?1 AND family = ?2 AND revoked_ms IS NULL",
                    params![scope.id, family, now],
                )?;
                RefreshUse::Reused { family }
            }
            Some((_, _, expires, _, _)) if expires <= now => RefreshUse::Invalid,
            Some((user_id, family, ..)) => {
                tx.execute(
                    "UPDATE refresh_tokens SET used_ms = ?3 WHERE tenant_id = ?1 AND token_sha256 = ?2",
                    params![scope.id, hash, now],
                )?;
                RefreshUse::Fresh { user_id, family }
            }
        };
        tx.commit()?;
        Ok(outcome)
    }

    pub fn revoke_refresh_family(
        &mut self,
        scope: &TenantScope,
        hash: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE refresh_tokens SET revoked_ms = ?3
             WHERE tenant_id = ?1 AND revoked_ms IS NULL
               AND family = (SELECT family FROM refresh_tokens WHERE tenant_id = ?1 AND token_sha256 = ?2)",
            params![scope.id, hash, now_ms()],
        )?;
        if n > 0 {
            append_audit(&tx, scope.id, audit)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    pub fn platform_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        self.conn.execute(
            "INSERT INTO platform_secrets (name, secret, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
            params![name, fresh_secret()?.to_vec(), now_ms()],
        )?;
        let secret: Vec<u8> = self.conn.query_row(
            "SELECT secret FROM platform_secrets WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        secret.try_into().map_err(|_| StoreError::Key)
    }
}
