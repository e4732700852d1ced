//! Retention: deletes old events the node no longer needs and kept frames past their TTL, at
//! start and then hourly.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

use rollcall_service::shutdown::Shutdown;

use crate::store::{NodeStore, StoreError, now_ms};

const EVERY: Duration = Duration::from_secs(3600);

/// What to delete.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Events older than this many days (see [`NodeStore::prune`]); 0 keeps them.
    pub days: u32,
    /// Events never sent anywhere age out too (no cloud configured).
    pub standalone: bool,
    /// Kept frames older than this; `None` when no frames are kept.
    pub frame_ttl: Option<Duration>,
}

/// One round: (events, frames) deleted.
fn prune(store: &Mutex<NodeStore>, policy: Policy) -> Result<(usize, usize), StoreError> {
    let mut store = store.lock();
    let now = now_ms();
    let events = match policy.days {
        0 => 0,
        days => store.prune(now - i64::from(days) * 86_400_000, policy.standalone)?,
    };
    let frames = match policy.frame_ttl {
        Some(ttl) => store.prune_frames(now - ttl.as_millis() as i64)?,
        None => 0,
    };
    Ok((events, frames))
}

/// Prunes by `policy` until `stop` fires.
pub async fn run(store: Arc<Mutex<NodeStore>>, policy: Policy, mut stop: Shutdown) {
    loop {
        let store = store.clone();
        match tokio::task::spawn_blocking(move || prune(&store, policy)).await {
            Ok(Ok((0, 0))) => {}
            Ok(Ok((events, frames))) => {
                tracing::info!(
                    events,
                    frames,
                    days = policy.days,
                    "retention: deleted old events and frames"
                );
            }
            Ok(Err(e)) => tracing::error!(error = %e, "retention: pruning failed"),
            Err(e) => tracing::error!(error = %e, "retention: pruning task failed"),
        }
        tokio::select! {
            () = stop.wait() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
