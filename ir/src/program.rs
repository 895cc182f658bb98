//! The typed workflow IR: what the compiler hands the runtime. Plain serde data, no AST.
//!
//! A [`Program`] holds workflows, the integrations they use and the tests. Everything is
//! addressed by index ([`WorkflowId`], [`IntegrationId`], [`StepId`], [`StmtId`],
//! [`BlockId`], and the expression arena's `ExprId`/`LocalId`); spans live in side tables
//! (`spans` fields and the expression arenas' span vectors) and are read only to report.
//!
//! # How a workflow executes
//!
//! A workflow is a tree of blocks. Each [`Block`] lists its statements; a statement starts
//! when every statement in its [`Stmt::deps`] has completed, and a compound statement
//! (`if`, `for`, `try`) has completed when everything in the block it ran has completed.
//! Every id in `deps` names a statement of the same block or of an enclosing block (for a
//! statement inside a `for`, a dependency inside the same loop body means "in the same
//! iteration"). The lists already include:
//! - data: every step or `let` whose value the statement's expressions read (a reference
//!   to a step nested in a sibling `if`/`for`/`try` becomes a dependency on that sibling);
//! - `after` orderings;
//! - `wait` barriers: a `wait` depends on every statement before it in its block, and
//!   every statement after it in the block depends on the `wait`;
//! - `fail` and `return` likewise wait for every statement before them in their block.
//!
//! Values live in the workflow's expression arena's locals: parameters, constants
//! (evaluated at run start, in [`Workflow::consts`] order), `event`, `err`, loop
//! variables, `let`s and step results. A step's [`Step::local`] holds its result in its
//! own block; outside an `if`/`try`/`catch` a step is seen through an optional view and
//! outside a `for` through a list view. Those views are distinct locals, filled by the
//! compound statement's [`Export`]s when it completes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::span::Span;

use crate::expr::{ExprArena, ExprId, LocalId};
use crate::types::Type;

/// Version of this IR's shape; part of the `.flowc` header. Bumped on any change that an
/// older reader could misread.
pub const IR_VERSION: u32 = 4;

/// Nanoseconds, as durations are everywhere in Flow.
pub type Nanos = i64;

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub u32);

        impl $name {
            /// The id as an index into its table.
            pub fn index(self) -> usize {
                self.0 as usize
            }

            /// The id of the `i`-th entry of its table.
            pub fn from_index(i: usize) -> $name {
                $name(u32::try_from(i).unwrap_or(u32::MAX))
            }
        }
    )*};
}

id_type! {
    /// Index into [`Program::workflows`].
    WorkflowId;
    /// Index into [`Program::integrations`].
    IntegrationId;
    /// Index into a workflow's [`Workflow::steps`].
    StepId;
    /// Index into a workflow's [`Workflow::stmts`].
    StmtId;
    /// Index into a workflow's [`Workflow::blocks`].
    BlockId;
}

/// A whole compiled program: the workflows of the compiled file (and the workflows they
/// run as children), every integration they use, and the file's tests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Source file names, indexed by the `FileId` inside every span.
    pub files: Vec<SourceInfo>,
    pub workflows: Vec<Workflow>,
    pub integrations: Vec<Integration>,
    pub tests: Vec<Test>,
}

impl Program {
    pub fn workflow(&self, id: WorkflowId) -> Option<&Workflow> {
        self.workflows.get(id.index())
    }

    pub fn workflow_by_name(&self, name: &str) -> Option<(WorkflowId, &Workflow)> {
        self.workflows
            .iter()
            .enumerate()
            .find(|(_, w)| w.name == name)
            .map(|(i, w)| (WorkflowId::from_index(i), w))
    }

    pub fn integration(&self, id: IntegrationId) -> Option<&Integration> {
        self.integrations.get(id.index())
    }

    pub fn integration_by_name(&self, name: &str) -> Option<(IntegrationId, &Integration)> {
        self.integrations
            .iter()
            .enumerate()
            .find(|(_, i)| i.name == name)
            .map(|(i, w)| (IntegrationId::from_index(i), w))
    }

    pub fn action(&self, r: ActionRef) -> Option<&Action> {
        self.integration(r.integration)
            .and_then(|i| i.actions.get(r.action as usize))
    }

    pub fn event(&self, r: EventRef) -> Option<&Event> {
        self.integration(r.integration)
            .and_then(|i| i.events.get(r.event as usize))
    }

