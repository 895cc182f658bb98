//! Policies per integration and connection: the declared rate limit (governor), the
//! circuit breaker (closed, open, half-open), and the result cache of `idempotent`
//! actions called with `cache D` (moka).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flow_expr::Value;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Which connection a policy state belongs to: integration and owner.
pub type Key = (String, String);

/// Rate limiters, one per integration and connection.
#[derive(Default)]
pub struct Limits {
    limiters: Mutex<HashMap<Key, Arc<DefaultDirectRateLimiter>>>,
}

impl Limits {
    fn limiter(
        &self,
        key: &Key,
        count: u32,
        per: Duration,
    ) -> Option<Arc<DefaultDirectRateLimiter>> {
        let mut map = self
            .limiters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(l) = map.get(key) {
            return Some(Arc::clone(l));
        }
        let burst = NonZeroU32::new(count)?;
        let period = per.checked_div(count)?.max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)?.allow_burst(burst);
        let l = Arc::new(RateLimiter::direct(quota));
        map.insert(key.clone(), Arc::clone(&l));
        Some(l)
    }

    /// Waits until the connection may send one more request.
    pub async fn acquire(&self, key: &Key, count: u32, per: Duration) {
        let Some(l) = self.limiter(key, count, per) else {
            return;
        };
        let clock = DefaultClock::default();
        while let Err(not_until) = l.check() {
            tokio::time::sleep(not_until.wait_time_from(clock.now())).await;
        }
    }
}

/// A circuit breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls fail at once until `open_for` has passed.
    Open,
    /// One trial call goes through; its outcome closes or reopens the circuit.
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
        }
    }
}

/// When a circuit opens and for how long.
#[derive(Clone, Copy, Debug)]
pub struct BreakerConfig {
    /// Consecutive failures (communication errors, timeouts, 5xx) that open the circuit.
    pub failure_threshold: u32,
    /// How long an open circuit refuses calls before letting a trial through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Breaker {
    state: State,
    failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

/// A transition worth recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub to: State,
    pub failures: u32,
}

/// Circuit breakers, one per integration and connection. Only connections with recent
/// failures have one; a breaker that closes again is dropped, so while every service
/// answers, a call asks nothing of the map ([`Breakers::is_idle`]).
#[derive(Default)]
pub struct Breakers {
    config: BreakerConfig,
    map: Mutex<HashMap<Key, Breaker>>,
    /// How many breakers the map holds, readable without the lock.
    tracked: std::sync::atomic::AtomicUsize,
}

/// Why a call was refused without being sent.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub retry_in: Duration,
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Breakers {
        Breakers {
            config,
            map: Mutex::new(HashMap::new()),
            tracked: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Whether no connection has a breaker: every call is admitted, and a success changes
    /// nothing.
    pub fn is_idle(&self) -> bool {
        self.tracked.load(std::sync::atomic::Ordering::Relaxed) == 0
    }

    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// Asks to send a call: `Err` when the circuit is open. A call allowed in half-open
    /// state is the trial; others are refused until it reports.
    pub fn admit(&self, key: &Key) -> Result<Option<Transition>, Refused> {
        self.admit_with(key, self.config)
    }

    /// [`Breakers::admit`] with a connection's own thresholds.
    pub fn admit_with(
        &self,
        key: &Key,
        config: BreakerConfig,
    ) -> Result<Option<Transition>, Refused> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(b) = map.get_mut(key) else {
            return Ok(None);
        };
        match b.state {
            State::Closed => Ok(None),
            State::Open => {
                let elapsed = b.opened_at.map(|t| t.elapsed()).unwrap_or_default();
                if elapsed >= config.open_for {
                    b.state = State::HalfOpen;
                    b.trial_in_flight = true;
                    Ok(Some(Transition {
                        to: State::HalfOpen,
                        failures: b.failures,
                    }))
                } else {
                    Err(Refused {
                        retry_in: config.open_for - elapsed,
                    })
                }
            }
            State::HalfOpen => {
                if b.trial_in_flight {
                    Err(Refused {
                        retry_in: Duration::from_secs(1),
                    })
                } else {
                    b.trial_in_flight = true;
                    Ok(None)
                }
            }
        }
    }

    /// Reports a call's outcome; returns the transition it caused, if any.
    pub fn report(&self, key: &Key, failed: bool) -> Option<Transition> {
        self.report_with(key, failed, self.config)
    }

    /// [`Breakers::report`] with a connection's own thresholds.
    pub fn report_with(
        &self,
        key: &Key,
        failed: bool,
        config: BreakerConfig,
    ) -> Option<Transition> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !failed && !map.contains_key(key) {
            return None;
        }
        let b = map.entry(key.clone()).or_insert(Breaker {
            state: State::Closed,
            failures: 0,
            opened_at: None,
            trial_in_flight: false,
        });
        let tracked = |map: &HashMap<Key, Breaker>| {
            self.tracked
                .store(map.len(), std::sync::atomic::Ordering::Relaxed);
        };
        b.trial_in_flight = false;
        if failed {
            b.failures = b.failures.saturating_add(1);
            let open = match b.state {
                State::HalfOpen => true,
                State::Closed => b.failures >= config.failure_threshold,
                State::Open => false,
            };
            let transition = open.then(|| {
                b.state = State::Open;
                b.opened_at = Some(Instant::now());
                Transition {
                    to: State::Open,
                    failures: b.failures,
                }
            });
            tracked(&map);
            transition
        } else {
            // Closed with no failures is what no breaker means.
            let was = b.state;
            map.remove(key);
            tracked(&map);
            (was != State::Closed).then_some(Transition {
                to: State::Closed,
                failures: 0,
            })
        }
    }

    pub fn state(&self, key: &Key) -> State {
        let map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).map_or(State::Closed, |b| b.state)
    }
}

