//! The job kinds this server runs: each registered once with its typed arguments, its queue,
//! attempts, time limit and back-off, and its handler. Enqueueing checks the kind and its
//! arguments here, so a job that cannot run is refused before it is stored.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::server::{
    jobs::{
        backoff::Backoff,
        model::{Claimed, NewJob},
        store::JobError,
    },
    store::{Store, TenantScope},
};

/// How a kind runs.
#[derive(Debug, Clone)]
pub struct KindOptions {
    pub queue: &'static str,
    pub max_attempts: u32,
    /// An attempt still running after this is stopped and counted as failed.
    pub timeout: Duration,
    pub backoff: Backoff,
    /// Whether a tenant's admin may enqueue it through the API (otherwise only the server).
    pub by_api: bool,
}

impl Default for KindOptions {
    fn default() -> Self {
        Self {
            queue: "default",
            max_attempts: 10,
            timeout: Duration::from_secs(300),
            backoff: Backoff::default(),
            by_api: false,
        }
    }
}

/// What a handler's attempt came to, when it did not fail.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// Finished, with a result kept on the job (read through the API).
    Result(Option<Value>),
    /// Not now: run again after this long; the attempt does not count.
    Snooze(Duration),
}

/// Why a handler's attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failed {
    /// Try again after the kind's back-off (or discard after the last attempt).
    Retry(String),
    /// Trying again cannot help: discard now.
    Discard(String),
}

impl<E: std::error::Error> From<E> for Failed {
    fn from(e: E) -> Self {
        Failed::Retry(e.to_string())
    }
}

/// What a handler gets besides its arguments: the store, the job's tenant (already resolved:
/// its transactions see only that tenant's rows), and the attempt it runs.
#[derive(Clone)]
pub struct JobRun {
    pub store: Store,
    /// `None` for platform work.
    pub scope: Option<TenantScope>,
    pub job: Claimed,
    /// How each job this one waited for ended, by id (a group's callback reads which failed);
    /// empty if it waited for none.
    pub waited: Vec<(i64, crate::server::jobs::model::JobState)>,
    /// Fires on the server's shutdown: a long handler stops between steps and snoozes (after
    /// the runner's grace period it is stopped where it is and handed back).
    pub stop: rollcall_service::shutdown::Shutdown,
    /// Set when the handler completed the job in its own transaction ([`JobRun::confirm`]).
    pub(crate) confirmed: Arc<std::sync::atomic::AtomicBool>,
}

impl JobRun {
    /// Marks the job completed by the handler's own transaction (see `jobs::store::complete`),
    /// so the runner does not complete it again.
    pub(crate) fn confirmed(&self) {
        self.confirmed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

type Handler = Arc<
    dyn Fn(JobRun, Value) -> Pin<Box<dyn Future<Output = Result<Done, Failed>> + Send>>
        + Send
        + Sync,
>;

/// One registered kind.
#[derive(Clone)]
pub struct Kind {
    pub name: &'static str,
    pub options: KindOptions,
    pub(crate) handler: Handler,
    check: fn(&Value) -> Result<(), String>,
}

fn fits<A: DeserializeOwned>(args: &Value) -> Result<(), String> {
    A::deserialize(args).map(drop).map_err(|e| e.to_string())
}

/// Every kind this server runs.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Kind>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// Registers kind `name`, whose handler takes arguments of type `A`.
    pub fn register<A, F, Fut>(&mut self, name: &'static str, options: KindOptions, handler: F)
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(JobRun, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Done, Failed>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let run: Handler = Arc::new(move |run, args| {
            let handler = handler.clone();
            Box::pin(async move {
                let args = A::deserialize(args)
                    .map_err(|e| Failed::Discard(format!("the arguments do not fit: {e}")))?;
                handler(run, args).await
            })
        });
        self.kinds.insert(
            name,
            Kind {
                name,
                options,
                handler: run,
                check: fits::<A>,
            },
        );
    }

    pub fn kind(&self, name: &str) -> Option<&Kind> {
        self.kinds.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.kinds.keys().copied()
    }

    /// The queues the kinds use.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut q: Vec<_> = self.kinds.values().map(|k| k.options.queue).collect();
        q.sort_unstable();
        q.dedup();
        q
    }

    /// A job of kind `kind` with `args`, on the kind's queue with its attempts; refused if
    /// the kind is unknown or the arguments do not fit it.
    pub fn job(&self, kind: &str, args: Value) -> Result<NewJob, JobError> {
        let k = self.kinds.get(kind).ok_or_else(|| {
            JobError::UnknownKind(kind.to_owned(), self.names().collect::<Vec<_>>().join(", "))
        })?;
        (k.check)(&args).map_err(|why| JobError::BadArgs {
            kind: kind.to_owned(),
            why,
        })?;
        Ok(NewJob {
            kind: kind.to_owned(),
            queue: k.options.queue.to_owned(),
            args,
            priority: 0,
            scheduled_ms: None,
            max_attempts: k.options.max_attempts,
            unique_key: None,
            actor: None,
            request_id: None,
            waits: None,
        })
    }
}
