//! Engine benchmarks, measured end to end on a real store file and a real local HTTP
//! server. Run: `cargo bench -p flow-runtime --bench engine -- [transitions|latency|burst|sustained|parked|all]`.
//! Prints one line per figure; docs/performance.md records them. With
//! `FLOW_BENCH_STORE=postgres://…/DB` the store is that PostgreSQL database instead of a
//! fresh SQLite file (`scripts/bench-postgres.sh` makes one database per figure).

use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_expr::Value;
use flow_runtime::builtins::Builtins;
use flow_runtime::{
    ActionCall, CallContext, Connector, Durability, Engine, EngineConfig, InvokeFuture, Router,
    Silent, Store, StoreOptions,
};

/// The allocator of the `flow` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Answers every action at once with an empty response: a no-op step.
struct Noop;

impl Connector for Noop {
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, _ctx: &'a CallContext) -> InvokeFuture<'a> {
        Box::pin(async move {
            let json = serde_json::json!({ "status": 200, "headers": {}, "body": null, "url": "" });
            Ok(Value::from_json(&json, &call.action.result).unwrap_or(Value::Null))
        })
    }
}

fn compile(src: &str) -> flow_ir::program::Program {
    let (_, c) = flow_compiler::compile_source("bench.flow", src);
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    c.program
}

fn ten_steps(prefix: &str) -> String {
    let mut src = String::from("workflow ten(base: string) -> int {\n");
    for i in 0..10 {
        let after = if i == 0 {
            String::new()
        } else {
            format!(" after s{}", i - 1)
        };
        src.push_str(&format!(
            "  step s{i} = http.get(url: \"${{base}}/{prefix}{i}\"){after}\n"
        ));
    }
    src.push_str("  return s9.status\n}\n");
    src
}

fn engine(
    dir: &std::path::Path,
    durability: Durability,
    connector: Arc<dyn Connector>,
    max_runs: usize,
) -> Engine {
    let location = match std::env::var("FLOW_BENCH_STORE") {
        Ok(url) => flow_runtime::StoreLocation::parse(&url),
        Err(_) => flow_runtime::StoreLocation::File(dir.join("flow.db")),
    };
    let store = Store::open_at(
        &location,
        StoreOptions {
            durability,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let config = EngineConfig {
        max_concurrent_runs: max_runs,
        ..EngineConfig::default()
    };
    Engine::new(store, connector, config, Arc::new(Silent)).unwrap()
}

async fn local_server() -> String {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/{*rest}",
        get(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Durable no-op step transitions per second: many runs of 10 sequential no-op steps.
async fn transitions(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), durability, Arc::new(Noop), 10_000);
    let loaded = e.load(compile(&ten_steps("noop"))).await.unwrap();
    let runs: usize = std::env::var("FLOW_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let start = Instant::now();
    let futs: Vec<_> = (0..runs)
        .map(|_| {
            let e = e.clone();
            let l = Arc::clone(&loaded);
            async move {
                e.submit(&l, "ten", serde_json::json!({ "base": "x" }))
                    .await
                    .unwrap()
                    .outcome()
                    .await
            }
        })
        .collect();
    futures_join(futs).await;
    let secs = start.elapsed().as_secs_f64();
    let steps = runs * 10;
    println!(
        "transitions[{durability:?}]: {steps} durable no-op steps in {secs:.2}s = {:.0} steps/s",
        steps as f64 / secs
    );
}

async fn futures_join<F: std::future::Future + Send + 'static>(futs: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// p50 end-to-end latency of one 10-step sequential `http` workflow at a time.
async fn latency(durability: Durability) {
    let base = local_server().await;
    let dir = tempfile::tempdir().unwrap();
    let e = engine(
        dir.path(),
        durability,
        Arc::new(Router::new(Builtins::new().unwrap())),
        50,
    );
    let loaded = e.load(compile(&ten_steps("step"))).await.unwrap();
    let mut samples = Vec::new();
    for i in 0..120 {
        let start = Instant::now();
        let o = e
            .submit(&loaded, "ten", serde_json::json!({ "base": base }))
            .await
            .unwrap()
            .outcome()
            .await;
        assert_eq!(
            o.status,
            flow_runtime::RunStatus::Completed,
            "{:?}",
            o.error
        );
        if i >= 20 {
            samples.push(start.elapsed());
        }
    }
    samples.sort();
    println!(
        "latency[{durability:?}]: 10 sequential http steps, p50 {:.2} ms, p95 {:.2} ms over {} runs",
        samples[samples.len() / 2].as_secs_f64() * 1e3,
        samples[samples.len() * 95 / 100].as_secs_f64() * 1e3,
        samples.len()
    );
}

/// A burst of 10,000 submissions: time until all are durably accepted.
async fn burst() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), Durability::Full, Arc::new(Noop), 50);
    let loaded = e
        .load(compile("workflow parked {\n  wait 1h\n}\n"))
        .await
        .unwrap();
    let start = Instant::now();
    let futs: Vec<_> = (0..10_000)
        .map(|_| {
            let e = e.clone();
            let l = Arc::clone(&loaded);
            async move {
                e.submit(&l, "parked", serde_json::json!({}))
                    .await
                    .map(|h| h.key)
            }
        })
        .collect();
    let accepted = futures_join(futs)
        .await
        .into_iter()
        .filter(Result::is_ok)
        .count();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "burst: {accepted} submissions durably accepted in {:.3}s ({:.0}/s)",
        secs,
        accepted as f64 / secs
    );
}

