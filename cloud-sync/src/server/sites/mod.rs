//! A tenant's sites and their geofences and fraud policies: the admin API and the storage.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::{problem::Refusals, router::AppState};

pub(crate) mod api;
pub mod store;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get, api::update, api::delete))
}

/// The problem types of this domain each operation can refuse with (the OpenAPI document lists
/// them on the operation).
pub(crate) const REFUSALS: &[Refusals] = &[
    Refusals {
        operation: "post /api/v1/sites",
        types: &[&store::SITE_EXISTS],
    },
    Refusals {
        operation: "delete /api/v1/sites/{id}",
        types: &[&store::SITE_IN_USE],
    },
];
