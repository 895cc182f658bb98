//! JIT equals interpreter: generated well-typed expressions over generated inputs must
//! give identical values and identical errors (kind and message) in both tiers.

use std::sync::Arc;

use flow_compiler::expr::{ExprArena, Variables, check_expression};
use flow_expr::{FixedContext, Program, Tier, Timestamp, Value};
use flow_ir::types::Type;
use proptest::prelude::*;

/// A tiny deterministic generator driven by proptest's seeds.
struct Gen {
    state: u64,
    depth: u32,
    /// Comprehension variables in scope: (name, type).
    vars: Vec<(String, &'static str)>,
    next_var: u32,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        Gen {
            state: seed | 1,
            depth: 0,
            vars: Vec::new(),
            next_var: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn leaf(&self) -> bool {
        self.depth >= 4
    }

    fn nested(&mut self, f: impl FnOnce(&mut Gen) -> String) -> String {
        self.depth += 1;
        let s = f(self);
        self.depth -= 1;
        s
    }

    fn var_of(&mut self, ty: &str) -> Option<String> {
        let candidates: Vec<String> = self
            .vars
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(n, _)| n.clone())
            .collect();
        if candidates.is_empty() {
            None
        } else {
            let i = self.pick(candidates.len() as u64) as usize;
            Some(candidates[i].clone())
        }
    }

    fn int(&mut self) -> String {
        let choice = if self.leaf() {
            self.pick(4)
        } else {
            self.pick(17)
        };
        match choice {
            0 => [
                "0",
                "1",
                "-1",
                "7",
                "9223372036854775807",
                "-9223372036854775807 - 1",
                "3",
                "100",
            ][self.pick(8) as usize]
                .into(),
            1 => ["i1", "i2", "r.a"][self.pick(3) as usize].into(),
            2 => self.var_of("int").unwrap_or_else(|| "i1".into()),
            3 => format!("{}", self.pick(50) as i64 - 25),
            4..=8 => {
                let op = ["+", "-", "*", "/", "%"][(choice - 4) as usize];
                self.nested(|g| format!("({} {op} {})", g.int(), g.int()))
            }
            9 => self.nested(|g| format!("-({})", g.int())),
            10 => self.nested(|g| format!("({} ? {} : {})", g.boolean(), g.int(), g.int())),
            11 => self.nested(|g| format!("size({})", g.string())),
            12 => self.nested(|g| {
                let v = g.bind("int");
                let body = g.boolean();
                g.vars.pop();
                format!("{}.count({v}, {body})", g.int_list())
            }),
            13 => self.nested(|g| format!("{}.sum()", g.int_list())),
            14 => self.nested(|g| format!("int({})", g.double())),
            15 => self.nested(|g| format!("{}[{}]", g.int_list(), g.int())),
            _ => self.nested(|g| format!("size({})", g.int_list())),
        }
    }

    fn double(&mut self) -> String {
        let choice = if self.leaf() {
            self.pick(3)
        } else {
            self.pick(10)
        };
        match choice {
            0 => ["0.0", "1.5", "-2.25", "1e308", "-0.0", "0.1"][self.pick(6) as usize].into(),
            1 => ["d1", "d2", "r.b"][self.pick(3) as usize].into(),
            2 => self.var_of("double").unwrap_or_else(|| "d1".into()),
            3..=6 => {
                let op = ["+", "-", "*", "/"][(choice - 3) as usize];
                self.nested(|g| format!("({} {op} {})", g.double(), g.double()))
            }
            7 => self.nested(|g| format!("double({})", g.int())),
            8 => self.nested(|g| format!("({} ? {} : {})", g.boolean(), g.double(), g.double())),
            _ => self.nested(|g| format!("{}.avg()", g.int_list())),
        }
    }

    fn number(&mut self) -> String {
        match self.pick(3) {
            0 => self.int(),
            1 => self.double(),
            _ => ["u1", "0u", "5u", "18446744073709551615u"][self.pick(4) as usize].into(),
        }
    }

    fn boolean(&mut self) -> String {
        let choice = if self.leaf() {
            self.pick(3)
        } else {
            self.pick(14)
        };
        match choice {
            0 => ["true", "false"][self.pick(2) as usize].into(),
            1 => "b1".into(),
            2 => self.var_of("bool").unwrap_or_else(|| "b1".into()),
            3 => {
                let op = ["<", "<=", ">", ">="][self.pick(4) as usize];
                self.nested(|g| format!("({} {op} {})", g.number(), g.number()))
            }
            4 => {
                // Equality needs operands of one type in checked CEL.
                let op = ["==", "!="][self.pick(2) as usize];
                match self.pick(2) {
                    0 => self.nested(|g| format!("({} {op} {})", g.int(), g.int())),
                    _ => self.nested(|g| format!("({} {op} {})", g.double(), g.double())),
                }
            }
            5 => self.nested(|g| format!("({} && {})", g.boolean(), g.boolean())),
            6 => self.nested(|g| format!("({} || {})", g.boolean(), g.boolean())),
            7 => self.nested(|g| format!("!({})", g.boolean())),
            8 => self.nested(|g| format!("{}.startsWith({})", g.string(), g.string())),
            9 => self.nested(|g| format!("({} == {})", g.string(), g.string())),
            10..=12 => self.nested(|g| {
                let m = ["all", "exists", "exists_one"][(choice - 10) as usize];
                let v = g.bind("int");
                let body = g.boolean();
                g.vars.pop();
                format!("{}.{m}({v}, {body})", g.int_list())
            }),
            _ => self.nested(|g| format!("({} ? {} : {})", g.boolean(), g.boolean(), g.boolean())),
        }
    }

    fn string(&mut self) -> String {
        let choice = if self.leaf() {
            self.pick(2)
        } else {
            self.pick(5)
        };
        match choice {
            0 => ["''", "'a'", "'ab'", "'/groups/'"][self.pick(4) as usize].into(),
            1 => ["s1", "s2", "r.s"][self.pick(3) as usize].into(),
            2 => self.nested(|g| format!("({} + {})", g.string(), g.string())),
            3 => self.nested(|g| format!("({} ? {} : {})", g.boolean(), g.string(), g.string())),
            _ => self.nested(|g| format!("string({})", g.int())),
        }
    }

    fn int_list(&mut self) -> String {
        let choice = if self.leaf() { 0 } else { self.pick(5) };
        match choice {
            0 => "xs".into(),
            1 => self.nested(|g| {
                let v = g.bind("int");
                let body = g.int();
                g.vars.pop();
                format!("{}.map({v}, {body})", g.int_list())
            }),
            2 => self.nested(|g| {
                let v = g.bind("int");
                let body = g.boolean();
                g.vars.pop();
                format!("{}.filter({v}, {body})", g.int_list())
            }),
            3 => self.nested(|g| format!("[{}, {}]", g.int(), g.int())),
            _ => "[]".into(),
        }
    }

    fn bind(&mut self, ty: &'static str) -> String {
        self.next_var += 1;
        let name = format!("v{}", self.next_var);
        self.vars.push((name.clone(), ty));
        name
    }
}

fn scope() -> Variables {
    let r = Type::record(
        None,
        vec![
            ("a".into(), Type::Int),
            ("b".into(), Type::Double),
            ("s".into(), Type::String),
        ],
    );
    Variables(vec![
        ("i1".into(), Type::Int),
        ("i2".into(), Type::Int),
        ("u1".into(), Type::UInt),
        ("d1".into(), Type::Double),
        ("d2".into(), Type::Double),
        ("b1".into(), Type::Bool),
        ("s1".into(), Type::String),
        ("s2".into(), Type::String),
        ("xs".into(), Type::list(Type::Int)),
        ("r".into(), r),
    ])
}

fn int_strategy() -> impl Strategy<Value = i64> {
    prop_oneof![
        -10i64..10,
        Just(i64::MAX),
        Just(i64::MIN),
        Just(0),
        any::<i64>()
    ]
}

fn double_strategy() -> impl Strategy<Value = f64> {
    prop_oneof![
        -10.0f64..10.0,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-0.0),
        Just(1e300),
        any::<f64>()
    ]
}

