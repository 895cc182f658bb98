//! `flow signal`: sends a signal to a run that waits for it (`step s = wait
//! signal("NAME") as T`), through a store file or a running `flow serve`.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use flow_ir::artefact::Artefact;
use flow_runtime::signals::{SignalError, SignalRequest};
use miette::{IntoDiagnostic, miette};
use serde_json::Value as Json;

use super::EXIT_FAILURE;
use super::output::{ColorChoice, Format};
use super::run::{DurabilityArg, StoreArgs, open_store};

#[derive(Args)]
pub struct SignalArgs {
    /// The run to signal (its id, as `flow runs list` shows it).
    #[arg(value_name = "RUN_ID")]
    pub run: String,

    /// The signal's name, as the workflow's `wait signal("NAME")` writes it.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// The payload: JSON, checked against the type the workflow waits for (`as T`), or
    /// `@path` to read it from a file. Default: `null`.
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,

    /// An id for this signal: sending again with the same id stores nothing more (for a
    /// sender that retries).
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// How to print what was stored: a sentence, or one JSON object (`run`, `signal`,
    /// `seq`, `duplicate`).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    #[command(flatten)]
    pub store: StoreArgs,

    /// With `--server`, send it through a running `flow serve`'s run API.
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

pub fn run(args: SignalArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let payload = payload(args.data.as_deref())?;
    if args.remote.server.is_some() {
        return super::remote::signal_remote(
            args.remote,
            &args.run,
            &args.name,
            &payload,
            args.id.as_deref(),
            args.format,
        );
    }
    let store = open_store(&args.store.store, DurabilityArg::Full)?;
    let request = SignalRequest {
        run_id: args.run,
        name: args.name,
        payload,
        id: args.id,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let program_of = |run: &flow_runtime::store::RunRow| {
        let bytes = store
            .program(&run.program)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("program {} is not in the store", run.program))?;
        Artefact::decode(bytes)
            .map(|a| Arc::new(a.program))
            .map_err(|e| e.to_string())
    };
    let now = chrono_now_ms();
    let sent = rt.block_on(flow_runtime::signals::send(
        &store,
        None,
        request,
        &program_of,
        now,
    ));
    match sent {
        Ok((_, sent)) => {
            match args.format {
                Format::Json => println!("{}", serde_json::to_string(&sent).into_diagnostic()?),
                Format::Human if sent.duplicate => println!(
                    "signal `{}` was already sent to run {} with this id (#{}); nothing new stored",
                    sent.signal, sent.run, sent.seq
                ),
                Format::Human => println!(
                    "signal `{}` stored for run {} (#{}); a run that waits takes it within a second",
                    sent.signal, sent.run, sent.seq
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(SignalError::Store(e)) => Err(miette!("{e}")),
        Err(e) => {
            eprintln!("error: {e}; nothing was stored");
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

/// The payload argument: JSON text, `@path`, or `null` when absent.
fn payload(data: Option<&str>) -> miette::Result<Json> {
    let text = match data {
        None => return Ok(Json::Null),
        Some(d) => match d.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(Path::new(path))
                .into_diagnostic()
                .map_err(|e| miette!("cannot read the payload from `{path}`: {e}"))?,
            None => d.to_owned(),
        },
    };
    serde_json::from_str(&text).map_err(|e| miette!("--data is not JSON: {e}"))
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
