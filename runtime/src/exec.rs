//! One run's interpreter: walks the workflow's blocks, starts each statement as soon as
//! its dependencies are done, runs steps and timers as tokio tasks, routes failures to
//! the nearest `try`, and replays the journal so a resumed run skips what it already did.
//!
//! All of a run's bookkeeping lives in one task (no locks); only step calls and timers
//! run elsewhere. A block instance is a *frame*: the workflow body, an `if` branch, one
//! iteration of a `for`, a `try` body or its handler. Each frame has its own copy of the
//! locals, so parallel iterations never see each other's values; a value written by a
//! statement is copied into the frames nested below it.

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

    /// Starts every statement whose dependencies are done, until nothing more can start.
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
                        if let Some(Some(f)) = self.frames.get_mut(fi) {
                            if let Some(s) = f.states.get_mut(p) {
                                *s = St::Running;
                            }
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

    fn complete(&mut self, frame: usize, pos: usize) {
        if let Some(Some(f)) = self.frames.get_mut(frame) {
            if let Some(s) = f.states.get_mut(pos) {
                if *s != St::Done {
                    *s = St::Done;
                    f.remaining = f.remaining.saturating_sub(1);
                }
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
                    let _ = self.shared.inner.store.append_nowait(vec![e]);
                    self.shared.progress(&Progress::Log { message: text });
                    self.complete(fi, p);
                }
                Err(e) => self.fail_at(fi, e),
            },
        }
    }

    fn launch_iterations(&mut self, fi: usize, p: usize, var: LocalId, body: BlockId) {
        loop {
            let next = match self.frames.get_mut(fi) {
                Some(Some(f)) => match f.loops.get_mut(&p) {
                    Some(l) if l.running < l.limit && l.next < l.items.len() => {
                        let i = l.next;
                        l.next += 1;
                        l.running += 1;
                        Some((i, l.items[i].clone()))
                    }
                    _ => None,
                },
                _ => None,
            };
            let Some((i, item)) = next else { return };
            let child = self.child_frame(
                fi,
                body,
                FrameKind::Iter { stmt: p, index: i },
                Some(u32::try_from(i).unwrap_or(u32::MAX)),
            );
            self.set_local(child, var, item);
        }
    }

    fn exports_of(&self, sid: StmtId) -> (Vec<Export>, Option<(LocalId, BlockId, BlockId)>) {
        match self.wf().stmt(sid).map(|s| &s.kind) {
            Some(StmtKind::If { exports, .. }) => (exports.clone(), None),
            Some(StmtKind::For {
                exports, var, body, ..
            }) => (exports.clone(), Some((*var, *body, *body))),
            Some(StmtKind::Try { exports, .. }) => (exports.clone(), None),
            _ => (Vec::new(), None),
        }
    }

    /// A frame has finished every statement: hand its results to the statement that
    /// opened it.
    fn frame_complete(&mut self, fi: usize) {
        let Some(Some(frame)) = self.frames.get(fi) else {
            return;
        };
        let kind = frame.kind;
        let parent = frame.parent;
        let block = frame.block;
        match (kind, parent) {
            (FrameKind::Root, _) => {
                if let Some(slot) = self.frames.get_mut(fi) {
                    *slot = None;
                }
                if self.outcome.is_none() {
                    self.outcome = Some(Ok(Json::Null));
                }
            }
            (FrameKind::Branch { stmt } | FrameKind::TryBody { stmt }, Some(pf)) => {
                let Some(sid) = self.stmt_at(pf, stmt) else {
                    return;
                };
                let (exports, _) = self.exports_of(sid);
                for e in &exports {
                    let v = self.local_of(fi, e.inner);
                    self.set_local(pf, e.outer, v);
                }
                self.remove_frame(fi);
                self.complete(pf, stmt);
            }
            (FrameKind::Handler { stmt }, Some(pf)) => {
                self.remove_frame(fi);
                self.complete(pf, stmt);
            }
            (FrameKind::Iter { stmt, index }, Some(pf)) => {
                let Some(sid) = self.stmt_at(pf, stmt) else {
                    return;
                };
                let (exports, looped) = self.exports_of(sid);
                let values: Vec<Value> =
                    exports.iter().map(|e| self.local_of(fi, e.inner)).collect();
                self.remove_frame(fi);
                let finished = match self.frames.get_mut(pf) {
                    Some(Some(f)) => match f.loops.get_mut(&stmt) {
                        Some(l) => {
                            if let Some(slot) = l.results.get_mut(index) {
                                *slot = values;
                            }
                            l.running = l.running.saturating_sub(1);
                            l.done += 1;
                            l.done == l.items.len()
                        }
                        None => false,
                    },
                    _ => false,
                };
                if finished {
                    let results = match self.frames.get_mut(pf) {
                        Some(Some(f)) => {
                            f.loops.remove(&stmt).map(|l| l.results).unwrap_or_default()
                        }
                        _ => Vec::new(),
                    };
                    for (k, e) in exports.iter().enumerate() {
                        let list: Vec<Value> = results
                            .iter()
                            .map(|r| r.get(k).cloned().unwrap_or(Value::Null))
                            .collect();
                        self.set_local(pf, e.outer, Value::list(list));
                    }
                    self.complete(pf, stmt);
                } else if let Some((var, body, _)) = looped {
                    self.launch_iterations(pf, stmt, var, body);
                }
            }
            (_, None) => {
                let _ = block;
                if let Some(slot) = self.frames.get_mut(fi) {
                    *slot = None;
                }
            }
        }
    }

    fn remove_frame(&mut self, fi: usize) {
        let parent = match self.frames.get(fi) {
            Some(Some(f)) => f.parent,
            _ => None,
        };
        self.kill(fi);
        if let Some(p) = parent {
            if let Some(Some(pf)) = self.frames.get_mut(p) {
                pf.children.retain(|c| *c != fi);
            }
        }
    }

    /// Drops a frame and everything nested in it, cancelling their tasks.
    fn kill(&mut self, fi: usize) {
        let mut stack = vec![fi];
        while let Some(f) = stack.pop() {
            if let Some(slot) = self.frames.get_mut(f) {
                if let Some(frame) = slot.take() {
                    for t in &frame.tasks {
                        t.abort();
                    }
                    stack.extend(frame.children);
                }
            }
        }
    }

    /// A statement in frame `fi` failed: the nearest enclosing `try` body handles it,
    /// otherwise the run fails.
    fn fail_at(&mut self, fi: usize, error: StepError) {
        let mut f = Some(fi);
        while let Some(cur) = f {
            let Some(Some(frame)) = self.frames.get(cur) else {
                break;
            };
            let (kind, parent) = (frame.kind, frame.parent);
            if let (FrameKind::TryBody { stmt }, Some(pf)) = (kind, parent) {
                let Some(sid) = self.stmt_at(pf, stmt) else {
                    break;
                };
                let Some(StmtKind::Try {
                    error: err_local,
                    handler,
                    exports,
                    ..
                }) = self.wf().stmt(sid).map(|s| s.kind.clone())
                else {
                    break;
                };
                for e in &exports {
                    let v = self.local_of(cur, e.inner);
                    self.set_local(pf, e.outer, v);
                }
                self.remove_frame(cur);
                if let Some(local) = err_local {
                    let record = Value::from_json(
                        &error.to_record(),
                        &flow_ir::program::error_record_type(),
                    )
                    .unwrap_or_else(|_| Value::from_json_dyn(&error.to_record()));
                    self.set_local(pf, local, record);
                }
                self.child_frame(pf, handler, FrameKind::Handler { stmt }, None);
                return;
            }
            f = parent;
        }
        if self.outcome.is_none() {
            self.outcome = Some(Err(error));
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

    fn const_nanos(
        &mut self,
        fi: usize,
        v: &ConstOr<Nanos>,
        ckey: &str,
        what: &str,
    ) -> Result<Nanos, StepError> {
        match v {
            ConstOr::Const(n) => Ok(*n),
            ConstOr::Expr(e) => match self.eval_in(fi, *e, ckey, what)? {
                Value::Duration(d) => Ok(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
                Value::Int(n) => Ok(n),
                other => Err(StepError::expression(format!(
                    "`{what}` must be a duration, not {}",
                    other.kind()
                ))),
            },
        }
    }

    fn retry_policy(
        &mut self,
        fi: usize,
        retry: &Retry,
        ckey: &str,
    ) -> Result<RetryPolicy, StepError> {
        let retries = match &retry.retries {
            ConstOr::Const(n) => *n,
            ConstOr::Expr(e) => match self.eval_in(fi, *e, ckey, "retry")? {
                Value::Int(n) => u32::try_from(n.max(0)).unwrap_or(u32::MAX),
                Value::UInt(n) => u32::try_from(n).unwrap_or(u32::MAX),
                other => {
                    return Err(StepError::expression(format!(
                        "`retry` must be an int, not {}",
                        other.kind()
                    )));
                }
            },
        };
        let delay = self.const_nanos(fi, &retry.delay, ckey, "delay")?;
        let backoff = match &retry.backoff {
            ConstOr::Const(f) => *f,
            ConstOr::Expr(e) => match self.eval_in(fi, *e, ckey, "backoff")? {
                Value::Double(f) => f,
                Value::Int(n) => n as f64,
                other => {
                    return Err(StepError::expression(format!(
                        "`backoff` must be a number, not {}",
                        other.kind()
                    )));
                }
            },
        };
        let max_delay = match &retry.max_delay {
            Some(m) => Some(nanos_to_duration(self.const_nanos(
                fi,
                m,
                ckey,
                "max_delay",
            )?)),
            None => None,
        };
        Ok(RetryPolicy {
            attempts: retries.saturating_add(1),
            delay: nanos_to_duration(delay),
            backoff,
            max_delay,
            jitter: retry.jitter,
        })
    }

    /// Evaluates the arguments of an action call in the workflow (given ones) and in the
    /// action's arena (defaults).
    fn action_args(
        &mut self,
        fi: usize,
        action: ActionRef,
        args: &[Option<ExprId>],
        ckey: &str,
    ) -> Result<Vec<Value>, StepError> {
        let program = Arc::clone(&self.program);
        let decl = program
            .action(action)
            .ok_or_else(|| StepError::runtime("action missing from the program"))?;
        let mut given = Vec::with_capacity(decl.params.len());
        for (i, p) in decl.params.iter().enumerate() {
            match args.get(i).copied().flatten() {
                Some(e) => given.push(Some(self.eval_in(fi, e, ckey, &p.name)?)),
                None => given.push(None),
            }
        }
        self.fill_defaults(action, decl, given, false)
    }

    fn fill_defaults(
        &self,
        action: ActionRef,
        decl: &flow_ir::program::Action,
        given: Vec<Option<Value>>,
        notify: bool,
    ) -> Result<Vec<Value>, StepError> {
        if given.iter().all(Option::is_some) {
            return Ok(given.into_iter().flatten().collect());
        }
        let _ = notify;
        let arena = self
            .shared
            .loaded
            .action_exprs(action.integration.0, action.action, false)
            .ok_or_else(|| StepError::runtime("action missing from the program"))?;
        let mut locals = arena.new_locals();
        for (p, v) in decl.params.iter().zip(&given) {
            if let (Some(v), Some(slot)) = (v, locals.get_mut(p.local.0 as usize)) {
                *slot = v.clone();
            }
        }
        let ctx = flow_expr::FixedContext(Timestamp::now());
        let mut out = Vec::with_capacity(given.len());
        for (p, v) in decl.params.iter().zip(given) {
            let v = match v {
                Some(v) => v,
                None => match p.default {
                    Some(d) => {
                        let v = arena
                            .eval(d, &mut locals, &ctx)
                            .map_err(|e| expr_error(&p.name, &e))?;
                        if let Some(slot) = locals.get_mut(p.local.0 as usize) {
                            *slot = v.clone();
                        }
                        v
                    }
                    None => Value::Null,
                },
            };
            out.push(v);
        }
        Ok(out)
    }

    fn notify_args(
        &mut self,
        fi: usize,
        integration: flow_ir::program::IntegrationId,
        target: ExprId,
        message: ExprId,
        ckey: &str,
    ) -> Result<(ActionRef, Vec<Value>), StepError> {
        let target = self.eval_in(fi, target, ckey, "notify target")?;
        let message = self.eval_in(fi, message, ckey, "notify message")?;
        let program = Arc::clone(&self.program);
        let integ = program
            .integration(integration)
            .ok_or_else(|| StepError::runtime("integration missing"))?;
        let notify = integ.notify.as_ref().ok_or_else(|| {
            StepError::runtime(format!("`{}` declares no `notify` action", integ.name))
        })?;
        let action = ActionRef {
            integration,
            action: notify.action,
        };
        let decl = program
            .action(action)
            .ok_or_else(|| StepError::runtime("notify action missing"))?;
        let arena = self
            .shared
            .loaded
            .action_exprs(integration.0, notify.action, true)
            .ok_or_else(|| StepError::runtime("notify mapping missing"))?;
        let mut locals = arena.new_locals();
        if let Some(s) = locals.get_mut(notify.target.0 as usize) {
            *s = target;
        }
        if let Some(s) = locals.get_mut(notify.message.0 as usize) {
            *s = message;
        }
        let ctx = flow_expr::FixedContext(Timestamp::now());
        let mut given = Vec::with_capacity(decl.params.len());
        for (i, p) in decl.params.iter().enumerate() {
            match notify.args.get(i).copied().flatten() {
                Some(e) => given.push(Some(
                    arena
                        .eval(e, &mut locals, &ctx)
                        .map_err(|e| expr_error(&p.name, &e))?,
                )),
                None => given.push(None),
            }
        }
        Ok((action, self.fill_defaults(action, decl, given, true)?))
    }

    fn start_step(&mut self, wf: &Workflow, fi: usize, p: usize, sid: StepId, ckey: &str) {
        let Some(step) = wf.step(sid) else { return };
        let indices = match self.frames.get(fi) {
            Some(Some(f)) => f.indices.clone(),
            _ => Vec::new(),
        };
        let key = step_key(&step.name, &indices);
        if let Some(json) = self.replay.succeeded.get(&key) {
            let v =
                Value::from_json(json, &step.result).unwrap_or_else(|_| Value::from_json_dyn(json));
            self.shared.progress(&Progress::StepSucceeded {
                step: key,
                attempt: 0,
                elapsed: Duration::ZERO,
                replayed: true,
            });
            self.set_local(fi, step.local, v);
            self.complete(fi, p);
            return;
        }
        if let Some(err) = self.replay.failed.get(&key).cloned() {
            self.fail_at(fi, err);
            return;
        }
        let prepared = (|| -> Result<PreparedStep, StepError> {
            let call = match &step.call {
                StepCall::Action { action, args } => {
                    Call::Action(*action, self.action_args(fi, *action, args, ckey)?)
                }
                StepCall::Notify {
                    integration,
                    target,
                    message,
                } => {
                    let (action, args) =
                        self.notify_args(fi, *integration, *target, *message, ckey)?;
                    Call::Action(action, args)
                }
                StepCall::Workflow { workflow, args } => {
                    let program = Arc::clone(&self.program);
                    let child = program
                        .workflow(*workflow)
                        .ok_or_else(|| StepError::runtime("child workflow missing"))?;
                    let mut input = serde_json::Map::new();
                    for (i, p) in child.params.iter().enumerate() {
                        if let Some(e) = args.get(i).copied().flatten() {
                            input.insert(
                                p.name.clone(),
                                self.eval_in(fi, e, ckey, &p.name)?.to_json(),
                            );
                        }
                    }
                    Call::Child(*workflow, Json::Object(input))
                }
            };
            let policy = match &step.retry {
                Some(r) => self.retry_policy(fi, r, ckey)?,
                None => RetryPolicy::none(),
            };
            let timeout = match &step.timeout {
                Some(t) => Some(nanos_to_duration(self.const_nanos(fi, t, ckey, "timeout")?)),
                None => None,
            };
            let cache = match &step.cache {
                Some(t) => Some(nanos_to_duration(self.const_nanos(fi, t, ckey, "cache")?)),
                None => None,
            };
            let idempotency_key = match step.idempotency_key {
                Some(e) => {
                    let v = self.eval_in(fi, e, ckey, "idempotency_key")?;
                    Some(
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_json().to_string()),
                    )
                }
                None => None,
            };
            Ok(PreparedStep {
                call,
                policy,
                timeout,
                cache,
                idempotency_key,
            })
        })();
        let prepared = match prepared {
            Ok(p) => p,
            Err(mut e) => {
                e.step = key;
                self.fail_at(fi, e);
                return;
            }
        };
        let first = self
            .replay
            .failed_attempts
            .get(&key)
            .map(|n| n + 1)
            .unwrap_or(1);
        let shared = Arc::clone(&self.shared);
        let result_ty = step.result.clone();
        self.spawn_task(fi, false, async move {
            let result = run_step(shared, key, prepared, first, result_ty).await;
            TaskDone {
                frame: fi,
                pos: p,
                result: TaskResult::Step(result),
                timer: false,
            }
        });
    }

    fn start_wait(&mut self, fi: usize, p: usize, sid: StmtId, wait: &Wait, ckey: &str) {
        let indices = match self.frames.get(fi) {
            Some(Some(f)) => f.indices.clone(),
            _ => Vec::new(),
        };
        let key = step_key(&format!("wait@{}", sid.0), &indices);
        if self.replay.fired.contains(&key) {
            self.complete(fi, p);
            return;
        }
        let known = self.replay.timers.get(&key).copied();
        let fire_at = match known {
            Some(at) => at,
            None => {
                let r = match wait {
                    Wait::For(d) => self.const_nanos(fi, d, ckey, "wait").map(|ns| {
                        self.shared
                            .inner
                            .clock
                            .now_millis()
                            .saturating_add(ns / 1_000_000)
                    }),
                    Wait::Until(e) => match self.eval_in(fi, *e, ckey, "wait until") {
                        Ok(Value::Timestamp(t)) => {
                            Ok(i64::try_from(t.as_nanos() / 1_000_000).unwrap_or(i64::MAX))
                        }
                        Ok(other) => Err(StepError::expression(format!(
                            "`wait until` needs a timestamp, not {}",
                            other.kind()
                        ))),
                        Err(e) => Err(e),
                    },
                };
                match r {
                    Ok(at) => at,
                    Err(e) => {
                        self.fail_at(fi, e);
                        return;
                    }
                }
            }
        };
        let shared = Arc::clone(&self.shared);
        self.wakes.insert((fi, p), fire_at);
        self.shared.progress(&Progress::Waiting {
            key: key.clone(),
            until_ms: fire_at,
        });
        self.spawn_task(fi, true, async move {
            if known.is_none() {
                shared
                    .journal(
                        EventKind::TimerSet,
                        Some(&key),
                        None,
                        Some(fire_at.to_string()),
                        true,
                    )
                    .await;
            }
            if !shared.inner.config.skip_delays {
                tokio::time::sleep(shared.inner.clock.until_millis(fire_at)).await;
            }
            shared
                .journal(EventKind::TimerFired, Some(&key), None, None, false)
                .await;
            TaskDone {
                frame: fi,
                pos: p,
                result: TaskResult::Timer,
                timer: true,
            }
        });
    }
}

enum Call {
    Action(ActionRef, Vec<Value>),
    Child(WorkflowId, Json),
}

struct PreparedStep {
    call: Call,
    policy: RetryPolicy,
    timeout: Option<Duration>,
    cache: Option<Duration>,
    idempotency_key: Option<String>,
}

struct Journaling<'a> {
    shared: &'a RunShared,
    key: &'a str,
    started: Option<tokio::time::Instant>,
}

