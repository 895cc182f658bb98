//! The command line: argument definitions and dispatch to one module per command.

mod check;
mod compile;
mod connect;
mod eval;
mod fmt;
mod graph;
mod keys;
mod lsp;
mod output;
mod remote;
mod run;
mod runs;
mod serve;
mod signal;
mod sources;
mod stats;
mod telemetry;
mod test;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use output::ColorChoice;

/// Flow: write, check and run typed, durable workflows that coordinate SaaS services.
#[derive(Parser)]
#[command(name = "flow", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// When to colour output: `auto` colours only a terminal and respects NO_COLOR.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check `.flow` files for errors without running them.
    ///
    /// Each PATH is a file or a directory searched recursively for `*.flow` files.
    /// Exits 0 when there are no errors (warnings allowed), 1 when there are errors,
    /// 2 when a path cannot be read.
    Check(check::CheckArgs),

    /// Evaluate an expression over JSON input and print the result as JSON (like jq).
    ///
    /// The input is bound to `input` (its type inferred from the data unless `--type`
    /// is given); `--var NAME=JSON` binds more variables. Type errors are reported
    /// against the expression. Exits 0 with the result, 1 on a type or evaluation
    /// error, 2 on usage and I/O errors.
    Eval(eval::EvalArgs),

    /// Rewrite `.flow` files in the canonical layout (comments kept, meaning unchanged).
    ///
    /// Each PATH is a file or a directory searched recursively for `*.flow` files; `-`
    /// formats standard input to standard output. Files with syntax errors are reported
    /// and left untouched. Exits 0 when done (with `--check`: when every file is already
    /// formatted), 1 when a file would change under `--check` or could not be formatted,
    /// 2 when a file cannot be read or written.
    Fmt(fmt::FmtArgs),

    /// Run the language server on standard input and output (for editors).
    ///
    /// Diagnostics as `flow check` reports them, hover, go to definition, references,
    /// rename, completion, signature help, outline, semantic highlighting and formatting.
    Lsp(lsp::LspArgs),

    /// Compile a `.flow` file into a `.flowc` artefact that runs without its sources.
    ///
    /// The artefact holds the file's workflows, the workflows they run and every
    /// integration they use. `--emit ir-json` prints the typed IR instead. Exits 0 when
    /// compiled, 1 when the file has errors (nothing is written), 2 on I/O errors.
    Compile(compile::CompileArgs),

    /// Draw a workflow's dependency graph as DOT, Mermaid or SVG.
    ///
    /// Steps are labelled with their action; solid edges are data, dashed edges `after`;
    /// `if`, `for` and `try` blocks are clusters. SVG needs Graphviz's `dot`.
    Graph(graph::GraphArgs),

    /// Run a workflow durably and print its output as JSON.
    ///
    /// FILE is a `.flow` file (compiled first) or a `.flowc` artefact. Every step is
    /// journaled in the store; a run interrupted in any way is finished by `flow resume`
    /// or by the next `flow run` on the same store, without repeating finished steps.
    /// Progress goes to stderr, the output to stdout. Exits 0 when the run completed,
    /// 1 when it failed (or the file has errors), 2 on usage and I/O errors.
    Run(run::RunArgs),

    /// Finish runs left unfinished by a process that stopped (crash, kill, reboot).
    ///
    /// Without RUN_IDs, resumes every unfinished run of the store whose process is gone,
    /// waiting out their timers. Prints one JSON line per run. Exits 0 when all completed.
    Resume(run::ResumeArgs),

    /// Run the `test` blocks of `.flow` files with typed mocks.
    ///
    /// Each PATH is a file or a directory searched recursively (default: `.`). Mocked
    /// actions answer as the test says; built-in actions (`file`, `console`, `http`) run
    /// for real; retry delays and `wait`s elapse at once. Reports like `cargo test` and
    /// ends with `N passed, M failed`. Exits 0 when every test passed, 1 otherwise.
    Test(test::TestArgs),

    /// List, inspect, cancel and prune journaled runs.
    ///
    /// `--format json` prints machine-readable runs: status, input, output, error and
    /// each step's status, attempts, duration and error.
    Runs(runs::RunsArgs),

    /// Statistics of past runs: count, success rate, mean/p50/p95 duration, and per
    /// step durations and retries.
    Stats(stats::StatsArgs),

    /// Recommendations for a workflow from its past runs, with a 0-100 score: the
    /// critical path, `after` edges that carry no data but lengthen it, steps that
    /// usually need retries, idempotent calls worth caching.
    Optimize(stats::OptimizeArgs),

    /// Connect an integration for an owner: settings with `--set k=v`, credentials with
    /// `--secret k` (asked for without echo, or read from standard input), stored
    /// encrypted in the vault that goes with the store (a file beside an SQLite store,
    /// the database of a PostgreSQL one).
    Connect(connect::ConnectArgs),

    /// List connections (`--format json`), activate or deactivate one, or read the
    /// audit log of credential uses.
    Connections(connect::ConnectionsArgs),

    /// Delete a connection and its credentials.
    Disconnect(connect::DisconnectArgs),

    /// Probe each connection's health endpoint: status, latency, circuit state, recent
    /// error rate and an overall score. Exits 1 when a connection is unhealthy.
    Health(connect::HealthArgs),

    /// The standard library's integrations, or one integration's actions with their
    /// signatures, its events and what a connection needs.
    Integrations(connect::IntegrationsArgs),

    /// Serve programs: fire their schedules, serve their webhooks and integration
    /// events, and answer the run API (docs/server.md).
    ///
    /// Each PATH is a `.flow` file, a directory searched for them, or a `.flowc`
    /// artefact; all are checked first and nothing starts if one has errors. Orphaned
    /// runs are finished, then the server prints `listening on http://HOST:PORT` on
    /// stderr. SIGTERM/SIGINT stop it (runs in flight get `--grace`); SIGHUP reloads the
    /// sources as a new deployment. The API needs keys from `flow keys create`.
    Serve(serve::ServeArgs),

    /// Create, list and revoke the API keys `flow serve` accepts.
    Keys(keys::KeysArgs),

    /// Check programs here and deploy them to a running server as its next version.
    Deploy(remote::DeployArgs),

    /// List a server's deployments, or roll back to an earlier one.
    Deployments(remote::DeploymentsArgs),

    /// List a server's schedules, or pause, resume or trigger one.
    Schedules(remote::SchedulesArgs),

    /// Webhook deliveries a server refused or could not match, with the reason.
    Deliveries(remote::DeliveriesArgs),

    /// Send a signal to a run that waits for it (`wait signal("NAME") as T`), through a
    /// store or a server; the payload is checked against `T` before it is stored.
    Signal(signal::SignalArgs),
}

