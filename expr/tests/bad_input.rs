//! Bad input gives an error value with a clear message in both tiers, never a panic or
//! a crash of compiled code: overflow, division by zero, a `dyn` value of the wrong
//! kind, deep nesting, a 10-million-element list, invalid UTF-8.

use std::sync::Arc;

use flow_compiler::expr::{ExprArena, Variables, check_expression};
use flow_expr::{ErrorKind, FixedContext, Program, Tier, Timestamp, Value};
use flow_ir::types::Type;

/// Evaluates in both tiers; both must agree; returns the interpreter's result.
fn run(src: &str, vars: Vec<(&str, Type, Value)>) -> Result<Value, flow_expr::EvalError> {
    let scope = Variables(
        vars.iter()
            .map(|(n, t, _)| (n.to_string(), t.clone()))
            .collect(),
    );
    let mut arena = ExprArena::new();
    for (n, t) in &scope.0 {
        arena.new_local(n.clone(), t.clone());
    }
    let ast = flow_grammar::parse_expression(flow_grammar::FileId(0), src).expect("parses");
    let mut diags = Vec::new();
    let root = check_expression(&ast, &scope, &mut arena, None, &mut diags);
    assert!(!flow_grammar::has_errors(&diags), "{src}: {diags:?}");
    let arena = Arc::new(arena);
    let mut results = Vec::new();
    for tier in [Tier::Interpreter, Tier::Jit] {
        let program = Program::new(arena.clone()).with_tier(tier);
        let mut locals = program.new_locals();
        for (slot, (_, _, v)) in locals.iter_mut().zip(vars.iter()) {
            *slot = v.clone();
        }
        results.push(program.eval(root, &mut locals, &FixedContext(Timestamp::default())));
    }
    let jit = results.pop().expect("two results");
    let interp = results.pop().expect("two results");
    assert_eq!(
        format!("{interp:?}"),
        format!("{jit:?}"),
        "{src}: tiers disagree"
    );
    interp
}

fn kind(r: Result<Value, flow_expr::EvalError>) -> ErrorKind {
    r.expect_err("an error").kind
}

#[test]
fn arithmetic_errors() {
    let max = ("x", Type::Int, Value::Int(i64::MAX));
    assert_eq!(kind(run("x + 1", vec![max.clone()])), ErrorKind::Overflow);
    assert_eq!(kind(run("x * 2", vec![max.clone()])), ErrorKind::Overflow);
    assert_eq!(kind(run("-x - 2", vec![max.clone()])), ErrorKind::Overflow);
    assert_eq!(
        kind(run("x / 0", vec![max.clone()])),
        ErrorKind::DivisionByZero
    );
    assert_eq!(
        kind(run("x % 0", vec![max.clone()])),
        ErrorKind::DivisionByZero
    );
    assert_eq!(kind(run("(-x - 1) / -1", vec![max])), ErrorKind::Overflow);
    assert_eq!(
        kind(run("u - 1u", vec![("u", Type::UInt, Value::UInt(0))])),
        ErrorKind::Overflow
    );
    let e = run("x + 1", vec![("x", Type::Int, Value::Int(i64::MAX))]).unwrap_err();
    assert_eq!(e.message, "integer overflow in addition");
}

#[test]
fn dyn_of_the_wrong_kind() {
    let d = ("d", Type::Dyn, Value::string("seven"));
    assert_eq!(
        kind(run("d + 1", vec![d.clone()])),
        ErrorKind::NoSuchOverload
    );
    assert_eq!(
        kind(run("d && true", vec![d.clone()])),
        ErrorKind::NoSuchOverload
    );
    assert_eq!(
        run("d && false", vec![d.clone()]).unwrap().as_bool(),
        Some(false)
    );
    assert_eq!(kind(run("d.field", vec![d])), ErrorKind::NoSuchOverload);
}

#[test]
fn invalid_utf8_bytes_to_string() {
    let e = run(
        "string(b)",
        vec![("b", Type::Bytes, Value::Bytes(Arc::from(&b"\xff\xfe"[..])))],
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conversion);
    assert!(e.message.contains("invalid UTF-8"), "{}", e.message);
}

#[test]
fn ten_million_element_list() {
    let xs = Value::list((0..10_000_000i64).map(Value::Int).collect());
    let t = Type::list(Type::Int);
    assert_eq!(
        run("xs.size()", vec![("xs", t.clone(), xs.clone())])
            .unwrap()
            .as_int(),
        Some(10_000_000)
    );
    assert_eq!(
        run("xs.all(x, x >= 0)", vec![("xs", t.clone(), xs.clone())])
            .unwrap()
            .as_bool(),
        Some(true)
    );
    assert_eq!(
        kind(run(
            "xs.map(x, x * 1000000000000).sum()",
            vec![("xs", t, xs)]
        )),
        ErrorKind::Overflow
    );
}

#[test]
fn deep_nesting_is_refused_by_the_parser_not_a_crash() {
    let deep = "(".repeat(10_000) + "1" + &")".repeat(10_000);
    let result = flow_grammar::parse_expression(flow_grammar::FileId(0), &deep);
    let diags = result.expect_err("too deep");
    assert!(diags.iter().any(|d| d.code.id == "E0006"), "{diags:?}");
    // An expression near the parser's depth limit checks, compiles and evaluates in
    // both tiers even on a thread with a small stack.
    let chain = (0..500).map(|_| "1").collect::<Vec<_>>().join(" + ");
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || run(&chain, vec![]).map(|v| v.as_int()))
        .expect("thread starts")
        .join()
        .expect("no stack overflow");
    assert_eq!(result.unwrap(), Some(500));
    let json = "[".repeat(10_000) + &"]".repeat(10_000);
    assert!(flow_expr::decode::decode_json(json.as_bytes()).is_err());
}

trait TestValue {
    fn as_int(&self) -> Option<i64>;
    fn as_bool(&self) -> Option<bool>;
}

impl TestValue for Value {
    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}
