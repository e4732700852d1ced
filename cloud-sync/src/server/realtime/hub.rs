//! This replica's hub: its live connections by tenant, and the pump that reads each served
//! tenant's stream after a commit marked it (`wake`) and hands every new message to the
//! connections subscribed to its topic.
//!
//! Each connection has a bounded queue ([`QUEUE`] messages). Handing over never waits: a
//! connection whose queue is full is a slow consumer — it is dropped from the hub and told to
//! close with code 4008, and it can reconnect and resume from its last `seq` — so one stalled
//! client never delays the others or a publisher (publishers only write the stream; the pump
//! is the only reader here).

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::server::{http::router::AppState, realtime::stream::Message};
use rollcall_service::shutdown::Shutdown;

/// Messages a connection may have waiting before it counts as a slow consumer.
pub const QUEUE: usize = 256;
/// Messages read from a stream at a time.
const PAGE: u32 = 500;
/// How often the pump reads every served stream even without a mark (a lost notification
/// costs at most this much delay).
const SWEEP: Duration = Duration::from_secs(5);

/// One live connection as the hub sees it.
pub(crate) struct Conn {
    id: u64,
    /// What it subscribed to; changed only through [`Hub::subscribe`] and
    /// [`Hub::unsubscribe`], which keep the tenant's topic index beside it.
    pub topics: Mutex<HashSet<String>>,
    queue: mpsc::Sender<Arc<Delivery>>,
    /// Set when the hub dropped it; `kick` then wakes its task to close.
    pub slow: AtomicBool,
    pub kick: Notify,
}

/// A message as it goes out: serialised once, however many connections take it.
pub(crate) struct Delivery {
    pub message: Message,
    pub text: axum::extract::ws::Utf8Bytes,
}

struct Tenant {
    /// The last number handed to this tenant's connections.
    cursor: i64,
    conns: Vec<Arc<Conn>>,
    /// The connections by topic they subscribed to, so a message costs its subscribers, not
    /// the tenant's connections (`tenant` subscribers also take every `site:` message).
    by_topic: HashMap<String, Vec<Arc<Conn>>>,
}

impl Tenant {
    fn forget(&mut self, gone: &HashSet<u64>) {
        self.conns.retain(|c| !gone.contains(&c.id));
        self.by_topic.retain(|_, list| {
            list.retain(|c| !gone.contains(&c.id));
            !list.is_empty()
        });
    }
}

/// The hub's Prometheus figures (this replica's).
#[derive(Default)]
pub(crate) struct HubCounts {
    pub connections: prometheus_client::metrics::gauge::Gauge,
    pub delivered: prometheus_client::metrics::counter::Counter,
    pub slow_consumers: prometheus_client::metrics::counter::Counter,
}

pub(crate) struct Hub {
    pub counts: HubCounts,
    tenants: Mutex<HashMap<i64, Tenant>>,
    next_id: AtomicU64,
    /// Connections open (their tasks), and a wake-up when it drops to 0.
    live: AtomicUsize,
    drained: Notify,
    /// Fires at shutdown: every connection closes with 1001.
    pub stop: Shutdown,
}

/// A connection's membership; leaving the hub when dropped.
pub(crate) struct Member {
    hub: Arc<Hub>,
    tenant: i64,
    pub conn: Arc<Conn>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.hub.leave(self.tenant, self.conn.id);
        self.hub.counts.connections.dec();
        if self.hub.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.hub.drained.notify_waiters();
        }
    }
}

impl Hub {
    pub(crate) fn new(stop: Shutdown) -> Self {
        Self {
            counts: HubCounts::default(),
            tenants: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            drained: Notify::new(),
            stop,
        }
    }

