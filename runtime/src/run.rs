//! What the engine and the executor share: the services every run uses ([`Services`]),
//! a run's start arguments ([`RunStart`]), progress notifications and how a run ended.
//!
//! The engine admits runs and hands each to the executor (`exec`) as a [`RunStart`];
//! the executor never calls back into the engine (a `run` step's child run is started by
//! the executor itself, through the same [`Services`]).

use std::sync::Arc;
use std::time::Duration;

use flow_ir::program::{Priority, WorkflowId};
use serde_json::Value as Json;

use crate::admission::{Admission, Permit};
use crate::clock::Clock;
use crate::error::StepError;
use crate::invoke::Connector;
use crate::prepared::Prepared;
use crate::store::{NewRun, RunKey, RunOrigin, RunRow, RunStatus, Store, StoreError};

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
    /// Where `wait signal(...)` steps take their signals from instead of the store (the
    /// mocks of `flow test`).
    pub mocked_signals: Option<crate::signals::MockedSignals>,
    /// `false` for a process that starts runs but does not execute them (`flow serve
    /// --role api` or `scheduler` without `worker`): `Engine::start` queues each run for
    /// the workers and its handle follows the run's end in the store.
    pub executes: bool,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            max_concurrent_runs: 50,
            max_parallel_steps: 64,
            owner: None,
            skip_delays: false,
            mocked_signals: None,
            executes: true,
        }
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
        /// What the step calls: `integration.action`, `integration.notify`, or
        /// `run WORKFLOW` (a bounded set, fit for metric labels).
        action: Arc<str>,
        attempt: u32,
        elapsed: Duration,
        replayed: bool,
    },
    StepFailed {
        step: String,
        action: Arc<str>,
        attempt: u32,
        error: StepError,
        last: bool,
    },
    Waiting {
        key: String,
        until_ms: i64,
    },
    /// A step waits for an integration's event (`integration.event`), until its
    /// timeout's instant if it has one.
    WaitingForEvent {
        key: String,
        event: String,
        until_ms: Option<i64>,
    },
    /// A step waits for a signal, until its timeout's instant if it has one.
    WaitingForSignal {
        key: String,
        signal: String,
        until_ms: Option<i64>,
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

impl RunOutcome {
    pub(crate) fn failed(run_id: String, error: StepError) -> RunOutcome {
        RunOutcome {
            run_id,
            status: RunStatus::Failed,
            output: Json::Null,
            error: Some(error),
        }
    }
}

/// What every run of an engine uses.
pub(crate) struct Services {
    pub store: Store,
    /// This process's executor lease token (who executes a run, in the store).
    pub executor: String,
    pub connector: Arc<dyn Connector>,
    pub config: EngineConfig,
    pub admission: Arc<Admission>,
    pub clock: Clock,
    pub observer: Arc<dyn Observer>,
    /// This process's runs waiting for signals.
    pub signals: Arc<crate::signals::SignalHub>,
}

/// A run's start arguments: which program and workflow, its identity in the store, its
/// input, on whose behalf and at what priority, and whether it starts over or resumes.
pub(crate) struct RunStart {
    pub program: Arc<Prepared>,
    pub workflow: WorkflowId,
    pub key: RunKey,
    pub run_id: String,
    /// The workflow's arguments, a JSON object.
    pub input: Json,
    /// The trigger's event, bound to the workflow's `event`.
    pub event: Option<Json>,
    /// `--as OWNER`: whose connections the run's calls use.
    pub owner: Option<Arc<str>>,
    pub priority: i64,
    /// Replay the journal first (the run was started before).
    pub resumed: bool,
    /// A `run` step's child run (executes inside its parent's admission slot).
    pub child: bool,
}

/// What creating a run gave: a new run to start, or the run that already holds its
/// dedupe key.
pub(crate) enum Created {
    New(RunStart),
    Existing(RunRow),
}

/// A top-level run's hold on the engine: its admission slot (given back while it only
/// waits on timers) and the signal `flow runs cancel` fires.
pub(crate) struct Slot {
    pub permit: Permit,
    pub cancel: Arc<tokio::sync::Notify>,
}

impl Services {
    /// Creates a run in the store (durably) and returns its start arguments, or, when its
    /// origin's dedupe key is taken, the run that holds the key.
    pub async fn create_run(
        &self,
        program: &Arc<Prepared>,
        workflow: WorkflowId,
        input: Json,
        owner: Option<Arc<str>>,
        parent: Option<(RunKey, &str)>,
        origin: RunOrigin,
    ) -> Result<Created, StoreError> {
        let deduped = origin.dedupe.is_some();
        let event = origin.event.clone();
        let run = self.new_run(program, workflow, &input, owner.as_deref(), parent, origin);
        let (run_id, priority) = (run.run_id.clone(), run.priority);
        let key = self
            .store
            .create_run(NewRun {
                executor: Some(self.executor.clone()),
                ..run
            })
            .await?;
        if deduped
            && let Some(row) = self.store.run_by_key(key)?
            && row.run_id != run_id
        {
            return Ok(Created::Existing(row));
        }
        Ok(Created::New(RunStart {
            program: Arc::clone(program),
            workflow,
            key,
            run_id,
            input,
            event,
            owner,
            priority,
            resumed: false,
            child: parent.is_some(),
        }))
    }
}

impl Services {
    /// A new run of `workflow` as the store takes it, executed by nobody yet.
    pub fn new_run(
        &self,
        program: &Prepared,
        workflow: WorkflowId,
        input: &Json,
        owner: Option<&str>,
        parent: Option<(RunKey, &str)>,
        origin: RunOrigin,
    ) -> NewRun {
        let wf = program.program.workflow(workflow);
        NewRun {
            run_id: new_run_id(&self.clock),
            workflow: wf.map(|w| w.name.clone()).unwrap_or_default(),
            program: program.hash.clone(),
            parent: parent.map(|(k, _)| k),
            parent_step: parent.map(|(_, s)| s.to_owned()),
            owner_as: owner.map(str::to_owned),
            priority: priority_value(wf.map_or(Priority::Normal, |w| w.settings.priority)),
            input: input.to_string(),
            created_at: self.clock.now_millis(),
            executor: None,
            status: RunStatus::Pending,
            // A child run runs inside its parent's admission; only top-level runs count.
            concurrency: wf
                .filter(|_| parent.is_none())
                .and_then(|w| w.settings.concurrency)
                .map(i64::from),
            origin,
        }
    }
}

impl RunStart {
    /// A stored run, to be resumed on its own: its input and owner are the journaled
    /// ones. (A child run is resumed by its parent's step, through `exec`.)
    pub fn resume(program: Arc<Prepared>, workflow: WorkflowId, row: RunRow) -> RunStart {
        RunStart {
            program,
            workflow,
            key: row.key,
            run_id: row.run_id,
            input: row.input,
            event: row.origin.event,
            owner: row.owner_as.as_deref().map(Arc::from),
            priority: row.priority,
            resumed: true,
            child: false,
        }
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
