//! Every example in the builtin catalogue runs: its expression must evaluate (in both
//! tiers) to the value of its expected expression, or fail with the expected message.

use std::sync::Arc;

use flow_compiler::expr::{EmptyScope, ExprArena, catalogue, check_expression};
use flow_expr::{FixedContext, Program, Tier, Timestamp, Value};

fn eval(src: &str, tier: Tier) -> Result<Result<Value, flow_expr::EvalError>, String> {
    let ast = flow_grammar::parse_expression(flow_grammar::FileId(0), src)
        .map_err(|d| format!("{src}: {d:?}"))?;
    let mut arena = ExprArena::new();
    let mut diags = Vec::new();
    let root = check_expression(&ast, &EmptyScope, &mut arena, None, &mut diags);
    if flow_grammar::has_errors(&diags) {
        return Err(format!(
            "{src}: {}",
            diags
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let program = Program::new(Arc::new(arena)).with_tier(tier);
    let mut locals = program.new_locals();
    Ok(program.eval(root, &mut locals, &FixedContext(Timestamp::default())))
}

#[test]
fn catalogue_examples_run() {
    let mut failures = Vec::new();
    let mut count = 0;
    for f in catalogue::functions() {
        for ex in f.examples {
            for tier in [Tier::Interpreter, Tier::Jit] {
                count += 1;
                let got = match eval(ex.expr, tier) {
                    Ok(r) => r,
                    Err(e) => {
                        failures.push(format!("{:?}: does not check: {e}", f.overload));
                        continue;
                    }
                };
                if let Some(message) = ex.result.strip_prefix("error:") {
                    match got {
                        Err(e) if e.message.contains(message.trim()) => {}
                        other => failures.push(format!(
                            "{:?} {tier:?}: {} gave {other:?}, expected an error with {message:?}",
                            f.overload, ex.expr
                        )),
                    }
                    continue;
                }
                let want = match eval(ex.result, Tier::Interpreter) {
                    Ok(Ok(v)) => v,
                    other => {
                        failures.push(format!(
                            "{:?}: expected value {} does not evaluate: {other:?}",
                            f.overload, ex.result
                        ));
                        continue;
                    }
                };
                match got {
                    Ok(v) if format!("{v:?}") == format!("{want:?}") => {}
                    other => failures.push(format!(
                        "{:?} {tier:?}: {} gave {other:?}, expected {want:?}",
                        f.overload, ex.expr
                    )),
                }
            }
        }
    }
    assert!(count > 150, "only {count} example runs");
    assert!(
        failures.is_empty(),
        "{} failing examples:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
