//! How this process's hub hears that a tenant's stream has new messages: a commit that
//! published marks its tenant (SQLite: in process, after the commit; PostgreSQL: a
//! `pg_notify('rollcall_stream', tenant)` delivered at commit to every replica's listening
//! connection, `jobs::wake`). Marks coalesce: many commits before the hub looks cost one read
//! of the stream. A reconnected listener marks every tenant, and the hub then reads every
//! stream it serves, so a notification lost meanwhile is repaired.

use std::{collections::HashSet, sync::Arc};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The channel of the notifications (`Exec::published`).
pub(crate) const CHANNEL: &str = "rollcall_stream";

/// What the hub has not looked at yet.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Dirty {
    pub tenants: HashSet<i64>,
    /// Every tenant (the listener reconnected, or a payload was unreadable).
    pub all: bool,
}

#[derive(Clone, Default)]
pub(crate) struct StreamWake {
    inner: Arc<(Mutex<Dirty>, Notify)>,
}

impl StreamWake {
    pub(crate) fn mark(&self, tenant: i64) {
        self.inner.0.lock().tenants.insert(tenant);
        self.inner.1.notify_one();
    }

    pub(crate) fn mark_all(&self) {
        self.inner.0.lock().all = true;
        self.inner.1.notify_one();
    }

    /// Waits for a mark, then takes every mark made so far.
    pub(crate) async fn take(&self) -> Dirty {
        self.inner.1.notified().await;
        std::mem::take(&mut *self.inner.0.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn marks_coalesce_until_taken() {
        let w = StreamWake::default();
        w.mark(1);
        w.mark(2);
        w.mark(1);
        let d = w.take().await;
        assert_eq!(d.tenants, HashSet::from([1, 2]));
        assert!(!d.all);
        w.mark_all();
        assert!(w.take().await.all);
    }
}
