//! A worker: claims queued runs (and, on PostgreSQL, the runs of executors whose
//! heartbeat went stale) from the store and executes them, as many at once as its
//! capacity allows, until told to stop.
//!
//! It claims when told work may be waiting (the store's hint: `LISTEN/NOTIFY` on
//! PostgreSQL), when one of its runs ends, and otherwise every [`WorkerOptions::poll`],
//! so it also works where notifications do not arrive (a transaction-mode pooler). An
//! idle worker on PostgreSQL makes one claim query per poll and one heartbeat per two
//! seconds.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::engine::{Engine, EngineError};

/// How a worker claims.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Most runs executing at once in this worker (parked runs count: they are held
    /// here until they end).
    pub capacity: usize,
    /// How often an idle worker looks for work without a hint.
    pub poll: Duration,
    /// After `stop`, how long runs in flight get to end before [`work`] returns (what is
    /// left is journaled and taken by another worker once this one's lease lapses).
    pub grace: Duration,
}

impl Default for WorkerOptions {
    fn default() -> WorkerOptions {
        WorkerOptions {
            capacity: 50,
            poll: Duration::from_secs(2),
            grace: Duration::from_secs(10),
        }
    }
}

/// What a worker did, for its log and its caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    pub claimed: usize,
    pub finished: usize,
}

/// Claims and executes runs until `stop` resolves; then gives runs in flight up to
/// [`WorkerOptions::grace`] to end. A store that fails is retried with backoff, and said
/// so in the log.
pub async fn work(
    engine: &Engine,
    options: WorkerOptions,
    stop: impl Future<Output = ()>,
) -> Result<WorkerReport, EngineError> {
    let store = engine.store().clone();
    let hint = store.work_hint();
    let running = Arc::new(AtomicUsize::new(0));
    let freed = Arc::new(tokio::sync::Notify::new());
    let finished = Arc::new(AtomicUsize::new(0));
    let capacity = options.capacity.max(1);
    let mut claimed = 0;
    let mut failures = 0u32;
    tokio::pin!(stop);
    loop {
        let free = capacity.saturating_sub(running.load(Ordering::Acquire));
        let mut full_batch = false;
        if free > 0 {
            match store.claim_runnable(engine.executor(), free).await {
                Ok(rows) => {
                    failures = 0;
                    full_batch = rows.len() == free;
                    for row in rows {
                        tracing::info!(run = %row.run_id, workflow = %row.workflow, "claimed");
                        claimed += 1;
                        let Some(handle) = engine.resume_or_fail(row).await? else {
                            continue;
                        };
                        running.fetch_add(1, Ordering::AcqRel);
                        let (running, freed, finished) =
                            (running.clone(), freed.clone(), finished.clone());
                        tokio::spawn(async move {
                            let outcome = handle.outcome().await;
                            match &outcome.error {
                                Some(error) => {
                                    tracing::warn!(run = %outcome.run_id, status = outcome.status.as_str(), error = %error.message, "finished")
                                }
                                None => {
                                    tracing::info!(run = %outcome.run_id, status = outcome.status.as_str(), "finished")
                                }
                            }
                            running.fetch_sub(1, Ordering::AcqRel);
                            finished.fetch_add(1, Ordering::AcqRel);
                            freed.notify_one();
                        });
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "cannot claim runs; retrying");
                }
            }
        }
        // More may be waiting behind a full batch: claim again at once.
        if full_batch && running.load(Ordering::Acquire) < capacity {
            continue;
        }
        let pause = if failures > 0 {
            Duration::from_millis(100u64 << failures.min(6)).min(options.poll)
        } else {
            options.poll
        };
        tokio::select! {
            () = &mut stop => break,
            () = hint.notified() => {}
            () = freed.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
    let waiting_since = tokio::time::Instant::now();
    while running.load(Ordering::Acquire) > 0 {
        let left = options.grace.saturating_sub(waiting_since.elapsed());
        if left.is_zero() {
            tracing::warn!(
                runs = running.load(Ordering::Acquire),
                "the grace period ended with runs in flight; they are journaled and resume elsewhere"
            );
            break;
        }
        let _ = tokio::time::timeout(left, freed.notified()).await;
    }
    Ok(WorkerReport {
        claimed,
        finished: finished.load(Ordering::Acquire),
    })
}
