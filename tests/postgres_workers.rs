//! Several `flow serve --role worker` processes on one PostgreSQL store, against a
//! local HTTP server that records every call: a worker killed with SIGKILL mid-run, a
//! worker paused with SIGSTOP past its lease and then continued, and a rolling restart
//! of every worker under load. Every queued run completes; no step the journal recorded
//! as succeeded is called again; a repeated call carries the same idempotency key; a
//! paused worker's writes after another took its runs are refused.
//!
//! Needs `FLOW_TEST_POSTGRES_URL` (`scripts/services/postgres.sh`); without it each test
//! says it was skipped, unless `FLOW_TEST_REQUIRE_POSTGRES` is set.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flow_runtime::store::{EventKind, RunFilter, Store, StoreLocation};
use flow_runtime::{Engine, EngineConfig, Router, RunOrigin, RunStatus, Silent, StoreOptions};

mod postgres_support;
use postgres_support::database;

const FLOW: &str = env!("CARGO_BIN_EXE_flow");

/// Three steps in a row, each a call that takes the server `delay` ms to answer.
const WORKFLOW: &str = r#"
workflow job(base: string, n: int, delay: int) -> int {
  step a = http.get(url: "${base}/call/${n}/a?delay=${delay}", headers: {"Idempotency-Key": "job-${n}-a"})
  step b = http.get(url: "${base}/call/${n}/b?delay=${delay}&after=${a.status}", headers: {"Idempotency-Key": "job-${n}-b"})
  step c = http.get(url: "${base}/call/${n}/c?delay=${delay}&after=${b.status}", headers: {"Idempotency-Key": "job-${n}-c"})
  return n
}
"#;

/// One call the server received.
#[derive(Clone, Debug)]
struct Call {
    run: u32,
    step: String,
    key: Option<String>,
    /// Wall-clock Unix ms when the request arrived.
    at: i64,
}

#[derive(Clone, Default)]
struct Server {
    calls: Arc<Mutex<Vec<Call>>>,
    /// Requests being answered now, and the most at once.
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Server {
    fn start() -> (Server, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = Server::default();
        let s = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || s.handle(stream));
            }
        });
        (server, base)
    }

    fn handle(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        loop {
            let mut first = String::new();
            if reader.read_line(&mut first).unwrap_or(0) == 0 {
                return;
            }
            let mut key = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("idempotency-key")
                {
                    key = Some(value.trim().to_owned());
                }
            }
            let at = now_ms();
            let target = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            if let ["call", run, step] = parts[..] {
                self.calls.lock().unwrap().push(Call {
                    run: run.parse().unwrap_or(u32::MAX),
                    step: step.to_owned(),
                    key,
                    at,
                });
            }
            let delay = query
                .split('&')
                .find_map(|p| p.strip_prefix("delay="))
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(delay));
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            let body = r#"{"ok":true}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let mut out = &stream;
            if out.write_all(response.as_bytes()).is_err() {
                return;
            }
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// A worker process; killed when dropped.
struct Worker {
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    fn start(store: &str, name: &str, capacity: usize, grace: &str) -> Worker {
        let log =
            std::env::temp_dir().join(format!("flow-worker-{name}-{}.log", std::process::id()));
        let child = Command::new(FLOW)
            .args(["serve", "--role", "worker", "--grace", grace])
            .args(["--max-concurrent-runs", &capacity.to_string()])
            .env("FLOW_STORE", store)
            .env("FLOW_LOG", "info")
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("flow serve --role worker starts");
        Worker { child, log }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits for it to exit.
    fn stop(mut self) -> String {
        self.signal("TERM");
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Queues `runs` runs of the workflow through the library, as `flow run --enqueue` does.
fn enqueue(store: &str, base: &str, runs: u32, delay: u32) {
    enqueue_runs(store, WORKFLOW, "job", base, runs, delay);
}

/// Queues `runs` runs of `workflow` in `source`, each with `base`, `n` and `delay`.
fn enqueue_runs(store: &str, source: &str, workflow: &str, base: &str, runs: u32, delay: u32) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open_at(
            &StoreLocation::Postgres(store.to_owned()),
            StoreOptions::default(),
        )
        .unwrap();
        let engine = Engine::new(
            store,
            Arc::new(Router::new(
                flow_runtime::builtins::Builtins::new().unwrap(),
            )),
            EngineConfig::default(),
            Arc::new(Silent),
        )
        .unwrap();
        let (_, compilation) = flow_compiler::compile_source("job.flow", source);
        assert!(compilation.diagnostics.iter().all(|d| !d.is_error()));
        let loaded = engine.load(compilation.program).await.unwrap();
        for n in 0..runs {
            engine
                .enqueue(
                    &loaded,
                    workflow,
                    serde_json::json!({ "base": base, "n": n, "delay": delay }),
                    RunOrigin::default(),
                )
                .await
                .unwrap();
        }
        engine.shutdown().await.unwrap();
    });
}

