//! Shared helpers: compile Flow source, open an engine on a fresh store, collect progress.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use flow_ir::program::Program;
use flow_runtime::builtins::{Builtins, ConsoleSink};
use flow_runtime::{
    Connector, Engine, EngineConfig, Observer, Progress, Router, RunOutcome, Store, StoreOptions,
};

/// Compiles a single file's text; panics with the diagnostics when it has errors.
pub fn compile(src: &str) -> Program {
    let (_, compilation) = flow_compiler::compile_source("test.flow", src);
    let errors: Vec<String> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert!(
        errors.is_empty(),
        "the test program does not compile:\n{}",
        errors.join("\n")
    );
    compilation.program
}

#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<String>>);

impl Observer for Recorder {
    fn progress(&self, _run: &str, _wf: &str, _child: bool, event: &Progress) {
        let line = match event {
            Progress::StepStarted { step, attempt } => format!("start {step} #{attempt}"),
            Progress::StepSucceeded {
                step,
                replayed: true,
                ..
            } => format!("replay {step}"),
            Progress::StepSucceeded { step, .. } => format!("ok {step}"),
            Progress::StepFailed {
                step,
                attempt,
                error,
                last,
                ..
            } => {
                format!(
                    "fail {step} #{attempt} {}{}",
                    error.kind.as_str(),
                    if *last { " last" } else { "" }
                )
            }
            Progress::Waiting { key, .. } => format!("wait {key}"),
            Progress::Log { message } => format!("log {message}"),
            _ => return,
        };
        self.0.lock().unwrap().push(line);
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub console: Arc<Mutex<Vec<String>>>,
    pub recorder: Arc<Recorder>,
}

pub fn harness() -> Harness {
    harness_with(None, EngineConfig::default())
}

pub fn harness_with(connector: Option<Arc<dyn Connector>>, config: EngineConfig) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("flow.db"), StoreOptions::default()).unwrap();
    let console = Arc::new(Mutex::new(Vec::new()));
    let connector = connector.unwrap_or_else(|| {
        let builtins = Builtins::new()
            .unwrap()
            .with_console(ConsoleSink::Buffer(Arc::clone(&console)));
        Arc::new(Router::new(builtins))
    });
    let recorder = Arc::new(Recorder::default());
    let engine = Engine::new(store, connector, config, recorder.clone()).unwrap();
    Harness {
        dir,
        engine,
        console,
        recorder,
    }
}

impl Harness {
    pub async fn run(&self, src: &str, workflow: &str, input: serde_json::Value) -> RunOutcome {
        let loaded = self.engine.load(compile(src)).await.unwrap();
        let handle = self.engine.submit(&loaded, workflow, input).await.unwrap();
        handle.outcome().await
    }

    pub fn trace(&self) -> Vec<String> {
        self.recorder.0.lock().unwrap().clone()
    }
}

/// A run for the store's tests: workflow `wf`, created at 1000, running on `executor`.
pub fn new_run(id: &str, executor: &str) -> flow_runtime::store::NewRun {
    flow_runtime::store::NewRun {
        run_id: id.into(),
        workflow: "wf".into(),
        program: "hash".into(),
        parent: None,
        parent_step: None,
        owner_as: None,
        priority: 1,
        input: "{\"a\":1}".into(),
        created_at: 1000,
        executor: Some(executor.into()),
        status: flow_runtime::RunStatus::Running,
        concurrency: None,
        origin: flow_runtime::RunOrigin::default(),
    }
}

/// An event of run `run` at `seq` for step `step`, with data `42`.
pub fn event(
    run: i64,
    seq: u32,
    kind: flow_runtime::store::EventKind,
    step: &str,
) -> flow_runtime::store::Event {
    flow_runtime::store::Event {
        run,
        seq,
        at: 1000 + i64::from(seq),
        kind,
        step: Some(step.into()),
        attempt: Some(1),
        data: Some("42".into()),
    }
}