#[derive(Debug, Clone)]
struct Inputs {
    ints: (i64, i64, u64),
    doubles: (f64, f64),
    b: bool,
    strings: (String, String),
    xs: Vec<i64>,
    ra: i64,
    rb: f64,
    rs: String,
}

fn inputs() -> impl Strategy<Value = Inputs> {
    (
        (
            int_strategy(),
            int_strategy(),
            prop_oneof![Just(0u64), Just(u64::MAX), 0u64..100],
        ),
        (double_strategy(), double_strategy()),
        any::<bool>(),
        ("[a/b]{0,3}", "[a/b]{0,3}"),
        prop::collection::vec(prop_oneof![-5i64..5, int_strategy()], 0..6),
        (int_strategy(), double_strategy(), "[a/b]{0,3}"),
    )
        .prop_map(|(ints, doubles, b, strings, xs, (ra, rb, rs))| Inputs {
            ints,
            doubles,
            b,
            strings,
            xs,
            ra,
            rb,
            rs,
        })
}

fn locals(i: &Inputs) -> Vec<Value> {
    let record = Value::Record(Arc::new(flow_expr::Record::new(vec![
        ("a".into(), Value::Int(i.ra)),
        ("b".into(), Value::Double(i.rb)),
        ("s".into(), Value::string(i.rs.as_str())),
    ])));
    vec![
        Value::Int(i.ints.0),
        Value::Int(i.ints.1),
        Value::UInt(i.ints.2),
        Value::Double(i.doubles.0),
        Value::Double(i.doubles.1),
        Value::Bool(i.b),
        Value::string(i.strings.0.as_str()),
        Value::string(i.strings.1.as_str()),
        Value::list(i.xs.iter().map(|x| Value::Int(*x)).collect()),
        record,
    ]
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| same(a, b))
        }
        _ => format!("{a:?}") == format!("{b:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn jit_equals_interpreter(seed in any::<u64>(), kind in 0u8..4, input in inputs()) {
        let mut g = Gen::new(seed);
        let src = match kind {
            0 => g.boolean(),
            1 => g.int(),
            2 => g.double(),
            _ => g.int_list(),
        };
        let ast = flow_grammar::parse_expression(flow_grammar::FileId(0), &src).expect("generated text parses");
        let scope = scope();
        let mut arena = ExprArena::new();
        for (name, ty) in &scope.0 {
            arena.new_local(name.clone(), ty.clone());
        }
        let mut diags = Vec::new();
        let root = check_expression(&ast, &scope, &mut arena, None, &mut diags);
        prop_assert!(!flow_grammar::has_errors(&diags), "{src}: {diags:?}");
        let arena = Arc::new(arena);
        let interp = Program::new(arena.clone()).with_tier(Tier::Interpreter);
        let jit = Program::new(arena.clone()).with_tier(Tier::Jit);
        prop_assert!(jit.is_compiled(root), "{src}: not compiled");
        let ctx = FixedContext(Timestamp::default());
        let mut l1 = locals(&input);
        l1.resize(arena.locals.len(), Value::Null);
        let mut l2 = l1.clone();
        let a = interp.eval(root, &mut l1, &ctx);
        let b = jit.eval(root, &mut l2, &ctx);
        match (&a, &b) {
            (Ok(x), Ok(y)) => prop_assert!(same(x, y), "{src}: interpreter {x:?}, JIT {y:?}"),
            (Err(x), Err(y)) => prop_assert_eq!(x, y, "{}", src),
            _ => prop_assert!(false, "{src}: interpreter {a:?}, JIT {b:?}"),
        }
    }
}

