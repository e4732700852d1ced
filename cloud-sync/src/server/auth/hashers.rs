//! The password work of logins and new passwords, bounded: at most `at_once` Argon2id
//! computations run at a time, each in a memory block (19 MiB) that it takes from a pool and
//! gives back for the next, so hashing holds at most `at_once` blocks however many logins
//! arrive, allocated once and never handed to the allocator to keep. A login that finds every
//! hasher busy waits up to `wait` for one, then is told to come back (503 `busy`, Retry-After);
//! a login whose client went away still finishes its computation in the background with its
//! permit, so the bound holds even then.
//!
//! Why a pool rather than fresh memory each time: a 19 MiB allocation freed on one of tokio's
//! blocking threads raises glibc's mmap threshold and stays in that thread's arena, so
//! hundreds of concurrent logins left gigabytes resident after they were done (#20).

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use argon2::Block;
use axum::http::StatusCode;
use parking_lot::Mutex;
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::Semaphore;

use crate::server::auth::passwords;
use rollcall_service::problem::Problem;

/// How many computations at once, and how long a caller waits for a free one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashConfig {
    pub at_once: NonZeroU32,
    pub wait: Duration,
}

impl Default for HashConfig {
    /// One computation per core; a caller waits up to 2 s.
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .ok()
            .and_then(|n| NonZeroU32::new(u32::try_from(n.get()).unwrap_or(u32::MAX)))
            .unwrap_or(NonZeroU32::MIN);
        Self {
            at_once: cores,
            wait: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HashError {
    #[error("every password hasher stayed busy for {0:?}")]
    Busy(Duration),
    #[error("password hashing failed: {0}")]
    Failed(String),
}

impl From<HashError> for Problem {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy(_) => {
                let mut p = Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "Busy",
                    "too many sign-ins are being checked right now; retry in a second",
                );
                p.retry_after_s = Some(1);
                p
            }
            HashError::Failed(e) => Problem::internal(e),
        }
    }
}

/// The bounded hashers; cheap to share (`Arc` inside).
#[derive(Clone)]
pub(crate) struct Hashers(Arc<Inner>);

struct Inner {
    permits: Arc<Semaphore>,
    /// Memory blocks not in use; at most `at_once` ever exist.
    free: Mutex<Vec<Vec<Block>>>,
    wait: Duration,
    running: Gauge,
    busy: Counter,
}

