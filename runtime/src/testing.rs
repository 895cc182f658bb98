//! `test` blocks: typed mocks that plug in as a [`Connector`], and the runner that
//! executes a test's mocks, runs and expectations against a real engine and store.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use flow_expr::{SystemContext, Value};
use flow_ir::Span;
use flow_ir::program::{ActionRef, MockOutcome, Program, Test, TestStmt};

use crate::builtins::{Builtins, ConsoleSink};
use crate::engine::Engine;
use crate::error::StepError;
use crate::invoke::{ActionCall, CallContext, Connector, InvokeFuture};
use crate::run::{EngineConfig, Silent};
use crate::store::{RunStatus, Store, StoreOptions};

#[derive(Clone)]
enum Behaviour {
    Returns(Value),
    Fails(StepError),
}

struct Mock {
    /// Each behaviour with how many calls it still serves (`None`: all the rest).
    behaviours: Vec<(Behaviour, Option<u32>)>,
}

/// The mocks of one test: mocked actions answer as told, built-in actions run for real
/// (console output goes to a buffer), anything else fails with a clear message.
pub struct Mocks {
    mocks: Mutex<HashMap<ActionRef, Mock>>,
    /// `mock signal.NAME ...`: what `wait signal("NAME")` steps take.
    signals: Mutex<HashMap<String, Mock>>,
    calls: Mutex<HashMap<ActionRef, u32>>,
    builtins: Builtins,
    pub console: Arc<Mutex<Vec<String>>>,
}

impl Mocks {
    pub fn new() -> Result<Mocks, StepError> {
        let console = Arc::new(Mutex::new(Vec::new()));
        let builtins = Builtins::new()?.with_console(ConsoleSink::Buffer(Arc::clone(&console)));
        Ok(Mocks {
            mocks: Mutex::new(HashMap::new()),
            signals: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            builtins,
            console,
        })
    }

    fn set(&self, action: ActionRef, behaviours: Vec<(Behaviour, Option<u32>)>) {
        self.mocks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(action, Mock { behaviours });
    }

    /// Calls made so far to an action (mocked or not).
    pub fn calls(&self, action: ActionRef) -> u32 {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&action)
            .copied()
            .unwrap_or(0)
    }

    fn next(&self, action: ActionRef) -> Option<Behaviour> {
        let mut mocks = self.mocks.lock().unwrap_or_else(PoisonError::into_inner);
        mocks.get_mut(&action)?.next()
    }

    fn set_signal(&self, name: &str, behaviours: Vec<(Behaviour, Option<u32>)>) {
        self.signals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), Mock { behaviours });
    }

    /// The next mocked arrival of signal `name`: its payload or a failure.
    fn next_signal(&self, name: &str) -> Option<Result<serde_json::Value, StepError>> {
        let mut signals = self.signals.lock().unwrap_or_else(PoisonError::into_inner);
        signals.get_mut(name)?.next().map(|b| match b {
            Behaviour::Returns(v) => Ok(v.to_json()),
            Behaviour::Fails(e) => Err(e),
        })
    }
}

impl Mock {
    fn next(&mut self) -> Option<Behaviour> {
        let mock = self;
        for (b, times) in &mut mock.behaviours {
            match times {
                None => return Some(b.clone()),
                Some(0) => continue,
                Some(n) => {
                    *n -= 1;
                    return Some(b.clone());
                }
            }
        }
        // Every counted behaviour is used up: the last one keeps answering.
        mock.behaviours.last().map(|(b, _)| b.clone())
    }
}

impl Connector for Mocks {
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, ctx: &'a CallContext) -> InvokeFuture<'a> {
        *self
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(call.action_ref)
            .or_insert(0) += 1;
        match self.next(call.action_ref) {
            Some(Behaviour::Returns(v)) => Box::pin(async move { Ok(v) }),
            Some(Behaviour::Fails(e)) => Box::pin(async move { Err(e) }),
            None if call.integration.builtin && call.action.native => {
                self.builtins.invoke(call, ctx)
            }
            None => {
                let name = call.qualified_name();
                Box::pin(async move {
                    Err(StepError::runtime(format!(
                        "`{name}` is not mocked in this test; add `mock {name} returns ...`"
                    )))
                })
            }
        }
    }
}

