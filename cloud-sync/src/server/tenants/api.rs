//! The platform operator's API over tenants: list, create (with the first owner), read, change.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::server::http::problem::store_problem;
use crate::server::http::router::AppState;
use crate::server::{
    auth::extract::PlatformAdmin,
    store::{Tenant, TenantStatus},
    tenants::resolve as tenancy,
    users::{
        api as users_api,
        store::{Role, User},
    },
};
use rollcall_service::problem::{Json, Problem};

#[derive(Serialize, ToSchema)]
pub(crate) struct TenantList {
    items: Vec<Tenant>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$")]
    slug: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
        max_length = 200
    )]
    name: String,
    /// The tenant's first owner, who then manages its users.
    owner: Option<NewOwner>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOwner {
    email: String,
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
        max_length = 200
    )]
    display_name: String,
    #[schema(min_length = 12)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantPatch {
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b\\u200e\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$",
        max_length = 200
    )]
    name: Option<String>,
    status: Option<TenantStatus>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedTenant {
    #[serde(flatten)]
    tenant: Tenant,
    /// The first owner, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<User>,
}

/// Every tenant (platform operators only).
#[utoipa::path(get, path = "/api/v1/platform/tenants", tag = "platform",
    security(("bearer" = [])),
    responses((status = 200, body = TenantList)))]
pub(crate) async fn list_tenants(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
) -> Result<axum::Json<TenantList>, Problem> {
    let items = state.store.tenants().await.map_err(store_problem)?;
    Ok(axum::Json(TenantList { items }))
}

/// A new tenant, active at once. Its slug is permanent (it names the tenant's host and is part
/// of its nodes' credentials).
#[utoipa::path(post, path = "/api/v1/platform/tenants", tag = "platform", request_body = NewTenant,
    security(("bearer" = [])),
    responses((status = 201, body = CreatedTenant)))]
pub(crate) async fn create_tenant(
    State(state): State<Arc<AppState>>,
    PlatformAdmin(meta): PlatformAdmin,
    Json(req): Json<NewTenant>,
) -> Result<impl IntoResponse, Problem> {
    if !tenancy::valid_slug(&req.slug) {
        return Err(Problem::bad_request(
            "slug must be 2-63 characters of a-z, 0-9 and -, not starting or ending with -",
        ));
    }
    tenancy::check_name(&req.name)?;
    // Validate the owner before anything is written.
    let owner = match req.owner {
        Some(o) => {
            let hashers = &state.hashers;
            Some(
                users_api::prepare_user(
                    hashers,
                    &o.email,
                    &o.display_name,
                    Role::Owner,
                    o.password,
                )
                .await?,
            )
        }
        None => None,
    };
    let tenant = state
        .store
        .create_tenant(
            &req.slug,
            req.name.trim(),
            meta.audit(
                "platform".into(),
                "tenant.create",
                Some(req.slug.clone()),
                serde_json::json!({ "name": req.name.trim() }),
            ),
        )
        .await
        .map_err(store_problem)?;
    state.tenants.forget(&tenant.slug);
    tracing::info!(tenant = %tenant.slug, "tenant created");
    let mut created = CreatedTenant {
        tenant,
        owner: None,
    };
    if let (Some(owner), Some(scope)) = (owner, created.tenant.scope()) {
        let user = state
            .store
            .create_user(
                &scope,
                owner.clone(),
                meta.audit(
                    "platform".into(),
                    "user.create",
                    Some(owner.id),
                    serde_json::json!({ "role": "owner" }),
                ),
            )
            .await
            .map_err(store_problem)?;
        created.owner = Some(user);
    }
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// One tenant (platform operators only).
#[utoipa::path(get, path = "/api/v1/platform/tenants/{slug}", tag = "platform",
    params(("slug" = String, Path, description = "The tenant's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Tenant)))]
pub(crate) async fn get_tenant(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
    Path(slug): Path<String>,
) -> Result<axum::Json<Tenant>, Problem> {
    state
        .store
        .tenant(&slug)
        .await
        .map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no tenant `{slug}`")))
}

/// Renames, suspends or reactivates a tenant. A suspended tenant's nodes and administrators get
/// 403 `tenant-suspended` on every request until it is reactivated; nothing is deleted.
#[utoipa::path(patch, path = "/api/v1/platform/tenants/{slug}", tag = "platform", request_body = TenantPatch,
    params(("slug" = String, Path, description = "The tenant's slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Tenant)))]
pub(crate) async fn update_tenant(
    State(state): State<Arc<AppState>>,
    PlatformAdmin(meta): PlatformAdmin,
    Path(slug): Path<String>,
    Json(patch): Json<TenantPatch>,
) -> Result<axum::Json<Tenant>, Problem> {
    if let Some(name) = &patch.name {
        tenancy::check_name(name)?;
    }
    let status = patch.status;
    let tenant = state
        .store
        .update_tenant(
            &slug,
            patch.name.map(|n| n.trim().to_owned()),
            status,
            meta.audit(
                "platform".into(),
                "tenant.update",
                Some(slug.clone()),
                serde_json::json!({ "status": status.map(TenantStatus::as_str) }),
            ),
        )
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no tenant `{slug}`")))?;
    state.tenants.forget(&slug);
    if let Some(status) = status {
        tracing::warn!(tenant = %slug, status = status.as_str(), "tenant status changed");
    }
    Ok(axum::Json(tenant))
}
