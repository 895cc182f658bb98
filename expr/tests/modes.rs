//! Evaluation modes (`Program::eval_in`) mean the same in both tiers: generated request
//! and `result` clauses over generated answers give identical values and errors with the
//! interpreter and with the JIT, and each mode does what it promises (a request leaves
//! nulls out of its literals; an answer reads a missing field as null and converts
//! leniently).

use std::sync::Arc;

use flow_compiler::expr::{ExprArena, Variables, check_expression};
use flow_expr::json::Leniency;
use flow_expr::{FixedContext, Mode, Program, Tier, Timestamp, Value};
use flow_ir::expr::ExprId;
use flow_ir::types::Type;
use proptest::prelude::*;
use serde_json::{Value as Json, json};

/// A small deterministic generator driven by proptest's seeds.
struct Gen(u64);

impl Gen {
    fn pick(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn one<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.pick(of.len())]
    }

    /// A clause: literals (what the modes act on) around reads of the answer and typed
    /// expressions (which the JIT compiles).
    fn clause(&mut self, depth: u32) -> String {
        let leaf = depth >= 3;
        match if leaf { 4 + self.pick(4) } else { self.pick(8) } {
            0 => {
                let n = 1 + self.pick(3);
                let fields: Vec<String> = (0..n)
                    .map(|i| format!("f{i}: {}", self.clause(depth + 1)))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }
            1 => {
                let n = 1 + self.pick(3);
                let entries: Vec<String> = (0..n)
                    .map(|i| format!("'k{i}': {}", self.clause(depth + 1)))
                    .collect();
                format!("{{{}}}", entries.join(", "))
            }
            2 => {
                let item = self.clause(depth + 1);
                format!("[{item}, {item}]")
            }
            3 => format!(
                "{}.{}",
                self.clause(depth + 1),
                self.one(&["id", "n", "missing"])
            ),
            4 => self
                .one(&[
                    "body",
                    "body.id",
                    "body.n",
                    "body.items",
                    "body.missing",
                    "body.tags",
                ])
                .to_owned(),
            5 => self.one(&["null", "page", "'x'", "1"]).to_owned(),
            6 => self
                .one(&[
                    "page * 2 + 1",
                    "names.map(n, n + '!')",
                    "names.filter(n, size(n) > 1).size()",
                    "page > 3 ? 'many' : 'few'",
                ])
                .to_owned(),
            _ => self
                .one(&["body.?id", "body.?missing.orValue('none')", "size(names)"])
                .to_owned(),
        }
    }

    fn answer(&mut self) -> Json {
        let mut doc = serde_json::Map::new();
        for (key, choices) in [
            ("id", vec![json!("t-1"), json!(7), json!(null)]),
            ("n", vec![json!(1), json!(2.5), json!("3"), json!(null)]),
            (
                "items",
                vec![
                    json!([{"id": "a", "n": 1}]),
                    json!({"id": "b"}),
                    json!([]),
                    json!(null),
                ],
            ),
            ("tags", vec![json!(["x", "y"]), json!("x"), json!([])]),
        ] {
            if self.pick(4) > 0 {
                doc.insert(key.to_owned(), choices[self.pick(choices.len())].clone());
            }
        }
        Json::Object(doc)
    }
}

fn scope() -> Variables {
    Variables(vec![
        ("body".into(), Type::Dyn),
        ("page".into(), Type::Int),
        ("names".into(), Type::list(Type::String)),
    ])
}

/// The declared result types a `result` clause may be converted to.
fn declared() -> Vec<Option<Type>> {
    let item = Type::record(
        None,
        vec![
            ("id".into(), Type::String),
            ("n".into(), Type::optional(Type::Int)),
        ],
    );
    vec![
        None,
        Some(Type::list(item.clone())),
        Some(Type::list(Type::Dyn)),
        Some(Type::optional(Type::String)),
        Some(Type::map(Type::String, Type::Dyn)),
        Some(item),
    ]
}

struct Checked {
    arena: Arc<ExprArena>,
    root: ExprId,
}

fn check(src: &str, expected: Option<&Type>) -> Option<Checked> {
    let ast = flow_grammar::parse_expression(flow_grammar::FileId(0), src).ok()?;
    let scope = scope();
    let mut arena = ExprArena::new();
    for (name, ty) in &scope.0 {
        arena.new_local(name.clone(), ty.clone());
    }
    let mut diags = Vec::new();
    let root = check_expression(&ast, &scope, &mut arena, expected, &mut diags);
    (!flow_grammar::has_errors(&diags)).then(|| Checked {
        arena: Arc::new(arena),
        root,
    })
}

