//! The store contract, held against every backend: each case below runs once on a real
//! SQLite file and once on a real PostgreSQL database (a fresh one per case, on the
//! server `scripts/services/postgres.sh` starts and names in `FLOW_TEST_POSTGRES_URL`).
//! Without that variable the PostgreSQL half says it was skipped, unless
//! `FLOW_TEST_REQUIRE_POSTGRES` is set (as `scripts/test.sh` sets it), which makes a
//! missing server a failure.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use flow_runtime::builtins::Builtins;
use flow_runtime::store::{
    EventKind, EventWait, NewRun, RunFilter, RunOrigin, RunStatus, Store, StoreLocation,
    StoreOptions,
};
use flow_runtime::{Engine, EngineConfig, Router, Silent};

/// Where one case's store lives; the SQLite directory is removed with it.
enum Fixture {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Fixture {
    fn sqlite() -> Fixture {
        Fixture::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh database on the test server, or `None` (and a note) when there is none.
    fn postgres() -> Option<Fixture> {
        let Ok(admin) = std::env::var("FLOW_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("FLOW_TEST_REQUIRE_POSTGRES").is_none(),
                "FLOW_TEST_REQUIRE_POSTGRES is set but FLOW_TEST_POSTGRES_URL is not: the PostgreSQL server did not start"
            );
            eprintln!(
                "skipped: FLOW_TEST_POSTGRES_URL is not set (scripts/test.sh starts a server)"
            );
            return None;
        };
        Some(Fixture::Postgres(fresh_database(&admin)))
    }

    fn location(&self) -> StoreLocation {
        match self {
            Fixture::Sqlite(dir) => StoreLocation::File(dir.path().join("flow.db")),
            Fixture::Postgres(url) => StoreLocation::Postgres(url.clone()),
        }
    }

    fn open(&self) -> Store {
        Store::open_at(&self.location(), StoreOptions::default()).unwrap()
    }
}

/// Creates a database of its own for one case and returns its URL. The synchronous
/// client runs on a thread of its own, away from the test's runtime.
fn fresh_database(admin: &str) -> String {
    let name = format!("flow_test_{}_{:08x}", std::process::id(), fastrand::u32(..));
    let (admin, db) = (admin.to_owned(), name.clone());
    std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&admin, ::postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
    })
    .join()
    .unwrap();
    let admin = std::env::var("FLOW_TEST_POSTGRES_URL").unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// Each case as a test on SQLite and a test on PostgreSQL.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Fixture::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(fixture) = super::Fixture::postgres() {
                        super::$case(fixture).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    runs_and_events_survive_reopening,
    concurrent_writers_all_become_durable,
    an_event_written_again_replaces_the_first,
    orphaned_runs_are_claimed_once,
    a_live_executor_keeps_its_runs,
    prune_removes_old_finished_runs_with_their_children,
    one_run_per_dedupe_key,
    filters_and_pages_list_runs,
    cancel_marks_a_run_and_its_children,
    programs_are_kept_once_by_hash,
    signals_are_taken_once_in_arrival_order,
    event_waits_are_given_one_delivery,
    events_of_kinds_follow_the_runs_asked_for,
    a_run_that_cannot_resume_fails_and_recovery_goes_on,
    a_workflow_runs_to_completion_and_its_journal_shows_every_step,
    queued_runs_are_claimed_once_highest_priority_first,
    prune_goes_through_more_runs_than_one_batch,
    the_shared_sql_reads_and_writes_alike,
);

use common::{event, new_run};

async fn runs_and_events_survive_reopening(fixture: Fixture) {
    {
        let store = fixture.open();
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
        store.flush().await.unwrap();
    }
    let store = fixture.open();
    let run = store.run_by_id("r1").unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(serde_json::json!({ "ok": true })));
    assert_eq!(run.input, serde_json::json!({ "a": 1 }));
    assert_eq!(run.finished_at, Some(2000));
    let events = store.events(run.key).unwrap();
    assert_eq!(
        events.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![EventKind::RunStarted, EventKind::StepSucceeded]
    );
    assert_eq!(events[1].data.as_deref(), Some("42"));
    assert_eq!(events[1].attempt, Some(1));
    assert_eq!(store.events_from(run.key, 1).unwrap().len(), 1);
    assert_eq!(store.list_runs(&RunFilter::default()).unwrap().len(), 1);
    assert!(store.run_by_id("r2").unwrap().is_none());
}