/// How one test went.
#[derive(Clone, Debug)]
pub struct TestReport {
    pub name: String,
    /// Why it failed; `None` when it passed.
    pub failure: Option<TestFailure>,
    /// Lines the runs printed with `console`.
    pub console: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct TestFailure {
    pub message: String,
    /// Where: the failing `expect`, or the test itself.
    pub span: Span,
}

/// Runs test `index` of `program` with a fresh store under `dir`.
pub async fn run_test(program: Arc<Program>, index: usize, dir: &Path) -> TestReport {
    let Some(test) = program.tests.get(index) else {
        return TestReport {
            name: String::new(),
            failure: Some(TestFailure {
                message: "no such test".into(),
                span: Span::default(),
            }),
            console: Vec::new(),
        };
    };
    let mocks = match Mocks::new() {
        Ok(m) => Arc::new(m),
        Err(e) => return failed(test, e.to_string(), test.spans.decl, Vec::new()),
    };
    let console = Arc::clone(&mocks.console);
    let result = execute_test(Arc::clone(&program), test, Arc::clone(&mocks), dir).await;
    let lines = console
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match result {
        Ok(()) => TestReport {
            name: test.name.clone(),
            failure: None,
            console: lines,
        },
        Err((message, span)) => failed(test, message, span, lines),
    }
}

fn failed(test: &Test, message: String, span: Span, console: Vec<String>) -> TestReport {
    TestReport {
        name: test.name.clone(),
        failure: Some(TestFailure { message, span }),
        console,
    }
}

async fn execute_test(
    program: Arc<Program>,
    test: &Test,
    mocks: Arc<Mocks>,
    dir: &Path,
) -> Result<(), (String, Span)> {
    let here = test.spans.decl;
    let io = |e: String| (e, here);
    let store = Store::open(&dir.join("test.db"), StoreOptions::default())
        .map_err(|e| io(e.to_string()))?;
    let signals = Arc::clone(&mocks);
    let config = EngineConfig {
        skip_delays: true,
        mocked_signals: Some(crate::signals::MockedSignals(Arc::new(move |name| {
            signals.next_signal(name)
        }))),
        ..EngineConfig::default()
    };
    let engine = Engine::new(
        store,
        Arc::clone(&mocks) as Arc<dyn Connector>,
        config,
        Arc::new(Silent),
    )
    .map_err(|e| io(e.to_string()))?;
    let loaded = engine
        .load((*program).clone())
        .await
        .map_err(|e| io(e.to_string()))?;
    let eval = flow_expr::Program::new(test.exprs.clone());
    let mut locals = eval.new_locals();
    let ctx = SystemContext;
    for (index, stmt) in test.stmts.iter().enumerate() {
        let span = test
            .spans
            .stmts
            .get(index)
            .copied()
            .unwrap_or(test.spans.decl);
        match stmt {
            TestStmt::Mock { .. } | TestStmt::MockSignal { .. } => {
                let behaviours = match stmt {
                    TestStmt::Mock { behaviours, .. } | TestStmt::MockSignal { behaviours, .. } => {
                        behaviours
                    }
                    _ => continue,
                };
                let mut list = Vec::new();
                for b in behaviours {
                    let behaviour = match &b.outcome {
                        MockOutcome::Returns(e) => Behaviour::Returns(
                            eval.eval(*e, &mut locals, &ctx)
                                .map_err(|e| io(format!("mock value: {e}")))?,
                        ),
                        MockOutcome::Fails { kind, message } => {
                            let text = match message {
                                Some(m) => {
                                    let v = eval
                                        .eval(*m, &mut locals, &ctx)
                                        .map_err(|e| io(format!("mock message: {e}")))?;
                                    v.as_str()
                                        .map(str::to_owned)
                                        .unwrap_or_else(|| v.to_json().to_string())
                                }
                                None => format!("mocked {} failure", kind.as_str()),
                            };
                            Behaviour::Fails(StepError::new(*kind, text))
                        }
                    };
                    list.push((behaviour, b.times));
                }
                match stmt {
                    TestStmt::Mock { action, .. } => mocks.set(*action, list),
                    TestStmt::MockSignal { name, .. } => mocks.set_signal(name, list),
                    _ => {}
                }
            }
            TestStmt::Let { local, value } => {
                let v = eval
                    .eval(*value, &mut locals, &ctx)
                    .map_err(|e| io(e.to_string()))?;
                if let Some(slot) = locals.get_mut(local.0 as usize) {
                    *slot = v;
                }
            }
            TestStmt::Run { workflow, args } => {
                let wf = program
                    .workflow(*workflow)
                    .ok_or_else(|| io("workflow missing".into()))?;
                let mut input = serde_json::Map::new();
                for (i, p) in wf.params.iter().enumerate() {
                    if let Some(e) = args.get(i).copied().flatten() {
                        let v = eval
                            .eval(e, &mut locals, &ctx)
                            .map_err(|e| io(format!("argument `{}`: {e}", p.name)))?;
                        input.insert(p.name.clone(), v.to_json());
                    }
                }
                let handle = engine
                    .submit(&loaded, &wf.name, serde_json::Value::Object(input))
                    .await
                    .map_err(|e| io(e.to_string()))?;
                let outcome = handle.outcome().await;
                let status = match outcome.status {
                    RunStatus::Completed => "completed",
                    RunStatus::Cancelled => "cancelled",
                    _ => "failed",
                };
                set(&mut locals, test.status, Value::string(status));
                let output_ty = test
                    .exprs
                    .local(test.output)
                    .map(|l| l.ty.clone())
                    .unwrap_or(flow_ir::types::Type::Dyn);
                let output = Value::from_json(&outcome.output, &output_ty)
                    .unwrap_or_else(|_| Value::from_json_dyn(&outcome.output));
                set(&mut locals, test.output, output);
                let error = outcome
                    .error
                    .map(|e| Value::string(e.to_string()))
                    .unwrap_or(Value::Null);
                set(&mut locals, test.error, error);
            }
            TestStmt::Expect { condition } => {
                for c in &test.calls {
                    set(
                        &mut locals,
                        c.local,
                        Value::Int(i64::from(mocks.calls(c.action))),
                    );
                }
                match eval.eval(*condition, &mut locals, &ctx) {
                    Ok(Value::Bool(true)) => {}
                    Ok(_) => {
                        let status = locals
                            .get(test.status.0 as usize)
                            .and_then(|v| v.as_str().map(str::to_owned));
                        let error = locals
                            .get(test.error.0 as usize)
                            .and_then(|v| v.as_str().map(str::to_owned));
                        let mut message = "expectation does not hold".to_owned();
                        if let Some(s) = status {
                            message.push_str(&format!(" (the run {s}"));
                            if let Some(e) = error {
                                message.push_str(&format!(": {e}"));
                            }
                            message.push(')');
                        }
                        return Err((message, span));
                    }
                    Err(e) => return Err((format!("expectation failed to evaluate: {e}"), span)),
                }
            }
        }
    }
    let _ = engine.shutdown().await;
    Ok(())
}

fn set(locals: &mut [Value], local: flow_ir::expr::LocalId, v: Value) {
    if let Some(slot) = locals.get_mut(local.0 as usize) {
        *slot = v;
    }
}
