//! What a job is: its state, what the API shows of it, what an enqueue asks for, and what a
//! worker holds while it runs one.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Where a job is in its life. `available` jobs (and `retryable` ones, waiting out their
/// back-off) run once their `scheduled_ms` has come; the last three states are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Available,
    Running,
    Retryable,
    Completed,
    Cancelled,
    /// Failed its last attempt: the dead-letter queue, kept with every attempt's error.
    Discarded,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Discarded => "discarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Discarded
        )
    }
}

/// One failed attempt, as kept on the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AttemptError {
    pub attempt: u32,
    pub at_ms: i64,
    pub error: String,
    /// The attempt's lease ran out (its worker died or stalled) and the job was taken back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rescued: bool,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub queue: String,
    #[schema(value_type = Object)]
    pub args: Value,
    pub state: JobState,
    /// 0 runs first.
    pub priority: i32,
    /// When it may run (next, for a retryable job).
    pub scheduled_ms: i64,
    /// Attempts started so far.
    pub attempt: u32,
    pub max_attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Who enqueued it (`user:…`, `bootstrap-admin`, `schedule:…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The request that enqueued it, also on the job's log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub errors: Vec<AttemptError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub created_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
    /// The jobs it waits for before it runs (a chain's step, a group's callback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waits: Option<crate::server::jobs::waits::Waits>,
    /// The tenant's id (0: platform work); not shown.
    #[serde(skip)]
    pub tenant_id: i64,
}

/// A job to enqueue. `kind`, `queue` and `max_attempts` come from the kind's registration
/// unless the caller overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: String,
    pub queue: String,
    pub args: Value,
    pub priority: i32,
    /// When it may first run; now if `None`.
    pub scheduled_ms: Option<i64>,
    pub max_attempts: u32,
    /// At most one job of the tenant and kind holds this key outside `cancelled`/`discarded`.
    pub unique_key: Option<String>,
    pub actor: Option<String>,
    pub request_id: Option<String>,
    /// Jobs of the same tenant it waits for (see `jobs::waits`).
    pub waits: Option<crate::server::jobs::waits::Waits>,
}

/// What an enqueue did.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub job: Job,
    /// The unique key was held: `job` is the one already there, nothing was added.
    pub existing: bool,
}

/// A job a worker claimed: everything it needs to run one attempt, and the lease token every
/// one of its writes must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: i64,
    pub tenant_id: i64,
    pub kind: String,
    pub queue: String,
    pub args: Value,
    pub attempt: u32,
    pub max_attempts: u32,
    pub actor: Option<String>,
    pub request_id: Option<String>,
    pub lease_token: String,
    /// When it was due (its first run, or its retry).
    pub scheduled_ms: i64,
    /// What it waited for, if anything: the runner tells its handler how they ended.
    pub waits: Option<crate::server::jobs::waits::Waits>,
}

/// What became of an attempt that did not complete.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// An error or a panic: retried after its back-off, discarded after the last attempt.
    Error { message: String, retry_at_ms: i64 },
    /// The handler says retrying cannot help (its arguments are wrong): discarded now.
    Discard { message: String },
    /// Not now: back at `until_ms`, and the attempt does not count.
    Snooze { until_ms: i64 },
    /// Stopped by the server's shutdown: back at once, not counted.
    Interrupted,
}
