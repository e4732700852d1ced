//! The cloud's side of a node's dead letters: what it refused from each node, and why.

use std::sync::Arc;

use axum::extract::{Path, Query, State, rejection::QueryRejection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::{
    attendance::api as events_api,
    auth::identity::Caller,
    http::{problem::store_problem, router::AppState},
    sync::rejections::Rejection,
    users::store::Role,
};
use rollcall_service::problem::Problem;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RejectionsQuery {
    /// Most items, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RejectionList {
    items: Vec<Rejection>,
}

/// Items the cloud refused from a node (the node holds them as dead letters until its admin
/// retries them), newest first.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/rejections", tag = "nodes",
    params(("id" = String, Path, description = "The node's id"), RejectionsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = RejectionList)))]
pub(crate) async fn node_rejections(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<RejectionsQuery>, QueryRejection>,
) -> Result<axum::Json<RejectionList>, Problem> {
    caller.require(
        &[Role::Owner, Role::Admin, Role::Auditor],
        "see what nodes had refused",
    )?;
    let limit = events_api::page_limit(events_api::query(q)?.limit)?;
    match state
        .store
        .node_rejections(&caller.scope, &id, limit)
        .await
        .map_err(store_problem)?
    {
        Some(items) => Ok(axum::Json(RejectionList { items })),
        None => Err(Problem::not_found(format!("no node `{id}`"))),
    }
}
