//! Users, their roles, refresh tokens and the platform's own secrets (users and refresh tokens
//! are tenant-owned like every other table; the secrets are the platform's).

use serde::{Deserialize, Serialize};

use crate::server::store::Refused;
use rollcall_service::problem::ProblemType;

use crate::server::{
    audit::store::Audit,
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, Row, in_platform, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

/// What the users' API refuses.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a user with email `{0}` already exists")]
    EmailTaken(String),
}

pub const EMAIL_TAKEN: ProblemType = ProblemType {
    slug: "email-taken",
    title: "Email taken",
    status: 409,
    meaning: "another user of the tenant has this email",
};

/// The problem types of this domain, for the OpenAPI document.
pub const PROBLEMS: &[&ProblemType] = &[&EMAIL_TAKEN];

impl Refused for UserError {
    fn problem_type(&self) -> &'static ProblemType {
        match self {
            UserError::EmailTaken(_) => &EMAIL_TAKEN,
        }
    }
}

/// What a user may do in their tenant, from most to least powerful.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including other owners.
    Owner,
    /// Users (but not owners), nodes, config bundles, sites and people.
    Admin,
    /// People and shifts; reads attendance.
    Supervisor,
    /// Checks in; sees their own profile.
    Guard,
    /// Reads everything, changes nothing.
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Supervisor,
        Role::Guard,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Guard => "guard",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A user as the API shows one (never the password hash).
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub created_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_ms: Option<i64>,
    /// Access tokens issued before this instant (ms) no longer stand for the user: the last
    /// time they were disabled. Not shown.
    #[serde(skip)]
    #[schema(ignore)]
    pub tokens_from_ms: i64,
}

impl User {
    /// Whether an access token issued at `issued_ms` still stands for this user: they are
    /// enabled and were not disabled after it was issued (re-enabling does not revive it).
    pub fn accepts_token_issued_at(&self, issued_ms: i64) -> bool {
        self.disabled_ms.is_none() && issued_ms >= self.tokens_from_ms
    }
}

/// A user with the stored password hash, for logging in.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
}

/// A refresh token as stored: only its hash.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub token_sha256: String,
    pub user_id: String,
    /// Every token rotated from one login shares the family; reuse of any revokes all.
    pub family: String,
    pub expires_ms: i64,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshUse {
    /// Valid and now spent: issue the next one in `family`.
    Fresh { user_id: String, family: String },
    /// Spent before (or its family revoked): a stolen copy is being replayed. The whole family
    /// has now been revoked.
    Reused { family: String },
    /// Unknown or expired.
    Invalid,
}

impl Store {
    /// A new user; [`UserError::EmailTaken`] if the email (or id) is taken.
    pub async fn create_user(
        &self,
        scope: &TenantScope,
        user: NewUser,
        audit: Audit,
    ) -> Result<User, StoreError> {
        in_tenant!(write self, scope, audit, |tx| create(tx, &user))
    }

    pub async fn credentials(
        &self,
        scope: &TenantScope,
        email: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let email = email.to_owned();
        in_tenant!(read self, scope, |tx| tx.query_opt(
            &format!(
                "SELECT {USER_COLUMNS}, password_hash FROM users WHERE tenant_id = $1 AND email = $2"
            ),
            &[&tx.tenant(), &email],
            |r| Ok(Credentials {
                user: read_user(r)?,
                password_hash: r.get(USER_FIELDS)?,
            }),
        ))
    }

    pub async fn user(&self, scope: &TenantScope, id: &str) -> Result<Option<User>, StoreError> {
        let id = id.to_owned();
        in_tenant!(read self, scope, |tx| tx.query_opt(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2"),
            &[&tx.tenant(), &id],
            read_user,
        ))
    }

    pub async fn users(&self, scope: &TenantScope) -> Result<Vec<User>, StoreError> {
        in_tenant!(read self, scope, |tx| tx.query(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email"),
            &[&tx.tenant()],
            read_user,
        ))
    }

