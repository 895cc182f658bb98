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
//! This file holds the run's state, replay and the event loop; `frames.rs` starts
//! statements and finishes frames, `steps.rs` prepares, spawns and journals steps and
//! waits.

mod frames;
mod steps;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use flow_expr::{Context, Timestamp, Value};
use flow_ir::expr::{ExprId, LocalId};
use flow_ir::program::{
    ActionRef, BlockId, ConstOr, Export, Nanos, Retry, StepCall, StepId, StmtId, StmtKind, Wait,
    Workflow, WorkflowId,
};
use serde_json::Value as Json;
use tokio::sync::Semaphore;
use tokio::task::{AbortHandle, JoinSet};

use crate::admission::Permit;
use crate::attempt::{AttemptObserver, run_attempts};
use crate::engine::{Inner, Loaded, Progress, event};
use crate::error::{ErrorKind, StepError};
use crate::invoke::{ActionCall, CallContext};
use crate::policy::RetryPolicy;
use crate::store::{Event, EventKind, RunKey, RunStatus};

/// What the journal says a run already did.
#[derive(Default)]
pub(crate) struct Replay {
    succeeded: HashMap<String, Json>,
    failed: HashMap<String, StepError>,
    /// The highest attempt that failed, per step.
    failed_attempts: HashMap<String, u32>,
    timers: HashMap<String, i64>,
    fired: HashSet<String>,
    clocks: HashMap<String, i128>,
    pub next_seq: u32,
    pub started_at: Option<i64>,
}

impl Replay {
    pub fn from_events(events: &[Event]) -> Replay {
        let mut r = Replay::default();
        for e in events {
            r.next_seq = r.next_seq.max(e.seq + 1);
            let step = e.step.clone().unwrap_or_default();
            match e.kind {
                EventKind::RunStarted => {
                    r.started_at.get_or_insert(e.at);
                }
                EventKind::StepSucceeded => {
                    let v = e
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or(Json::Null);
                    r.succeeded.insert(step, v);
                }
                EventKind::StepFailed => {
                    let data: Json = e
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or(Json::Null);
                    let attempt = e.attempt.unwrap_or(1);
                    let n = r.failed_attempts.entry(step.clone()).or_insert(0);
                    *n = (*n).max(attempt);
                    if data.get("final").and_then(Json::as_bool) == Some(true) {
                        if let Some(err) = data
                            .get("error")
                            .and_then(|v| serde_json::from_value::<StepError>(v.clone()).ok())
                        {
                            r.failed.insert(step, err);
                        }
                    }
                }
                EventKind::TimerSet => {
                    if let Some(at) = e.data.as_deref().and_then(|d| d.parse::<i64>().ok()) {
                        r.timers.insert(step, at);
                    }
                }
                EventKind::TimerFired => {
                    r.fired.insert(step);
                }
                EventKind::Clock => {
                    if let Some(ns) = e.data.as_deref().and_then(|d| d.parse::<i128>().ok()) {
                        r.clocks.insert(step, ns);
                    }
                }
                _ => {}
            }
        }
        r
    }
}

/// What the run's tasks share.
pub(crate) struct RunShared {
    pub inner: Arc<Inner>,
    pub loaded: Arc<Loaded>,
    pub wf: WorkflowId,
    pub key: RunKey,
    pub run_id: Arc<str>,
    pub workflow: Arc<str>,
    pub owner: Option<Arc<str>>,
    pub child: bool,
    seq: AtomicU32,
    steps: Arc<Semaphore>,
    /// A `now()` reading was journaled without waiting for it: the next call waits for
    /// the journal first, so a resumed run calls with the same arguments.
    unsynced_clock: AtomicBool,
}

impl RunShared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        inner: Arc<Inner>,
        loaded: Arc<Loaded>,
        wf: WorkflowId,
        key: RunKey,
        run_id: Arc<str>,
        workflow: Arc<str>,
        next_seq: u32,
        child: bool,
    ) -> RunShared {
        let steps = Arc::new(Semaphore::new(inner.config.max_parallel_steps.max(1)));
        let owner = inner.config.owner.as_deref().map(Arc::from);
        RunShared {
            inner,
            loaded,
            wf,
            key,
            run_id,
            workflow,
            owner,
            child,
            seq: AtomicU32::new(next_seq),
            steps,
            unsynced_clock: AtomicBool::new(false),
        }
    }

    fn record(
        &self,
        kind: EventKind,
        step: Option<&str>,
        attempt: Option<u32>,
        data: Option<String>,
    ) -> Event {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        event(
            self.key,
            seq,
            self.inner.clock.now_millis(),
            kind,
            step,
            attempt,
            data,
        )
    }

    /// Journals an event; with `durable`, returns once it is committed. A journal that
    /// cannot be written is reported by the next durable write.
    pub async fn journal(
        &self,
        kind: EventKind,
        step: Option<&str>,
        attempt: Option<u32>,
        data: Option<String>,
        durable: bool,
    ) {
        let e = self.record(kind, step, attempt, data);
        if durable {
            let _ = self.inner.store.append_durable(vec![e]).await;
        } else {
            let _ = self.inner.store.append_nowait(vec![e]);
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
        self.inner
            .store
            .append_durable(vec![e])
            .await
            .map_err(|e| StepError::runtime(format!("journal: {e}")))
    }

    fn progress(&self, p: &Progress) {
        self.inner
            .observer
            .progress(&self.run_id, &self.workflow, self.child, p);
    }
}

