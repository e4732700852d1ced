//! A tenant's nodes: registration (and the handover of a replaced node), listing, revocation,
//! the tenant's signing key and signed config bundles; `status` whether each is online, lagging
//! or offline.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::{problem::Refusals, router::AppState};

pub(crate) mod api;
pub(crate) mod handover;
pub mod status;
pub(crate) mod store;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::register_node, api::list_nodes))
        .routes(routes!(api::revoke_node))
        .routes(routes!(api::whoami))
        .routes(routes!(api::signing_key))
        .routes(routes!(api::sign_config_bundle))
}

/// The problem types of this domain each operation can refuse with (the OpenAPI document lists
/// them on the operation).
pub(crate) const REFUSALS: &[Refusals] = &[Refusals {
    operation: "post /api/v1/nodes",
    types: &[&store::UNKNOWN_NODE, &store::NODE_OF_ANOTHER_SITE],
}];
