//! flow-server: `flow serve`, the always-on engine. It loads programs as a numbered
//! deployment ([`deployment`]), fires schedules ([`schedule`]), serves webhooks and
//! integration events ([`hooks`]), and answers the run API ([`api`]) behind API keys
//! ([`keys`]), with Prometheus metrics ([`metrics`]) and per-caller rate limits
//! ([`limits`]), a dashboard for people at `/ui/` ([`ui`]) and approval pages behind
//! signed links ([`approval`]). It sits above the runtime and links no compiler: programs arrive as
//! `.flowc` artefacts, and reloading sources from disk is a callback the binary gives.

pub mod api;
pub mod app;
pub mod approval;
pub mod deployment;
pub mod error;
pub mod hooks;
pub mod keys;
pub mod limits;
pub mod listen;
pub mod metrics;
pub mod schedule;
pub mod ui;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use flow_connectors::{VaultConnections, VaultLocation};
use flow_ir::artefact::Artefact;
use flow_runtime::Engine;

pub use app::{Options, Reload};
pub use deployment::{DeployError, Deployment};

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot deploy: {0}")]
    Deploy(#[from] DeployError),
    #[error(transparent)]
    Store(#[from] flow_runtime::StoreError),
    #[error(transparent)]
    Engine(#[from] flow_runtime::EngineError),
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// What a server process does (`flow serve --role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// The HTTP API, webhooks, integration events and the dashboard.
    pub api: bool,
    /// Fires schedules.
    pub scheduler: bool,
    /// Executes runs: those this process starts, queued ones it claims, and those of
    /// processes that died. Without it, the engine queues what it starts
    /// (`EngineConfig::executes`) for the workers.
    pub worker: bool,
}

impl Default for Roles {
    fn default() -> Roles {
        Roles {
            api: true,
            scheduler: true,
            worker: true,
        }
    }
}

/// How `flow serve` runs.
pub struct Config {
    pub roles: Roles,
    pub listen: SocketAddr,
    /// A second address serving `/metrics` without a key.
    pub metrics_listen: Option<SocketAddr>,
    pub options: Options,
    pub reload: Option<Reload>,
    /// How long in-flight runs get to reach the journal after SIGTERM/SIGINT.
    pub grace: Duration,
    /// Signs approval links (the same signer the engine's `approval.link` uses); its
    /// public URL defaults to the address the server listens on.
    pub links: Arc<approval::Signer>,
}

/// Where a started server listens.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Where the API listens (`None` without the `api` role).
    pub addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    pub version: i64,
}

/// Serves until SIGTERM or SIGINT: prepares the server's tables, binds, resumes orphaned
/// runs, deploys `artefacts`, calls `ready` with the addresses, and serves. Runs left
/// unfinished after the grace period resume at the next start.
pub async fn serve(
    engine: Engine,
    artefacts: Vec<Artefact>,
    config: Config,
    ready: impl FnOnce(Bound),
) -> Result<(), ServeError> {
    let store = engine.store().clone();
    keys::prepare(&store).await?;
    deployment::prepare(&store).await?;
    schedule::prepare(&store).await?;
    hooks::prepare(&store).await?;
    ui::session::prepare(&store).await?;
    let roles = config.roles;
    // Bound before runs resume, so a resumed run's `approval.link` knows the address.
    let listener = if roles.api {
        Some(
            tokio::net::TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: config.listen,
                    source,
                })?,
        )
    } else {
        None
    };
    let addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
    if let Some(addr) = addr {
        config.links.set_base(&format!("http://{addr}"));
    }
    if roles.worker && !store.is_postgres() {
        let recovered = engine.recover().await?;
        if !recovered.is_empty() {
            tracing::info!(runs = recovered.len(), "resumed runs of a stopped process");
        }
    }
    let deployed = deployment::activate(&engine, artefacts, "start").await?;
    let connections = Arc::new(VaultConnections::new(VaultLocation::of_store(&store)));
    let state = Arc::new(app::Shared {
        engine,
        deployment: RwLock::new(Arc::new(deployed)),
        limits: limits::RateLimits::new(config.options.rate_per_second),
        options: config.options,
        metrics: metrics::install(),
        reload: config.reload,
        started: Instant::now(),
        deploying: tokio::sync::Mutex::new(()),
        connections,
        buffered: schedule::Buffered::default(),
        health: ui::operate::HealthCache::default(),
        links: Arc::clone(&config.links),
    });
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|source| ServeError::Listen { addr: a, source })?,
        ),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let scheduler = roles
        .scheduler
        .then(|| tokio::spawn(schedule::run(Arc::clone(&state), stop_rx.clone())));
    // On SQLite, runs of stopped servers are found by their lock files; on PostgreSQL
    // the claimer below takes them once their heartbeat is stale.
    let rescuer = (roles.worker && !store.is_postgres())
        .then(|| tokio::spawn(rescue(Arc::clone(&state), stop_rx.clone())));
    // Runs queued by other processes (an `api` or `scheduler` process without workers
    // of its own, `flow run --enqueue`) are claimed here too.
    let claimer = roles.worker.then(|| {
        let (engine, mut stop) = (state.engine.clone(), stop_rx.clone());
        tokio::spawn(async move {
            let options = flow_runtime::worker::WorkerOptions {
                capacity: engine.capacity(),
                grace: Duration::ZERO,
                ..flow_runtime::worker::WorkerOptions::default()
            };
            let stopped = async move {
                let _ = stop.changed().await;
            };
            if let Err(e) = flow_runtime::worker::work(&engine, options, stopped).await {
                tracing::error!(error = %e, "the worker stopped claiming runs");
            }
        })
    });
    tokio::spawn(metrics_upkeep(Arc::clone(&state), stop_rx.clone()));
    let signals = tokio::spawn(signals(Arc::clone(&state), stop_tx));
    if let Some(l) = metrics_listener {
        let router = app::metrics_router(Arc::clone(&state));
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(l, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.changed().await;
                })
                .await;
        });
    }
    ready(Bound {
        addr,
        metrics_addr,
        version: state.deployment().version,
    });
    match listener {
        Some(listener) => {
            listen::serve(
                listener,
                app::router(Arc::clone(&state)),
                stop_rx.clone(),
                state.options.header_timeout,
                config.grace,
            )
            .await?
        }
        None => {
            let mut stop = stop_rx.clone();
            let _ = stop.changed().await;
        }
    }
    for task in [scheduler, rescuer, claimer].into_iter().flatten() {
        let _ = task.await;
    }
    signals.abort();
    let deadline = Instant::now() + config.grace;
    while in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state.engine.shutdown().await?;
    Ok(())
}

