//! `flow fmt`: rewrite `.flow` files in the one canonical layout, or with `--check` only
//! say which files are not in it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use flow_editor::format::{FormatError, format_source};
use flow_grammar::{SourceMap, decode_source};

use super::output::{ColorChoice, Format, plural, print_diagnostics};
use super::sources::collect_flow_files;
use super::{EXIT_FAILURE, EXIT_USAGE};

#[derive(Args)]
pub struct FmtArgs {
    /// Files, or directories searched recursively for `*.flow` files. `-` reads a source
    /// on standard input and writes the formatted text to standard output.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Change no file: list the files whose layout differs and exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
}

/// What happened to one file.
enum Outcome {
    Unchanged,
    Changed,
    /// Syntax errors or a formatter failure: reported, the file left untouched.
    NotFormatted,
    /// The file could not be read or written.
    IoError,
}

pub fn run(args: FmtArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    if args.paths.iter().any(|p| p.as_os_str() == "-") {
        if args.paths.len() > 1 {
            return Err(miette::miette!(
                "`-` (standard input) cannot be combined with other paths"
            ));
        }
        return Ok(stdin(args.check, color));
    }
    let files = collect_flow_files(&args.paths)?;
    let mut changed = 0;
    let mut failed = 0;
    let mut io_errors = 0;
    for path in &files {
        match format_file(path, args.check, color) {
            Outcome::Unchanged => {}
            Outcome::Changed => {
                changed += 1;
                if args.check {
                    println!("{}", path.display());
                } else {
                    eprintln!("formatted {}", path.display());
                }
            }
            Outcome::NotFormatted => failed += 1,
            Outcome::IoError => io_errors += 1,
        }
    }
    let total = plural(files.len(), "file");
    let mut summary = if args.check {
        match changed {
            0 => format!("checked {total}: all formatted"),
            n => format!(
                "checked {total}: {} would be reformatted",
                plural(n, "file")
            ),
        }
    } else {
        format!("checked {total}: {} reformatted", plural(changed, "file"))
    };
    if failed > 0 {
        summary.push_str(&format!(
            ", {} could not be formatted",
            plural(failed, "file")
        ));
    }
    if io_errors > 0 {
        summary.push_str(&format!(
            ", {} could not be read or written",
            plural(io_errors, "file")
        ));
    }
    eprintln!("{summary}");
    Ok(if io_errors > 0 {
        ExitCode::from(EXIT_USAGE)
    } else if failed > 0 || (args.check && changed > 0) {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

fn format_file(path: &Path, check: bool, color: ColorChoice) -> Outcome {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", path.display());
            return Outcome::IoError;
        }
    };
    let name = path.display().to_string();
    let Some(text) = decode(&name, &bytes, color) else {
        return Outcome::NotFormatted;
    };
    let formatted = match format_source(&text) {
        Ok(formatted) => formatted,
        Err(error) => {
            report(&name, &text, error, color);
            return Outcome::NotFormatted;
        }
    };
    if formatted == text {
        return Outcome::Unchanged;
    }
    if !check && let Err(e) = write_atomically(path, &formatted) {
        eprintln!("error: cannot write `{}`: {e}", path.display());
        return Outcome::IoError;
    }
    Outcome::Changed
}

fn stdin(check: bool, color: ColorChoice) -> ExitCode {
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("error: cannot read standard input: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let Some(text) = decode("<stdin>", &bytes, color) else {
        return ExitCode::from(EXIT_FAILURE);
    };
    match format_source(&text) {
        Ok(formatted) if check => {
            if formatted == text {
                ExitCode::SUCCESS
            } else {
                println!("<stdin>");
                ExitCode::from(EXIT_FAILURE)
            }
        }
        Ok(formatted) => match std::io::stdout().lock().write_all(formatted.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write standard output: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Err(error) => {
            report("<stdin>", &text, error, color);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// The text of a file, or `None` (after reporting it) when it is not UTF-8.
fn decode(name: &str, bytes: &[u8], color: ColorChoice) -> Option<String> {
    let mut sources = SourceMap::new();
    match decode_source(flow_grammar::FileId(0), bytes) {
        Ok(text) => Some(text),
        Err((lossy, diagnostic)) => {
            sources.add(name, lossy);
            print_diagnostics(&sources, &[diagnostic], Format::Human, color);
            None
        }
    }
}

fn report(name: &str, text: &str, error: FormatError, color: ColorChoice) {
    match error {
        FormatError::Syntax(diagnostics) => {
            let mut sources = SourceMap::new();
            sources.add(name, text);
            let errors: Vec<_> = diagnostics.into_iter().filter(|d| d.is_error()).collect();
            print_diagnostics(&sources, &errors, Format::Human, color);
            eprintln!("{name}: not formatted: it has syntax errors");
        }
        FormatError::Internal(_) => eprintln!("error: {name}: {error}"),
    }
}

/// Replaces a file's contents through a temporary file in the same directory, so an
/// interrupted write never leaves a half-written source.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.fmt-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Ok(meta) = std::fs::metadata(path) {
            std::fs::set_permissions(&temp, meta.permissions())?;
        }
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
