//! Retention: deletes old events the node no longer needs, at start and then hourly.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollcall_cloud::shutdown::Shutdown;

use crate::store::{NodeStore, now_ms};

const EVERY: Duration = Duration::from_secs(3600);

/// Prunes events older than `days` (see [`NodeStore::prune`]) until `stop` fires; with
/// `standalone`, events never sent anywhere age out too.
pub async fn run(store: Arc<Mutex<NodeStore>>, days: u32, standalone: bool, mut stop: Shutdown) {
    loop {
        let store = store.clone();
        let before_ms = now_ms() - i64::from(days) * 86_400_000;
        let pruned = tokio::task::spawn_blocking(move || {
            store
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .prune(before_ms, standalone)
        })
        .await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(events = n, days, "retention: deleted old events"),
            Ok(Err(e)) => tracing::error!(error = %e, "retention: pruning failed"),
            Err(e) => tracing::error!(error = %e, "retention: pruning task failed"),
        }
        tokio::select! {
            () = stop.wait() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
