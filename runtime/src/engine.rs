//! The engine: admits runs (priority, global and per-workflow limits), creates them in
//! the journal, drives each on tokio, and picks up the runs of executors that died.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flow_ir::program::{Priority, Program, WorkflowId};
use serde_json::Value as Json;
use tokio::sync::Semaphore;

use crate::admission::{Admission, Permit};
use crate::clock::Clock;
use crate::error::StepError;
use crate::exec::{self, Replay, RunShared};
use crate::invoke::Connector;
use crate::store::{Event, EventKind, Lease, NewRun, RunKey, RunRow, RunStatus, Store, StoreError};

/// Limits and identity of an engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Runs executing at once (runs parked on a `wait` do not count).
    pub max_concurrent_runs: usize,
    /// Step calls in flight at once within one run.
    pub max_parallel_steps: usize,
    /// `--as OWNER`: whose connections the runs use.
    pub owner: Option<String>,
    /// Retry delays and `wait` timers elapse at once (for `flow test`); they are still
    /// journaled.
    pub skip_delays: bool,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            max_concurrent_runs: 50,
            max_parallel_steps: 64,
            owner: None,
            skip_delays: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no workflow named `{name}` in this program{}", did_you_mean(.candidates))]
    NoSuchWorkflow {
        name: String,
        candidates: Vec<String>,
    },
    #[error("the program of run {run_id} is missing from the store or unreadable: {detail}")]
    Program { run_id: String, detail: String },
    #[error("run {0} has already finished")]
    Finished(String),
    #[error("run {run_id} is being executed by another live process ({executor})")]
    Busy { run_id: String, executor: String },
}

fn did_you_mean(candidates: &[String]) -> String {
    if candidates.is_empty() {
        String::new()
    } else {
        format!("; it has: {}", candidates.join(", "))
    }
}

/// A progress notification for whoever shows runs to people.
#[derive(Clone, Debug)]
pub enum Progress {
    RunStarted {
        resumed: bool,
    },
    StepStarted {
        step: String,
        attempt: u32,
    },
    StepSucceeded {
        step: String,
        attempt: u32,
        elapsed: Duration,
        replayed: bool,
    },
    StepFailed {
        step: String,
        attempt: u32,
        error: StepError,
        last: bool,
    },
    Waiting {
        key: String,
        until_ms: i64,
    },
    Log {
        message: String,
    },
    RunFinished {
        status: RunStatus,
    },
}

/// Receives progress; the CLI draws it, tests collect it.
pub trait Observer: Send + Sync {
    fn progress(&self, run_id: &str, workflow: &str, child: bool, event: &Progress);
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
    fn progress(&self, _: &str, _: &str, _: bool, _: &Progress) {}
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub run_id: String,
    pub status: RunStatus,
    pub output: Json,
    pub error: Option<StepError>,
}

/// A submitted run; await [`RunHandle::outcome`] for its end.
pub struct RunHandle {
    pub run_id: String,
    pub key: RunKey,
    pub workflow: String,
    join: tokio::task::JoinHandle<RunOutcome>,
}

impl RunHandle {
    pub async fn outcome(self) -> RunOutcome {
        let run_id = self.run_id.clone();
        match self.join.await {
            Ok(o) => o,
            Err(e) => RunOutcome {
                run_id,
                status: RunStatus::Failed,
                output: Json::Null,
                error: Some(StepError::runtime(format!("the run's task stopped: {e}"))),
            },
        }
    }

    pub fn abort(&self) {
        self.join.abort();
    }

    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }
}

/// A compiled program the engine can run: the IR plus one prepared expression program
/// per workflow.
pub struct Loaded {
    pub program: Arc<Program>,
    pub hash: String,
    pub(crate) exprs: Vec<Arc<flow_expr::Program>>,
    pub(crate) arenas: Mutex<HashMap<(u32, u32), Arc<flow_expr::Program>>>,
}

impl Loaded {
    pub fn new(program: Program) -> Result<Loaded, serde_json::Error> {
        let bytes = serde_json::to_vec(&program)?;
        let hash = content_hash(&bytes);
        Ok(Loaded::with_hash(program, hash))
    }

    fn with_hash(program: Program, hash: String) -> Loaded {
        let exprs = program
            .workflows
            .iter()
            .map(|w| Arc::new(flow_expr::Program::new(w.exprs.clone())))
            .collect();
        Loaded {
            program: Arc::new(program),
            hash,
            exprs,
            arenas: Mutex::new(HashMap::new()),
        }
    }