/// Exit status for a command that found errors in the user's input.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for usage and I/O errors.
pub const EXIT_USAGE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _telemetry = telemetry::init(cli.color, &cli.command);
    let result = match cli.command {
        Command::Check(args) => check::run(args, cli.color),
        Command::Eval(args) => eval::run(args, cli.color),
        Command::Fmt(args) => fmt::run(args, cli.color),
        Command::Lsp(args) => lsp::run(args),
        Command::Compile(args) => compile::run(args, cli.color),
        Command::Graph(args) => graph::run(args, cli.color),
        Command::Run(args) => run::run(args, cli.color),
        Command::Resume(args) => run::resume(args, cli.color),
        Command::Test(args) => test::run(args, cli.color),
        Command::Runs(args) => runs::run(args, cli.color),
        Command::Stats(args) => stats::run_stats(args, cli.color),
        Command::Optimize(args) => stats::run_optimize(args, cli.color),
        Command::Connect(args) => connect::connect(args, cli.color),
        Command::Connections(args) => connect::connections(args, cli.color),
        Command::Disconnect(args) => connect::disconnect(args, cli.color),
        Command::Health(args) => connect::health(args, cli.color),
        Command::Integrations(args) => connect::integrations(args, cli.color),
        Command::Serve(args) => serve::run(args, cli.color),
        Command::Keys(args) => keys::run(args, cli.color),
        Command::Deploy(args) => remote::deploy(args, cli.color),
        Command::Deployments(args) => remote::deployments(args, cli.color),
        Command::Schedules(args) => remote::schedules(args, cli.color),
        Command::Deliveries(args) => remote::deliveries(args, cli.color),
        Command::Signal(args) => signal::run(args, cli.color),
    };
    match result {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
