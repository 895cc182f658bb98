//! `flow eval`: evaluate one expression over JSON input, like jq for Flow expressions.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use flow_compiler::expr::{ExprArena, Variables, check_expression};
use flow_compiler::type_expr::type_from_ast;
use flow_expr::{Program, SystemContext, Tier, Value};
use flow_grammar::SourceMap;
use flow_ir::types::Type;

use super::output::{self, ColorChoice, Format};
use super::{EXIT_FAILURE, EXIT_USAGE};

#[derive(Args)]
pub struct EvalArgs {
    /// The expression, e.g. `input.orders.filter(o, o.total > 100.0).count()`.
    pub expr: String,

    /// JSON input bound to `input`: a file, or `-` for standard input. Without it,
    /// `input` is not defined.
    #[arg(long, short = 'i', value_name = "FILE|-")]
    pub input: Option<String>,

    /// Another variable: `--var limit=10`, `--var tags='["a","b"]'` (the value is JSON;
    /// its type is inferred). May be repeated.
    #[arg(long = "var", value_name = "NAME=JSON")]
    pub vars: Vec<String>,

    /// The type of `input`, e.g. `list<{ id: string, total: double }>`; by default it
    /// is inferred from the data. A value that does not fit is reported with its path.
    #[arg(long = "type", value_name = "TYPE")]
    pub input_type: Option<String>,

    /// Interpret only; never compile to native code.
    #[arg(long, conflicts_with = "jit")]
    pub no_jit: bool,

    /// `always`: compile the expression to native code before running it (falls back
    /// to the interpreter for forms the JIT does not support); `auto` (default):
    /// compile when hot or over a large list; `never`: same as `--no-jit`.
    #[arg(long, value_name = "WHEN", value_parser = ["auto", "always", "never"])]
    pub jit: Option<String>,

    /// Print the result on one line instead of indented.
    #[arg(long, short = 'c')]
    pub compact: bool,

    /// How to report type errors: `human` (source excerpts) or `json` (one object per line).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

fn usage(message: impl std::fmt::Display) -> miette::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(EXIT_USAGE))
}

pub fn run(args: EvalArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let mut sources = SourceMap::new();
    let expr_file = sources.add("<expr>", args.expr.clone());
    let mut diagnostics = Vec::new();

    // The declared type of `input`, if given.
    let declared = match &args.input_type {
        None => None,
        Some(text) => {
            let file = sources.add("<type>", text.clone());
            match flow_grammar::parse_type(file, text) {
                Ok(t) => Some(type_from_ast(&t, &|_| None, &mut diagnostics)),
                Err(d) => {
                    diagnostics.extend(d);
                    None
                }
            }
        }
    };
    if flow_grammar::has_errors(&diagnostics) {
        output::print_diagnostics(&sources, &diagnostics, args.format, color);
        return Ok(ExitCode::from(EXIT_USAGE));
    }

    // Variables and their values.
    let mut vars: Vec<(String, Type)> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(path) = &args.input {
        let bytes = match read_input(path) {
            Ok(b) => b,
            Err(e) => return usage(format!("cannot read {path}: {e}")),
        };
        let value = match flow_expr::decode::decode_json(&bytes) {
            Ok(v) => v,
            Err(e) => return usage(format!("{path} is not valid JSON: {e}")),
        };
        let (ty, value) = match declared {
            Some(ty) => match flow_expr::json::convert_named(&value, &ty, "input") {
                Ok(v) => (ty, v),
                Err(e) => {
                    eprintln!("error: the input does not have type `{ty}`: {e}");
                    return Ok(ExitCode::from(EXIT_FAILURE));
                }
            },
            None => {
                let ty = flow_expr::decode::infer_value_type(&value);
                match flow_expr::convert(&value, &ty) {
                    Ok(v) => (ty, v),
                    Err(e) => {
                        return usage(format!(
                            "internal error: the input does not fit its inferred type: {e}"
                        ));
                    }
                }
            }
        };
        vars.push(("input".into(), ty));
        values.push(value);
    }
    for var in &args.vars {
        let Some((name, json)) = var.split_once('=') else {
            return usage(format!("--var {var}: expected NAME=JSON"));
        };
        let value = match flow_expr::decode::decode_json(json.as_bytes()) {
            Ok(v) => v,
            // A bare word is taken as a string, as people type `--var env=prod`.
            Err(_) => Value::string(json),
        };
        let ty = flow_expr::decode::infer_value_type(&value);
        let value = match flow_expr::convert(&value, &ty) {
            Ok(v) => v,
            Err(e) => return usage(format!("--var {name}: {e}")),
        };
        vars.push((name.to_string(), ty));
        values.push(value);
    }

    // Parse and check.
    let ast = match flow_grammar::parse_expression(expr_file, &args.expr) {
        Ok(a) => a,
        Err(d) => {
            output::print_diagnostics(&sources, &d, args.format, color);
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    };
    let scope = Variables(vars);
    let mut arena = ExprArena::new();
    for (name, ty) in &scope.0 {
        arena.new_local(name.clone(), ty.clone());
    }
    let root = check_expression(&ast, &scope, &mut arena, None, &mut diagnostics);
    if !diagnostics.is_empty() {
        let tally = output::print_diagnostics(&sources, &diagnostics, args.format, color);
        if tally.errors > 0 {
            return Ok(ExitCode::from(EXIT_FAILURE));
        }
    }

    // Evaluate.
    let tier = match (args.no_jit, args.jit.as_deref()) {
        (true, _) | (_, Some("never")) => Tier::Interpreter,
        (_, Some("always")) => Tier::Jit,
        _ => Tier::Auto,
    };
    let program = Program::new(Arc::new(arena)).with_tier(tier);
    let mut locals = program.new_locals();
    for (slot, v) in locals.iter_mut().zip(values) {
        *slot = v;
    }
    match program.eval(root, &mut locals, &SystemContext) {
        Ok(v) => {
            let json = v.to_json();
            let text = if args.compact {
                serde_json::to_string(&json)
            } else {
                serde_json::to_string_pretty(&json)
            };
            let text = text.map_err(|e| miette::miette!("cannot print the result: {e}"))?;
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            let _ = writeln!(out, "{text}");
            // The process ends here: freeing a large input value by value would only
            // cost time the operating system saves us.
            std::mem::forget(locals);
            std::mem::forget(program);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_FAILURE))
        }
    }
}

fn read_input(path: &str) -> std::io::Result<Vec<u8>> {
    if path == "-" {
        let mut buf = Vec::new();
        std::io::stdin().lock().read_to_end(&mut buf)?;
        Ok(buf)
    } else {
        std::fs::read(PathBuf::from(path))
    }
}