    /// A prepared arena of an action (`kind` 0) or notify mapping (`kind` 1) of an integration.
    pub(crate) fn action_exprs(
        &self,
        integration: u32,
        index: u32,
        notify: bool,
    ) -> Option<Arc<flow_expr::Program>> {
        let key = (integration, if notify { u32::MAX } else { index });
        let mut cache = self.arenas.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(&key) {
            return Some(Arc::clone(p));
        }
        let integ = self.program.integrations.get(integration as usize)?;
        let arena = if notify {
            integ.notify.as_ref()?.exprs.clone()
        } else {
            integ.actions.get(index as usize)?.exprs.clone()
        };
        let p = Arc::new(flow_expr::Program::new(arena));
        cache.insert(key, Arc::clone(&p));
        Some(p)
    }
}

/// A stable 128-bit FNV-1a content hash, hex.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in bytes {
        h ^= u128::from(*b);
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    format!("{h:032x}")
}

pub(crate) struct Inner {
    pub store: Store,
    pub lease_token: String,
    lease: Mutex<Option<Lease>>,
    pub connector: Arc<dyn Connector>,
    pub config: EngineConfig,
    admission: Arc<Admission>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    programs: Mutex<HashMap<String, Arc<Loaded>>>,
    pub clock: Clock,
    pub observer: Arc<dyn Observer>,
    /// Runs executing here, woken when `flow runs cancel` marks them cancelled.
    cancels: Mutex<HashMap<RunKey, Arc<tokio::sync::Notify>>>,
    watcher: std::sync::OnceLock<()>,
}

