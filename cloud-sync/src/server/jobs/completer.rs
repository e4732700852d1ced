//! Completions written in batches: the attempts of one replica that finished outside a handler
//! transaction hand their completion to one task, which writes every completion waiting for it
//! in one transaction, so a busy replica pays one commit for many jobs rather than one each.
//!
//! An attempt hands its completion over and ends, freeing its slot at once, so the queue claims
//! its next jobs while the last ones are being recorded. Nothing is weaker for it: each job's
//! update still carries its lease token (a completion whose lease was lost writes nothing and
//! is counted `lost`, as is one the database refused: its lease then expires and the job runs
//! again, as it would after a crash), the metrics count a job completed only once committed,
//! and the task ends only once every sender is gone — after the queues' loops have finished at
//! shutdown — having written what it was handed. No timer: while one batch is written, the
//! next gathers. The queue behind it holds at most one completion per running attempt.

use serde_json::Value;
use tokio::sync::mpsc;

use crate::server::{
    jobs::{
        metrics::{JobMetrics, Outcome},
        model::Claimed,
    },
    store::Store,
};

/// Most completions written in one transaction.
const BATCH: usize = 256;

/// One finished attempt waiting to be recorded.
struct Completion {
    job: Claimed,
    result: Option<Value>,
}

/// Hands completions to the replica's completer task.
#[derive(Clone)]
pub(crate) struct Completer {
    queue: mpsc::UnboundedSender<Completion>,
}

impl Completer {
    /// A completer and the task that writes what it is handed; the task returns once every
    /// clone of the completer is dropped and the last batch is written.
    pub(crate) fn start(
        store: Store,
        metrics: JobMetrics,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, rx) = mpsc::unbounded_channel();
        (Self { queue }, write_batches(store, metrics, rx))
    }

    /// Hands `job`'s completion over without waiting: it is written with the next batch and
    /// counted in the metrics as completed (or lost) then. `false` if the task has stopped.
    pub(crate) fn submit(&self, job: Claimed, result: Option<Value>) -> bool {
        self.queue.send(Completion { job, result }).is_ok()
    }
}

async fn write_batches(
    store: Store,
    metrics: JobMetrics,
    mut rx: mpsc::UnboundedReceiver<Completion>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let done: Vec<(Claimed, Option<Value>)> =
            batch.drain(..).map(|c| (c.job, c.result)).collect();
        let jobs: Vec<Claimed> = done.iter().map(|(job, _)| job.clone()).collect();
        let recorded = match store.complete_jobs(done).await {
            Ok(recorded) => recorded,
            Err(e) => {
                tracing::error!(error = %e, jobs = jobs.len(), "recording completed jobs failed: their leases will expire");
                vec![false; jobs.len()]
            }
        };
        for (job, recorded) in jobs.iter().zip(recorded) {
            if recorded {
                metrics.ended(job, Outcome::Completed);
            } else {
                tracing::warn!(job = job.id, "job completion not recorded (lease lost)");
                metrics.ended(job, Outcome::Lost);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Completer;
    use crate::server::{
        jobs::{
            metrics::{JobMetrics, Outcome},
            model::{Claimed, JobState},
            suite::{all, claim_req, job},
        },
        store::{
            Store,
            suite::{audit, both, postgres, sqlite, tenant_with_node},
        },
    };

    both!(completions_handed_over_at_once_are_each_recorded_and_checked_by_token);
    async fn completions_handed_over_at_once_are_each_recorded_and_checked_by_token(store: Store) {
        let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
        for _ in 0..70 {
            store
                .enqueue_job(&acme, job("probe"), audit())
                .await
                .expect("enqueue");
        }
        let claimed = store
            .claim_jobs(claim_req(70, 70, 60_000))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 70);
        let metrics = JobMetrics::default();
        let (completer, task) = Completer::start(store.clone(), metrics.clone());
        let task = tokio::spawn(task);
        // Seventy completions at once from seventy tasks (more than one statement writes), every
        // fifth with a token that does not hold the lease.
        let handed = futures_util::future::join_all(claimed.iter().enumerate().map(|(i, c)| {
            let completer = completer.clone();
            let job = Claimed {
                lease_token: if i % 5 == 0 {
                    "not-the-token".into()
                } else {
                    c.lease_token.clone()
                },
                ..c.clone()
            };
            async move { completer.submit(job, Some(json!({ "i": i }))) }
        }))
        .await;
        assert!(handed.iter().all(|h| *h));
        // The task ends once the last completer is dropped, having written everything.
        let late = completer.clone();
        drop(completer);
        assert!(!task.is_finished(), "a clone still holds it open");
        drop(late);
        task.await.expect("the completer task ends");
        for j in all(&store, &acme).await {
            let i = claimed.iter().position(|c| c.id == j.id).expect("claimed");
            if i % 5 == 0 {
                assert_eq!((j.state, j.result), (JobState::Running, None));
            } else {
                assert_eq!(
                    (j.state, j.result),
                    (JobState::Completed, Some(json!({ "i": i })))
                );
            }
        }
        let count = |o| metrics.attempts("default", "probe", o);
        assert_eq!((count(Outcome::Completed), count(Outcome::Lost)), (56, 14));
        // A completion handed to a stopped completer is refused at once.
        let (stopped, task) = Completer::start(store.clone(), JobMetrics::default());
        drop(task);
        assert!(!stopped.submit(claimed[1].clone(), None));
    }
}