    /// Adds a connection of `tenant`, whose stream is at `head` now (where the pump starts for
    /// a tenant it did not serve yet).
    pub(crate) fn join(
        self: &Arc<Self>,
        tenant: i64,
        head: i64,
    ) -> (Member, mpsc::Receiver<Arc<Delivery>>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            topics: Mutex::new(HashSet::new()),
            queue,
            slow: AtomicBool::new(false),
            kick: Notify::new(),
        });
        self.tenants
            .lock()
            .entry(tenant)
            .or_insert(Tenant {
                cursor: head,
                conns: Vec::new(),
                by_topic: HashMap::new(),
            })
            .conns
            .push(conn.clone());
        self.live.fetch_add(1, Ordering::AcqRel);
        self.counts.connections.inc();
        let member = Member {
            hub: self.clone(),
            tenant,
            conn,
        };
        (member, rx)
    }

    fn leave(&self, tenant: i64, id: u64) {
        let mut tenants = self.tenants.lock();
        if let Some(t) = tenants.get_mut(&tenant) {
            t.forget(&HashSet::from([id]));
            if t.conns.is_empty() {
                tenants.remove(&tenant);
            }
        }
    }

    /// Adds `topics` to the member's subscriptions.
    pub(crate) fn subscribe(&self, member: &Member, topics: &[String]) {
        let mut tenants = self.tenants.lock();
        let mut held = member.conn.topics.lock();
        let Some(t) = tenants.get_mut(&member.tenant) else {
            return;
        };
        for topic in topics {
            if held.insert(topic.clone()) {
                t.by_topic
                    .entry(topic.clone())
                    .or_default()
                    .push(member.conn.clone());
            }
        }
    }

    /// Drops `topics` from the member's subscriptions.
    pub(crate) fn unsubscribe(&self, member: &Member, topics: &[String]) {
        let mut tenants = self.tenants.lock();
        let mut held = member.conn.topics.lock();
        let Some(t) = tenants.get_mut(&member.tenant) else {
            return;
        };
        for topic in topics {
            if held.remove(topic)
                && let Some(list) = t.by_topic.get_mut(topic)
            {
                list.retain(|c| c.id != member.conn.id);
                if list.is_empty() {
                    t.by_topic.remove(topic);
                }
            }
        }
    }

    /// Registers the hub's figures (`rollcall_cloud_realtime_*`).
    pub(crate) fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "realtime_connections",
            "WebSocket connections open on this replica",
            self.counts.connections.clone(),
        );
        registry.register(
            "realtime_delivered",
            "Messages handed to WebSocket connections",
            self.counts.delivered.clone(),
        );
        registry.register(
            "realtime_slow_consumers",
            "WebSocket connections closed as slow consumers (4008)",
            self.counts.slow_consumers.clone(),
        );
    }

    /// Connections open now.
    pub(crate) fn connections(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits until every connection's task has ended (or `within` passed).
    pub(crate) async fn drained(&self, within: Duration) {
        let wait = async {
            while self.connections() > 0 {
                let notified = self.drained.notified();
                if self.connections() == 0 {
                    break;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(within, wait).await;
    }

    /// The tenants served and where each one's pump stands.
    fn served(&self) -> Vec<(i64, i64)> {
        self.tenants
            .lock()
            .iter()
            .map(|(id, t)| (*id, t.cursor))
            .collect()
    }

    /// Hands `messages` (the tenant's next ones, in order) to its connections subscribed to
    /// their topics, each serialised once; a connection with a full queue is dropped and
    /// kicked.
    pub(crate) fn fan_out(&self, tenant: i64, messages: Vec<Message>) {
        let mut tenants = self.tenants.lock();
        let Some(t) = tenants.get_mut(&tenant) else {
            return;
        };
        let mut gone = HashSet::new();
        for m in messages {
            if m.seq <= t.cursor {
                continue;
            }
            t.cursor = m.seq;
            let text = serde_json::to_string(&m).unwrap_or_default().into();
            let d = Arc::new(Delivery { message: m, text });
            let topic = d.message.topic.as_str();
            let tenant_wide = topic == "tenant" || topic.starts_with("site:");
            let own = t.by_topic.get(topic).into_iter().flatten();
            let wide = t
                .by_topic
                .get("tenant")
                .filter(|_| tenant_wide && topic != "tenant")
                .into_iter()
                .flatten()
                // Subscribed to both: once.
                .filter(|c| !c.topics.lock().contains(topic));
            for c in own.chain(wide) {
                if gone.contains(&c.id) {
                    continue;
                }
                match c.queue.try_send(d.clone()) {
                    Ok(()) => {
                        self.counts.delivered.inc();
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.counts.slow_consumers.inc();
                        c.slow.store(true, Ordering::Release);
                        c.kick.notify_one();
                        gone.insert(c.id);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        gone.insert(c.id);
                    }
                }
            }
        }
        if !gone.is_empty() {
            t.forget(&gone);
        }
    }

    /// Every connection of `tenant` is told to close (its tenant was suspended).
    fn kick_tenant(&self, tenant: i64) {
        if let Some(t) = self.tenants.lock().remove(&tenant) {
            for c in t.conns {
                c.kick.notify_one();
            }
        }
    }
}

/// Until `stop`: reads the streams marked since the last look (and every served one each
/// [`SWEEP`]) and fans their new messages out.
pub(crate) async fn pump(state: Arc<AppState>, mut stop: Shutdown) {
    let wake = state.store.stream_wake();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        let dirty = tokio::select! {
            d = wake.take() => d,
            _ = sweep.tick() => crate::server::realtime::wake::Dirty { all: true, ..Default::default() },
            () = stop.wait() => return,
        };
        for (tenant, cursor) in state.hub.served() {
            if dirty.all || dirty.tenants.contains(&tenant) {
                pump_tenant(&state, tenant, cursor).await;
            }
        }
    }
}

async fn pump_tenant(state: &AppState, tenant: i64, mut cursor: i64) {
    let scope = match state.tenants.get_by_id(&state.store, tenant).await {
        Ok(Some(t)) => match t.scope() {
            Some(scope) => scope,
            None => return state.hub.kick_tenant(tenant),
        },
        Ok(None) => return state.hub.kick_tenant(tenant),
        Err(e) => {
            tracing::warn!(tenant, error = %e, "reading the tenant of a stream failed");
            return;
        }
    };
    loop {
        match state.store.stream_after(&scope, cursor, PAGE).await {
            Ok(page) => {
                let (n, last) = (page.len(), page.last().map(|m| m.seq));
                state.hub.fan_out(tenant, page);
                match last {
                    Some(last) if n == PAGE as usize => cursor = last,
                    _ => return,
                }
            }
            Err(e) => {
                tracing::warn!(tenant = scope.slug(), error = %e, "reading the stream failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: i64, topic: &str) -> Message {
        Message {
            kind: "attendance.events".into(),
            topic: topic.into(),
            seq,
            time: 0,
            data: serde_json::Value::Null,
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_only_its_connection_and_others_get_everything() {
        let (_trigger, stop) = rollcall_service::shutdown::channel();
        let hub = Arc::new(Hub::new(stop));
        let (slow, _slow_rx) = hub.join(7, 0);
        let (fast, mut fast_rx) = hub.join(7, 0);
        let (other, mut other_rx) = hub.join(8, 0);
        for m in [&slow, &fast] {
            hub.subscribe(m, &["site:hq".into()]);
        }
        hub.subscribe(&other, &["tenant".into(), "site:x".into()]);
        let n = QUEUE as i64 + 10;
        let mut received = 0;
        for seq in 1..=n {
            hub.fan_out(7, vec![msg(seq, "site:hq"), msg(seq, "site:hq")]);
            while let Ok(m) = fast_rx.try_recv() {
                assert_eq!(m.message.seq, received + 1, "in order, once");
                assert!(
                    m.text
                        .as_str()
                        .contains(&format!("\"seq\":{}", m.message.seq))
                );
                received = m.message.seq;
            }
        }
        assert_eq!(received, n);
        assert!(
            slow.conn.slow.load(Ordering::Acquire),
            "the stalled one is dropped"
        );
        assert!(!fast.conn.slow.load(Ordering::Acquire));
        assert!(other_rx.try_recv().is_err(), "another tenant gets nothing");
        hub.fan_out(
            8,
            vec![msg(1, "user:u9"), msg(2, "site:x"), msg(3, "site:y")],
        );
        // Subscribed to the tenant and to site:x: site:x once, and site:y through the tenant.
        assert_eq!(other_rx.try_recv().map(|m| m.message.seq).ok(), Some(2));
        assert_eq!(other_rx.try_recv().map(|m| m.message.seq).ok(), Some(3));
        assert!(other_rx.try_recv().is_err());
        hub.unsubscribe(&other, &["tenant".into()]);
        hub.fan_out(8, vec![msg(4, "site:y"), msg(5, "site:x")]);
        assert_eq!(other_rx.try_recv().map(|m| m.message.seq).ok(), Some(5));
        assert_eq!(hub.connections(), 3);
        assert_eq!(hub.counts.connections.get(), 3);
        assert_eq!(hub.counts.slow_consumers.get(), 1);
        assert!(hub.counts.delivered.get() >= n as u64);
        drop((slow, fast, other));
        assert_eq!(hub.connections(), 0);
        assert_eq!(hub.counts.connections.get(), 0);
        assert!(hub.served().is_empty());
    }
}