async fn concurrent_writers_all_become_durable(fixture: Fixture) {
    let store = fixture.open();
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
    let events = store.events(key).unwrap();
    assert_eq!(events.len(), 500);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
}

async fn an_event_written_again_replaces_the_first(fixture: Fixture) {
    let store = fixture.open();
    let key = store.create_run(new_run("r1", "x")).await.unwrap();
    let mut again = event(key, 1, EventKind::StepFailed, "a");
    again.data = Some("second".into());
    // In one batch and across batches.
    store
        .append_nowait(vec![event(key, 1, EventKind::StepStarted, "a")])
        .unwrap();
    store.append_durable(vec![again.clone()]).await.unwrap();
    let events = store.events(key).unwrap();
    assert_eq!(events, vec![again.clone()]);
    let mut third = again;
    third.data = Some("third".into());
    store.append_durable(vec![third.clone()]).await.unwrap();
    assert_eq!(store.events(key).unwrap(), vec![third]);
}

async fn orphaned_runs_are_claimed_once(fixture: Fixture) {
    let store = fixture.open();
    store.create_run(new_run("r1", "dead-1")).await.unwrap();
    store.create_run(new_run("r2", "dead-1")).await.unwrap();
    let mut child = new_run("r2-child", "dead-1");
    child.parent = Some(store.run_by_id("r2").unwrap().unwrap().key);
    child.parent_step = Some("c".into());
    store.create_run(child).await.unwrap();
    assert!(!store.executor_alive("dead-1"));
    let lease = store.acquire_lease().unwrap();
    assert!(store.executor_alive(&lease.token));
    assert_eq!(
        store.unfinished_owners().unwrap(),
        vec!["dead-1".to_string()]
    );
    // Top-level runs only: a child is driven by its parent.
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
    assert_eq!(
        store.unfinished_owners().unwrap(),
        vec![lease.token.clone()]
    );
    let token = lease.token.clone();
    lease.release(&store);
    assert!(!store.executor_alive(&token));
}

async fn a_live_executor_keeps_its_runs(fixture: Fixture) {
    let store = fixture.open();
    let lease = store.acquire_lease().unwrap();
    let key = store
        .create_run(new_run("mine", &lease.token))
        .await
        .unwrap();
    // A second process's view: the executor is alive, so its runs stay.
    let other = fixture.open();
    assert!(other.executor_alive(&lease.token));
    // `claim_run` moves a run only from the executor the caller named.
    assert!(
        !other
            .claim_run(key, Some("not-the-owner".into()), "thief")
            .await
            .unwrap()
    );
    assert!(
        other
            .claim_run(key, Some(lease.token.clone()), "heir")
            .await
            .unwrap()
    );
    assert_eq!(
        other.run_by_key(key).unwrap().unwrap().executor.as_deref(),
        Some("heir")
    );
    lease.release(&store);
}

