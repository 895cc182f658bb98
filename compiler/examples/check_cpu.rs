//! Where compile time goes on the benchmark program (500 workflows × 20 steps): the wall
//! time of each whole compile (parsing, checking, lowering), with the minimum and median
//! over the runs, and the CPU time of the calling thread (loading and declarations, the
//! first half of the workflows, assembly; parsing and the second half of the workflows
//! run on other threads). Linux only for the CPU figure (reads
//! `/proc/thread-self/schedstat`).
//!
//! `cargo run --release -p flow-compiler --example check_cpu` (`FLOW_CHECK_RUNS=N` for N
//! runs, 5 by default; `FLOW_CHECK_DUMP=FILE` writes the program to FILE and stops).

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
    if let Ok(path) = std::env::var("FLOW_CHECK_DUMP") {
        if let Err(e) = std::fs::write(&path, &src) {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
        return;
    }
    println!("{} lines", src.lines().count());
    let runs: usize = std::env::var("FLOW_CHECK_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5)
        .max(1);
    let mut walls = Vec::with_capacity(runs);
    for run in 1..=runs {
        let cpu0 = thread_cpu_ns();
        let wall = std::time::Instant::now();
        let (sources, compilation) = flow_compiler::compile_source("generated.flow", &src);
        let wall = wall.elapsed().as_secs_f64() * 1e3;
        let cpu = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) => format!("{:.1} ms", (b - a) as f64 / 1e6),
            _ => "unavailable".into(),
        };
        println!(
            "run {run}: whole compile {wall:.1} ms wall; calling thread {cpu} CPU; {} diagnostics",
            compilation.diagnostics.len()
        );
        walls.push(wall);
        // Freed outside the timing, as the criterion benchmark does.
        drop((sources, compilation));
    }
    walls.sort_by(f64::total_cmp);
    println!(
        "whole compile over {runs} runs: min {:.1} ms, median {:.1} ms",
        walls[0],
        walls[walls.len() / 2]
    );
}
