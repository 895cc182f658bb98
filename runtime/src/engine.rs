//! The engine: admits runs (priority, global and per-workflow limits), creates them in
//! the journal, hands each to the executor (`exec`) on tokio, and picks up the runs of
//! executors that died.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flow_ir::artefact::{Artefact, ArtefactError};
use flow_ir::program::{Program, WorkflowId};
use serde_json::Value as Json;
use tokio::sync::Semaphore;

use crate::admission::Admission;
use crate::clock::Clock;
use crate::error::StepError;
use crate::exec;
use crate::invoke::Connector;
use crate::prepared::Prepared;
use crate::run::{Created, EngineConfig, Observer, RunOutcome, RunStart, Services, Slot};
use tracing::Instrument;

use crate::store::{Lease, RunKey, RunOrigin, RunRow, RunStatus, Store, StoreError};

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
    #[error("cannot encode the program: {0}")]
    Artefact(ArtefactError),
    #[error("run {0} has already finished")]
    Finished(String),
    #[error("run {run_id} is being executed by another live process ({executor})")]
    Busy { run_id: String, executor: String },
}

/// Waits for a run another process executes to end, reading it from the store (every
/// 20 ms at first, then less often, up to every second), and gives its outcome.
async fn follow(store: Store, key: RunKey, run_id: String) -> RunOutcome {
    let mut pause = Duration::from_millis(20);
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
        let s = store.clone();
        let row = match tokio::task::spawn_blocking(move || s.run_by_key(key)).await {
            Ok(Ok(Some(row))) => row,
            Ok(Ok(None)) => {
                return RunOutcome::failed(
                    run_id,
                    StepError::runtime("the run is gone from the store"),
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(run = %run_id, error = %e, "cannot read a queued run's state; retrying");
                continue;
            }
            Err(e) => return RunOutcome::failed(run_id, StepError::runtime(e.to_string())),
        };
        if row.status.is_final() {
            return RunOutcome {
                run_id,
                status: row.status,
                output: row.output.unwrap_or(Json::Null),
                error: row
                    .error
                    .and_then(|e| serde_json::from_value::<StepError>(e).ok()),
            };
        }
    }
}

/// The workflow named `name` in `program`, or the error that lists the ones it has.
fn workflow_id(program: &Prepared, name: &str) -> Result<WorkflowId, EngineError> {
    program
        .program
        .workflow_by_name(name)
        .map(|(wf, _)| wf)
        .ok_or_else(|| EngineError::NoSuchWorkflow {
            name: name.to_owned(),
            candidates: program
                .program
                .workflows
                .iter()
                .map(|w| w.name.clone())
                .collect(),
        })
}

fn did_you_mean(candidates: &[String]) -> String {
    if candidates.is_empty() {
        String::new()
    } else {
        format!("; it has: {}", candidates.join(", "))
    }
}

