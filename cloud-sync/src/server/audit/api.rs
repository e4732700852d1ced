//! The audit API: the tenant's trail, newest first, a page at a time.

use std::sync::Arc;

use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::http::problem::store_problem;
use crate::server::http::router::AppState;
use crate::server::{
    attendance::api as events_api, audit::store::AuditEntry, auth::identity::Caller,
    users::store::Role,
};
use rollcall_service::problem::Problem;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Entries older than this entry id (the `next_before` of the previous page).
    before: Option<i64>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AuditPage {
    items: Vec<AuditEntry>,
    /// Pass as `before` for the next page; absent on the last page.
    next_before: Option<i64>,
}

/// The tenant's audit trail, newest first, a page at a time.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AuditPage)))]
pub(crate) async fn audit_log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<AuditPage>, Problem> {
    caller.require(
        &[Role::Owner, Role::Admin, Role::Auditor],
        "read the audit trail",
    )?;
    let Query(q) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let limit = events_api::page_limit(q.limit)?;
    let items = state
        .store
        .audit_entries(&caller.scope, q.before, limit)
        .await
        .map_err(store_problem)?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    Ok(axum::Json(AuditPage { items, next_before }))
}