/// Sustained runs per second of the 10-step http workflow against a local server.
async fn sustained(durability: Durability) {
    let base = local_server().await;
    let dir = tempfile::tempdir().unwrap();
    let e = engine(
        dir.path(),
        durability,
        Arc::new(Router::new(Builtins::new().unwrap())),
        500,
    );
    let loaded = e.load(compile(&ten_steps("step"))).await.unwrap();
    let runs = 3000;
    let start = Instant::now();
    let futs: Vec<_> = (0..runs)
        .map(|_| {
            let e = e.clone();
            let l = Arc::clone(&loaded);
            let base = base.clone();
            async move {
                e.submit(&l, "ten", serde_json::json!({ "base": base }))
                    .await
                    .unwrap()
                    .outcome()
                    .await
            }
        })
        .collect();
    let completed = futures_join(futs)
        .await
        .into_iter()
        .filter(|o| o.status == flow_runtime::RunStatus::Completed)
        .count();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sustained[{durability:?}]: {completed}/{runs} runs of 10 http steps in {secs:.2}s = {:.0} runs/s ({:.0} http steps/s)",
        completed as f64 / secs,
        completed as f64 * 10.0 / secs
    );
}

/// 100,000 runs parked on `wait` timers: resident memory.
async fn parked() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), Durability::Full, Arc::new(Noop), 50);
    let loaded = e.load(compile("workflow parked(n: int) -> int {\n  step a = http.get(url: \"x\")\n  wait 1h\n  return n\n}\n")).await.unwrap();
    let before = rss_mib();
    let start = Instant::now();
    let n = 100_000;
    let mut keys = Vec::with_capacity(n);
    for chunk in 0..(n / 10_000) {
        let futs: Vec<_> = (0..10_000)
            .map(|i| {
                let e = e.clone();
                let l = Arc::clone(&loaded);
                async move {
                    e.submit(&l, "parked", serde_json::json!({ "n": chunk * 10_000 + i }))
                        .await
                        .unwrap()
                }
            })
            .collect();
        keys.extend(futures_join(futs).await);
    }
    // Let every run reach its timer.
    loop {
        let waiting = e
            .store()
            .list_runs(&flow_runtime::store::RunFilter {
                status: Some(flow_runtime::RunStatus::Waiting),
                ..Default::default()
            })
            .map(|r| r.len())
            .unwrap_or(0);
        if waiting >= n || start.elapsed() > Duration::from_secs(600) {
            println!(
                "parked: {waiting} runs waiting after {:.1}s",
                start.elapsed().as_secs_f64()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "parked: RSS {:.0} MiB before, {:.0} MiB with {n} runs parked on timers",
        before,
        rss_mib()
    );
    drop(keys);
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let all = which.is_empty() || which.iter().any(|w| w == "all");
    let want = |name: &str| all || which.iter().any(|w| w == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if want("transitions") {
            transitions(Durability::Full).await;
        }
        if want("latency") {
            latency(Durability::Full).await;
            latency(Durability::Process).await;
        }
        if want("burst") {
            burst().await;
        }
        if want("sustained") {
            sustained(Durability::Full).await;
            sustained(Durability::Process).await;
        }
        if want("parked") {
            parked().await;
        }
    });
}
