//! Who the tenants are (platform-level rows, not under row-level security) and each tenant's
//! CORS allow-list: written once for both backends over [`exec`].
//!
//! [`exec`]: crate::server::store::exec

use serde::Serialize;

use crate::server::store::Refused;
use rollcall_service::problem::ProblemType;

use crate::server::{
    audit::store::Audit,
    store::{
        Store, StoreError,
        exec::{Exec, Row, in_platform, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

/// What the tenants' API refuses.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant `{0}` already exists")]
    Exists(String),
}

pub const TENANT_EXISTS: ProblemType = ProblemType {
    slug: "tenant-exists",
    title: "Tenant exists",
    status: 409,
    meaning: "a tenant with this slug exists (slugs are never reused)",
};

/// The problem types of this domain, for the OpenAPI document.
pub const PROBLEMS: &[&ProblemType] = &[&TENANT_EXISTS];

impl Refused for TenantError {
    fn problem_type(&self) -> &'static ProblemType {
        match self {
            TenantError::Exists(_) => &TENANT_EXISTS,
        }
    }
}

#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "active" {
            TenantStatus::Active
        } else {
            TenantStatus::Suspended
        }
    }
}

/// A tenant as stored. Only this module makes one (the private field), so a [`TenantScope`]
/// always stands for a tenant that was looked up.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Tenant {
    #[serde(skip)]
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub status: TenantStatus,
    pub created_ms: i64,
    /// Browser origins allowed to call this tenant's API (CORS), e.g. `https://admin.acme.example`.
    pub cors_origins: Vec<String>,
    #[serde(skip)]
    _loaded: Loaded,
}

#[derive(Debug, Clone, Copy)]
struct Loaded;

impl Tenant {
    /// The scope for queries on this tenant's rows; `None` while it is suspended.
    pub fn scope(&self) -> Option<TenantScope> {
        (self.status == TenantStatus::Active).then(|| TenantScope {
            id: self.id,
            slug: self.slug.clone(),
        })
    }

    /// A scope whatever the tenant's status, only to check a credential (a password, a node
    /// token) before saying the tenant is suspended: a wrong credential then gets the same 401
    /// as anywhere, and only a caller who holds a right one learns of the suspension. Nothing
    /// else may run under it.
    pub(crate) fn scope_to_check_a_credential(&self) -> TenantScope {
        TenantScope {
            id: self.id,
            slug: self.slug.clone(),
        }
    }
}

/// Proof that a request was resolved to an active tenant; every query on tenant-owned rows
/// takes one. On PostgreSQL it also sets `rollcall.tenant_id` for row-level security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    id: i64,
    slug: String,
}

impl TenantScope {
    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn slug(&self) -> &str {
        &self.slug
    }
}

const COLUMNS: &str = "id, slug, name, status, created_ms, cors_origins";

fn read_tenant(r: &Row<'_>) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: r.get(0)?,
        slug: r.get(1)?,
        name: r.get(2)?,
        status: TenantStatus::parse(&r.get::<String>(3)?),
        created_ms: r.get(4)?,
        cors_origins: split_origins(&r.get::<String>(5)?),
        _loaded: Loaded,
    })
}

/// The allow-list is stored one origin a line.
fn split_origins(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Store {
    /// Creates the tenant if it does not exist (the server's bootstrap tenant).
    pub async fn ensure_tenant(&self, slug: &str, name: &str) -> Result<Tenant, StoreError> {
        let (slug, name) = (slug.to_owned(), name.to_owned());
        in_platform!(self, |tx| async {
            tx.execute(
                "INSERT INTO tenants (slug, name, created_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (slug) DO NOTHING",
                &[&slug, &name, &now_ms()],
            )
            .await?;
            by_slug(tx, &slug)
                .await?
                .ok_or_else(|| StoreError::Inconsistent(format!("tenant `{slug}` vanished")))
        })
    }

    /// A new tenant; [`TenantError::Exists`] if the slug is taken. The audit entry opens the
    /// new tenant's own trail.
    pub async fn create_tenant(
        &self,
        slug: &str,
        name: &str,
        audit: Audit,
    ) -> Result<Tenant, StoreError> {
        let (slug, name) = (slug.to_owned(), name.to_owned());
        in_platform!(self, |tx| async {
            let tenant = tx
                .query_opt(
                    &format!(
                        "INSERT INTO tenants (slug, name, created_ms) VALUES ($1, $2, $3)
                         ON CONFLICT (slug) DO NOTHING RETURNING {COLUMNS}"
                    ),
                    &[&slug, &name, &now_ms()],
                    read_tenant,
                )
                .await?
                .ok_or_else(|| TenantError::Exists(slug.clone()))?;
            tx.append_audit_for(tenant.id, &audit).await?;
            Ok::<_, StoreError>(tenant)
        })
    }

    pub async fn tenant(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        let slug = slug.to_owned();
        in_platform!(self, |tx| by_slug(tx, &slug))
    }

    /// The tenant with id `id` (a job's: one read, before each attempt).
    pub async fn tenant_by_id(&self, id: i64) -> Result<Option<Tenant>, StoreError> {
        in_platform!(self, |tx| tx.query_opt(
            &format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"),
            &[&id],
            read_tenant
        ))
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        in_platform!(self, |tx| tx.query(
            &format!("SELECT {COLUMNS} FROM tenants ORDER BY slug"),
            &[],
            read_tenant
        ))
    }

    /// Changes a tenant's name and/or status; `None` if there is no such tenant. The audit
    /// entry goes to that tenant's trail.
    pub async fn update_tenant(
        &self,
        slug: &str,
        name: Option<String>,
        status: Option<TenantStatus>,
        audit: Audit,
    ) -> Result<Option<Tenant>, StoreError> {
        let slug = slug.to_owned();
        in_platform!(self, |tx| async {
            let tenant = tx
                .query_opt(
                    &format!(
                        "UPDATE tenants SET name = coalesce(CAST($2 AS TEXT), name),
                            status = coalesce(CAST($3 AS TEXT), status)
                         WHERE slug = $1 RETURNING {COLUMNS}"
                    ),
                    &[&slug, &name, &status.map(TenantStatus::as_str)],
                    read_tenant,
                )
                .await?;
            if let Some(t) = &tenant {
                tx.append_audit_for(t.id, &audit).await?;
            }
            Ok::<_, StoreError>(tenant)
        })
    }

    /// Replaces the tenant's CORS allow-list.
    pub async fn set_cors_origins(
        &self,
        scope: &TenantScope,
        origins: Vec<String>,
        audit: Audit,
    ) -> Result<(), StoreError> {
        let text = origins.join("\n");
        in_tenant!(write self, scope, audit, |tx| async {
            tx.execute(
                "UPDATE tenants SET cors_origins = $2 WHERE id = $1",
                &[&tx.tenant(), &text],
            )
            .await?;
            Ok::<_, StoreError>(())
        })
    }
}

async fn by_slug(tx: &impl Exec, slug: &str) -> Result<Option<Tenant>, StoreError> {
    tx.query_opt(
        &format!("SELECT {COLUMNS} FROM tenants WHERE slug = $1"),
        &[&slug],
        read_tenant,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_active_tenant_gives_a_scope() {
        let mut t = Tenant {
            id: 3,
            slug: "acme".into(),
            name: "Acme".into(),
            status: TenantStatus::Active,
            created_ms: 0,
            cors_origins: vec![],
            _loaded: Loaded,
        };
        assert_eq!(t.scope().map(|s| s.id()), Some(3));
        t.status = TenantStatus::Suspended;
        assert!(t.scope().is_none());
    }
}
