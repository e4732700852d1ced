//! Jobs a person started, followed live on `job:<id>`: `job.progress` when the handler reports
//! how far it is ([`JobRun::progress`]), `job.finished` when it completes, is discarded or is
//! cancelled — published in the transaction that records it. Such a job (one with an actor,
//! of a tenant) is completed in its tenant's transaction rather than in the completer's
//! cross-tenant batch; the platform's own and internal jobs (no actor) cost nothing here.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::server::{
    jobs::{
        model::{Claimed, Failure, JobState},
        registry::JobRun,
        store::{complete, fail},
    },
    realtime::stream::{NewMessage, publish},
    store::{
        Store, StoreError, TenantScope,
        exec::{Exec, in_tenant},
    },
};

pub const JOB_PROGRESS: &str = "job.progress";
pub const JOB_FINISHED: &str = "job.finished";

/// `job.progress` on `job:<id>`: how far the job's handler says it is.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JobProgressData {
    pub job_id: i64,
    pub kind: String,
    pub attempt: u32,
    /// 0-100.
    pub percent: u8,
    pub note: String,
}

/// `job.finished` on `job:<id>`: the job reached a final state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JobFinishedData {
    pub job_id: i64,
    pub kind: String,
    /// `completed`, `discarded` or `cancelled`.
    pub state: JobState,
    pub attempt: u32,
    /// The handler's result (completed).
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// The last attempt's error (discarded).
    pub error: Option<String>,
}

/// Whether `job` is followed live: a person started it, in a tenant.
pub fn watched(job: &Claimed) -> bool {
    job.actor.is_some() && job.tenant_id != 0
}

/// Publishes `job.finished` in `tx`, when the job is watched and `tx` is its tenant's.
pub(crate) async fn finished(
    tx: &impl Exec,
    job: &Claimed,
    state: JobState,
    result: Option<&Value>,
    error: Option<&str>,
) -> Result<(), StoreError> {
    if !watched(job) || tx.tenant() != job.tenant_id {
        return Ok(());
    }
    let data = JobFinishedData {
        job_id: job.id,
        kind: job.kind.clone(),
        state,
        attempt: job.attempt,
        result: result.cloned(),
        error: error.map(str::to_owned),
    };
    publish(tx, &[message(job.id, JOB_FINISHED, &data)])
        .await
        .map(drop)
}

/// The message of job `id`.
pub(crate) fn message<T: Serialize>(id: i64, kind: &'static str, data: &T) -> NewMessage {
    NewMessage {
        topic: format!("job:{id}"),
        kind,
        data: serde_json::to_value(data).unwrap_or(Value::Null),
    }
}

impl JobRun {
    /// Tells those following the job how far it is (`percent` 0-100, clamped); nothing for a
    /// job nobody started by hand. Its own transaction: progress is a hint, not a change.
    pub async fn progress(&self, percent: u8, note: &str) -> Result<(), StoreError> {
        let Some(scope) = self.scope.as_ref().filter(|_| watched(&self.job)) else {
            return Ok(());
        };
        let data = JobProgressData {
            job_id: self.job.id,
            kind: self.job.kind.clone(),
            attempt: self.job.attempt,
            percent: percent.min(100),
            note: note.chars().take(200).collect(),
        };
        self.store
            .publish(scope, vec![message(self.job.id, JOB_PROGRESS, &data)])
            .await
            .map(drop)
    }
}

impl Store {
    /// Completes a watched attempt in its tenant's transaction (publishing `job.finished`);
    /// `false` if its lease was lost.
    pub async fn complete_watched_job(
        &self,
        scope: &TenantScope,
        job: &Claimed,
        result: Option<Value>,
    ) -> Result<bool, StoreError> {
        let job = job.clone();
        in_tenant!(internal self, scope, |tx| complete(tx, &job, result.as_ref()))
    }

    /// Records a watched attempt that did not complete in its tenant's transaction (publishing
    /// `job.finished` if it was discarded); `None` if its lease was lost.
    pub async fn fail_watched_job(
        &self,
        scope: &TenantScope,
        job: &Claimed,
        failure: Failure,
    ) -> Result<Option<JobState>, StoreError> {
        let job = job.clone();
        in_tenant!(internal self, scope, |tx| fail(tx, &job, &failure))
    }
}
