//! A tenant's sites: id, name and geofence (GeoJSON, validated by the fraud engine's reader, the
//! same one the node uses), for the admins and, with the sync issue, for the nodes of the site.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{
    PgStore, SqliteStore, Store, StoreError, TenantScope,
    audit::Audit,
    blocking,
    postgres::{append_audit as pg_audit, scoped},
    sqlite::append_audit,
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

/// Whether people are assigned to a site or have shifts there (`?1` tenant, `?2` site).
const IN_USE: &str =
    "SELECT EXISTS (SELECT 1 FROM person_sites WHERE tenant_id = ?1 AND site_id = ?2)
                          OR EXISTS (SELECT 1 FROM shifts WHERE tenant_id = ?1 AND site_id = ?2)";

fn in_use(id: &str) -> StoreError {
    StoreError::Conflict(format!(
        "site `{id}` still has people assigned or shifts: move them first"
    ))
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

/// A row of [`COLUMNS`] as SQLite returns it.
fn sqlite_site(r: &rusqlite::Row<'_>) -> rusqlite::Result<Site> {
    Ok(site(
        r.get(0)?,
        r.get(1)?,
        &r.get::<_, String>(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get::<_, Option<String>>(5)?.as_deref(),
    ))
}

/// A row of [`COLUMNS`] as PostgreSQL returns it.
fn pg_site(r: &tokio_postgres::Row) -> Site {
    site(
        r.get(0),
        r.get(1),
        r.get::<_, &str>(2),
        r.get(3),
        r.get(4),
        r.get(5),
    )
}

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
    /// A new site; [`StoreError::Conflict`] if the id is taken.
    pub async fn create_site(
        &self,
        scope: &TenantScope,
        id: &str,
        name: &str,
        geofence: &str,
        audit: Audit,
    ) -> Result<Site, StoreError> {
        let (scope, id, name, geofence) = (
            scope.clone(),
            id.to_owned(),
            name.to_owned(),
            geofence.to_owned(),
        );
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| {
                    s.create_site(&scope, &id, &name, &geofence, &audit)
                })
                .await
            }
            Store::Postgres(p) => p.create_site(&scope, &id, &name, &geofence, &audit).await,
        }
    }

    pub async fn sites(&self, scope: &TenantScope) -> Result<Vec<Site>, StoreError> {
        let scope = scope.clone();
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.sites(&scope, None)).await,
            Store::Postgres(p) => p.sites(&scope, None).await,
        }
    }

    pub async fn site(&self, scope: &TenantScope, id: &str) -> Result<Option<Site>, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| Ok(s.sites(&scope, Some(&id))?.pop())).await,
            Store::Postgres(p) => Ok(p.sites(&scope, Some(&id)).await?.pop()),
        }
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
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => {
                blocking(s, move |s| s.update_site(&scope, &id, change, &audit)).await
            }
            Store::Postgres(p) => p.update_site(&scope, &id, change, &audit).await,
        }
    }

    /// Deletes a site; `false` if there was none. Its events stay (they are facts).
    pub async fn delete_site(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: Audit,
    ) -> Result<bool, StoreError> {
        let (scope, id) = (scope.clone(), id.to_owned());
        match self {
            Store::Sqlite(s) => blocking(s, move |s| s.delete_site(&scope, &id, &audit)).await,
            Store::Postgres(p) => p.delete_site(&scope, &id, &audit).await,
        }
    }
}

