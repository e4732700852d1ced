//! Cloud → node pulls. A node follows the `people` stream with its own cursor: each page lists
//! the people changed after the cursor, each once, as the node's site sees them now (assigned
//! with their templates, unassigned, or erased), stamped with the cloud's hybrid logical clock.
//! It also reads its site's configuration (the geofence) each round, and follows the tenant's
//! card revocations with a second cursor.

use std::sync::Arc;

use axum::extract::{Query, State, rejection::QueryRejection};
use base64::Engine as _;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::server::{
    attendance::api as events_api,
    auth::extract::Node,
    http::{problem::store_problem, router::AppState},
    people::changes::PersonChangeRow,
};
use rollcall_protocol::wire::{
    MAX_PULL_PAGE, PROTOCOL_VERSION, PeoplePage, PersonChange, PersonState, RevocationPage,
    SiteConfig, SitePull, TemplateRecord,
};
use rollcall_service::problem::Problem;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PullQuery {
    /// The `cursor` of the node's last page (0, or absent, from the start).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    cursor: Option<u64>,
    /// Most items per page, 1-200 (default 200).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A node pulls the people of its site changed after its cursor.
#[utoipa::path(get, path = "/api/v1/sync/people", tag = "sync",
    params(PullQuery),
    security(("node_token" = [])),
    responses((status = 200, body = PeoplePage),
        (status = 400, description = "A bad cursor or limit", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn pull_people(
    State(state): State<Arc<AppState>>,
    Node {
        scope, row: node, ..
    }: Node,
    q: Result<Query<PullQuery>, QueryRejection>,
) -> Result<axum::Json<PeoplePage>, Problem> {
    let (cursor, limit) = page(q)?;
    let rows = state
        .store
        .person_changes_after(&scope, cursor, limit)
        .await
        .map_err(store_problem)?;
    let more = rows.len() == limit as usize;
    let next = rows.last().map_or(cursor, |r| r.change_id);
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(as_seen_by(&state, &scope, &node.site_id, row).await?);
    }
    Ok(axum::Json(PeoplePage {
        protocol: PROTOCOL_VERSION,
        items,
        cursor: next,
        more,
    }))
}

/// A pull's cursor and page size, checked.
fn page(q: Result<Query<PullQuery>, QueryRejection>) -> Result<(u64, u32), Problem> {
    let q = events_api::query(q)?;
    let limit = q.limit.unwrap_or(MAX_PULL_PAGE);
    if !(1..=MAX_PULL_PAGE).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_PULL_PAGE}"
        )));
    }
    let cursor = q.cursor.unwrap_or(0);
    if i64::try_from(cursor).is_err() {
        return Err(Problem::bad_request(format!(
            "cursor must be at most {}",
            i64::MAX
        )));
    }
    Ok((cursor, limit))
}

/// A node pulls the tenant's card revocations and reinstatements after its cursor: its readers
/// refuse a revoked card whoever holds it.
#[utoipa::path(get, path = "/api/v1/sync/revocations", tag = "sync",
    params(PullQuery),
    security(("node_token" = [])),
    responses((status = 200, body = RevocationPage),
        (status = 400, description = "A bad cursor or limit", body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn pull_revocations(
    State(state): State<Arc<AppState>>,
    Node { scope, .. }: Node,
    q: Result<Query<PullQuery>, QueryRejection>,
) -> Result<axum::Json<RevocationPage>, Problem> {
    let (cursor, limit) = page(q)?;
    let rows = state
        .store
        .revocations_after(&scope, cursor, limit)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(RevocationPage {
        protocol: PROTOCOL_VERSION,
        more: rows.len() == limit as usize,
        cursor: rows.last().map_or(cursor, |(c, _)| *c),
        items: rows.into_iter().map(|(_, r)| r).collect(),
    }))
}

/// A node reads its site's configuration: the geofence the cloud's admins drew, with its
/// version.
#[utoipa::path(get, path = "/api/v1/sync/site", tag = "sync",
    security(("node_token" = [])),
    responses((status = 200, body = SitePull)))]
pub(crate) async fn pull_site(
    State(state): State<Arc<AppState>>,
    Node {
        scope, row: node, ..
    }: Node,
) -> Result<axum::Json<SitePull>, Problem> {
    let site = state
        .store
        .site(&scope, &node.site_id)
        .await
        .map_err(store_problem)?
        .map(|s| SiteConfig {
            id: s.id,
            name: s.name,
            geofence_geojson: s.geofence.to_string(),
            fraud_policy_json: s.fraud_policy.map(|p| p.to_string()),
            updated_ms: s.updated_ms,
        });
    Ok(axum::Json(SitePull {
        protocol: PROTOCOL_VERSION,
        site,
    }))
}

/// A person's latest change as a node of `site_id` should apply it.
async fn as_seen_by(
    state: &AppState,
    scope: &crate::server::store::TenantScope,
    site_id: &str,
    row: PersonChangeRow,
) -> Result<PersonChange, Problem> {
    let state_now = if row.erased {
        PersonState::Erased
    } else {
        match state
            .store
            .person(scope, &row.person_id)
            .await
            .map_err(store_problem)?
        {
            Some(p) if p.active && p.site_ids.iter().any(|s| s == site_id) => {
                let templates = state
                    .store
                    .template_vectors(scope, &state.master_key, &p.id)
                    .await
                    .map_err(store_problem)?
                    .into_iter()
                    .map(|(info, vector)| TemplateRecord {
                        id: info.id,
                        model: info.model,
                        vector: base64::engine::general_purpose::STANDARD
                            .encode(crate::server::sealing::vector_bytes(&vector)),
                    })
                    .collect();
                PersonState::Assigned {
                    display_name: p.display_name,
                    templates,
                }
            }
            // Gone since (its erasure is a later change on a later page), inactive, or not at
            // this site.
            _ => PersonState::Unassigned,
        }
    };
    Ok(PersonChange {
        id: row.person_id,
        hlc: row.hlc,
        state: state_now,
    })
}
