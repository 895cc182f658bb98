//! `flow keys`: create, list and revoke the API keys `flow serve` accepts. Keys live in
//! the store; a new key is printed once, alone on standard output.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use flow_server::keys::{self, NewKey, Scope};
use miette::{IntoDiagnostic, miette};

use super::output::{ColorChoice, Format};
use super::run::{DurabilityArg, StoreArgs, open_store};
use super::runs::parse_age;

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (only this once) on standard output.
    Create {
        /// A unique name; runs the key starts record it as their actor.
        #[arg(long)]
        name: String,
        /// What the key may do (repeatable): runs:read, runs:write (start, cancel),
        /// admin (deploy, schedules, everything), metrics:read.
        #[arg(long = "scope", value_name = "SCOPE", required = true)]
        scopes: Vec<String>,
        /// Only workflows matching this glob (`billing.*`); default: all.
        #[arg(long = "workflow", value_name = "GLOB")]
        workflows: Option<String>,
        /// Runs the key starts use this owner's connections.
        #[arg(long = "as", value_name = "OWNER")]
        owner: Option<String>,
        /// Expire after this long (`90d`, `12h`); default: never.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Revoke a key by name: it is refused from then on.
    Revoke { name: String },
}

pub fn run(args: KeysArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let store = open_store(&args.store.store, DurabilityArg::Full)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    match args.command {
        KeysCommand::Create {
            name,
            scopes,
            workflows,
            owner,
            expires,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| {
                    Scope::parse(s).ok_or_else(|| {
                        miette!("unknown scope `{s}` (runs:read, runs:write, admin, metrics:read)")
                    })
                })
                .collect::<miette::Result<Vec<_>>>()?;
            let expires_in = expires.as_deref().map(parse_age).transpose()?;
            let (key, secret) = rt
                .block_on(keys::create(
                    &store,
                    NewKey {
                        name,
                        scopes,
                        workflows,
                        owner,
                        expires_in,
                    },
                ))
                .map_err(|e| miette!("{e}"))?;
            println!("{secret}");
            eprintln!(
                "created key `{}` ({}); it is shown only now",
                key.name,
                key.scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        KeysCommand::List { format } => {
            let list = keys::list(&store).map_err(|e| miette!("{e}"))?;
            match format {
                Format::Json => {
                    for k in &list {
                        println!("{}", serde_json::to_string(k).into_diagnostic()?);
                    }
                }
                Format::Human => {
                    if list.is_empty() {
                        eprintln!("no keys in {}", store.location());
                    }
                    for k in &list {
                        let state = if k.revoked_at.is_some() {
                            "revoked"
                        } else if k.expires_at.is_some_and(|e| e <= super::runs::now_ms()) {
                            "expired"
                        } else {
                            "active"
                        };
                        println!(
                            "{:<20} {:<8} {:<36} {}",
                            k.name,
                            state,
                            k.scopes
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(","),
                            k.workflows.as_deref().unwrap_or("*")
                        );
                    }
                }
            }
        }
        KeysCommand::Revoke { name } => {
            rt.block_on(keys::revoke(&store, &name))
                .map_err(|e| miette!("{e}"))?;
            eprintln!("revoked key `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}