async fn prune_removes_old_finished_runs_with_their_children(fixture: Fixture) {
    let store = fixture.open();
    let old = store.create_run(new_run("old", "x")).await.unwrap();
    let mut child = new_run("old-child", "x");
    child.parent = Some(old);
    child.parent_step = Some("c".into());
    let child = store.create_run(child).await.unwrap();
    store
        .append_durable(vec![event(child, 0, EventKind::RunStarted, "")])
        .await
        .unwrap();
    for key in [child, old] {
        store
            .finish_run(key, RunStatus::Completed, None, None, 1500)
            .await
            .unwrap();
    }
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
        .list_runs(&RunFilter {
            include_children: true,
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(left, vec!["recent".to_string(), "unfinished".to_string()]);
    assert!(store.events(child).unwrap().is_empty());
}

async fn one_run_per_dedupe_key(fixture: Fixture) {
    let store = fixture.open();
    let keyed = |id: &str| NewRun {
        origin: RunOrigin {
            trigger: Some("webhook".into()),
            event: Some(serde_json::json!({"n": 1})),
            actor: Some("hook".into()),
            dedupe: Some("delivery-1".into()),
        },
        ..new_run(id, "me")
    };
    let mut pending = Vec::new();
    for i in 0..8 {
        pending.push(store.create_run_queued(keyed(&format!("r{i}"))).unwrap());
    }
    let mut keys = Vec::new();
    for p in pending {
        keys.push(p.await.unwrap().unwrap());
    }
    keys.dedup();
    assert_eq!(keys.len(), 1, "every creation names the same run");
    let again = store.create_run(keyed("r-late")).await.unwrap();
    assert_eq!(again, keys[0]);
    let row = store.run_by_key(keys[0]).unwrap().unwrap();
    assert_eq!(row.run_id, "r0");
    assert_eq!(row.origin.trigger.as_deref(), Some("webhook"));
    assert_eq!(row.origin.actor.as_deref(), Some("hook"));
    assert_eq!(row.origin.event, Some(serde_json::json!({"n": 1})));
    let a = store.create_run(new_run("free-1", "me")).await.unwrap();
    let b = store.create_run(new_run("free-2", "me")).await.unwrap();
    assert_ne!(a, b);
}

async fn filters_and_pages_list_runs(fixture: Fixture) {
    let store = fixture.open();
    for i in 0..30i64 {
        let mut run = new_run(&format!("r{i:02}"), "x");
        run.created_at = 1000 + i;
        run.workflow = if i % 2 == 0 {
            "even".into()
        } else {
            "odd".into()
        };
        run.origin.trigger = (i % 3 == 0).then(|| "schedule".to_owned());
        let key = store.create_run(run).await.unwrap();
        if i % 5 == 0 {
            store
                .finish_run(key, RunStatus::Failed, None, Some("{}".into()), 5000)
                .await
                .unwrap();
        }
    }
    let ids = |filter: RunFilter| -> Vec<String> {
        store
            .list_runs(&filter)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect()
    };
    let all = ids(RunFilter::default());
    assert_eq!(all.len(), 30);
    assert_eq!(all[0], "r29", "newest first");
    assert_eq!(
        ids(RunFilter {
            workflow: Some("even".into()),
            status: Some(RunStatus::Failed),
            ..RunFilter::default()
        }),
        vec!["r20", "r10", "r00"]
    );
    assert_eq!(
        ids(RunFilter {
            statuses: vec![RunStatus::Failed, RunStatus::Completed],
            ..RunFilter::default()
        })
        .len(),
        6
    );
    assert_eq!(
        ids(RunFilter {
            trigger: Some("schedule".into()),
            since: Some(1020),
            until: Some(1028),
            ..RunFilter::default()
        }),
        vec!["r27", "r24", "r21"]
    );
    assert_eq!(
        ids(RunFilter {
            trigger: Some("cli".into()),
            ..RunFilter::default()
        })
        .len(),
        20
    );
    // Pages of 7 by cursor cover every run once, in order.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_runs(&RunFilter {
                after,
                limit: Some(7),
                ..RunFilter::default()
            })
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.key));
        paged.extend(page.into_iter().map(|r| r.run_id));
    }
    assert_eq!(paged, all);
}

async fn cancel_marks_a_run_and_its_children(fixture: Fixture) {
    let store = fixture.open();
    let parent = store.create_run(new_run("p", "exec-1")).await.unwrap();
    let mut child = new_run("c", "exec-1");
    child.parent = Some(parent);
    child.parent_step = Some("sub".into());
    let child = store.create_run(child).await.unwrap();
    assert_eq!(store.child_run(parent, "sub").unwrap().unwrap().key, child);
    assert!(store.cancel_run(parent, 3000).await.unwrap());
    assert!(!store.cancel_run(parent, 3001).await.unwrap(), "once");
    assert_eq!(store.status_of(child).unwrap(), Some(RunStatus::Cancelled));
    let mut cancelled = store.cancelled_of("exec-1").unwrap();
    cancelled.sort();
    assert_eq!(cancelled, vec![parent, child]);
    // A late finish does not overwrite the cancellation, nor a status change.
    store
        .finish_run(parent, RunStatus::Completed, None, None, 4000)
        .await
        .unwrap();
    store.set_status(parent, RunStatus::Running, None).unwrap();
    store.flush().await.unwrap();
    let row = store.run_by_key(parent).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Cancelled);
    assert_eq!(row.finished_at, Some(3000));
}

