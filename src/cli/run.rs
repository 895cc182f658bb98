//! `flow run` and `flow resume`: execute workflows durably, showing live progress, and
//! finish runs that a stopped process left unfinished.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{Args, ValueEnum};
use flow_grammar::SourceMap;
use flow_ir::artefact::Artefact;
use flow_ir::program::Program;
use flow_runtime::builtins::Builtins;
use flow_runtime::{
    Durability, Engine, EngineConfig, Observer, Progress, Router, RunHandle, RunStatus, Store,
    StoreLocation, StoreOptions, format_duration,
};
use miette::{IntoDiagnostic, WrapErr, miette};

use super::EXIT_FAILURE;
use super::output::{ColorChoice, Format, plural, print_diagnostics};
use super::sources::compile_file;

/// Where runs are journaled unless `--store` says otherwise.
pub const DEFAULT_STORE: &str = ".flow/flow.db";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Every step result reaches the disk (fsync) before a dependent step starts.
    Full,
    /// Every step result reaches the operating system before a dependent starts:
    /// survives the flow process being killed, not a power loss.
    Process,
}

/// Options shared by the commands that open a store.
#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The journal: an SQLite file (created when missing), or a PostgreSQL database
    /// given as `postgres://USER[:PASSWORD]@HOST:PORT/DB` (its tables are created on
    /// first use; see docs/postgres.md).
    #[arg(
        long,
        value_name = "PATH|URL",
        default_value = DEFAULT_STORE,
        env = "FLOW_STORE",
        value_parser = parse_store,
        global = true
    )]
    pub store: StoreLocation,
}

fn parse_store(text: &str) -> Result<StoreLocation, String> {
    Ok(StoreLocation::parse(text))
}

/// Options of the commands that execute runs.
#[derive(Args, Clone)]
pub struct ExecArgs {
    /// Do not show step progress (the output JSON is still printed).
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// How durable each step's result is before dependents start.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    pub durability: DurabilityArg,

    /// Most runs executing at once in this process (runs parked on `wait` do not count).
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub max_concurrent_runs: usize,

    /// Most step calls in flight at once within one run.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_parallel_steps: usize,
}

#[derive(Args)]
pub struct RunArgs {
    /// A `.flow` file (compiled first) or a `.flowc` artefact. With `--server`, optional:
    /// the run is of the server's deployed workflow named by `--workflow` (or FILE's stem).
    #[arg(value_name = "FILE", required_unless_present = "server")]
    pub file: Option<PathBuf>,

    /// The workflow to run. Default: the one named like the file, or the file's only workflow.
    #[arg(long, short = 'w', value_name = "NAME")]
    pub workflow: Option<String>,

    /// The workflow's arguments as a JSON object, or `@path` to read them from a file.
    #[arg(long, short = 'i', value_name = "JSON|@FILE")]
    pub input: Option<String>,

    /// Run with the connections of this owner (a user or team).
    #[arg(long = "as", value_name = "OWNER")]
    pub owner: Option<String>,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub exec: ExecArgs,

    /// Do not run it here: queue the run in the store for `flow serve --role worker`
    /// processes (on any machine sharing the store), print its id and exit.
    #[arg(long, conflicts_with = "server")]
    pub enqueue: bool,

    /// With `--server`, start the run on a running `flow serve` and wait for its end.
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

#[derive(Args)]
pub struct ResumeArgs {
    /// Runs to resume; default: every unfinished run whose process stopped.
    #[arg(value_name = "RUN_ID")]
    pub runs: Vec<String>,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub exec: ExecArgs,
}

pub fn open_store(location: &StoreLocation, durability: DurabilityArg) -> miette::Result<Store> {
    let durability = match durability {
        DurabilityArg::Full => Durability::Full,
        DurabilityArg::Process => Durability::Process,
    };
    Store::open_at(
        location,
        StoreOptions {
            durability,
            ..StoreOptions::default()
        },
    )
    .map_err(|e| miette!("{e}"))
}

fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
        .wrap_err("cannot start the runtime")
}

