//! The job queue's storage, written once for both backends: enqueue inside the caller's
//! transaction (unique keys by a partial unique index), claim with a lease (fair across
//! tenants, `FOR UPDATE SKIP LOCKED` on PostgreSQL), finish an attempt only with its lease
//! token, renew and rescue leases, and the admin's reads and re-drives.

use serde_json::Value;

use crate::server::{
    jobs::{
        live,
        model::{AttemptError, Claimed, Enqueued, Failure, Job, JobState, NewJob},
        waits,
    },
    store::{
        Store, StoreError, TenantScope,
        exec::{Dialect, Exec, Row, in_platform, in_tenant},
    },
};
use rollcall_service::clock::now_ms;

/// Where they were first defined: the paths other domains use.
pub use crate::server::jobs::problems::{
    INVALID_JOB_ARGS, INVALID_JOB_WAITS, JOB_FINISHED, JOB_KEY_HELD, JOB_NOT_RETRYABLE, JobError,
    PROBLEMS, UNKNOWN_AWAITED_JOB, UNKNOWN_JOB_KIND,
};

/// The columns [`read_job`] reads, in order.
macro_rules! job_columns {
    () => {
        "id, tenant_id, kind, queue, args, state, priority, scheduled_ms, attempt, max_attempts, \
         unique_key, actor, request_id, errors, result, created_ms, started_ms, finished_ms, waits"
    };
}
pub(crate) use job_columns;

/// The states in which a job holds its unique key.
pub(crate) const HOLDS_KEY: &str = "state NOT IN ('cancelled', 'discarded')";

pub(crate) fn json(id: i64, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
        id: format!("job {id}"),
        source,
    })
}

pub(crate) fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

pub(crate) fn read_job(r: &Row<'_>) -> Result<Job, StoreError> {
    let id: i64 = r.get(0)?;
    let state: String = r.get(5)?;
    let errors: String = r.get(13)?;
    Ok(Job {
        id,
        tenant_id: r.get(1)?,
        kind: r.get(2)?,
        queue: r.get(3)?,
        args: json(id, &r.get::<String>(4)?)?,
        state: JobState::parse(&state)
            .ok_or_else(|| StoreError::Inconsistent(format!("job {id} in state `{state}`")))?,
        priority: i32::try_from(r.get::<i64>(6)?).unwrap_or(i32::MAX),
        scheduled_ms: r.get(7)?,
        attempt: count(r.get(8)?),
        max_attempts: count(r.get(9)?),
        unique_key: r.get(10)?,
        actor: r.get(11)?,
        request_id: r.get(12)?,
        errors: serde_json::from_str(&errors).map_err(|source| StoreError::Corrupt {
            id: format!("job {id}"),
            source,
        })?,
        result: r
            .get::<Option<String>>(14)?
            .map(|t| json(id, &t))
            .transpose()?,
        created_ms: r.get(15)?,
        started_ms: r.get(16)?,
        finished_ms: r.get(17)?,
        waits: waits::parse(id, r.get(18)?)?,
    })
}

/// Enqueues `j` for the transaction's tenant (0: platform work), in the caller's transaction:
/// it exists if and only if the caller commits. A held unique key gives back the job holding it.
pub(crate) async fn enqueue(tx: &impl Exec, j: &NewJob) -> Result<Enqueued, StoreError> {
    enqueue_as(tx, tx.tenant(), j).await
}

