//! A tenant's people: the admin API, their storage with sites, face templates (sealed) and
//! shifts, the feed of changes the nodes pull, and the merge of people the nodes push.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::router::AppState;

pub(crate) mod api;
pub mod changes;
pub mod shifts;
pub mod store;
pub mod templates;
pub mod uploads;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get, api::update, api::delete))
        .routes(routes!(api::list_templates, api::add_template))
        .routes(routes!(api::delete_template))
        .routes(routes!(api::history))
        .routes(routes!(api::list_shifts, api::create_shift))
        .routes(routes!(api::delete_shift))
}
