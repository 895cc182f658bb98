//! One run's interpreter: walks the workflow's blocks, starts each statement as soon as
//! its dependencies are done, runs steps and timers as tokio tasks, routes failures to
//! the nearest `try`, and replays the journal so a resumed run skips what it already did.
//!
//! All of a run's bookkeeping lives in one task (no locks); only step calls and timers
//! run elsewhere. A block instance is a *frame*: the workflow body, an `if` branch, one
//! iteration of a `for`, a `try` body or its handler. Each frame has its own copy of the
//! locals, so parallel iterations never see each other's values; a value written by a
//! statement is copied into the frames nested below it.
//!
//! - this file: a run's life ([`drive`]: journal its start, execute, journal its end),
//!   the main loop and the statements that need no task;
//! - [`replay`]: what the journal says a run already did, and `now()` readings;
//! - [`frames`]: block instances, their locals, completion and failure routing;
//! - [`steps`]: step calls (arguments, policies, the connector call, child runs);
//! - [`waits`]: durable timers, and giving the admission slot back while parked.

mod frames;
mod replay;
mod steps;
mod waits;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use flow_expr::Value;
use flow_ir::expr::ExprId;
use flow_ir::program::{ConstOr, Nanos, StmtId, StmtKind, Workflow, WorkflowId};
use serde_json::Value as Json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::admission::Permit;
use crate::error::{ErrorKind, StepError};
use crate::prepared::Prepared;
use crate::run::{Progress, RunOutcome, RunStart, Services, Slot};
use crate::store::{Event, EventKind, RunKey, RunStatus};

use frames::{Frame, FrameKind, LoopState, St};
use replay::{ClockCtx, Replay};

/// Executes a run to its end: replays its journal when it resumes, journals its start,
/// runs the workflow (within its `timeout`, until `flow runs cancel` for a top-level
/// run), and records the outcome. `slot` is a top-level run's admission slot and cancel
/// signal; a child run has none (it runs inside its parent's slot).
pub(crate) async fn drive(
    services: Arc<Services>,
    start: RunStart,
    slot: Option<Slot>,
) -> RunOutcome {
    if !crate::trace::enabled() {
        return drive_run(services, start, slot).await;
    }
    // The run's span: a child of whatever started it (an API request, a webhook
    // delivery, the parent run's step), a root for a scheduled tick or a recovery.
    let name = start
        .program
        .program
        .workflow(start.workflow)
        .map(|w| w.name.clone())
        .unwrap_or_default();
    let span = tracing::info_span!(
        target: "flow::trace",
        "run",
        otel.name = %format!("run {name}"),
        otel.status_code = tracing::field::Empty,
        flow.run_id = %start.run_id,
        flow.workflow = %name,
        flow.resumed = start.resumed,
        flow.status = tracing::field::Empty,
    );
    let outcome = drive_run(services, start, slot)
        .instrument(span.clone())
        .await;
    span.record("flow.status", outcome.status.as_str());
    if outcome.status == RunStatus::Failed {
        crate::trace::record_error(&span);
    }
    outcome
}

