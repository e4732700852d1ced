//! The server's background upkeep: every minute the rate limiters' idle keys are pruned, and
//! every hour (first at start) what has expired is purged, tenant by tenant, one step — one
//! transaction — at a time. A shutdown is looked at before each step, so SIGTERM waits for the
//! step under way and starts no other.

use std::sync::Arc;

use crate::server::{
    http::router::AppState,
    store::{Store, StoreError, Tenant, TenantScope},
};
use rollcall_service::shutdown::Shutdown;

/// Runs until `stop` fires, never returning in the middle of a purge step.
pub(crate) async fn run(state: Arc<AppState>, mut stop: Shutdown) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    for minute in 0u64.. {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.wait() => return,
        }
        state.limits.prune();
        if minute % 60 == 0 {
            purge_expired(&state.store, &stop).await;
        }
        if stop.is_fired() {
            return;
        }
    }
}

/// One purge step of one tenant.
#[derive(Debug, Clone, Copy)]
enum Purge {
    /// Browser sessions that ended (expired or logged out) a day ago or more.
    Sessions,
    /// People changes a later change of the same person supersedes.
    PeopleChanges,
    /// Idempotency keys older than their 24 hours.
    IdempotencyKeys,
}

impl Purge {
    const ALL: [Purge; 3] = [
        Purge::Sessions,
        Purge::PeopleChanges,
        Purge::IdempotencyKeys,
    ];

    fn what(self) -> &'static str {
        match self {
            Purge::Sessions => "ended browser sessions",
            Purge::PeopleChanges => "superseded people changes",
            Purge::IdempotencyKeys => "expired idempotency keys",
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
        }
    }
}

/// Runs every purge step of every active tenant, unless a shutdown comes first.
async fn purge_expired(store: &Store, stop: &Shutdown) {
    let tenants = match store.tenants().await {
        Ok(t) => t,
        Err(e) => return tracing::warn!(error = %e, "purge skipped: the tenants cannot be listed"),
    };
    tracing::info!(tenants = tenants.len(), "purge started");
    for scope in tenants.iter().filter_map(Tenant::scope) {
        for step in Purge::ALL {
            if stop.is_fired() {
                return tracing::info!("purge stopped by shutdown");
            }
            log_purge(scope.slug(), step.what(), step.run(store, &scope).await);
        }
    }
    tracing::info!("purge finished");
}

/// Logs what one purge step of one tenant removed, or why it failed.
fn log_purge(tenant: &str, what: &str, outcome: Result<u64, StoreError>) {
    match outcome {
        Ok(0) => {}
        Ok(n) => tracing::info!(tenant, rows = n, "purged {what}"),
        Err(e) => tracing::warn!(tenant, error = %e, "purging {what} failed"),
    }
}
