//! `/api/v1/job-schedules`: a tenant's schedules — cron in a time zone, a kind the API may
//! enqueue, what to do with missed slots — listed with their next run, created, changed,
//! paused, deleted and run now. `/api/v1/platform/job-schedules`: the platform's own (the
//! purges, the pruner), for platform operators.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::server::{
    auth::{extract::PlatformAdmin, identity::Caller},
    http::{problem::store_problem, router::AppState},
    jobs::{
        api::{EnqueuedJob, MANAGERS, READERS, path_id},
        cron::{Cron, time_zone},
        schedule::{Missed, NewSchedule, Schedule, ScheduleChange, ScheduleError},
        store::JobError,
    },
};
use rollcall_service::problem::{Json, Problem};

#[derive(Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    items: Vec<Schedule>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewScheduleRequest {
    /// Unique in the tenant: a letter or digit, then letters, digits, spaces, `.`, `_`, `-`.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")]
    name: String,
    /// Five cron fields (`0 6 * * mon-fri`) or a macro (`@daily`).
    #[schema(max_length = 200)]
    cron: String,
    /// A zone of the tz database; `UTC` by default.
    #[serde(default = "utc")]
    #[schema(max_length = 64)]
    time_zone: String,
    /// A kind the API may enqueue.
    kind: String,
    #[serde(default = "no_args")]
    #[schema(value_type = Object)]
    args: Value,
    /// `run_once` by default.
    #[serde(default = "run_once")]
    missed: Missed,
    #[serde(default)]
    paused: bool,
}

fn utc() -> String {
    "UTC".into()
}
fn no_args() -> Value {
    serde_json::json!({})
}
fn run_once() -> Missed {
    Missed::RunOnce
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleChangeRequest {
    #[schema(max_length = 200)]
    cron: Option<String>,
    #[schema(max_length = 64)]
    time_zone: Option<String>,
    #[schema(value_type = Option<Object>)]
    args: Option<Value>,
    missed: Option<Missed>,
    /// Pausing stops its slots; resuming goes on from the next slot (none missed is run).
    paused: Option<bool>,
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 100
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
}

/// The cron text and zone, checked (422 problems naming what is wrong).
fn checked(cron: &str, zone: &str) -> Result<Cron, Problem> {
    let refuse = |e: ScheduleError| store_problem(e.into());
    if cron.chars().count() > 200 {
        return Err(Problem::bad_request("cron is at most 200 characters"));
    }
    let parsed = Cron::parse(cron).map_err(|e| refuse(e.into()))?;
    let tz = time_zone(zone).map_err(|e| refuse(e.into()))?;
    if parsed
        .next_after(&tz, rollcall_service::clock::now_ms())
        .is_none()
    {
        return Err(refuse(ScheduleError::NeverRuns(cron.to_owned())));
    }
    Ok(parsed)
}

/// Refuses a kind the API may not enqueue, or arguments that do not fit it.
fn check_kind(state: &AppState, kind: &str, args: &Value) -> Result<(), Problem> {
    let registry = &state.jobs;
    if registry.kind(kind).is_some_and(|k| !k.options.by_api) || registry.kind(kind).is_none() {
        let allowed = registry
            .names()
            .filter(|n| registry.kind(n).is_some_and(|k| k.options.by_api))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(store_problem(
            JobError::UnknownKind(kind.to_owned(), allowed).into(),
        ));
    }
    registry
        .job(kind, args.clone())
        .map(drop)
        .map_err(|e| store_problem(e.into()))
}

/// The tenant's schedules, by name, each with its next run.
#[utoipa::path(get, path = "/api/v1/job-schedules", tag = "jobs",
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleList)))]
pub(crate) async fn list_schedules(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<ScheduleList>, Problem> {
    caller.require(READERS, "list job schedules")?;
    let items = state
        .store
        .schedules(&caller.scope)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(ScheduleList { items }))
}

/// Creates a schedule; its first run is the first slot from now.
#[utoipa::path(post, path = "/api/v1/job-schedules", tag = "jobs",
    request_body = NewScheduleRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Schedule)))]