/// [`enqueue`] for tenant `tenant` (0: platform work) from a transaction outside its scope (a
/// schedule's: the queue tables are not under tenant isolation).
pub(crate) async fn enqueue_as(
    tx: &impl Exec,
    tenant: i64,
    j: &NewJob,
) -> Result<Enqueued, StoreError> {
    let now = now_ms();
    let args = j.args.to_string();
    // Checked before the insert; recorded after it, once the job has an id.
    let waits_for = j.waits.as_ref().map(waits::Waits::ids).transpose()?;
    let insert = concat!(
        "INSERT INTO jobs (tenant_id, kind, queue, args, state, priority, scheduled_ms, attempt,
                           max_attempts, unique_key, actor, request_id, errors, created_ms, waits)
         VALUES ($1, $2, $3, $4, 'available', $5, $6, 0, $7, $8, $9, $10, '[]', $11, $12)
         ON CONFLICT (tenant_id, kind, unique_key)
             WHERE unique_key IS NOT NULL AND state NOT IN ('cancelled', 'discarded') DO NOTHING
         RETURNING ",
        job_columns!()
    );
    let holder = concat!(
        "SELECT ",
        job_columns!(),
        " FROM jobs WHERE tenant_id = $1 AND kind = $2 AND unique_key = $3
           AND state NOT IN ('cancelled', 'discarded')"
    );
    // A holder that goes away between the two statements (cancelled, rolled back) leaves the
    // key free: insert again.
    for _ in 0..3 {
        if let Some(job) = tx
            .query_opt(
                insert,
                &[
                    &tenant,
                    &j.kind,
                    &j.queue,
                    &args,
                    &i64::from(j.priority),
                    &j.scheduled_ms.unwrap_or(now),
                    &i64::from(j.max_attempts),
                    &j.unique_key,
                    &j.actor,
                    &j.request_id,
                    &now,
                    &waits::text(j.waits.as_ref()),
                ],
                read_job,
            )
            .await?
        {
            if let Some(ids) = &waits_for {
                waits::record(tx, tenant, job.id, ids).await?;
            }
            tx.wake_workers().await?;
            return Ok(Enqueued {
                job,
                existing: false,
            });
        }
        if let Some(job) = tx
            .query_opt(holder, &[&tenant, &j.kind, &j.unique_key], read_job)
            .await?
        {
            return Ok(Enqueued {
                job,
                existing: true,
            });
        }
    }
    Err(StoreError::Inconsistent(format!(
        "the unique key of a `{}` job is neither free nor held",
        j.kind
    )))
}

/// What a claim takes from one queue.
#[derive(Debug, Clone)]
pub struct ClaimRequest<'a> {
    pub queue: &'a str,
    /// Most jobs taken.
    pub limit: u32,
    /// Most jobs of one tenant running in this queue at once, over every replica.
    pub tenant_cap: u32,
    /// Who claims (a replica's worker id), kept on the job.
    pub worker: &'a str,
    /// How long the lease lasts unless renewed.
    pub lease_ms: i64,
}

