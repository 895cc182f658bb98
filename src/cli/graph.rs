//! `flow graph`: draw a workflow's dependency graph (DOT, Mermaid, or SVG through
//! Graphviz).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};

use clap::{Args, ValueEnum};
use flow_compiler::graph::{GraphFormat, render};
use flow_grammar::SourceMap;
use miette::{IntoDiagnostic, WrapErr, miette};

use super::EXIT_FAILURE;
use super::output::{ColorChoice, Format, print_diagnostics};
use super::sources::compile_file;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphOutput {
    /// Graphviz DOT text.
    Dot,
    /// A Mermaid flowchart (renders on GitHub and in many editors).
    Mermaid,
    /// An SVG picture, drawn by Graphviz's `dot` (which must be installed).
    Svg,
}

#[derive(Args)]
pub struct GraphArgs {
    /// The `.flow` file holding the workflow.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The workflow to draw; needed when the file has more than one.
    #[arg(long, short = 'w', value_name = "NAME")]
    pub workflow: Option<String>,

    /// What to produce.
    #[arg(long, value_enum, default_value_t = GraphOutput::Dot)]
    pub format: GraphOutput,

    /// Write to this file instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: Option<PathBuf>,
}

pub fn run(args: GraphArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let mut sources = SourceMap::new();
    let (_, compiled) = compile_file(&mut sources, &args.file)?;
    let compilation = match compiled {
        Ok(c) => c,
        Err(d) => {
            print_diagnostics(&sources, &[d], Format::Human, color);
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    };
    if compilation.has_errors() {
        print_diagnostics(&sources, &compilation.diagnostics, Format::Human, color);
        eprintln!("no graph: the file has errors");
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    let program = &compilation.program;
    let names: Vec<&str> = program.workflows.iter().map(|w| w.name.as_str()).collect();
    let workflow = match &args.workflow {
        Some(name) => program
            .workflow_by_name(name)
            .map(|(_, w)| w)
            .ok_or_else(|| {
                miette!(
                    "no workflow `{name}` in `{}`; its workflows: {}",
                    args.file.display(),
                    names.join(", ")
                )
            })?,
        None => match program.workflows.as_slice() {
            [one] => one,
            [] => return Err(miette!("`{}` declares no workflow", args.file.display())),
            _ => {
                return Err(miette!(
                    "`{}` declares several workflows; choose one with `--workflow NAME`: {}",
                    args.file.display(),
                    names.join(", ")
                ));
            }
        },
    };
    let text = match args.format {
        GraphOutput::Dot | GraphOutput::Svg => {
            render(program, workflow, GraphFormat::Dot, Some(&sources))
        }
        GraphOutput::Mermaid => render(program, workflow, GraphFormat::Mermaid, Some(&sources)),
    };
    let bytes = if args.format == GraphOutput::Svg {
        svg(&text)?
    } else {
        text.into_bytes()
    };
    match &args.output {
        Some(out) => std::fs::write(out, &bytes)
            .into_diagnostic()
            .wrap_err_with(|| format!("cannot write `{}`", out.display()))?,
        None => std::io::stdout().write_all(&bytes).into_diagnostic()?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs Graphviz `dot -Tsvg` over DOT text.
fn svg(dot: &str) -> miette::Result<Vec<u8>> {
    let child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(miette!(
                "`--format svg` needs Graphviz's `dot`, which is not installed; install it (`apt-get install graphviz`, `brew install graphviz`) or use `--format dot` or `--format mermaid`"
            ));
        }
        Err(e) => return Err(miette!("cannot run Graphviz `dot`: {e}")),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes()).into_diagnostic()?;
    }
    let out = child.wait_with_output().into_diagnostic()?;
    if !out.status.success() {
        return Err(miette!(
            "Graphviz `dot` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}
