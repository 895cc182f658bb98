//! What only the SQLite store has, against real files: bad or busy files give clear
//! errors, old schemas are upgraded, the write-ahead log stays bounded. The contract
//! both backends keep is in `store_conformance.rs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use flow_ir::artefact::Artefact;
use flow_runtime::builtins::Builtins;
use flow_runtime::store::{EventKind, RunOrigin, RunStatus, Store, StoreError, StoreOptions};
use flow_runtime::{Engine, EngineConfig, Router, Silent};

use common::{event, new_run};

#[tokio::test]
async fn a_file_that_is_not_a_database_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = Store::open(&path, StoreOptions::default())
        .err()
        .expect("garbage must not open");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("flow.db") && text.contains("not a Flow store or is corrupt"),
        "{text}"
    );
}

#[tokio::test]
async fn a_store_locked_by_another_process_is_reported_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    drop(Store::open(&path, StoreOptions::default()).unwrap());
    // Another connection holding an exclusive lock stands in for another process.
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder
        .execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let options = StoreOptions {
        busy_timeout: Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let err = Store::open(&path, options)
        .err()
        .expect("a locked store must not open");
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
}

/// The schema of version 1, as Flow wrote it: programs were the IR as JSON, under a
/// 128-bit FNV-1a hash.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS programs (
    hash       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    artefact   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL UNIQUE,
    workflow    TEXT NOT NULL,
    program     TEXT NOT NULL,
    parent      INTEGER,
    parent_step TEXT,
    owner_as    TEXT,
    priority    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    input       TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    executor    TEXT,
    wake_at     INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, executor);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs(workflow, created_at);
CREATE INDEX IF NOT EXISTS runs_by_created ON runs(created_at);
CREATE TABLE IF NOT EXISTS events (
    run     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    step    TEXT,
    attempt INTEGER,
    data    TEXT,
    PRIMARY KEY (run, seq)
) WITHOUT ROWID;
PRAGMA user_version = 1;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_store_keeps_its_programs_as_artefacts_and_its_runs_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let program = common::compile(
        "workflow bump(n: int) -> int {\n  step a = http.get(url: \"http://127.0.0.1:9/never\")\n  return n + a.status\n}\n",
    );
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute(
            "INSERT INTO programs (hash, created_at, artefact) VALUES (?1, 1000, ?2)",
            rusqlite::params![
                "6c62272e07bb014262b821756295c58d",
                serde_json::to_vec(&program).unwrap()
            ],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO programs (hash, created_at, artefact) VALUES ('unreadable', 1000, X'7b7d')",
            [],
        )
        .unwrap();
        // A run that stopped after its step succeeded: resuming takes the step's result
        // from the journal (the URL answers nothing) and returns.
        conn.execute_batch(
            "INSERT INTO runs (id, run_id, workflow, program, priority, status, input, created_at, executor)
                 VALUES (1, 'r-old', 'bump', '6c62272e07bb014262b821756295c58d', 1, 'running', '{\"n\":1}', 1000, 'dead-old');
             INSERT INTO runs (id, run_id, workflow, program, priority, status, input, created_at, executor)
                 VALUES (2, 'r-lost', 'bump', 'unreadable', 1, 'completed', '{}', 1000, 'dead-old');
             INSERT INTO events (run, seq, at, kind, step, attempt, data) VALUES
                 (1, 0, 1000, 'run_started', NULL, NULL, '{}'),
                 (1, 1, 1001, 'step_started', 'a', 1, NULL),
                 (1, 2, 1002, 'step_succeeded', 'a', 1,
                  '{\"status\":41,\"headers\":{},\"body\":null,\"url\":\"http://127.0.0.1:9/never\"}');",
        )
        .unwrap();
    }

    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let expected = Artefact::encode(program.clone()).unwrap();
    let run = store.run_by_id("r-old").unwrap().unwrap();
    assert_eq!(run.program, expected.hash_hex());
    let bytes = store.program(&run.program).unwrap().unwrap();
    assert_eq!(bytes, expected.bytes);
    assert_eq!(Artefact::decode(bytes).unwrap().program, program);
    assert_eq!(
        store.program("6c62272e07bb014262b821756295c58d").unwrap(),
        None
    );
    // What this build cannot read is kept as it was.
    assert_eq!(
        store.run_by_id("r-lost").unwrap().unwrap().program,
        "unreadable"
    );
    assert_eq!(store.program("unreadable").unwrap(), Some(b"{}".to_vec()));
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    // Version 4's signals table was created.
    let signals: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM signals", [], |r| r.get(0))
        .unwrap();
    assert_eq!(signals, 0);
    // Version 3's columns were added: the old run has no origin.
    assert_eq!(run.origin, RunOrigin::default());

    let engine = Engine::new(
        store.clone(),
        Arc::new(Router::new(Builtins::new().unwrap())),
        EngineConfig::default(),
        Arc::new(Silent),
    )
    .unwrap();
    let handles = engine.recover().await.unwrap();
    assert_eq!(handles.len(), 1);
    let outcome = handles.into_iter().next().unwrap().outcome().await;
    assert_eq!(outcome.status, RunStatus::Completed, "{:?}", outcome.error);
    assert_eq!(outcome.output, serde_json::json!(42));
    // Loading the same program again finds it under the same hash.
    let loaded = engine.load(program).await.unwrap();
    assert_eq!(loaded.hash, run.program);
    engine.shutdown().await.unwrap();
    drop(engine);
    drop(store);
    // Opening the upgraded store again changes nothing.
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(
        store.run_by_id("r-old").unwrap().unwrap().program,
        expected.hash_hex()
    );
}

