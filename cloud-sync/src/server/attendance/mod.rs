//! Attendance events: the admin API (v1 with offsets, v2 with cursors) and how a list is
//! filtered, sorted and paged.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::router::AppState;

pub(crate) mod api;
pub mod query;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::version))
        .routes(routes!(api::list_v1))
        .routes(routes!(api::get_v1))
        .routes(routes!(api::list_v2))
        .routes(routes!(api::get_v2))
}