/// Successful results of idempotent actions, each kept for the `cache D` of the call
/// that stored it.
pub struct ResultCache {
    cache: moka::sync::Cache<u64, (Value, Instant)>,
}

impl Default for ResultCache {
    fn default() -> ResultCache {
        ResultCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(24 * 3600))
                .build(),
        }
    }
}

impl ResultCache {
    pub fn get(&self, key: u64) -> Option<Value> {
        match self.cache.get(&key) {
            Some((v, until)) if Instant::now() < until => Some(v),
            Some(_) => {
                self.cache.invalidate(&key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: u64, value: Value, ttl: Duration) {
        self.cache.insert(key, (value, Instant::now() + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_opens_half_opens_and_closes() {
        let b = Breakers::new(BreakerConfig {
            failure_threshold: 2,
            open_for: Duration::from_millis(0),
        });
        let k: Key = ("slack".into(), "ops".into());
        assert!(b.admit(&k).is_ok());
        assert_eq!(b.report(&k, true), None);
        assert_eq!(
            b.report(&k, true),
            Some(Transition {
                to: State::Open,
                failures: 2
            })
        );
        assert_eq!(b.state(&k), State::Open);
        // open_for is zero: the next call is the half-open trial, and a second waits.
        assert_eq!(
            b.admit(&k).unwrap(),
            Some(Transition {
                to: State::HalfOpen,
                failures: 2
            })
        );
        assert!(b.admit(&k).is_err());
        assert_eq!(
            b.report(&k, false),
            Some(Transition {
                to: State::Closed,
                failures: 0
            })
        );
        assert_eq!(b.state(&k), State::Closed);
        assert!(b.is_idle(), "a closed breaker is dropped");
    }

    #[test]
    fn breakers_are_idle_until_a_failure_and_again_after_recovery() {
        let b = Breakers::new(BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(60),
        });
        let (ops, ci): (Key, Key) = (
            ("slack".into(), "ops".into()),
            ("slack".into(), "ci".into()),
        );
        assert!(b.is_idle());
        assert_eq!(b.report(&ops, false), None);
        assert!(b.is_idle(), "a success alone tracks nothing");
        b.report(&ops, true);
        b.report(&ci, true);
        assert!(!b.is_idle());
        // One failure below the threshold, then a success: counted from zero again.
        assert_eq!(b.report(&ops, false), None);
        assert!(!b.is_idle(), "ci still has a failure");
        b.report(&ops, true);
        b.report(&ops, true);
        assert_eq!(
            b.state(&ops),
            State::Closed,
            "two failures since the success"
        );
        b.report(&ci, false);
        b.report(&ops, false);
        assert!(b.is_idle());
    }

    #[test]
    fn an_open_breaker_refuses_until_its_time() {
        let b = Breakers::new(BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_secs(60),
        });
        let k: Key = ("x".into(), "y".into());
        b.report(&k, true);
        let refused = b.admit(&k).unwrap_err();
        assert!(refused.retry_in <= Duration::from_secs(60));
    }

    #[test]
    fn cached_results_expire() {
        let c = ResultCache::default();
        c.put(1, Value::Int(3), Duration::from_secs(60));
        c.put(2, Value::Int(4), Duration::ZERO);
        assert!(matches!(c.get(1), Some(Value::Int(3))));
        assert!(c.get(2).is_none());
    }
}
