//! The alarms, node audit logs and voice verification records that nodes push (see
//! `store::records`), for the tenant's admins, supervisors and auditors.

use std::sync::Arc;

use axum::extract::{Path, Query, State, rejection::QueryRejection};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::{
    attendance::api as events_api,
    auth::identity::Caller,
    http::{problem::store_problem, router::AppState},
    records::store::{AlarmFilter, StoredAlarm, StoredNodeAudit, StoredVoice},
    users::store::Role,
};
use rollcall_service::problem::Problem;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlarmsQuery {
    /// Only this site's alarms.
    #[param(max_length = 64)]
    site_id: Option<String>,
    /// Only this node's alarms.
    #[param(max_length = 64)]
    node_id: Option<String>,
    /// Only alarms of this kind (`door_forced`, `reader_offline`, `tamper`, …).
    #[param(max_length = 40)]
    kind: Option<String>,
    /// Only alarms raised at or after this node time (ms since the epoch).
    from_ms: Option<i64>,
    /// Only alarms raised before this node time (ms since the epoch).
    to_ms: Option<i64>,
    /// The `next` of the previous page.
    #[param(max_length = 64)]
    cursor: Option<String>,
    /// Most items, 1-500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AlarmList {
    items: Vec<StoredAlarm>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A page cursor: the node time and id of the last alarm of the previous page.
fn cursor(raw: &str) -> Result<(i64, String), Problem> {
    raw.split_once('.')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_owned())))
        .filter(|(_, id)| id.len() == 26)
        .ok_or_else(|| Problem::bad_request("cursor: not a cursor this API gave out"))
}

/// The site hardware's alarms (door forced or held open, reader offline, tamper, …) as the
/// nodes pushed them, newest first by node time.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms",
    params(AlarmsQuery),
    security(("bearer" = [])),
    responses((status = 200, body = AlarmList)))]
pub(crate) async fn list_alarms(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<AlarmsQuery>, QueryRejection>,
) -> Result<axum::Json<AlarmList>, Problem> {
    caller.require(
        &[Role::Owner, Role::Admin, Role::Supervisor, Role::Auditor],
        "see the sites' alarms",
    )?;
    let q = events_api::query(q)?;
    let limit = events_api::page_limit_up_to(q.limit, 500)?;
    for (name, value, max) in [
        ("site_id", &q.site_id, 64),
        ("node_id", &q.node_id, 64),
        ("kind", &q.kind, 40),
        ("cursor", &q.cursor, 64),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(Problem::bad_request(format!(
                "{name} is at most {max} characters"
            )));
        }
    }
    if let (Some(from), Some(to)) = (q.from_ms, q.to_ms)
        && from >= to
    {
        return Err(Problem::bad_request("from_ms must be before to_ms"));
    }
    let filter = AlarmFilter {
        site_id: q.site_id,
        node_id: q.node_id,
        kind: q.kind,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        before: q.cursor.as_deref().map(cursor).transpose()?,
    };
    let items = state
        .store
        .alarms(&caller.scope, filter, limit)
        .await
        .map_err(store_problem)?;
    let next = (items.len() == limit as usize)
        .then(|| items.last())
        .flatten()
        .map(|a| format!("{}.{}", a.alarm.node_time_ms, a.alarm.id));
    Ok(axum::Json(AlarmList { items, next }))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct NodeAuditQuery {
    /// Only lines before this sequence number (the last `seq` of the previous page).
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    before: Option<u64>,
    /// Most items, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct NodeAuditList {
    items: Vec<StoredNodeAudit>,
}

/// What was done on a node (people deleted there, dead letters retried, people applied from
/// the cloud), as it pushed its audit log, newest first.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/audit", tag = "nodes",
    params(("id" = String, Path, description = "The node's id"), NodeAuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = NodeAuditList)))]
pub(crate) async fn node_audit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<NodeAuditQuery>, QueryRejection>,
) -> Result<axum::Json<NodeAuditList>, Problem> {
    caller.require(
        &[Role::Owner, Role::Admin, Role::Auditor],
        "read nodes' audit logs",
    )?;
    let (before, limit) = node_page(q)?;
    match state
        .store
        .node_audit(&caller.scope, &id, before, limit)
        .await
        .map_err(store_problem)?
    {
        Some(items) => Ok(axum::Json(NodeAuditList { items })),
        None => Err(Problem::not_found(format!("no node `{id}`"))),
    }
}

/// A per-node listing's `before` and page size, checked.
fn node_page(
    q: Result<Query<NodeAuditQuery>, QueryRejection>,
) -> Result<(Option<u64>, u32), Problem> {
    let q = events_api::query(q)?;
    let limit = events_api::page_limit(q.limit)?;
    if q.before
        .is_some_and(|b| b == 0 || i64::try_from(b).is_err())
    {
        return Err(Problem::bad_request(format!(
            "before must be between 1 and {}",
            i64::MAX
        )));
    }
    Ok((q.before, limit))
}

#[derive(Serialize, ToSchema)]
pub(crate) struct NodeVoiceList {
    items: Vec<StoredVoice>,
}

/// The voice verifications a node's clients reported (who claimed to speak, the outcome, the
/// client's score, the audio's digest and length), newest first; the audio itself is at
/// `GET /api/v1/voice-verifications/{id}/audio`.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/voice-verifications", tag = "nodes",
    params(("id" = String, Path, description = "The node's id"), NodeAuditQuery),
    security(("bearer" = [])),
    responses((status = 200, body = NodeVoiceList)))]
pub(crate) async fn node_voice(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<NodeAuditQuery>, QueryRejection>,
) -> Result<axum::Json<NodeVoiceList>, Problem> {
    caller.require(
        &[Role::Owner, Role::Admin, Role::Supervisor, Role::Auditor],
        "see voice verifications",
    )?;
    let (before, limit) = node_page(q)?;
    match state
        .store
        .node_voice(&caller.scope, &id, before, limit)
        .await
        .map_err(store_problem)?
    {
        Some(items) => Ok(axum::Json(NodeVoiceList { items })),
        None => Err(Problem::not_found(format!("no node `{id}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = "01HZZZZZZZZZZZZZZZZZZZZZZA";
        assert_eq!(
            cursor(&format!("1700000000000.{id}")).ok(),
            Some((1_700_000_000_000, id.to_owned()))
        );
        for bad in ["", "12", "x.01HZZZZZZZZZZZZZZZZZZZZZZA", "12.short"] {
            assert!(cursor(bad).is_err(), "{bad}");
        }
        let limit = |raw| events_api::page_limit_up_to(raw, 500);
        assert!(limit(Some(0)).is_err() && limit(Some(501)).is_err());
        assert_eq!(limit(None).ok(), Some(100));
    }
}
