//! The job kinds the server registers, and the platform's built-in schedules: `jobs.prune`
//! deletes finished jobs after their retention, `maintenance.purge` (in `maintenance`) purges
//! what has expired. `probe` checks the workers end to end: it records each
//! attempt that reaches its write (in the job's tenant, in the same transaction that completes
//! the job) and can be told to wait, fail its first attempts or panic, so an operator — and the
//! tests — can see retries, time limits, rescues and exactly-once completion on a live server.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::server::{
    jobs::{
        cron::Cron,
        model::{Claimed, JobState},
        registry::{Done, Failed, JobRun, KindOptions, Registry},
        schedule::{Missed, NewSchedule},
        store::complete,
    },
    store::{Store, StoreError, TenantScope, exec::in_tenant},
};
use rollcall_service::clock::now_ms;

/// The arguments of a `probe` job.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// Kept with each recorded attempt.
    #[serde(default)]
    #[schema(max_length = 200)]
    pub note: String,
    /// Wait this long first (at most 10 minutes).
    #[serde(default)]
    #[schema(maximum = 600000)]
    pub sleep_ms: u64,
    /// Fail this many first attempts.
    #[serde(default)]
    pub fail_attempts: u32,
    /// Panic instead of finishing (every attempt).
    #[serde(default)]
    pub panic: bool,
}

/// The kinds of this server, with their options; mail is not sent (see [`registry_with`]).
pub fn registry() -> Registry {
    registry_with(None)
}

/// The kinds of this server, the mail jobs sending through `mailer` (without one they complete
/// at once, marking the mail skipped).
pub fn registry_with(
    mailer: Option<std::sync::Arc<crate::server::notifications::mail::Mailer>>,
) -> Registry {
    let mut r = Registry::default();
    crate::server::notifications::jobs::register(&mut r, mailer);
    r.register(
        "probe",
        KindOptions {
            max_attempts: 5,
            timeout: Duration::from_secs(660),
            by_api: true,
            ..KindOptions::default()
        },
        probe,
    );
    r.register(
        PRUNE_KIND,
        KindOptions {
            queue: "maintenance",
            max_attempts: 3,
            timeout: Duration::from_secs(1800),
            ..KindOptions::default()
        },
        prune,
    );
    crate::server::maintenance::register(&mut r);
    r.register(
        crate::server::nodes::status::WATCH_KIND,
        // Beside the purges, off the tenants' own queue (an hourly purge may hold it up for
        // the length of its run; the next minute's watch catches up).
        KindOptions {
            queue: "maintenance",
            max_attempts: 3,
            timeout: Duration::from_secs(300),
            ..KindOptions::default()
        },
        crate::server::nodes::status::watch,
    );
    r
}

pub const PRUNE_KIND: &str = "jobs.prune";

/// The platform's own schedules, made at start-up unless they exist (an operator may change
/// their expression, zone or arguments, or pause them, through the platform API).
pub fn builtin_schedules() -> Vec<NewSchedule> {
    let hourly = |name: &str, minute: u32, kind: &str| NewSchedule {
        name: name.to_owned(),
        cron: Cron::parse(&format!("{minute} * * * *")).unwrap_or_else(|_| unreachable!()),
        time_zone: "UTC".into(),
        kind: kind.to_owned(),
        args: json!({}),
        missed: Missed::RunOnce,
        paused: false,
    };
    vec![
        hourly("purge-expired", 0, crate::server::maintenance::PURGE_KIND),
        hourly("prune-jobs", 30, PRUNE_KIND),
        NewSchedule {
            name: "watch-nodes".into(),
            cron: Cron::parse("* * * * *").unwrap_or_else(|_| unreachable!()),
            time_zone: "UTC".into(),
            kind: crate::server::nodes::status::WATCH_KIND.into(),
            args: json!({}),
            // A minute missed is checked by the next one.
            missed: Missed::Skip,
            paused: false,
        },
    ]
}

/// How long finished jobs (and their results) are kept, by final state, in seconds.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    /// 1 day by default.
    #[serde(default = "one_day")]
    pub completed_s: u64,
    /// 7 days by default.
    #[serde(default = "one_week")]
    pub cancelled_s: u64,
    /// The dead-letter queue: 30 days by default.
    #[serde(default = "one_month")]
    pub discarded_s: u64,
}

