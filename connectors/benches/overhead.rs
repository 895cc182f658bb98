//! Driver overhead per call: the same GET requests against a local hyper server, once in
//! a bare reqwest loop (send, read, parse JSON) and once through the driver (connection
//! lookup, policies, request clauses, bearer auth, decoding, the typed result check,
//! the audit record), at the same concurrency, in the same run. The driver reads its
//! connection from a real vault (a SQLite file in a temporary directory) and writes an
//! audit row there per call, as `flow run` does.
//!
//!     cargo bench -p flow-connectors --bench overhead
//!
//! Two measurements, each side in alternating rounds after a warm-up:
//! - **paced** (the goal's condition): requests issued open-loop at a fixed rate
//!   (`FLOW_BENCH_RATE`, default 20000 per second) for `FLOW_BENCH_SECONDS` (default 3)
//!   per round, `FLOW_BENCH_ROUNDS` (default 6) rounds per side, alternating; each
//!   request's latency from the moment it is issued to its decoded result, the process's
//!   CPU time per request, and the driver's p50 against the bare loop's in each pair of
//!   rounds. Requests are evenly spaced by a pacing thread; `FLOW_BENCH_PACING=bursts`
//!   issues them in bursts once per millisecond instead (tokio's timer resolution), where
//!   the requests of a burst queue behind each other;
//! - **saturated**: `FLOW_BENCH_CONCURRENCY` (default 32) requests in flight, as many as
//!   the machine does (`FLOW_BENCH_REQUESTS`, default 100000): the cost per call when
//!   CPU is the limit.
//!
//! `FLOW_BENCH_ONLY=bare|driver` runs one side alone (for `perf` or callgrind).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flow_connectors::{Driver, DriverConfig, Vault, VaultConnections};
use flow_expr::Value;
use flow_ir::program::{ActionRef, IntegrationId};
use flow_runtime::{ActionCall, CallContext};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// The allocator of the `flow` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: &str =
    r#"{"id":"T-1","title":"Printer on fire","status":"open","priority":2,"tags":["hw","urgent"]}"#;

const SOURCE: &str = r#"
integration bench {
  base_url = "https://bench.example"
  auth = bearer(secret("token"))
  health = GET "/"
  type Ticket = { id: string, title: string, status: string, priority: int, tags: list<string> }
  /// One ticket.
  idempotent action get_ticket(id: string) -> Ticket {
    GET "/tickets/${id}"
    result response.body
  }
}
"#;

async fn serve() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_req| async {
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                            .unwrap(),
                    )
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

