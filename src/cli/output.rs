//! How the CLI writes: colour decisions, output formats and diagnostic printing.

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use flow_grammar::render::Renderer;
use flow_grammar::{Diagnostic, Severity, SourceMap};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream: `auto` means a terminal and no `NO_COLOR` in the environment.
    pub fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }

    pub fn stderr(self) -> bool {
        self.enabled(std::io::stderr().is_terminal())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Reports for people, with source excerpts.
    #[default]
    Human,
    /// One JSON object per line, for programs.
    Json,
}

/// Counts of what was reported.
#[derive(Default, Debug, Clone, Copy)]
pub struct Tally {
    pub errors: usize,
    pub warnings: usize,
}

/// Prints diagnostics: human reports on stderr, or JSON lines on stdout.
pub fn print_diagnostics(
    sources: &SourceMap,
    diagnostics: &[Diagnostic],
    format: Format,
    color: ColorChoice,
) -> Tally {
    let mut tally = Tally::default();
    let mut renderer = Renderer::new(sources, color.stderr());
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    for diagnostic in diagnostics {
        match diagnostic.severity {
            Severity::Error => tally.errors += 1,
            Severity::Warning => tally.warnings += 1,
        }
        match format {
            Format::Human => {
                let _ = write!(stderr.lock(), "{}", renderer.terminal(diagnostic));
            }
            Format::Json => {
                let _ = writeln!(stdout.lock(), "{}", renderer.json(diagnostic));
            }
        }
    }
    tally
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}
