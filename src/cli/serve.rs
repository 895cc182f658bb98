//! `flow serve`: check and load programs, finish orphaned runs, then fire schedules,
//! serve webhooks and integration events, and answer the run API until SIGTERM/SIGINT.
//! SIGHUP reloads the sources as a new deployment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use flow_ir::artefact::Artefact;
use flow_runtime::builtins::Builtins;
use flow_runtime::{Engine, EngineConfig, Router};
use miette::{IntoDiagnostic, WrapErr, miette};

use super::output::ColorChoice;
use super::run::{ExecArgs, StoreArgs, load_program, open_store};
use super::sources::collect_flow_files;
use super::{EXIT_FAILURE, runs::parse_age};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// What a `flow serve` process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The HTTP API, webhooks, integration events and the dashboard.
    Api,
    /// Fires schedules.
    Scheduler,
    /// Claims queued runs from the store and executes them.
    Worker,
}

#[derive(Args)]
pub struct ServeArgs {
    /// `.flow` files, directories searched recursively for them, or `.flowc` artefacts
    /// (required unless the process is only a worker, which reads programs from the
    /// store).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// What this process does: any comma-separated subset of `api` (HTTP API, webhooks,
    /// dashboard), `scheduler` (fires schedules) and `worker` (executes runs; default:
    /// all three). Without `worker`, the runs it starts are queued for worker processes
    /// on the same store; `--role worker` alone needs no PATHs (programs come from the
    /// store). Workers on many machines share a PostgreSQL store, claim queued runs and
    /// take over those of workers that died.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_values_t = [Role::Api, Role::Scheduler, Role::Worker]
    )]
    pub role: Vec<Role>,

    /// The address to serve on; port 0 picks a free port (the address is printed once
    /// ready: `listening on http://HOST:PORT`).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Serve `/metrics` on this address too, without an API key (for a scraper on a
    /// private network); the main address then does not serve it.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// The URL people reach this server at (`https://flow.example.com`), which begins the
    /// approval links `approval.link` makes; by default the address it listens on.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// Run with the connections of this owner (API keys may name another).
    #[arg(long = "as", value_name = "OWNER")]
    pub owner: Option<String>,

    /// After SIGTERM/SIGINT, how long runs in flight get to reach the journal before the
    /// process exits (what is left resumes at the next start).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub grace: String,

    /// How long a client has to send a request's headers; a slower one is disconnected
    /// (the whole request then has 60 s, 408 beyond).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub header_timeout: String,

    /// Largest request body in bytes (larger ones get 413).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_body: usize,

    /// Requests per second allowed per API key and per webhook path (beyond: 429).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub rate_limit: u32,

    /// How the server logs to standard error (`FLOW_LOG` sets the level; default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub exec: ExecArgs,
}

/// Compiles every program under `paths`; `None` when one has errors (reported).
pub fn load_all(paths: &[PathBuf], color: ColorChoice) -> miette::Result<Option<Vec<Artefact>>> {
    let mut files = Vec::new();
    let mut sources = Vec::new();
    for p in paths {
        if p.extension().is_some_and(|e| e == "flowc") {
            files.push(p.clone());
        } else {
            sources.push(p.clone());
        }
    }
    if !sources.is_empty() {
        files.extend(collect_flow_files(&sources)?);
    }
    let mut artefacts = Vec::new();
    let mut failed = 0;
    for f in &files {
        match load_program(f, color)? {
            Some(a) => artefacts.push(a),
            None => failed += 1,
        }
    }
    Ok((failed == 0).then_some(artefacts))
}

pub fn run(args: ServeArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let roles = flow_server::Roles {
        api: args.role.contains(&Role::Api),
        scheduler: args.role.contains(&Role::Scheduler),
        worker: args.role.contains(&Role::Worker),
    };
    if roles.worker && !roles.api && !roles.scheduler {
        return super::worker::run(args);
    }
    if args.paths.is_empty() {
        return Err(miette!(
            "which programs? pass .flow files, directories or .flowc artefacts to serve"
        ));
    }
    if !roles.worker {
        eprintln!(
            "note: without the worker role, runs are queued in {} for `flow serve --role worker` processes on the same store",
            args.store.store
        );
    }
    let grace = std::time::Duration::from_millis(parse_age(&args.grace)? as u64);
    let header_timeout = std::time::Duration::from_millis(parse_age(&args.header_timeout)? as u64);
    let Some(artefacts) = load_all(&args.paths, color)? else {
        eprintln!("not served: the programs have errors");
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    let store = open_store(&args.store.store, args.exec.durability)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()
        .wrap_err("cannot start the runtime")?;
    let paths = args.paths.clone();
    let reload: flow_server::Reload =
        Arc::new(move || match load_all(&paths, ColorChoice::Never) {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err("the sources have errors (reported above)".to_owned()),
            Err(e) => Err(format!("{e:?}")),
        });
    let links = rt
        .block_on(flow_server::approval::Signer::load(
            &store,
            args.public_url.clone(),
        ))
        .map_err(|e| miette!("{e}"))?;
    let config = flow_server::Config {
        roles,
        listen: args.listen,
        metrics_listen: args.metrics_listen,
        options: flow_server::Options {
            owner: args.owner.clone(),
            body_limit: args.max_body,
            header_timeout,
            rate_per_second: args.rate_limit,
            metrics_on_main: args.metrics_listen.is_none(),
            ..flow_server::Options::default()
        },
        reload: Some(reload),
        grace,
        links: Arc::clone(&links),
    };
    let exec = args.exec.clone();
    let owner = args.owner.clone();
    rt.block_on(async move {
        let builtins = Builtins::new()
            .map_err(|e| miette!("{e}"))?
            .with_links(links);
        let router = flow_connectors::install(Router::new(builtins), &store);
        let engine = Engine::new(
            store,
            Arc::new(router),
            EngineConfig {
                executes: roles.worker,
                ..exec.engine_config(owner)
            },
            Arc::new(flow_server::metrics::Metrics),
        )
        .map_err(|e| miette!("{e}"))?;
        flow_server::serve(engine, artefacts, config, |bound| {
            eprintln!("deployment {} ready", bound.version);
            if let Some(m) = bound.metrics_addr {
                eprintln!("metrics on http://{m}/metrics");
            }
            match bound.addr {
                Some(addr) => eprintln!("listening on http://{addr}"),
                None => eprintln!("serving no API (roles: {})", roles_text(roles)),
            }
        })
        .await
        .map_err(|e| miette!("{e}"))
    })?;
    Ok(ExitCode::SUCCESS)
}

fn roles_text(roles: flow_server::Roles) -> String {
    [
        (roles.api, "api"),
        (roles.scheduler, "scheduler"),
        (roles.worker, "worker"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join(",")
}