    /// Changes a user's role, name or disabled state (`Some(true)` disables now and revokes
    /// their browser sessions and their refresh tokens); `None` if there is no such user in the
    /// tenant.
    pub async fn update_user(
        &self,
        scope: &TenantScope,
        id: &str,
        role: Option<Role>,
        display_name: Option<String>,
        disabled: Option<bool>,
        audit: Audit,
    ) -> Result<Option<User>, StoreError> {
        let id = id.to_owned();
        in_tenant!(write self, scope, audit, |tx| update(
            tx,
            &id,
            role,
            display_name.as_deref(),
            disabled
        ))
    }

    pub async fn insert_refresh(
        &self,
        scope: &TenantScope,
        token: NewRefresh,
        audit: Audit,
    ) -> Result<(), StoreError> {
        in_tenant!(write self, scope, audit, |tx| async {
            tx.execute(
                "INSERT INTO refresh_tokens
                   (token_sha256, tenant_id, user_id, family, issued_ms, expires_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &token.token_sha256,
                    &tx.tenant(),
                    &token.user_id,
                    &token.family,
                    &now_ms(),
                    &token.expires_ms,
                ],
            )
            .await?;
            Ok::<_, StoreError>(())
        })
    }

    /// Spends a refresh token, atomically: of two concurrent uses of one token only one is
    /// `Fresh`; the other is `Reused` and revokes the family.
    pub async fn use_refresh(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
    ) -> Result<RefreshUse, StoreError> {
        let hash = token_sha256.to_owned();
        in_tenant!(internal self, scope, |tx| spend(tx, &hash))
    }

    /// Whether a refresh token is the tenant's, unspent, unrevoked and unexpired, without
    /// spending it (for telling a suspended tenant's holder of a right token why it is refused).
    pub async fn refresh_is_live(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
    ) -> Result<bool, StoreError> {
        let hash = token_sha256.to_owned();
        in_tenant!(read self, scope, |tx| async {
            let row = tx
                .query_opt(
                    "SELECT user_id FROM refresh_tokens WHERE tenant_id = $1 AND token_sha256 = $2
                       AND used_ms IS NULL AND revoked_ms IS NULL AND expires_ms > $3",
                    &[&tx.tenant(), &hash, &now_ms()],
                    |r| r.get::<String>(0),
                )
                .await?;
            Ok::<_, StoreError>(row.is_some())
        })
    }

    /// Revokes every refresh token of a family (logout), if the token is the tenant's.
    pub async fn revoke_refresh_family(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let hash = token_sha256.to_owned();
        in_tenant!(write self, scope, audit, |tx| async {
            let n = tx
                .execute(
                    "UPDATE refresh_tokens SET revoked_ms = $3
                     WHERE tenant_id = $1 AND revoked_ms IS NULL
                       AND family = (SELECT family FROM refresh_tokens
                                     WHERE tenant_id = $1 AND token_sha256 = $2)",
                    &[&tx.tenant(), &hash, &now_ms()],
                )
                .await?;
            Ok::<_, StoreError>(n > 0)
        })
    }

    /// A platform secret (e.g. the access-token signing key), made on first use and shared by
    /// every replica on the same database.
    pub async fn platform_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let name = name.to_owned();
        in_platform!(self, |tx| platform_secret(tx, &name))
    }
}

const USER_COLUMNS: &str = "id, email, display_name, role, created_ms, disabled_ms, tokens_from_ms";
/// How many columns [`USER_COLUMNS`] names: a query's further columns start there.
const USER_FIELDS: usize = 7;

/// A row of [`USER_COLUMNS`].
fn read_user(r: &Row<'_>) -> Result<User, StoreError> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        display_name: r.get(2)?,
        role: parse_role(&r.get::<String>(3)?),
        created_ms: r.get(4)?,
        disabled_ms: r.get(5)?,
        tokens_from_ms: r.get(6)?,
    })
}

crate::server::store::exec::always_changed!(User);

async fn create(tx: &impl Exec, u: &NewUser) -> Result<User, StoreError> {
    tx.query_opt(
        &format!(
            "INSERT INTO users (id, tenant_id, email, display_name, role, password_hash, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING {USER_COLUMNS}"
        ),
        &[
            &u.id,
            &tx.tenant(),
            &u.email,
            &u.display_name,
            &u.role.as_str(),
            &u.password_hash,
            &now_ms(),
        ],
        read_user,
    )
    .await?
    .ok_or_else(|| UserError::EmailTaken(u.email.clone()).into())
}