/// Expressions whose results rest on `format`'s clauses and on the element types the
/// checker deduces for literals mixing empty, nested and optional elements: both tiers
/// must give the same value.
#[test]
fn format_and_literal_types_agree() {
    let sources = [
        "'%s'.format([['a', b'b', 1.0, 1e21, duration('1.5s'), [duration('90m')]]])",
        "'%d %d %.2f %e %x %o %b'.format([3.14, -7, 0.125, 1e100, -255, 8u, true])",
        "'%s'.format([b'x\\xff\\xfey'])",
        "[[], [1]][1][0] + 1",
        "[[], [[]], [[2]]][2][0][0] * 3",
        "size([[], [[]], [[2]]][2][0]) + [[1, 2], []].map(l, size(l)).sum()",
        "(false ? [] : [1.5])[0] * 2.0",
    ];
    let ctx = FixedContext(Timestamp::default());
    for src in sources {
        let ast = flow_grammar::parse_expression(flow_grammar::FileId(0), src).expect("parses");
        let scope = Variables(Vec::new());
        let mut arena = ExprArena::new();
        let mut diags = Vec::new();
        let root = check_expression(&ast, &scope, &mut arena, None, &mut diags);
        assert!(!flow_grammar::has_errors(&diags), "{src}: {diags:?}");
        let arena = Arc::new(arena);
        let interp = Program::new(arena.clone()).with_tier(Tier::Interpreter);
        let jit = Program::new(arena.clone()).with_tier(Tier::Jit);
        assert!(jit.is_compiled(root), "{src}: not compiled");
        let mut l1 = flow_expr::new_locals(&arena);
        let mut l2 = l1.clone();
        let a = interp.eval(root, &mut l1, &ctx).expect(src);
        let b = jit.eval(root, &mut l2, &ctx).expect(src);
        assert!(same(&a, &b), "{src}: interpreter {a:?}, JIT {b:?}");
    }
}

/// An expression the JIT stops translating part-way (at a record literal) must not
/// leave the compiler unusable: the next expression of the same program still compiles.
#[test]
fn a_translation_that_stops_does_not_spoil_the_next() {
    let scope = Variables(vec![("body".into(), Type::Dyn), ("n".into(), Type::Int)]);
    let mut arena = ExprArena::new();
    for (name, ty) in &scope.0 {
        arena.new_local(name.clone(), ty.clone());
    }
    let mut diags = Vec::new();
    let mut root = |src: &str, arena: &mut ExprArena| {
        let ast = flow_grammar::parse_expression(flow_grammar::FileId(0), src).expect("parses");
        check_expression(&ast, &scope, arena, None, &mut diags)
    };
    let stops = root("[n + 1, {a: n}.a]", &mut arena);
    let fine = root("n * 2 + 1", &mut arena);
    let arena = Arc::new(arena);
    let jit = Program::new(arena.clone()).with_tier(Tier::Jit);
    assert!(!jit.is_compiled(stops), "record literals are not compiled");
    assert!(jit.is_compiled(fine), "the next expression compiles");
    let mut locals = flow_expr::new_locals(&arena);
    locals[1] = Value::Int(20);
    let ctx = FixedContext(Timestamp::default());
    assert_eq!(jit.eval(fine, &mut locals, &ctx).unwrap().to_json(), 41);
}
