//! The router: the state every handler shares, and the routes — health, metrics, this document
//! and the tenant's CORS settings here, then each domain's own list — with their middleware.

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
use crate::server::{auth::tokens, http::metrics::Metrics, store::Store};
use rollcall_service::problem::Problem;

pub(crate) struct AppState {
    pub store: Store,
    pub admin_token_sha256: String,
    /// The scrape-only credential of `/metrics`, if one is set.
    pub metrics_token_sha256: Option<String>,
    /// The bootstrap tenant, administered with the bootstrap token.
    pub tenant: String,
    /// Hosts `<tenant>.<base_domain>` name their tenant.
    pub base_domain: Option<String>,
    pub access: tokens::AccessKeys,
    pub limits: crate::server::http::rate_limit::RateLimits,
    /// The bounded password hashing of logins and new passwords.
    pub hashers: crate::server::auth::hashers::Hashers,
    pub tenants: crate::server::tenants::cache::TenantCache,
    pub metrics: Metrics,
    /// Seals face templates (through each tenant's data key).
    pub master_key: crate::server::sealing::MasterKey,
    /// The job kinds this server runs.
    pub jobs: Arc<crate::server::jobs::registry::Registry>,
    /// This replica's real-time connections.
    pub hub: Arc<crate::server::realtime::hub::Hub>,
}

/// Every documented route: each `routes!` call (here and in each domain's `routes`) registers the
/// handlers of one path together with their OpenAPI operations, so the document cannot miss or
/// misspell a route.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    use crate::server::{
        attendance, audit, auth, cards,
        http::{cors, openapi},
        jobs, nodes, notifications, people, realtime, records, sites, sync, tenants, users,
    };
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(healthz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(cors::get_settings, cors::patch_settings))
        .merge(tenants::routes())
        .merge(auth::routes())
        .merge(users::routes())
        .merge(sites::routes())
        .merge(nodes::routes())
        .merge(people::routes())
        .merge(cards::routes())
        .merge(sync::routes())
        .merge(records::routes())
        .merge(attendance::routes())
        .merge(audit::routes())
        .merge(jobs::routes())
        .merge(realtime::routes())
        .merge(notifications::routes())
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
        .layer(axum::middleware::from_fn(
            crate::server::http::nul::refuse_in_uri,
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

/// Prometheus metrics (OpenMetrics text): sync batches and items, nodes, alarms, and the job
/// queues (attempts, run and wait times, rescues; depth counted from the database now). They
/// name every tenant and node, so they need the `--metrics-token` (or the platform
/// administrator's token); `/healthz` stays open.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    security(("bearer" = [])),
    responses((status = 200, description = "OpenMetrics text", body = String, content_type = "application/openmetrics-text"),
        (status = 401, description = "No or a wrong token", body = Problem, content_type = "application/problem+json")))]
async fn metrics(
    _: crate::server::auth::extract::Scraper,
    State(state): State<Arc<AppState>>,
) -> impl IntoResponse {
    match state.store.job_depths().await {
        Ok(depths) => state.metrics.jobs.set_depth(&state.jobs.queues(), &depths),
        Err(e) => tracing::warn!(error = %e, "counting the job queues failed"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
