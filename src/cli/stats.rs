//! `flow stats` and `flow optimize`: what past runs say about a workflow.

use std::process::ExitCode;

use clap::Args;
use flow_runtime::optimize::optimize;
use flow_runtime::report::stats;
use flow_runtime::store::RunFilter;
use miette::{IntoDiagnostic, miette};

use super::output::{ColorChoice, Format};
use super::run::{DurabilityArg, StoreArgs, open_store};
use super::runs::{now_ms, parse_age};

#[derive(Args)]
pub struct StatsArgs {
    /// The workflow; default: all runs of the store.
    #[arg(value_name = "WORKFLOW")]
    pub workflow: Option<String>,

    /// Only runs started within this long (`24h`, `7d`); default: all.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args)]
pub struct OptimizeArgs {
    /// The workflow to analyse (its latest run's program is read from the store).
    #[arg(value_name = "WORKFLOW")]
    pub workflow: String,

    /// Only runs started within this long; default: all.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,

    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    #[command(flatten)]
    pub store: StoreArgs,
}

fn since_ms(since: Option<&str>) -> miette::Result<Option<i64>> {
    since
        .map(|s| parse_age(s).map(|age| now_ms() - age))
        .transpose()
}

pub fn run_stats(args: StatsArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let store = open_store(&args.store.store, DurabilityArg::Full)?;
    let s = stats(
        &store,
        args.workflow.as_deref(),
        since_ms(args.since.as_deref())?,
    )
    .map_err(|e| miette!("{e}"))?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&s).into_diagnostic()?);
        return Ok(ExitCode::SUCCESS);
    }
    let title = s.workflow.clone().unwrap_or_else(|| "all workflows".into());
    println!(
        "{title}: {} runs ({} completed, {} failed, {} cancelled, {} unfinished)",
        s.runs, s.completed, s.failed, s.cancelled, s.unfinished
    );
    println!("success rate {:.1}%", s.success_rate * 100.0);
    println!(
        "duration     mean {:.1} ms, p50 {} ms, p95 {} ms",
        s.mean_ms, s.p50_ms, s.p95_ms
    );
    if !s.steps.is_empty() {
        println!(
            "\n{:<28} {:>6} {:>10} {:>8} {:>8} {:>8} {:>8}",
            "STEP", "CALLS", "MEAN ms", "P50 ms", "P95 ms", "RETRIES", "FAILED"
        );
        for st in &s.steps {
            println!(
                "{:<28} {:>6} {:>10.1} {:>8} {:>8} {:>8} {:>8}",
                st.step, st.runs, st.mean_ms, st.p50_ms, st.p95_ms, st.retries, st.failures
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_optimize(args: OptimizeArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let store = open_store(&args.store.store, DurabilityArg::Full)?;
    let since = since_ms(args.since.as_deref())?;
    let latest = store
        .list_runs(&RunFilter {
            workflow: Some(args.workflow.clone()),
            limit: Some(1),
            ..RunFilter::default()
        })
        .map_err(|e| miette!("{e}"))?;
    let Some(latest) = latest.into_iter().next() else {
        return Err(miette!(
            "no runs of `{}` in {}; run it first so there is something to measure",
            args.workflow,
            store.location()
        ));
    };
    let bytes = store
        .program(&latest.program)
        .map_err(|e| miette!("{e}"))?
        .ok_or_else(|| miette!("the program of run {} is missing", latest.run_id))?;
    let program = flow_ir::artefact::decode(&bytes)
        .map_err(|e| miette!("the program of run {}: {e}", latest.run_id))?;
    let (_, wf) = program
        .workflow_by_name(&args.workflow)
        .ok_or_else(|| miette!("workflow `{}` is not in its program", args.workflow))?;
    let s = stats(&store, Some(&args.workflow), since).map_err(|e| miette!("{e}"))?;
    let o = optimize(wf, &s, &program);
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&o).into_diagnostic()?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: score {}/100 over {} runs",
        o.workflow, o.score, o.runs_analysed
    );
    println!(
        "critical path ({:.0} ms): {}",
        o.critical_path_ms,
        o.critical_path.join(" → ")
    );
    if o.recommendations.is_empty() {
        println!("no recommendations");
    }
    for r in &o.recommendations {
        println!("- [{}] {} (-{})", r.kind, r.message, r.penalty);
    }
    Ok(ExitCode::SUCCESS)
}