/// `now()` for one statement: readings are keyed by statement instance and position,
/// taken from the journal when the run is resumed and journaled when new.
struct ClockCtx<'a> {
    key: String,
    n: Cell<u32>,
    replay: &'a HashMap<String, i128>,
    now: i128,
    new: RefCell<Vec<(String, i128)>>,
}

impl Context for ClockCtx<'_> {
    fn now(&self) -> Timestamp {
        let n = self.n.get();
        self.n.set(n + 1);
        let key = format!("{}#{n}", self.key);
        let ns = match self.replay.get(&key) {
            Some(ns) => *ns,
            None => {
                self.new.borrow_mut().push((key, self.now));
                self.now
            }
        };
        Timestamp::from_nanos(ns).unwrap_or_else(|_| Timestamp::now())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum St {
    Pending,
    Running,
    Done,
}

#[derive(Clone, Copy)]
enum FrameKind {
    Root,
    Branch { stmt: usize },
    Iter { stmt: usize, index: usize },
    TryBody { stmt: usize },
    Handler { stmt: usize },
}

struct LoopState {
    items: Vec<Value>,
    next: usize,
    running: usize,
    limit: usize,
    done: usize,
    results: Vec<Vec<Value>>,
}

struct Frame {
    parent: Option<usize>,
    block: BlockId,
    kind: FrameKind,
    indices: Vec<u32>,
    locals: Vec<Value>,
    states: Vec<St>,
    remaining: usize,
    children: Vec<usize>,
    tasks: Vec<AbortHandle>,
    loops: HashMap<usize, LoopState>,
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
    admission: Option<(Option<Permit>, i64)>,
    /// When each timer in flight fires (Unix ms), by frame and statement position.
    wakes: HashMap<(usize, usize), i64>,
}

/// Runs a workflow to its end (or its deadline) and returns its output.
pub(crate) async fn execute(
    shared: Arc<RunShared>,
    replay: Replay,
    input: Json,
    admission: Option<(Permit, i64)>,
    deadline: Option<i64>,
) -> Result<Json, StepError> {
    let program = Arc::clone(&shared.loaded.program);
    let Some(wf) = program.workflow(shared.wf) else {
        return Err(StepError::runtime("workflow missing from its program"));
    };
    let eval = shared
        .loaded
        .exprs
        .get(shared.wf.index())
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
    let clock = shared.inner.clock;
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
        admission: admission.map(|(p, prio)| (Some(p), prio)),
        wakes: HashMap::new(),
    };
    let run = async {
        let locals = exec.initial_locals(wf, &input)?;
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

    fn initial_locals(&mut self, wf: &Workflow, input: &Json) -> Result<Vec<Value>, StepError> {
        let mut locals = self.eval.new_locals();
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
        let new = ctx.new.into_inner();
        self.journal_clocks(new);
        Ok(locals)
    }

    fn clock_ctx(&self, key: String) -> ClockCtx<'_> {
        ClockCtx {
            key,
            n: Cell::new(0),
            replay: &self.replay.clocks,
            now: self.shared.inner.clock.now_nanos(),
            new: RefCell::new(Vec::new()),
        }
    }

    fn journal_clocks(&mut self, readings: Vec<(String, i128)>) {
        for (key, ns) in readings {
            self.replay.clocks.insert(key.clone(), ns);
            let e = self
                .shared
                .record(EventKind::Clock, Some(&key), None, Some(ns.to_string()));
            let _ = self.shared.inner.store.append_nowait(vec![e]);
            self.shared.unsynced_clock.store(true, Ordering::Relaxed);
        }
    }

    /// Evaluates an expression in a frame.
    fn eval_in(
        &mut self,
        frame: usize,
        expr: ExprId,
        clock_key: &str,
        what: &str,
    ) -> Result<Value, StepError> {
        let ctx = ClockCtx {
            key: clock_key.to_owned(),
            n: Cell::new(0),
            replay: &self.replay.clocks,
            now: self.shared.inner.clock.now_nanos(),
            new: RefCell::new(Vec::new()),
        };
        let Some(Some(f)) = self.frames.get_mut(frame) else {
            return Err(StepError::runtime("frame gone"));
        };
        let r = self
            .eval
            .eval(expr, &mut f.locals, &ctx)
            .map_err(|e| expr_error(what, &e));
        let new = ctx.new.into_inner();
        if !new.is_empty() {
            self.journal_clocks(new);
        }
        r
    }

    fn new_frame(
        &mut self,
        parent: Option<usize>,
        block: BlockId,
        kind: FrameKind,
        indices: Vec<u32>,
        locals: Vec<Value>,
    ) -> usize {
        let n = self
            .wf()
            .blocks
            .get(block.index())
            .map(|b| b.stmts.len())
            .unwrap_or(0);
        let id = self.frames.len();
        self.frames.push(Some(Frame {
            parent,
            block,
            kind,
            indices,
            locals,
            states: vec![St::Pending; n],
            remaining: n,
            children: Vec::new(),
            tasks: Vec::new(),
            loops: HashMap::new(),
        }));
        if let Some(p) = parent {
            if let Some(Some(pf)) = self.frames.get_mut(p) {
                pf.children.push(id);
            }
        }
        id
    }

    fn child_frame(
        &mut self,
        parent: usize,
        block: BlockId,
        kind: FrameKind,
        extra_index: Option<u32>,
    ) -> usize {
        let (locals, mut indices) = match self.frames.get(parent) {
            Some(Some(f)) => (f.locals.clone(), f.indices.clone()),
            _ => (Vec::new(), Vec::new()),
        };
        if let Some(i) = extra_index {
            indices.push(i);
        }
        let id = self.new_frame(Some(parent), block, kind, indices, locals);
        if let Some(Some(f)) = self.frames.get(id) {
            if f.remaining == 0 {
                // An empty block completes at once; handled by the next pump.
            }
        }
        id
    }

    /// Writes a local in a frame and every frame nested in it.
    fn set_local(&mut self, frame: usize, local: LocalId, value: Value) {
        let mut stack = vec![frame];
        while let Some(f) = stack.pop() {
            if let Some(Some(fr)) = self.frames.get_mut(f) {
                if let Some(slot) = fr.locals.get_mut(local.0 as usize) {
                    *slot = value.clone();
                }
                stack.extend(fr.children.iter().copied());
            }
        }
    }

    fn local_of(&self, frame: usize, local: LocalId) -> Value {
        match self.frames.get(frame) {
            Some(Some(f)) => f
                .locals
                .get(local.0 as usize)
                .cloned()
                .unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    fn deps_done(&self, frame: usize, deps: &[StmtId]) -> bool {
        let wf = self.wf();
        deps.iter().all(|d| {
            let Some(stmt) = wf.stmt(*d) else { return true };
            let mut f = Some(frame);
            while let Some(fi) = f {
                let Some(Some(fr)) = self.frames.get(fi) else {
                    return true;
                };
                if fr.block == stmt.block {
                    return fr
                        .states
                        .get(self.pos[d.index()])
                        .is_none_or(|s| *s == St::Done);
                }
                f = fr.parent;
            }
            true
        })
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

    /// While the run only waits on timers it gives its admission slot back, so parked
    /// runs do not hold up others.
    async fn park_if_only_timers(&mut self) {
        if self.steps_in_flight == 0 && self.timers_in_flight > 0 {
            if let Some((permit @ Some(_), _)) = self.admission.as_mut() {
                *permit = None;
                let wake = self.wakes.values().min().copied();
                let _ =
                    self.shared
                        .inner
                        .store
                        .set_status(self.shared.key, RunStatus::Waiting, wake);
            }
        }
    }

    async fn unpark(&mut self) {
        if let Some((permit @ None, prio)) = self.admission.as_mut() {
            let p = self.shared.inner.admit(*prio).await;
            *permit = Some(p);
            let _ = self
                .shared
                .inner
                .store
                .set_status(self.shared.key, RunStatus::Running, None);
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
                if let Some(StmtKind::Step(step)) = wf.stmt(sid).map(|s| &s.kind) {
                    if let Some(step) = wf.step(*step) {
                        self.set_local(done.frame, step.local, v);
                    }
                }
                self.complete(done.frame, done.pos);
            }
            TaskResult::Step(Err(e)) => self.fail_at(done.frame, e),
        }
    }

    fn stmt_at(&self, frame: usize, pos: usize) -> Option<StmtId> {
        let f = self.frames.get(frame)?.as_ref()?;
        self.wf().block(f.block)?.stmts.get(pos).copied()
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
