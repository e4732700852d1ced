//! Background jobs, on the server's own database (no broker): a job is enqueued inside the
//! transaction of the change that causes it, claimed by a worker of any replica with a lease,
//! run in its tenant's scope, retried with back-off, and kept — with every attempt's error —
//! when it is discarded after its last attempt (the dead-letter queue the admin API re-drives).
//!
//! `model` (what a job is), `problems` (what the job API refuses), `store` (enqueue, claim, finish, rescue, both backends), `admin`
//! (what the admin API does to the queue), `registry` (the kinds and their typed arguments), `kinds` (this server's kinds),
//! `runner` (the workers in the supervised server), `metrics` (their Prometheus families),
//! `wake` (how PostgreSQL replicas hear of new work), `live` (jobs a person started, followed
//! on `job:<id>`), `waits` (chains and groups: jobs that
//! wait for others), `backoff`, `api` (the admin API);
//! `cron`, `schedule` (schedules and their storage), `beat` (the scheduler every replica runs)
//! and `schedule_api`.

use std::sync::Arc;

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::server::http::{problem::Refusals, router::AppState};

pub mod admin;
pub(crate) mod api;
pub mod backoff;
pub mod beat;
pub(crate) mod completer;
pub mod cron;
pub mod kinds;
pub mod live;
pub mod metrics;
pub mod model;
pub mod problems;
pub mod registry;
#[cfg(test)]
mod replicas_suite;
pub mod runner;
pub mod schedule;
pub(crate) mod schedule_api;
#[cfg(test)]
mod schedule_suite;
pub mod store;
#[cfg(test)]
mod suite;
pub mod waits;
#[cfg(test)]
mod waits_suite;
pub(crate) mod wake;

/// This domain's routes, each registered with its OpenAPI operation.
pub(crate) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(api::list, api::create))
        .routes(routes!(api::create_batch))
        .routes(routes!(api::get))
        .routes(routes!(api::retry))
        .routes(routes!(api::cancel))
        .routes(routes!(api::redrive))
        .routes(routes!(api::pause_queue))
        .routes(routes!(
            schedule_api::list_schedules,
            schedule_api::create_schedule
        ))
        .routes(routes!(
            schedule_api::get_schedule,
            schedule_api::update_schedule,
            schedule_api::delete_schedule
        ))
        .routes(routes!(schedule_api::run_schedule))
        .routes(routes!(schedule_api::list_platform_schedules))
        .routes(routes!(schedule_api::update_platform_schedule))
        .routes(routes!(schedule_api::run_platform_schedule))
}

/// The problem types of this domain each operation can refuse with (the OpenAPI document lists
/// them on the operation).
/// What an enqueue (one job or a batch) refuses.
const ENQUEUE_REFUSALS: &[&rollcall_service::problem::ProblemType] = &[
    &store::UNKNOWN_JOB_KIND,
    &store::INVALID_JOB_ARGS,
    &store::INVALID_JOB_WAITS,
    &store::UNKNOWN_AWAITED_JOB,
];

pub(crate) const REFUSALS: &[Refusals] = &[
    Refusals {
        operation: "post /api/v1/jobs",
        types: ENQUEUE_REFUSALS,
    },
    Refusals {
        operation: "post /api/v1/jobs/batch",
        types: ENQUEUE_REFUSALS,
    },
    Refusals {
        operation: "post /api/v1/jobs/{id}/retry",
        types: &[&store::JOB_NOT_RETRYABLE, &store::JOB_KEY_HELD],
    },
    Refusals {
        operation: "post /api/v1/jobs/redrive",
        types: &[&store::UNKNOWN_JOB_KIND],
    },
    Refusals {
        operation: "post /api/v1/jobs/{id}/cancel",
        types: &[&store::JOB_FINISHED],
    },
    Refusals {
        operation: "post /api/v1/job-schedules",
        types: &[
            &schedule::INVALID_SCHEDULE,
            &schedule::SCHEDULE_EXISTS,
            &store::UNKNOWN_JOB_KIND,
            &store::INVALID_JOB_ARGS,
        ],
    },
    Refusals {
        operation: "patch /api/v1/job-schedules/{id}",
        types: &[&schedule::INVALID_SCHEDULE, &store::INVALID_JOB_ARGS],
    },
    Refusals {
        operation: "patch /api/v1/platform/job-schedules/{id}",
        types: &[&schedule::INVALID_SCHEDULE, &store::INVALID_JOB_ARGS],
    },
];
