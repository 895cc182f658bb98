//! `flow test`: run the `test` blocks of `.flow` files with typed mocks and report like
//! `cargo test`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use flow_grammar::SourceMap;
use miette::{IntoDiagnostic, WrapErr, miette};

use super::EXIT_FAILURE;
use super::output::{ColorChoice, Format, plural, print_diagnostics};
use super::sources::{collect_flow_files, compile_file};

#[derive(Args)]
pub struct TestArgs {
    /// Files, or directories searched recursively for `*.flow` files. Default: `.`
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Run only the tests whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
}

pub fn run(args: TestArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let files = collect_flow_files(&paths)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .into_diagnostic()?;
    let scratch = std::env::temp_dir().join(format!("flow-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)
        .into_diagnostic()
        .wrap_err("cannot create a scratch directory")?;
    let paint = |code: &str, text: &str| {
        if color.stderr() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    };
    let (mut passed, mut failed, mut broken_files) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for file in &files {
        let mut sources = SourceMap::new();
        let (_, compiled) = compile_file(&mut sources, file)?;
        let compilation = match compiled {
            Ok(c) => c,
            Err(d) => {
                print_diagnostics(&sources, &[d], Format::Human, color);
                broken_files += 1;
                continue;
            }
        };
        let program = compilation.program;
        if program.tests.is_empty() {
            continue;
        }
        let errors: Vec<_> = compilation
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .cloned()
            .collect();
        if !errors.is_empty() {
            print_diagnostics(&sources, &errors, Format::Human, color);
            broken_files += 1;
            continue;
        }
        let program = Arc::new(program);
        let selected: Vec<usize> = (0..program.tests.len())
            .filter(|i| {
                args.filter
                    .as_deref()
                    .is_none_or(|f| program.tests[*i].name.contains(f))
            })
            .collect();
        if selected.is_empty() {
            continue;
        }
        eprintln!(
            "\nrunning {} in {}",
            plural(selected.len(), "test"),
            file.display()
        );
        for index in selected {
            let dir = scratch.join(format!("{}-{index}", failed + passed));
            std::fs::create_dir_all(&dir).into_diagnostic()?;
            let report = rt.block_on(flow_runtime::testing::run_test(
                Arc::clone(&program),
                index,
                &dir,
            ));
            let _ = std::fs::remove_dir_all(&dir);
            match &report.failure {
                None => {
                    passed += 1;
                    eprintln!("test {} ... {}", report.name, paint("32", "ok"));
                }
                Some(f) => {
                    failed += 1;
                    eprintln!("test {} ... {}", report.name, paint("31", "FAILED"));
                    let place = sources
                        .get(f.span.file)
                        .map(|src| {
                            let lc = src.line_column(f.span.start as usize);
                            format!("{}:{}:{}", src.name, lc.line, lc.column)
                        })
                        .unwrap_or_else(|| file.display().to_string());
                    let excerpt = sources
                        .get(f.span.file)
                        .map(|src| src.slice(f.span).trim().to_owned())
                        .unwrap_or_default();
                    failures.push(format!(
                        "---- {} ----\n{place}: {}\n    {excerpt}",
                        report.name, f.message
                    ));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if !failures.is_empty() {
        eprintln!("\nfailures:\n");
        for f in &failures {
            eprintln!("{f}\n");
        }
    }
    if passed + failed == 0 && broken_files == 0 {
        return Err(miette!("no `test` blocks found"));
    }
    let verdict = if failed == 0 && broken_files == 0 {
        paint("32", "ok")
    } else {
        paint("31", "FAILED")
    };
    eprintln!("\ntest result: {verdict}. {passed} passed; {failed} failed");
    if broken_files > 0 {
        eprintln!("{} did not compile", plural(broken_files, "file"));
    }
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && broken_files == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}
