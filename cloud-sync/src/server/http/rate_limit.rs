//! Rate limits, with the `governor` crate's GCRA limiters keyed by tenant, by user (or node, or
//! the bootstrap credential) and, for logins, by tenant and client address, by client address
//! alone (whatever tenant it names) and over every login together. A caller over a
//! limit gets 429 with `Retry-After`; every limited response carries `RateLimit-Limit`,
//! `RateLimit-Remaining` and `RateLimit-Reset` (IETF draft "RateLimit header fields for HTTP").

use parking_lot::Mutex;
use std::{num::NonZeroU32, sync::Arc, time::Duration};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::Response,
};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
};

use rollcall_service::problem::Problem;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// Requests per minute; each also the burst a quiet caller may spend at once.
#[derive(Debug, Clone, Copy)]
pub struct RateConfig {
    pub per_user: NonZeroU32,
    pub per_tenant: NonZeroU32,
    /// Logins of one tenant from one client address.
    pub logins: NonZeroU32,
    /// Logins from one client address, whatever tenants they name (an attacker who names a
    /// new tenant each time is held here).
    pub logins_per_address: NonZeroU32,
    /// Logins to this replica from everywhere together.
    pub logins_global: NonZeroU32,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_user: NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN),
            per_tenant: NonZeroU32::new(6000).unwrap_or(NonZeroU32::MIN),
            logins: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            logins_per_address: NonZeroU32::new(30).unwrap_or(NonZeroU32::MIN),
            logins_global: NonZeroU32::new(600).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// What a limiter said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the caller's allowance is whole again (0 when it is).
    pub reset_s: u64,
}

/// A refused request: its problem (429 with `Retry-After`) and the verdict its `RateLimit-*`
/// headers announce (nothing remaining; whole again in `reset_s`).
#[derive(Debug)]
pub struct Refused {
    pub problem: Problem,
    pub verdict: Verdict,
}

/// A limiter's answer, its verdict left in `slot` for the `RateLimit-*` headers whether the
/// request was allowed or refused.
pub fn announced(
    answer: Result<Verdict, Box<Refused>>,
    slot: Option<&Slot>,
) -> Result<Verdict, Problem> {
    let (verdict, outcome) = match answer {
        Ok(v) => (v, Ok(v)),
        Err(r) => (r.verdict, Err(r.problem)),
    };
    if let Some(slot) = slot {
        slot.put(verdict);
    }
    outcome
}

pub struct RateLimits {
    user: Keyed,
    tenant: Keyed,
    login: Keyed,
    login_address: Keyed,
    login_global: Keyed,
    config: RateConfig,
    clock: DefaultClock,
}

fn keyed(per_minute: NonZeroU32) -> Keyed {
    RateLimiter::keyed(Quota::per_minute(per_minute))
        .with_middleware::<StateInformationMiddleware>()
}

impl RateLimits {
    pub fn new(config: RateConfig) -> Self {
        Self {
            user: keyed(config.per_user),
            tenant: keyed(config.per_tenant),
            login: keyed(config.logins),
            login_address: keyed(config.logins_per_address),
            login_global: keyed(config.logins_global),
            config,
            clock: DefaultClock::default(),
        }
    }

    fn check(
        &self,
        limiter: &Keyed,
        key: String,
        limit: NonZeroU32,
    ) -> Result<Verdict, Box<Refused>> {
        let per_cell_s = 60.0 / f64::from(limit.get());
        match limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = limit.get().saturating_sub(remaining);
                Ok(Verdict {
                    limit: limit.get(),
                    remaining,
                    reset_s: (f64::from(used) * per_cell_s).ceil() as u64,
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let problem = limited(limit.get(), wait);
                Err(Box::new(Refused {
                    verdict: Verdict {
                        limit: limit.get(),
                        remaining: 0,
                        reset_s: u64::from(problem.retry_after_s.unwrap_or(1)),
                    },
                    problem,
                }))
            }
        }
    }

    /// A tenant's caller: the caller's own allowance, then the tenant's. A caller over its own
    /// limit is refused before it can spend the tenant's, so one noisy user cannot starve the
    /// others.
    pub fn check_caller(&self, tenant: &str, caller: &str) -> Result<Verdict, Box<Refused>> {
        let own = self.check(
            &self.user,
            format!("{tenant}/{caller}"),
            self.config.per_user,
        )?;
        self.check(&self.tenant, tenant.to_owned(), self.config.per_tenant)?;
        Ok(own)
    }

    /// A login attempt from `source` for `tenant`: the allowance of that tenant from that
    /// address, then the address's over every tenant, then every login's together. The
    /// verdict announced is the first one's (the one a caller spends fastest).
    pub fn check_login(&self, tenant: &str, source: &str) -> Result<Verdict, Box<Refused>> {
        let own = self.check(
            &self.login,
            format!("{tenant}/{source}"),
            self.config.logins,
        )?;
        self.check(
            &self.login_address,
            source.to_owned(),
            self.config.logins_per_address,
        )?;
        self.check(&self.login_global, String::new(), self.config.logins_global)?;
        Ok(own)
    }

