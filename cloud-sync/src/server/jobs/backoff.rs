//! How long a failed job waits before its next attempt: exponential back-off with full jitter
//! (the wait is drawn uniformly between zero and a ceiling that doubles with each attempt, up to
//! a cap), so that jobs failing together do not all come back together.

use std::time::Duration;

/// A kind's retry curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The ceiling after the first failed attempt.
    pub base: Duration,
    /// The ceiling never grows past this.
    pub cap: Duration,
}

impl Default for Backoff {
    /// 1 s after the first failure, doubling, at most an hour: ten attempts span about 17
    /// minutes of ceilings.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
        }
    }
}

impl Backoff {
    /// The longest wait after failed attempt `attempt` (1 = the first): `base · 2^(attempt-1)`,
    /// at most `cap`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(62);
        let ms = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let grown = ms.saturating_mul(1u64 << doublings);
        Duration::from_millis(grown).min(self.cap)
    }

    /// The wait after failed attempt `attempt`, for a uniform draw `unit` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait after failed attempt `attempt`, drawn now.
    pub fn draw(&self, attempt: u32) -> Duration {
        self.delay(attempt, unit_random())
    }
}

/// A uniform draw in `[0, 1)` from the operating system's generator (0 if it cannot answer:
/// the retry then comes at once, which is safe).
pub fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.0;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(5), Duration::from_secs(16));
        assert_eq!(b.ceiling(13), Duration::from_secs(3600));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(3600));
        assert_eq!(
            b.ceiling(0),
            Duration::from_secs(1),
            "no attempt yet: the base"
        );
    }

    proptest! {
        /// Full jitter: every wait lies between zero and the ceiling, and the ceiling never
        /// shrinks from one attempt to the next nor passes the cap.
        #[test]
        fn waits_lie_under_a_growing_capped_ceiling(base_ms in 1u64..600_000, cap_ms in 1u64..86_400_000,
                                                   attempt in 0u32..200, unit in 0.0f64..1.0) {
            let b = Backoff { base: Duration::from_millis(base_ms), cap: Duration::from_millis(cap_ms) };
            let d = b.delay(attempt, unit);
            prop_assert!(d <= b.ceiling(attempt));
            prop_assert!(b.ceiling(attempt) <= b.ceiling(attempt.saturating_add(1)));
            prop_assert!(b.ceiling(attempt) <= b.cap);
        }

        /// The draw spreads over the whole range: the lowest and highest of many draws come
        /// within a tenth of the ceiling's ends.
        #[test]
        fn draws_cover_the_range(attempt in 1u32..12) {
            let b = Backoff::default();
            let ceiling = b.ceiling(attempt).as_secs_f64();
            let draws: Vec<f64> = (0..400).map(|_| b.draw(attempt).as_secs_f64()).collect();
            let lo = draws.iter().copied().fold(f64::MAX, f64::min);
            let hi = draws.iter().copied().fold(0.0, f64::max);
            prop_assert!(lo < ceiling * 0.1 && hi > ceiling * 0.9, "{} {} of {}", lo, hi, ceiling);
        }
    }
}