fn one_day() -> u64 {
    86_400
}
fn one_week() -> u64 {
    7 * 86_400
}
fn one_month() -> u64 {
    30 * 86_400
}

/// Deletes finished jobs past their state's retention, a thousand per transaction, stopping
/// between batches on shutdown.
async fn prune(run: JobRun, p: Prune) -> Result<Done, Failed> {
    let now = now_ms();
    let mut pruned = serde_json::Map::new();
    for (state, keep_s) in [
        (JobState::Completed, p.completed_s),
        (JobState::Cancelled, p.cancelled_s),
        (JobState::Discarded, p.discarded_s),
    ] {
        let before =
            now.saturating_sub(i64::try_from(keep_s.saturating_mul(1000)).unwrap_or(i64::MAX));
        let mut n = 0;
        loop {
            let batch = run.store.prune_jobs(state, before, 1000).await?;
            n += batch;
            if batch < 1000 || run.stop.is_fired() {
                break;
            }
        }
        if n > 0 {
            tracing::info!(state = state.as_str(), jobs = n, "pruned finished jobs");
        }
        pruned.insert(state.as_str().to_owned(), n.into());
    }
    Ok(Done::Result(Some(Value::Object(pruned))))
}

async fn probe(run: JobRun, p: Probe) -> Result<Done, Failed> {
    if p.note.chars().count() > 200 || p.sleep_ms > 600_000 {
        return Err(Failed::Discard(
            "note is at most 200 characters, sleep_ms at most 600000".into(),
        ));
    }
    // Halfway through its wait it says so (on `job:<id>`, when someone started it).
    tokio::time::sleep(Duration::from_millis(p.sleep_ms / 2)).await;
    if p.sleep_ms > 0 {
        run.progress(50, "halfway through the wait").await?;
    }
    tokio::time::sleep(Duration::from_millis(p.sleep_ms - p.sleep_ms / 2)).await;
    if p.panic {
        panic!("the probe was asked to panic");
    }
    if run.job.attempt <= p.fail_attempts {
        return Err(Failed::Retry(format!(
            "the probe fails its first {} attempts (this is attempt {})",
            p.fail_attempts, run.job.attempt
        )));
    }
    let scope = run
        .scope
        .clone()
        .ok_or_else(|| Failed::Discard("a probe runs for a tenant".into()))?;
    let mut result = json!({ "note": p.note, "attempt": run.job.attempt });
    if !run.waited.is_empty() {
        let waited: serde_json::Map<String, Value> = run
            .waited
            .iter()
            .map(|(id, state)| (id.to_string(), state.as_str().into()))
            .collect();
        result["waited"] = Value::Object(waited);
    }
    run.store
        .record_probe(&scope, &run.job, &p.note, &result)
        .await?;
    run.confirmed();
    Ok(Done::Result(Some(result)))
}

impl Store {
    /// Records a probe's attempt and completes its job in one transaction; nothing if the
    /// attempt's lease was lost.
    pub async fn record_probe(
        &self,
        scope: &TenantScope,
        job: &Claimed,
        note: &str,
        result: &Value,
    ) -> Result<(), StoreError> {
        let (job, note, result) = (job.clone(), note.to_owned(), result.clone());
        in_tenant!(internal self, scope, |tx| async move {
            tx.execute(
                "INSERT INTO job_probe_runs (tenant_id, job_id, attempt, note, at_ms)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&tx.tenant(), &job.id, &i64::from(job.attempt), &note, &now_ms()],
            )
            .await?;
            if complete(tx, &job, Some(&result)).await? {
                Ok(())
            } else {
                Err(StoreError::LeaseLost(job.id))
            }
        })
    }

    /// The probe attempts recorded for the tenant: (job id, attempt), in order.
    pub async fn probe_runs(&self, scope: &TenantScope) -> Result<Vec<(i64, u32)>, StoreError> {
        in_tenant!(read self, scope, |tx| async move {
            tx.query(
                "SELECT job_id, attempt FROM job_probe_runs WHERE tenant_id = $1
                 ORDER BY job_id, attempt",
                &[&tx.tenant()],
                |r| Ok((r.get::<i64>(0)?, u32::try_from(r.get::<i64>(1)?).unwrap_or(0))),
            )
            .await
        })
    }
}