/// Claims up to `limit` jobs of a queue that are due, taking tenants in turn (each tenant's
/// first job before anyone's second) and none of a tenant already running `tenant_cap`; a
/// paused queue gives nothing. Each claimed job's attempt is counted and its lease token set.
/// Only the head of each tenant with ready work (its first `tenant_cap` jobs) is ranked, found
/// by walking the tenants in the ready index, so a claim costs the same with 10 or 10 000
/// ready jobs.
async fn claim(
    tx: &impl Exec,
    req: &ClaimRequest<'_>,
    now: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let token = crate::server::auth::extract::new_token()
        .map_err(|e| StoreError::Task(format!("no lease token: {e}")))?;
    // Each tenant's head: a lateral join on PostgreSQL (whose planner would otherwise run the
    // head query for every job); SQLite has none, and looks the head's ids up by key.
    let heads = match tx.dialect() {
        Dialect::Postgres => ("CROSS JOIN LATERAL (", ") l JOIN jobs h ON h.id = l.id"),
        Dialect::Sqlite => ("JOIN jobs h ON h.id IN (", ")"),
    };
    let sql = format!(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_token = $1,
                         lease_until_ms = $2, worker = $3, started_ms = $4
         WHERE id IN (
             SELECT id FROM jobs WHERE state IN ('available', 'retryable') AND id IN (
                 WITH RECURSIVE t(tenant_id) AS (
                     SELECT min(tenant_id) FROM jobs
                     WHERE queue = $5 AND state IN ('available', 'retryable')
                     UNION ALL
                     SELECT (SELECT min(tenant_id) FROM jobs
                             WHERE queue = $5 AND state IN ('available', 'retryable')
                               AND tenant_id > t.tenant_id)
                     FROM t WHERE t.tenant_id IS NOT NULL)
                 SELECT r.id FROM (
                     SELECT h.id, h.tenant_id, h.priority, h.scheduled_ms,
                            row_number() OVER (PARTITION BY h.tenant_id
                                               ORDER BY h.priority, h.scheduled_ms, h.id) AS turn
                     FROM t {}
                         SELECT j.id FROM jobs j
                         WHERE j.queue = $5 AND j.tenant_id = t.tenant_id
                           AND j.state IN ('available', 'retryable') AND j.scheduled_ms <= $4
                           AND {}
                         ORDER BY j.priority, j.scheduled_ms, j.id LIMIT $6{}) r
                 LEFT JOIN (SELECT tenant_id, count(*) AS n FROM jobs
                            WHERE queue = $5 AND state = 'running' GROUP BY tenant_id) b
                        ON b.tenant_id = r.tenant_id
                 WHERE r.turn + coalesce(b.n, 0) <= $6
                   AND NOT EXISTS (SELECT 1 FROM job_queues q WHERE q.name = $5 AND q.paused)
                 ORDER BY r.turn, r.priority, r.scheduled_ms, r.id
                 LIMIT $7){})
         RETURNING id, tenant_id, kind, queue, args, attempt, max_attempts, actor, request_id,
                   scheduled_ms, waits",
        heads.0,
        waits::READY,
        heads.1,
        tx.dialect().lock_free_rows()
    );
    tx.query(
        &sql,
        &[
            &token,
            &(now + req.lease_ms),
            &req.worker,
            &now,
            &req.queue,
            &i64::from(req.tenant_cap),
            &i64::from(req.limit),
        ],
        |r| {
            let id: i64 = r.get(0)?;
            Ok(Claimed {
                id,
                tenant_id: r.get(1)?,
                kind: r.get(2)?,
                queue: r.get(3)?,
                args: json(id, &r.get::<String>(4)?)?,
                attempt: count(r.get(5)?),
                max_attempts: count(r.get(6)?),
                actor: r.get(7)?,
                request_id: r.get(8)?,
                lease_token: token.clone(),
                scheduled_ms: r.get(9)?,
                waits: waits::parse(id, r.get(10)?)?,
            })
        },
    )
    .await
}

/// Completes a running attempt, if `token` still holds its lease; `false` if it does not (the
/// job was cancelled, or rescued and given to another worker): then nothing is written. In
/// the handler's own transaction this makes its writes and the completion one commit.
pub(crate) async fn complete(
    tx: &impl Exec,
    job: &Claimed,
    result: Option<&Value>,
) -> Result<bool, StoreError> {
    let result = result.map(Value::to_string);
    let n = tx
        .execute(
            "UPDATE jobs SET state = 'completed', result = $3, finished_ms = $4,
                             lease_token = NULL, lease_until_ms = NULL
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
            &[&job.id, &job.lease_token, &result, &now_ms()],
        )
        .await?;
    if n == 1 && live::watched(job) {
        let result: Option<Value> = result.as_deref().and_then(|r| serde_json::from_str(r).ok());
        live::finished(tx, job, JobState::Completed, result.as_ref(), None).await?;
    }
    Ok(n == 1)
}

