//! `flow serve` on a PostgreSQL store, as several processes sharing it: three servers
//! with a schedule that ticks every second fire exactly one run per tick between them
//! (a unique key per tick, no leader), for over a minute; a run started through one
//! server's API is seen through another's; the same webhook delivery sent to two
//! servers starts one run.
//!
//! Needs `FLOW_TEST_POSTGRES_URL` (`scripts/services/postgres.sh`); without it the test
//! says it was skipped, unless `FLOW_TEST_REQUIRE_POSTGRES` is set.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flow_runtime::StoreOptions;
use flow_runtime::store::{RunFilter, Store, StoreLocation};

mod postgres_support;
use postgres_support::database;

const FLOW: &str = env!("CARGO_BIN_EXE_flow");

const WORKFLOWS: &str = r#"
workflow tick -> int {
  on schedule("* * * * * *", tz: "UTC")
  return 1
}

workflow double(n: int) -> int {
  return n * 2
}
"#;

/// A `flow serve` process; killed when dropped.
struct Server {
    child: Child,
    /// The API's base URL (empty without the `api` role).
    address: String,
}

impl Server {
    fn start(store: &str, dir: &std::path::Path) -> Server {
        Server::with_roles(store, dir, "api,scheduler,worker")
    }

    fn with_roles(store: &str, dir: &std::path::Path, roles: &str) -> Server {
        let mut child = Command::new(FLOW)
            .args(["serve", "app.flow", "--listen", "127.0.0.1:0"])
            .args(["--grace", "1s", "--role", roles])
            .env("FLOW_STORE", store)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("flow serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let start = Instant::now();
        let address = loop {
            let line = lines
                .next()
                .expect("flow serve says where it listens")
                .unwrap();
            if let Some(a) = line.strip_prefix("listening on ") {
                break a.trim().to_owned();
            }
            if line.starts_with("serving no API") || line.starts_with("worker ") {
                break String::new();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "flow serve did not start"
            );
        };
        // Keep reading its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, address }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// A directory with the workflows, and an admin API key made on the store.
fn sources_and_key(url: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.flow"), WORKFLOWS).unwrap();
    let key = Command::new(FLOW)
        .args(["keys", "create", "--name", "test", "--scope", "admin"])
        .env("FLOW_STORE", url)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        key.status.success(),
        "{}",
        String::from_utf8_lossy(&key.stderr)
    );
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    (dir, key)
}

fn post(url: &str, key: &str, body: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut command = Command::new("curl");
    command.args(["-s", "-w", "\n%{http_code}", "-X", "POST", url, "-d", body]);
    command.args(["-H", &format!("Authorization: Bearer {key}")]);
    for (name, value) in headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    let out = command.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
    (
        code.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn three_servers_fire_one_run_per_tick_and_share_runs() {
    let Some(url) = database("serve") else { return };
    let (dir, key) = sources_and_key(&url);

    let servers: Vec<Server> = (0..3).map(|_| Server::start(&url, dir.path())).collect();
    let started = Instant::now();

    // A run through one server's API is another server's to show.
    let (status, run) = post(
        &format!(
            "{}/api/v1/workflows/double/runs?wait=10s",
            servers[0].address
        ),
        &key,
        r#"{"n": 21}"#,
        &[("Idempotency-Key", "double-1")],
    );
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["output"], serde_json::json!(42));
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    let again = post(
        &format!(
            "{}/api/v1/workflows/double/runs?wait=10s",
            servers[1].address
        ),
        &key,
        r#"{"n": 21}"#,
        &[("Idempotency-Key", "double-1")],
    );
    assert_eq!(
        again.1["run_id"].as_str(),
        Some(run_id.as_str()),
        "one run per key across servers"
    );

    std::thread::sleep(Duration::from_secs(61).saturating_sub(started.elapsed()));
    drop(servers);

    let store = Store::open_at(&StoreLocation::Postgres(url), StoreOptions::default()).unwrap();
    let ticks = store
        .list_runs(&RunFilter {
            workflow: Some("tick".into()),
            ..RunFilter::default()
        })
        .unwrap();
    let instants: Vec<String> = ticks
        .iter()
        .map(|r| {
            r.origin.event.as_ref().unwrap()["scheduled_at"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let distinct: BTreeSet<&String> = instants.iter().collect();
    assert_eq!(distinct.len(), instants.len(), "no tick fired twice");
    assert!(
        instants.len() >= 55,
        "about one run per second for 61 s, got {}",
        instants.len()
    );
    let doubles = store
        .list_runs(&RunFilter {
            workflow: Some("double".into()),
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(doubles.len(), 1);
}

#[test]
fn api_and_scheduler_processes_without_workers_queue_their_runs_for_a_worker() {
    let Some(url) = database("roles") else { return };
    let (dir, key) = sources_and_key(&url);
    let api = Server::with_roles(&url, dir.path(), "api");
    let _scheduler = Server::with_roles(&url, dir.path(), "scheduler");
    let worker = Server::with_roles(&url, dir.path(), "worker");
    assert!(!api.address.is_empty());

    // The API process queues the run; the worker executes it; the API answers with its end.
    let (status, run) = post(
        &format!("{}/api/v1/workflows/double/runs?wait=20s", api.address),
        &key,
        r#"{"n": 4}"#,
        &[],
    );
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["status"], serde_json::json!("completed"), "{run}");
    assert_eq!(run["output"], serde_json::json!(8));

    // The scheduler's ticks are queued and executed by the worker too.
    std::thread::sleep(Duration::from_secs(4));
    let store = Store::open_at(&StoreLocation::Postgres(url), StoreOptions::default()).unwrap();
    let ticks = store
        .list_runs(&RunFilter {
            workflow: Some("tick".into()),
            status: Some(flow_runtime::RunStatus::Completed),
            ..RunFilter::default()
        })
        .unwrap();
    assert!(
        ticks.len() >= 2,
        "ticks executed by the worker: {}",
        ticks.len()
    );
    drop(worker);
}
