//! Who the tenants are (platform-level rows, not under row-level security) and each tenant's
//! CORS allow-list: written once for both backends over [`exec`].
//!
//! [`exec`]: super::exec

use super::{
    Loaded, Store, StoreError, Tenant, TenantScope, TenantStatus,
    audit::Audit,
    exec::{Exec, Row, in_platform, in_tenant},
};
use rollcall_service::clock::now_ms;

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
                .ok_or_else(|| StoreError::Conflict(format!("tenant `{slug}` vanished")))
        })
    }

    /// A new tenant; [`StoreError::Conflict`] if the slug is taken. The audit entry opens the
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
                .ok_or_else(|| StoreError::Conflict(format!("tenant `{slug}` already exists")))?;
            tx.append_audit_for(tenant.id, &audit).await?;
            Ok::<_, StoreError>(tenant)
        })
    }

    pub async fn tenant(&self, slug: &str) -> Result<Option<Tenant>, StoreError> {
        let slug = slug.to_owned();
        in_platform!(self, |tx| by_slug(tx, &slug))
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
