//! `flow serve --role worker`: a process that only executes runs. It claims queued runs
//! (`flow run --enqueue`, or runs other processes queued) and the runs of workers whose
//! lease lapsed, executes them with the programs the store keeps, and stops on
//! SIGTERM/SIGINT after giving its runs in flight the grace period.

use std::process::ExitCode;
use std::sync::Arc;

use flow_runtime::builtins::Builtins;
use flow_runtime::worker::{WorkerOptions, work};
use flow_runtime::{Engine, EngineConfig, Router, Silent};
use miette::{IntoDiagnostic, WrapErr, miette};

use super::run::open_store;
use super::runs::parse_age;
use super::serve::ServeArgs;

pub fn run(args: ServeArgs) -> miette::Result<ExitCode> {
    let grace = std::time::Duration::from_millis(parse_age(&args.grace)? as u64);
    if !args.paths.is_empty() {
        tracing::info!(
            "a worker runs the programs its runs name, from the store; the PATHs given are not loaded"
        );
    }
    let store = open_store(&args.store.store, args.exec.durability)?;
    let anchor = args.store.local_anchor();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
        .wrap_err("cannot start the runtime")?;
    let exec = args.exec.clone();
    let owner = args.owner.clone();
    rt.block_on(async move {
        let builtins = Builtins::new().map_err(|e| miette!("{e}"))?;
        let router = flow_connectors::install(Router::new(builtins), &anchor);
        let engine = Engine::new(
            store,
            Arc::new(router),
            EngineConfig {
                max_concurrent_runs: exec.max_concurrent_runs,
                max_parallel_steps: exec.max_parallel_steps,
                owner,
                ..EngineConfig::default()
            },
            Arc::new(Silent),
        )
        .map_err(|e| miette!("{e}"))?;
        // On SQLite, runs of stopped processes on this machine are found by their lock
        // files; on PostgreSQL the claims below take them once their heartbeat is stale.
        if !engine.store().is_postgres() {
            let resumed = engine.recover().await.map_err(|e| miette!("{e}"))?;
            if !resumed.is_empty() {
                tracing::info!(runs = resumed.len(), "resumed runs of a stopped process");
            }
        }
        eprintln!(
            "worker {} on {}: claiming runs (at most {} at once)",
            engine.executor(),
            engine.store().location(),
            exec.max_concurrent_runs
        );
        let report = work(
            &engine,
            WorkerOptions {
                capacity: exec.max_concurrent_runs,
                grace,
                ..WorkerOptions::default()
            },
            stop_signal(),
        )
        .await
        .map_err(|e| miette!("{e}"))?;
        engine.shutdown().await.map_err(|e| miette!("{e}"))?;
        eprintln!(
            "worker stopped: {} claimed, {} finished",
            report.claimed, report.finished
        );
        Ok::<_, miette::Report>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves at SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop the worker with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
    tracing::info!("stopping: no new claims; runs in flight get the grace period");
}
