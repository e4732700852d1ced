//! What the admin API does to the queue, per tenant: list and show jobs, retry one now,
//! cancel one, re-drive every discarded job of a kind, and pause or resume a queue.

use crate::server::{
    jobs::{
        model::{Job, JobState},
        store::{HOLDS_KEY, JobError, job_columns, read_job},
    },
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_platform, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

/// What the admin lists.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub kind: Option<String>,
    pub queue: Option<String>,
    /// Jobs with a smaller id only (the page after a cursor; newest first).
    pub before_id: Option<i64>,
    pub limit: u32,
}

async fn list(tx: &impl Exec, f: &JobFilter) -> Result<Vec<Job>, StoreError> {
    tx.query(
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE tenant_id = $1
               AND (CAST($2 AS TEXT) IS NULL OR state = $2)
               AND (CAST($3 AS TEXT) IS NULL OR kind = $3)
               AND (CAST($4 AS TEXT) IS NULL OR queue = $4)
               AND (CAST($5 AS BIGINT) IS NULL OR id < $5)
             ORDER BY id DESC LIMIT $6"
        ),
        &[
            &tx.tenant(),
            &f.state.map(JobState::as_str),
            &f.kind,
            &f.queue,
            &f.before_id,
            &i64::from(f.limit),
        ],
        read_job,
    )
    .await
}

async fn one(tx: &impl Exec, id: i64) -> Result<Option<Job>, StoreError> {
    tx.query_opt(
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE tenant_id = $1 AND id = $2"
        ),
        &[&tx.tenant(), &id],
        read_job,
    )
    .await
}

/// Makes a finished or failed job available now, with one more attempt if it had used them all.
async fn retry(tx: &impl Exec, id: i64) -> Result<Option<Job>, StoreError> {
    let Some(job) = one(tx, id).await? else {
        return Ok(None);
    };
    if matches!(job.state, JobState::Running | JobState::Available) {
        return Err(JobError::NotRetryable {
            id,
            state: job.state,
        }
        .into());
    }
    if let (Some(key), false) = (&job.unique_key, job.state == JobState::Retryable) {
        let holder: Option<i64> = tx
            .query_opt(
                &format!(
                    "SELECT id FROM jobs WHERE tenant_id = $1 AND kind = $2 AND unique_key = $3
                       AND id <> $4 AND {HOLDS_KEY}"
                ),
                &[&tx.tenant(), &job.kind, key, &id],
                |r| r.get(0),
            )
            .await?;
        if let Some(holder) = holder {
            return Err(JobError::KeyHeld { holder }.into());
        }
    }
    tx.execute(
        "UPDATE jobs SET state = 'available', scheduled_ms = $3, finished_ms = NULL,
                         max_attempts = CASE WHEN attempt >= max_attempts THEN attempt + 1
                                             ELSE max_attempts END
         WHERE tenant_id = $1 AND id = $2",
        &[&tx.tenant(), &id, &now_ms()],
    )
    .await?;
    tx.wake_workers().await?;
    one(tx, id).await
}

/// Cancels a job that has not finished; a running attempt loses its lease (its worker stops at
/// its next renewal and cannot complete it).
async fn cancel(tx: &impl Exec, id: i64) -> Result<Option<Job>, StoreError> {
    let Some(job) = one(tx, id).await? else {
        return Ok(None);
    };
    if job.state.is_final() {
        return Err(JobError::Finished {
            id,
            state: job.state,
        }
        .into());
    }
    tx.execute(
        "UPDATE jobs SET state = 'cancelled', finished_ms = $3, lease_token = NULL,
                         lease_until_ms = NULL
         WHERE tenant_id = $1 AND id = $2",
        &[&tx.tenant(), &id, &now_ms()],
    )
    .await?;
    if job.actor.is_some() {
        let data = crate::server::jobs::live::JobFinishedData {
            job_id: id,
            kind: job.kind.clone(),
            state: JobState::Cancelled,
            attempt: job.attempt,
            result: None,
            error: None,
        };
        let m =
            crate::server::jobs::live::message(id, crate::server::jobs::live::JOB_FINISHED, &data);
        crate::server::realtime::stream::publish(tx, &[m]).await?;
    }
    one(tx, id).await
}

