//! `flow connect`, `flow connections`, `flow disconnect`, `flow health` and `flow
//! integrations`: connections to integrations (settings and encrypted credentials in the
//! vault that goes with the store), their health, and the catalogue of the standard
//! library.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use flow_connectors::catalog;
use flow_connectors::vault::Vault;
use flow_connectors::{Driver, DriverConfig, VaultConnections, VaultLocation};
use flow_runtime::store::StoreLocation;
use miette::{IntoDiagnostic, miette};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::output::{ColorChoice, Format};
use super::run::{DurabilityArg, StoreArgs, open_store};
use super::{EXIT_FAILURE, EXIT_USAGE};

#[derive(Args)]
pub struct ConnectArgs {
    /// The integration to connect (`slack`, `aws_s3`, ...; see `flow integrations`).
    #[arg(value_name = "INTEGRATION")]
    pub integration: String,

    /// Who the connection belongs to (a user or a team); runs choose it with `--as`.
    #[arg(long, value_name = "NAME")]
    pub owner: String,

    /// A plain setting the integration reads with `setting("k")` (repeatable).
    #[arg(long = "set", value_name = "K=V")]
    pub settings: Vec<String>,

    /// A credential the integration reads with `secret("k")` (repeatable). Its value is
    /// asked for without echo, or read from standard input (one line per secret, in the
    /// order given) when standard input is not a terminal; never on the command line.
    #[arg(long = "secret", value_name = "K")]
    pub secrets: Vec<String>,