    /// Forgets callers whose allowance is whole again (keeps memory bounded).
    pub fn prune(&self) {
        self.user.retain_recent();
        self.tenant.retain_recent();
        self.login.retain_recent();
        self.login_address.retain_recent();
        self.login_global.retain_recent();
    }
}

fn limited(limit: u32, wait: Duration) -> Problem {
    let retry = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut p = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        "Too many requests",
        format!("slow down: at most {limit} requests a minute here; retry in {retry} s"),
    );
    p.retry_after_s = Some(u32::try_from(retry.max(1)).unwrap_or(u32::MAX));
    p
}

/// Where the request's extractors leave the verdict for [`headers`] to announce.
#[derive(Clone, Default)]
pub struct Slot(Arc<Mutex<Option<Verdict>>>);

impl Slot {
    pub fn put(&self, v: Verdict) {
        *self.0.lock() = Some(v);
    }
}

/// The middleware: gives each request a [`Slot`], then sets the `RateLimit-*` headers.
pub async fn headers(mut req: Request, next: Next) -> Response {
    let slot = Slot::default();
    req.extensions_mut().insert(slot.clone());
    let mut response = next.run(req).await;
    let verdict = *slot.0.lock();
    if let Some(v) = verdict {
        let h = response.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", v.limit as u64),
            ("ratelimit-remaining", u64::from(v.remaining)),
            ("ratelimit-reset", v.reset_s),
        ] {
            h.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> RateLimits {
        let n = |v| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        RateLimits::new(RateConfig {
            per_user: n(3),
            per_tenant: n(5),
            logins: n(2),
            logins_per_address: n(4),
            logins_global: n(6),
        })
    }

    #[test]
    fn users_then_tenants_run_out_and_are_told_when_to_retry() {
        let l = tiny();
        let remaining: Vec<_> = (0..4)
            .map(|_| l.check_caller("acme", "u1").ok().map(|v| v.remaining))
            .collect();
        assert_eq!(remaining, [Some(2), Some(1), Some(0), None]);
        let refused = l.check_caller("acme", "u1").expect_err("over the limit");
        assert_eq!((refused.verdict.limit, refused.verdict.remaining), (3, 0));
        assert!(refused.verdict.reset_s >= 1);
        let slot = Slot::default();
        let refused = announced(Err(refused), Some(&slot)).expect_err("refused");
        assert_eq!(slot.0.lock().map(|v| v.remaining), Some(0));
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        let retry = refused.retry_after_s.expect("retry after");
        assert!((1..=20).contains(&retry), "{retry}");
        // u1's refused requests did not spend the tenant's allowance: another user still has
        // theirs, until the tenant's (5) runs out.
        assert!(l.check_caller("acme", "u2").is_ok());
        assert!(l.check_caller("acme", "u2").is_ok());
        let tenant_out = l
            .check_caller("acme", "u2")
            .expect_err("tenant allowance spent")
            .problem;
        assert!(
            tenant_out.detail.contains("at most 5"),
            "{}",
            tenant_out.detail
        );
        // Another tenant is untouched.
        assert_eq!(
            l.check_caller("globex", "u1").ok().map(|v| v.limit),
            Some(3)
        );
        // Logins: per tenant and address.
        assert!(l.check_login("acme", "10.0.0.1").is_ok());
        assert!(l.check_login("acme", "10.0.0.1").is_ok());
        assert!(l.check_login("acme", "10.0.0.1").is_err());
        assert!(l.check_login("acme", "10.0.0.2").is_ok());
        l.prune();
    }

    /// Naming a new tenant each time does not escape the address's budget, and many addresses
    /// together do not escape the global one.
    #[test]
    fn logins_are_bounded_per_address_whatever_tenant_and_over_all_addresses() {
        let l = tiny();
        // 10.0.0.1 tries four tenants once each, then a fifth is refused though that tenant's
        // own allowance is whole.
        for t in ["t1", "t2", "t3", "t4"] {
            assert!(l.check_login(t, "10.0.0.1").is_ok(), "{t}");
        }
        let p = l
            .check_login("t5", "10.0.0.1")
            .expect_err("address spent")
            .problem;
        assert!(p.detail.contains("at most 4"), "{}", p.detail);
        assert!(p.retry_after_s.is_some());
        // Two more addresses spend the global six (four spent above, one refused before it).
        assert!(l.check_login("t1", "10.0.0.2").is_ok());
        assert!(l.check_login("t1", "10.0.0.3").is_ok());
        let p = l
            .check_login("t1", "10.0.0.4")
            .expect_err("global spent")
            .problem;
        assert!(p.detail.contains("at most 6"), "{}", p.detail);
    }
}