    /// What a step calls, as graphs and dashboards show it: `slack.post_message`,
    /// `run child`, `notify slack`, `wait signal "approve"`, `wait github.issue`.
    pub fn call_label(&self, call: &StepCall) -> String {
        let integration = |id: IntegrationId| self.integration(id).map_or("?", |i| i.name.as_str());
        match call {
            StepCall::Action { action, .. } => match self.action(*action) {
                Some(a) => format!("{}.{}", integration(action.integration), a.name),
                None => "?".into(),
            },
            StepCall::Workflow { workflow, .. } => format!(
                "run {}",
                self.workflow(*workflow).map_or("?", |w| w.name.as_str())
            ),
            StepCall::Notify { integration: i, .. } => format!("notify {}", integration(*i)),
            StepCall::Signal { name } => format!("wait signal {name:?}"),
            StepCall::Event { event, .. } => format!(
                "wait {}.{}",
                integration(event.integration),
                self.event(*event).map_or("?", |e| e.name.as_str())
            ),
        }
    }
}

/// A source file's name and line starts, so a span can be shown as `file:line:column`
/// without the source text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub name: String,
    /// Byte offset of the start of each line.
    pub line_starts: Vec<u32>,
}

impl SourceInfo {
    /// 1-based line and byte column of a byte offset.
    pub fn line_column(&self, offset: u32) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        (line + 1, (offset - start.min(offset)) as usize + 1)
    }
}

/// An action of an integration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionRef {
    pub integration: IntegrationId,
    /// Index into [`Integration::actions`].
    pub action: u32,
}

/// An event of an integration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventRef {
    pub integration: IntegrationId,
    /// Index into [`Integration::events`].
    pub event: u32,
}

/// A value the compiler computed when it was constant, or the expression to evaluate
/// at run time otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ConstOr<T> {
    Const(T),
    Expr(ExprId),
}

// ------------------------------------------------------------------ workflows

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// The name as the compiled file sees it (`onboard`, or `common.onboard` for a
    /// workflow of a file imported with an alias).
    pub name: String,
    pub doc: Option<String>,
    pub params: Vec<Param>,
    /// The declared result type; `None` when the workflow declares none (its output is `null`).
    pub result: Option<Type>,
    pub trigger: Option<Trigger>,
    pub settings: Settings,
    /// Every expression of the workflow and every local it reads.
    pub exprs: Arc<ExprArena>,
    /// Constants the workflow reads, to evaluate into their locals at run start, in order.
    pub consts: Vec<ConstInit>,
    /// The local bound to the trigger's event (`event`), when the workflow has a trigger.
    pub event: Option<LocalId>,
    /// The top-level block.
    pub body: BlockId,
    pub blocks: Vec<Block>,
    pub stmts: Vec<Stmt>,
    /// Every step (including `notify` statements, which are steps calling the
    /// integration's notify action), in declaration order.
    pub steps: Vec<Step>,
    pub spans: WorkflowSpans,
}

impl Workflow {
    pub fn block(&self, id: BlockId) -> Option<&Block> {
        self.blocks.get(id.index())
    }

    pub fn stmt(&self, id: StmtId) -> Option<&Stmt> {
        self.stmts.get(id.index())
    }

    pub fn step(&self, id: StepId) -> Option<&Step> {
        self.steps.get(id.index())
    }

    /// The payload type of the signal `name`, when the workflow waits for it (the checker
    /// gives every wait for one name the same type).
    pub fn signal_type(&self, name: &str) -> Option<&Type> {
        self.steps.iter().find_map(|s| match &s.call {
            StepCall::Signal { name: n } if n == name => Some(&s.result),
            _ => None,
        })
    }

