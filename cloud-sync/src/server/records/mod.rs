//! What nodes push besides events: alarms, their audit lines and voice verification records
//! with their audio; the admin API and the storage.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::router::AppState;

pub(crate) mod api;
pub mod plan;
pub mod store;
pub mod voice;
pub(crate) mod voice_api;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::node_audit))
        .routes(routes!(api::node_voice))
        .routes(routes!(voice_api::put_blob))
        .routes(routes!(voice_api::audio))
        .routes(routes!(api::list_alarms))
}
