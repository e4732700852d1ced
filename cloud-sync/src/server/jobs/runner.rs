//! The workers of one replica, run by the server's supervisor: per queue, a loop that claims
//! due jobs up to the queue's concurrency and runs each in its own task; beside them a renewer
//! that keeps the running attempts' leases alive (and stops an attempt whose lease was lost)
//! and a rescuer that takes back attempts whose lease ran out on any replica; and the
//! scheduler (`beat`) that fires due schedules. Attempts that finish outside a handler
//! transaction are recorded by the replica's `completer`, many in one commit.
//!
//! Each attempt runs inside a tracing span with the job's id, kind, tenant and the request id
//! that enqueued it, in the job's tenant scope; a panic or an error is recorded and retried
//! after the kind's back-off, an attempt past its time limit is stopped. On SIGTERM the loops
//! claim nothing more, running attempts get `grace` to finish, and those still running are
//! handed back (not counted as attempts).

use std::{
    collections::HashMap,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::task::{AbortHandle, JoinSet};
use tracing::Instrument;

use crate::server::{
    jobs::{
        completer::Completer,
        metrics::{JobMetrics, Outcome},
        model::{Claimed, Failure},
        registry::{Done, Failed, JobRun, Registry},
        store::ClaimRequest,
    },
    store::Store,
    tenants::cache::{self as tenants_cache, TenantCache},
};
use rollcall_service::{clock::now_ms, shutdown::Shutdown};

/// One queue's workers in this replica.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub name: String,
    pub concurrency: u32,
}

/// How this replica works its queues.
#[derive(Debug, Clone, PartialEq)]
pub struct JobsConfig {
    pub queues: Vec<QueueConfig>,
    /// Most attempts of one tenant running at once in one queue, over every replica.
    pub tenant_cap: u32,
    /// How often an idle queue looks for due work without being woken.
    pub poll: Duration,
    /// How long a lease lasts unrenewed; renewed every third of it.
    pub lease: Duration,
    /// How often expired leases are looked for.
    pub rescue_every: Duration,
    /// How long running attempts may take to finish after SIGTERM.
    pub grace: Duration,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            queues: vec![
                QueueConfig {
                    name: "default".into(),
                    concurrency: 4,
                },
                QueueConfig {
                    name: "maintenance".into(),
                    concurrency: 1,
                },
                QueueConfig {
                    name: crate::server::notifications::jobs::QUEUE.into(),
                    concurrency: 2,
                },
            ],
            tenant_cap: 2,
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            rescue_every: Duration::from_secs(15),
            grace: Duration::from_secs(10),
        }
    }
}

/// The attempts running in this replica: id → (lease token, the task running it).
type Running = Arc<Mutex<HashMap<i64, (Claimed, AbortHandle)>>>;

/// What every loop of one replica's workers shares.
#[derive(Clone)]
struct Workers {
    store: Store,
    registry: Arc<Registry>,
    metrics: JobMetrics,
    running: Running,
    completer: Completer,
    /// Each attempt's tenant, remembered for a moment (a busy queue would otherwise read the
    /// tenants table once a job).
    tenants: Arc<TenantCache>,
}

