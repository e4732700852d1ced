//! Prometheus metrics of the node.

use std::sync::atomic::AtomicI64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use rollcall_protocol::wire::Decision;

/// Buckets of the spoof score histogram, around the attack threshold of 0.2.
const SPOOF_BUCKETS: [f64; 8] = [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: &'static str,
}

pub struct Metrics {
    registry: Registry,
    checkins: Family<DecisionLabel, Counter>,
    pub rejected_frames: Counter,
    pub outbox_pending: Gauge,
    pub outbox_dead: Gauge,
    outbox_records_pending: Gauge,
    /// The version (`updated_ms`) of the cloud's site configuration in force; 0: the config
    /// file's.
    pub site_config_version_ms: Gauge,
    outbox_records_dead: Gauge,
    /// Age of the oldest event not yet synced (0 when none waits).
    pub outbox_oldest_pending_s: Gauge,
    pub sync_pushes: Counter,
    pub sync_errors: Counter,
    pub sync_last_success_ms: Gauge<i64, AtomicI64>,
    pub sync_last_error_ms: Gauge<i64, AtomicI64>,
    pub osdp_pd_online: Gauge,
    pub osdp_alarms: Counter,
    pub osdp_card_reads: Counter,
    pub osdp_faults: Counter,
    pub turnstile_pulses: Counter,
    pub turnstile_failures: Counter,
    door_alarms: Family<KindLabel, Counter>,
    pub tamper_alarms: Counter,
    passive_spoof_score: Histogram,
    passive_attacks: Counter,
    gallery_templates: Gauge,
    gallery_search: Family<StrategyLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StrategyLabel {
    strategy: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

impl Metrics {
    /// Sets the outbox gauges (depth, dead letters, age of the oldest pending item).
    pub fn observe_outbox(&self, stats: &crate::store::OutboxStats) {
        self.outbox_pending.set(stats.pending as i64);
        self.outbox_dead.set(stats.dead as i64);
        self.outbox_records_pending
            .set(i64::try_from(stats.records.pending).unwrap_or(i64::MAX));
        self.outbox_records_dead
            .set(i64::try_from(stats.records.dead).unwrap_or(i64::MAX));
        let age_s = stats
            .oldest_pending_ms
            .map_or(0, |t| (crate::store::now_ms() - t).max(0) / 1000);
        self.outbox_oldest_pending_s.set(age_s);
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rollcall_node");
        let m = Self {
            checkins: Family::default(),
            rejected_frames: Counter::default(),
            outbox_pending: Gauge::default(),
            outbox_dead: Gauge::default(),
            outbox_records_pending: Gauge::default(),
            site_config_version_ms: Gauge::default(),
            outbox_records_dead: Gauge::default(),
            outbox_oldest_pending_s: Gauge::default(),
            sync_pushes: Counter::default(),
            sync_errors: Counter::default(),
            sync_last_success_ms: Gauge::default(),
            sync_last_error_ms: Gauge::default(),
            osdp_pd_online: Gauge::default(),
            osdp_alarms: Counter::default(),
            osdp_card_reads: Counter::default(),
            osdp_faults: Counter::default(),
            turnstile_pulses: Counter::default(),
            turnstile_failures: Counter::default(),
            door_alarms: Family::default(),
            tamper_alarms: Counter::default(),
            passive_spoof_score: Histogram::new(SPOOF_BUCKETS),
            passive_attacks: Counter::default(),
            gallery_templates: Gauge::default(),
            gallery_search: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "checkins",
            "Check-ins decided, by decision",
            m.checkins.clone(),
        );
        registry.register(
            "rejected_frames",
            "Check-in frames refused before a decision (no face, poor quality, bad image)",
            m.rejected_frames.clone(),
        );
        registry.register(
            "outbox_pending",
            "Events waiting to be synced",
            m.outbox_pending.clone(),
        );
        registry.register(
            "outbox_dead",
            "Events the cloud rejected (dead letters)",
            m.outbox_dead.clone(),
        );
        registry.register(
            "site_config_version_ms",
            "Version (ms since the epoch) of the cloud's site configuration in force; 0: the config file's",
            m.site_config_version_ms.clone(),
        );
        registry.register(
            "outbox_records_pending",
            "Alarms and audit lines waiting to be synced",
            m.outbox_records_pending.clone(),
        );
        registry.register(
            "outbox_records_dead",
            "Alarms and audit lines the cloud rejected",
            m.outbox_records_dead.clone(),
        );
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "How long the oldest event not yet synced has waited (0 when none waits)",
            m.outbox_oldest_pending_s.clone(),
        );
        registry.register(
            "sync_pushes",
            "Successful sync pushes",
            m.sync_pushes.clone(),
        );
        registry.register("sync_errors", "Failed sync attempts", m.sync_errors.clone());
        registry.register(
            "sync_last_success_ms",
            "Unix time in ms of the last successful sync round (push and pull)",
            m.sync_last_success_ms.clone(),
        );
        registry.register(
            "sync_last_error_ms",
            "Unix time in ms of the last failed sync round (its error is in `rollcall-node doctor` and the log)",
            m.sync_last_error_ms.clone(),
        );
        registry.register(
            "osdp_pd_online",
            "OSDP PDs (turnstile controller and readers) answering now",
            m.osdp_pd_online.clone(),
        );
        registry.register(
            "osdp_alarms",
            "OSDP alarms (reader offline)",
            m.osdp_alarms.clone(),
        );
        registry.register(
            "osdp_card_reads",
            "Cards read by the OSDP reader",
            m.osdp_card_reads.clone(),
        );
        registry.register(
            "osdp_faults",
            "Malformed or refused OSDP exchanges",
            m.osdp_faults.clone(),
        );
        registry.register(
            "turnstile_pulses",
            "Turnstile relay pulses acknowledged",
            m.turnstile_pulses.clone(),
        );
        registry.register(
            "turnstile_failures",
            "Granted check-ins whose relay pulse failed",
            m.turnstile_failures.clone(),
        );
        registry.register(
            "door_alarms",
            "Door alarms, by kind (forced, held_open)",
            m.door_alarms.clone(),
        );
        registry.register(
            "tamper_alarms",
            "Tamper or power-failure reports from the reader",
            m.tamper_alarms.clone(),
        );
        registry.register(
            "passive_spoof_score",
            "The anti-spoofing model's score of check-in faces (0 live; the model's authors call \
             above 0.2 an attack)",
            m.passive_spoof_score.clone(),
        );
        registry.register(
            "passive_attacks",
            "Check-in faces the anti-spoofing model scored above its attack threshold",
            m.passive_attacks.clone(),
        );
        registry.register(
            "gallery_templates",
            "Face templates in the live gallery, at the last check-in",
            m.gallery_templates.clone(),
        );
        registry.register(
            "gallery_search",
            "1 for the way the last check-in searched the gallery: exact (every template in \
             f32), quantized (int8 scan, exact re-rank) or graph (HNSW candidates, exact scores)",
            m.gallery_search.clone(),
        );
        Self { registry, ..m }
    }

    pub fn observe_gallery(&self, templates: usize, strategy: rollcall_vision::Strategy) {
        use rollcall_vision::Strategy;
        self.gallery_templates
            .set(i64::try_from(templates).unwrap_or(i64::MAX));
        for (name, s) in [
            ("exact", Strategy::Exact),
            ("quantized", Strategy::Quantized),
            ("graph", Strategy::Graph),
        ] {
            self.gallery_search
                .get_or_create(&StrategyLabel { strategy: name })
                .set(i64::from(s == strategy));
        }
    }

    pub fn observe_passive_liveness(&self, p: &rollcall_vision::PassiveLiveness) {
        self.passive_spoof_score.observe(f64::from(p.spoof_score));
        if p.is_attack() {
            self.passive_attacks.inc();
        }
    }

    pub fn checkin(&self, decision: Decision) {
        self.checkins
            .get_or_create(&DecisionLabel {
                decision: decision.as_str(),
            })
            .inc();
    }

    pub fn door_alarm(&self, kind: &'static str) {
        self.door_alarms.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
