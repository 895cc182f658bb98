//! The boundary between the executor and whatever performs an action: the native
//! built-ins (`http`, `file`, `console`), the declarative HTTP connector driver, and the
//! typed mocks of `flow test` all implement [`Connector`], and the executor calls them
//! the same way.
//!
//! A connector receives the action's declaration (from the compiled program), the
//! integration's expressions prepared once per loaded program, the evaluated arguments
//! aligned with the action's parameters, and a [`CallContext`]
//! saying which run, step and attempt the call belongs to. It returns the result as a
//! value of the action's declared result type, or a [`StepError`] whose kind the
//! executor uses for retries and `catch`. Timeouts, retries and journaling are the
//! executor's job: a connector performs one attempt.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use flow_expr::Value;
use flow_ir::program::{Action, ActionRef, Integration, Program};

use crate::builtins::Builtins;
use crate::error::StepError;
use crate::prepared::PreparedIntegration;

/// What a connector returns: a boxed future, so connectors are object safe.
pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, StepError>> + Send + 'a>>;

/// One action call.
pub struct ActionCall<'a> {
    /// The compiled program the run executes (integrations, actions, their expressions).
    pub program: &'a Arc<Program>,
    /// The integration's expressions (its own, each action's), prepared once per loaded
    /// program and shared by every call; what a connector derives from the integration
    /// goes in its [`PreparedIntegration::derived`] slot.
    pub prepared: &'a PreparedIntegration,
    pub action_ref: ActionRef,
    pub integration: &'a Integration,
    pub action: &'a Action,
    /// Argument values aligned with `action.params` (defaults already applied).
    pub args: &'a [Value],
}

impl ActionCall<'_> {
    /// `integration.action`, as in messages and `calls(...)`.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.integration.name, self.action.name)
    }

    /// An argument by parameter name.
    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.action
            .params
            .iter()
            .position(|p| p.name == name)
            .and_then(|i| self.args.get(i))
    }

    /// The arguments as a JSON object keyed by parameter name (for connectors that
    /// speak JSON).
    pub fn args_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.action
            .params
            .iter()
            .zip(self.args)
            .map(|(p, v)| (p.name.clone(), v.to_json()))
            .collect()
    }
}

/// Where the call comes from.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub run_id: Arc<str>,
    pub workflow: Arc<str>,
    /// The step instance (`ticket[2]`).
    pub step: String,
    /// 1-based.
    pub attempt: u32,
    /// `--as OWNER`: whose connection (credentials, settings) to use.
    pub owner: Option<Arc<str>>,
    /// The step's `idempotency_key`, evaluated; the same on every attempt and after a resume.
    pub idempotency_key: Option<String>,
    /// `cache D`: a successful result of the same call may be reused for this long.
    pub cache: Option<Duration>,
    /// The attempt's deadline, when the step has a `timeout` (the executor also enforces
    /// it by dropping the future; connectors may pass it on to the server).
    pub timeout: Option<Duration>,
}

/// Performs actions. Implementations must be cheap to call concurrently.
pub trait Connector: Send + Sync {
    /// One attempt of one call.
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, ctx: &'a CallContext) -> InvokeFuture<'a>;
}

/// The connector for integrations declared in Flow with request clauses (issue: the
/// declarative HTTP driver). Until a driver is installed with [`Router::with_declarative`],
/// such calls fail with a clear `runtime` error instead of pretending to work.
struct NotBuilt;

impl Connector for NotBuilt {
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, _ctx: &'a CallContext) -> InvokeFuture<'a> {
        let name = call.qualified_name();
        Box::pin(async move {
            Err(StepError::runtime(format!(
                "not supported yet: calling `{name}` needs the declarative connector driver, which this build does not include; mock it in a `test` block or use `http` directly"
            )))
        })
    }
}

/// The production connector: built-in integrations natively, everything else through
/// the declarative driver.
pub struct Router {
    builtins: Builtins,
    declarative: Arc<dyn Connector>,
}

impl Router {
    pub fn new(builtins: Builtins) -> Router {
        Router {
            builtins,
            declarative: Arc::new(NotBuilt),
        }
    }

    /// Installs the driver for declared (non-built-in) integrations.
    pub fn with_declarative(mut self, driver: Arc<dyn Connector>) -> Router {
        self.declarative = driver;
        self
    }
}

impl Connector for Router {
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, ctx: &'a CallContext) -> InvokeFuture<'a> {
        if call.integration.builtin && call.action.native {
            self.builtins.invoke(call, ctx)
        } else {
            self.declarative.invoke(call, ctx)
        }
    }
}