/// Runs the workers until `stop` fires, then hands back what is still running and returns.
pub async fn run(
    store: Store,
    registry: Arc<Registry>,
    metrics: JobMetrics,
    config: JobsConfig,
    stop: Shutdown,
) {
    let worker = format!(
        "{}:{}",
        std::process::id(),
        crate::server::auth::extract::new_token()
            .map(|t| t[..8].to_owned())
            .unwrap_or_default()
    );
    let (completer, completing) = Completer::start(store.clone(), metrics.clone());
    let workers = Workers {
        store: store.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
        running: Arc::default(),
        completer,
        tenants: Arc::new(TenantCache::new(tenants_cache::TTL)),
    };
    let mut loops = JoinSet::new();
    // Ends once the queues' loops (and so every attempt) have ended, their completions written.
    loops.spawn(completing);
    for q in config.queues.clone() {
        let (workers, config, stop, worker) = (
            workers.clone(),
            config.clone(),
            stop.clone(),
            worker.clone(),
        );
        loops.spawn(async move {
            work_queue(&workers, &config, &q, &worker, stop).await;
        });
    }
    loops.spawn(renew_leases(
        store.clone(),
        config.lease,
        workers.running.clone(),
        stop.clone(),
    ));
    drop(workers);
    loops.spawn(crate::server::jobs::beat::run(
        store.clone(),
        registry.clone(),
        config.poll,
        stop.clone(),
    ));
    loops.spawn(crate::server::jobs::wake::listen(
        store.clone(),
        stop.clone(),
    ));
    loops.spawn(rescue_expired(
        store.clone(),
        metrics,
        config.rescue_every,
        stop,
    ));
    tracing::info!(worker = %worker, queues = config.queues.len(), "job workers started");
    while loops.join_next().await.is_some() {}
    tracing::info!("job workers stopped");
}

async fn work_queue(
    workers: &Workers,
    config: &JobsConfig,
    queue: &QueueConfig,
    worker: &str,
    mut stop: Shutdown,
) {
    let (store, running) = (&workers.store, &workers.running);
    let mut woken = store.job_wakeups();
    let mut attempts = JoinSet::new();
    let lease_ms = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
    // While attempts run and jobs wait, a freed slot waits up to `GATHER` for half the queue's
    // slots to be free, so a busy queue claims in batches rather than one job a claim; new work
    // (a wake-up) or the poll claims at once. Once a claim found fewer jobs than it asked for,
    // the queue is drained: nothing is claimed until a wake-up or the poll.
    const GATHER: Duration = Duration::from_millis(5);
    let (mut eager, mut drained) = (true, false);
    loop {
        if stop.is_fired() {
            break;
        }
        let free = queue.concurrency.saturating_sub(attempts.len() as u32);
        if free > 0 && (eager || half_free(attempts.len(), free, queue.concurrency)) {
            eager = false;
            let req = ClaimRequest {
                queue: &queue.name,
                limit: free,
                tenant_cap: config.tenant_cap,
                worker,
                lease_ms,
            };
            match store.claim_jobs(req).await {
                Ok(claimed) => {
                    drained = (claimed.len() as u32) < free;
                    let now = now_ms();
                    for job in claimed {
                        workers.metrics.started(&job, now);
                        // Held while spawning, so the attempt cannot end (and remove itself)
                        // before it is listed.
                        let mut listed = running.lock();
                        let abort =
                            attempts.spawn(attempt(workers.clone(), job.clone(), stop.clone()));
                        listed.insert(job.id, (job, abort));
                    }
                }
                Err(e) => tracing::warn!(queue = %queue.name, error = %e, "claiming jobs failed"),
            }
        }
        let free = queue.concurrency.saturating_sub(attempts.len() as u32);
        let (full, gathering) = (
            free == 0,
            free > 0 && !drained && !half_free(attempts.len(), free, queue.concurrency),
        );
        tokio::select! {
            Ok(()) = woken.changed(), if !full => (eager, drained) = (true, false),
            () = tokio::time::sleep(GATHER), if gathering => eager = true,
            () = tokio::time::sleep(config.poll), if !full => (eager, drained) = (true, false),
            Some(_) = attempts.join_next(), if !attempts.is_empty() => {}
            () = stop.wait() => break,
        }
    }
    // Shutdown: the attempts under way get the grace period, then go back to the queue.
    let deadline = tokio::time::sleep(config.grace);
    tokio::pin!(deadline);
    while !attempts.is_empty() {
        tokio::select! {
            _ = attempts.join_next() => {}
            () = &mut deadline => break,
        }
    }
    attempts.abort_all();
    while attempts.join_next().await.is_some() {}
    let left: Vec<Claimed> = {
        let mut r = running.lock();
        let ours: Vec<i64> = r
            .iter()
            .filter(|(_, (job, _))| job.queue == queue.name)
            .map(|(id, _)| *id)
            .collect();
        ours.into_iter()
            .filter_map(|id| r.remove(&id))
            .map(|(job, _)| job)
            .collect()
    };
    for job in &left {
        workers.metrics.ended(job, Outcome::Interrupted);
        match store.fail_job(job, Failure::Interrupted).await {
            Ok(_) => tracing::info!(job = job.id, "job handed back at shutdown"),
            Err(e) => {
                tracing::warn!(job = job.id, error = %e, "handing a job back failed: its lease will expire")
            }
        }
    }
}

