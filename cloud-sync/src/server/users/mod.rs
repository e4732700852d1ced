//! A tenant's users and their roles: the admin API and the storage (with refresh tokens and the
//! platform's own secrets).

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::{problem::Refusals, router::AppState};

pub(crate) mod api;
pub mod store;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::get, api::update))
}

/// The problem types of this domain each operation can refuse with (the OpenAPI document lists
/// them on the operation).
pub(crate) const REFUSALS: &[Refusals] = &[Refusals {
    operation: "post /api/v1/users",
    types: &[&store::EMAIL_TAKEN],
}];