    /// The names of the signals the workflow waits for, in declaration order.
    pub fn signals(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for s in &self.steps {
            if let StepCall::Signal { name } = &s.call
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    pub fn step_by_name(&self, name: &str) -> Option<(StepId, &Step)> {
        self.steps
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
            .map(|(i, s)| (StepId::from_index(i), s))
    }
}

/// Spans of a workflow's parts, indexed like the tables they describe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowSpans {
    /// The workflow's name.
    pub name: Span,
    pub stmts: Vec<Span>,
    /// Each step's name (for a `notify`, the `notify` statement).
    pub steps: Vec<Span>,
    /// The `on ...` clause, when the workflow has a trigger.
    pub trigger: Option<Span>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub ty: Type,
    pub local: LocalId,
    /// Evaluated in the owner's arena when the caller gives no value (for a workflow,
    /// after its [`Workflow::consts`], which a default may read); a parameter with neither
    /// a value nor a default is `null` (it is optional, or the call was rejected).
    pub default: Option<ExprId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConstInit {
    pub name: String,
    pub local: LocalId,
    pub value: ExprId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    /// `when COND`: the run starts only when it holds (reads `event`).
    pub when: Option<ExprId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TriggerKind {
    /// `on schedule("CRON", tz: "Zone")`. `event` is `{ scheduled_at: timestamp }`.
    Schedule {
        /// The expression as written; it parsed with croner at compile time.
        cron: String,
        /// Whether the expression has the optional leading seconds field (6 fields).
        with_seconds: bool,
        /// An IANA zone name; `None` means UTC.
        time_zone: Option<String>,
    },
    /// `on webhook("/path") as T`: the request body, converted to `body_type`, is `event`.
    Webhook { path: String, body_type: Type },
    /// `on slack.message(channel: "C1")`: the integration's event; `args` are aligned
    /// with the event's params and evaluated in the workflow's arena (`None`: the
    /// param's default, in the event's arena).
    Event {
        event: EventRef,
        args: Vec<Option<ExprId>>,
    },
}

/// Workflow-level policy from `settings { ... }`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Whole-run timeout.
    pub timeout: Option<Nanos>,
    pub priority: Priority,
    /// Most runs of this workflow at once.
    pub concurrency: Option<u32>,
    /// The default retry policy; already applied to each eligible step's [`Step::retry`].
    pub retry: Option<Retry>,
    /// `catch_up`: which ticks of a schedule missed while no server ran are fired.
    pub catch_up: CatchUp,
    /// `overlap`: what a schedule's tick does while its previous run is still going.
    pub overlap: Overlap,
}

/// Which ticks of a schedule missed during downtime a server fires when it starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// None: they are counted as missed.
    None,
    /// The most recent one, once (the default).
    #[default]
    Latest,
    /// Every one no older than `within` (`catch_up = all`, `catch_up_within = 6h`).
    All { within: Nanos },
}

/// What a schedule's tick does while the previous run of the schedule is still going.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// It is skipped and counted (the default).
    #[default]
    Skip,
    /// One tick waits and starts when the previous run ends; later ones are skipped.
    Buffer,
    /// It starts anyway.
    Allow,
    /// The previous run is cancelled, then it starts.
    Cancel,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

/// A retry policy. `retries` counts the calls after the first one, so a step makes at
/// most `retries + 1` calls. The n-th retry (1-based) waits
/// `min(delay * backoff^(n-1), max_delay)`, drawn uniformly from `[0, that]` with jitter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Retry {
    pub retries: ConstOr<u32>,
    pub delay: ConstOr<Nanos>,
    pub backoff: ConstOr<f64>,
    pub max_delay: Option<ConstOr<Nanos>>,
    pub jitter: bool,
    /// Whether the policy came from the workflow's `settings` rather than the step.
    pub from_settings: bool,
}

