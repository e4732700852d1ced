//! Attendance events for admins, in both API versions, and `GET /api/version`.
//!
//! - v1 (kept for older clients): `{"items": [...]}`, limit/offset paging.
//! - v2: `{"data": [...], "page": {"limit", "next_cursor"}}`, opaque keyset cursors.
//!
//! Both filter on the same whitelisted fields (`site_id`, `person_id`, `decision`, `from_ms`,
//! `to_ms`); anything else in the query is refused with the field named.

use std::sync::Arc;

use axum::extract::{Path, Query, State, rejection::QueryRejection};
use serde::Deserialize;

use super::{
    api::{AppState, store_problem},
    identity::Caller,
    store::{
        events_query::{Cursor, EventFilter, MAX_PAGE, PageStart},
        users::Role,
    },
};
use crate::{
    problem::Problem,
    protocol::{Decision, EventPage, StoredEvent},
};

const READERS: &[Role] = &[Role::Owner, Role::Admin, Role::Supervisor, Role::Auditor];
const DEFAULT_PAGE: u32 = 100;

/// A page size from the query: 1..=1000, 100 when absent.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, Problem> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct V1Query {
    site_id: Option<String>,
    person_id: Option<String>,
    decision: Option<Decision>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    limit: Option<u32>,
    offset: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct V2Query {
    site_id: Option<String>,
    person_id: Option<String>,
    decision: Option<Decision>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::bad_request(e.body_text()))
}

fn filter(
    site_id: Option<String>,
    person_id: Option<String>,
    decision: Option<Decision>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> Result<EventFilter, Problem> {
    if let (Some(from), Some(to)) = (from_ms, to_ms)
        && from >= to
    {
        return Err(Problem::bad_request("from_ms must be before to_ms"));
    }
    Ok(EventFilter {
        site_id,
        person_id,
        decision,
        from_ms,
        to_ms,
    })
}

pub(crate) async fn list_v1(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<V1Query>, QueryRejection>,
) -> Result<axum::Json<EventPage>, Problem> {
    caller.require(READERS, "read attendance events")?;
    let q = query(q)?;
    let limit = page_limit(q.limit)?;
    let f = filter(q.site_id, q.person_id, q.decision, q.from_ms, q.to_ms)?;
    let items = state
        .store
        .events(
            &caller.scope,
            f,
            PageStart::Offset(q.offset.unwrap_or(0)),
            limit,
        )
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(EventPage { items }))
}

pub(crate) async fn list_v2(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<V2Query>, QueryRejection>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    caller.require(READERS, "read attendance events")?;
    let q = query(q)?;
    let limit = page_limit(q.limit)?;
    let f = filter(q.site_id, q.person_id, q.decision, q.from_ms, q.to_ms)?;
    let start = match q.cursor.as_deref() {
        None => PageStart::Offset(0),
        Some(c) => PageStart::After(
            Cursor::decode(c)
                .ok_or_else(|| Problem::bad_request("cursor: not a cursor this server gave out"))?,
        ),
    };
    let data = state
        .store
        .events(&caller.scope, f, start, limit)
        .await
        .map_err(store_problem)?;
    let next_cursor = (data.len() == limit as usize)
        .then(|| data.last())
        .flatten()
        .map(|e| {
            Cursor {
                node_time_ms: e.event.node_time_ms,
                id: e.event.id.clone(),
            }
            .encode()
        });
    Ok(axum::Json(serde_json::json!({
        "data": data,
        "page": { "limit": limit, "next_cursor": next_cursor },
    })))
}

async fn one(state: &AppState, caller: &Caller, id: &str) -> Result<StoredEvent, Problem> {
    caller.require(READERS, "read attendance events")?;
    state
        .store
        .event(&caller.scope, id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no event `{id}`")))
}

/// One event with its fraud reasons.
pub(crate) async fn get_v1(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<StoredEvent>, Problem> {
    Ok(axum::Json(one(&state, &caller, &id).await?))
}

pub(crate) async fn get_v2(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<serde_json::Value>, Problem> {
    let event = one(&state, &caller, &id).await?;
    Ok(axum::Json(serde_json::json!({ "data": event })))
}

/// What this server speaks: API versions, features, deprecations (no credential needed).
pub(crate) async fn version(State(state): State<Arc<AppState>>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "server": env!("CARGO_PKG_VERSION"),
        "api_versions": ["v1", "v2"],
        "current": "v2",
        "sync_protocol": crate::protocol::PROTOCOL_VERSION,
        "features": {
            "database": state.store.backend_name(),
            "tenant_hosts": state.base_domain.is_some(),
        },
        "deprecations": [{
            "endpoint": "GET /api/v1/events",
            "successor": "GET /api/v2/events",
            "reason": "offset paging skips or repeats events while new ones arrive; v2 pages by cursor",
        }],
    }))
}
