//! The attempt loop of one step: call, time out, classify, back off, call again, as the
//! step's retry and timeout policies say. Journaling is left to the caller through
//! [`AttemptObserver`], so the loop itself can be tested on tokio's paused clock.

use std::future::Future;
use std::time::Duration;

use crate::error::{StepError, is_retryable};
use crate::policy::RetryPolicy;

/// What happens around each attempt.
pub trait AttemptObserver {
    /// Attempt `attempt` (1-based) is about to start.
    fn started(&mut self, attempt: u32) -> impl Future<Output = ()> + Send;
    /// Attempt `attempt` failed; `last` says no attempt follows.
    fn failed(
        &mut self,
        attempt: u32,
        error: &StepError,
        last: bool,
    ) -> impl Future<Output = ()> + Send;
}

/// Runs attempts `first..` of a call until one succeeds, the error is not retryable, or
/// the policy allows no more. Each attempt is limited to `timeout`; a timed-out attempt
/// is dropped (cancelling the work in flight) and counts as a `timeout` failure.
pub async fn run_attempts<T, F, Fut, O>(
    policy: &RetryPolicy,
    timeout: Option<Duration>,
    skip_delays: bool,
    first: u32,
    rng: &mut fastrand::Rng,
    observer: &mut O,
    mut call: F,
) -> Result<(T, u32), StepError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, StepError>>,
    O: AttemptObserver,
{
    let mut attempt = first.max(1);
    loop {
        observer.started(attempt).await;
        let outcome = match timeout {
            Some(limit) => match tokio::time::timeout(limit, call(attempt)).await {
                Ok(r) => r,
                Err(_) => Err(StepError::timeout(format!(
                    "timed out after {}",
                    crate::format_duration(limit)
                ))),
            },
            None => call(attempt).await,
        };
        match outcome {
            Ok(v) => return Ok((v, attempt)),
            Err(mut e) => {
                let last = !is_retryable(e.kind) || !policy.allows_another(attempt);
                e.attempts = attempt;
                observer.failed(attempt, &e, last).await;
                if last {
                    return Err(e);
                }
                let mut wait = policy.delay_for(attempt, rng.f64());
                if let Some(after) = e.retry_after {
                    wait = wait.max(after);
                }
                if !skip_delays {
                    tokio::time::sleep(wait).await;
                }
                attempt += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[derive(Default)]
    struct Log(Vec<String>);

    impl AttemptObserver for Log {
        async fn started(&mut self, attempt: u32) {
            self.0.push(format!("start {attempt} at {}ms", now_ms()));
        }
        async fn failed(&mut self, attempt: u32, error: &StepError, last: bool) {
            self.0.push(format!(
                "fail {attempt} {} last={last}",
                error.kind.as_str()
            ));
        }
    }

    thread_local! {
        static START: std::cell::Cell<Option<tokio::time::Instant>> = const { std::cell::Cell::new(None) };
    }

    fn now_ms() -> u128 {
        START.with(|s| {
            let start = s.get().unwrap_or_else(|| {
                let now = tokio::time::Instant::now();
                s.set(Some(now));
                now
            });
            start.elapsed().as_millis()
        })
    }

    fn policy(attempts: u32, delay_ms: u64, backoff: f64) -> RetryPolicy {
        RetryPolicy {
            attempts,
            delay: Duration::from_millis(delay_ms),
            backoff,
            max_delay: Some(Duration::from_secs(5)),
            jitter: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_back_off_exponentially_until_success() {
        now_ms();
        let mut log = Log::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let (v, attempts) = run_attempts(
            &policy(4, 1000, 2.0),
            None,
            false,
            1,
            &mut rng,
            &mut log,
            |n| async move {
                if n < 3 {
                    Err(StepError::communication("blip"))
                } else {
                    Ok(n * 10)
                }
            },
        )
        .await
        .unwrap();
        assert_eq!((v, attempts), (30, 3));
        assert_eq!(
            log.0,
            vec![
                "start 1 at 0ms",
                "fail 1 communication last=false",
                "start 2 at 1000ms",
                "fail 2 communication last=false",
                "start 3 at 3000ms",
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_times_out_and_is_retried() {
        now_ms();
        let mut log = Log::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let result = run_attempts(
            &policy(2, 100, 1.0),
            Some(Duration::from_secs(1)),
            false,
            1,
            &mut rng,
            &mut log,
            |_| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, StepError>(())
            },
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Timeout);
        assert_eq!(err.attempts, 2);
        assert_eq!(
            log.0,
            vec![
                "start 1 at 0ms",
                "fail 1 timeout last=false",
                "start 2 at 1100ms",
                "fail 2 timeout last=true"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let mut log = Log::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let err = run_attempts(
            &policy(5, 100, 1.0),
            None,
            false,
            1,
            &mut rng,
            &mut log,
            |_| async { Err::<(), _>(StepError::new(ErrorKind::Authentication, "bad token")) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.attempts, 1);
        assert_eq!(
            log.0.last().map(String::as_str),
            Some("fail 1 authentication last=true")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        now_ms();
        let mut log = Log::default();
        let mut rng = fastrand::Rng::with_seed(1);
        run_attempts(
            &policy(2, 10, 1.0),
            None,
            false,
            1,
            &mut rng,
            &mut log,
            |n| async move {
                if n == 1 {
                    Err(StepError::communication("429").with_retry_after(Duration::from_secs(7)))
                } else {
                    Ok(())
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(log.0[2], "start 2 at 7000ms");
    }

    #[tokio::test(start_paused = true)]
    async fn jittered_waits_stay_below_the_backoff() {
        now_ms();
        let mut log = Log::default();
        let mut rng = fastrand::Rng::with_seed(42);
        let p = RetryPolicy {
            jitter: true,
            ..policy(3, 1000, 2.0)
        };
        run_attempts(&p, None, false, 1, &mut rng, &mut log, |n| async move {
            if n < 3 {
                Err(StepError::communication("x"))
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        let starts: Vec<u128> = log
            .0
            .iter()
            .filter_map(|l| {
                l.strip_prefix("start ")
                    .and_then(|r| r.split(" at ").nth(1))
                    .and_then(|t| t.trim_end_matches("ms").parse().ok())
            })
            .collect();
        assert_eq!(starts.len(), 3);
        assert!(starts[1] <= 1000, "{starts:?}");
        assert!(starts[2] - starts[1] <= 2000, "{starts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resumed_step_continues_counting_attempts() {
        let mut log = Log::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let err = run_attempts(
            &policy(3, 10, 1.0),
            None,
            false,
            3,
            &mut rng,
            &mut log,
            |_| async { Err::<(), _>(StepError::communication("down")) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.attempts, 3);
        assert_eq!(log.0.len(), 2);
    }
}