async fn programs_are_kept_once_by_hash(fixture: Fixture) {
    let store = fixture.open();
    store.save_program("h1", vec![1, 2, 3], 10).await.unwrap();
    store.save_program("h1", vec![9, 9], 11).await.unwrap();
    assert_eq!(store.program("h1").unwrap(), Some(vec![1, 2, 3]));
    assert_eq!(store.program("h2").unwrap(), None);
}

async fn signals_are_taken_once_in_arrival_order(fixture: Fixture) {
    let store = fixture.open();
    let run = store.create_run(new_run("r", "x")).await.unwrap();
    let first = store
        .put_signal(run, "go", "1".into(), Some("a".into()), 10)
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = store
        .put_signal(run, "go", "other".into(), Some("a".into()), 11)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, first.seq);
    store
        .put_signal(run, "go", "2".into(), None, 12)
        .await
        .unwrap();
    let (runs, newest) = store.signals_after(0).unwrap();
    assert_eq!(runs, vec![run]);
    assert!(newest > first.seq);
    assert_eq!(store.signals_after(newest).unwrap().0, Vec::<i64>::new());
    assert_eq!(
        store.take_signal(run, "go", "w1").await.unwrap().as_deref(),
        Some("1")
    );
    // The same step takes the same signal again (a resumed run).
    assert_eq!(
        store.take_signal(run, "go", "w1").await.unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(
        store.take_signal(run, "go", "w2").await.unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(store.take_signal(run, "go", "w3").await.unwrap(), None);
    assert_eq!(store.take_signal(run, "other", "w4").await.unwrap(), None);
}

async fn event_waits_are_given_one_delivery(fixture: Fixture) {
    let store = fixture.open();
    let run = store.create_run(new_run("r", "x")).await.unwrap();
    let wait = EventWait {
        id: 0,
        run,
        step: "pr".into(),
        program: "hash".into(),
        workflow: "wf".into(),
        integration: "github".into(),
        event: "pull_request".into(),
        args: "[]".into(),
        locals: "{}".into(),
        at: 5,
    };
    store.put_event_wait(wait.clone()).await.unwrap();
    store.put_event_wait(wait.clone()).await.unwrap();
    let waits = store.event_waits("github", "pull_request").unwrap();
    assert_eq!(waits.len(), 1);
    let stored = &waits[0];
    assert_eq!(
        (stored.run, stored.step.as_str(), stored.at),
        (run, "pr", 5)
    );
    assert!(store.event_waits("github", "push").unwrap().is_empty());
    assert!(
        store
            .give_to_wait(stored, "{\"n\":1}".into(), Some("d1".into()), 6)
            .await
            .unwrap()
    );
    assert!(
        !store
            .give_to_wait(stored, "{\"n\":2}".into(), Some("d2".into()), 7)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .take_signal(run, &flow_runtime::store::event_signal("pr"), "pr")
            .await
            .unwrap()
            .as_deref(),
        Some("{\"n\":1}")
    );
    store.put_event_wait(wait).await.unwrap();
    store.remove_event_wait(run, "pr").await.unwrap();
    assert!(
        store
            .event_waits("github", "pull_request")
            .unwrap()
            .is_empty()
    );
}

async fn events_of_kinds_follow_the_runs_asked_for(fixture: Fixture) {
    let store = fixture.open();
    let a = store.create_run(new_run("a", "x")).await.unwrap();
    let b = store.create_run(new_run("b", "x")).await.unwrap();
    for run in [a, b] {
        store
            .append_durable(vec![
                event(run, 0, EventKind::RunStarted, ""),
                event(run, 1, EventKind::StepStarted, "s"),
                event(run, 2, EventKind::StepSucceeded, "s"),
            ])
            .await
            .unwrap();
    }
    let events = store
        .events_of_kinds(&[b, a], &[EventKind::StepSucceeded, EventKind::RunStarted])
        .unwrap();
    let seen: Vec<(i64, u32)> = events.iter().map(|e| (e.run, e.seq)).collect();
    assert_eq!(seen, vec![(b, 0), (b, 2), (a, 0), (a, 2)]);
}

async fn a_run_that_cannot_resume_fails_and_recovery_goes_on(fixture: Fixture) {
    let store = fixture.open();
    let lost = store
        .create_run(NewRun {
            program: "missing".into(),
            ..new_run("r-lost", "dead-process")
        })
        .await
        .unwrap();
    let engine = Engine::new(
        store.clone(),
        Arc::new(Router::new(Builtins::new().unwrap())),
        EngineConfig::default(),
        Arc::new(Silent),
    )
    .unwrap();
    let handles = engine.recover().await.unwrap();
    assert!(handles.is_empty());
    let row = store.run_by_key(lost).unwrap().unwrap();
    assert_eq!(row.status, RunStatus::Failed);
    let message = row.error.unwrap()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("missing from the store"), "{message}");
    engine.shutdown().await.unwrap();
}

