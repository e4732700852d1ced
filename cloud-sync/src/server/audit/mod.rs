//! The audit trail: the entry every write appends, and the admin API that lists them.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::router::AppState;

pub(crate) mod api;
pub mod store;

pub use store::{Audit, AuditEntry};

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(api::audit_log))
}
