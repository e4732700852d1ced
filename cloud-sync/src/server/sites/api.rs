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

use crate::server::{
    auth::identity::Caller,
    http::{problem::store_problem, router::AppState},
    sites::store::{Site, SiteChange},
    tenants::resolve as tenancy,
    users::store::Role,
};
use rollcall_protocol::ids::SiteId;
use rollcall_service::problem::{Json, Problem};

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
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
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
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
        max_length = 200
    )]
    name: Option<String>,
    geofence: Option<serde_json::Value>,
    /// The fraud policy the site's nodes score with, as `rollcall_fraud::Policy` fields
    /// (`deny_at`, `weights`, `deny_outright`, `disabled`, `max_accuracy_m`, …; missing ones take
    /// their defaults); `null` drops it (the nodes go back to their own `[fraud]`).
    #[serde(default, deserialize_with = "crate::server::http::present")]
    #[schema(value_type = Option<Object>)]
    fraud_policy: Option<Option<serde_json::Value>>,
}

/// The policy as stored text, or why it is refused (the node's own checks, key by key).
fn checked_policy(value: &serde_json::Value) -> Result<String, Problem> {
    let policy: rollcall_fraud::Policy = serde_json::from_value(value.clone())
        .map_err(|e| Problem::bad_request(format!("fraud_policy: {e}")))?;
    policy
        .validate()
        .map_err(|(key, why)| Problem::bad_request(format!("fraud_policy.{key}: {why}")))?;
    serde_json::to_string(&policy).map_err(|e| Problem::bad_request(format!("fraud_policy: {e}")))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SiteList {
    items: Vec<Site>,
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
    if !SiteId::is_valid(&req.id) {
        return Err(Problem::bad_request(format!("id must be {}", SiteId::RULE)));
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

/// Renames a site, replaces its geofence, or sets or drops its fraud policy; its nodes pick
/// the change up within a sync round or two.
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
    let fraud_policy = match &patch.fraud_policy {
        None => None,
        Some(None) => Some(None),
        Some(Some(p)) => Some(Some(checked_policy(p)?)),
    };
    let audit = caller.audit(
        "site.update",
        Some(id.clone()),
        serde_json::json!({ "name": patch.name, "geofence_changed": geofence.is_some(),
                            "fraud_policy": fraud_policy.as_ref().map(|p| if p.is_some() { "set" } else { "dropped" }) }),
    );
    let change = SiteChange {
        name: patch.name.map(|n| n.trim().to_owned()),
        geofence,
        fraud_policy,
    };
    state
        .store
        .update_site(&caller.scope, &id, change, audit)
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
