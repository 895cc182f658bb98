//! `flow compile`: check a `.flow` file and write it as a `.flowc` artefact (the
//! workflows and every integration they use), or print its IR as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use flow_grammar::SourceMap;
use miette::{IntoDiagnostic, WrapErr, miette};

use super::EXIT_FAILURE;
use super::output::{ColorChoice, Format, plural, print_diagnostics};
use super::sources::compile_file;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Emit {
    /// The binary artefact `flow run` loads.
    Flowc,
    /// The typed IR as indented JSON, for reading.
    IrJson,
}

#[derive(Args)]
pub struct CompileArgs {
    /// The `.flow` file to compile (the files it imports are compiled with it).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Where to write. Default for `flowc`: FILE with the extension `.flowc`; for
    /// `ir-json`: standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,

    /// What to produce.
    #[arg(long, value_enum, default_value_t = Emit::Flowc)]
    pub emit: Emit,

    /// How to report problems: `human` on stderr, or `json` lines on stdout.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

pub fn run(args: CompileArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let mut sources = SourceMap::new();
    let (_, compiled) = compile_file(&mut sources, &args.file)?;
    let compilation = match compiled {
        Ok(c) => c,
        Err(d) => {
            print_diagnostics(&sources, &[d], args.format, color);
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    };
    let tally = print_diagnostics(&sources, &compilation.diagnostics, args.format, color);
    if tally.errors > 0 {
        if args.format == Format::Human {
            eprintln!(
                "not compiled: {}, {}",
                plural(tally.errors, "error"),
                plural(tally.warnings, "warning")
            );
        }
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    let program = &compilation.program;
    match args.emit {
        Emit::IrJson => {
            let json = serde_json::to_string_pretty(program).into_diagnostic()?;
            match &args.output {
                Some(out) => std::fs::write(out, json + "\n")
                    .into_diagnostic()
                    .wrap_err_with(|| format!("cannot write `{}`", out.display()))?,
                None => println!("{json}"),
            }
        }
        Emit::Flowc => {
            let bytes = flow_ir::artefact::encode(program).map_err(|e| miette!("{e}"))?;
            let out = args
                .output
                .clone()
                .unwrap_or_else(|| args.file.with_extension("flowc"));
            std::fs::write(&out, &bytes)
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot write `{}`", out.display()))?;
            if args.format == Format::Human {
                eprintln!(
                    "compiled {} → {} ({}, {}, {} bytes)",
                    args.file.display(),
                    out.display(),
                    plural(program.workflows.len(), "workflow"),
                    plural(program.integrations.len(), "integration"),
                    bytes.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