/// The executor. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    /// An engine over `store`, calling actions through `connector`. Takes this process's
    /// executor lease on the store.
    pub fn new(
        store: Store,
        connector: Arc<dyn Connector>,
        config: EngineConfig,
        observer: Arc<dyn Observer>,
    ) -> Result<Engine, EngineError> {
        let lease = Lease::acquire(store.path())?;
        Ok(Engine {
            inner: Arc::new(Inner {
                store,
                lease_token: lease.token.clone(),
                lease: Mutex::new(Some(lease)),
                connector,
                admission: Admission::new(config.max_concurrent_runs),
                config,
                limits: Mutex::new(HashMap::new()),
                programs: Mutex::new(HashMap::new()),
                clock: Clock::system(),
                observer,
                cancels: Mutex::new(HashMap::new()),
                watcher: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Registers a compiled program and saves it in the store, so its runs can be
    /// resumed without the source.
    pub async fn load(&self, program: Program) -> Result<Arc<Loaded>, EngineError> {
        let bytes = serde_json::to_vec(&program).map_err(|e| EngineError::Program {
            run_id: String::new(),
            detail: e.to_string(),
        })?;
        let hash = content_hash(&bytes);
        if let Some(l) = self
            .inner
            .programs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hash)
        {
            return Ok(Arc::clone(l));
        }
        self.inner
            .store
            .save_program(&hash, bytes, self.inner.clock.now_millis())
            .await?;
        let loaded = Arc::new(Loaded::with_hash(program, hash.clone()));
        self.inner
            .programs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(hash, Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Starts a run of `workflow` with `input` (a JSON object of arguments). Returns once
    /// the run is durably accepted.
    pub async fn submit(
        &self,
        loaded: &Arc<Loaded>,
        workflow: &str,
        input: Json,
    ) -> Result<RunHandle, EngineError> {
        let (wf_id, wf) = loaded.program.workflow_by_name(workflow).ok_or_else(|| {
            EngineError::NoSuchWorkflow {
                name: workflow.to_owned(),
                candidates: loaded
                    .program
                    .workflows
                    .iter()
                    .map(|w| w.name.clone())
                    .collect(),
            }
        })?;
        let run_id = new_run_id(&self.inner.clock);
        let priority = priority_value(wf.settings.priority);
        let key = self
            .inner
            .store
            .create_run(NewRun {
                run_id: run_id.clone(),
                workflow: wf.name.clone(),
                program: loaded.hash.clone(),
                parent: None,
                parent_step: None,
                owner_as: self.inner.config.owner.clone(),
                priority,
                input: input.to_string(),
                created_at: self.inner.clock.now_millis(),
                executor: self.inner.lease_token.clone(),
                status: RunStatus::Pending,
            })
            .await?;
        Ok(self.spawn(Arc::clone(loaded), wf_id, key, run_id, input, false))
    }

    fn spawn(
        &self,
        loaded: Arc<Loaded>,
        wf: WorkflowId,
        key: RunKey,
        run_id: String,
        input: Json,
        resumed: bool,
    ) -> RunHandle {
        let workflow = loaded
            .program
            .workflow(wf)
            .map(|w| w.name.clone())
            .unwrap_or_default();
        let inner = Arc::clone(&self.inner);
        let rid = run_id.clone();
        let join =
            tokio::spawn(
                async move { drive_top(inner, loaded, wf, key, rid, input, resumed).await },
            );
        RunHandle {
            run_id,
            key,
            workflow,
            join,
        }
    }

    /// Loads the program a stored run executes.
    fn program_of(&self, run: &RunRow) -> Result<Arc<Loaded>, EngineError> {
        if let Some(l) = self
            .inner
            .programs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&run.program)
        {
            return Ok(Arc::clone(l));
        }
        let bytes =
            self.inner
                .store
                .program(&run.program)?
                .ok_or_else(|| EngineError::Program {
                    run_id: run.run_id.clone(),
                    detail: "not in the store".into(),
                })?;
        let program: Program =
            serde_json::from_slice(&bytes).map_err(|e| EngineError::Program {
                run_id: run.run_id.clone(),
                detail: e.to_string(),
            })?;
        let loaded = Arc::new(Loaded::with_hash(program, run.program.clone()));
        self.inner
            .programs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(run.program.clone(), Arc::clone(&loaded));
        Ok(loaded)
    }

    fn resume_row(&self, run: RunRow) -> Result<RunHandle, EngineError> {
        let loaded = self.program_of(&run)?;
        let (wf_id, _) = loaded
            .program
            .workflow_by_name(&run.workflow)
            .ok_or_else(|| EngineError::Program {
                run_id: run.run_id.clone(),
                detail: format!("workflow `{}` is not in its program", run.workflow),
            })?;
        Ok(self.spawn(loaded, wf_id, run.key, run.run_id, run.input, true))
    }

    /// Claims and restarts every unfinished run whose executor died.
    pub async fn recover(&self) -> Result<Vec<RunHandle>, EngineError> {
        let mut handles = Vec::new();
        for owner in self.inner.store.unfinished_owners()? {
            if owner == self.inner.lease_token || Lease::is_alive(self.inner.store.path(), &owner) {
                continue;
            }
            for key in self
                .inner
                .store
                .claim_runs_of(&owner, &self.inner.lease_token)
                .await?
            {
                if let Some(row) = self.inner.store.run_by_key(key)? {
                    handles.push(self.resume_row(row)?);
                }
            }
        }
        Ok(handles)
    }

    /// Restarts one unfinished run by id (it must not be running in a live process).
    pub async fn resume(&self, run_id: &str) -> Result<RunHandle, EngineError> {
        let row = self
            .inner
            .store
            .run_by_id(run_id)?
            .ok_or_else(|| StoreError::NoSuchRun(run_id.to_owned()))?;
        if row.status.is_final() {
            return Err(EngineError::Finished(run_id.to_owned()));
        }
        if let Some(executor) = &row.executor {
            if executor != &self.inner.lease_token
                && Lease::is_alive(self.inner.store.path(), executor)
            {
                return Err(EngineError::Busy {
                    run_id: run_id.to_owned(),
                    executor: executor.clone(),
                });
            }
        }
        self.inner
            .store
            .claim_run(row.key, row.executor.clone(), &self.inner.lease_token)
            .await?;
        self.resume_row(row)
    }

    /// Waits for queued journal writes and gives up this process's lease.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        self.inner.store.flush().await?;
        if let Some(lease) = self
            .inner
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            lease.release(self.inner.store.path());
        }
        Ok(())
    }
}

pub fn priority_value(p: Priority) -> i64 {
    match p {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
    }
}

/// A run id: time-ordered (milliseconds) with a random tail, `r` + 20 hex digits.
fn new_run_id(clock: &Clock) -> String {
    format!(
        "r{:011x}{:09x}",
        clock.now_millis(),
        fastrand::u64(..) & 0xf_ffff_ffff
    )
}

impl Inner {
    fn workflow_limit(&self, name: &str, concurrency: Option<u32>) -> Option<Arc<Semaphore>> {
        let n = concurrency? as usize;
        let mut limits = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        Some(Arc::clone(
            limits
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(n.max(1)))),
        ))
    }

    /// Registers a run for cancellation and starts the watcher on first use.
    pub(crate) fn cancel_signal(self: &Arc<Self>, key: RunKey) -> Arc<tokio::sync::Notify> {
        self.watcher.get_or_init(|| {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    if inner
                        .cancels
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_empty()
                    {
                        continue;
                    }
                    let store = inner.store.clone();
                    let me = inner.lease_token.clone();
                    let cancelled =
                        tokio::task::spawn_blocking(move || store.cancelled_of(&me)).await;
                    if let Ok(Ok(keys)) = cancelled {
                        let cancels = inner.cancels.lock().unwrap_or_else(PoisonError::into_inner);
                        for k in keys {
                            if let Some(n) = cancels.get(&k) {
                                n.notify_one();
                            }
                        }
                    }
                }
            });
        });
        let notify = Arc::new(tokio::sync::Notify::new());
        self.cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::clone(&notify));
        notify
    }

    pub(crate) fn forget_run(&self, key: RunKey) {
        self.cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    pub(crate) async fn admit(self: &Arc<Self>, priority: i64) -> Permit {
        self.admission.acquire(priority).await
    }

    /// Runs (or finishes, or reads the outcome of) the child run of a `run` step.
    pub(crate) async fn run_child(
        self: &Arc<Self>,
        loaded: Arc<Loaded>,
        wf: WorkflowId,
        input: Json,
        parent: &RunShared,
        step_key: &str,
    ) -> Result<Json, StepError> {
        let store_err = |e: StoreError| StepError::runtime(format!("journal: {e}"));
        let wf_ir = loaded
            .program
            .workflow(wf)
            .ok_or_else(|| StepError::runtime("child workflow missing from the program"))?;
        let existing = {
            let store = self.store.clone();
            let key = step_key.to_owned();
            let parent_key = parent.key;
            tokio::task::spawn_blocking(move || store.child_run(parent_key, &key))
                .await
                .map_err(|e| StepError::runtime(e.to_string()))?
                .map_err(store_err)?
        };
        let (key, run_id, input, resumed) = match existing {
            Some(row) if row.status == RunStatus::Completed => {
                return Ok(row.output.unwrap_or(Json::Null));
            }
            Some(row) if row.status.is_final() => {
                let mut e = row
                    .error
                    .and_then(|e| serde_json::from_value::<StepError>(e).ok())
                    .unwrap_or_else(|| StepError::runtime("child run failed"));
                e.message = format!("child run {} failed: {}", row.run_id, e.message);
                return Err(e);
            }
            Some(row) => (row.key, row.run_id, row.input, true),
            None => {
                let run_id = new_run_id(&self.clock);
                let key = self
                    .store
                    .create_run(NewRun {
                        run_id: run_id.clone(),
                        workflow: wf_ir.name.clone(),
                        program: loaded.hash.clone(),
                        parent: Some(parent.key),
                        parent_step: Some(step_key.to_owned()),
                        owner_as: parent.owner.as_deref().map(str::to_owned),
                        priority: priority_value(wf_ir.settings.priority),
                        input: input.to_string(),
                        created_at: self.clock.now_millis(),
                        executor: self.lease_token.clone(),
                        status: RunStatus::Pending,
                    })
                    .await
                    .map_err(store_err)?;
                parent
                    .journal(
                        EventKind::ChildStarted,
                        Some(step_key),
                        None,
                        Some(Json::String(run_id.clone()).to_string()),
                        false,
                    )
                    .await;
                (key, run_id, input, false)
            }
        };
        let outcome = Box::pin(drive(
            Arc::clone(self),
            loaded,
            wf,
            key,
            run_id.clone(),
            input,
            resumed,
            None,
            true,
            None,
        ))
        .await;
        match outcome.status {
            RunStatus::Completed => Ok(outcome.output),
            _ => {
                let mut e = outcome
                    .error
                    .unwrap_or_else(|| StepError::runtime("child run failed"));
                e.message = format!("child run {run_id} failed: {}", e.message);
                e.step = String::new();
                Err(e)
            }
        }
    }
}