fn locals(arena: &ExprArena, body: &Json) -> Vec<Value> {
    let mut l = flow_expr::new_locals(arena);
    l[0] = Value::from_json_dyn(body);
    l[1] = Value::Int(4);
    l[2] = Value::list(vec![Value::string("a"), Value::string("bc")]);
    l
}

fn shown(r: &Result<Value, flow_expr::error::EvalError>) -> String {
    match r {
        Ok(v) => v.to_json().to_string(),
        Err(e) => format!("error: {e}"),
    }
}

const MODES: [Mode; 4] = [
    Mode::Standard,
    Mode::Request,
    Mode::Answer(Leniency::Answer),
    Mode::Answer(Leniency::Xml),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_mode_means_the_same_in_both_tiers(seed in any::<u64>(), which in 0usize..6) {
        let mut g = Gen(seed | 1);
        let src = g.clause(0);
        let body = g.answer();
        let expected = declared().swap_remove(which);
        let Some(c) = check(&src, expected.as_ref()) else {
            // A generated clause the checker refuses (a field of a string, say) says
            // nothing about the modes.
            return Ok(());
        };
        let interp = Program::new(c.arena.clone()).with_tier(Tier::Interpreter);
        let jit = Program::new(c.arena.clone()).with_tier(Tier::Jit);
        let ctx = FixedContext(Timestamp::default());
        for mode in MODES {
            let a = interp.eval_in(mode, c.root, &mut locals(&c.arena, &body), &ctx);
            let b = jit.eval_in(mode, c.root, &mut locals(&c.arena, &body), &ctx);
            prop_assert_eq!(shown(&a), shown(&b), "{:?} of {} over {}", mode, src, body);
        }
    }
}

/// The typed parts of generated clauses are compiled, so the property above compares
/// native code with the interpreter and not the interpreter with itself.
#[test]
fn the_generated_clauses_reach_the_jit() {
    let mut compiled = 0;
    for seed in 1..200u64 {
        let src = Gen(seed * 7919).clause(0);
        let Some(c) = check(&src, None) else { continue };
        let jit = Program::new(c.arena.clone()).with_tier(Tier::Jit);
        compiled += (0..c.arena.nodes.len())
            .filter(|i| jit.is_compiled(ExprId(*i as u32)))
            .count();
    }
    assert!(compiled > 100, "only {compiled} expressions compiled");
}

fn eval(src: &str, expected: Option<&Type>, mode: Mode, body: Json) -> String {
    let c = check(src, expected).unwrap_or_else(|| panic!("{src} checks"));
    let program = Program::new(c.arena.clone());
    let ctx = FixedContext(Timestamp::default());
    shown(&program.eval_in(mode, c.root, &mut locals(&c.arena, &body), &ctx))
}

#[test]
fn a_request_leaves_nulls_out_of_its_literals() {
    let src = "{q: body.q, page: page, tags: {'a': null, 'b': 'x'}, list: [null, 1]}";
    let body = json!({"q": null});
    assert_eq!(
        eval(src, None, Mode::Request, body.clone()),
        r#"{"list":[null,1],"page":4,"tags":{"b":"x"}}"#
    );
    // The language itself keeps them.
    assert_eq!(
        eval(src, None, Mode::Standard, body),
        r#"{"list":[null,1],"page":4,"q":null,"tags":{"a":null,"b":"x"}}"#
    );
}

#[test]
fn an_answer_reads_missing_fields_as_null_and_converts_leniently() {
    let ty = Type::list(Type::String);
    let body = json!({"tags": "only"});
    assert!(eval("body.missing", None, Mode::Standard, body.clone()).starts_with("error"));
    assert_eq!(
        eval(
            "body.missing",
            None,
            Mode::Answer(Leniency::Answer),
            body.clone()
        ),
        "null"
    );
    // An XML answer cannot tell one item from a list of one.
    assert_eq!(
        eval(
            "body.tags",
            Some(&ty),
            Mode::Answer(Leniency::Xml),
            body.clone()
        ),
        r#"["only"]"#
    );
    assert_eq!(
        eval("body.tags", Some(&ty), Mode::Answer(Leniency::Answer), body),
        "error: result: expected list<string> (an array), found string"
    );
}
