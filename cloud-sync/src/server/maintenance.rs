//! The server's background upkeep: every minute the rate limiters' idle keys are pruned (in
//! each replica), and the `maintenance.purge` job — run hourly by the platform schedule
//! `purge-expired` — purges what has expired, tenant by tenant, one step — one transaction —
//! at a time. A shutdown is looked at before each step, so SIGTERM waits for the step under
//! way and starts no other.

use std::sync::Arc;

use serde::Deserialize;

use crate::server::{
    http::router::AppState,
    jobs::registry::{Done, Failed, JobRun, KindOptions, Registry},
    store::{Store, StoreError, Tenant, TenantScope},
};
use rollcall_service::shutdown::Shutdown;

/// Every minute, until `stop` fires, prunes the rate limiters' idle keys (this replica's own
/// memory; the purges are platform jobs on a schedule, see [`register`]).
pub(crate) async fn run(state: Arc<AppState>, mut stop: Shutdown) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.wait() => return,
        }
        state.limits.prune();
    }
}

/// The purge takes no arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoArgs {}

/// Registers `maintenance.purge`, run hourly by the platform schedule `purge-expired`.
pub(crate) fn register(r: &mut Registry) {
    r.register(
        PURGE_KIND,
        KindOptions {
            queue: "maintenance",
            max_attempts: 3,
            timeout: std::time::Duration::from_secs(1800),
            ..KindOptions::default()
        },
        purge,
    );
}

pub(crate) const PURGE_KIND: &str = "maintenance.purge";

/// One purge step of one tenant.
#[derive(Debug, Clone, Copy)]
enum Purge {
    /// Browser sessions that ended (expired or logged out) a day ago or more.
    Sessions,
    /// People changes a later change of the same person supersedes.
    PeopleChanges,
    /// Idempotency keys older than their 24 hours.
    IdempotencyKeys,
    /// Real-time messages past the stream's retention window, and expired tickets.
    Stream,
    /// Notifications read 90 days ago, or made a year ago, whose mail is settled.
    Notifications,
}

impl Purge {
    const ALL: [Purge; 5] = [
        Purge::Sessions,
        Purge::PeopleChanges,
        Purge::IdempotencyKeys,
        Purge::Stream,
        Purge::Notifications,
    ];

    fn what(self) -> &'static str {
        match self {
            Purge::Sessions => "ended browser sessions",
            Purge::PeopleChanges => "superseded people changes",
            Purge::IdempotencyKeys => "expired idempotency keys",
            Purge::Stream => "real-time messages past retention and expired tickets",
            Purge::Notifications => "old notifications",
        }
    }

    /// Runs the step (one transaction); how many rows went.
    async fn run(self, store: &Store, scope: &TenantScope) -> Result<u64, StoreError> {
        match self {
            Purge::Sessions => {
                let day_ago = rollcall_service::clock::now_ms() - 24 * 3600 * 1000;
                store.purge_sessions(scope, day_ago).await
            }
            Purge::PeopleChanges => store.compact_person_changes(scope).await,
            Purge::IdempotencyKeys => store.idem_purge(scope).await,
            Purge::Stream => {
                let now = rollcall_service::clock::now_ms();
                let messages = store
                    .prune_stream(scope, now - crate::server::realtime::stream::RETENTION_MS)
                    .await?;
                Ok(messages + store.prune_ws_tickets(scope, now).await?)
            }
            Purge::Notifications => {
                store
                    .prune_notifications(scope, rollcall_service::clock::now_ms())
                    .await
            }
        }
    }
}

/// Runs every purge step of every active tenant, one transaction each; on shutdown it stops
/// between steps and snoozes (the next replica to claim it starts again). A failed step is
/// logged and the rest go on; the job fails (and retries) if any did.
async fn purge(run: JobRun, _: NoArgs) -> Result<Done, Failed> {
    let tenants = run.store.tenants().await?;
    tracing::info!(tenants = tenants.len(), "purge started");
    let (mut rows, mut failed) = (0, Vec::new());
    for scope in tenants.iter().filter_map(Tenant::scope) {
        for step in Purge::ALL {
            if run.stop.is_fired() {
                tracing::info!("purge stopped by shutdown");
                return Ok(Done::Snooze(std::time::Duration::ZERO));
            }
            match step.run(&run.store, &scope).await {
                Ok(0) => {}
                Ok(n) => {
                    rows += n;
                    tracing::info!(tenant = scope.slug(), rows = n, "purged {}", step.what());
                }
                Err(e) => {
                    tracing::warn!(tenant = scope.slug(), error = %e, "purging {} failed", step.what());
                    failed.push(format!("{} of {}: {e}", step.what(), scope.slug()));
                }
            }
        }
    }
    tracing::info!(rows, "purge finished");
    if failed.is_empty() {
        Ok(Done::Result(Some(serde_json::json!({
            "tenants": tenants.len(),
            "rows": rows,
        }))))
    } else {
        Err(Failed::Retry(failed.join("; ")))
    }
}