/// Top-level runs executing in this process (the metrics observer counts them).
fn in_flight() -> i64 {
    metrics::RUNS_IN_FLIGHT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Every few seconds, folds the histogram samples recorded since into their buckets
/// (without it, the exporter keeps every sample until `/metrics` is scraped, and a
/// server nobody scrapes grows by every request it serves).
async fn metrics_upkeep(state: Arc<app::Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => state.metrics.run_upkeep(),
            _ = stop.changed() => return,
        }
    }
}

/// Every few seconds, resumes the unfinished runs of processes that died (another server
/// on the same store).
async fn rescue(state: Arc<app::Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => return,
        }
        match state.engine.recover().await {
            Ok(h) if !h.is_empty() => {
                tracing::info!(runs = h.len(), "resumed runs of a stopped process")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot look for runs of stopped processes"),
        }
    }
}

/// SIGTERM and SIGINT stop the server; SIGHUP reloads its sources as a new deployment.
async fn signals(state: Arc<app::Shared>, stop: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&state).await,
        }
    }
    tracing::info!("stopping: no new requests; in-flight runs get the grace period");
    let _ = stop.send(true);
}

async fn reload(state: &app::Shared) {
    let Some(reload) = state.reload.clone() else {
        tracing::warn!("SIGHUP: this server has no sources to reload");
        return;
    };
    match tokio::task::spawn_blocking(move || reload()).await {
        Ok(Ok(artefacts)) => {
            if let Err(e) = api::admin::redeploy(state, artefacts, "reload").await {
                tracing::error!(error = %e.message, "SIGHUP: the new programs were refused; the running deployment keeps serving");
            }
        }
        Ok(Err(diagnostics)) => {
            tracing::error!(
                "SIGHUP: the sources do not check; the running deployment keeps serving\n{diagnostics}"
            );
        }
        Err(e) => tracing::error!(error = %e, "SIGHUP: the reload stopped"),
    }
}
