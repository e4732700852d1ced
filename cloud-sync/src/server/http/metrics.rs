//! Prometheus metrics of the cloud server.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub result: &'static str,
}

/// One node of one tenant.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NodeLabel {
    pub tenant: String,
    pub node: String,
}

/// An alarm's kind, one of [`ALARM_KINDS`] or `other`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct AlarmLabel {
    pub kind: &'static str,
}

/// The alarm kinds that get a label of their own (a node may push others: `other`).
pub(crate) const ALARM_KINDS: &[&str] = &[
    "door_forced",
    "door_held_open",
    "door_secured",
    "reader_offline",
    "reader_online",
    "tamper",
    "power_failure",
];

/// The server loop's counts as Prometheus counters.
#[derive(Debug)]
struct ServeCollector(std::sync::Arc<rollcall_service::serve::ServeCounts>);

impl prometheus_client::collector::Collector for ServeCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::{encoding::EncodeMetric, metrics::counter::ConstCounter};
        use std::sync::atomic::Ordering;
        for (name, help, value) in [
            (
                "connections_over_cap",
                "Connections closed at once because --max-connections were open",
                &self.0.over_cap,
            ),
            (
                "requests_timed_out",
                "Requests answered 408 because they took longer than --request-timeout-ms",
                &self.0.timed_out,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

pub(crate) struct Metrics {
    registry: Registry,
    /// Alarms stored, by kind.
    pub alarms: Family<AlarmLabel, Counter>,
    pub sync_items: Family<ResultLabel, Counter>,
    pub sync_batches: Counter,
    /// Per node: the sequence number up to which the cloud holds everything.
    pub node_watermark: Family<NodeLabel, Gauge>,
    /// Per node: when it last pushed (seconds since the epoch).
    pub node_last_push: Family<NodeLabel, Gauge>,
    /// Per node: how old the newest event of its last push was when it arrived (seconds).
    pub node_lag: Family<NodeLabel, Gauge>,
    /// Per node: how many sequence numbers it still owes below the highest held.
    pub node_missing: Family<NodeLabel, Gauge>,
    /// The job workers' and queues' families.
    pub jobs: crate::server::jobs::metrics::JobMetrics,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rollcall_cloud");
        let sync_items = Family::<ResultLabel, Counter>::default();
        let sync_batches = Counter::default();
        registry.register(
            "sync_items",
            "Sync items received, by result (accepted, duplicate, rejected)",
            sync_items.clone(),
        );
        registry.register(
            "sync_batches",
            "Sync push batches received",
            sync_batches.clone(),
        );
        let node_watermark = Family::<NodeLabel, Gauge>::default();
        let node_last_push = Family::<NodeLabel, Gauge>::default();
        let node_lag = Family::<NodeLabel, Gauge>::default();
        let node_missing = Family::<NodeLabel, Gauge>::default();
        registry.register(
            "node_watermark",
            "Sequence number up to which the cloud holds every event of the node",
            node_watermark.clone(),
        );
        registry.register(
            "node_last_push_timestamp_seconds",
            "When the node last pushed",
            node_last_push.clone(),
        );
        registry.register(
            "node_lag_seconds",
            "Age of the newest event of the node's last push when it arrived",
            node_lag.clone(),
        );
        registry.register(
            "node_missing_events",
            "Sequence numbers the node still owes below the highest the cloud holds",
            node_missing.clone(),
        );
        let alarms = Family::<AlarmLabel, Counter>::default();
        registry.register(
            "alarms",
            "Alarms pushed by nodes and stored, by kind",
            alarms.clone(),
        );
        let jobs = crate::server::jobs::metrics::JobMetrics::default();
        jobs.register(&mut registry);
        Self {
            registry,
            jobs,
            alarms,
            sync_items,
            sync_batches,
            node_watermark,
            node_last_push,
            node_lag,
            node_missing,
        }
    }

    /// Records a node's push: its watermark, when, how late its newest accepted event arrived,
    /// and how many sequence numbers it still owes (returned).
    pub fn record_push(
        &self,
        tenant: &str,
        node: &str,
        ack: &rollcall_protocol::wire::PushAck,
        newest_accepted_ms: Option<i64>,
        now_ms: i64,
    ) -> u64 {
        let label = NodeLabel {
            tenant: tenant.to_owned(),
            node: node.to_owned(),
        };
        self.node_watermark
            .get_or_create(&label)
            .set(i64::try_from(ack.watermark).unwrap_or(i64::MAX));
        self.node_last_push.get_or_create(&label).set(now_ms / 1000);
        if let Some(newest) = newest_accepted_ms {
            self.node_lag
                .get_or_create(&label)
                .set((now_ms - newest).max(0) / 1000);
        }
        let owed: u64 = ack
            .missing
            .iter()
            .map(|g| g.last.saturating_sub(g.first) + 1)
            .sum();
        self.node_missing
            .get_or_create(&label)
            .set(i64::try_from(owed).unwrap_or(i64::MAX));
        owed
    }

    /// Counts a stored alarm under its kind.
    pub fn count_alarm(&self, kind: &str) {
        let kind = ALARM_KINDS
            .iter()
            .find(|k| **k == kind)
            .copied()
            .unwrap_or("other");
        self.alarms.get_or_create(&AlarmLabel { kind }).inc();
    }

    /// Counts what the server loop refused (`rollcall_service::serve`), read on each scrape.
    pub fn register_serve_counts(
        &mut self,
        counts: std::sync::Arc<rollcall_service::serve::ServeCounts>,
    ) {
        self.registry
            .register_collector(Box::new(ServeCollector(counts)));
    }

    /// Where other parts of the server register their metrics at start-up.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