async fn a_workflow_runs_to_completion_and_its_journal_shows_every_step(fixture: Fixture) {
    let hits = Arc::new(AtomicU32::new(0));
    let h = Arc::clone(&hits);
    let app = axum::Router::new().route(
        "/n",
        axum::routing::get(move || {
            let n = h.fetch_add(1, Ordering::SeqCst) + 1;
            async move { axum::Json(serde_json::json!({ "n": n })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let store = fixture.open();
    let engine = Engine::new(
        store.clone(),
        Arc::new(Router::new(Builtins::new().unwrap())),
        EngineConfig::default(),
        Arc::new(Silent),
    )
    .unwrap();
    let src = r#"
workflow chain(base: string) -> int {
  step a = http.get(url: "${base}/n")
  step b = http.get(url: "${base}/n?after=${a.status}")
  step c = http.get(url: "${base}/n?after=${b.status}")
  return a.status + b.status + c.status
}
"#;
    let loaded = engine.load(common::compile(src)).await.unwrap();
    let handle = engine
        .submit(&loaded, "chain", serde_json::json!({ "base": base }))
        .await
        .unwrap();
    let outcome = handle.outcome().await;
    assert_eq!(outcome.status, RunStatus::Completed, "{:?}", outcome.error);
    assert_eq!(outcome.output, serde_json::json!(600));
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    engine.shutdown().await.unwrap();

    let reopened = fixture.open();
    let run = reopened
        .list_runs(&RunFilter::default())
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(serde_json::json!(600)));
    let succeeded: Vec<String> = reopened
        .events(run.key)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::StepSucceeded)
        .filter_map(|e| e.step)
        .collect();
    assert_eq!(succeeded, vec!["a", "b", "c"]);
    assert!(reopened.program(&run.program).unwrap().is_some());
}

async fn prune_goes_through_more_runs_than_one_batch(fixture: Fixture) {
    let store = fixture.open();
    let mut pending = Vec::new();
    for i in 0..2500 {
        let mut run = new_run(&format!("old{i}"), "x");
        run.status = RunStatus::Completed;
        pending.push(store.create_run_queued(run).unwrap());
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    let mut kept = new_run("kept", "x");
    kept.created_at = 9000;
    kept.status = RunStatus::Completed;
    store.create_run(kept).await.unwrap();
    assert_eq!(store.prune(5000).await.unwrap(), 2500);
    let left = store.list_runs(&RunFilter::default()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].run_id, "kept");
}

async fn queued_runs_are_claimed_once_highest_priority_first(fixture: Fixture) {
    let store = fixture.open();
    for i in 0..40i64 {
        let mut run = new_run(&format!("q{i:02}"), "unused");
        run.executor = None;
        run.status = RunStatus::Pending;
        run.priority = i % 3;
        run.created_at = 1000 + i;
        store.create_run(run).await.unwrap();
    }
    // Not queued: it has a live executor.
    let owner = store.acquire_lease().unwrap();
    store
        .create_run(new_run("owned", &owner.token))
        .await
        .unwrap();
    // Claimers are live executors (a claimer without a lease would count as gone, and
    // on PostgreSQL its runs would be taken again).
    let leases: Vec<_> = (0..4).map(|_| store.acquire_lease().unwrap()).collect();
    let first = store.claim_runnable(&leases[0].token, 5).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        vec!["q02", "q05", "q08", "q11", "q14"],
        "highest priority, then oldest"
    );
    assert!(
        first
            .iter()
            .all(|r| r.executor.as_deref() == Some(leases[0].token.as_str()))
    );
    // Claimers at once never share a run.
    let mut claims = Vec::new();
    for lease in &leases[1..] {
        let (store, token) = (store.clone(), lease.token.clone());
        claims.push(tokio::spawn(async move {
            store.claim_runnable(&token, 20).await.unwrap()
        }));
    }
    let mut seen: Vec<String> = first.into_iter().map(|r| r.run_id).collect();
    for c in claims {
        seen.extend(c.await.unwrap().into_iter().map(|r| r.run_id));
    }
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "no run claimed twice");
    assert_eq!(total, 40, "every queued run claimed, the owned one not");
    assert!(
        store
            .claim_runnable(&leases[0].token, 10)
            .await
            .unwrap()
            .is_empty()
    );
    for lease in leases {
        lease.release(&store);
    }
    owner.release(&store);
}

async fn the_shared_sql_reads_and_writes_alike(fixture: Fixture) {
    use flow_runtime::store::SqlValue;
    let store = fixture.open();
    store
        .create_tables(
            "CREATE TABLE IF NOT EXISTS notes (id {serial}, body TEXT NOT NULL, data {blob}, n INTEGER);
             CREATE INDEX IF NOT EXISTS notes_by_n ON notes(n)",
        )
        .await
        .unwrap();
    let id: i64 = store
        .transact(|tx| {
            let row = tx.query_opt(
                "INSERT INTO notes (body, data, n) VALUES (?1, ?2, ?3) RETURNING id",
                &["it's".into(), vec![0u8, 255].into(), 7i64.into()],
            )?;
            row.unwrap().get(0)
        })
        .await
        .unwrap();
    store
        .transact(|tx| {
            tx.execute(
                "INSERT INTO notes (body, n) VALUES (?1, ?2)",
                &["second".into(), SqlValue::Null],
            )
        })
        .await
        .unwrap();
    // A failing transaction changes nothing, even what it wrote before failing.
    let failed = store
        .transact(|tx| {
            tx.execute("INSERT INTO notes (body, n) VALUES ('third', 1)", &[])?;
            tx.execute("INSERT INTO notes (body) VALUES (NULL)", &[])
        })
        .await;
    assert!(failed.is_err());
    let rows = store
        .query("SELECT id, body, data, n FROM notes ORDER BY id", &[])
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<i64>(0).unwrap(), id);
    assert_eq!(rows[0].get::<String>(1).unwrap(), "it's");
    assert_eq!(rows[0].get::<Vec<u8>>(2).unwrap(), vec![0u8, 255]);
    assert_eq!(rows[0].get::<Option<i64>>(3).unwrap(), Some(7));
    assert_eq!(rows[1].get::<Option<Vec<u8>>>(2).unwrap(), None);
    assert!(rows[1].get::<i64>(3).is_err(), "a null is not an integer");
    let counted = store
        .query(
            "SELECT count(*) FROM notes WHERE n = ?1 OR body = ?2",
            &[7i64.into(), "second".into()],
        )
        .unwrap();
    assert_eq!(counted[0].get::<i64>(0).unwrap(), 2);
}