/// A list of statements run concurrently, each when its dependencies are done.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub stmts: Vec<StmtId>,
    /// The compound statement that owns this block; `None` for the workflow body.
    pub parent: Option<StmtId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stmt {
    pub kind: StmtKind,
    /// The block this statement belongs to.
    pub block: BlockId,
    /// Statements (of this block or an enclosing one) that must complete first.
    pub deps: Vec<StmtId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StmtKind {
    /// `let x = EXPR`: pure; evaluate into `local` once `deps` are done.
    Let { local: LocalId, value: ExprId },
    /// A step (or a `notify`): see [`Workflow::steps`].
    Step(StepId),
    /// `wait D` / `wait until T`: a durable timer.
    Wait(Wait),
    If {
        branches: Vec<Branch>,
        otherwise: Option<BlockId>,
        exports: Vec<Export>,
    },
    For {
        var: LocalId,
        iterable: ExprId,
        /// Most iterations at once; `None` runs them one after the other.
        parallel: Option<ConstOr<u32>>,
        body: BlockId,
        exports: Vec<Export>,
    },
    /// `try { body } catch err { handler }`. When `body` fails, the failing step's error
    /// record goes to `error`, the steps of `body` are exported, and `handler` runs.
    Try {
        body: BlockId,
        error: Option<LocalId>,
        handler: BlockId,
        exports: Vec<Export>,
    },
    /// `fail MESSAGE`: the run ends as failed with this message.
    Fail(ExprId),
    /// `return EXPR`: the run's output (`None`: `null`).
    Return(Option<ExprId>),
    /// `log EXPR`: a line in the run's log.
    Log(ExprId),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    pub condition: ExprId,
    pub body: BlockId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Wait {
    For(ConstOr<Nanos>),
    /// A timestamp expression.
    Until(ExprId),
}

/// How a step declared inside a compound statement is seen after it: when the statement
/// completes, `outer` gets a value made from `inner`. For `for`: the list of `inner`'s
/// values, one per iteration, in iteration order. For `if` and `try`: `inner`'s value
/// when the step ran, `null` otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Export {
    pub step: StepId,
    pub inner: LocalId,
    pub outer: LocalId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The step's name; `notify#N` for the N-th `notify` statement.
    pub name: String,
    pub doc: Option<String>,
    pub stmt: StmtId,
    /// The result, in the step's own block.
    pub local: LocalId,
    pub call: StepCall,
    /// The call's result type (the action's declared result, or the child workflow's).
    pub result: Type,
    /// Whether repeating the call is harmless: the action is declared `idempotent`, or
    /// the step has an idempotency key.
    pub idempotent: bool,
    /// The effective retry policy: the step's own, else the workflow's default when the
    /// step is idempotent; `None`: one call only.
    pub retry: Option<Retry>,
    pub timeout: Option<ConstOr<Nanos>>,
    /// Reuse a successful result of the same call for this long (idempotent actions only).
    pub cache: Option<ConstOr<Nanos>>,
    /// A string expression; the connector sends it where the API takes one.
    pub idempotency_key: Option<ExprId>,
    /// Steps whose results the call reads (for tools; [`Stmt::deps`] is what runs).
    pub reads: Vec<StepId>,
    /// Steps named in `after`.
    pub after: Vec<StepId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StepCall {
    /// `integration.action(args)`: `args` are aligned with the action's params; `None`
    /// means the param's default, evaluated in the action's arena.
    Action {
        action: ActionRef,
        args: Vec<Option<ExprId>>,
    },
    /// `run workflow(args)`: a child run; `args` aligned with its params.
    Workflow {
        workflow: WorkflowId,
        args: Vec<Option<ExprId>>,
    },
    /// `notify INTEGRATION TARGET MESSAGE`: evaluate `target` and `message` (strings)
    /// here, then call the integration's [`Notify`] mapping with them.
    Notify {
        integration: IntegrationId,
        target: ExprId,
        message: ExprId,
    },
    /// `wait signal("name") as T`: the run parks until a signal of that name is sent to
    /// it; the step's value is the payload, of type [`Step::result`] (`dyn` without `as`).
    Signal { name: String },
    /// `wait integration.event(args) when COND`: the run parks until a delivery of the
    /// event (matching `args` like a trigger's) for which `COND` holds; the step's value
    /// is the event. `COND` reads `event_local` (the delivery) and `reads`, the locals
    /// whose values the run records when it starts waiting (earlier steps, parameters),
    /// so whoever receives the delivery can decide without the run.
    Event {
        event: EventRef,
        args: Vec<Option<ExprId>>,
        when: Option<ExprId>,
        event_local: LocalId,
        reads: Vec<LocalId>,
    },
}

// ------------------------------------------------------------------ integrations

/// An integration with its lowered settings, actions and events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    /// The declared name (`slack`): the key connections and credentials are stored under.
    pub name: String,
    /// Where it was declared: `std:slack` or the declaring file's name.
    pub module: String,
    pub doc: Option<String>,
    /// Whether the runtime implements its clause-less actions itself (`http`, `file`, `console`).
    pub builtin: bool,
    /// Expressions of the integration-level settings; no locals but `secret()`/`setting()` reads.
    pub exprs: Arc<ExprArena>,
    pub base_url: Option<ExprId>,
    pub auth: Option<Auth>,
    pub rate_limit: Option<RateLimit>,
    pub health: Option<Endpoint>,
    /// `health = action(args)`: the health check is a call of one of the actions.
    pub health_call: Option<ActionCall>,
    /// `headers = { ... }`: sent with every request.
    pub headers: Option<ExprId>,
    /// Any other `name = EXPR` setting (defaults a connection may override).
    pub settings: Vec<NamedExpr>,
    pub notify: Option<Notify>,
    pub actions: Vec<Action>,
    pub events: Vec<Event>,
    pub spans: IntegrationSpans,
}

/// Spans of an integration's parts, indexed like the tables they describe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IntegrationSpans {
    /// The whole declaration.
    pub decl: Span,
    /// Each action's declaration.
    pub actions: Vec<Span>,
    /// Each event's declaration.
    pub events: Vec<Span>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NamedExpr {
    pub name: String,
    pub value: ExprId,
}

/// An argument of a built-in form (`auth`, `verify`, `paginate`): positional or named.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FormArg {
    pub name: Option<String>,
    pub value: ExprId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    pub kind: AuthKind,
    /// Evaluated in the integration's arena; for `session`, `token` reads `response`.
    pub args: Vec<FormArg>,
    /// For `session`: the local holding the sign-in response while `token` is evaluated.
    pub response: Option<LocalId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// `bearer(TOKEN)`
    Bearer,
    /// `basic(USER, PASSWORD)`
    Basic,
    /// `api_key(header: "X", value: K)` or `api_key(query: "k", value: K)`
    ApiKey,
    /// `oauth2(token_url:, client_id:, client_secret:, refresh:, scope:)`
    OAuth2,
    /// `aws_sigv4(service:, region:)`
    AwsSigV4,
    /// `session(url:, body:, token:, header:, ttl:)`: sign in with a POST of `body` to
    /// `url`, read the token from the response with `token`, send it in `header`, and
    /// sign in again after `ttl` (or on a 401).
    Session,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    pub count: u32,
    pub per: Nanos,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub method: Method,
    /// A string expression in the integration's arena.
    pub path: ExprId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            _ => return None,
        })
    }
}