/// Makes every discarded job of a kind available again (those whose unique key another live
/// job holds stay discarded); how many.
async fn redrive(tx: &impl Exec, kind: &str) -> Result<u64, StoreError> {
    let n = tx
        .execute(
            &format!(
                "UPDATE jobs SET state = 'available', scheduled_ms = $3, finished_ms = NULL,
                                 max_attempts = attempt + 1
                 WHERE tenant_id = $1 AND kind = $2 AND state = 'discarded'
                   AND (unique_key IS NULL OR NOT EXISTS (
                        SELECT 1 FROM jobs o WHERE o.tenant_id = jobs.tenant_id
                          AND o.kind = jobs.kind AND o.unique_key = jobs.unique_key
                          AND o.id <> jobs.id AND o.{HOLDS_KEY}))"
            ),
            &[&tx.tenant(), &kind, &now_ms()],
        )
        .await?;
    if n > 0 {
        tx.wake_workers().await?;
    }
    Ok(n)
}

/// Pauses or resumes a queue for every replica.
async fn set_paused(tx: &impl Exec, queue: &str, paused: bool) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO job_queues (name, paused, updated_ms) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused, updated_ms = excluded.updated_ms",
        &[&queue, &paused, &now_ms()],
    )
    .await?;
    if !paused {
        tx.wake_workers().await?;
    }
    Ok(())
}

/// Deletes up to `limit` jobs that reached final state `state` before `before_ms`; how many.
async fn prune(
    tx: &impl Exec,
    state: JobState,
    before_ms: i64,
    limit: u32,
) -> Result<u64, StoreError> {
    let sql = format!(
        "DELETE FROM jobs WHERE id IN (
             SELECT id FROM jobs j WHERE state = $1 AND finished_ms < $2 AND {}
             ORDER BY id LIMIT $3)",
        crate::server::jobs::waits::AWAITED_BY_NONE
    );
    tx.execute(&sql, &[&state.as_str(), &before_ms, &i64::from(limit)])
        .await
}

crate::server::store::exec::always_changed!(Job);

impl Store {
    pub async fn jobs(&self, scope: &TenantScope, f: JobFilter) -> Result<Vec<Job>, StoreError> {
        in_tenant!(read self, scope, |tx| list(tx, &f))
    }

    pub async fn job(&self, scope: &TenantScope, id: i64) -> Result<Option<Job>, StoreError> {
        in_tenant!(read self, scope, |tx| one(tx, id))
    }

    pub async fn retry_job(
        &self,
        scope: &TenantScope,
        id: i64,
        audit: crate::server::audit::store::Audit,
    ) -> Result<Option<Job>, StoreError> {
        in_tenant!(write self, scope, audit, |tx| retry(tx, id))
    }

    pub async fn cancel_job(
        &self,
        scope: &TenantScope,
        id: i64,
        audit: crate::server::audit::store::Audit,
    ) -> Result<Option<Job>, StoreError> {
        in_tenant!(write self, scope, audit, |tx| cancel(tx, id))
    }

    pub async fn redrive_jobs(
        &self,
        scope: &TenantScope,
        kind: &str,
        audit: crate::server::audit::store::Audit,
    ) -> Result<u64, StoreError> {
        let kind = kind.to_owned();
        in_tenant!(write self, scope, audit, |tx| redrive(tx, &kind))
    }

    /// Deletes finished jobs of every tenant (see [`prune`]).
    pub async fn prune_jobs(
        &self,
        state: JobState,
        before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        in_platform!(self, |tx| prune(tx, state, before_ms, limit))
    }

    pub async fn pause_job_queue(&self, queue: &str, paused: bool) -> Result<(), StoreError> {
        let queue = queue.to_owned();
        in_platform!(self, |tx| set_paused(tx, &queue, paused))
    }

    /// How many jobs of every tenant each queue holds in each unfinished state (the queue's
    /// depth, for the metrics).
    pub async fn job_depths(&self) -> Result<Vec<(String, JobState, i64)>, StoreError> {
        in_platform!(self, |tx| depths(tx))
    }
}

async fn depths(tx: &impl Exec) -> Result<Vec<(String, JobState, i64)>, StoreError> {
    let rows = tx
        .query(
            "SELECT queue, state, count(*) FROM jobs
             WHERE state IN ('available', 'retryable', 'running') GROUP BY queue, state",
            &[],
            |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?, r.get::<i64>(2)?)),
        )
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(q, s, n)| Some((q, JobState::parse(&s)?, n)))
        .collect())
}
