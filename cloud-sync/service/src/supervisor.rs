//! One owner for a daemon's background loops: each is started through [`Supervisor::spawn`]
//! with a [`Shutdown`] to watch, and [`Supervisor::shutdown`] fires it and waits for every loop
//! to return, so that a SIGTERM never cuts a unit of work in half.

use std::{future::Future, sync::Arc};

use tokio::task::JoinHandle;

use crate::shutdown::{self, Shutdown, Trigger};

/// The background loops of a process, and the signal that stops them.
pub struct Supervisor {
    trigger: Arc<Trigger>,
    stop: Shutdown,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    pub fn new() -> Self {
        let (trigger, stop) = shutdown::channel();
        Self {
            trigger: Arc::new(trigger),
            stop,
            tasks: Vec::new(),
        }
    }

    /// The signal the loops watch (for work that is not a loop of its own, such as a server's
    /// open streams, that should end when they do).
    pub fn stop_signal(&self) -> Shutdown {
        self.stop.clone()
    }

    /// Starts a loop named `name` (for the logs); it gets the stop signal and should return
    /// soon after it fires, between units of work.
    pub fn spawn<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task(self.stop.clone()));
        self.tasks.push((name, handle));
    }

    /// What fires the stop signal without waiting (for a server's graceful-shutdown future,
    /// which must not hold the supervisor).
    pub fn trigger(&self) -> Arc<Trigger> {
        self.trigger.clone()
    }

    /// Fires the stop signal.
    pub fn fire(&self) {
        self.trigger.fire();
    }

    /// Fires the stop signal and waits for every loop to return. Returns the names of the loops
    /// that panicked (each also logged).
    pub async fn shutdown(self) -> Vec<&'static str> {
        self.trigger.fire();
        if !self.tasks.is_empty() {
            tracing::info!(tasks = self.tasks.len(), "stopping background tasks");
        }
        let mut panicked = Vec::new();
        for (name, handle) in self.tasks {
            if let Err(e) = handle.await {
                tracing::error!(task = name, "background task failed: {e}");
                panicked.push(name);
            }
        }
        panicked
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_every_loop_to_finish_its_unit_of_work() {
        let finished = Arc::new(AtomicUsize::new(0));
        let mut s = Supervisor::new();
        for name in ["a", "b"] {
            let finished = finished.clone();
            s.spawn(name, move |mut stop| async move {
                stop.wait().await;
                // A unit of work that is under way when the signal comes is finished.
                tokio::task::yield_now().await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert!(s.shutdown().await.is_empty());
        assert_eq!(finished.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_trigger_fired_elsewhere_stops_the_loops() {
        let stopped = Arc::new(AtomicBool::new(false));
        let mut s = Supervisor::new();
        let seen = stopped.clone();
        s.spawn("loop", move |mut stop| async move {
            stop.wait().await;
            seen.store(true, Ordering::SeqCst);
        });
        let trigger = s.trigger();
        assert!(!s.stop_signal().is_fired());
        trigger.fire();
        assert!(s.stop_signal().is_fired());
        assert!(s.shutdown().await.is_empty());
        assert!(stopped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_loop_is_reported_and_does_not_stop_the_wait() {
        let mut s = Supervisor::new();
        s.spawn("bad", |_stop| async { panic!("boom") });
        let done = Arc::new(AtomicBool::new(false));
        let seen = done.clone();
        s.spawn("good", move |mut stop| async move {
            stop.wait().await;
            seen.store(true, Ordering::SeqCst);
        });
        assert_eq!(s.shutdown().await, vec!["bad"]);
        assert!(done.load(Ordering::SeqCst));
    }
}