impl Hashers {
    pub(crate) fn new(config: HashConfig) -> Self {
        Self(Arc::new(Inner {
            permits: Arc::new(Semaphore::new(config.at_once.get() as usize)),
            free: Mutex::new(Vec::new()),
            wait: config.wait,
            running: Gauge::default(),
            busy: Counter::default(),
        }))
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "password_hashes_running",
            "Argon2id computations running now (logins, new passwords)",
            self.0.running.clone(),
        );
        registry.register(
            "password_hashes_busy",
            "Logins and password changes refused because every hasher stayed busy",
            self.0.busy.clone(),
        );
    }

    /// Whether `password` matches `phc`; with no stored hash, spends the same time and says no
    /// (an unknown tenant or user answers as slowly as a wrong password).
    pub(crate) async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, HashError> {
        self.compute(move |memory| match phc {
            Some(phc) => passwords::verify_in(&password, &phc, memory),
            None => {
                if let Some(dummy) = passwords::dummy(memory) {
                    let _ = passwords::verify_in(&password, dummy, memory);
                }
                false
            }
        })
        .await
    }

    /// A PHC string of `password` with a fresh salt.
    pub(crate) async fn hash(&self, password: String) -> Result<String, HashError> {
        self.compute(move |memory| passwords::hash_in(&password, memory))
            .await?
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// Runs `work` on a blocking thread once a permit is free (waiting up to `wait`), in a
    /// memory block of the pool. The permit and the block travel with the work, so a caller
    /// that stops waiting releases neither before the work is done.
    async fn compute<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let inner = &self.0;
        let permit =
            match tokio::time::timeout(inner.wait, inner.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(closed)) => return Err(HashError::Failed(closed.to_string())),
                Err(_) => {
                    inner.busy.inc();
                    return Err(HashError::Busy(inner.wait));
                }
            };
        let pool = self.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = pool.free.lock().pop().unwrap_or_default();
            pool.running.inc();
            let out = work(&mut memory);
            pool.running.dec();
            pool.free.lock().push(memory);
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// How many memory blocks exist (at most `at_once`).
    #[cfg(test)]
    fn blocks(&self) -> usize {
        self.0.free.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashers(at_once: u32, wait_ms: u64) -> Hashers {
        Hashers::new(HashConfig {
            at_once: NonZeroU32::new(at_once).expect("non-zero"),
            wait: Duration::from_millis(wait_ms),
        })
    }

    #[tokio::test]
    async fn hashes_verify_through_the_pool_and_unknown_users_never_match() {
        let h = hashers(2, 5_000);
        let phc = h.hash("correct horse battery".into()).await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(
            h.verify("correct horse battery".into(), Some(phc.clone()))
                .await
                .expect("v")
        );
        assert!(
            !h.verify("correct horse batterY".into(), Some(phc))
                .await
                .expect("v")
        );
        assert!(
            !h.verify("correct horse battery".into(), None)
                .await
                .expect("v")
        );
        assert!(h.blocks() <= 2, "{} blocks", h.blocks());
    }

    /// Forty concurrent verifications through two hashers: never more than two blocks, never
    /// more than two running; with a short wait, the excess is told it is busy.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_run_at_once_than_permitted_and_the_excess_is_told_to_come_back() {
        let h = hashers(2, 60_000);
        let phc = h.hash("correct horse battery".into()).await.expect("hash");
        let peak = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let watcher = {
            let (h, peak) = (h.clone(), peak.clone());
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(h.0.running.get(), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let all = futures_util::future::join_all((0..40).map(|_| {
            let (h, phc) = (h.clone(), phc.clone());
            async move { h.verify("correct horse battery".into(), Some(phc)).await }
        }))
        .await;
        watcher.abort();
        assert!(all.iter().all(|r| matches!(r, Ok(true))));
        assert_eq!(peak.load(std::sync::atomic::Ordering::Relaxed), 2);
        assert_eq!(h.blocks(), 2);

        // Every permit taken: a caller that may not wait is told to come back in a second.
        let impatient = hashers(1, 0);
        let held = impatient
            .0
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("permit");
        let refused = impatient.verify("y".repeat(12), Some(phc.clone())).await;
        assert!(matches!(refused, Err(HashError::Busy(_))), "{refused:?}");
        let p = Problem::from(refused.expect_err("busy"));
        assert_eq!((p.status.as_u16(), p.retry_after_s), (503, Some(1)));
        assert_eq!(impatient.0.busy.get(), 1);
        drop(held);
        assert!(
            impatient
                .verify("correct horse battery".into(), Some(phc))
                .await
                .expect("v")
        );
    }

    /// The stored hash made by the `argon2` crate's own `PasswordHasher` verifies here, and
    /// ours verifies there: the pooled computation is the same Argon2id.
    #[test]
    fn the_pooled_computation_agrees_with_the_crates_own() {
        use argon2::{Argon2, PasswordHasher, PasswordVerifier, password_hash::SaltString};
        let salt = SaltString::encode_b64(b"sixteen bytes!!!").expect("salt");
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery", &salt)
            .expect("hash")
            .to_string();
        let mut memory = Vec::new();
        assert!(passwords::verify_in(
            "correct horse battery",
            &theirs,
            &mut memory
        ));
        let ours = passwords::hash_in("correct horse battery", &mut memory).expect("hash");
        let parsed = argon2::PasswordHash::new(&ours).expect("phc");
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        // A stored hash asking for more memory than the cap never matches (and allocates none).
        let greedy = theirs.replace("m=19456", "m=4000000");
        let mut fresh = Vec::new();
        assert!(!passwords::verify_in(
            "correct horse battery",
            &greedy,
            &mut fresh
        ));
        assert!(fresh.is_empty());
    }
}