async fn update(
    tx: &impl Exec,
    id: &str,
    role: Option<Role>,
    display_name: Option<&str>,
    disabled: Option<bool>,
) -> Result<Option<User>, StoreError> {
    let now = now_ms();
    let user = tx
        .query_opt(
            &format!(
                "UPDATE users SET role = coalesce($3, role), display_name = coalesce($4, display_name),
                        disabled_ms = CASE WHEN CAST($5 AS BOOLEAN) THEN coalesce(disabled_ms, $6)
                                           WHEN NOT CAST($5 AS BOOLEAN) THEN NULL
                                           ELSE disabled_ms END,
                        tokens_from_ms = CASE WHEN CAST($5 AS BOOLEAN) AND disabled_ms IS NULL
                                              THEN $6 ELSE tokens_from_ms END
                 WHERE tenant_id = $1 AND id = $2 RETURNING {USER_COLUMNS}"
            ),
            &[
                &tx.tenant(),
                &id,
                &role.map(Role::as_str),
                &display_name,
                &disabled,
                &now,
            ],
            read_user,
        )
        .await?;
    if user.is_some() && disabled == Some(true) {
        for table in ["refresh_tokens", "browser_sessions"] {
            tx.execute(
                &format!(
                    "UPDATE {table} SET revoked_ms = $3
                     WHERE tenant_id = $1 AND user_id = $2 AND revoked_ms IS NULL"
                ),
                &[&tx.tenant(), &id, &now],
            )
            .await?;
        }
    }
    Ok(user)
}

/// user id, family, expires, used, revoked
type StoredRefresh = (String, String, i64, Option<i64>, Option<i64>);

async fn spend(tx: &impl Exec, hash: &str) -> Result<RefreshUse, StoreError> {
    let now = now_ms();
    // The row is locked until commit: two concurrent uses of one token serialise here.
    let found: Option<StoredRefresh> = tx
        .query_opt(
            &format!(
                "SELECT user_id, family, expires_ms, used_ms, revoked_ms FROM refresh_tokens
                 WHERE tenant_id = $1 AND token_sha256 = $2{}",
                tx.dialect().lock_rows()
            ),
            &[&tx.tenant(), &hash],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .await?;
    Ok(match found {
        None => RefreshUse::Invalid,
        Some((_, family, _, used, revoked)) if used.is_some() || revoked.is_some() => {
            tx.execute(
                "UPDATE refresh_tokens SET revoked_ms = $3
                 WHERE tenant_id = $1 AND family = $2 AND revoked_ms IS NULL",
                &[&tx.tenant(), &family, &now],
            )
            .await?;
            RefreshUse::Reused { family }
        }
        Some((_, _, expires, _, _)) if expires <= now => RefreshUse::Invalid,
        Some((user_id, family, ..)) => {
            tx.execute(
                "UPDATE refresh_tokens SET used_ms = $3 WHERE tenant_id = $1 AND token_sha256 = $2",
                &[&tx.tenant(), &hash, &now],
            )
            .await?;
            RefreshUse::Fresh { user_id, family }
        }
    })
}

async fn platform_secret(tx: &impl Exec, name: &str) -> Result<[u8; 32], StoreError> {
    tx.execute(
        "INSERT INTO platform_secrets (name, secret, created_ms) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING",
        &[&name, &fresh_secret()?.to_vec(), &now_ms()],
    )
    .await?;
    let secret: Option<Vec<u8>> = tx
        .query_opt(
            "SELECT secret FROM platform_secrets WHERE name = $1",
            &[&name],
            |r| r.get(0),
        )
        .await?;
    secret
        .and_then(|s| <[u8; 32]>::try_from(s).ok())
        .ok_or(StoreError::Key)
}

pub(crate) fn fresh_secret() -> Result<[u8; 32], StoreError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|_| StoreError::Key)?;
    Ok(secret)
}

pub(crate) fn parse_role(s: &str) -> Role {
    // The column's CHECK constraint admits only the five names; an unknown one (a newer schema)
    // gets the least power.
    Role::parse(s).unwrap_or(Role::Guard)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_column_count_follows_the_column_list() {
        assert_eq!(super::USER_COLUMNS.split(',').count(), super::USER_FIELDS);
    }
}