pub(crate) async fn create_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<NewScheduleRequest>,
) -> Result<(StatusCode, axum::Json<Schedule>), Problem> {
    caller.require(MANAGERS, "create job schedules")?;
    if !valid_name(&req.name) {
        return Err(Problem::bad_request(
            "name: a letter or digit, then up to 99 letters, digits, spaces, `.`, `_` or `-`",
        ));
    }
    let cron = checked(&req.cron, &req.time_zone)?;
    check_kind(&state, &req.kind, &req.args)?;
    let audit = caller.audit(
        "job_schedule.create",
        Some(req.name.clone()),
        serde_json::json!({ "cron": req.cron, "time_zone": req.time_zone, "kind": req.kind }),
    );
    let made = state
        .store
        .create_schedule(
            &caller.scope,
            NewSchedule {
                name: req.name,
                cron,
                time_zone: req.time_zone,
                kind: req.kind,
                args: req.args,
                missed: req.missed,
                paused: req.paused,
            },
            audit,
        )
        .await
        .map_err(store_problem)?;
    Ok((StatusCode::CREATED, axum::Json(made)))
}

/// One schedule.
#[utoipa::path(get, path = "/api/v1/job-schedules/{id}", tag = "jobs",
    params(("id" = i64, Path, minimum = 1, description = "The schedule's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Schedule)))]
pub(crate) async fn get_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Schedule>, Problem> {
    caller.require(READERS, "see job schedules")?;
    let id = path_id(&id, "schedule")?;
    state
        .store
        .schedule(&caller.scope, id)
        .await
        .map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no schedule {id}")))
}

/// The change, checked against the schedule it changes.
fn change(
    state: &AppState,
    old: &Schedule,
    req: ScheduleChangeRequest,
) -> Result<ScheduleChange, Problem> {
    checked(
        req.cron.as_deref().unwrap_or(&old.cron),
        req.time_zone.as_deref().unwrap_or(&old.time_zone),
    )?;
    if let Some(args) = &req.args {
        state
            .jobs
            .job(&old.kind, args.clone())
            .map_err(|e| store_problem(e.into()))?;
    }
    Ok(ScheduleChange {
        cron: req.cron,
        time_zone: req.time_zone,
        args: req.args,
        missed: req.missed,
        paused: req.paused,
    })
}

/// Changes a schedule's expression, zone, arguments or missed-slot policy, or pauses or
/// resumes it; a new expression or zone, or a resume, goes on from the next slot after now.
#[utoipa::path(patch, path = "/api/v1/job-schedules/{id}", tag = "jobs",
    request_body = ScheduleChangeRequest,
    params(("id" = i64, Path, minimum = 1, description = "The schedule's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Schedule)))]
pub(crate) async fn update_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<ScheduleChangeRequest>,
) -> Result<axum::Json<Schedule>, Problem> {
    caller.require(MANAGERS, "change job schedules")?;
    let id = path_id(&id, "schedule")?;
    let missing = || Problem::not_found(format!("no schedule {id}"));
    let old = state
        .store
        .schedule(&caller.scope, id)
        .await
        .map_err(store_problem)?
        .ok_or_else(missing)?;
    let change = change(&state, &old, req)?;
    let audit = caller.audit(
        "job_schedule.update",
        Some(old.name.clone()),
        serde_json::json!({ "cron": change.cron, "time_zone": change.time_zone,
                            "paused": change.paused }),
    );
    state
        .store
        .update_schedule(Some((&caller.scope, audit)), id, change)
        .await
        .map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(missing)
}

/// Deletes a schedule (its jobs already enqueued stay).
#[utoipa::path(delete, path = "/api/v1/job-schedules/{id}", tag = "jobs",
    params(("id" = i64, Path, minimum = 1, description = "The schedule's id")),
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    caller.require(MANAGERS, "delete job schedules")?;
    let id = path_id(&id, "schedule")?;
    let audit = caller.audit("job_schedule.delete", Some(id.to_string()), Value::Null);
    if state
        .store
        .delete_schedule(&caller.scope, id, audit)
        .await
        .map_err(store_problem)?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found(format!("no schedule {id}")))
    }
}

