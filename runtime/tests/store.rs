//! The journal against real SQLite files: runs and events survive reopening, many
//! concurrent writers share commits, and bad or busy files give clear errors.

use std::time::Duration;

use flow_runtime::store::{
    Event, EventKind, Lease, NewRun, RunFilter, RunStatus, Store, StoreError, StoreOptions,
};

fn new_run(id: &str, executor: &str) -> NewRun {
    NewRun {
        run_id: id.into(),
        workflow: "wf".into(),
        program: "hash".into(),
        parent: None,
        parent_step: None,
        owner_as: None,
        priority: 1,
        input: "{\"a\":1}".into(),
        created_at: 1000,
        executor: executor.into(),
        status: RunStatus::Running,
    }
}

fn event(run: i64, seq: u32, kind: EventKind, step: &str) -> Event {
    Event {
        run,
        seq,
        at: 1000 + i64::from(seq),
        kind,
        step: Some(step.into()),
        attempt: Some(1),
        data: Some("42".into()),
    }
}

#[tokio::test]
async fn runs_and_events_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    {
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let key = store.create_run(new_run("r1", "x")).await.unwrap();
        store
            .append_durable(vec![
                event(key, 0, EventKind::RunStarted, ""),
                event(key, 1, EventKind::StepSucceeded, "a"),
            ])
            .await
            .unwrap();
        store
            .finish_run(
                key,
                RunStatus::Completed,
                Some("{\"ok\":true}".into()),
                None,
                2000,
            )
            .await
            .unwrap();
    }
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let run = store.run_by_id("r1").unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(serde_json::json!({ "ok": true })));
    assert_eq!(run.input, serde_json::json!({ "a": 1 }));
    let events = store.events(run.key).unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::RunStarted, EventKind::StepSucceeded]
    );
    assert_eq!(events[1].data.as_deref(), Some("42"));
    assert_eq!(store.list_runs(&RunFilter::default()).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_all_become_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    let key = store.create_run(new_run("r1", "x")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .append_durable(vec![event(
                    key,
                    i,
                    EventKind::StepSucceeded,
                    &format!("s{i}"),
                )])
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.events(key).unwrap().len(), 500);
}

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

#[tokio::test]
async fn orphaned_runs_are_claimed_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    store.create_run(new_run("r1", "dead-1")).await.unwrap();
    store.create_run(new_run("r2", "dead-1")).await.unwrap();
    assert!(!Lease::is_alive(&path, "dead-1"));
    let lease = Lease::acquire(&path).unwrap();
    assert!(Lease::is_alive(&path, &lease.token));
    assert_eq!(
        store.unfinished_owners().unwrap(),
        vec!["dead-1".to_string()]
    );
    assert_eq!(
        store
            .claim_runs_of("dead-1", &lease.token)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .claim_runs_of("dead-1", "someone-else")
            .await
            .unwrap()
            .len(),
        0
    );
}

#[tokio::test]
async fn prune_removes_old_finished_runs_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("flow.db"), StoreOptions::default()).unwrap();
    let old = store.create_run(new_run("old", "x")).await.unwrap();
    store
        .finish_run(old, RunStatus::Completed, None, None, 1500)
        .await
        .unwrap();
    store.create_run(new_run("unfinished", "x")).await.unwrap();
    let mut recent = new_run("recent", "x");
    recent.created_at = 10_000;
    let recent = store.create_run(recent).await.unwrap();
    store
        .finish_run(recent, RunStatus::Failed, None, None, 10_500)
        .await
        .unwrap();
    assert_eq!(store.prune(5000).await.unwrap(), 1);
    let left: Vec<String> = store
        .list_runs(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(left, vec!["recent".to_string(), "unfinished".to_string()]);
}