impl SqliteStore {
    fn create_site(
        &mut self,
        scope: &TenantScope,
        id: &str,
        name: &str,
        geofence: &str,
        audit: &Audit,
    ) -> Result<Site, StoreError> {
        let now = now_ms();
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO sites (tenant_id, id, name, geofence, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT DO NOTHING",
            params![scope.id, id, name, geofence, now],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("site `{id}` already exists")));
        }
        append_audit(&tx, scope.id, audit)?;
        tx.commit()?;
        Ok(created(id, name, geofence, now))
    }

    fn sites(&self, scope: &TenantScope, id: Option<&str>) -> Result<Vec<Site>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM sites WHERE tenant_id = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id"
        ))?;
        let rows = stmt.query_map(params![scope.id, id], sqlite_site)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn update_site(
        &mut self,
        scope: &TenantScope,
        id: &str,
        change: SiteChange,
        audit: &Audit,
    ) -> Result<Option<Site>, StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE sites SET name = coalesce(?3, name), geofence = coalesce(?4, geofence), updated_ms = ?5,
                fraud_policy = CASE WHEN ?6 THEN ?7 ELSE fraud_policy END
             WHERE tenant_id = ?1 AND id = ?2",
            params![
                scope.id,
                id,
                change.name,
                change.geofence,
                now_ms(),
                change.fraud_policy.is_some(),
                change.fraud_policy.flatten()
            ],
        )?;
        if n > 0 {
            append_audit(&tx, scope.id, audit)?;
        }
        let row = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM sites WHERE tenant_id = ?1 AND id = ?2"),
                params![scope.id, id],
                sqlite_site,
            )
            .optional()?;
        tx.commit()?;
        Ok(row)
    }

    fn delete_site(
        &mut self,
        scope: &TenantScope,
        id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let used: bool = tx.query_row(IN_USE, params![scope.id, id], |r| r.get(0))?;
        if used {
            return Err(in_use(id));
        }
        let n = tx.execute(
            "DELETE FROM sites WHERE tenant_id = ?1 AND id = ?2",
            params![scope.id, id],
        )?;
        if n > 0 {
            append_audit(&tx, scope.id, audit)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }
}

impl PgStore {
    async fn create_site(
        &self,
        scope: &TenantScope,
        id: &str,
        name: &str,
        geofence: &str,
        audit: &Audit,
    ) -> Result<Site, StoreError> {
        let now = now_ms();
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let n = tx
            .execute(
                "INSERT INTO sites (tenant_id, id, name, geofence, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT DO NOTHING",
                &[&scope.id, &id, &name, &geofence, &now],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("site `{id}` already exists")));
        }
        pg_audit(&tx, scope.id, audit).await?;
        tx.commit().await?;
        Ok(created(id, name, geofence, now))
    }

    async fn sites(&self, scope: &TenantScope, id: Option<&str>) -> Result<Vec<Site>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let rows = tx
            .query(
                &format!("SELECT {COLUMNS} FROM sites WHERE tenant_id = $1 AND ($2::text IS NULL OR id = $2) ORDER BY id"),
                &[&scope.id, &id],
            )
            .await?;
        tx.commit().await?;
        Ok(rows.iter().map(pg_site).collect())
    }

    async fn update_site(
        &self,
        scope: &TenantScope,
        id: &str,
        change: SiteChange,
        audit: &Audit,
    ) -> Result<Option<Site>, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE sites SET name = coalesce($3, name), geofence = coalesce($4, geofence), updated_ms = $5,
                        fraud_policy = CASE WHEN $6::boolean THEN $7::text ELSE fraud_policy END
                     WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
                ),
                &[
                    &scope.id,
                    &id,
                    &change.name,
                    &change.geofence,
                    &now_ms(),
                    &change.fraud_policy.is_some(),
                    &change.fraud_policy.flatten(),
                ],
            )
            .await?;
        if row.is_some() {
            pg_audit(&tx, scope.id, audit).await?;
        }
        tx.commit().await?;
        Ok(row.as_ref().map(pg_site))
    }

    async fn delete_site(
        &self,
        scope: &TenantScope,
        id: &str,
        audit: &Audit,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = scoped(&mut client, scope).await?;
        let used: bool = tx
            .query_one(&IN_USE.replace('?', "$"), &[&scope.id, &id])
            .await?
            .get(0);
        if used {
            return Err(in_use(id));
        }
        let n = tx
            .execute(
                "DELETE FROM sites WHERE tenant_id = $1 AND id = $2",
                &[&scope.id, &id],
            )
            .await?;
        if n > 0 {
            pg_audit(&tx, scope.id, audit).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }
}