/// Whether a queue with `running` attempts and `free` of `concurrency` slots claims now rather
/// than gathering more free slots first: when it is idle or half its slots are free.
fn half_free(running: usize, free: u32, concurrency: u32) -> bool {
    running == 0 || free * 2 >= concurrency
}

/// Runs one attempt to its end and records how it ended.
async fn attempt(workers: Workers, job: Claimed, stop: Shutdown) {
    let Workers {
        store,
        registry,
        metrics,
        running,
        completer,
        tenants,
    } = workers;
    let span = tracing::info_span!("job", id = job.id, kind = %job.kind, tenant = job.tenant_id,
                                   attempt = job.attempt, request_id = job.request_id.as_deref().unwrap_or(""));
    async {
        let failure = match registry.kind(&job.kind) {
            None => Some(Failure::Discard {
                message: format!("this server has no job kind `{}`", job.kind),
            }),
            Some(kind) => {
                let started = std::time::Instant::now();
                let outcome = run_handler(&store, &tenants, kind, &job, stop).await;
                metrics.ran(&job, started.elapsed());
                tracing::info!(ms = started.elapsed().as_millis() as u64, ok = outcome.is_ok(), "job attempt ended");
                match outcome {
                    Ok((Done::Result(_), true)) => {
                        metrics.ended(&job, Outcome::Completed);
                        None
                    }
                    // A job a person follows: in its tenant's transaction, with its message.
                    Ok((Done::Result(result), false)) if crate::server::jobs::live::watched(&job) => {
                        let outcome = match tenant_scope(&store, &tenants, &job).await {
                            Some(scope) => match store.complete_watched_job(&scope, &job, result).await {
                                Ok(true) => Outcome::Completed,
                                Ok(false) => Outcome::Lost,
                                Err(e) => {
                                    tracing::error!(error = %e, "completing a job failed: its lease will expire");
                                    Outcome::Lost
                                }
                            },
                            None => Outcome::Lost,
                        };
                        metrics.ended(&job, outcome);
                        None
                    }
                    // Recorded (and counted) by the completer with the next batch.
                    Ok((Done::Result(result), false)) => {
                        if !completer.submit(job.clone(), result) {
                            tracing::error!("the completer has stopped: the job's lease will expire");
                            metrics.ended(&job, Outcome::Lost);
                        }
                        None
                    }
                    Ok((Done::Snooze(d), _)) => Some(Failure::Snooze {
                        until_ms: now_ms() + millis(d),
                    }),
                    Err(Failed::Discard(message)) => Some(Failure::Discard { message }),
                    Err(Failed::Retry(message)) => Some(Failure::Error {
                        message,
                        retry_at_ms: now_ms() + millis(kind.options.backoff.draw(job.attempt)),
                    }),
                }
            }
        };
        if let Some(failure) = failure {
            let scope = match crate::server::jobs::live::watched(&job) {
                true => tenant_scope(&store, &tenants, &job).await,
                false => None,
            };
            let recorded = match &scope {
                Some(scope) => store.fail_watched_job(scope, &job, failure).await,
                None => store.fail_job(&job, failure).await,
            };
            let outcome = match recorded {
                Ok(Some(state)) => {
                    tracing::info!(state = state.as_str(), "job attempt failed");
                    Outcome::of_state(state)
                }
                Ok(None) => {
                    tracing::warn!("job failed after its lease was lost: not recorded");
                    Outcome::Lost
                }
                Err(e) => {
                    tracing::error!(error = %e, "recording a failed attempt failed: its lease will expire");
                    Outcome::Lost
                }
            };
            metrics.ended(&job, outcome);
        }
    }
    .instrument(span)
    .await;
    running.lock().remove(&job.id);
}

