//! Retry and timeout policies: how many attempts a step gets, how long to wait between
//! them (exponential backoff with full jitter, capped), and how long an attempt may run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A step's retry policy (`retry ... delay D backoff F max_delay M jitter`, or the
/// workflow's `settings { retry = {...} }`), counted in total attempts including the first.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts, at least 1.
    pub attempts: u32,
    /// The wait before the second attempt.
    pub delay: Duration,
    /// Multiplier applied to the wait after each failed attempt; 1.0 keeps it constant.
    pub backoff: f64,
    /// Upper bound of any single wait.
    pub max_delay: Option<Duration>,
    /// Full jitter: each wait is drawn uniformly from `[0, computed wait]`, so many
    /// runs failing together do not retry in lock step.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy::none()
    }
}

/// Waits are capped here even without `max_delay`, so `backoff 10.0` over 30 attempts
/// cannot overflow into centuries.
const HARD_MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

impl RetryPolicy {
    /// One attempt, no retry.
    pub const fn none() -> RetryPolicy {
        RetryPolicy {
            attempts: 1,
            delay: Duration::ZERO,
            backoff: 1.0,
            max_delay: None,
            jitter: false,
        }
    }

    /// The wait after failed attempt `failed` (1-based) before the next one, without
    /// jitter: `delay * backoff^(failed - 1)`, capped by `max_delay`.
    pub fn base_delay(&self, failed: u32) -> Duration {
        let cap = self.max_delay.unwrap_or(HARD_MAX_DELAY).min(HARD_MAX_DELAY);
        let factor = if self.backoff > 1.0 && self.backoff.is_finite() {
            self.backoff
                .powi(i32::try_from(failed.saturating_sub(1)).unwrap_or(i32::MAX))
        } else {
            1.0
        };
        let secs = self.delay.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= cap.as_secs_f64() {
            cap
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }

    /// The wait after failed attempt `failed`, with full jitter when enabled; `unit` is
    /// a uniform draw from `[0, 1)` (the caller owns the random source so tests can fix it).
    pub fn delay_for(&self, failed: u32, unit: f64) -> Duration {
        let base = self.base_delay(failed);
        if self.jitter {
            base.mul_f64(unit.clamp(0.0, 1.0))
        } else {
            base
        }
    }

    /// Whether another attempt is allowed after `failed` attempts.
    pub fn allows_another(&self, failed: u32) -> bool {
        failed < self.attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(delay_ms: u64, backoff: f64, max_ms: Option<u64>, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            delay: Duration::from_millis(delay_ms),
            backoff,
            max_delay: max_ms.map(Duration::from_millis),
            jitter,
        }
    }

    #[test]
    fn exponential_backoff_doubles_and_is_capped() {
        let p = policy(2000, 2.0, Some(30_000), false);
        let waits: Vec<u128> = (1..=6).map(|n| p.base_delay(n).as_millis()).collect();
        assert_eq!(waits, vec![2000, 4000, 8000, 16000, 30000, 30000]);
    }

    #[test]
    fn constant_delay_without_backoff() {
        let p = policy(500, 1.0, None, false);
        assert_eq!(p.base_delay(1), Duration::from_millis(500));
        assert_eq!(p.base_delay(4), Duration::from_millis(500));
    }

    #[test]
    fn attempts_count_the_first_try() {
        let p = RetryPolicy {
            attempts: 3,
            ..RetryPolicy::none()
        };
        assert!(p.allows_another(1));
        assert!(p.allows_another(2));
        assert!(!p.allows_another(3));
        assert!(!RetryPolicy::none().allows_another(1));
    }

    proptest! {
        /// Full jitter never exceeds the un-jittered wait and never goes negative.
        #[test]
        fn jitter_stays_within_the_base(delay in 0u64..100_000, backoff in 1.0f64..5.0, failed in 1u32..40, unit in 0.0f64..1.0) {
            let p = policy(delay, backoff, Some(60_000), true);
            let base = p.base_delay(failed);
            let wait = p.delay_for(failed, unit);
            prop_assert!(wait <= base);
            prop_assert!(base <= Duration::from_millis(60_000));
        }

        /// Waits never shrink from one attempt to the next.
        #[test]
        fn backoff_is_monotonic(delay in 0u64..10_000, backoff in 1.0f64..4.0, failed in 1u32..60) {
            let p = policy(delay, backoff, None, false);
            prop_assert!(p.base_delay(failed) <= p.base_delay(failed + 1));
        }
    }
}
