//! Attendance events for admins, in both API versions, and `GET /api/version`.
//!
//! - v1 (kept for older clients): `{"items": [...]}`, limit/offset paging.
//! - v2: `{"data": [...], "page": {"limit", "next_cursor"}}`, opaque keyset cursors.
//!
//! Both filter on the same whitelisted fields (`site_id`, `person_id`, `decision`, `from_ms`,
//! `to_ms`) and sort by a whitelisted one (`sort=-node_time_ms`, the default; `node_time_ms`,
//! `-received_ms`, `received_ms`); anything else in the query is refused with the field named.

use std::sync::Arc;

use axum::extract::{Path, Query, State, rejection::QueryRejection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::{
    attendance::query::{Cursor, EventFilter, MAX_PAGE, PageStart, Sort, SortKey},
    auth::identity::Caller,
    http::{problem::store_problem, router::AppState},
    users::store::Role,
};
use rollcall_protocol::wire::{Decision, EventPage, StoredEvent};
use rollcall_service::problem::Problem;

const READERS: &[Role] = &[Role::Owner, Role::Admin, Role::Supervisor, Role::Auditor];
const DEFAULT_PAGE: u32 = 100;
/// Deepest v1 offset: skipping is linear work for the database; v2's cursors are not.
const MAX_OFFSET: u32 = 1_000_000;

/// A page size from the query: 1..=1000, 100 when absent.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, Problem> {
    page_limit_up_to(limit, MAX_PAGE)
}

/// A page size from the query: 1..=`max`, 100 when absent.
pub(crate) fn page_limit_up_to(limit: Option<u32>, max: u32) -> Result<u32, Problem> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::bad_request(format!(
            "limit must be between 1 and {max}"
        )))
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct V1Query {
    /// Only events of this site.
    site_id: Option<String>,
    /// Only events of this person.
    person_id: Option<String>,
    /// Only events with this decision.
    #[param(inline)]
    decision: Option<Decision>,
    /// Events at or after this node time (ms since the Unix epoch).
    from_ms: Option<i64>,
    /// Events before this node time (ms since the Unix epoch); after `from_ms`.
    to_ms: Option<i64>,
    /// Order: `-node_time_ms` (default, newest first), `node_time_ms`, `-received_ms` or
    /// `received_ms`.
    #[param(pattern = "^-?(node_time_ms|received_ms)$")]
    sort: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Events to skip, at most 1000000 (page deeper with v2's cursors).
    #[param(minimum = 0, maximum = 1000000)]
    offset: Option<u32>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct V2Query {
    /// Only events of this site.
    site_id: Option<String>,
    /// Only events of this person.
    person_id: Option<String>,
    /// Only events with this decision.
    #[param(inline)]
    decision: Option<Decision>,
    /// Events at or after this node time (ms since the Unix epoch).
    from_ms: Option<i64>,
    /// Events before this node time (ms since the Unix epoch); after `from_ms`.
    to_ms: Option<i64>,
    /// Order: `-node_time_ms` (default, newest first), `node_time_ms`, `-received_ms` or
    /// `received_ms`; the same on every page of a walk.
    #[param(pattern = "^-?(node_time_ms|received_ms)$")]
    sort: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The previous page's `page.next_cursor`.
    cursor: Option<String>,
}

/// v2's envelope of a list: the items and how to get the next page.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventPageV2 {
    data: Vec<StoredEvent>,
    page: PageInfo,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PageInfo {
    limit: u32,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// v2's envelope of one object.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventV2 {
    data: StoredEvent,
}

/// A query string as `T`, or 400 naming what is wrong with it.
pub(crate) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    q.map(|Query(q)| q)
        .map_err(|e| Problem::bad_request(e.body_text()))
}

fn sort(raw: Option<&str>) -> Result<Sort, Problem> {
    match raw {
        None => Ok(Sort::default()),
        Some(s) => Sort::parse(s).ok_or_else(|| {
            Problem::bad_request(format!(
                "sort: `{s}` is not one of {}",
                Sort::ALLOWED.join(", ")
            ))
        }),
    }
}

fn filter(
    site_id: Option<String>,
    person_id: Option<String>,
    decision: Option<Decision>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    sort_by: Option<&str>,
) -> Result<EventFilter, Problem> {
    let sort = sort(sort_by)?;
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
        sort,
    })
}

/// Attendance events, newest first, by limit and offset (deprecated: use v2's cursors).
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(V1Query),
    security(("bearer" = [])),
    responses((status = 200, body = EventPage)))]
