//! Node ↔ cloud sync: the push (its body, decoded and bounded, and its one transaction), the
//! pulls of people, site and revocations, and the refusals a node's admin sees.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::router::AppState;

pub(crate) mod body;
pub(crate) mod ingest;
pub(crate) mod pull;
pub(crate) mod push;
pub mod rejections;
pub(crate) mod rejections_api;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(push::push))
        .routes(routes!(pull::pull_people))
        .routes(routes!(pull::pull_site))
        .routes(routes!(pull::pull_revocations))
        .routes(routes!(rejections_api::node_rejections))
}