async fn drive_run(services: Arc<Services>, start: RunStart, slot: Option<Slot>) -> RunOutcome {
    let RunStart {
        program,
        workflow: wf,
        key,
        run_id,
        input,
        event,
        owner,
        priority,
        resumed,
        child,
    } = start;
    let Some(wf_ir) = program.program.workflow(wf) else {
        return RunOutcome::failed(
            run_id,
            StepError::runtime("workflow missing from its program"),
        );
    };
    let workflow_name: Arc<str> = Arc::from(wf_ir.name.as_str());
    let deadline_after = wf_ir.settings.timeout;
    // A queued run a worker claimed has no journal yet: it starts, not resumes.
    let (replay, resumed) = if resumed {
        let store = services.store.clone();
        match tokio::task::spawn_blocking(move || store.events(key)).await {
            Ok(Ok(events)) => (Replay::from_events(&events), !events.is_empty()),
            Ok(Err(e)) => {
                return RunOutcome::failed(run_id, StepError::runtime(format!("journal: {e}")));
            }
            Err(e) => return RunOutcome::failed(run_id, StepError::runtime(e.to_string())),
        }
    } else {
        (Replay::default(), false)
    };
    let created_at = if resumed { replay.started_at } else { None };
    let shared = Arc::new(RunShared {
        steps: Arc::new(Semaphore::new(services.config.max_parallel_steps.max(1))),
        services: Arc::clone(&services),
        program,
        wf,
        key,
        run_id: Arc::from(run_id.as_str()),
        workflow: Arc::clone(&workflow_name),
        owner,
        priority,
        child,
        seq: AtomicU32::new(replay.next_seq),
        unsynced_clock: AtomicBool::new(false),
        span: tracing::Span::current(),
    });
    let now = services.clock.now_millis();
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
            Some(serde_json::json!({ "executor": services.executor }).to_string()),
            false,
        )
        .await;
    let _ = services.store.set_status(key, RunStatus::Running, None);
    services.observer.progress(
        &run_id,
        &workflow_name,
        child,
        &Progress::RunStarted { resumed },
    );

    let deadline = deadline_after.map(|ns| started_at.saturating_add(ns / 1_000_000));
    let (permit, cancel) = match slot {
        Some(Slot { permit, cancel }) => (Some(permit), Some(cancel)),
        None => (None, None),
    };
    let execution = execute(Arc::clone(&shared), replay, input, event, permit, deadline);
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
    let at = services.clock.now_millis();
    let (kind, data) = match &error {
        _ if status == RunStatus::Cancelled => (EventKind::RunCancelled, String::new()),
        None => (EventKind::RunCompleted, output.to_string()),
        Some(e) => (
            EventKind::RunFailed,
            serde_json::to_string(e).unwrap_or_default(),
        ),
    };
    shared.journal(kind, None, None, Some(data), false).await;
    let finish = services
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
    services.observer.progress(
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

/// What the run's tasks share.
struct RunShared {
    services: Arc<Services>,
    program: Arc<Prepared>,
    wf: WorkflowId,
    key: RunKey,
    run_id: Arc<str>,
    workflow: Arc<str>,
    owner: Option<Arc<str>>,
    priority: i64,
    child: bool,
    seq: AtomicU32,
    steps: Arc<Semaphore>,
    /// A `now()` reading was journaled without waiting for it: the next call waits for
    /// the journal first, so a resumed run calls with the same arguments.
    unsynced_clock: AtomicBool,
    /// The run's span ([`crate::trace`]): the parent of its step attempts' spans.
    span: tracing::Span,
}

impl RunShared {
    fn record(
        &self,
        kind: EventKind,
        step: Option<&str>,
        attempt: Option<u32>,
        data: Option<String>,
    ) -> Event {
        Event {
            run: self.key,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            at: self.services.clock.now_millis(),
            kind,
            step: step.map(str::to_owned),
            attempt,
            data,
        }
    }

    /// Journals an event; with `durable`, returns once it is committed. A journal that
    /// cannot be written is reported by the next durable write.
    async fn journal(
        &self,
        kind: EventKind,
        step: Option<&str>,
        attempt: Option<u32>,
        data: Option<String>,
        durable: bool,
    ) {
        let e = self.record(kind, step, attempt, data);
        if durable {
            let _ = self.services.store.append_durable(vec![e]).await;
        } else {
            let _ = self.services.store.append_nowait(vec![e]);
        }
    }

    async fn journal_durable(
        &self,
        kind: EventKind,
        step: Option<&str>,
        attempt: Option<u32>,
        data: Option<String>,
    ) -> Result<(), StepError> {
        let e = self.record(kind, step, attempt, data);
        self.services
            .store
            .append_durable(vec![e])
            .await
            .map_err(|e| StepError::runtime(format!("journal: {e}")))
    }

    fn progress(&self, p: &Progress) {
        self.services
            .observer
            .progress(&self.run_id, &self.workflow, self.child, p);
    }
}

enum TaskResult {
    Step(Result<Value, StepError>),
    Timer,
}

struct TaskDone {
    frame: usize,
    pos: usize,
    result: TaskResult,
    timer: bool,
}

struct Exec {
    shared: Arc<RunShared>,
    program: Arc<flow_ir::program::Program>,
    eval: Arc<flow_expr::Program>,
    replay: Replay,
    /// Position of each statement in its block.
    pos: Vec<usize>,
    frames: Vec<Option<Frame>>,
    tasks: JoinSet<TaskDone>,
    steps_in_flight: usize,
    timers_in_flight: usize,
    outcome: Option<Result<Json, StepError>>,
    /// A top-level run's admission slot (`None` while given back) and priority.
    admission: Option<(Option<Permit>, i64)>,
    /// When each timer in flight fires (Unix ms), by frame and statement position.
    wakes: HashMap<(usize, usize), i64>,
}

/// Runs a workflow to its end (or its deadline) and returns its output.
async fn execute(
    shared: Arc<RunShared>,
    replay: Replay,
    input: Json,
    event: Option<Json>,
    permit: Option<Permit>,
    deadline: Option<i64>,
) -> Result<Json, StepError> {
    let program = Arc::clone(&shared.program.program);
    let Some(wf) = program.workflow(shared.wf) else {
        return Err(StepError::runtime("workflow missing from its program"));
    };
    let eval = shared
        .program
        .workflow(shared.wf)
        .cloned()
        .ok_or_else(|| StepError::runtime("workflow missing"))?;
    let mut pos = vec![0usize; wf.stmts.len()];
    for block in &wf.blocks {
        for (i, s) in block.stmts.iter().enumerate() {
            if let Some(p) = pos.get_mut(s.index()) {
                *p = i;
            }
        }
    }
    let clock = shared.services.clock;
    let mut exec = Exec {
        shared: Arc::clone(&shared),
        program: Arc::clone(&program),
        eval,
        replay,
        pos,
        frames: Vec::new(),
        tasks: JoinSet::new(),
        steps_in_flight: 0,
        timers_in_flight: 0,
        outcome: None,
        admission: permit.map(|p| (Some(p), shared.priority)),
        wakes: HashMap::new(),
    };
    let run = async {
        let locals = exec.initial_locals(wf, &input, event.as_ref())?;
        exec.new_frame(None, wf.body, FrameKind::Root, Vec::new(), locals);
        exec.run(wf).await
    };
    match deadline {
        Some(at) => match tokio::time::timeout(clock.until_millis(at), run).await {
            Ok(r) => r,
            Err(_) => Err(StepError::timeout(format!(
                "the run exceeded its timeout of {}",
                crate::format_duration(Duration::from_nanos(
                    u64::try_from(wf.settings.timeout.unwrap_or(0)).unwrap_or(0)
                ))
            ))),
        },
        None => run.await,
    }
}

fn step_key(name: &str, indices: &[u32]) -> String {
    let mut k = name.to_owned();
    for i in indices {
        k.push_str(&format!("[{i}]"));
    }
    k
}

fn nanos_to_duration(ns: Nanos) -> Duration {
    Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

impl Exec {
    fn wf(&self) -> &Workflow {
        // The workflow exists: `execute` checked it before building the Exec.
        &self.program.workflows[self.shared.wf.index()]
    }

    fn initial_locals(
        &mut self,
        wf: &Workflow,
        input: &Json,
        event: Option<&Json>,
    ) -> Result<Vec<Value>, StepError> {
        let mut locals = self.eval.new_locals();
        if let (Some(local), Some(event)) = (wf.event, event) {
            let ty = wf
                .exprs
                .locals
                .get(local.0 as usize)
                .map(|l| l.ty.clone())
                .unwrap_or(flow_ir::types::Type::Dyn);
            let v = Value::from_json_named(event, &ty, "event")
                .map_err(|e| StepError::validation(format!("the trigger's event: {e}")))?;
            if let Some(slot) = locals.get_mut(local.0 as usize) {
                *slot = v;
            }
        }
        let empty = serde_json::Map::new();
        let args = match input {
            Json::Object(m) => m,
            Json::Null => &empty,
            other => {
                return Err(StepError::validation(format!(
                    "the input must be a JSON object of arguments, not {other}"
                )));
            }
        };
        for name in args.keys() {
            if !wf.params.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = wf.params.iter().map(|p| p.name.as_str()).collect();
                return Err(StepError::validation(format!(
                    "`{}` takes no argument `{name}`{}",
                    wf.name,
                    if known.is_empty() {
                        String::from("; it takes none")
                    } else {
                        format!("; it takes: {}", known.join(", "))
                    }
                )));
            }
        }
        let ctx = self.clock_ctx("input".into());
        // Constants first: a parameter's default may read them.
        for c in &wf.consts {
            let v = self
                .eval
                .eval(c.value, &mut locals, &ctx)
                .map_err(|e| expr_error(&c.name, &e))?;
            if let Some(slot) = locals.get_mut(c.local.0 as usize) {
                *slot = v;
            }
        }
        for p in &wf.params {
            let v = match args.get(&p.name) {
                Some(j) => Value::from_json_named(j, &p.ty, &p.name)
                    .map_err(|e| StepError::validation(format!("argument `{}`: {e}", p.name)))?,
                None => match p.default {
                    Some(d) => self
                        .eval
                        .eval(d, &mut locals, &ctx)
                        .map_err(|e| expr_error(&p.name, &e))?,
                    None => Value::Null,
                },
            };
            if let Some(slot) = locals.get_mut(p.local.0 as usize) {
                *slot = v;
            }
        }
        let new = ctx.into_new();
        self.journal_clocks(new);
        Ok(locals)
    }

    /// Evaluates an expression in a frame.
    fn eval_in(
        &mut self,
        frame: usize,
        expr: ExprId,
        clock_key: &str,
        what: &str,
    ) -> Result<Value, StepError> {
        let ctx = ClockCtx::new(
            clock_key.to_owned(),
            &self.replay.clocks,
            self.shared.services.clock.now_nanos(),
        );
        let Some(Some(f)) = self.frames.get_mut(frame) else {
            return Err(StepError::runtime("frame gone"));
        };
        let r = self
            .eval
            .eval(expr, &mut f.locals, &ctx)
            .map_err(|e| expr_error(what, &e));
        let new = ctx.into_new();
        if !new.is_empty() {
            self.journal_clocks(new);
        }
        r
    }

    async fn run(&mut self, wf: &Workflow) -> Result<Json, StepError> {
        loop {
            self.pump(wf);
            if let Some(outcome) = self.outcome.take() {
                self.tasks.abort_all();
                return outcome;
            }
            if self.tasks.is_empty() {
                return Err(StepError::runtime(
                    "the run cannot progress: statements are waiting for each other",
                ));
            }
            self.park_if_only_timers().await;
            let Some(joined) = self.tasks.join_next().await else {
                continue;
            };
            self.unpark().await;
            match joined {
                Ok(done) => self.on_task_done(done),
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(StepError::runtime(format!("a step's task failed: {e}"))),
            }
        }
    }

    fn on_task_done(&mut self, done: TaskDone) {
        if done.timer {
            self.timers_in_flight = self.timers_in_flight.saturating_sub(1);
            self.wakes.remove(&(done.frame, done.pos));
        } else {
            self.steps_in_flight = self.steps_in_flight.saturating_sub(1);
        }
        if !matches!(self.frames.get(done.frame), Some(Some(_))) {
            return;
        }
        let program = Arc::clone(&self.program);
        let Some(wf) = program.workflow(self.shared.wf) else {
            return;
        };
        match done.result {
            TaskResult::Timer => self.complete(done.frame, done.pos),
            TaskResult::Step(Ok(v)) => {
                let Some(sid) = self.stmt_at(done.frame, done.pos) else {
                    return;
                };
                if let Some(StmtKind::Step(step)) = wf.stmt(sid).map(|s| &s.kind)
                    && let Some(step) = wf.step(*step)
                {
                    self.set_local(done.frame, step.local, v);
                }
                self.complete(done.frame, done.pos);
            }
            TaskResult::Step(Err(e)) => self.fail_at(done.frame, e),
        }
    }

    fn pump(&mut self, wf: &Workflow) {
        loop {
            let mut progressed = false;
            for fi in 0..self.frames.len() {
                if self.outcome.is_some() {
                    return;
                }
                let Some(Some(frame)) = self.frames.get(fi) else {
                    continue;
                };
                if frame.remaining == 0 && frame.children.is_empty() {
                    self.frame_complete(fi);
                    progressed = true;
                    continue;
                }
                let Some(block) = wf.block(frame.block) else {
                    continue;
                };
                let pending: Vec<(usize, StmtId)> = block
                    .stmts
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| frame.states.get(*p) == Some(&St::Pending))
                    .map(|(p, s)| (p, *s))
                    .collect();
                for (p, sid) in pending {
                    let Some(stmt) = wf.stmt(sid) else { continue };
                    if !matches!(self.frames.get(fi), Some(Some(_))) {
                        break;
                    }
                    if self.deps_done(fi, &stmt.deps) {
                        if let Some(Some(f)) = self.frames.get_mut(fi)
                            && let Some(s) = f.states.get_mut(p)
                        {
                            *s = St::Running;
                        }
                        self.start(wf, fi, p, sid);
                        progressed = true;
                        if self.outcome.is_some() {
                            return;
                        }
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn clock_key(&self, frame: usize, sid: StmtId) -> String {
        let indices = match self.frames.get(frame) {
            Some(Some(f)) => f.indices.clone(),
            _ => Vec::new(),
        };
        step_key(&format!("now@{}", sid.0), &indices)
    }

    fn start(&mut self, wf: &Workflow, fi: usize, p: usize, sid: StmtId) {
        let Some(stmt) = wf.stmt(sid) else { return };
        let ckey = self.clock_key(fi, sid);
        match &stmt.kind {
            StmtKind::Let { local, value } => {
                let name = wf
                    .exprs
                    .local(*local)
                    .map(|l| l.name.clone())
                    .unwrap_or_default();
                match self.eval_in(fi, *value, &ckey, &name) {
                    Ok(v) => {
                        self.set_local(fi, *local, v);
                        self.complete(fi, p);
                    }
                    Err(e) => self.fail_at(fi, e),
                }
            }
            StmtKind::Step(step) => self.start_step(wf, fi, p, *step, &ckey),
            StmtKind::Wait(wait) => self.start_wait(fi, p, sid, wait, &ckey),
            StmtKind::If {
                branches,
                otherwise,
                exports,
            } => {
                let mut chosen = None;
                for b in branches {
                    match self.eval_in(fi, b.condition, &ckey, "if condition") {
                        Ok(Value::Bool(true)) => {
                            chosen = Some(b.body);
                            break;
                        }
                        Ok(Value::Bool(false)) | Ok(Value::Null) => {}
                        Ok(other) => {
                            self.fail_at(
                                fi,
                                StepError::expression(format!(
                                    "an `if` condition must be a bool, not {}",
                                    other.kind()
                                )),
                            );
                            return;
                        }
                        Err(e) => {
                            self.fail_at(fi, e);
                            return;
                        }
                    }
                }
                match chosen.or(*otherwise) {
                    Some(block) => {
                        self.child_frame(fi, block, FrameKind::Branch { stmt: p }, None);
                    }
                    None => {
                        for e in exports {
                            self.set_local(fi, e.outer, Value::Null);
                        }
                        self.complete(fi, p);
                    }
                }
            }
            StmtKind::For {
                var,
                iterable,
                parallel,
                body,
                exports,
            } => {
                let items = match self.eval_in(fi, *iterable, &ckey, "for") {
                    Ok(Value::List(items)) => items.as_ref().clone(),
                    Ok(Value::Map(m)) => m.entries.iter().map(|(k, _)| k.clone()).collect(),
                    Ok(Value::Null) => Vec::new(),
                    Ok(other) => {
                        self.fail_at(
                            fi,
                            StepError::expression(format!(
                                "`for` needs a list, not {}",
                                other.kind()
                            )),
                        );
                        return;
                    }
                    Err(e) => {
                        self.fail_at(fi, e);
                        return;
                    }
                };
                let limit = match parallel {
                    None => 1,
                    Some(ConstOr::Const(n)) => *n as usize,
                    Some(ConstOr::Expr(e)) => match self.eval_in(fi, *e, &ckey, "parallel") {
                        Ok(Value::Int(n)) if n > 0 => n as usize,
                        Ok(Value::UInt(n)) if n > 0 => n as usize,
                        Ok(_) => 1,
                        Err(e) => {
                            self.fail_at(fi, e);
                            return;
                        }
                    },
                }
                .max(1);
                if items.is_empty() {
                    for e in exports {
                        self.set_local(fi, e.outer, Value::list(Vec::new()));
                    }
                    self.complete(fi, p);
                    return;
                }
                let n = items.len();
                if let Some(Some(f)) = self.frames.get_mut(fi) {
                    f.loops.insert(
                        p,
                        LoopState {
                            items,
                            next: 0,
                            running: 0,
                            limit,
                            done: 0,
                            results: vec![Vec::new(); n],
                        },
                    );
                }
                self.launch_iterations(fi, p, *var, *body);
            }
            StmtKind::Try { body, .. } => {
                self.child_frame(fi, *body, FrameKind::TryBody { stmt: p }, None);
            }
            StmtKind::Fail(message) => {
                let text = match self.eval_in(fi, *message, &ckey, "fail") {
                    Ok(v) => v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_json().to_string()),
                    Err(e) => e.message,
                };
                // `fail` ends the run; a `try` around it does not catch it.
                self.outcome = Some(Err(StepError::runtime(text)));
            }
            StmtKind::Return(value) => {
                let out = match value {
                    Some(e) => self.eval_in(fi, *e, &ckey, "return").map(|v| v.to_json()),
                    None => Ok(Json::Null),
                };
                match out {
                    Ok(v) => self.outcome = Some(Ok(v)),
                    Err(e) => self.fail_at(fi, e),
                }
            }
            StmtKind::Log(expr) => match self.eval_in(fi, *expr, &ckey, "log") {
                Ok(v) => {
                    let text = v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_json().to_string());
                    let e = self.shared.record(
                        EventKind::Log,
                        None,
                        None,
                        Some(Json::String(text.clone()).to_string()),
                    );
                    let _ = self.shared.services.store.append_nowait(vec![e]);
                    self.shared.progress(&Progress::Log { message: text });
                    self.complete(fi, p);
                }
                Err(e) => self.fail_at(fi, e),
            },
        }
    }

    fn spawn_task(
        &mut self,
        fi: usize,
        timer: bool,
        fut: impl std::future::Future<Output = TaskDone> + Send + 'static,
    ) {
        let handle = self.tasks.spawn(fut);
        if timer {
            self.timers_in_flight += 1;
        } else {
            self.steps_in_flight += 1;
        }
        if let Some(Some(f)) = self.frames.get_mut(fi) {
            f.tasks.retain(|t| !t.is_finished());
            f.tasks.push(handle);
        }
    }
}

fn expr_error(what: &str, e: &flow_expr::EvalError) -> StepError {
    let kind = match e.kind {
        flow_expr::ErrorKind::Conversion => ErrorKind::Validation,
        _ => ErrorKind::Expression,
    };
    let mut err = StepError::new(kind, e.message.clone());
    err.step = what.to_owned();
    err
}
