//! Users, refresh tokens and platform secrets on PostgreSQL (users and refresh tokens under
//! row-level security like every tenant-owned table).

use tokio_postgres::Row;

use super::{
    PgStore, StoreError, TenantScope,
    audit::Audit,
    postgres::append_audit,
    postgres::scoped,
    users::{Credentials, NewRefresh, NewUser, RefreshUse, Role, User, fresh_secret, parse_role},
};
use rollcall_service::clock::now_ms;

const USER_COLUMNS: &str = "id, email, display_name, role, created_ms, disabled_ms";

fn user_row(r: &Row) -> User {
    User {
        id: r.get(0),
        email: r.get(1),
        display_name: r.get(2),
        role: parse_role(r.get::<_, &str>(3)),
        created_ms: r.get(4),
        disabled_ms: r.get(5),
    }
}

impl PgStore {
    pub async fn create_user(
        &self,
        scope: &TenantScope,
        u: &NewUser,
        audit: &Audit,
    ) -> Result<User, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let row = tx
            .query_opt(
                &format!(
                    "INSERT INTO users (id, tenant_id, email, display_name, role, password_hash, created_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING {USER_COLUMNS}"
                ),
                &[&u.id, &scope.id, &u.email, &u.display_name, &u.role.as_str(), &u.password_hash, &now_ms()],
            )
            .await?;
        let user = row.map(|r| user_row(&r)).ok_or_else(|| {
            StoreError::Conflict(format!("a user with email `{}` already exists", u.email))
        })?;
        append_audit(&tx, scope.id, audit).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn credentials(
        &self,
        scope: &TenantScope,
        email: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {USER_COLUMNS}, password_hash FROM users WHERE tenant_id = $1 AND email = $2"
                ),
                &[&scope.id, &email],
            )
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| Credentials {
            user: user_row(&r),
            password_hash: r.get(6),
        }))
    }

    pub async fn user(&self, scope: &TenantScope, id: &str) -> Result<Option<User>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let row = tx
            .query_opt(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"),
                &[&scope.id, &id],
            )
            .await?;
        tx.commit().await?;
        Ok(row.map(|r| user_row(&r)))
    }

    pub async fn users(&self, scope: &TenantScope) -> Result<Vec<User>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let rows = tx
            .query(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email"),
                &[&scope.id],
            )
            .await?;
        tx.commit().await?;
        Ok(rows.iter().map(user_row).collect())
    }

    pub async fn update_user(
        &self,
        scope: &TenantScope,
        id: &str,
        role: Option<Role>,
        display_name: Option<String>,
        disabled: Option<bool>,
        audit: &Audit,
    ) -> Result<Option<User>, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE users SET role = coalesce($3, role), display_name = coalesce($4, display_name),
                            disabled_ms = CASE WHEN $5::bool THEN coalesce(disabled_ms, $6)
                                               WHEN NOT $5::bool THEN NULL ELSE disabled_ms END
                     WHERE tenant_id = $1 AND id = $2 RETURNING {USER_COLUMNS}"
                ),
                &[&scope.id, &id, &role.map(Role::as_str), &display_name, &disabled, &now],
            )
            .await?;
        if disabled == Some(true) {
            for table in ["refresh_tokens", "browser_sessions"] {
                tx.execute(
                    &format!("UPDATE {table} SET revoked_ms = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_ms IS NULL"),
                    &[&scope.id, &id, &now],
                )
                .await?;
            }
        }
        if row.is_some() {
            append_audit(&tx, scope.id, audit).await?;
        }
        tx.commit().await?;
        Ok(row.map(|r| user_row(&r)))
    }

    pub async fn insert_refresh(
        &self,
        scope: &TenantScope,
        t: &NewRefresh,
        audit: &Audit,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        tx.execute(
            "INSERT INTO refresh_tokens (token_sha256, tenant_id, user_id, family, issued_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[&t.token_sha256, &scope.id, &t.user_id, &t.family, &now_ms(), &t.expires_ms],
        )
        .await?;
        append_audit(&tx, scope.id, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn use_refresh(
        &self,
        scope: &TenantScope,
        hash: &str,
    ) -> Result<RefreshUse, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        // Row lock: two concurrent uses of one token serialise here.
        let found = tx
            .query_opt(
                "SELECT user_id, family, expires_ms, used_ms, revoked_ms FROM refresh_tokens
                 WHERE tenant_id = $1 AND token_sha256 = $2 FOR UPDATE",
                &[&scope.id, &hash],
            )
            .await?;
        let outcome = match found {
            None => RefreshUse::Invalid,
            Some(r)
                if r.get::<_, Option<i64>>(3).is_some() || r.get::<_, Option<i64>>(4).is_some() =>
            {
                let family: String = r.get(1);
                tx.execute(
                    "UPDATE refresh_tokens SET revoked_ms = $3 WHERE tenant_id = $1 AND family = $2 AND revoked_ms IS NULL",
                    &[&scope.id, &family, &now],
                )
                .await?;
                RefreshUse::Reused { family }
            }
            Some(r) if r.get::<_, i64>(2) <= now => RefreshUse::Invalid,
            Some(r) => {
                tx.execute(
                    "UPDATE refresh_tokens SET used_ms = $3 WHERE tenant_id = $1 AND token_sha256 = $2",
                    &[&scope.id, &hash, &now],
                )
                .await?;
                RefreshUse::Fresh {
                    user_id: r.get(0),
                    family: r.get(1),
                }
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    pub async fn revoke_refresh_family(
        &self,
        scope: &TenantScope,
        hash: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let n = tx
            .execute(
                "UPDATE refresh_tokens SET revoked_ms = $3
                 WHERE tenant_id = $1 AND revoked_ms IS NULL
                   AND family = (SELECT family FROM refresh_tokens WHERE tenant_id = $1 AND token_sha256 = $2)",
                &[&scope.id, &hash, &now_ms()],
            )
            .await?;
        if n > 0 {
            append_audit(&tx, scope.id, audit).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    pub async fn platform_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO platform_secrets (name, secret, created_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                &[&name, &fresh_secret()?.as_slice(), &now_ms()],
            )
            .await?;
        let secret: Vec<u8> = client
            .query_one(
                "SELECT secret FROM platform_secrets WHERE name = $1",
                &[&name],
            )
            .await?
            .get(0);
        secret.try_into().map_err(|_| StoreError::Key)
    }
}
