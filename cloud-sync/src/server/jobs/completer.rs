//! Completions written in batches: the attempts of one replica that finished outside a handler
//! transaction hand their completion to one task, which writes every completion waiting for it
//! in one transaction, so a busy replica pays one commit for many jobs rather than one each.
//!
//! Nothing is weaker for it: each job's update still carries its lease token (a completion
//! whose lease was lost writes nothing and is answered `false`), an attempt waits for its
//! answer before it ends (so a completion is never reported that was not committed), and the
//! task ends only once every sender is gone — after the queues' loops have finished at
//! shutdown — having written what it was handed. No timer: while one batch is written, the
//! next gathers.

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::server::{
    jobs::model::Claimed,
    store::{Store, StoreError},
};

/// Most completions written in one transaction.
const BATCH: usize = 256;

/// One finished attempt waiting to be recorded, and where its answer goes.
struct Completion {
    job: Claimed,
    result: Option<Value>,
    answer: oneshot::Sender<Result<bool, String>>,
}

/// Hands completions to the replica's completer task.
#[derive(Clone)]
pub(crate) struct Completer {
    queue: mpsc::UnboundedSender<Completion>,
}

/// Why a completion was not recorded (the lease then expires and the job runs again).
#[derive(Debug, thiserror::Error)]
pub(crate) enum CompleteError {
    #[error("{0}")]
    Store(String),
    #[error("the completer has stopped")]
    Stopped,
}

impl Completer {
    /// A completer and the task that writes what it is handed; the task returns once every
    /// clone of the completer is dropped and the last batch is written.
    pub(crate) fn start(store: Store) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (queue, rx) = mpsc::unbounded_channel();
        (Self { queue }, write_batches(store, rx))
    }

    /// Records `job` as completed with `result`: `true` once committed, `false` if its lease was
    /// lost (nothing written).
    pub(crate) async fn complete(
        &self,
        job: &Claimed,
        result: Option<Value>,
    ) -> Result<bool, CompleteError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Completion {
                job: job.clone(),
                result,
                answer,
            })
            .map_err(|_| CompleteError::Stopped)?;
        match answered.await {
            Ok(Ok(recorded)) => Ok(recorded),
            Ok(Err(e)) => Err(CompleteError::Store(e)),
            Err(_) => Err(CompleteError::Stopped),
        }
    }
}

async fn write_batches(store: Store, mut rx: mpsc::UnboundedReceiver<Completion>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let (done, answers): (Vec<_>, Vec<_>) = batch
            .drain(..)
            .map(|c| ((c.job, c.result), c.answer))
            .unzip();
        let written: Result<Vec<bool>, StoreError> = store.complete_jobs(done).await;
        match written {
            Ok(recorded) => {
                for (answer, ok) in answers.into_iter().zip(recorded) {
                    let _ = answer.send(Ok(ok));
                }
            }
            Err(e) => {
                let e = e.to_string();
                for answer in answers {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{CompleteError, Completer};
    use crate::server::{
        jobs::{
            model::{Claimed, JobState},
            suite::{all, claim_req, job},
        },
        store::{
            Store,
            suite::{audit, both, postgres, sqlite, tenant_with_node},
        },
    };

    both!(completions_handed_over_at_once_are_each_answered_and_checked_by_token);
    async fn completions_handed_over_at_once_are_each_answered_and_checked_by_token(store: Store) {
        let (acme, _) = tenant_with_node(&store, "acme", "h1").await;
        for _ in 0..40 {
            store
                .enqueue_job(&acme, job("probe"), audit())
                .await
                .expect("enqueue");
        }
        let claimed = store
            .claim_jobs(claim_req(40, 40, 60_000))
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 40);
        let (completer, task) = Completer::start(store.clone());
        let task = tokio::spawn(task);
        // Forty completions at once, every fifth with a token that does not hold the lease.
        let answers = futures_util::future::join_all(claimed.iter().enumerate().map(|(i, c)| {
            let completer = completer.clone();
            let job = if i % 5 == 0 {
                Claimed {
                    lease_token: "not-the-token".into(),
                    ..c.clone()
                }
            } else {
                c.clone()
            };
            async move { completer.complete(&job, Some(json!({ "i": i }))).await }
        }))
        .await;
        let recorded: Vec<bool> = answers.into_iter().map(|a| a.expect("answered")).collect();
        assert_eq!(
            recorded,
            (0..40).map(|i| i % 5 != 0).collect::<Vec<_>>(),
            "each answer is its own job's"
        );
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
        // The task ends once the last completer is dropped; a completion after it is refused.
        let late = completer.clone();
        drop(completer);
        assert!(!task.is_finished(), "a clone still holds it open");
        drop(late);
        task.await.expect("the completer task ends");
        let (stopped, task) = Completer::start(store.clone());
        drop(task);
        assert!(matches!(
            stopped.complete(&claimed[0], None).await,
            Err(CompleteError::Stopped)
        ));
    }
}