/// What [`Engine::start`] did: started a new run, or found the run that holds the
/// origin's dedupe key.
pub enum Started {
    New(RunHandle),
    Existing(RunRow),
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

struct Inner {
    services: Arc<Services>,
    lease: Mutex<Option<Lease>>,
    limits: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Programs loaded here, by hash: each is prepared once however many runs use it.
    programs: Mutex<HashMap<String, Arc<Prepared>>>,
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
        let lease = store.acquire_lease()?;
        Ok(Engine {
            inner: Arc::new(Inner {
                services: Arc::new(Services {
                    store,
                    executor: lease.token.clone(),
                    connector,
                    admission: Admission::new(config.max_concurrent_runs),
                    config,
                    clock: Clock::system(),
                    observer,
                    signals: crate::signals::SignalHub::new(),
                }),
                lease: Mutex::new(Some(lease)),
                limits: Mutex::new(HashMap::new()),
                programs: Mutex::new(HashMap::new()),
                cancels: Mutex::new(HashMap::new()),
                watcher: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.services.store
    }

    /// Registers a compiled program and saves it in the store, so its runs can be
    /// resumed without the source. Encodes it once (its `.flowc` bytes and hash).
    pub async fn load(&self, program: Program) -> Result<Arc<Prepared>, EngineError> {
        let artefact = Artefact::encode(program).map_err(EngineError::Artefact)?;
        self.load_artefact(artefact).await
    }

    /// Registers a program as read from a `.flowc` file: its bytes are stored as they
    /// are, under the hash the file carries (checked when it was decoded).
    pub async fn load_artefact(&self, artefact: Artefact) -> Result<Arc<Prepared>, EngineError> {
        let hash = artefact.hash_hex();
        if let Some(p) = self.loaded(&hash) {
            return Ok(p);
        }
        let services = &self.inner.services;
        services
            .store
            .save_program(&hash, artefact.bytes, services.clock.now_millis())
            .await?;
        Ok(self.remember(Prepared::new(artefact.program, hash)))
    }

    fn loaded(&self, hash: &str) -> Option<Arc<Prepared>> {
        self.inner
            .programs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned()
    }

    fn remember(&self, prepared: Prepared) -> Arc<Prepared> {
        let mut programs = self
            .inner
            .programs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            programs
                .entry(prepared.hash.clone())
                .or_insert_with(|| Arc::new(prepared)),
        )
    }

    /// Starts a run of `workflow` with `input` (a JSON object of arguments). Returns once
    /// the run is durably accepted.
    pub async fn submit(
        &self,
        program: &Arc<Prepared>,
        workflow: &str,
        input: Json,
    ) -> Result<RunHandle, EngineError> {
        match self
            .start(program, workflow, input, RunOrigin::default(), None)
            .await?
        {
            Started::New(handle) => Ok(handle),
            Started::Existing(row) => Err(EngineError::Program {
                run_id: row.run_id,
                detail: "internal error: a run without a dedupe key was deduplicated".into(),
            }),
        }
    }

    /// Starts a run as [`Engine::submit`] does, recording its origin (trigger, event,
    /// actor) and running as `owner` (the engine's own owner when `None`). When the
    /// origin's dedupe key is already held by a run, nothing is created and that run is
    /// returned. Returns once the run is durably accepted.
    pub async fn start(
        &self,
        program: &Arc<Prepared>,
        workflow: &str,
        input: Json,
        origin: RunOrigin,
        owner: Option<&str>,
    ) -> Result<Started, EngineError> {
        let wf = workflow_id(program, workflow)?;
        let owner = owner
            .or(self.inner.services.config.owner.as_deref())
            .map(Arc::from);
        if !self.inner.services.config.executes {
            return self.queue(program, wf, input, origin, owner).await;
        }
        // Committing a run and starting it happen in a task of their own: a caller that
        // goes away in between (a client that disconnects) cannot leave a committed run
        // that nothing executes.
        let engine = self.clone();
        let program = Arc::clone(program);
        tokio::spawn(
            async move {
                match engine
                    .inner
                    .services
                    .create_run(&program, wf, input, owner, None, origin)
                    .await?
                {
                    Created::New(start) => Ok(Started::New(engine.spawn(start))),
                    Created::Existing(row) => Ok(Started::Existing(row)),
                }
            }
            .in_current_span(),
        )
        .await
        .map_err(|e| EngineError::Program {
            run_id: String::new(),
            detail: format!("the run could not be started: {e}"),
        })?
    }

    /// Cancels a run of this store: a run executing here stops at once; a run of another
    /// process is marked and stops when that process sees it. `false` when the run had
    /// already ended.
    pub async fn cancel(&self, run: &RunRow) -> Result<bool, EngineError> {
        let services = &self.inner.services;
        let cancelled = services
            .store
            .cancel_run(run.key, services.clock.now_millis())
            .await?;
        if let Some(signal) = self
            .inner
            .cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&run.key)
        {
            signal.notify_one();
        }
        Ok(cancelled)
    }

    fn spawn(&self, start: RunStart) -> RunHandle {
        let workflow = start
            .program
            .program
            .workflow(start.workflow)
            .map(|w| w.name.clone())
            .unwrap_or_default();
        let (run_id, key) = (start.run_id.clone(), start.key);
        let inner = Arc::clone(&self.inner);
        // The task carries the caller's span, the parent of the run's own.
        let join =
            tokio::spawn(async move { inner.admit_and_drive(start).await }.in_current_span());
        RunHandle {
            run_id,
            key,
            workflow,
            join,
        }
    }

    /// Sends a signal to a run ([`crate::signals::send`]): checked against the type the
    /// run's workflow waits for, stored, and the run woken if it waits in this process.
    pub async fn signal(
        &self,
        request: crate::signals::SignalRequest,
    ) -> Result<crate::signals::Sent, crate::signals::SignalError> {
        self.signal_to(None, request).await
    }

    /// [`Engine::signal`] to a run already read (`request.run_id` is not read again).
    pub async fn signal_run(
        &self,
        run: RunRow,
        request: crate::signals::SignalRequest,
    ) -> Result<crate::signals::Sent, crate::signals::SignalError> {
        self.signal_to(Some(run), request).await
    }

    async fn signal_to(
        &self,
        run: Option<RunRow>,
        request: crate::signals::SignalRequest,
    ) -> Result<crate::signals::Sent, crate::signals::SignalError> {
        let program_of = |run: &RunRow| {
            self.program_of(run)
                .map(|p| Arc::clone(&p.program))
                .map_err(|e| e.to_string())
        };
        let now = self.inner.services.clock.now_millis();
        let (key, sent) =
            crate::signals::send(&self.inner.services.store, run, request, &program_of, now)
                .await?;
        self.inner.services.signals.wake(key);
        Ok(sent)
    }

    /// Wakes the steps of `run` that wait in this process: a signal or a delivery was
    /// stored for it.
    pub fn wake(&self, run: RunKey) {
        self.inner.services.signals.wake(run);
    }

    /// A program by hash: loaded here, or read from the store.
    pub fn program_by_hash(&self, hash: &str) -> Result<Arc<Prepared>, EngineError> {
        if let Some(p) = self.loaded(hash) {
            return Ok(p);
        }
        let unreadable = |detail: String| EngineError::Program {
            run_id: String::new(),
            detail,
        };
        let bytes = self
            .inner
            .services
            .store
            .program(hash)?
            .ok_or_else(|| unreadable(format!("program {hash} is not in the store")))?;
        let artefact = Artefact::decode(bytes).map_err(|e| unreadable(e.to_string()))?;
        if artefact.hash_hex() != hash {
            return Err(unreadable(
                "the stored program does not match its hash".into(),
            ));
        }
        Ok(self.remember(Prepared::new(artefact.program, hash.to_owned())))
    }

    /// The program a stored run executes, read from the store when not loaded here.
    fn program_of(&self, run: &RunRow) -> Result<Arc<Prepared>, EngineError> {
        self.program_by_hash(&run.program).map_err(|e| match e {
            EngineError::Program { detail, .. } => EngineError::Program {
                run_id: run.run_id.clone(),
                detail,
            },
            other => other,
        })
    }

    fn resume_row(&self, run: RunRow) -> Result<RunHandle, EngineError> {
        let program = self.program_of(&run)?;
        let (wf, _) = program
            .program
            .workflow_by_name(&run.workflow)
            .ok_or_else(|| EngineError::Program {
                run_id: run.run_id.clone(),
                detail: format!("workflow `{}` is not in its program", run.workflow),
            })?;
        Ok(self.spawn(RunStart::resume(program, wf, run)))
    }

    /// Claims and restarts every unfinished run whose executor died.
    pub async fn recover(&self) -> Result<Vec<RunHandle>, EngineError> {
        let services = &self.inner.services;
        let mut handles = Vec::new();
        for owner in services.store.unfinished_owners()? {
            if owner == services.executor || services.store.executor_alive(&owner) {
                continue;
            }
            for key in services
                .store
                .claim_runs_of(&owner, &services.executor)
                .await?
            {
                let Some(row) = services.store.run_by_key(key)? else {
                    continue;
                };
                handles.extend(self.resume_or_fail(row).await?);
            }
        }
        Ok(handles)
    }

    /// Starts (or resumes) a run this executor claimed. A run that cannot resume (its
    /// program is gone or unreadable) fails with the reason, recorded, and `None` is
    /// returned, so the caller goes on with the others.
    pub(crate) async fn resume_or_fail(
        &self,
        row: RunRow,
    ) -> Result<Option<RunHandle>, EngineError> {
        let key = row.key;
        match self.resume_row(row) {
            Ok(handle) => Ok(Some(handle)),
            Err(e @ EngineError::Program { .. }) => {
                let services = &self.inner.services;
                let error = StepError::runtime(e.to_string());
                services
                    .store
                    .finish_run(
                        key,
                        RunStatus::Failed,
                        None,
                        serde_json::to_string(&error).ok(),
                        services.clock.now_millis(),
                    )
                    .await?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Queues a run of `workflow` for whichever worker (`flow serve --role worker`)
    /// claims it first, instead of running it here. Returns its id once it is durable.
    pub async fn enqueue(
        &self,
        program: &Arc<Prepared>,
        workflow: &str,
        input: Json,
        origin: RunOrigin,
    ) -> Result<String, EngineError> {
        let wf = workflow_id(program, workflow)?;
        let services = &self.inner.services;
        let owner = services.config.owner.as_deref();
        let run = services.new_run(program, wf, &input, owner, None, origin);
        let run_id = run.run_id.clone();
        services.store.create_run(run).await?;
        Ok(run_id)
    }

    /// [`Engine::start`] in a process that does not execute runs: queues the run for the
    /// workers; its handle follows the run in the store until it ends.
    async fn queue(
        &self,
        program: &Arc<Prepared>,
        wf: WorkflowId,
        input: Json,
        origin: RunOrigin,
        owner: Option<Arc<str>>,
    ) -> Result<Started, EngineError> {
        let services = &self.inner.services;
        let deduped = origin.dedupe.is_some();
        let run = services.new_run(program, wf, &input, owner.as_deref(), None, origin);
        let (run_id, workflow) = (run.run_id.clone(), run.workflow.clone());
        let key = services.store.create_run(run).await?;
        if deduped
            && let Some(row) = services.store.run_by_key(key)?
            && row.run_id != run_id
        {
            return Ok(Started::Existing(row));
        }
        let store = services.store.clone();
        let id = run_id.clone();
        Ok(Started::New(RunHandle {
            run_id,
            key,
            workflow,
            join: tokio::spawn(follow(store, key, id)),
        }))
    }

    /// Most runs executing at once here (`--max-concurrent-runs`): how many a worker
    /// claims at most.
    pub fn capacity(&self) -> usize {
        self.inner.services.config.max_concurrent_runs
    }

    /// This process's executor token (who runs a claimed run, in the store).
    pub fn executor(&self) -> &str {
        &self.inner.services.executor
    }

    /// Restarts one unfinished run by id (it must not be running in a live process).
    pub async fn resume(&self, run_id: &str) -> Result<RunHandle, EngineError> {
        let services = &self.inner.services;
        let row = services
            .store
            .run_by_id(run_id)?
            .ok_or_else(|| StoreError::NoSuchRun(run_id.to_owned()))?;
        if row.status.is_final() {
            return Err(EngineError::Finished(run_id.to_owned()));
        }
        if let Some(executor) = &row.executor
            && executor != &services.executor
            && services.store.executor_alive(executor)
        {
            return Err(EngineError::Busy {
                run_id: run_id.to_owned(),
                executor: executor.clone(),
            });
        }
        services
            .store
            .claim_run(row.key, row.executor.clone(), &services.executor)
            .await?;
        self.resume_row(row)
    }

    /// Waits for queued journal writes and gives up this process's lease.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        let store = &self.inner.services.store;
        store.flush().await?;
        store.fold_wal();
        if let Some(lease) = self
            .inner
            .lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            lease.release(store);
        }
        Ok(())
    }
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
    fn cancel_signal(self: &Arc<Self>, key: RunKey) -> Arc<tokio::sync::Notify> {
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
                    let store = inner.services.store.clone();
                    let me = inner.services.executor.clone();
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

    fn forget_run(&self, key: RunKey) {
        self.cancels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }

    /// Waits for the workflow's `concurrency` and an admission slot (by priority), then
    /// has the executor run it.
    async fn admit_and_drive(self: Arc<Self>, start: RunStart) -> RunOutcome {
        let Some(wf) = start.program.program.workflow(start.workflow) else {
            return RunOutcome::failed(
                start.run_id,
                StepError::runtime("workflow missing from its program"),
            );
        };
        let limit = self.workflow_limit(&wf.name, wf.settings.concurrency);
        let _concurrency = match &limit {
            Some(sem) => Arc::clone(sem).acquire_owned().await.ok(),
            None => None,
        };
        let key = start.key;
        let cancel = self.cancel_signal(key);
        let permit = tokio::select! {
            p = self.services.admission.acquire(start.priority) => p,
            _ = cancel.notified() => {
                self.forget_run(key);
                return RunOutcome {
                    run_id: start.run_id,
                    status: RunStatus::Cancelled,
                    output: Json::Null,
                    error: Some(StepError::runtime("cancelled")),
                };
            }
        };
        let outcome = exec::drive(
            Arc::clone(&self.services),
            start,
            Some(Slot { permit, cancel }),
        )
        .await;
        self.forget_run(key);
        outcome
    }
}