pub(crate) async fn list_v1(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<V1Query>, QueryRejection>,
) -> Result<axum::Json<EventPage>, Problem> {
    caller.require(READERS, "read attendance events")?;
    let q = query(q)?;
    let limit = page_limit(q.limit)?;
    let f = filter(
        q.site_id,
        q.person_id,
        q.decision,
        q.from_ms,
        q.to_ms,
        q.sort.as_deref(),
    )?;
    let offset = q.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(Problem::bad_request(format!(
            "offset must be at most {MAX_OFFSET}; page deeper with GET /api/v2/events and its cursors"
        )));
    }
    let items = state
        .store
        .events(&caller.scope, f, PageStart::Offset(offset), limit)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(EventPage { items }))
}

/// Attendance events, newest first, a page at a time by cursor.
#[utoipa::path(get, path = "/api/v2/events", tag = "events", params(V2Query),
    security(("bearer" = [])),
    responses((status = 200, body = EventPageV2)))]
pub(crate) async fn list_v2(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<V2Query>, QueryRejection>,
) -> Result<axum::Json<EventPageV2>, Problem> {
    caller.require(READERS, "read attendance events")?;
    let q = query(q)?;
    let limit = page_limit(q.limit)?;
    let f = filter(
        q.site_id,
        q.person_id,
        q.decision,
        q.from_ms,
        q.to_ms,
        q.sort.as_deref(),
    )?;
    let order = f.sort;
    let start = match q.cursor.as_deref() {
        None => PageStart::Offset(0),
        Some(c) => {
            let cursor = Cursor::decode(c)
                .ok_or_else(|| Problem::bad_request("cursor: not a cursor this server gave out"))?;
            if cursor.sort != order {
                return Err(Problem::bad_request(format!(
                    "cursor: it continues a walk in `sort={}`, not `{}`",
                    cursor.sort.as_str(),
                    order.as_str()
                )));
            }
            PageStart::After(cursor)
        }
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
                sort: order,
                key: match order.key {
                    SortKey::NodeTime => e.event.node_time_ms,
                    SortKey::Received => e.received_ms,
                },
                id: e.event.id.clone(),
            }
            .encode()
        });
    Ok(axum::Json(EventPageV2 {
        data,
        page: PageInfo { limit, next_cursor },
    }))
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
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "events",
    params(("id" = String, Path, description = "The event's id (a ULID)")),
    security(("bearer" = [])),
    responses((status = 200, body = StoredEvent)))]
pub(crate) async fn get_v1(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<StoredEvent>, Problem> {
    Ok(axum::Json(one(&state, &caller, &id).await?))
}

/// One event with its fraud reasons, in v2's envelope.
#[utoipa::path(get, path = "/api/v2/events/{id}", tag = "events",
    params(("id" = String, Path, description = "The event's id (a ULID)")),
    security(("bearer" = [])),
    responses((status = 200, body = EventV2)))]
pub(crate) async fn get_v2(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<EventV2>, Problem> {
    let data = one(&state, &caller, &id).await?;
    Ok(axum::Json(EventV2 { data }))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct VersionInfo {
    /// This server's release.
    server: &'static str,
    api_versions: Vec<&'static str>,
    current: &'static str,
    /// The node ↔ cloud sync protocol this server speaks.
    sync_protocol: u32,
    features: Features,
    deprecations: &'static [Deprecation],
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Features {
    /// `sqlite` or `postgres`.
    database: &'static str,
    /// Whether `<tenant>.<base domain>` hosts name their tenant.
    tenant_hosts: bool,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Deprecation {
    /// `METHOD /path`
    pub endpoint: &'static str,
    pub successor: &'static str,
    pub reason: &'static str,
}

/// What is deprecated: `/api/version` lists it, and the OpenAPI document marks its operations.
pub(crate) const DEPRECATIONS: &[Deprecation] = &[Deprecation {
    endpoint: "GET /api/v1/events",
    successor: "GET /api/v2/events",
    reason: "offset paging skips or repeats events while new ones arrive; v2 pages by cursor",
}];

/// What this server speaks: API versions, features, deprecations (no credential needed).
#[utoipa::path(get, path = "/api/version", tag = "meta",
    responses((status = 200, body = VersionInfo)))]
pub(crate) async fn version(State(state): State<Arc<AppState>>) -> axum::Json<VersionInfo> {
    axum::Json(VersionInfo {
        server: env!("CARGO_PKG_VERSION"),
        api_versions: vec!["v1", "v2"],
        current: "v2",
        sync_protocol: rollcall_protocol::wire::PROTOCOL_VERSION,
        features: Features {
            database: state.store.backend_name(),
            tenant_hosts: state.base_domain.is_some(),
        },
        deprecations: DEPRECATIONS,
    })
}
