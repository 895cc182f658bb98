//! `flow runs`: list, inspect, cancel and prune the runs journaled in a store.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use flow_runtime::report::{RunDetail, run_detail};
use flow_runtime::store::{RunFilter, RunStatus};
use miette::{IntoDiagnostic, miette};

use super::EXIT_FAILURE;
use super::output::{ColorChoice, Format};
use super::run::{DurabilityArg, StoreArgs, open_store};

#[derive(Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: RunsCommand,

    #[command(flatten)]
    pub store: StoreArgs,

    /// With `--server`, list, show and cancel the runs of a running `flow serve`.
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs of this workflow.
        #[arg(long, short = 'w', value_name = "NAME")]
        workflow: Option<String>,
        /// Only runs with this status (pending, running, waiting, completed, failed, cancelled).
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// Most runs to show.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        /// `human` (a table) or `json` (one object per line).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Show one run: status, input, output, error, and each step's status, attempts,
    /// duration and error.
    Show {
        #[arg(value_name = "RUN_ID")]
        run: String,
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Cancel an unfinished run (and its child runs). A process executing it stops it
    /// within a second; nothing already done is undone.
    Cancel {
        #[arg(value_name = "RUN_ID")]
        run: String,
    },
    /// Delete finished runs (with their journal) created longer ago than a duration.
    Prune {
        /// `30d`, `12h`, `90m`, `1w`.
        #[arg(long, value_name = "DURATION")]
        older_than: String,
    },
}

/// Parses `30d`, `24h`, `1h30m`, `500ms`, `2w` into milliseconds.
pub fn parse_age(text: &str) -> miette::Result<i64> {
    let mut total: i64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(miette!("empty duration"));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(miette!("`{text}` is not a duration like 30d, 24h or 90m"));
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| miette!("`{text}` is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            other => {
                return Err(miette!(
                    "unknown unit `{other}` in `{text}` (use ms, s, m, h, d or w)"
                ));
            }
        };
        total = total.saturating_add(n.saturating_mul(unit));
        rest = &rest[unit_len..];
    }
    Ok(total)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn time_text(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn ms_text(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => flow_runtime::format_duration(std::time::Duration::from_millis(
            u64::try_from(ms).unwrap_or(0),
        )),
        None => "-".into(),
    }
}

pub fn run(args: RunsArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    if args.remote.server.is_some() {
        return super::remote::runs_remote(args.remote, &args.command);
    }
    let store = open_store(&args.store.store, DurabilityArg::Full)?;
    match args.command {
        RunsCommand::List {
            workflow,
            status,
            limit,
            format,
        } => {
            let status = match status {
                Some(s) => Some(RunStatus::parse(&s).ok_or_else(|| {
                    miette!("unknown status `{s}` (pending, running, waiting, completed, failed, cancelled)")
                })?),
                None => None,
            };
            let runs = store
                .list_runs(&RunFilter {
                    workflow,
                    status,
                    limit: Some(limit),
                    ..RunFilter::default()
                })
                .map_err(|e| miette!("{e}"))?;
            match format {
                Format::Json => {
                    for r in &runs {
                        println!("{}", serde_json::to_string(r).into_diagnostic()?);
                    }
                }
                Format::Human => {
                    if runs.is_empty() {
                        eprintln!("no runs in {}", store.location());
                    } else {
                        println!(
                            "{:<22} {:<24} {:<10} {:<21} {:>9}",
                            "RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION"
                        );
                        for r in &runs {
                            println!(
                                "{:<22} {:<24} {:<10} {:<21} {:>9}",
                                r.run_id,
                                r.workflow,
                                r.status.as_str(),
                                time_text(r.created_at),
                                ms_text(r.finished_at.map(|f| f - r.created_at))
                            );
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { run, format } => {
            let detail = run_detail(&store, &run).map_err(|e| miette!("{e}"))?;
            match format {
                Format::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&detail).into_diagnostic()?
                ),
                Format::Human => print_detail(&detail),
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Cancel { run } => {
            let row = store
                .run_by_id(&run)
                .map_err(|e| miette!("{e}"))?
                .ok_or_else(|| miette!("no run `{run}` in this store"))?;
            if row.status.is_final() {
                eprintln!("run {run} has already {}", row.status.as_str());
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .into_diagnostic()?;
            rt.block_on(store.cancel_run(row.key, now_ms()))
                .map_err(|e| miette!("{e}"))?;
            eprintln!("cancelled run {run}");
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Prune { older_than } => {
            let age = parse_age(&older_than)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .into_diagnostic()?;
            let n = rt
                .block_on(store.prune(now_ms() - age))
                .map_err(|e| miette!("{e}"))?;
            eprintln!(
                "pruned {n} finished run{} older than {older_than}",
                if n == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_detail(d: &RunDetail) {
    let r = &d.run;
    println!("run       {}", r.run_id);
    println!("workflow  {}", r.workflow);
    println!("status    {}", r.status.as_str());
    println!("started   {}", time_text(r.created_at));
    println!("duration  {}", ms_text(d.duration_ms));
    println!("input     {}", r.input);
    if let Some(o) = &r.output {
        println!("output    {o}");
    }
    if let Some(e) = &r.error {
        let message = e
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| e.to_string());
        println!("error     {message}");
    }
    if !d.steps.is_empty() {
        println!(
            "\n{:<28} {:<10} {:>8} {:>9}  ERROR",
            "STEP", "STATUS", "ATTEMPTS", "DURATION"
        );
        for s in &d.steps {
            let err = match (&s.error, &s.waiting_for) {
                (Some(e), _) => format!("{}: {}", e.kind.as_str(), e.message),
                (None, Some(signal)) => {
                    format!(
                        "waiting for signal `{signal}` (flow signal {} {signal})",
                        r.run_id
                    )
                }
                (None, None) => match &s.waiting_for_event {
                    Some(event) => format!("waiting for event `{event}`"),
                    None => String::new(),
                },
            };
            println!(
                "{:<28} {:<10} {:>8} {:>9}  {err}",
                s.step,
                s.status,
                s.attempts,
                ms_text(s.duration_ms)
            );
        }
    }
    for (key, at) in &d.timers {
        println!("timer     {key} fires {}", time_text(*at));
    }
    for line in &d.logs {
        println!("log       {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_age("1h30m").unwrap(), 5_400_000);
        assert_eq!(parse_age("250ms").unwrap(), 250);
        assert!(parse_age("soon").is_err());
        assert!(parse_age("5y").is_err());
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(time_text(0), "1970-01-01 00:00:00Z");
        assert_eq!(time_text(1_764_115_200_000), "2025-11-26 00:00:00Z");
    }
}
