//! Step calls: evaluating a step's arguments and policies, performing the call through
//! the connector with retries and timeouts (journaling each attempt), and child runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flow_expr::{Timestamp, Value};
use flow_ir::expr::ExprId;
use flow_ir::program::{ActionRef, ConstOr, Nanos, Retry, StepCall, StepId, Workflow, WorkflowId};
use serde_json::Value as Json;

use super::{
    Exec, RunShared, TaskDone, TaskResult, drive, expr_error, nanos_to_duration, step_key,
};
use crate::attempt::{AttemptObserver, run_attempts};
use crate::error::StepError;
use crate::invoke::{ActionCall, CallContext};
use crate::policy::RetryPolicy;
use crate::run::{Created, Progress, RunStart};
use crate::store::{EventKind, RunOrigin, RunStatus, StoreError};
use tracing::Instrument;

impl Exec {
    pub(super) fn const_nanos(
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

    pub(super) fn retry_policy(
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
    pub(super) fn action_args(
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
        self.fill_defaults(action, decl, given)
    }

    /// The arguments not given take their defaults, evaluated in the action's arena.
    pub(super) fn fill_defaults(
        &self,
        action: ActionRef,
        decl: &flow_ir::program::Action,
        given: Vec<Option<Value>>,
    ) -> Result<Vec<Value>, StepError> {
        if given.iter().all(Option::is_some) {
            return Ok(given.into_iter().flatten().collect());
        }
        let arena = self
            .shared
            .program
            .integration(action.integration)
            .and_then(|i| i.actions.get(action.action as usize))
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

    pub(super) fn notify_args(
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
        let prepared = Arc::clone(&self.shared.program);
        let arena = prepared
            .integration(integration)
            .and_then(|i| i.notify.as_ref())
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
        Ok((action, self.fill_defaults(action, decl, given)?))
    }

    pub(super) fn start_step(
        &mut self,
        wf: &Workflow,
        fi: usize,
        p: usize,
        sid: StepId,
        ckey: &str,
    ) {
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
                action: action_label(&self.program, &step.call),
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
        if matches!(step.call, StepCall::Signal { .. } | StepCall::Event { .. }) {
            self.start_wait_step(fi, p, step, key, ckey);
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
                StepCall::Signal { .. } | StepCall::Event { .. } => {
                    return Err(StepError::runtime("internal error: a wait as a call"));
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
                action: action_label(&self.program, &step.call),
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
}

pub(super) enum Call {
    Action(ActionRef, Vec<Value>),
    Child(WorkflowId, Json),
}

pub(super) struct PreparedStep {
    pub(super) call: Call,
    /// What the step calls, for progress and metrics ([`action_label`]).
    pub(super) action: Arc<str>,
    pub(super) policy: RetryPolicy,
    pub(super) timeout: Option<Duration>,
    pub(super) cache: Option<Duration>,
    pub(super) idempotency_key: Option<String>,
}

pub(super) struct Journaling<'a> {
    pub(super) shared: &'a RunShared,
    pub(super) key: &'a str,
    pub(super) action: &'a Arc<str>,
    pub(super) started: Option<tokio::time::Instant>,
    /// `{"args": ...}`, journaled with the first attempt this process makes, so readers
    /// of the journal (the dashboard) can show what the step was called with.
    pub(super) args: Option<String>,
}

/// The largest arguments journaled whole; beyond, only their size is.
const MAX_JOURNALED_ARGS: usize = 16 << 10;

/// A step's arguments as its `step_started` event records them. Values of type `secret`
/// are `"<redacted>"` (what [`Value::to_json`] gives for them).
fn journaled_args(program: &flow_ir::program::Program, call: &Call) -> Option<String> {
    let args = match call {
        Call::Action(action, args) => {
            let decl = program.action(*action)?;
            serde_json::Value::Object(
                decl.params
                    .iter()
                    .zip(args)
                    .map(|(p, v)| (p.name.clone(), v.to_json()))
                    .collect(),
            )
        }
        Call::Child(_, input) => input.clone(),
    };
    let text = serde_json::json!({ "args": args }).to_string();
    Some(if text.len() > MAX_JOURNALED_ARGS {
        serde_json::json!({ "args_omitted": format!("{} bytes", text.len()) }).to_string()
    } else {
        text
    })
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
                self.args.take(),
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
            action: Arc::clone(self.action),
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
    let action_name = Arc::clone(&step.action);
    let mut observer = Journaling {
        shared: &shared,
        key: &key,
        action: &action_name,
        started: None,
        args: journaled_args(&shared.program.program, &step.call),
    };
    let result = match step.call {
        Call::Action(action, args) => {
            let mut rng = fastrand::Rng::new();
            let program = &shared.program.program;
            let (Some(integration), Some(prepared)) = (
                program.integration(action.integration),
                shared.program.integration(action.integration),
            ) else {
                return Err(StepError::runtime("integration missing from the program"));
            };
            let Some(decl) = program.action(action) else {
                return Err(StepError::runtime("action missing from the program"));
            };
            let connector = Arc::clone(&shared.services.connector);
            let call = ActionCall {
                program,
                prepared,
                action_ref: action,
                integration,
                action: decl,
                args: &args,
            };
            run_attempts(
                &step.policy,
                step.timeout,
                shared.services.config.skip_delays,
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
                    let span = attempt_span(&shared, &key, &action_name, attempt);
                    async move {
                        let result = connector.invoke(call, &ctx).instrument(span.clone()).await;
                        if result.is_err() {
                            crate::trace::record_error(&span);
                        }
                        result
                    }
                },
            )
            .await
        }
        Call::Child(wf, input) => {
            observer.started(first).await;
            let span = attempt_span(&shared, &key, &action_name, first);
            let child = run_child(&shared, wf, input, &key).instrument(span.clone());
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
                    crate::trace::record_error(&span);
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
                action: action_name,
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

/// The span of one attempt of a step, under its run's span ([`crate::trace`]).
fn attempt_span(shared: &RunShared, key: &str, action: &str, attempt: u32) -> tracing::Span {
    if !crate::trace::enabled() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        target: "flow::trace",
        parent: &shared.span,
        "step",
        otel.name = %format!("step {key}"),
        otel.status_code = tracing::field::Empty,
        flow.step = %key,
        flow.action = %action,
        flow.attempt = attempt,
    )
}

/// Runs (or finishes, or reads the outcome of) the child run of a `run` step: one child
/// per parent step instance, found again by the step's key after a restart.
async fn run_child(
    parent: &RunShared,
    wf: WorkflowId,
    input: Json,
    step_key: &str,
) -> Result<Json, StepError> {
    let services = &parent.services;
    let store_err = |e: StoreError| StepError::runtime(format!("journal: {e}"));
    let existing = {
        let store = services.store.clone();
        let key = step_key.to_owned();
        let parent_key = parent.key;
        tokio::task::spawn_blocking(move || store.child_run(parent_key, &key))
            .await
            .map_err(|e| StepError::runtime(e.to_string()))?
            .map_err(store_err)?
    };
    let start = match existing {
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
        Some(row) => RunStart {
            program: Arc::clone(&parent.program),
            workflow: wf,
            key: row.key,
            run_id: row.run_id,
            input: row.input,
            event: None,
            owner: parent.owner.clone(),
            priority: parent.priority,
            resumed: true,
            child: true,
        },
        None => {
            if parent.program.program.workflow(wf).is_none() {
                return Err(StepError::runtime(
                    "child workflow missing from the program",
                ));
            }
            let start = services
                .create_run(
                    &parent.program,
                    wf,
                    input,
                    parent.owner.clone(),
                    Some((parent.key, step_key)),
                    RunOrigin::default(),
                )
                .await
                .map_err(store_err)?;
            let Created::New(start) = start else {
                return Err(StepError::runtime(
                    "internal error: a child run was deduplicated",
                ));
            };
            parent
                .journal(
                    EventKind::ChildStarted,
                    Some(step_key),
                    None,
                    Some(Json::String(start.run_id.clone()).to_string()),
                    false,
                )
                .await;
            start
        }
    };
    let run_id = start.run_id.clone();
    let outcome = Box::pin(drive(Arc::clone(services), start, None)).await;
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

/// What a step calls, as progress and metrics name it: `integration.action`,
/// `integration.notify` or `run WORKFLOW`.
pub(super) fn action_label(program: &flow_ir::program::Program, call: &StepCall) -> Arc<str> {
    let text = match call {
        StepCall::Action { action, .. } => match (
            program.integration(action.integration),
            program.action(*action),
        ) {
            (Some(i), Some(a)) => format!("{}.{}", i.name, a.name),
            _ => String::from("unknown"),
        },
        StepCall::Notify { integration, .. } => match program.integration(*integration) {
            Some(i) => format!("{}.notify", i.name),
            None => String::from("unknown"),
        },
        StepCall::Workflow { workflow, .. } => match program.workflow(*workflow) {
            Some(w) => format!("run {}", w.name),
            None => String::from("unknown"),
        },
        StepCall::Signal { name } => format!("signal {name}"),
        StepCall::Event { event, .. } => match program.integration(event.integration) {
            Some(i) => format!(
                "{}.{}",
                i.name,
                i.events
                    .get(event.event as usize)
                    .map_or("?", |e| e.name.as_str())
            ),
            None => String::from("unknown"),
        },
    };
    Arc::from(text)
}
