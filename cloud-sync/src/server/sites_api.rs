//! `/api/v1/sites`: a tenant's sites and their geofences. The geofence is checked with the fraud
//! engine's GeoJSON reader — the very one the node applies — so a fence the cloud accepts is one
//! the node can enforce; a bad one is refused with where and why.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    api::{AppState, store_problem},
    identity::Caller,
    store::{sites::Site, users::Role},
    tenancy,
};
use crate::problem::{Json, Problem};

const MANAGERS: &[Role] = &[Role::Owner, Role::Admin];
const READERS: &[Role] = &[Role::Owner, Role::Admin, Role::Supervisor, Role::Auditor];
/// Largest geofence document accepted.
const MAX_GEOFENCE_BYTES: usize = 256 * 1024;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSite {
    /// What nodes carry in `node.site_id`: 1-64 of a-z, 0-9, `-`, `_`.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    id: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 200
    )]
    name: String,
    /// GeoJSON (RFC 7946): a Polygon, a MultiPolygon, a Feature of either, or a
    /// FeatureCollection; each polygon is one area of the site.
    geofence: serde_json::Value,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SitePatch {
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        max_length = 200
    )]
    name: Option<String>,
    geofence: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SiteList {
    items: Vec<Site>,
}

/// Site ids are what nodes carry in `node.site_id`: 1–64 of `a-z`, `0-9`, `-`, `_`.
pub fn valid_site_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The geofence as stored text, or why it is refused.
fn checked_geofence(value: &serde_json::Value) -> Result<String, Problem> {
    let text = value.to_string();
    if text.len() > MAX_GEOFENCE_BYTES {
        return Err(Problem::bad_request(format!(
            "geofence: at most {MAX_GEOFENCE_BYTES} bytes of GeoJSON"
        )));
    }
    rollcall_fraud::geojson::parse(&text)
        .map_err(|e| Problem::bad_request(format!("geofence: {e}")))?;
    Ok(text)
}

/// The tenant's sites with their geofences.
#[utoipa::path(get, path = "/api/v1/sites", tag = "sites",
    security(("bearer" = [])),
    responses((status = 200, body = SiteList)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<SiteList>, Problem> {
    caller.require(READERS, "list sites")?;
    let items = state
        .store
        .sites(&caller.scope)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(SiteList { items }))
}

/// A new site; its geofence is checked by the same reader the node uses.
#[utoipa::path(post, path = "/api/v1/sites", tag = "sites", request_body = NewSite,
    security(("bearer" = [])),
    responses((status = 201, body = Site)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<NewSite>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(MANAGERS, "create sites")?;
    if !valid_site_id(&req.id) {
        return Err(Problem::bad_request(
            "id must be 1-64 characters of a-z, 0-9, - or _",
        ));
    }
    tenancy::check_name(&req.name)?;
    let geofence = checked_geofence(&req.geofence)?;
    let audit = caller.audit(
        "site.create",
        Some(req.id.clone()),
        serde_json::json!({ "name": req.name.trim() }),
    );
    let site = state
        .store
        .create_site(&caller.scope, &req.id, req.name.trim(), &geofence, audit)
        .await
        .map_err(store_problem)?;
    Ok((StatusCode::CREATED, axum::Json(site)))
}

/// One site.
#[utoipa::path(get, path = "/api/v1/sites/{id}", tag = "sites",
    params(("id" = String, Path, description = "The site's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Site)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Site>, Problem> {
    caller.require(READERS, "see sites")?;
    state
        .store
        .site(&caller.scope, &id)
        .await
        .map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no site `{id}`")))
}

/// Renames a site or replaces its geofence.
#[utoipa::path(patch, path = "/api/v1/sites/{id}", tag = "sites", request_body = SitePatch,
    params(("id" = String, Path, description = "The site's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Site)))]
pub(crate) async fn update(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(patch): Json<SitePatch>,
) -> Result<axum::Json<Site>, Problem> {
    caller.require(MANAGERS, "change sites")?;
    if let Some(name) = &patch.name {
        tenancy::check_name(name)?;
    }
    let geofence = patch.geofence.as_ref().map(checked_geofence).transpose()?;
    let audit = caller.audit(
        "site.update",
        Some(id.clone()),
        serde_json::json!({ "name": patch.name, "geofence_changed": geofence.is_some() }),
    );
    state
        .store
        .update_site(
            &caller.scope,
            &id,
            patch.name.map(|n| n.trim().to_owned()),
            geofence,
            audit,
        )
        .await
        .map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no site `{id}`")))
}

/// Deletes a site (its events stay: they are facts).
#[utoipa::path(delete, path = "/api/v1/sites/{id}", tag = "sites",
    params(("id" = String, Path, description = "The site's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(MANAGERS, "delete sites")?;
    let audit = caller.audit("site.delete", Some(id.clone()), serde_json::Value::Null);
    if state
        .store
        .delete_site(&caller.scope, &id, audit)
        .await
        .map_err(store_problem)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no site `{id}`")))
    }
}
