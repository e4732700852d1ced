//! `/api/v1/jobs`: a tenant's background jobs — list by state, kind and queue; one with its
//! attempts, errors and result; enqueue a kind the API may enqueue (one, or a batch of up to
//! 1000 in one transaction); retry now, cancel, re-drive
//! every discarded job of a kind. `/api/v1/platform/job-queues/{name}`: pause or resume a queue
//! on every replica (platform operators).

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State, rejection::QueryRejection},
    http::StatusCode,
    response::IntoResponse,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::server::{
    attendance::api::{page_limit, query},
    auth::{extract::PlatformAdmin, identity::Caller},
    http::{problem::store_problem, router::AppState},
    jobs::{
        admin::JobFilter,
        model::{Job, JobState},
        store::JobError,
    },
    users::store::Role,
};
use rollcall_service::problem::{Json, Problem};

pub(crate) const MANAGERS: &[Role] = &[Role::Owner, Role::Admin];
pub(crate) const READERS: &[Role] = &[Role::Owner, Role::Admin, Role::Auditor];

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobQuery {
    state: Option<JobState>,
    kind: Option<String>,
    queue: Option<String>,
    /// Jobs older than this id (the `next_before` of the previous page).
    #[param(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    before: Option<i64>,
    /// 1-1000, 100 by default.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct JobList {
    items: Vec<Job>,
    /// Pass as `before` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<i64>,
}

/// The tenant's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    security(("bearer" = [])),
    responses((status = 200, body = JobList)))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    q: Result<Query<JobQuery>, QueryRejection>,
) -> Result<axum::Json<JobList>, Problem> {
    caller.require(READERS, "list jobs")?;
    let q = query(q)?;
    let limit = page_limit(q.limit)?;
    if q.before.is_some_and(|b| b < 1) {
        return Err(Problem::bad_request("before must be a job id (1 or more)"));
    }
    let items = state
        .store
        .jobs(
            &caller.scope,
            JobFilter {
                state: q.state,
                kind: q.kind,
                queue: q.queue,
                before_id: q.before,
                limit,
            },
        )
        .await
        .map_err(store_problem)?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|j| j.id))
        .flatten();
    Ok(axum::Json(JobList { items, next_before }))
}

/// One job with its attempts' errors and its result.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs",
    params(("id" = i64, Path, minimum = 1, description = "The job's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Job)))]
pub(crate) async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Job>, Problem> {
    caller.require(READERS, "see jobs")?;
    let id = job_id(&id)?;
    state
        .store
        .job(&caller.scope, id)
        .await
        .map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no job {id}")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewJobRequest {
    /// A kind this server runs and lets the API enqueue (`probe`).
    kind: String,
    /// The kind's arguments (`{}` if left out).
    #[serde(default = "no_args")]
    #[schema(value_type = Object)]
    args: serde_json::Value,
    /// 0 (first) to 9.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9)]
    priority: i32,
    /// Not before this time (ms since the Unix epoch).
    scheduled_ms: Option<i64>,
    /// At most one live job of the kind holds this key: another enqueue gets that job back.
    #[schema(min_length = 1, max_length = 200)]
    unique_key: Option<String>,
    /// Jobs of the tenant this one waits for: a chain's next step, or a group's callback.
    waits: Option<crate::server::jobs::waits::Waits>,
}

fn no_args() -> serde_json::Value {
    serde_json::json!({})
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EnqueuedJob {
    /// True when the unique key was held: `job` is the job holding it and nothing was added.
    pub(crate) existing: bool,
    pub(crate) job: Job,
}

/// The job `req` asks for, enqueued by `caller`; refused if the kind is not one the API may
/// enqueue or its fields do not fit.
fn new_job(
    state: &AppState,
    caller: &Caller,
    req: NewJobRequest,
) -> Result<crate::server::jobs::model::NewJob, Problem> {
    if !(0..=9).contains(&req.priority) {
        return Err(Problem::bad_request("priority must be between 0 and 9"));
    }
    if req
        .unique_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.chars().count() > 200)
    {
        return Err(Problem::bad_request("unique_key must be 1-200 characters"));
    }
    let registry = &state.jobs;
    let not_by_api = registry.kind(&req.kind).is_some_and(|k| !k.options.by_api);
    let mut job = if not_by_api {
        Err(JobError::UnknownKind(
            req.kind.clone(),
            registry
                .names()
                .filter(|n| registry.kind(n).is_some_and(|k| k.options.by_api))
                .collect::<Vec<_>>()
                .join(", "),
        ))
    } else {
        registry.job(&req.kind, req.args)
    }
    .map_err(|e| store_problem(e.into()))?;
    job.priority = req.priority;
    job.scheduled_ms = req.scheduled_ms;
    job.unique_key = req.unique_key;
    job.waits = req.waits;
    job.actor = Some(caller.who());
    job.request_id = Some(caller.meta.request_id.clone());
    Ok(job)
}

/// Enqueues a job (201), or answers with the live job holding its unique key (200).
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = NewJobRequest,
    security(("bearer" = [])),
    responses((status = 201, body = EnqueuedJob), (status = 200, body = EnqueuedJob)))]
