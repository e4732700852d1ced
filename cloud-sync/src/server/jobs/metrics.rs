//! The job system's Prometheus metrics: attempts by how they ended, run time by kind, time from
//! due to started by queue, rescues, and the depth of each queue by state (counted from the
//! store at each scrape, so every replica reports the same, shared queue).

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use parking_lot::Mutex;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::server::jobs::model::{Claimed, JobState};

/// How one attempt ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Completed,
    /// Failed, to be tried again after its back-off.
    Retried,
    /// Failed its last attempt, or cannot succeed: in the dead-letter queue.
    Discarded,
    /// Asked to run later; not counted as an attempt.
    Snoozed,
    /// Stopped by the server's shutdown and handed back.
    Interrupted,
    /// Its end could not be recorded (its lease was lost, or the database failed): its lease
    /// expires and it is rescued.
    Lost,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Retried => "retried",
            Outcome::Discarded => "discarded",
            Outcome::Snoozed => "snoozed",
            Outcome::Interrupted => "interrupted",
            Outcome::Lost => "lost",
        }
    }

    /// What a recorded failure left the job as.
    pub fn of_state(state: JobState) -> Self {
        match state {
            JobState::Retryable => Outcome::Retried,
            JobState::Discarded | JobState::Cancelled => Outcome::Discarded,
            JobState::Available | JobState::Running => Outcome::Snoozed,
            JobState::Completed => Outcome::Completed,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    queue: String,
    kind: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    queue: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DepthLabels {
    queue: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RescueLabel {
    outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Seconds, from a millisecond to about nine hours.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 25))
}

/// The states a queue's depth is reported in: the jobs not yet finished.
const DEPTH_STATES: [JobState; 3] = [JobState::Available, JobState::Retryable, JobState::Running];

/// The job metrics of one replica; clones share them.
#[derive(Clone)]
pub struct JobMetrics {
    attempts: Family<AttemptLabels, Counter>,
    run_seconds: Histograms<KindLabels>,
    wait_seconds: Histograms<QueueLabel>,
    rescues: Family<RescueLabel, Counter>,
    depth: Family<DepthLabels, Gauge>,
    /// Every queue a depth was reported for, so one that empties reads 0, not its last count.
    seen: Arc<Mutex<BTreeSet<String>>>,
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            run_seconds: Family::new_with_constructor(seconds_histogram),
            wait_seconds: Family::new_with_constructor(seconds_histogram),
            rescues: Family::default(),
            depth: Family::default(),
            seen: Arc::default(),
        }
    }
}

impl std::fmt::Debug for JobMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobMetrics")
    }
}

impl JobMetrics {
    /// Registers the families under `registry`'s prefix (`rollcall_cloud_job_…`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "job_attempts",
            "Job attempts ended, by queue, kind and outcome (completed, retried, discarded, \
             snoozed, interrupted, lost)",
            self.attempts.clone(),
        );
        registry.register(
            "job_run_seconds",
            "How long a job's handler ran, by queue and kind",
            self.run_seconds.clone(),
        );
        registry.register(
            "job_wait_seconds",
            "From when a job was due to when a worker started it, by queue",
            self.wait_seconds.clone(),
        );
        registry.register(
            "job_rescues",
            "Attempts whose lease ran out (their worker died or stalled), by what became of \
             the job (retried or discarded)",
            self.rescues.clone(),
        );
        registry.register(
            "job_queue_depth",
            "Jobs not finished, by queue and state (available, retryable, running), over every \
             replica",
            self.depth.clone(),
        );
    }

    /// A worker started `job` at `now_ms`.
    pub fn started(&self, job: &Claimed, now_ms: i64) {
        self.wait_seconds
            .get_or_create(&QueueLabel {
                queue: job.queue.clone(),
            })
            .observe(((now_ms - job.scheduled_ms).max(0) as f64) / 1000.0);
    }

    /// A handler of `job` ran for `took`.
    pub fn ran(&self, job: &Claimed, took: Duration) {
        self.run_seconds
            .get_or_create(&KindLabels {
                queue: job.queue.clone(),
                kind: job.kind.clone(),
            })
            .observe(took.as_secs_f64());
    }

    /// An attempt of `job` ended so.
    pub fn ended(&self, job: &Claimed, outcome: Outcome) {
        self.attempts
            .get_or_create(&AttemptLabels {
                queue: job.queue.clone(),
                kind: job.kind.clone(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// How many attempts of `kind` in `queue` ended so, in this replica.
    pub fn attempts(&self, queue: &str, kind: &str, outcome: Outcome) -> u64 {
        self.attempts
            .get_or_create(&AttemptLabels {
                queue: queue.to_owned(),
                kind: kind.to_owned(),
                outcome: outcome.as_str(),
            })
            .get()
    }

    /// The rescuer took back `rescued` attempts, `discarded` of them their job's last.
    pub fn rescued(&self, rescued: u64, discarded: u64) {
        let retried = rescued.saturating_sub(discarded);
        for (outcome, n) in [("retried", retried), ("discarded", discarded)] {
            if n > 0 {
                self.rescues
                    .get_or_create(&RescueLabel { outcome })
                    .inc_by(n);
            }
        }
    }

    /// Sets the depth of every queue in `queues` and in `counts` (queue, state, jobs), and of
    /// any queue reported before: what `counts` does not name is 0.
    pub fn set_depth(&self, queues: &[&str], counts: &[(String, JobState, i64)]) {
        let mut seen = self.seen.lock();
        seen.extend(queues.iter().map(|q| (*q).to_owned()));
        seen.extend(counts.iter().map(|(q, _, _)| q.clone()));
        for queue in seen.iter() {
            for state in DEPTH_STATES {
                let n = counts
                    .iter()
                    .find(|(q, s, _)| q == queue && *s == state)
                    .map_or(0, |(_, _, n)| *n);
                self.depth
                    .get_or_create(&DepthLabels {
                        queue: queue.clone(),
                        state: state.as_str(),
                    })
                    .set(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &JobMetrics) -> String {
        let mut registry = Registry::with_prefix("rollcall_cloud");
        m.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("encode");
        out
    }

    #[test]
    fn a_queue_that_empties_reads_zero() {
        let m = JobMetrics::default();
        m.set_depth(&["default"], &[("mail".into(), JobState::Available, 4)]);
        let t = text(&m);
        assert!(
            t.contains("rollcall_cloud_job_queue_depth{queue=\"mail\",state=\"available\"} 4"),
            "{t}"
        );
        assert!(
            t.contains("rollcall_cloud_job_queue_depth{queue=\"default\",state=\"running\"} 0"),
            "{t}"
        );
        m.set_depth(&["default"], &[]);
        assert!(
            text(&m)
                .contains("rollcall_cloud_job_queue_depth{queue=\"mail\",state=\"available\"} 0")
        );
    }

    #[test]
    fn rescues_are_split_by_what_became_of_the_job() {
        let m = JobMetrics::default();
        m.rescued(3, 1);
        let t = text(&m);
        assert!(
            t.contains("rollcall_cloud_job_rescues_total{outcome=\"retried\"} 2"),
            "{t}"
        );
        assert!(t.contains("rollcall_cloud_job_rescues_total{outcome=\"discarded\"} 1"));
    }
}
