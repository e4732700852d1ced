//! HTTP routes of the cloud: health, metrics, node registration, sync push, event listing.

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::problem::store_problem;
use crate::server::{
    attendance::api as events_api,
    auth::{
        identity::{self},
        tokens,
    },
    http::metrics::Metrics,
    store::Store,
    users::api as users_api,
};
use rollcall_service::problem::Problem;

pub(crate) struct AppState {
    pub store: Store,
    pub admin_token_sha256: String,
    /// The bootstrap tenant, administered with the bootstrap token.
    pub tenant: String,
    /// Hosts `<tenant>.<base_domain>` name their tenant.
    pub base_domain: Option<String>,
    pub access: tokens::AccessKeys,
    pub limits: crate::server::http::rate_limit::RateLimits,
    pub tenants: crate::server::tenants::cache::TenantCache,
    pub metrics: Metrics,
    /// Seals face templates (through each tenant's data key).
    pub master_key: crate::server::sealing::MasterKey,
}

/// Every documented route: each `routes!` call registers the handlers of one path together with
/// their OpenAPI operations, so the document cannot miss or misspell a route.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    use crate::server::{
        http::{cors, openapi},
        people::api as people_api,
        sites::api as sites_api,
    };
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(events_api::version))
        .routes(routes!(
            crate::server::nodes::api::register_node,
            crate::server::nodes::api::list_nodes
        ))
        .routes(routes!(crate::server::nodes::api::revoke_node))
        .routes(routes!(crate::server::sync::push::push))
        .routes(routes!(crate::server::nodes::api::whoami))
        .routes(routes!(crate::server::sync::pull::pull_people))
        .routes(routes!(crate::server::sync::pull::pull_site))
        .routes(routes!(crate::server::sync::pull::pull_revocations))
        .routes(routes!(
            crate::server::cards::api::revoke,
            crate::server::cards::api::list
        ))
        .routes(routes!(crate::server::cards::api::reinstate))
        .routes(routes!(
            crate::server::sync::rejections_api::node_rejections
        ))
        .routes(routes!(crate::server::records::api::node_audit))
        .routes(routes!(crate::server::records::api::node_voice))
        .routes(routes!(crate::server::records::voice_api::put_blob))
        .routes(routes!(crate::server::records::voice_api::audio))
        .routes(routes!(crate::server::records::api::list_alarms))
        .routes(routes!(events_api::list_v1))
        .routes(routes!(events_api::get_v1))
        .routes(routes!(events_api::list_v2))
        .routes(routes!(events_api::get_v2))
        .routes(routes!(crate::server::nodes::api::signing_key))
        .routes(routes!(crate::server::nodes::api::sign_config_bundle))
        .routes(routes!(
            crate::server::tenants::api::list_tenants,
            crate::server::tenants::api::create_tenant
        ))
        .routes(routes!(
            crate::server::tenants::api::get_tenant,
            crate::server::tenants::api::update_tenant
        ))
        .routes(routes!(identity::login))
        .routes(routes!(identity::refresh))
        .routes(routes!(identity::logout))
        .routes(routes!(identity::me))
        .routes(routes!(
            crate::server::auth::sessions::create,
            crate::server::auth::sessions::end
        ))
        .routes(routes!(users_api::list, users_api::create))
        .routes(routes!(users_api::get, users_api::update))
        .routes(routes!(crate::server::audit::api::audit_log))
        .routes(routes!(sites_api::list, sites_api::create))
        .routes(routes!(
            sites_api::get,
            sites_api::update,
            sites_api::delete
        ))
        .routes(routes!(cors::get_settings, cors::patch_settings))
        .routes(routes!(people_api::list, people_api::create))
        .routes(routes!(
            people_api::get,
            people_api::update,
            people_api::delete
        ))
        .routes(routes!(
            people_api::list_templates,
            people_api::add_template
        ))
        .routes(routes!(people_api::delete_template))
        .routes(routes!(people_api::history))
        .routes(routes!(people_api::list_shifts, people_api::create_shift))
        .routes(routes!(people_api::delete_shift))
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .route("/docs", get(crate::server::http::openapi::page))
        // Only on matched routes: a method a path does not have is 405, whatever its headers.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::server::http::idempotency::layer,
        ))
        .fallback(|| async { Problem::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
                "this path does not take this method; see /api/openapi.json",
            )
        })
        .layer(axum::middleware::from_fn(
            crate::server::http::rate_limit::headers,
        ))
        .layer(axum::middleware::from_fn(
            crate::server::http::negotiate::json_only,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::server::http::cors::layer,
        ))
        .layer(axum::middleware::from_fn(
            crate::server::http::request_meta::assign,
        ))
        .with_state(state)
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok` when the database answers.
    status: &'static str,
    service: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
}

/// Liveness and readiness: the database answers.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, body = Health), (status = 500, description = "The database does not answer", body = Problem, content_type = "application/problem+json")))]
async fn healthz(State(state): State<Arc<AppState>>) -> Result<axum::Json<Health>, Problem> {
    state.store.ping().await.map_err(store_problem)?;
    Ok(axum::Json(Health {
        status: "ok",
        service: "rollcall-cloud",
        database: state.store.backend_name(),
    }))
}

/// Prometheus metrics (OpenMetrics text): requests, sync batches and items.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text")))]
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