async fn run<F, Fut>(requests: usize, concurrency: usize, f: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let f = Arc::clone(&f);
        let next = Arc::clone(&next);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                f(i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

/// What one paced round measured.
struct Paced {
    latencies: Vec<Duration>,
    cpu: Duration,
}

/// How paced requests are issued.
#[derive(Clone, Copy, PartialEq)]
enum Pacing {
    /// Evenly spaced: request `i` is due `i / rate` seconds after the start. A pacing
    /// thread sleeps until the next one is due and issues every request due by then
    /// (the kernel's timer slack wakes it every 50–100 µs, so one or two at a time).
    Even,
    /// In bursts once per millisecond (tokio's timer resolution): the requests of a
    /// burst queue behind each other, so latency measures CPU cost more than the call.
    Bursts,
}

/// Issues `rate` requests per second for `seconds`, open-loop, and records each one's
/// latency from the moment it was issued to its decoded result, and the process's CPU
/// time.
async fn paced<F, Fut>(pacing: Pacing, rate: usize, seconds: u64, f: F) -> Paced
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let total = rate * seconds as usize;
    let cpu_before = process_cpu();
    // Each request reports its latency on a channel, so its task (and the future it
    // holds) is freed as soon as it finishes.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let issue = move |f: &F,
                      i: usize,
                      tx: &tokio::sync::mpsc::UnboundedSender<Duration>,
                      handle: &tokio::runtime::Handle| {
        let fut = f(i);
        let tx = tx.clone();
        let issued = Instant::now();
        handle.spawn(async move {
            fut.await;
            let _ = tx.send(issued.elapsed());
        });
    };
    let handle = tokio::runtime::Handle::current();
    match pacing {
        Pacing::Even => {
            let pacer = std::thread::spawn(move || {
                let spacing = 1.0 / rate as f64;
                let start = Instant::now();
                let mut i = 0;
                while i < total {
                    let elapsed = start.elapsed().as_secs_f64();
                    let due = ((elapsed / spacing) as usize + 1).min(total);
                    while i < due {
                        issue(&f, i, &tx, &handle);
                        i += 1;
                    }
                    let next = Duration::from_secs_f64(i as f64 * spacing);
                    if let Some(wait) = next.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            });
            // The pacer owns the last sender; the channel closes when it and every
            // request are done.
            tokio::task::spawn_blocking(move || pacer.join())
                .await
                .unwrap()
                .unwrap();
        }
        Pacing::Bursts => {
            let per_tick = (rate / 1000).max(1);
            let mut interval = tokio::time::interval(Duration::from_millis(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            for tick in 0..total / per_tick {
                interval.tick().await;
                for j in 0..per_tick {
                    issue(&f, tick * per_tick + j, &tx, &handle);
                }
            }
            drop(tx);
        }
    }
    let mut latencies = Vec::with_capacity(total);
    while let Some(d) = rx.recv().await {
        latencies.push(d);
    }
    latencies.sort();
    Paced {
        latencies,
        cpu: process_cpu().saturating_sub(cpu_before),
    }
}

/// CPU time (user + system) of this process so far, from /proc/self/stat.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Fields 14 and 15 of the file (utime, stime) are at 11 and 12 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The median of sorted latencies, in µs.
fn p50_us(sorted: &[Duration]) -> f64 {
    sorted
        .get(sorted.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

fn summary(label: &str, rounds: &[Paced]) -> (f64, f64) {
    let mut all: Vec<Duration> = rounds
        .iter()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    all.sort();
    let n = all.len().max(1);
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = all.iter().map(|d| us(*d)).sum::<f64>() / n as f64;
    let p50 = p50_us(&all);
    let p99 = all.get(n * 99 / 100).map_or(0.0, |d| us(*d));
    let cpu = rounds.iter().map(|r| r.cpu).sum::<Duration>().as_secs_f64() * 1e6 / n as f64;
    println!(
        "{label} p50 {p50:>6.1} µs, mean {mean:>6.1} µs, p99 {p99:>7.1} µs, CPU {cpu:>5.1} µs per request"
    );
    (p50, mean)
}

fn main() {
    let requests: usize = std::env::var("FLOW_BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let concurrency: usize = std::env::var("FLOW_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let url = serve().await;
        let (_, compilation) = flow_compiler::compile_source("bench.flow", SOURCE);
        assert!(!compilation.has_errors(), "{:?}", compilation.diagnostics);
        let program = Arc::new(compilation.program);
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::open(&dir.path().join("vault.db")).unwrap();
        let secrets = [("token".to_owned(), secrecy::SecretString::from("bench-token"))].into_iter().collect();
        vault.connect("bench", "ops", &Default::default(), Some(&url), secrets).unwrap();
        let driver = Arc::new(Driver::new(Arc::new(VaultConnections::with_vault(vault)), DriverConfig::default()));
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).build().unwrap();

        let bare = {
            let client = client.clone();
            let url = url.clone();
            move |i: usize| {
                let client = client.clone();
                let url = format!("{url}/tickets/T-{i}");
                async move {
                    let resp = client.get(&url).header("authorization", "Bearer bench-token").timeout(Duration::from_secs(100)).send().await.unwrap();
                    let bytes = resp.bytes().await.unwrap();
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    assert!(v.get("id").is_some());
                }
            }
        };
        let prepared = Arc::new(flow_runtime::Prepared::new(Arc::clone(&program), String::new()));
        let through_driver = {
            let driver = Arc::clone(&driver);
            let program = Arc::clone(&program);
            let prepared = Arc::clone(&prepared);
            // A run's id and workflow name are made once per run, as the executor does.
            let run_id: Arc<str> = Arc::from("bench");
            let workflow: Arc<str> = Arc::from("bench");
            move |i: usize| {
                let driver = Arc::clone(&driver);
                let program = Arc::clone(&program);
                let prepared = Arc::clone(&prepared);
                let run_id = Arc::clone(&run_id);
                let workflow = Arc::clone(&workflow);
                async move {
                    let integ = &program.integrations[0];
                    let action = &integ.actions[0];
                    let args = [Value::string(format!("T-{i}"))];
                    let call = ActionCall {
                        program: &program,
                        prepared: prepared.integration(IntegrationId(0)).unwrap(),
                        action_ref: ActionRef { integration: IntegrationId(0), action: 0 },
                        integration: integ,
                        action,
                        args: &args,
                    };
                    let ctx = CallContext {
                        run_id,
                        workflow,
                        step: "get".into(),
                        attempt: 1,
                        owner: None,
                        idempotency_key: None,
                        cache: None,
                        timeout: None,
                    };
                    driver.call(&call, &ctx).await.unwrap();
                }
            }
        };
        // Warm up both paths (connections, JIT tiers), then alternate measured rounds.
        run(2_000, concurrency, bare.clone()).await;
        run(2_000, concurrency, through_driver.clone()).await;
        let only = std::env::var("FLOW_BENCH_ONLY").unwrap_or_default();

        let rate: usize = std::env::var("FLOW_BENCH_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
        let seconds: u64 = std::env::var("FLOW_BENCH_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
        let rounds: usize = std::env::var("FLOW_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
        let pacing = match std::env::var("FLOW_BENCH_PACING").as_deref() {
            Ok("bursts") => Pacing::Bursts,
            _ => Pacing::Even,
        };
        let mut bare_rounds = Vec::new();
        let mut driver_rounds = Vec::new();
        for _ in 0..rounds {
            if only != "driver" {
                bare_rounds.push(paced(pacing, rate, seconds, bare.clone()).await);
            }
            if only != "bare" {
                driver_rounds.push(paced(pacing, rate, seconds, through_driver.clone()).await);
            }
        }
        let spacing = if pacing == Pacing::Even { "evenly spaced" } else { "in bursts of 1 ms" };
        println!("paced at {rate} requests/s ({spacing}), {seconds} s per round, {rounds} rounds per side:");
        let (bare_p50, bare_mean) = summary("  bare reqwest:", &bare_rounds);
        let (driver_p50, driver_mean) = summary("  driver:      ", &driver_rounds);
        println!(
            "  overhead:      {:+.1}% at p50, {:+.1}% in the mean",
            (driver_p50 / bare_p50 - 1.0) * 100.0,
            (driver_mean / bare_mean - 1.0) * 100.0
        );
        // Each driver round against the bare round just before it: the machine's speed
        // drifts between rounds, less within a pair.
        let mut pairs: Vec<f64> = bare_rounds
            .iter()
            .zip(&driver_rounds)
            .map(|(b, d)| (p50_us(&d.latencies) / p50_us(&b.latencies) - 1.0) * 100.0)
            .collect();
        pairs.sort_by(f64::total_cmp);
        if !pairs.is_empty() {
            let shown: Vec<String> = pairs.iter().map(|p| format!("{p:+.1}%")).collect();
            let n = pairs.len();
            let median = if n % 2 == 1 {
                pairs[n / 2]
            } else {
                (pairs[n / 2 - 1] + pairs[n / 2]) / 2.0
            };
            println!(
                "  p50 overhead per pair of rounds: {} (median {median:+.1}%)",
                shown.join(", ")
            );
        }

        let mut bare_t = Duration::ZERO;
        let mut driver_t = Duration::ZERO;
        for _ in 0..3 {
            if only != "driver" {
                bare_t += run(requests / 3, concurrency, bare.clone()).await;
            }
            if only != "bare" {
                driver_t += run(requests / 3, concurrency, through_driver.clone()).await;
            }
        }
        let n = (requests / 3 * 3) as f64;
        let bare_rate = n / bare_t.as_secs_f64();
        let driver_rate = n / driver_t.as_secs_f64();
        let bare_us = bare_t.as_secs_f64() * 1e6 / n;
        let driver_us = driver_t.as_secs_f64() * 1e6 / n;
        println!("saturated: {n} requests, {concurrency} in flight:");
        println!("  bare reqwest: {bare_rate:>9.0} requests/s ({bare_us:.1} µs per request of wall time)");
        println!("  driver:       {driver_rate:>9.0} requests/s ({driver_us:.1} µs per request of wall time)");
        println!("  overhead:     {:+.1}% per call", (driver_us / bare_us - 1.0) * 100.0);
    });
}
