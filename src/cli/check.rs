//! `flow check`: compile `.flow` files (names, types, dependencies) and report every
//! problem found, without running anything.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use flow_grammar::SourceMap;

use super::EXIT_FAILURE;
use super::output::{ColorChoice, Format, plural, print_diagnostics};
use super::sources::{collect_flow_files, compile_file};

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
    // A file imported by several checked files is reported once.
    let mut seen = HashSet::new();
    for path in &files {
        let (_, compiled) = compile_file(&mut sources, path)?;
        let found = match compiled {
            Ok(compilation) => compilation.diagnostics,
            Err(d) => vec![d],
        };
        for d in found {
            let file = sources
                .get(d.span.file)
                .map(|f| f.name.clone())
                .unwrap_or_default();
            if seen.insert((d.code.id, file, d.span.start, d.span.end, d.message.clone())) {
                diagnostics.push(d);
            }
        }
    }
    let tally = print_diagnostics(&sources, &diagnostics, args.format, color);
    if args.format == Format::Human {
        let checked = plural(files.len(), "file");
        if tally.errors == 0 && tally.warnings == 0 {
            eprintln!("checked {checked}: no problems");
        } else {
            eprintln!(
                "checked {checked}: {}, {}",
                plural(tally.errors, "error"),
                plural(tally.warnings, "warning")
            );
        }
    }
    Ok(if tally.errors > 0 {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}
