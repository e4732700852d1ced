//! Users, their roles, refresh tokens and the platform's own secrets: types and the dispatch to
//! each backend (`sqlite_users.rs`, `postgres_users.rs`).

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, TenantScope, audit::Audit, blocking};

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
    pub async fn create_user(
        &self,
        scope: &TenantScope,
        user: NewUser,
        audit: Audit,
    ) -> Result<User, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.create_user(&scope, &user, &audit)).await,
            Store::Postgres(p) => p.create_user(&scope, &user, &audit).await,
        }
    }

    pub async fn credentials(
        &self,
        scope: &TenantScope,
        email: &str,
    ) -> Result<Option<Credentials>, StoreError> {
        let (scope, email) = (scope.clone(), email.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.credentials(&scope, &email)).await,
            Store::Postgres(p) => p.credentials(&scope, &email).await,
        }
    }

    pub async fn user(&self, scope: &TenantScope, id: &str) -> Result<Option<User>, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.user(&scope, &id)).await,
            Store::Postgres(p) => p.user(&scope, &id).await,
        }
    }

    pub async fn users(&self, scope: &TenantScope) -> Result<Vec<User>, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.users(&scope)).await,
            Store::Postgres(p) => p.users(&scope).await,
        }
    }

    /// Changes a user's role, name or disabled state (`Some(true)` disables now and revokes
    /// their browser sessions and
    /// their refresh tokens); `None` if there is no such user in the tenant.
    pub async fn update_user(
        &self,
        scope: &TenantScope,
        id: &str,
        role: Option<Role>,
        display_name: Option<String>,
        disabled: Option<bool>,
        audit: Audit,
    ) -> Result<Option<User>, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    s.update_user(&scope, &id, role, display_name, disabled, &audit)
                })
                .await
            }
            Store::Postgres(p) => {
                p.update_user(&scope, &id, role, display_name, disabled, &audit)
                    .await
            }
        }
    }

    pub async fn insert_refresh(
        &self,
        scope: &TenantScope,
        token: NewRefresh,
        audit: Audit,
    ) -> Result<(), StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.insert_refresh(&scope, &token, &audit)).await
            }
            Store::Postgres(p) => p.insert_refresh(&scope, &token, &audit).await,
        }
    }

    /// Spends a refresh token, atomically: of two concurrent uses of one token only one is
    /// `Fresh`; the other is `Reused` and revokes the family.
    pub async fn use_refresh(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
    ) -> Result<RefreshUse, StoreError> {
        let (scope, hash) = (scope.clone(), token_sha256.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.use_refresh(&scope, &hash)).await,
            Store::Postgres(p) => p.use_refresh(&scope, &hash).await,
        }
    }

    /// Revokes every refresh token of a family (logout), if the token is the tenant's.
    pub async fn revoke_refresh_family(
        &self,
        scope: &TenantScope,
        token_sha256: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let (scope, hash) = (scope.clone(), token_sha256.to_owned());
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.revoke_refresh_family(&scope, &hash, &audit)).await
            }
            Store::Postgres(p) => p.revoke_refresh_family(&scope, &hash, &audit).await,
        }
    }

    /// A platform secret (e.g. the access-token signing key), made on first use and shared by
    /// every replica on the same database.
    pub async fn platform_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let name = name.to_owned();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.platform_secret(&name)).await,
            Store::Postgres(p) => p.platform_secret(&name).await,
        }
    }
}

pub(super) fn fresh_secret() -> Result<[u8; 32], StoreError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|_| StoreError::Key)?;
    Ok(secret)
}

pub(super) fn parse_role(s: &str) -> Role {
    // The column's CHECK constraint admits only the five names; an unknown one (a newer schema)
    // gets the least power.
    Role::parse(s).unwrap_or(Role::Guard)
}