/// PostgreSQL only (an SQLite store is one machine's, where a live executor's lock file
/// keeps its runs): once another executor took a run, the first one's writes to it are
/// refused, in the same statement that would have written them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_of_an_executor_whose_run_was_taken_are_refused() {
    let Some(fixture) = Fixture::postgres() else {
        return;
    };
    let (first, second) = (fixture.open(), fixture.open());
    let (a, b) = (
        first.acquire_lease().unwrap(),
        second.acquire_lease().unwrap(),
    );
    let key = first.create_run(new_run("r", &a.token)).await.unwrap();
    first
        .append_durable(vec![event(key, 0, EventKind::RunStarted, "")])
        .await
        .unwrap();
    assert!(
        second
            .claim_run(key, Some(a.token.clone()), &b.token)
            .await
            .unwrap()
    );
    let refused = first
        .append_durable(vec![event(key, 1, EventKind::StepSucceeded, "late")])
        .await
        .unwrap_err();
    assert!(
        matches!(refused, flow_runtime::StoreError::Fenced { run } if run == key),
        "{refused}"
    );
    let refused = first
        .finish_run(key, RunStatus::Completed, Some("1".into()), None, 9)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, flow_runtime::StoreError::Fenced { .. }),
        "{refused}"
    );
    second
        .append_durable(vec![event(key, 1, EventKind::StepSucceeded, "heir")])
        .await
        .unwrap();
    second
        .finish_run(key, RunStatus::Completed, Some("2".into()), None, 10)
        .await
        .unwrap();
    let events = second.events(key).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].step.as_deref(), Some("heir"));
    let row = second.run_by_key(key).unwrap().unwrap();
    assert_eq!(row.output, Some(serde_json::json!(2)));
    a.release(&first);
    b.release(&second);
}

