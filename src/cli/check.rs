//! `flow check`: parse and check `.flow` files and report every problem found.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flow_grammar::{SourceMap, parse};

use super::output::{ColorChoice, Format, plural, print_diagnostics};
use super::sources::{collect_flow_files, load};
use super::EXIT_FAILURE;

#[derive(Args)]
pub struct CheckArgs {
    /// Files, or directories searched recursively for `*.flow` files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Output format: `human` reports on stderr, or `json`, one object per diagnostic on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

pub fn run(args: CheckArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let files = collect_flow_files(&args.paths)?;
    let mut sources = SourceMap::new();
    let mut diagnostics = Vec::new();
    for path in &files {
        let (file, encoding_problem) = load(&mut sources, path)?;
        if let Some(d) = encoding_problem {
            diagnostics.push(d);
            continue;
        }
        let text = sources.get(file).map(|f| f.text.clone()).unwrap_or_default();
        let (_module, problems) = parse(file, &text);
        diagnostics.extend(problems);
    }
    let tally = print_diagnostics(&sources, &diagnostics, args.format, color);
    if args.format == Format::Human {
        let checked = plural(files.len(), "file");
        if tally.errors == 0 && tally.warnings == 0 {
            eprintln!("checked {checked}: no problems");
        } else {
            eprintln!("checked {checked}: {}, {}", plural(tally.errors, "error"), plural(tally.warnings, "warning"));
        }
    }
    Ok(if tally.errors > 0 { ExitCode::from(EXIT_FAILURE) } else { ExitCode::SUCCESS })
}