impl AttemptObserver for Journaling<'_> {
    async fn started(&mut self, attempt: u32) {
        // A `now()` read for these arguments must be durable before the call goes out.
        let sync = self.shared.unsynced_clock.swap(false, Ordering::Relaxed);
        self.shared
            .journal(
                EventKind::StepStarted,
                Some(self.key),
                Some(attempt),
                None,
                sync,
            )
            .await;
        self.started = Some(tokio::time::Instant::now());
        self.shared.progress(&Progress::StepStarted {
            step: self.key.to_owned(),
            attempt,
        });
    }

    async fn failed(&mut self, attempt: u32, error: &StepError, last: bool) {
        let mut error = error.clone();
        error.step = self.key.to_owned();
        let data = serde_json::json!({ "error": error, "final": last }).to_string();
        self.shared
            .journal(
                EventKind::StepFailed,
                Some(self.key),
                Some(attempt),
                Some(data),
                last,
            )
            .await;
        self.shared.progress(&Progress::StepFailed {
            step: self.key.to_owned(),
            attempt,
            error,
            last,
        });
    }
}

async fn run_step(
    shared: Arc<RunShared>,
    key: String,
    step: PreparedStep,
    first: u32,
    result_ty: flow_ir::types::Type,
) -> Result<Value, StepError> {
    let permit = Arc::clone(&shared.steps).acquire_owned().await.ok();
    let mut observer = Journaling {
        shared: &shared,
        key: &key,
        started: None,
    };
    let result = match step.call {
        Call::Action(action, args) => {
            let mut rng = fastrand::Rng::new();
            let program = Arc::clone(&shared.loaded.program);
            let Some(integration) = program.integration(action.integration) else {
                return Err(StepError::runtime("integration missing from the program"));
            };
            let Some(decl) = program.action(action) else {
                return Err(StepError::runtime("action missing from the program"));
            };
            let connector = Arc::clone(&shared.inner.connector);
            let call = ActionCall {
                program: &program,
                action_ref: action,
                integration,
                action: decl,
                args: &args,
            };
            run_attempts(
                &step.policy,
                step.timeout,
                shared.inner.config.skip_delays,
                first,
                &mut rng,
                &mut observer,
                |attempt| {
                    let ctx = CallContext {
                        run_id: Arc::clone(&shared.run_id),
                        workflow: Arc::clone(&shared.workflow),
                        step: key.clone(),
                        attempt,
                        owner: shared.owner.clone(),
                        idempotency_key: step.idempotency_key.clone(),
                        cache: step.cache,
                        timeout: step.timeout,
                    };
                    let connector = Arc::clone(&connector);
                    let call = &call;
                    async move { connector.invoke(call, &ctx).await }
                },
            )
            .await
        }
        Call::Child(wf, input) => {
            observer.started(first).await;
            let child =
                shared
                    .inner
                    .run_child(Arc::clone(&shared.loaded), wf, input, &shared, &key);
            // A `timeout` on a `run` step bounds the child run; the child stays journaled
            // and is picked up again if the parent runs the step again.
            let r = match step.timeout {
                Some(limit) => tokio::time::timeout(limit, child)
                    .await
                    .unwrap_or_else(|_| {
                        Err(StepError::timeout(format!(
                            "the child run did not finish within {}",
                            crate::format_duration(limit)
                        )))
                    }),
                None => child.await,
            };
            let r = r.and_then(|json| {
                Value::from_json(&json, &result_ty).map_err(|e| {
                    StepError::validation(format!(
                        "the child run's output does not fit its type: {e}"
                    ))
                })
            });
            match r {
                Ok(v) => Ok((v, first)),
                Err(mut e) => {
                    e.attempts = first;
                    observer.failed(first, &e, true).await;
                    Err(e)
                }
            }
        }
    };
    drop(permit);
    let elapsed = observer.started.map(|s| s.elapsed()).unwrap_or_default();
    match result {
        Ok((value, attempt)) => {
            // The result is durable before any dependent step can start.
            shared
                .journal_durable(
                    EventKind::StepSucceeded,
                    Some(&key),
                    Some(attempt),
                    Some(value.to_json().to_string()),
                )
                .await?;
            shared.progress(&Progress::StepSucceeded {
                step: key,
                attempt,
                elapsed,
                replayed: false,
            });
            Ok(value)
        }
        Err(mut e) => {
            e.step = key;
            Err(e)
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