    /// Send this connection's requests to another base URL (self-hosted servers, a
    /// proxy, a local test server).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args)]
pub struct ConnectionsArgs {
    #[command(subcommand)]
    pub command: ConnectionsCommand,
}

#[derive(Subcommand)]
pub enum ConnectionsCommand {
    /// List connections: integration, owner, settings, the names of the stored secrets
    /// and whether each is active. Secrets are never shown.
    List {
        /// Only this integration's connections.
        integration: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Turn a connection back on.
    Activate {
        integration: String,
        #[arg(long, value_name = "NAME")]
        owner: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Turn a connection off without deleting it: runs using it fail with an
    /// authentication error until it is activated.
    Deactivate {
        integration: String,
        #[arg(long, value_name = "NAME")]
        owner: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The audit log: every use of a connection's credentials (who, which run and step,
    /// when, with what outcome), newest first.
    Audit {
        integration: Option<String>,
        /// How many entries to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Args)]
pub struct DisconnectArgs {
    pub integration: String,
    #[arg(long, value_name = "NAME")]
    pub owner: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args)]
pub struct HealthArgs {
    /// Only this integration (default: every integration with a connection).
    pub integration: Option<String>,
    /// Only this owner's connections.
    #[arg(long = "as", value_name = "OWNER")]
    pub owner: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args)]
pub struct IntegrationsArgs {
    /// Show one integration's actions, events and connection needs in full.
    pub name: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

/// Connection settings the driver reads itself, accepted for every integration.
const DRIVER_SETTINGS: &[&str] = &["token_url", "breaker_failures", "breaker_open_for"];

/// The vault that goes with `--store`: the file beside an SQLite store, the tables of a
/// PostgreSQL one (the store is opened for them).
fn vault_location(store: &StoreArgs) -> miette::Result<VaultLocation> {
    match &store.store {
        StoreLocation::File(path) => Ok(VaultLocation::File(Vault::path_for_store(path))),
        postgres @ StoreLocation::Postgres(_) => Ok(VaultLocation::of_store(&open_store(
            postgres,
            DurabilityArg::Full,
        )?)),
    }
}

fn open_vault(store: &StoreArgs) -> miette::Result<Vault> {
    Vault::open_at(&vault_location(store)?).map_err(|e| miette!("{e}"))
}

fn usage(message: String) -> miette::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(EXIT_USAGE))
}

pub fn connect(args: ConnectArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let mut settings = BTreeMap::new();
    for s in &args.settings {
        let Some((k, v)) = s.split_once('=') else {
            return usage(format!("--set takes K=V, found `{s}`"));
        };
        settings.insert(k.trim().to_owned(), v.to_owned());
    }
    let known = stdlib_integration(&args.integration);
    if let Some(c) = &known
        && let Some(integ) = c.integration()
    {
        let (need_settings, need_secrets) = catalog::needs(integ);
        for k in settings.keys() {
            if !need_settings.contains(k) && !DRIVER_SETTINGS.contains(&k.as_str()) {
                return usage(format!(
                    "`{}` reads no setting `{k}`; its settings: {}",
                    args.integration,
                    list(&need_settings)
                ));
            }
        }
        for k in &args.secrets {
            if !need_secrets.contains(k) && k != "access_token" && k != "session_token" {
                return usage(format!(
                    "`{}` reads no secret `{k}`; its secrets: {}",
                    args.integration,
                    list(&need_secrets)
                ));
            }
        }
    }
    let secrets = read_secrets(&args.integration, &args.secrets)?;
    let vault = open_vault(&args.store)?;
    let info = vault
        .connect(
            &args.integration,
            &args.owner,
            &settings,
            args.base_url.as_deref(),
            secrets,
        )
        .map_err(|e| miette!("{e}"))?;
    eprintln!(
        "connected {} for {} (settings: {}; secrets: {})",
        info.integration,
        info.owner,
        list(info.settings.keys()),
        list(&info.secrets)
    );
    if let Some(integ) = known.as_ref().and_then(|c| c.integration()) {
        let (need_settings, need_secrets) = catalog::needs(integ);
        let missing: Vec<String> = need_settings
            .iter()
            .filter(|s| !info.settings.contains_key(*s))
            .map(|s| format!("setting `{s}`"))
            .chain(
                need_secrets
                    .iter()
                    .filter(|s| !info.secrets.contains(s))
                    .map(|s| format!("secret `{s}`")),
            )
            .collect();
        if !missing.is_empty() {
            eprintln!(
                "note: not set yet: {} (actions and events that read them will fail)",
                missing.join(", ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let v: Vec<&str> = items.into_iter().map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Reads each secret without echo from the terminal, or a line each from standard input.
fn read_secrets(
    integration: &str,
    names: &[String],
) -> miette::Result<BTreeMap<String, SecretString>> {
    let mut out = BTreeMap::new();
    if names.is_empty() {
        return Ok(out);
    }
    let tty = std::io::stdin().is_terminal();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    for name in names {
        let value = if tty {
            Zeroizing::new(
                rpassword::prompt_password(format!("{integration} secret `{name}`: "))
                    .into_diagnostic()?,
            )
        } else {
            let mut line = Zeroizing::new(String::new());
            let n = lines.read_line(&mut line).into_diagnostic()?;
            if n == 0 {
                return Err(miette!(
                    "standard input ended before the value of secret `{name}` (give one line per --secret, in order)"
                ));
            }

            Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
        };
        if value.is_empty() {
            return Err(miette!("the value of secret `{name}` is empty"));
        }
        out.insert(name.clone(), SecretString::from(value.to_string()));
    }
    Ok(out)
}

pub fn connections(args: ConnectionsArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    match args.command {
        ConnectionsCommand::List {
            integration,
            format,
            store,
        } => {
            let vault = open_vault(&store)?;
            let all = vault
                .list(integration.as_deref())
                .map_err(|e| miette!("{e}"))?;
            match format {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&all).into_diagnostic()?);
                }
                Format::Human => {
                    if all.is_empty() {
                        eprintln!(
                            "no connections; add one with `flow connect INTEGRATION --owner NAME`"
                        );
                    }
                    for c in &all {
                        let settings: Vec<String> =
                            c.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        println!(
                            "{:<16} {:<12} {:<8} settings: {}  secrets: {}{}",
                            c.integration,
                            c.owner,
                            if c.active { "active" } else { "inactive" },
                            if settings.is_empty() {
                                "none".into()
                            } else {
                                settings.join(", ")
                            },
                            list(&c.secrets),
                            c.base_url
                                .as_ref()
                                .map(|b| format!("  base_url: {b}"))
                                .unwrap_or_default(),
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectionsCommand::Activate {
            integration,
            owner,
            store,
        } => set_active(&store, &integration, &owner, true),
        ConnectionsCommand::Deactivate {
            integration,
            owner,
            store,
        } => set_active(&store, &integration, &owner, false),
        ConnectionsCommand::Audit {
            integration,
            limit,
            format,
            store,
        } => {
            let vault = open_vault(&store)?;
            let entries = vault
                .audit_log(integration.as_deref(), limit)
                .map_err(|e| miette!("{e}"))?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&entries).into_diagnostic()?
                ),
                Format::Human => {
                    for e in &entries {
                        println!(
                            "{} {:<14} {:<10} {:<28} {:<14} run {} step {} by {}",
                            chrono_ms(e.at),
                            e.integration,
                            e.owner,
                            e.purpose,
                            e.outcome,
                            e.run_id.as_deref().unwrap_or("-"),
                            e.step.as_deref().unwrap_or("-"),
                            e.actor.as_deref().unwrap_or("-"),
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn chrono_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn set_active(
    store: &StoreArgs,
    integration: &str,
    owner: &str,
    active: bool,
) -> miette::Result<ExitCode> {
    let vault = open_vault(store)?;
    if vault
        .set_active(integration, owner, active)
        .map_err(|e| miette!("{e}"))?
    {
        eprintln!(
            "{} connection of {owner} {}",
            integration,
            if active { "activated" } else { "deactivated" }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no {integration} connection for {owner}");
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}

pub fn disconnect(args: DisconnectArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let vault = open_vault(&args.store)?;
    if vault
        .disconnect(&args.integration, &args.owner)
        .map_err(|e| miette!("{e}"))?
    {
        eprintln!("disconnected {} for {}", args.integration, args.owner);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no {} connection for {}", args.integration, args.owner);
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}

pub fn health(args: HealthArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let source = Arc::new(VaultConnections::new(vault_location(&args.store)?));
    let vault = source.vault().map_err(|e| miette!("{e}"))?;
    let connected: std::collections::BTreeSet<String> = vault
        .list(args.integration.as_deref())
        .map_err(|e| miette!("{e}"))?
        .into_iter()
        .map(|c| c.integration)
        .collect();
    if let Some(name) = &args.integration
        && stdlib_integration(name).is_none()
    {
        return usage(format!(
            "no integration `{name}` in the standard library (see `flow integrations`)"
        ));
    }
    let compiled: Vec<catalog::Compiled> = connected
        .iter()
        .filter_map(|n| stdlib_integration(n))
        .collect();
    let driver = Driver::new(source.clone(), DriverConfig::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let summary = rt.block_on(flow_connectors::health::check(
        &driver,
        vault,
        &compiled,
        args.owner.as_deref(),
    ));
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&summary).into_diagnostic()?
        ),
        Format::Human => {
            let paint = |code: &str, t: &str| {
                if color.enabled(std::io::stdout().is_terminal()) {
                    format!("\x1b[{code}m{t}\x1b[0m")
                } else {
                    t.to_owned()
                }
            };
            for r in &summary.connections {
                let status = match r.status.as_str() {
                    "healthy" => paint("32", "healthy"),
                    "inactive" => paint("33", "inactive"),
                    other => paint("31", other),
                };
                println!(
                    "{:<16} {:<12} {:<10} {:>7}  circuit {:<9} errors {}{}",
                    r.integration,
                    r.owner,
                    status,
                    r.latency_ms
                        .map(|l| format!("{l}ms"))
                        .unwrap_or_else(|| "-".into()),
                    r.circuit,
                    match r.error_rate {
                        Some(rate) => format!(
                            "{:.0}% of {} calls in the last hour",
                            rate * 100.0,
                            r.calls_last_hour
                        ),
                        None => "none in the last hour".into(),
                    },
                    r.message
                        .as_ref()
                        .map(|m| format!("\n    {m}"))
                        .unwrap_or_default(),
                );
            }
            println!("score: {}/{} healthy", summary.healthy, summary.total);
            if summary.audit_write_failures > 0 {
                eprintln!(
                    "warning: the vault could not write {} audit rows or breaker states (see the log above)",
                    summary.audit_write_failures
                );
            }
        }
    }
    Ok(if summary.healthy == summary.total {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

pub fn integrations(args: IntegrationsArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let all = match &args.name {
        Some(n) => match stdlib_integration(n) {
            Some(c) => vec![c],
            None => {
                let names: Vec<String> = connected_stdlib()
                    .iter()
                    .filter_map(|c| c.integration().map(|i| i.name.clone()))
                    .collect();
                return usage(format!(
                    "no integration `{n}`; the standard library has: {}",
                    names.join(", ")
                ));
            }
        },
        None => connected_stdlib(),
    };
    let infos: Vec<catalog::Info> = all
        .iter()
        .filter_map(|c| c.integration().map(catalog::info))
        .collect();
    use std::fmt::Write as _;
    let mut out = String::new();
    match args.format {
        Format::Json => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&infos).into_diagnostic()?
            );
        }
        Format::Human => {
            for i in &infos {
                if args.name.is_none() {
                    let _ = writeln!(
                        out,
                        "{:<16} {:>2} actions {:>2} events  {}",
                        i.name,
                        i.actions.len(),
                        i.events.len(),
                        i.doc
                    );
                    continue;
                }
                let _ = writeln!(out, "{}: {}", i.name, i.doc);
                let _ = writeln!(out, "  auth: {}", i.auth.as_deref().unwrap_or("none"));
                let _ = writeln!(out, "  connection settings: {}", list(&i.settings));
                let _ = writeln!(out, "  connection secrets: {}", list(&i.secrets));
                if let Some(n) = &i.notify {
                    let _ = writeln!(out, "  notify: {n}");
                }
                let _ = writeln!(out, "  actions:");
                for a in &i.actions {
                    let _ = writeln!(
                        out,
                        "    {}{}\n        {}",
                        if a.idempotent { "idempotent " } else { "" },
                        a.signature,
                        a.doc
                    );
                }
                if !i.events.is_empty() {
                    let _ = writeln!(out, "  events:");
                    for e in &i.events {
                        let _ = writeln!(out, "    {}\n        {}", e.signature, e.doc);
                    }
                }
            }
        }
    }
    // A closed pipe (`| head`) is not an error.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
    Ok(ExitCode::SUCCESS)
}

/// The standard library's integration `name`, compiled on its own.
fn stdlib_integration(name: &str) -> Option<catalog::Compiled> {
    let compilation = flow_compiler::compile_stdlib_module(name)?;
    catalog::Compiled::find(compilation.program, name)
}

/// Every connected (non-built-in) standard-library integration, by name.
fn connected_stdlib() -> Vec<catalog::Compiled> {
    flow_stdlib::names()
        .filter_map(stdlib_integration)
        .filter(|c| c.integration().is_some_and(|i| !i.builtin))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connected_stdlib_integration_compiles_and_has_needs() {
        let all = connected_stdlib();
        assert!(all.len() >= 25, "{} integrations", all.len());
        for c in &all {
            let i = c.integration().unwrap();
            let (settings, secrets) = catalog::needs(i);
            assert!(
                !secrets.is_empty() || !settings.is_empty(),
                "{} reads no setting or secret",
                i.name
            );
        }
        let slack = stdlib_integration("slack").unwrap();
        let info = catalog::info(slack.integration().unwrap());
        assert_eq!(info.secrets, vec!["bot_token", "signing_secret"]);
        assert!(info.actions.iter().any(|a| {
            a.signature
                .starts_with("post_message(channel: string, text: string")
        }));
    }
}