/// Loads a program from a `.flow` (compiling it, printing diagnostics) or `.flowc` file,
/// as the `.flowc` bytes the store keeps and their hash: a `.flowc` file is checked and
/// kept as it is, a source is encoded once. `Ok(None)`: the file has errors (already
/// reported).
pub fn load_program(file: &Path, color: ColorChoice) -> miette::Result<Option<Artefact>> {
    if file.extension().is_some_and(|e| e == "flowc") {
        let bytes = std::fs::read(file)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot read `{}`", file.display()))?;
        return Artefact::decode(bytes).map(Some).map_err(|e| {
            let code = flow_compiler::artefact::error_code(&e);
            miette!("error[{code}]: {}: {e}", file.display())
        });
    }
    let mut sources = SourceMap::new();
    let (_, compiled) = compile_file(&mut sources, file)?;
    let compilation = match compiled {
        Ok(c) => c,
        Err(d) => {
            print_diagnostics(&sources, &[d], Format::Human, color);
            return Ok(None);
        }
    };
    let errors: Vec<_> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .cloned()
        .collect();
    if !errors.is_empty() {
        let tally = print_diagnostics(&sources, &errors, Format::Human, color);
        eprintln!("not run: {}", plural(tally.errors, "error"));
        return Ok(None);
    }
    Artefact::encode(compilation.program)
        .map(Some)
        .map_err(|e| miette!("{e}"))
}

/// The workflow `flow run FILE` runs when `--workflow` is not given.
pub fn default_workflow(program: &Program, file: &Path) -> miette::Result<String> {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if program.workflows.iter().any(|w| w.name == stem) {
        return Ok(stem.to_owned());
    }
    let local: Vec<&str> = program
        .workflows
        .iter()
        .map(|w| w.name.as_str())
        .filter(|n| !n.contains('.'))
        .collect();
    match local.as_slice() {
        [only] => Ok((*only).to_owned()),
        [] => Err(miette!("`{}` has no workflow to run", file.display())),
        many => Err(miette!(
            "`{}` has several workflows; choose one with --workflow: {}",
            file.display(),
            many.join(", ")
        )),
    }
}

fn parse_input(input: Option<&str>) -> miette::Result<serde_json::Value> {
    let text = match input {
        None => return Ok(serde_json::json!({})),
        Some(s) => match s.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot read `{path}`"))?,
            None => s.to_owned(),
        },
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .into_diagnostic()
        .wrap_err("--input is not valid JSON")?;
    if !value.is_object() {
        return Err(miette!(
            "--input must be a JSON object of the workflow's arguments"
        ));
    }
    Ok(value)
}

impl ExecArgs {
    /// The engine's settings these flags give, running as `owner`.
    pub fn engine_config(&self, owner: Option<String>) -> EngineConfig {
        EngineConfig {
            max_concurrent_runs: self.max_concurrent_runs,
            max_parallel_steps: self.max_parallel_steps,
            owner,
            ..EngineConfig::default()
        }
    }
}

pub(super) fn engine(
    store: Store,
    exec: &ExecArgs,
    owner: Option<String>,
    observer: Arc<dyn Observer>,
    phases: &mut Phases,
) -> miette::Result<Engine> {
    let builtins = Builtins::new().map_err(|e| miette!("{e}"))?;
    phases.mark("builtins");
    let config = exec.engine_config(owner);
    let router = flow_connectors::install(Router::new(builtins), &store);
    phases.mark("connectors");
    let engine = Engine::new(store, Arc::new(router), config, observer).map_err(|e| miette!("{e}"));
    phases.mark("lease");
    engine
}

