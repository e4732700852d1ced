//! What the job API refuses: [`JobError`] and its problem types.

use rollcall_service::problem::ProblemType;

use crate::server::jobs::model::JobState;

/// What the job API refuses.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("no job kind `{0}` (the server knows: {1})")]
    UnknownKind(String, String),
    #[error("arguments of `{kind}` do not fit it: {why}")]
    BadArgs { kind: String, why: String },
    #[error(
        "job {id} is {state:?}: only a job that is not running or waiting to run can be retried"
    )]
    NotRetryable { id: i64, state: JobState },
    #[error("job {id} is already {state:?}")]
    Finished { id: i64, state: JobState },
    #[error("job {holder} holds the same unique key: retry or cancel that one instead")]
    KeyHeld { holder: i64 },
    #[error("{0}")]
    BadWaits(String),
    #[error("job {0}, which this one would wait for, is not a job of this tenant")]
    UnknownWait(i64),
}

pub const UNKNOWN_JOB_KIND: ProblemType = ProblemType {
    slug: "unknown-job-kind",
    title: "Unknown job kind",
    status: 422,
    meaning: "The job's kind is not one this server runs.",
};
pub const INVALID_JOB_ARGS: ProblemType = ProblemType {
    slug: "invalid-job-args",
    title: "Invalid job arguments",
    status: 422,
    meaning: "The arguments do not deserialize into what the job's kind takes.",
};
pub const JOB_NOT_RETRYABLE: ProblemType = ProblemType {
    slug: "job-not-retryable",
    title: "Job not retryable",
    status: 409,
    meaning: "The job is running or already waiting to run.",
};
pub const JOB_FINISHED: ProblemType = ProblemType {
    slug: "job-finished",
    title: "Job finished",
    status: 409,
    meaning: "The job completed, was cancelled or was discarded already.",
};
pub const JOB_KEY_HELD: ProblemType = ProblemType {
    slug: "job-key-held",
    title: "Unique key held",
    status: 409,
    meaning: "Another live job of the kind holds the job's unique key.",
};

pub const INVALID_JOB_WAITS: ProblemType = ProblemType {
    slug: "invalid-job-waits",
    title: "Invalid job waits",
    status: 422,
    meaning: "A job waits for 1 to 100 other jobs, named by their ids.",
};
pub const UNKNOWN_AWAITED_JOB: ProblemType = ProblemType {
    slug: "unknown-awaited-job",
    title: "Unknown awaited job",
    status: 422,
    meaning: "A job the new one would wait for is not a job of the tenant (or was pruned).",
};

pub const PROBLEMS: &[&ProblemType] = &[
    &UNKNOWN_JOB_KIND,
    &INVALID_JOB_ARGS,
    &JOB_NOT_RETRYABLE,
    &JOB_FINISHED,
    &JOB_KEY_HELD,
    &INVALID_JOB_WAITS,
    &UNKNOWN_AWAITED_JOB,
    &crate::server::jobs::schedule::INVALID_SCHEDULE,
    &crate::server::jobs::schedule::SCHEDULE_EXISTS,
];

impl crate::server::store::Refused for JobError {
    fn problem_type(&self) -> &'static ProblemType {
        match self {
            JobError::UnknownKind(..) => &UNKNOWN_JOB_KIND,
            JobError::BadArgs { .. } => &INVALID_JOB_ARGS,
            JobError::NotRetryable { .. } => &JOB_NOT_RETRYABLE,
            JobError::Finished { .. } => &JOB_FINISHED,
            JobError::KeyHeld { .. } => &JOB_KEY_HELD,
            JobError::BadWaits(_) => &INVALID_JOB_WAITS,
            JobError::UnknownWait(_) => &UNKNOWN_AWAITED_JOB,
        }
    }
}
