//! A tenant's sites: id, name and geofence (GeoJSON, validated by the fraud engine's reader, the
//! same one the node uses), for the admins and for the nodes of the site (`sync::pull`).

use serde::Serialize;

use crate::server::store::Refused;
use rollcall_service::problem::ProblemType;

use crate::server::{
    audit::store::Audit,
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, Row, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub id: String,
    pub name: String,
    /// A GeoJSON Feature, FeatureCollection or geometry, as the admin gave it.
    pub geofence: serde_json::Value,
    /// The fraud policy the site's nodes score with (`rollcall_fraud::Policy` as JSON: thresholds,
    /// weights, rules denying outright or switched off, limits); absent: each node's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraud_policy: Option<serde_json::Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const COLUMNS: &str = "id, name, geofence, created_ms, updated_ms, fraud_policy";

/// Whether people are assigned to a site or have shifts there (`$1` tenant, `$2` site).
const IN_USE: &str =
    "SELECT EXISTS (SELECT 1 FROM person_sites WHERE tenant_id = $1 AND site_id = $2)
                          OR EXISTS (SELECT 1 FROM shifts WHERE tenant_id = $1 AND site_id = $2)";

/// What the sites' API refuses.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("site `{0}` already exists")]
    Exists(String),
    #[error("site `{0}` still has people assigned or shifts: move them first")]
    InUse(String),
}

pub const SITE_EXISTS: ProblemType = ProblemType {
    slug: "site-exists",
    title: "Site exists",
    status: 409,
    meaning: "the tenant has a site with this id",
};

pub const SITE_IN_USE: ProblemType = ProblemType {
    slug: "site-in-use",
    title: "Site in use",
    status: 409,
    meaning: "the site still has people assigned or shifts, so it cannot be deleted",
};

/// The problem types of this domain, for the OpenAPI document.
pub const PROBLEMS: &[&ProblemType] = &[&SITE_EXISTS, &SITE_IN_USE];

impl Refused for SiteError {
    fn problem_type(&self) -> &'static ProblemType {
        match self {
            SiteError::Exists(_) => &SITE_EXISTS,
            SiteError::InUse(_) => &SITE_IN_USE,
        }
    }
}

fn site(
    id: String,
    name: String,
    geofence: &str,
    created_ms: i64,
    updated_ms: i64,
    fraud_policy: Option<&str>,
) -> Site {
    Site {
        id,
        name,
        geofence: serde_json::from_str(geofence).unwrap_or(serde_json::Value::Null),
        fraud_policy: fraud_policy.and_then(|p| serde_json::from_str(p).ok()),
        created_ms,
        updated_ms,
    }
}

/// A row of [`COLUMNS`].
fn read_site(r: &Row<'_>) -> Result<Site, StoreError> {
    Ok(site(
        r.get(0)?,
        r.get(1)?,
        &r.get::<String>(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get::<Option<String>>(5)?.as_deref(),
    ))
}

crate::server::store::exec::always_changed!(Site);

/// A site just created (no fraud policy yet).
fn created(id: &str, name: &str, geofence: &str, now: i64) -> Site {
    site(id.to_owned(), name.to_owned(), geofence, now, now, None)
}

/// What a `PATCH` changes: `None` leaves a field as it is; `fraud_policy: Some(None)` drops the
/// site's policy (its nodes go back to their own).
#[derive(Debug, Clone, Default)]
pub struct SiteChange {
    pub name: Option<String>,
    pub geofence: Option<String>,
    pub fraud_policy: Option<Option<String>>,
}

impl Store {
    /// A new site; [`SiteError::Exists`] if the id is taken.
    pub async fn create_site(
        &self,
        scope: &TenantScope,
        id: &str,
        name: &str,
        geofence: &str,
        audit: Audit,
    ) -> Result<Site, StoreError> {
        let (id, name, geofence) = (id.to_owned(), name.to_owned(), geofence.to_owned());
        in_tenant!(write self, scope, audit, |tx| insert(tx, &id, &name, &geofence))
    }

    pub async fn sites(&self, scope: &TenantScope) -> Result<Vec<Site>, StoreError> {
        in_tenant!(read self, scope, |tx| list(tx, None))
    }

    pub async fn site(&self, scope: &TenantScope, id: &str) -> Result<Option<Site>, StoreError> {
        let id = id.to_owned();
        in_tenant!(read self, scope, |tx| async {
            Ok::<_, StoreError>(list(tx, Some(&id)).await?.pop())
        })
    }

    /// Changes a site's name, geofence and/or fraud policy; `None` if the tenant has no such
    /// site.
    pub async fn update_site(
        &self,
        scope: &TenantScope,
        id: &str,
        change: SiteChange,
        audit: Audit,
    ) -> Result<Option<Site>, StoreError> {
        let id = id.to_owned();
        in_tenant!(write self, scope, audit, |tx| update(tx, &id, &change))
    }

    /// Deletes a site; `false` if there was none. Its events stay (they are facts).
    pub async fn delete_site(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        in_tenant!(write self, scope, audit, |tx| delete(tx, &id))
    }
}

async fn insert(tx: &impl Exec, id: &str, name: &str, geofence: &str) -> Result<Site, StoreError> {
    let now = now_ms();
    let n = tx
        .execute(
            "INSERT INTO sites (tenant_id, id, name, geofence, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING",
            &[&tx.tenant(), &id, &name, &geofence, &now],
        )
        .await?;
    if n == 0 {
        return Err(SiteError::Exists(id.to_owned()).into());
    }
    Ok(created(id, name, geofence, now))
}

/// The tenant's sites by id, or the one named.
async fn list(tx: &impl Exec, id: Option<&str>) -> Result<Vec<Site>, StoreError> {
    tx.query(
        &format!(
            "SELECT {COLUMNS} FROM sites
             WHERE tenant_id = $1 AND (CAST($2 AS TEXT) IS NULL OR id = $2) ORDER BY id"
        ),
        &[&tx.tenant(), &id],
        read_site,
    )
    .await
}

async fn update(tx: &impl Exec, id: &str, change: &SiteChange) -> Result<Option<Site>, StoreError> {
    let policy = change.fraud_policy.clone();
    tx.query_opt(
        &format!(
            "UPDATE sites SET name = coalesce(CAST($3 AS TEXT), name),
                geofence = coalesce(CAST($4 AS TEXT), geofence), updated_ms = $5,
                fraud_policy = CASE WHEN CAST($6 AS BOOLEAN) THEN CAST($7 AS TEXT) ELSE fraud_policy END
             WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
        ),
        &[
            &tx.tenant(),
            &id,
            &change.name,
            &change.geofence,
            &now_ms(),
            &policy.is_some(),
            &policy.flatten(),
        ],
        read_site,
    )
    .await
}

async fn delete(tx: &impl Exec, id: &str) -> Result<bool, StoreError> {
    let used = tx
        .query_opt(IN_USE, &[&tx.tenant(), &id], |r| r.get::<bool>(0))
        .await?;
    if used == Some(true) {
        return Err(SiteError::InUse(id.to_owned()).into());
    }
    let n = tx
        .execute(
            "DELETE FROM sites WHERE tenant_id = $1 AND id = $2",
            &[&tx.tenant(), &id],
        )
        .await?;
    Ok(n > 0)
}