async fn drive_top(
    inner: Arc<Inner>,
    loaded: Arc<Loaded>,
    wf: WorkflowId,
    key: RunKey,
    run_id: String,
    input: Json,
    resumed: bool,
) -> RunOutcome {
    let Some(wf_ir) = loaded.program.workflow(wf) else {
        return failed_outcome(
            run_id,
            StepError::runtime("workflow missing from its program"),
        );
    };
    let limit = inner.workflow_limit(&wf_ir.name, wf_ir.settings.concurrency);
    let _slot = match &limit {
        Some(sem) => Arc::clone(sem).acquire_owned().await.ok(),
        None => None,
    };
    let priority = priority_value(wf_ir.settings.priority);
    let cancel = inner.cancel_signal(key);
    let permit = tokio::select! {
        p = inner.admit(priority) => p,
        _ = cancel.notified() => {
            inner.forget_run(key);
            return RunOutcome {
                run_id,
                status: RunStatus::Cancelled,
                output: Json::Null,
                error: Some(StepError::runtime("cancelled")),
            };
        }
    };
    let done = Arc::clone(&inner);
    let outcome = drive(
        inner,
        loaded,
        wf,
        key,
        run_id,
        input,
        resumed,
        Some((permit, priority)),
        false,
        Some(cancel),
    )
    .await;
    done.forget_run(key);
    outcome
}