/// The job's tenant's scope, if it is active.
async fn tenant_scope(
    store: &Store,
    tenants: &TenantCache,
    job: &Claimed,
) -> Option<crate::server::store::TenantScope> {
    tenants
        .get_by_id(store, job.tenant_id)
        .await
        .ok()
        .flatten()
        .and_then(|t| t.scope())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The handler's outcome and whether it completed the job itself; a panic or the time limit
/// are failures to retry.
async fn run_handler(
    store: &Store,
    tenants: &TenantCache,
    kind: &crate::server::jobs::registry::Kind,
    job: &Claimed,
    stop: Shutdown,
) -> Result<(Done, bool), Failed> {
    let scope = if job.tenant_id == 0 {
        None
    } else {
        match tenants
            .get_by_id(store, job.tenant_id)
            .await
            .map(|t| t.and_then(|t| t.scope()))
        {
            Ok(Some(scope)) => Some(scope),
            Ok(None) => {
                return Err(Failed::Retry(
                    "the job's tenant is suspended or gone: not run".into(),
                ));
            }
            Err(e) => return Err(Failed::Retry(e.to_string())),
        }
    };
    let waited = match &job.waits {
        None => Vec::new(),
        Some(waits) => {
            let waited = store
                .job_waited(job.id)
                .await
                .map_err(|e| Failed::Retry(e.to_string()))?;
            if let Some(why) = crate::server::jobs::waits::unmet(waits.until, &waited) {
                return Err(Failed::Discard(why));
            }
            waited
        }
    };
    let confirmed = Arc::new(AtomicBool::new(false));
    let run = JobRun {
        store: store.clone(),
        scope,
        job: job.clone(),
        waited,
        stop,
        confirmed: confirmed.clone(),
    };
    let handler = AssertUnwindSafe((kind.handler)(run, job.args.clone())).catch_unwind();
    match tokio::time::timeout(kind.options.timeout, handler).await {
        Err(_) => Err(Failed::Retry(format!(
            "timed out after {} s",
            kind.options.timeout.as_secs_f64()
        ))),
        Ok(Err(panic)) => Err(Failed::Retry(format!("panicked: {}", panic_text(&*panic)))),
        Ok(Ok(out)) => out.map(|done| (done, confirmed.load(Ordering::SeqCst))),
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// Every third of a lease, renews the leases of this replica's running attempts; an attempt
/// whose lease was lost (cancelled, or rescued elsewhere after a stall) is stopped.
async fn renew_leases(store: Store, lease: Duration, running: Running, mut stop: Shutdown) {
    let mut every = tokio::time::interval(lease / 3);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.wait() => return,
        }
        let held: Vec<(i64, String)> = running
            .lock()
            .iter()
            .map(|(id, (job, _))| (*id, job.lease_token.clone()))
            .collect();
        if held.is_empty() {
            continue;
        }
        match store.renew_job_leases(held, now_ms() + millis(lease)).await {
            Ok(lost) => {
                for id in lost {
                    if let Some((_, abort)) = running.lock().remove(&id) {
                        abort.abort();
                        tracing::warn!(
                            job = id,
                            "job stopped: its lease was lost (cancelled or given to another worker)"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing job leases failed"),
        }
    }
}

/// Takes back expired leases, on every replica (each expired attempt is taken back once).
async fn rescue_expired(store: Store, metrics: JobMetrics, every: Duration, mut stop: Shutdown) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.wait() => return,
        }
        match store.rescue_jobs(now_ms()).await {
            Ok((0, _)) => {}
            Ok((n, discarded)) => {
                metrics.rescued(n, discarded);
                tracing::warn!(
                    rescued = n,
                    discarded,
                    "jobs whose lease expired were taken back"
                );
            }
            Err(e) => tracing::warn!(error = %e, "rescuing jobs failed"),
        }
    }
}