/// `flow run --enqueue`: stores the program, queues the run and prints its id.
async fn enqueue(
    engine: Engine,
    artefact: flow_ir::artefact::Artefact,
    workflow: &str,
    input: serde_json::Value,
) -> miette::Result<ExitCode> {
    let loaded = engine
        .load_artefact(artefact)
        .await
        .map_err(|e| miette!("{e}"))?;
    let run_id = engine
        .enqueue(&loaded, workflow, input, flow_runtime::RunOrigin::default())
        .await
        .map_err(|e| miette!("{e}"))?;
    let _ = engine.shutdown().await;
    println!("{run_id}");
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: RunArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let mut phases = Phases::from_env();
    if args.remote.server.is_some() {
        let workflow = args
            .workflow
            .clone()
            .or_else(|| {
                args.file
                    .as_ref()
                    .and_then(|f| f.file_stem())
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .ok_or_else(|| miette!("which workflow? pass --workflow NAME"))?;
        let input = parse_input(args.input.as_deref())?;
        return super::remote::run_remote(args.remote, &workflow, &input);
    }
    let Some(file) = args.file.clone() else {
        return Err(miette!("which program? pass a .flow or .flowc FILE"));
    };
    let Some(artefact) = load_program(&file, color)? else {
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    let workflow = match &args.workflow {
        Some(w) => w.clone(),
        None => default_workflow(&artefact.program, &file)?,
    };
    let input = parse_input(args.input.as_deref())?;
    phases.mark("program");
    let store = open_store(&args.store.store, args.exec.durability)?;
    phases.mark("store");
    let display = Arc::new(Display::new(args.exec.quiet, color));
    let engine = engine(
        store,
        &args.exec,
        args.owner.clone(),
        display.clone(),
        &mut phases,
    )?;
    let rt = runtime()?;
    phases.mark("tokio");
    if args.enqueue {
        return rt.block_on(enqueue(engine, artefact, &workflow, input));
    }
    let marks = &mut phases;
    let code = rt.block_on(async move {
        let phases = marks;
        let recovered = engine.recover().await.map_err(|e| miette!("{e}"))?;
        phases.mark("recover");
        if !recovered.is_empty() {
            display.note(&format!(
                "resuming {} left unfinished by a stopped process",
                plural(recovered.len(), "run")
            ));
        }
        let loaded = engine
            .load_artefact(artefact)
            .await
            .map_err(|e| miette!("{e}"))?;
        phases.mark("save");
        let handle = match engine.submit(&loaded, &workflow, input).await {
            Ok(h) => h,
            Err(e) => return Err(miette!("{e}")),
        };
        phases.mark("submit");
        display.note(&format!("run {} of {workflow}", handle.run_id));
        let outcome = tokio::select! {
            o = handle.outcome() => o,
            _ = tokio::signal::ctrl_c() => {
                display.finish();
                let _ = engine.store().flush().await;
                eprintln!("interrupted; the run is journaled: finish it with `flow resume`");
                return Ok(ExitCode::from(130));
            }
        };
        phases.mark("run");
        finish_recovered(&engine, recovered).await;
        display.finish();
        let _ = engine.shutdown().await;
        phases.mark("shutdown");
        print_outcome(
            &outcome.output,
            outcome.status,
            outcome.error.as_ref(),
            &outcome.run_id,
        )
    });
    phases.mark("output");
    drop(rt);
    phases.mark("teardown");
    phases.report();
    code
}

/// With `FLOW_TIMINGS` set, `flow run` writes how long each phase of its start and end
/// took to stderr (how docs/performance.md's start-up breakdown is measured).
pub(super) struct Phases {
    last: Option<std::time::Instant>,
    marks: Vec<(&'static str, Duration)>,
}

impl Phases {
    pub(super) fn from_env() -> Phases {
        Phases {
            last: std::env::var_os("FLOW_TIMINGS").map(|_| std::time::Instant::now()),
            marks: Vec::new(),
        }
    }

    fn mark(&mut self, phase: &'static str) {
        if let Some(last) = self.last.as_mut() {
            let now = std::time::Instant::now();
            self.marks.push((phase, now - *last));
            *last = now;
        }
    }

    fn report(&self) {
        if self.last.is_some() {
            let parts: Vec<String> = self
                .marks
                .iter()
                .map(|(p, d)| format!("{p}={}us", d.as_micros()))
                .collect();
            eprintln!("timings: {}", parts.join(" "));
        }
    }
}

/// A resumed run parked on a timer firing later than this is left for `flow resume`.
const PARK_LIMIT_MS: i64 = 60_000;

/// Waits for resumed runs to finish, except those parked on a timer firing more than a
/// minute from now: they are left for `flow resume` (their journal holds everything
/// they did).
async fn finish_recovered(engine: &Engine, mut handles: Vec<RunHandle>) {
    while !handles.is_empty() {
        let mut keep = Vec::new();
        for h in handles {
            if h.is_finished() {
                let _ = h.outcome().await;
                continue;
            }
            let store = engine.store().clone();
            let key = h.key;
            let row = tokio::task::spawn_blocking(move || store.run_by_key(key))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let parked_long = row.is_some_and(|r| {
                r.status == RunStatus::Waiting
                    && r.wake_at
                        .is_some_and(|at| at - super::runs::now_ms() > PARK_LIMIT_MS)
            });
            if parked_long {
                h.abort();
            } else {
                keep.push(h);
            }
        }
        handles = keep;
        if !handles.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn print_outcome(
    output: &serde_json::Value,
    status: RunStatus,
    error: Option<&flow_runtime::StepError>,
    run_id: &str,
) -> miette::Result<ExitCode> {
    match status {
        RunStatus::Completed => {
            println!(
                "{}",
                serde_json::to_string_pretty(output).into_diagnostic()?
            );
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            let message = error
                .map(ToString::to_string)
                .unwrap_or_else(|| "failed".into());
            eprintln!("run {run_id} {}: {message}", status.as_str());
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

pub fn resume(args: ResumeArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let store = open_store(&args.store.store, args.exec.durability)?;
    let display = Arc::new(Display::new(args.exec.quiet, color));
    let engine = engine(
        store,
        &args.exec,
        None,
        display.clone(),
        &mut Phases::from_env(),
    )?;
    let rt = runtime()?;
    rt.block_on(async move {
        let handles = if args.runs.is_empty() {
            engine.recover().await.map_err(|e| miette!("{e}"))?
        } else {
            let mut hs = Vec::new();
            for id in &args.runs {
                hs.push(engine.resume(id).await.map_err(|e| miette!("{e}"))?);
            }
            hs
        };
        if handles.is_empty() {
            display.finish();
            eprintln!("nothing to resume: every run in {} has finished or is running", engine.store().location());
            return Ok(ExitCode::SUCCESS);
        }
        display.note(&format!("resuming {}", plural(handles.len(), "run")));
        let mut failed = 0usize;
        let mut outcomes = Vec::new();
        for h in handles {
            let o = h.outcome().await;
            if o.status != RunStatus::Completed {
                failed += 1;
            }
            outcomes.push(o);
        }
        display.finish();
        let _ = engine.shutdown().await;
        for o in &outcomes {
            let line = serde_json::json!({ "run": o.run_id, "status": o.status.as_str(), "output": o.output, "error": o.error });
            println!("{line}");
        }
        Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(EXIT_FAILURE) })
    })
}

/// Live progress: a spinner with the steps in flight on a terminal, plain lines
/// otherwise; nothing with `--quiet`. Always on stderr, so stdout stays the output.
struct Display {
    quiet: bool,
    color: bool,
    bar: Option<indicatif::ProgressBar>,
    running: Mutex<Vec<String>>,
}

impl Display {
    fn new(quiet: bool, color: ColorChoice) -> Display {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(100));
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Display {
            quiet,
            color: color.stderr(),
            bar,
            running: Mutex::new(Vec::new()),
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn note(&self, text: &str) {
        self.line(text);
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn refresh(&self) {
        if let Some(bar) = &self.bar {
            let running = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            bar.set_message(if running.is_empty() {
                String::new()
            } else {
                format!("running {}", running.join(", "))
            });
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Display {
    fn progress(&self, run_id: &str, workflow: &str, child: bool, event: &Progress) {
        if self.quiet {
            return;
        }
        let prefix = if child {
            format!("  {workflow}: ")
        } else {
            String::new()
        };
        match event {
            Progress::RunStarted { resumed: true } => {
                self.line(&format!("{prefix}resumed run {run_id} of {workflow}"))
            }
            Progress::StepStarted { step, attempt } => {
                self.running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(step.clone());
                if self.bar.is_none() {
                    let retry = if *attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    };
                    self.line(&format!("{prefix}▸ {step}{retry}"));
                }
                self.refresh();
            }
            Progress::StepSucceeded {
                step,
                elapsed,
                replayed,
                ..
            } => {
                self.running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .retain(|s| s != step);
                let detail = if *replayed {
                    "done before the restart".to_owned()
                } else {
                    format_duration(*elapsed)
                };
                self.line(&format!(
                    "{prefix}{} {step} ({detail})",
                    self.paint("32", "✓")
                ));
                self.refresh();
            }
            Progress::StepFailed {
                step,
                attempt,
                error,
                last,
                ..
            } => {
                self.running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .retain(|s| s != step);
                let then = if *last { "" } else { ", will retry" };
                self.line(&format!(
                    "{prefix}{} {step} attempt {attempt}: {}: {}{then}",
                    self.paint("31", "✗"),
                    error.kind.as_str(),
                    error.message
                ));
                self.refresh();
            }
            Progress::Waiting { key, until_ms } => {
                self.line(&format!(
                    "{prefix}⏸ {key}: waiting {}",
                    format_duration(time_left(*until_ms))
                ));
            }
            Progress::WaitingForSignal {
                key,
                signal,
                until_ms,
            } => {
                let limit = at_most(*until_ms);
                self.line(&format!(
                    "{prefix}⏸ {key}: waiting for signal `{signal}`{limit}; send it with `flow signal {run_id} {signal} --data JSON`"
                ));
            }
            Progress::WaitingForEvent {
                key,
                event,
                until_ms,
            } => {
                let limit = at_most(*until_ms);
                self.line(&format!(
                    "{prefix}⏸ {key}: waiting for a `{event}` event{limit}; `flow serve` receives it"
                ));
            }
            Progress::Log { message } => self.line(&format!("{prefix}log: {message}")),
            Progress::RunFinished { status } if child => {
                self.line(&format!("{prefix}child run {run_id} {}", status.as_str()))
            }
            Progress::RunStarted { .. } | Progress::RunFinished { .. } => {}
        }
    }
}

/// ` (at most 5m)` for a wait with a deadline; nothing without one.
fn at_most(until_ms: Option<i64>) -> String {
    until_ms
        .map(|at| format!(" (at most {})", format_duration(time_left(at))))
        .unwrap_or_default()
}

/// The time from now until `at` (Unix milliseconds); zero once it has passed.
fn time_left(at: i64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Duration::from_millis(u64::try_from(at - now).unwrap_or(0))
}
