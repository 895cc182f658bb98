//! Where compile time goes on the benchmark program (500 workflows × 20 steps): the
//! calling thread's CPU time (checking and lowering; parsing runs on parser threads
//! while this thread waits) next to the wall-clock time of the whole compile. Linux only
//! (reads `/proc/thread-self/schedstat`).
//!
//! `cargo run --release -p flow-compiler --example check_cpu` (`FLOW_CHECK_RUNS=N` for N runs, 5 by default)

// The global allocator (the `flow` binary's) comes with the included bench module.

#[path = "../benches/check.rs"]
#[allow(dead_code)]
mod bench;

fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn main() {
    let src = bench::generated_program(500);
    println!("{} lines", src.lines().count());
    let runs: usize = std::env::var("FLOW_CHECK_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    for run in 1..=runs {
        let cpu0 = thread_cpu_ns();
        let wall = std::time::Instant::now();
        let (_, compilation) = flow_compiler::compile_source("generated.flow", &src);
        let wall = wall.elapsed();
        let cpu = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.1} ms", (b - a) as f64 / 1e6),
            _ => "unavailable".into(),
        };
        println!(
            "run {run}: check + lower {cpu} CPU on the calling thread; whole compile {:.1} ms wall; {} diagnostics",
            wall.as_secs_f64() * 1e3,
            compilation.diagnostics.len()
        );
    }
}