pub(crate) async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<NewJobRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(MANAGERS, "enqueue jobs")?;
    let job = new_job(&state, &caller, req)?;
    let audit = caller.audit(
        "job.enqueue",
        Some(job.kind.clone()),
        serde_json::json!({ "queue": job.queue }),
    );
    let done = state
        .store
        .enqueue_job(&caller.scope, job, audit)
        .await
        .map_err(store_problem)?;
    let status = if done.existing {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        axum::Json(EnqueuedJob {
            existing: done.existing,
            job: done.job,
        }),
    ))
}

/// Most jobs one batch enqueues.
pub const MAX_BATCH: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewJobBatch {
    /// 1 to 1000 jobs, enqueued all or none.
    #[schema(min_items = 1, max_items = 1000)]
    jobs: Vec<NewJobRequest>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EnqueuedBatch {
    /// One answer a job, in the order asked.
    jobs: Vec<EnqueuedJob>,
}

/// Enqueues up to 1000 jobs in one transaction — all of them or, if one is refused, none —
/// with one audit entry (201); each answer says whether its unique key was held.
#[utoipa::path(post, path = "/api/v1/jobs/batch", tag = "jobs", request_body = NewJobBatch,
    security(("bearer" = [])),
    responses((status = 201, body = EnqueuedBatch)))]
pub(crate) async fn create_batch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<NewJobBatch>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(MANAGERS, "enqueue jobs")?;
    if req.jobs.is_empty() || req.jobs.len() > MAX_BATCH {
        return Err(Problem::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} jobs"
        )));
    }
    let mut jobs = Vec::with_capacity(req.jobs.len());
    for (i, r) in req.jobs.into_iter().enumerate() {
        jobs.push(new_job(&state, &caller, r).map_err(|mut p| {
            p.detail = format!("jobs[{i}]: {}", p.detail);
            p
        })?);
    }
    let audit = caller.audit(
        "job.enqueue_batch",
        None,
        serde_json::json!({ "jobs": jobs.len() }),
    );
    let done = state
        .store
        .enqueue_jobs(&caller.scope, jobs, audit)
        .await
        .map_err(store_problem)?;
    let jobs = done
        .into_iter()
        .map(|e| EnqueuedJob {
            existing: e.existing,
            job: e.job,
        })
        .collect();
    Ok((StatusCode::CREATED, axum::Json(EnqueuedBatch { jobs })))
}

/// Runs a failed, discarded, cancelled or completed job again now (with one more attempt if
/// it had used them all).
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = i64, Path, minimum = 1, description = "The job's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Job)))]
pub(crate) async fn retry(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Job>, Problem> {
    act(&state, &caller, job_id(&id)?, Act::Retry).await
}

/// Cancels a job that has not finished; a running attempt is stopped at its next lease renewal
/// and cannot complete.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = i64, Path, minimum = 1, description = "The job's id")),
    security(("bearer" = [])),
    responses((status = 200, body = Job)))]
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Job>, Problem> {
    act(&state, &caller, job_id(&id)?, Act::Cancel).await
}