#[tokio::test]
async fn a_large_write_ahead_log_is_folded_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let wal = dir.path().join("flow.db-wal");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let key = store.create_run(new_run("r1", "x")).await.unwrap();
    store.fold_wal();
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "a small log stays"
    );
    let big = "x".repeat(64 * 1024);
    for seq in 0..40 {
        let mut e = event(key, seq, EventKind::Log, "");
        e.data = Some(format!("\"{big}\""));
        store.append_durable(vec![e]).await.unwrap();
    }
    assert!(std::fs::metadata(&wal).unwrap().len() > 2 << 20);
    store.fold_wal();
    // Folded and started again: the file is kept (trimmed to 2 MiB) for later commits to
    // overwrite in place, so a small write does not grow it.
    let kept = std::fs::metadata(&wal).unwrap().len();
    assert!(kept > 0 && kept <= 2 << 20, "{kept}");
    store
        .append_durable(vec![event(key, 40, EventKind::Log, "")])
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), kept);
    drop(store);
    // The next process reads the restarted log, not the copied frames, and a process
    // that did not make the log grow leaves it as it is.
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.events(key).unwrap().len(), 41);
    store
        .append_durable(vec![event(key, 41, EventKind::Log, "")])
        .await
        .unwrap();
    store.fold_wal();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), kept);
    drop(store);
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.events(key).unwrap().len(), 42);
}

/// A dedupe key makes creation idempotent: concurrent creations with one key give one
/// run, whose key every caller gets back; a run without a key is never deduplicated.
/// Under constant writing and reading, the write-ahead log stays near its limit: the
/// store folds and empties it while in use, not only when a process ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_ahead_log_stays_bounded_under_constant_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let wal = dir.path().join("flow.db-wal");
    let limit = 1 << 20;
    let store = Store::open(
        &path,
        StoreOptions {
            wal_limit: limit,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let key = store.create_run(new_run("r1", "x")).await.unwrap();
    let big = "x".repeat(16 * 1024);
    let mut largest = 0;
    let started = std::time::Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let mut e = event(key, seq, EventKind::Log, "");
        e.data = Some(format!("\"{big}\""));
        store.append_durable(vec![e]).await.unwrap();
        // A reader in between, as the run API and the executor read.
        store.status_of(key).unwrap();
        seq += 1;
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    let written = u64::from(seq) * 16 * 1024;
    assert!(
        written > 8 * limit,
        "only {written} bytes written; the test needs more"
    );
    assert!(
        largest < 6 * limit,
        "the log reached {largest} bytes with a limit of {limit} ({written} written)"
    );
    assert_eq!(store.events(key).unwrap().len() as u32, seq);
}