fn open(store: &str) -> Store {
    Store::open_at(
        &StoreLocation::Postgres(store.to_owned()),
        StoreOptions::default(),
    )
    .unwrap()
}

/// Waits until `runs` runs completed; panics with the workers' logs after `limit`.
fn wait_for_completion(store: &Store, runs: usize, limit: Duration, workers: &[&Worker]) {
    let start = Instant::now();
    loop {
        let done = store
            .list_runs(&RunFilter {
                status: Some(RunStatus::Completed),
                ..RunFilter::default()
            })
            .unwrap()
            .len();
        if done == runs {
            return;
        }
        if start.elapsed() > limit {
            let logs: Vec<String> = workers.iter().map(|w| w.log()).collect();
            panic!(
                "{done} of {runs} runs completed after {limit:?}; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What every test checks at the end: each run completed once; every call of a step
/// arrived before the journal recorded the step's success; repeats carry the step's key.
/// Returns how many steps were called more than once.
fn check_journal_against_calls(store: &Store, server: &Server, runs: u32) -> usize {
    let all = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(all.len(), runs as usize);
    let mut succeeded: HashMap<(u32, String), i64> = HashMap::new();
    for run in &all {
        assert_eq!(run.status, RunStatus::Completed, "{}", run.run_id);
        let n = run.input["n"].as_u64().unwrap() as u32;
        let events = store.events(run.key).unwrap();
        let ends = events
            .iter()
            .filter(|e| e.kind == EventKind::RunCompleted)
            .count();
        assert_eq!(ends, 1, "run {n} recorded its end once");
        for e in events.iter().filter(|e| e.kind == EventKind::StepSucceeded) {
            let step = e.step.clone().unwrap();
            assert!(
                succeeded.insert((n, step.clone()), e.at).is_none(),
                "step {step} of run {n} recorded as succeeded twice"
            );
        }
    }
    let mut by_step: HashMap<(u32, String), Vec<Call>> = HashMap::new();
    for call in server.calls() {
        by_step
            .entry((call.run, call.step.clone()))
            .or_default()
            .push(call);
    }
    let mut repeated = 0;
    for ((n, step), calls) in &by_step {
        let done = succeeded
            .get(&(*n, step.clone()))
            .unwrap_or_else(|| panic!("step {step} of run {n} was called but never succeeded"));
        for call in calls {
            assert!(
                call.at <= *done,
                "step {step} of run {n} was called at {} after its success was journaled at {done}",
                call.at
            );
            assert_eq!(
                call.key.as_deref(),
                Some(format!("job-{n}-{step}").as_str())
            );
        }
        if calls.len() > 1 {
            repeated += 1;
        }
    }
    assert_eq!(by_step.len(), runs as usize * 3, "every step was called");
    repeated
}

fn resumed_runs(store: &Store) -> usize {
    store
        .list_runs(&RunFilter::default())
        .unwrap()
        .iter()
        .filter(|r| {
            store
                .events(r.key)
                .unwrap()
                .iter()
                .any(|e| e.kind == EventKind::RunResumed)
        })
        .count()
}

#[test]
fn a_killed_worker_s_runs_are_finished_by_the_others_without_repeating_succeeded_steps() {
    let Some(url) = database("kill") else { return };
    let (server, base) = Server::start();
    const RUNS: u32 = 200;
    const CAPACITY: usize = 20;
    enqueue(&url, &base, RUNS, 120);
    let victim = Worker::start(&url, "kill-0", CAPACITY, "1s");
    let others = [
        Worker::start(&url, "kill-1", CAPACITY, "1s"),
        Worker::start(&url, "kill-2", CAPACITY, "1s"),
    ];
    // Well into the runs: every worker holds a full load.
    let store = open(&url);
    let start = Instant::now();
    while server.calls().len() < 150 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.signal("KILL");
    wait_for_completion(
        &store,
        RUNS as usize,
        Duration::from_secs(90),
        &[&others[0], &others[1]],
    );
    let repeated = check_journal_against_calls(&store, &server, RUNS);
    // Only calls in flight at the kill repeat: at most one per run the victim held.
    assert!(repeated <= CAPACITY, "{repeated} steps called twice");
    assert!(
        resumed_runs(&store) > 0,
        "the victim held runs that others resumed"
    );
    drop(victim);
    for w in others {
        w.stop();
    }
}

#[test]
fn a_worker_paused_past_its_lease_cannot_write_over_the_runs_taken_from_it() {
    let Some(url) = database("pause") else { return };
    let (server, base) = Server::start();
    const RUNS: u32 = 20;
    // Slow calls: the paused worker has calls in flight when it is stopped.
    enqueue(&url, &base, RUNS, 1500);
    let paused = Worker::start(&url, "pause-0", 10, "1s");
    let store = open(&url);
    let start = Instant::now();
    while server.calls().len() < 10 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    paused.signal("STOP");
    let other = Worker::start(&url, "pause-1", 20, "1s");
    // The other worker takes the paused one's runs once its heartbeat is stale (10 s),
    // and finishes every run.
    wait_for_completion(&store, RUNS as usize, Duration::from_secs(90), &[&other]);
    paused.signal("CONT");
    // The paused worker wakes with answers to calls it made before the pause; its
    // journal writes for them are refused.
    std::thread::sleep(Duration::from_secs(3));
    check_journal_against_calls(&store, &server, RUNS);
    let log = paused.stop();
    assert!(
        log.contains("belongs to another executor"),
        "the paused worker was told its writes were refused:\n{log}"
    );
    let runs = store.list_runs(&RunFilter::default()).unwrap();
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
    other.stop();
}

#[test]
fn a_rolling_restart_of_every_worker_strands_nothing() {
    let Some(url) = database("roll") else { return };
    let (server, base) = Server::start();
    const RUNS: u32 = 150;
    enqueue(&url, &base, RUNS, 100);
    let mut workers: Vec<Worker> = (0..3)
        .map(|i| Worker::start(&url, &format!("roll-{i}"), 10, "200ms"))
        .collect();
    let store = open(&url);
    // Replace each worker in turn: a stopped worker gives its runs back at once.
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let old = workers.remove(0);
        old.stop();
        workers.push(Worker::start(
            &url,
            &format!("roll-{}", round + 3),
            10,
            "200ms",
        ));
    }
    let refs: Vec<&Worker> = workers.iter().collect();
    wait_for_completion(&store, RUNS as usize, Duration::from_secs(90), &refs);
    check_journal_against_calls(&store, &server, RUNS);
    for w in workers {
        w.stop();
    }
}

/// A workflow allowing two runs at once, each one slow call.
const LIMITED: &str = r#"
workflow limited(base: string, n: int, delay: int) -> int {
  settings {
    concurrency = 2
  }
  step a = http.get(url: "${base}/limited/${n}?delay=${delay}")
  return n
}
"#;

#[test]
fn a_workflow_s_concurrency_holds_across_all_workers() {
    let Some(url) = database("limit") else { return };
    let (server, base) = Server::start();
    const RUNS: u32 = 12;
    enqueue_runs(&url, LIMITED, "limited", &base, RUNS, 300);
    let workers: Vec<Worker> = (0..3)
        .map(|i| Worker::start(&url, &format!("limit-{i}"), 10, "1s"))
        .collect();
    let store = open(&url);
    let refs: Vec<&Worker> = workers.iter().collect();
    wait_for_completion(&store, RUNS as usize, Duration::from_secs(90), &refs);
    let most = server.most_in_flight.load(Ordering::SeqCst);
    assert!(
        most <= 2,
        "{most} runs of a workflow with concurrency 2 called at once"
    );
    assert_eq!(most, 2, "two at once were allowed");
    for w in workers {
        w.stop();
    }
}
