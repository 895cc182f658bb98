//! `flow serve --role worker`: a process that only executes runs. It claims queued runs
//! (`flow run --enqueue`, or runs other processes queued) and the runs of workers whose
//! lease lapsed, executes them with the programs the store keeps, and stops on
//! SIGTERM/SIGINT after giving its runs in flight the grace period.

use std::process::ExitCode;
use std::sync::Arc;

use flow_runtime::Silent;
use flow_runtime::worker::{WorkerOptions, work};
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
    let engine = super::run::engine(
        store,
        &args.exec,
        args.owner.clone(),
        Arc::new(Silent),
        &mut super::run::Phases::from_env(),
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
        .wrap_err("cannot start the runtime")?;
    rt.block_on(async move {
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
            engine.capacity()
        );
        let report = work(
            &engine,
            WorkerOptions {
                capacity: engine.capacity(),
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
