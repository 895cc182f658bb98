//! The PostgreSQL store through a server restart: writes queued while the server is
//! down wait, the writer reconnects with backoff, and every write a caller was promised
//! lands exactly once. Its own test binary, since it restarts the shared test server.
//! Needs `FLOW_TEST_POSTGRES_URL`, `FLOW_TEST_POSTGRES_BIN` and `FLOW_TEST_POSTGRES_DATA`
//! (`scripts/services/postgres.sh`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flow_runtime::StoreOptions;
use flow_runtime::store::{Event, EventKind, NewRun, RunOrigin, RunStatus, Store, StoreLocation};

fn restart_server(fast: bool) {
    let bin = std::env::var("FLOW_TEST_POSTGRES_BIN").expect(
        "FLOW_TEST_POSTGRES_BIN (set by scripts/services/postgres.sh) names pg_ctl's directory",
    );
    let data = std::env::var("FLOW_TEST_POSTGRES_DATA").expect(
        "FLOW_TEST_POSTGRES_DATA (set by scripts/services/postgres.sh) names the data directory",
    );
    let pg_ctl = format!("{bin}/pg_ctl");
    let mode = if fast { "fast" } else { "immediate" };
    // A checkpoint first keeps the restart's recovery short on a server the suite has
    // filled (an immediate stop replays the log since the last one).
    let admin = std::env::var("FLOW_TEST_POSTGRES_URL").unwrap_or_default();
    let _ = std::process::Command::new("psql")
        .args([admin.as_str(), "-q", "-c", "CHECKPOINT"])
        .stdout(std::process::Stdio::null())
        .status();
    let args = ["-D", &data, "-w", "-t", "180", "-m", mode, "restart"];
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let status = if root {
        std::process::Command::new("runuser")
            .args(["-u", "postgres", "--", &pg_ctl])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
    } else {
        std::process::Command::new(&pg_ctl)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
    };
    assert!(status.unwrap().success(), "pg_ctl restart failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_a_server_restart_under_load() {
    let Ok(admin) = std::env::var("FLOW_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("FLOW_TEST_REQUIRE_POSTGRES").is_none(),
            "FLOW_TEST_REQUIRE_POSTGRES is set but the PostgreSQL server did not start"
        );
        eprintln!("skipped: FLOW_TEST_POSTGRES_URL is not set (scripts/test.sh starts a server)");
        return;
    };
    let name = format!("flow_outage_{:08x}", fastrand::u32(..));
    let (a, n) = (admin.clone(), name.clone());
    std::thread::spawn(move || {
        ::postgres::Client::connect(&a, ::postgres::NoTls)
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {n}"))
            .unwrap();
    })
    .join()
    .unwrap();
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let store = Store::open_at(&StoreLocation::Postgres(url), StoreOptions::default()).unwrap();

    const RUNS: usize = 100;
    const STEPS: u32 = 20;
    // Each run writes steps until the restarts are over (and at least STEPS), so the
    // server goes away while every run is writing.
    let restarted = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..RUNS {
        let store = store.clone();
        let restarted = restarted.clone();
        tasks.push(tokio::spawn(async move {
            let key = store
                .create_run(NewRun {
                    run_id: format!("r{i}"),
                    workflow: "wf".into(),
                    program: "p".into(),
                    parent: None,
                    parent_step: None,
                    owner_as: None,
                    priority: 1,
                    input: "{}".into(),
                    created_at: i as i64,
                    executor: Some("x".into()),
                    status: RunStatus::Running,
                    concurrency: None,
                    origin: RunOrigin::default(),
                })
                .await?;
            let mut seq = 0;
            while seq < STEPS || !restarted.load(Ordering::Acquire) {
                store
                    .append_durable(vec![Event {
                        run: key,
                        seq,
                        at: 0,
                        kind: EventKind::StepSucceeded,
                        step: Some(format!("s{seq}")),
                        attempt: Some(1),
                        data: Some("1".into()),
                    }])
                    .await?;
                seq += 1;
                tokio::time::sleep(Duration::from_millis(fastrand::u64(5..30))).await;
            }
            store
                .finish_run(key, RunStatus::Completed, Some("1".into()), None, 1)
                .await?;
            Ok::<_, flow_runtime::StoreError>((key, seq))
        }));
    }
    // Twice mid-load: a clean restart and a crash of the server.
    tokio::time::sleep(Duration::from_millis(150)).await;
    tokio::task::spawn_blocking(|| restart_server(true))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::task::spawn_blocking(|| restart_server(false))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    restarted.store(true, Ordering::Release);
    let mut written = Vec::new();
    for t in tasks {
        written.push(
            t.await
                .unwrap()
                .expect("every write is acknowledged after the restarts"),
        );
    }
    let mut keys: Vec<i64> = written.iter().map(|(k, _)| *k).collect();
    let (up, outages) = store.health();
    assert!(up, "the store is reachable again");
    assert!(outages >= 1, "the writer noticed the server going away");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), RUNS, "one run per creation");
    let runs = store
        .list_runs(&flow_runtime::store::RunFilter::default())
        .unwrap();
    assert_eq!(runs.len(), RUNS);
    assert!(runs.iter().all(|r| r.status == RunStatus::Completed));
    for (key, seq) in written {
        let events = store.events(key).unwrap();
        assert_eq!(
            events.len() as u32,
            seq,
            "run {key}: every acknowledged event, once"
        );
    }
}
