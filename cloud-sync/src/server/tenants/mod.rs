//! Tenants: the platform operator's API over them, their storage, and how a request is resolved
//! to one (its host name or header) with a short-lived cache.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::{problem::Refusals, router::AppState};

pub(crate) mod api;
pub(crate) mod cache;
pub mod resolve;
pub mod store;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::list_tenants, api::create_tenant))
        .routes(routes!(api::get_tenant, api::update_tenant))
}

/// The problem types of this domain each operation can refuse with (the OpenAPI document lists
/// them on the operation).
pub(crate) const REFUSALS: &[Refusals] = &[Refusals {
    operation: "post /api/v1/platform/tenants",
    types: &[&store::TENANT_EXISTS],
}];