/// A call of one of the integration's own actions, with its arguments in `exprs`
/// (aligned with the action's params; `None`: the param's default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionCall {
    /// Index into [`Integration::actions`].
    pub action: u32,
    pub exprs: Arc<ExprArena>,
    pub args: Vec<Option<ExprId>>,
}

/// `notify = action(param: EXPR, ...)`: in `exprs`, `target` and `message` are the
/// locals the `notify` statement fills; `args` are aligned with the action's params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notify {
    /// Index into [`Integration::actions`].
    pub action: u32,
    pub exprs: Arc<ExprArena>,
    pub target: LocalId,
    pub message: LocalId,
    pub args: Vec<Option<ExprId>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub name: String,
    pub doc: Option<String>,
    /// Declared `idempotent`: safe to repeat, cache and retry.
    pub idempotent: bool,
    /// Implemented by the runtime (an action of a built-in integration with no clauses).
    pub native: bool,
    /// Params are locals of `exprs`; defaults are expressions of `exprs`.
    pub params: Vec<Param>,
    pub result: Type,
    pub exprs: Arc<ExprArena>,
    /// The local holding the HTTP response (`{ status, headers, body }`) once it arrived.
    pub response: LocalId,
    pub request: Option<Endpoint>,
    pub query: Option<ExprId>,
    pub headers: Option<ExprId>,
    pub body: Option<Body>,
    pub paginate: Option<Paginate>,
    /// Checked in order after each response: the first condition that holds fails the
    /// call with its message.
    pub error_when: Vec<ErrorWhen>,
    /// `result EXPR` (reads `response`); `None`: the response body.
    pub result_expr: Option<ExprId>,
    pub timeout: Option<ConstOr<Nanos>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub kind: BodyKind,
    pub value: ExprId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyKind {
    Json,
    Form,
    Xml,
    Text,
    Multipart,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paginate {
    pub kind: PaginateKind,
    /// Evaluated after each response (they may read `response`).
    pub args: Vec<FormArg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaginateKind {
    /// `cursor(NEXT, param: "cursor")` (or `body_param:` to send it in the JSON body):
    /// send NEXT until it is empty or null.
    Cursor,
    /// `link()`: follow RFC 8288 `Link: <...>; rel="next"`; `link(NEXT)`: follow the URL
    /// NEXT (read from the response) until it is null.
    Link,
    /// `offset(param: "offset", limit_param: "limit", size: N, more: COND)`
    Offset,
    /// `page(param: "page", size_param: "per_page", size: N, start: 1, more: COND)`
    Page,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorWhen {
    pub condition: ExprId,
    pub message: ExprId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub name: String,
    pub doc: Option<String>,
    pub params: Vec<Param>,
    pub result: Type,
    /// Params, `payload` (the request body, `dyn`) and `headers` are locals here.
    pub exprs: Arc<ExprArena>,
    pub payload: LocalId,
    pub headers: LocalId,
    /// The path the integration's webhook listens on.
    pub webhook: Option<ExprId>,
    pub verify: Option<Verify>,
    /// Whether a delivery is for this subscription (reads params and `payload`).
    pub when: Option<ExprId>,
    /// The event value (reads `payload`); `None`: the payload itself.
    pub result_expr: Option<ExprId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verify {
    pub scheme: VerifyScheme,
    pub args: Vec<FormArg>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyScheme {
    SlackSignature,
    GithubSignature,
    StripeSignature,
    HmacSha256,
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
}

// ------------------------------------------------------------------ tests

/// A `test` block: mocks, one or more runs, and expectations, executed in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Test {
    pub name: String,
    pub doc: Option<String>,
    /// `status` (string), `output` (the last run's result), `error` (its failure
    /// message, a `string?`), `let`s, and one `int` local per `calls(...)` use.
    pub exprs: Arc<ExprArena>,
    pub status: LocalId,
    pub output: LocalId,
    pub error: LocalId,
    /// `calls(integration.action)` uses: the local to fill with that action's call count.
    pub calls: Vec<CallCount>,
    pub stmts: Vec<TestStmt>,
    pub spans: TestSpans,
}

/// Spans of a test's parts, indexed like the tables they describe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TestSpans {
    /// The whole `test` block.
    pub decl: Span,
    /// Each statement, aligned with [`Test::stmts`].
    pub stmts: Vec<Span>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallCount {
    pub action: ActionRef,
    pub local: LocalId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TestStmt {
    Mock {
        action: ActionRef,
        behaviours: Vec<MockBehaviour>,
    },
    /// `mock signal.NAME returns VALUE`: what the next `wait signal("NAME")` steps take
    /// (a value of the signal's type), or how they fail (`fails timeout()`).
    MockSignal {
        name: String,
        behaviours: Vec<MockBehaviour>,
    },
    /// Run a workflow to its end; `args` aligned with its params.
    Run {
        workflow: WorkflowId,
        args: Vec<Option<ExprId>>,
    },
    /// A `bool` expression that must hold.
    Expect {
        condition: ExprId,
    },
    Let {
        local: LocalId,
        value: ExprId,
    },
}

/// One behaviour of a mock, used `times` calls (`None`: for every remaining call).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MockBehaviour {
    pub outcome: MockOutcome,
    pub times: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MockOutcome {
    /// A value of the action's result type.
    Returns(ExprId),
    Fails {
        kind: ErrorKind,
        message: Option<ExprId>,
    },
}

/// The error kinds a step can fail with (what `err.kind` holds, as a lowercase string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    Timeout,
    Communication,
    Authentication,
    Authorization,
    Validation,
    Expression,
    Runtime,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Timeout,
        ErrorKind::Communication,
        ErrorKind::Authentication,
        ErrorKind::Authorization,
        ErrorKind::Validation,
        ErrorKind::Expression,
        ErrorKind::Runtime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Communication => "communication",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Authorization => "authorization",
            ErrorKind::Validation => "validation",
            ErrorKind::Expression => "expression",
            ErrorKind::Runtime => "runtime",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The type of `err` in a `catch` block.
pub fn error_record_type() -> Type {
    Type::record(
        Some("Error".into()),
        vec![
            ("kind".into(), Type::String),
            ("message".into(), Type::String),
            ("step".into(), Type::String),
            ("attempts".into(), Type::Int),
            ("status".into(), Type::optional(Type::Int)),
            ("details".into(), Type::Dyn),
        ],
    )
}

/// The type of `event` in a workflow triggered by a schedule.
pub fn schedule_event_type() -> Type {
    Type::record(
        Some("ScheduleEvent".into()),
        vec![("scheduled_at".into(), Type::Timestamp)],
    )
}

/// The type of `response` in an action's clauses.
pub fn response_type() -> Type {
    Type::record(
        Some("Response".into()),
        vec![
            ("status".into(), Type::Int),
            ("headers".into(), Type::map(Type::String, Type::String)),
            ("body".into(), Type::Dyn),
        ],
    )
}