/// PostgreSQL only: with `sslmode=verify-full` the store talks TLS, verifying the
/// server's certificate against `sslrootcert` (the CA `scripts/services/postgres.sh`
/// made); against the public roots instead, the same server is refused with the reason;
/// `require` encrypts without checking, as libpq does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_use_tls_verified_against_the_given_ca() {
    let Some(Fixture::Postgres(url)) = Fixture::postgres() else {
        return;
    };
    let Ok(ca) = std::env::var("FLOW_TEST_POSTGRES_CA") else {
        eprintln!("skipped: the test server has no TLS certificate (openssl was missing)");
        return;
    };
    let secure = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let store = Store::open_at(&StoreLocation::Postgres(secure), StoreOptions::default()).unwrap();
    let rows = store
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(
        rows[0].get::<bool>(0).unwrap(),
        "the reader's connection is TLS"
    );
    let key = store.create_run(new_run("over-tls", "x")).await.unwrap();
    assert_eq!(store.run_by_key(key).unwrap().unwrap().run_id, "over-tls");

    let encrypted = format!("{url}?sslmode=require");
    let store =
        Store::open_at(&StoreLocation::Postgres(encrypted), StoreOptions::default()).unwrap();
    let rows = store
        .query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(rows[0].get::<bool>(0).unwrap());

    let public_roots = format!("{url}?sslmode=verify-full");
    let refused = Store::open_at(
        &StoreLocation::Postgres(public_roots),
        StoreOptions::default(),
    )
    .err()
    .expect("a certificate from an unknown CA is refused");
    let message = refused.to_string();
    assert!(
        message.contains("certificate") || message.contains("tls") || message.contains("TLS"),
        "{message}"
    );
    assert!(!message.contains("sslrootcert="), "{message}");
}

/// PostgreSQL only: a store of schema 1 is upgraded when opened (its runs gain their
/// workflow's `concurrency`); a store written by a newer Flow is refused, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schemas_are_upgraded_and_newer_ones_refused() {
    use flow_runtime::store::SqlValue;
    let Some(fixture) = Fixture::postgres() else {
        return;
    };
    let store = fixture.open();
    store.create_run(new_run("before", "x")).await.unwrap();
    // Back to what schema 1 was.
    store
        .transact(|tx| {
            tx.execute("DROP INDEX runs_limited", &[])?;
            tx.execute("ALTER TABLE runs DROP COLUMN concurrency", &[])?;
            tx.execute("UPDATE flow_schema SET version = 1", &[])
        })
        .await
        .unwrap();
    drop(store);
    let store = fixture.open();
    let version = store.query("SELECT version FROM flow_schema", &[]).unwrap();
    assert_eq!(version[0].get::<i64>(0).unwrap(), 2);
    let mut limited = new_run("after", "x");
    limited.concurrency = Some(3);
    store.create_run(limited).await.unwrap();
    let rows = store
        .query("SELECT run_id, concurrency FROM runs ORDER BY id", &[])
        .unwrap();
    assert_eq!(rows[0].get::<Option<i64>>(1).unwrap(), None);
    assert_eq!(rows[1].get::<Option<i64>>(1).unwrap(), Some(3));

    store
        .transact(|tx| tx.execute("UPDATE flow_schema SET version = ?1", &[SqlValue::Int(99)]))
        .await
        .unwrap();
    drop(store);
    let refused = Store::open_at(&fixture.location(), StoreOptions::default())
        .err()
        .expect("a newer schema is refused");
    assert!(refused.to_string().contains("newer Flow"), "{refused}");
}