fn failed_outcome(run_id: String, error: StepError) -> RunOutcome {
    RunOutcome {
        run_id,
        status: RunStatus::Failed,
        output: Json::Null,
        error: Some(error),
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    inner: Arc<Inner>,
    loaded: Arc<Loaded>,
    wf: WorkflowId,
    key: RunKey,
    run_id: String,
    input: Json,
    resumed: bool,
    admission: Option<(Permit, i64)>,
    child: bool,
    cancel: Option<Arc<tokio::sync::Notify>>,
) -> RunOutcome {
    let Some(wf_ir) = loaded.program.workflow(wf) else {
        return failed_outcome(
            run_id,
            StepError::runtime("workflow missing from its program"),
        );
    };
    let workflow_name: Arc<str> = Arc::from(wf_ir.name.as_str());
    let replay = if resumed {
        let store = inner.store.clone();
        match tokio::task::spawn_blocking(move || store.events(key)).await {
            Ok(Ok(events)) => Replay::from_events(&events),
            Ok(Err(e)) => {
                return failed_outcome(run_id, StepError::runtime(format!("journal: {e}")));
            }
            Err(e) => return failed_outcome(run_id, StepError::runtime(e.to_string())),
        }
    } else {
        Replay::default()
    };
    let created_at = if resumed { replay.started_at } else { None };
    let shared = Arc::new(RunShared::new(
        Arc::clone(&inner),
        Arc::clone(&loaded),
        wf,
        key,
        Arc::from(run_id.as_str()),
        Arc::clone(&workflow_name),
        replay.next_seq,
        child,
    ));
    let now = inner.clock.now_millis();
    let started_at = created_at.unwrap_or(now);
    shared
        .journal(
            if resumed {
                EventKind::RunResumed
            } else {
                EventKind::RunStarted
            },
            None,
            None,
            Some(serde_json::json!({ "executor": inner.lease_token }).to_string()),
            false,
        )
        .await;
    let _ = inner.store.set_status(key, RunStatus::Running, None);
    inner.observer.progress(
        &run_id,
        &workflow_name,
        child,
        &Progress::RunStarted { resumed },
    );

    let deadline = wf_ir
        .settings
        .timeout
        .map(|ns| started_at.saturating_add(ns / 1_000_000));
    let execution = exec::execute(Arc::clone(&shared), replay, input, admission, deadline);
    let result = match cancel {
        Some(cancel) => tokio::select! {
            r = execution => Some(r),
            _ = cancel.notified() => None,
        },
        None => Some(execution.await),
    };
    let (status, output, error) = match result {
        Some(Ok(output)) => (RunStatus::Completed, output, None),
        Some(Err(e)) => (RunStatus::Failed, Json::Null, Some(e)),
        None => (
            RunStatus::Cancelled,
            Json::Null,
            Some(StepError::runtime("cancelled")),
        ),
    };
    let at = inner.clock.now_millis();
    let (kind, data) = match &error {
        _ if status == RunStatus::Cancelled => (EventKind::RunCancelled, String::new()),
        None => (EventKind::RunCompleted, output.to_string()),
        Some(e) => (
            EventKind::RunFailed,
            serde_json::to_string(e).unwrap_or_default(),
        ),
    };
    shared.journal(kind, None, None, Some(data), false).await;
    let finish = inner
        .store
        .finish_run(
            key,
            status,
            error.is_none().then(|| output.to_string()),
            error
                .as_ref()
                .map(|e| serde_json::to_string(e).unwrap_or_default()),
            at,
        )
        .await;
    let (status, error) = match finish {
        Ok(()) => (status, error),
        Err(e) => (
            RunStatus::Failed,
            Some(StepError::runtime(format!(
                "cannot record the run's end: {e}"
            ))),
        ),
    };
    inner.observer.progress(
        &run_id,
        &workflow_name,
        child,
        &Progress::RunFinished { status },
    );
    RunOutcome {
        run_id,
        status,
        output,
        error,
    }
}

/// Builds an event record (used by [`RunShared`]).
pub(crate) fn event(
    run: RunKey,
    seq: u32,
    at: i64,
    kind: EventKind,
    step: Option<&str>,
    attempt: Option<u32>,
    data: Option<String>,
) -> Event {
    Event {
        run,
        seq,
        at,
        kind,
        step: step.map(str::to_owned),
        attempt,
        data,
    }
}
