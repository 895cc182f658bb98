//! The checker is sound for the builtin catalogue: an expression that checks clean, with
//! no `dyn` anywhere in it, never fails at run time with "no such overload" (a value of a
//! kind the function does not take), which would be a type error the checker should have
//! caught. (A `dyn` value is checked when it runs, as in CEL: such failures are its
//! meaning, and cases holding one are left out.) The property test
//! builds method calls from every receiver-style signature of the catalogue on receivers
//! of many types (numbers, strings, bytes, bools, timestamps, durations, records, lists
//! and maps of them, `dyn`), with arguments of the types the signature names, chains two
//! of them, and evaluates what checks clean in the interpreter and the JIT.

use std::sync::Arc;

use flow_compiler::expr::catalogue::{self, Sig};
use flow_compiler::expr::{EmptyScope, ExprArena, check_expression};
use flow_expr::{ErrorKind, FixedContext, Program, Tier, Timestamp};
use flow_ir::types::Type;
use proptest::prelude::*;

/// Receivers, written as literals of the type they show.
const RECEIVERS: &[&str] = &[
    "[1, 2, 3]",
    "[1u, 2u]",
    "[1.5, 0.5]",
    "['b', 'a']",
    "[b'a', b'b']",
    "[true, false]",
    "[timestamp('2024-01-01T00:00:00Z'), timestamp('2023-01-01T00:00:00Z')]",
    "[duration('1s'), duration('2m')]",
    "[{'a': 1}, {'a': 2}]",
    "[[1, 2], [3]]",
    "[1, 2.5]",
    "[1, 'x']",
    "[]",
    "[{'k': 'v'}]",
    "[optional.of(1)]",
    "'hello'",
    "b'bytes'",
    "42",
    "7u",
    "2.5",
    "true",
    "timestamp('2024-03-01T12:30:00Z')",
    "duration('90s')",
    "{'a': 1, 'b': 2}",
    "{1: 'x'}",
    "optional.of('x')",
    "optional.none()",
    "dyn([1, 2])",
    "dyn('text')",
];

/// What [`type_errors`] answers for an expression holding a `dyn`: it was not run.
const DYNAMIC: &str = "(holds a dyn: not run)";

/// A literal of the type a signature parameter names, or `None` when no simple literal
/// stands for it.
fn literal(sig: &Sig) -> Option<String> {
    Some(match sig {
        Sig::Exact(t) => match t {
            Type::Int => "1".into(),
            Type::UInt => "1u".into(),
            Type::Double => "1.5".into(),
            Type::String => "'a'".into(),
            Type::Bool => "true".into(),
            Type::Bytes => "b'a'".into(),
            Type::Timestamp => "timestamp('2024-01-01T00:00:00Z')".into(),
            Type::Duration => "duration('1s')".into(),
            Type::Dyn => "dyn(1)".into(),
            _ => return None,
        },
        Sig::Num | Sig::Param(_) => "1".into(),
        Sig::List(e) => format!("[{}]", literal(e)?),
        Sig::Map(k, v) => format!("{{{}: {}}}", literal(k)?, literal(v)?),
        Sig::CelOptional(e) => format!("optional.of({})", literal(e)?),
        Sig::TypeOf(_) => return None,
    })
}

/// Every receiver-style call the catalogue offers, as `.name(args)` text.
fn calls() -> Vec<String> {
    let mut out = Vec::new();
    for f in catalogue::functions() {
        for text in f.signatures {
            let Some(sig) = catalogue::parse_signature(text, f.overload) else {
                continue;
            };
            if !sig.receiver || sig.name.starts_with('_') || sig.name.starts_with('@') {
                continue;
            }
            let args: Option<Vec<String>> = sig.params.iter().skip(1).map(literal).collect();
            if let Some(args) = args {
                let call = format!(".{}({})", sig.name, args.join(", "));
                if !out.contains(&call) {
                    out.push(call);
                }
            }
        }
    }
    out
}

/// Checks `src`; when it checks clean, evaluates it in both tiers and returns the
/// failures that are type errors. `None`: it did not check (the checker refused it).
fn type_errors(src: &str) -> Option<Vec<String>> {
    let ast = flow_grammar::parse_expression(flow_grammar::FileId(0), src).ok()?;
    let mut arena = ExprArena::new();
    let mut diagnostics = Vec::new();
    let root = check_expression(&ast, &EmptyScope, &mut arena, None, &mut diagnostics);
    if flow_grammar::has_errors(&diagnostics) {
        return None;
    }
    if arena.nodes.iter().any(|n| n.ty.contains_dyn()) {
        return Some(vec![DYNAMIC.to_owned()]);
    }
    let arena = Arc::new(arena);
    let mut found = Vec::new();
    for tier in [Tier::Interpreter, Tier::Jit] {
        let program = Program::new(Arc::clone(&arena)).with_tier(tier);
        let mut locals = program.new_locals();
        if let Err(e) = program.eval(root, &mut locals, &FixedContext(Timestamp::default()))
            && e.kind == ErrorKind::NoSuchOverload
        {
            found.push(format!("{tier:?}: {e}"));
        }
    }
    Some(found)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn checked_calls_never_fail_with_a_type_error(
        receiver in 0usize..RECEIVERS.len(),
        first in 0usize..10_000,
        second in proptest::option::of(0usize..10_000),
    ) {
        let calls = calls();
        let mut src = format!("{}{}", RECEIVERS[receiver], calls[first % calls.len()]);
        if let Some(second) = second {
            src.push_str(&calls[second % calls.len()]);
        }
        if let Some(errors) = type_errors(&src).filter(|e| e.first().map(String::as_str) != Some(DYNAMIC)) {
            prop_assert!(errors.is_empty(), "`{}` checks clean but fails: {:?}", src, errors);
        }
    }
}

/// Every receiver against every single call, exhaustively, and the cases the checker now
/// refuses (they used to check clean and fail when run).
#[test]
fn every_receiver_with_every_call() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for receiver in RECEIVERS {
        for call in calls() {
            let src = format!("{receiver}{call}");
            if let Some(errors) = type_errors(&src) {
                if errors.first().map(String::as_str) == Some(DYNAMIC) {
                    continue;
                }
                checked += 1;
                if !errors.is_empty() {
                    failures.push(format!("{src}: {errors:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "checked clean, failed when run:\n{}",
        failures.join("\n")
    );
    assert!(
        checked > 100,
        "only {checked} calls checked clean and ran: the test is too narrow"
    );
    for refused in [
        "['a', 'b'].sum()",
        "['a', 'b'].avg()",
        "[{'a': 1}].min()",
        "[[1], [2]].max()",
        "math.greatest(['a', 'b'])",
    ] {
        assert!(
            type_errors(refused).is_none(),
            "`{refused}` should not check"
        );
    }
}
