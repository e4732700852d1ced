//! A tenant's sites and their geofences and fraud policies: the admin API and the storage.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::router::AppState;

pub(crate) mod api;
pub mod store;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get, api::update, api::delete))
}
