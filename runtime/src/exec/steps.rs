//! Steps and waits: a step's call prepared (arguments, defaults, retry policy, notify
//! mapping) and spawned as a task, replayed from the journal when it already ran; timers
//! for `wait`.

use super::*;

impl Exec {
    pub(super) fn spawn_task(
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
        self.fill_defaults(action, decl, given, false)
    }

    pub(super) fn fill_defaults(
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

    pub(super) fn start_wait(&mut self, fi: usize, p: usize, sid: StmtId, wait: &Wait, ckey: &str) {
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