/// A job id from a path: ids are positive integers, so anything else names no job (404).
fn job_id(raw: &str) -> Result<i64, Problem> {
    path_id(raw, "job")
}

/// An id of a `what` from a path: ids are positive integers, so anything else names none (404).
pub(crate) fn path_id(raw: &str, what: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::not_found(format!("no {what} {raw:?}")))
}

#[derive(Clone, Copy)]
enum Act {
    Retry,
    Cancel,
}

/// Retries or cancels one of the caller's tenant's jobs, audited; 404 if there is none.
async fn act(
    state: &AppState,
    caller: &Caller,
    id: i64,
    act: Act,
) -> Result<axum::Json<Job>, Problem> {
    let (what, action) = match act {
        Act::Retry => ("retry jobs", "job.retry"),
        Act::Cancel => ("cancel jobs", "job.cancel"),
    };
    caller.require(MANAGERS, what)?;
    let audit = caller.audit(action, Some(id.to_string()), serde_json::Value::Null);
    let done = match act {
        Act::Retry => state.store.retry_job(&caller.scope, id, audit).await,
        Act::Cancel => state.store.cancel_job(&caller.scope, id, audit).await,
    };
    done.map_err(store_problem)?
        .map(axum::Json)
        .ok_or_else(|| Problem::not_found(format!("no job {id}")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Redrive {
    kind: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct Redriven {
    /// How many discarded jobs are available again.
    redriven: u64,
}

/// Makes every discarded job of a kind (the dead-letter queue) available again; a kind the
/// server does not run is 400 `unknown-job-kind`.
#[utoipa::path(post, path = "/api/v1/jobs/redrive", tag = "jobs", request_body = Redrive,
    security(("bearer" = [])),
    responses((status = 200, body = Redriven)))]
pub(crate) async fn redrive(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(req): Json<Redrive>,
) -> Result<axum::Json<Redriven>, Problem> {
    caller.require(MANAGERS, "re-drive jobs")?;
    // A kind this server does not run has nothing to re-drive to (its jobs would fail again).
    if state.jobs.kind(&req.kind).is_none() {
        let known = state.jobs.names().collect::<Vec<_>>().join(", ");
        let shown: String = req.kind.chars().take(64).collect();
        return Err(store_problem(JobError::UnknownKind(shown, known).into()));
    }
    let audit = caller.audit(
        "job.redrive",
        Some(req.kind.clone()),
        serde_json::Value::Null,
    );
    let redriven = state
        .store
        .redrive_jobs(&caller.scope, &req.kind, audit)
        .await
        .map_err(store_problem)?;
    Ok(axum::Json(Redriven { redriven }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueuePause {
    paused: bool,
}

/// Pauses (no job of the queue starts, on any replica; running ones finish) or resumes a queue.
#[utoipa::path(put, path = "/api/v1/platform/job-queues/{name}", tag = "platform",
    request_body = QueuePause,
    params(("name" = String, Path, description = "The queue")),
    security(("bearer" = [])),
    responses((status = 204, description = "Paused or resumed")))]
pub(crate) async fn pause_queue(
    State(state): State<Arc<AppState>>,
    _platform: PlatformAdmin,
    Path(name): Path<String>,
    Json(req): Json<QueuePause>,
) -> Result<StatusCode, Problem> {
    if !state.jobs.queues().contains(&name.as_str()) {
        return Err(Problem::not_found(format!(
            "no queue `{name}` (the server has: {})",
            state.jobs.queues().join(", ")
        )));
    }
    state
        .store
        .pause_job_queue(&name, req.paused)
        .await
        .map_err(store_problem)?;
    tracing::info!(queue = %name, paused = req.paused, "job queue paused or resumed");
    Ok(StatusCode::NO_CONTENT)
}
