//! Replay after an interruption inside one process: an engine is dropped while a call is
//! in flight; a new engine on the same store resumes the run. Succeeded steps are not
//! called again, and `now()` (and the idempotency key built from it) is the same.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_expr::Value;
use flow_runtime::{
    ActionCall, CallContext, Connector, Engine, EngineConfig, InvokeFuture, RunStatus, Silent,
    Store, StoreOptions,
};

/// Records every call; with `hang`, calls to `/second` never answer.
struct Recording {
    calls: Arc<Mutex<Vec<(String, Option<String>)>>>,
    hang: bool,
}

impl Connector for Recording {
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, ctx: &'a CallContext) -> InvokeFuture<'a> {
        let url = call
            .arg("url")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.calls
            .lock()
            .unwrap()
            .push((url.clone(), ctx.idempotency_key.clone()));
        let hang = self.hang && url.ends_with("/second");
        Box::pin(async move {
            if hang {
                std::future::pending::<()>().await;
            }
            let json =
                serde_json::json!({ "status": 200, "headers": {}, "body": null, "url": url });
            Ok(Value::from_json(&json, &call.action.result).unwrap())
        })
    }
}

const SRC: &str = r#"
workflow stamp -> string {
  let t = now()
  step first = http.get(url: "http://example.test/first")
  step second = http.post(url: "http://example.test/second") after first idempotency_key "k-${t}"
  return "k-${t}"
}
"#;

fn engine(path: &std::path::Path, connector: Recording) -> Engine {
    let store = Store::open(path, StoreOptions::default()).unwrap();
    Engine::new(
        store,
        Arc::new(connector),
        EngineConfig::default(),
        Arc::new(Silent),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_skips_succeeded_steps_and_keeps_its_clock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flow.db");
    let calls = Arc::new(Mutex::new(Vec::new()));

    let first = engine(
        &path,
        Recording {
            calls: Arc::clone(&calls),
            hang: true,
        },
    );
    let loaded = first.load(common::compile(SRC)).await.unwrap();
    let handle = first
        .submit(&loaded, "stamp", serde_json::json!({}))
        .await
        .unwrap();
    let run_id = handle.run_id.clone();
    for _ in 0..500 {
        if calls
            .lock()
            .unwrap()
            .iter()
            .any(|(u, _)| u.ends_with("/second"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The process "dies" with `second` in flight.
    handle.abort();
    first.store().flush().await.unwrap();
    drop(loaded);
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let second = engine(
        &path,
        Recording {
            calls: Arc::clone(&calls),
            hang: false,
        },
    );
    let outcome = second.resume(&run_id).await.unwrap().outcome().await;
    assert_eq!(outcome.status, RunStatus::Completed, "{:?}", outcome.error);

    let calls = calls.lock().unwrap().clone();
    let firsts: Vec<_> = calls
        .iter()
        .filter(|(u, _)| u.ends_with("/first"))
        .collect();
    let seconds: Vec<_> = calls
        .iter()
        .filter(|(u, _)| u.ends_with("/second"))
        .collect();
    assert_eq!(
        firsts.len(),
        1,
        "a succeeded step was called again: {calls:?}"
    );
    assert_eq!(seconds.len(), 2, "{calls:?}");
    assert_eq!(
        seconds[0].1, seconds[1].1,
        "the idempotency key changed across the resume"
    );
    assert_eq!(
        Some(outcome.output.as_str().unwrap().to_owned()),
        seconds[0].1.clone()
    );
}

/// Counts calls in flight and remembers the most seen at once.
struct Gauge {
    now: Arc<Mutex<(u32, u32)>>,
}

impl Connector for Gauge {
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, _ctx: &'a CallContext) -> InvokeFuture<'a> {
        Box::pin(async move {
            {
                let mut g = self.now.lock().unwrap();
                g.0 += 1;
                g.1 = g.1.max(g.0);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.now.lock().unwrap().0 -= 1;
            let json = serde_json::json!({ "status": 200, "headers": {}, "body": null, "url": "" });
            Ok(Value::from_json(&json, &call.action.result).unwrap())
        })
    }
}

async fn max_in_flight(src: &str, workflow: &str, runs: usize, config: EngineConfig) -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("flow.db"), StoreOptions::default()).unwrap();
    let gauge = Arc::new(Mutex::new((0, 0)));
    let engine = Engine::new(
        store,
        Arc::new(Gauge {
            now: Arc::clone(&gauge),
        }),
        config,
        Arc::new(Silent),
    )
    .unwrap();
    let loaded = engine.load(common::compile(src)).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..runs {
        handles.push(
            engine
                .submit(&loaded, workflow, serde_json::json!({}))
                .await
                .unwrap(),
        );
    }
    for h in handles {
        assert_eq!(h.outcome().await.status, RunStatus::Completed);
    }

    gauge.lock().unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_concurrency_limits_runs_at_once() {
    let src = "workflow one_at_a_time {\n  settings {\n    concurrency = 1\n  }\n  step a = http.get(url: \"x\")\n}\n";
    assert_eq!(
        max_in_flight(src, "one_at_a_time", 4, EngineConfig::default()).await,
        1
    );
    let free = "workflow free {\n  step a = http.get(url: \"x\")\n}\n";
    assert!(max_in_flight(free, "free", 4, EngineConfig::default()).await > 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_and_per_run_limits_are_enforced() {
    let free = "workflow free {\n  step a = http.get(url: \"x\")\n}\n";
    let config = EngineConfig {
        max_concurrent_runs: 2,
        ..EngineConfig::default()
    };
    assert_eq!(max_in_flight(free, "free", 6, config).await, 2);
    let fan = "workflow fan {\n  for i in [1, 2, 3, 4, 5, 6] parallel 6 {\n    step a = http.get(url: \"x\")\n  }\n}\n";
    let config = EngineConfig {
        max_parallel_steps: 3,
        ..EngineConfig::default()
    };
    assert_eq!(max_in_flight(fan, "fan", 1, config).await, 3);
    let narrow = "workflow narrow {\n  for i in [1, 2, 3, 4, 5, 6] parallel 2 {\n    step a = http.get(url: \"x\")\n  }\n}\n";
    assert_eq!(
        max_in_flight(narrow, "narrow", 1, EngineConfig::default()).await,
        2
    );
}