/// The job a schedule enqueues when run now, by `actor`.
fn job_now(
    state: &AppState,
    s: &Schedule,
    actor: String,
) -> Result<crate::server::jobs::model::NewJob, Problem> {
    let mut job = state
        .jobs
        .job(&s.kind, s.args.clone())
        .map_err(|e| store_problem(e.into()))?;
    job.actor = Some(actor);
    Ok(job)
}

/// Enqueues the schedule's job now, outside its slots (its next run stays as it is).
#[utoipa::path(post, path = "/api/v1/job-schedules/{id}/run", tag = "jobs",
    params(("id" = i64, Path, minimum = 1, description = "The schedule's id")),
    security(("bearer" = [])),
    responses((status = 201, body = EnqueuedJob)))]
pub(crate) async fn run_schedule(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<EnqueuedJob>), Problem> {
    caller.require(MANAGERS, "run job schedules")?;
    let id = path_id(&id, "schedule")?;
    let s = state
        .store
        .schedule(&caller.scope, id)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no schedule {id}")))?;
    let mut job = job_now(&state, &s, caller.who())?;
    job.request_id = Some(caller.meta.request_id.clone());
    let audit = caller.audit("job_schedule.run", Some(s.name.clone()), Value::Null);
    let done = state
        .store
        .enqueue_job(&caller.scope, job, audit)
        .await
        .map_err(store_problem)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(EnqueuedJob {
            existing: done.existing,
            job: done.job,
        }),
    ))
}

/// The platform's schedules (the purges and the pruner), each with its next run.
#[utoipa::path(get, path = "/api/v1/platform/job-schedules", tag = "platform",
    security(("bearer" = [])),
    responses((status = 200, body = ScheduleList)))]
pub(crate) async fn list_platform_schedules(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
) -> Result<axum::Json<ScheduleList>, Problem> {
    let items = state
        .store
        .platform_schedules()
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(ScheduleList { items }))
}

async fn platform_one(state: &AppState, id: &str) -> Result<Schedule, Problem> {
    let id = path_id(id, "platform schedule")?;
    state
        .store
        .platform_schedules()
        .await
        .map_err(store_problem)?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Problem::not_found(format!("no platform schedule {id}")))
}

/// Changes or pauses one of the platform's schedules.
#[utoipa::path(patch, path = "/api/v1/platform/job-schedules/{id}", tag = "platform",
    request_body = ScheduleChangeRequest,
    params(("id" = i64, Path, minimum = 1, description = "The schedule's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Schedule)))]
pub(crate) async fn update_platform_schedule(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
    Path(id): Path<String>,
    Json(req): Json<ScheduleChangeRequest>,
) -> Result<axum::Json<Schedule>, Problem> {
    let old = platform_one(&state, &id).await?;
    let change = change(&state, &old, req)?;
    let done = state
        .store
        .update_schedule(None, old.id, change)
        .await
        .map_err(store_problem)?
        .ok_or_else(|| Problem::not_found(format!("no platform schedule {}", old.id)))?;
    tracing::info!(schedule = %done.name, cron = %done.cron, paused = done.paused, "platform schedule changed");
    Ok(axum::Json(done))
}

/// Enqueues one of the platform's schedules' jobs now.
#[utoipa::path(post, path = "/api/v1/platform/job-schedules/{id}/run", tag = "platform",
    params(("id" = i64, Path, minimum = 1, description = "The schedule's id")),
    security(("bearer" = [])),
    responses((status = 201, body = EnqueuedJob)))]
pub(crate) async fn run_platform_schedule(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<EnqueuedJob>), Problem> {
    let s = platform_one(&state, &id).await?;
    let job = job_now(&state, &s, "platform-admin".into())?;
    let done = state
        .store
        .enqueue_platform_job(job)
        .await
        .map_err(store_problem)?;
    tracing::info!(schedule = %s.name, job = done.job.id, "platform schedule run now");
    Ok((
        StatusCode::CREATED,
        axum::Json(EnqueuedJob {
            existing: done.existing,
            job: done.job,
        }),
    ))
}