/// Records an attempt that did not complete, if `token` still holds its lease; the state the
/// job went to, or `None` if the lease was lost (nothing written).
pub(crate) async fn fail(
    tx: &impl Exec,
    job: &Claimed,
    failure: &Failure,
) -> Result<Option<JobState>, StoreError> {
    let now = now_ms();
    let sql = format!(
        "SELECT attempt, max_attempts, errors FROM jobs
         WHERE id = $1 AND lease_token = $2 AND state = 'running'{}",
        tx.dialect().lock_rows()
    );
    let Some((attempt, max, errors)) = tx
        .query_opt(&sql, &[&job.id, &job.lease_token], |r| {
            Ok((r.get::<i64>(0)?, r.get::<i64>(1)?, r.get::<String>(2)?))
        })
        .await?
    else {
        return Ok(None);
    };
    let mut errors: Vec<AttemptError> =
        serde_json::from_str(&errors).map_err(|source| StoreError::Corrupt {
            id: format!("job {}", job.id),
            source,
        })?;
    let mut record = |message: &str| {
        errors.push(AttemptError {
            attempt: count(attempt),
            at_ms: now,
            error: message.to_owned(),
            rescued: false,
        })
    };
    let (state, at, attempt) = match failure {
        Failure::Error {
            message,
            retry_at_ms,
        } => {
            record(message);
            if attempt >= max {
                (JobState::Discarded, now, attempt)
            } else {
                (JobState::Retryable, *retry_at_ms, attempt)
            }
        }
        Failure::Discard { message } => {
            record(message);
            (JobState::Discarded, now, attempt)
        }
        Failure::Snooze { until_ms } => (JobState::Available, *until_ms, attempt - 1),
        Failure::Interrupted => (JobState::Available, now, attempt - 1),
    };
    let finished = state.is_final().then_some(now);
    tx.execute(
        "UPDATE jobs SET state = $3, scheduled_ms = $4, attempt = $5, errors = $6,
                         finished_ms = $7, lease_token = NULL, lease_until_ms = NULL
         WHERE id = $1 AND lease_token = $2",
        &[
            &job.id,
            &job.lease_token,
            &state.as_str(),
            &at,
            &attempt,
            &errors_text(&errors),
            &finished,
        ],
    )
    .await?;
    if state == JobState::Discarded {
        let error = errors.last().map(|e| e.error.as_str());
        live::finished(tx, job, state, None, error).await?;
    }
    Ok(Some(state))
}

fn errors_text(errors: &[AttemptError]) -> String {
    serde_json::to_string(errors).unwrap_or_else(|_| "[]".into())
}

