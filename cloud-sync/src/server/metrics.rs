//! Prometheus metrics of the cloud server.

use prometheus_client::{
    encoding::EncodeLabelSet, metrics::counter::Counter, metrics::family::Family,
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub result: &'static str,
}

pub(crate) struct Metrics {
    registry: Registry,
    pub sync_items: Family<ResultLabel, Counter>,
    pub sync_batches: Counter,
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
        Self {
            registry,
            sync_items,
            sync_batches,
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
