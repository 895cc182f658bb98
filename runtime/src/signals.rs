//! Signals: sending one to a run, checked against the type its workflow waits for, and
//! waking the runs of this process that wait for one.
//!
//! A signal is stored (durably, in the run store's `signals` table) before the sender is
//! answered, whether the run is waiting yet or not; a `wait signal("name")` step takes
//! the oldest untaken signal of its name ([`Store::take_signal`]). A sender in this
//! process wakes the run at once ([`SignalHub::wake`]); one in another process (`flow
//! signal --store`, another server on the store) is noticed by the hub's poller within a
//! second, one query for all the runs of the process that wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_expr::Value;
use flow_ir::program::Program;
use serde_json::Value as Json;
use tokio::sync::Notify;

use crate::store::{RunKey, RunRow, Store, StoreError};

/// How often the poller looks for signals other processes stored, while runs wait.
const POLL: Duration = Duration::from_secs(1);

/// Signals for `wait signal(...)` steps from somewhere other than the store: given a
/// signal's name, the next payload (JSON), a failure, or `None` when nothing is mocked.
#[derive(Clone)]
pub struct MockedSignals(
    pub Arc<dyn Fn(&str) -> Option<Result<Json, crate::StepError>> + Send + Sync>,
);

impl std::fmt::Debug for MockedSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MockedSignals")
    }
}

/// A signal to send.
#[derive(Clone, Debug)]
pub struct SignalRequest {
    pub run_id: String,
    pub name: String,
    pub payload: Json,
    /// The sender's id: sending again with it stores nothing more.
    pub id: Option<String>,
}

/// A stored signal.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    pub run: String,
    pub signal: String,
    /// The signal's number in the store.
    pub seq: i64,
    /// The sender's id was seen before: nothing new was stored.
    pub duplicate: bool,
}

/// Why a signal was refused. Nothing is stored for a refused signal.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("no run `{0}`")]
    NoSuchRun(String),
    #[error("run `{run}` has ended ({status}); it takes no more signals")]
    Ended { run: String, status: String },
    #[error("workflow `{workflow}` never waits for a signal `{name}`{}", known_list(.known))]
    NoSuchSignal {
        workflow: String,
        name: String,
        known: Vec<String>,
    },
    #[error("the payload does not fit signal `{name}`: {message}")]
    Invalid {
        name: String,
        message: String,
        /// Where in the payload (`data.amount`).
        path: String,
    },
    #[error("the run's program cannot be read: {0}")]
    Program(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        " (it waits for none)".to_owned()
    } else {
        format!(" (it waits for {})", known.join(", "))
    }
}

/// Checks `request` against the workflow of its run and stores it. `run` is the run when
/// the caller has read it already (the run API does, to check the key's access), else it
/// is read by `request.run_id`. `program_of` gives a run's program (an engine's cache, or
/// the store's bytes decoded).
pub async fn send(
    store: &Store,
    run: Option<RunRow>,
    request: SignalRequest,
    program_of: &(dyn Fn(&RunRow) -> Result<Arc<Program>, String> + Sync),
    now_ms: i64,
) -> Result<(RunKey, Sent), SignalError> {
    let run = match run {
        Some(run) => run,
        None => {
            let store = store.clone();
            let id = request.run_id.clone();
            tokio::task::spawn_blocking(move || store.run_by_id(&id))
                .await
                .map_err(|e| SignalError::Program(e.to_string()))??
                .ok_or_else(|| SignalError::NoSuchRun(request.run_id.clone()))?
        }
    };
    if run.status.is_final() {
        return Err(SignalError::Ended {
            run: run.run_id,
            status: run.status.as_str().to_owned(),
        });
    }
    let program = program_of(&run).map_err(SignalError::Program)?;
    let workflow = program
        .workflows
        .iter()
        .find(|w| w.name == run.workflow)
        .ok_or_else(|| SignalError::Program(format!("no workflow `{}` in it", run.workflow)))?;
    let ty = workflow
        .signal_type(&request.name)
        .ok_or_else(|| SignalError::NoSuchSignal {
            workflow: workflow.name.clone(),
            name: request.name.clone(),
            known: workflow.signals().into_iter().map(str::to_owned).collect(),
        })?;
    Value::from_json_named(&request.payload, ty, "data").map_err(|e| SignalError::Invalid {
        name: request.name.clone(),
        message: e.to_string(),
        path: e.path.clone(),
    })?;
    let stored = store
        .put_signal(
            run.key,
            &request.name,
            request.payload.to_string(),
            request.id.clone(),
            now_ms,
        )
        .await?;
    Ok((
        run.key,
        Sent {
            run: run.run_id,
            signal: request.name,
            seq: stored.seq,
            duplicate: stored.duplicate,
        },
    ))
}

/// A step's registration with the [`SignalHub`]; dropping it ends the registration.
pub(crate) struct Waiting {
    hub: Arc<SignalHub>,
    run: RunKey,
    /// Woken when a signal for the run is stored.
    pub notify: Arc<Notify>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.hub.done(self.run);
    }
}

/// The runs of this process that wait for a signal, and the poller that notices signals
/// stored by other processes.
#[derive(Default)]
pub struct SignalHub {
    /// Per waiting run: its wake-up and how many of its steps wait.
    waiting: Mutex<HashMap<RunKey, (Arc<Notify>, usize)>>,
    /// The newest signal the poller has seen.
    seen: AtomicI64,
    polling: Mutex<bool>,
}

impl SignalHub {
    pub fn new() -> Arc<SignalHub> {
        Arc::new(SignalHub::default())
    }

    /// Registers a waiting step of `run` until the returned guard is dropped (when the
    /// wait ends, or its task is aborted by a cancel); the poller runs while any step
    /// waits.
    pub(crate) fn wait(self: &Arc<Self>, store: &Store, run: RunKey) -> Waiting {
        let notify = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            let entry = waiting
                .entry(run)
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            Arc::clone(&entry.0)
        };
        let mut polling = self.polling.lock().unwrap_or_else(|e| e.into_inner());
        if !*polling {
            *polling = true;
            let hub = Arc::clone(self);
            let store = store.clone();
            tokio::spawn(async move { hub.poll(store).await });
        }
        Waiting {
            hub: Arc::clone(self),
            run,
            notify,
        }
    }

    /// A step of `run` no longer waits.
    fn done(&self, run: RunKey) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = waiting.get_mut(&run) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                waiting.remove(&run);
            }
        }
    }

    /// Wakes the steps of `run` that wait (a signal was stored for it).
    pub fn wake(&self, run: RunKey) {
        let waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((notify, _)) = waiting.get(&run) {
            notify.notify_waiters();
        }
    }

    /// While steps wait: once a second, one query for the signals stored since the last
    /// look, waking the runs they are for. Stops when nothing waits.
    async fn poll(self: Arc<Self>, store: Store) {
        // `seen` starts at 0: the first look wakes every waiting run with an untaken
        // signal, so one stored between a wait's own look and the poller's start is not
        // missed (a wake with nothing to take costs one query).
        loop {
            tokio::time::sleep(POLL).await;
            {
                let mut polling = self.polling.lock().unwrap_or_else(|e| e.into_inner());
                if self
                    .waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty()
                {
                    *polling = false;
                    return;
                }
            }
            let after = self.seen.load(Ordering::Relaxed);
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.signals_after(after)).await {
                Ok(Ok((runs, newest))) => {
                    self.seen.store(newest, Ordering::Relaxed);
                    for run in runs {
                        self.wake(run);
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot look for new signals"),
                Err(_) => {}
            }
        }
    }
}