/// Extends the leases of running attempts to `until_ms`; the ids whose lease `token` no longer
/// holds (their workers must stop: the job was cancelled or given to another).
async fn renew(
    tx: &impl Exec,
    running: &[(i64, String)],
    until_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let stmt = tx
        .prepare(
            "UPDATE jobs SET lease_until_ms = $3
             WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .await?;
    let mut lost = Vec::new();
    for (id, token) in running {
        if tx.execute_prepared(&stmt, &[id, token, &until_ms]).await? == 0 {
            lost.push(*id);
        }
    }
    Ok(lost)
}

/// Takes back running attempts whose lease ran out (their worker died or stalled): each is
/// recorded as a rescued attempt, and the job is retried at once, or discarded if that was its
/// last attempt. How many were rescued and how many of those discarded.
async fn rescue(tx: &impl Exec, now: i64) -> Result<(u64, u64), StoreError> {
    let sql = format!(
        "SELECT id, attempt, max_attempts, errors FROM jobs
         WHERE state = 'running' AND lease_until_ms < $1 ORDER BY id LIMIT 1000{}",
        tx.dialect().lock_free_rows()
    );
    let expired = tx
        .query(&sql, &[&now], |r| {
            Ok((
                r.get::<i64>(0)?,
                r.get::<i64>(1)?,
                r.get::<i64>(2)?,
                r.get::<String>(3)?,
            ))
        })
        .await?;
    let (mut rescued, mut discarded) = (0, 0);
    for (id, attempt, max, errors) in expired {
        let mut errors: Vec<AttemptError> = serde_json::from_str(&errors).unwrap_or_default();
        errors.push(AttemptError {
            attempt: count(attempt),
            at_ms: now,
            error: "the lease ran out: the worker stopped renewing it (died or stalled)".into(),
            rescued: true,
        });
        let state = if attempt >= max {
            discarded += 1;
            JobState::Discarded
        } else {
            JobState::Retryable
        };
        rescued += tx
            .execute(
                "UPDATE jobs SET state = $2, scheduled_ms = $3, errors = $4, finished_ms = $5,
                                 lease_token = NULL, lease_until_ms = NULL
                 WHERE id = $1 AND state = 'running' AND lease_until_ms < $3",
                &[
                    &id,
                    &state.as_str(),
                    &now,
                    &errors_text(&errors),
                    &state.is_final().then_some(now),
                ],
            )
            .await?;
    }
    Ok((rescued, discarded))
}

crate::server::store::exec::always_changed!(Enqueued);

/// What a batch enqueue did, one [`Enqueued`] a job.
struct Batch(Vec<Enqueued>);

impl crate::server::store::exec::Outcome for Batch {
    fn changed(&self) -> bool {
        self.0.iter().any(|e| !e.existing)
    }
}

impl Store {
    /// Enqueues one job of the tenant in its own transaction (a handler that also changes
    /// state calls [`enqueue`] inside its own).
    pub async fn enqueue_job(
        &self,
        scope: &TenantScope,
        job: NewJob,
        audit: crate::server::audit::store::Audit,
    ) -> Result<Enqueued, StoreError> {
        in_tenant!(write self, scope, audit, |tx| enqueue(tx, &job))
    }

    /// Enqueues many jobs of the tenant in one transaction: all or none, one audit entry.
    pub async fn enqueue_jobs(
        &self,
        scope: &TenantScope,
        jobs: Vec<NewJob>,
        audit: crate::server::audit::store::Audit,
    ) -> Result<Vec<Enqueued>, StoreError> {
        let batch = in_tenant!(write self, scope, audit, |tx| async move {
            let mut out = Vec::with_capacity(jobs.len());
            for job in &jobs {
                out.push(enqueue(tx, job).await?);
            }
            Ok::<_, StoreError>(Batch(out))
        })?;
        Ok(batch.0)
    }

    /// Enqueues platform work (no tenant).
    pub async fn enqueue_platform_job(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        in_platform!(self, |tx| enqueue(tx, &job))
    }

    /// Claims due jobs of one queue for a worker (see [`ClaimRequest`]).
    pub async fn claim_jobs(&self, req: ClaimRequest<'_>) -> Result<Vec<Claimed>, StoreError> {
        let (queue, worker) = (req.queue.to_owned(), req.worker.to_owned());
        let (limit, tenant_cap, lease_ms) = (req.limit, req.tenant_cap, req.lease_ms);
        in_platform!(self, |tx| async move {
            let req = ClaimRequest {
                queue: &queue,
                limit,
                tenant_cap,
                worker: &worker,
                lease_ms,
            };
            claim(tx, &req, now_ms()).await
        })
    }

    /// Completes one attempt outside any handler transaction, as [`Store::complete_jobs`] does
    /// a batch; `false` if its lease was lost.
    pub async fn complete_job(
        &self,
        job: &Claimed,
        result: Option<Value>,
    ) -> Result<bool, StoreError> {
        let recorded = self.complete_jobs(vec![(job.clone(), result)]).await?;
        Ok(recorded.first().copied().unwrap_or(false))
    }

    /// Completes many attempts in one transaction (`jobs::completer`), each only if its token
    /// still holds its lease: for each, in order, whether it was recorded.
    pub async fn complete_jobs(
        &self,
        jobs: Vec<(Claimed, Option<Value>)>,
    ) -> Result<Vec<bool>, StoreError> {
        in_platform!(self, |tx| async move {
            let mut recorded = Vec::with_capacity(jobs.len());
            for (job, result) in &jobs {
                recorded.push(complete(tx, job, result.as_ref()).await?);
            }
            Ok::<_, StoreError>(recorded)
        })
    }

    /// Records an attempt that did not complete; `None` if its lease was lost.
    pub async fn fail_job(
        &self,
        job: &Claimed,
        failure: Failure,
    ) -> Result<Option<JobState>, StoreError> {
        let job = job.clone();
        in_platform!(self, |tx| fail(tx, &job, &failure))
    }

    /// Renews leases; the ids whose lease was lost.
    pub async fn renew_job_leases(
        &self,
        running: Vec<(i64, String)>,
        until_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        in_platform!(self, |tx| renew(tx, &running, until_ms))
    }

    /// Takes back attempts whose lease expired before `now`: (rescued, of which discarded).
    pub async fn rescue_jobs(&self, now: i64) -> Result<(u64, u64), StoreError> {
        in_platform!(self, |tx| rescue(tx, now))
    }

    /// What changes when a commit of this process enqueued work (SQLite), or a notification
    /// said a commit of any replica did (PostgreSQL: `jobs::wake::listen`); a change made
    /// while a worker was busy is still seen at its next wait. A hint only: workers also poll.
    pub(crate) fn job_wakeups(&self) -> tokio::sync::watch::Receiver<u64> {
        match self {
            Store::Sqlite(s) => s.wake.subscribe(),
            Store::Postgres(p) => p.wake.subscribe(),
        }
    }
}
