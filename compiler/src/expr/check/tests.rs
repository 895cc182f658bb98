//! Checker tests: each case is an expression with the type it must have, or the
//! diagnostic codes it must produce.

use flow_grammar::{FileId, parse_expression};

use super::*;

fn scope() -> Variables {
    let order = Type::record(
        Some("Order".into()),
        vec![
            ("id".into(), Type::String),
            ("total".into(), Type::Double),
            (
                "items".into(),
                Type::list(Type::record(
                    None,
                    vec![("sku".into(), Type::String), ("qty".into(), Type::Int)],
                )),
            ),
            ("note".into(), Type::optional(Type::String)),
        ],
    );
    Variables(vec![
        ("order".into(), order.clone()),
        ("maybe".into(), Type::optional(order)),
        ("xs".into(), Type::list(Type::Int)),
        ("d".into(), Type::Dyn),
        ("name".into(), Type::String),
    ])
}

fn check(src: &str) -> (Type, Vec<String>) {
    let expr = parse_expression(FileId(0), src).expect("parses");
    let mut arena = ExprArena::new();
    let mut diags = Vec::new();
    let id = check_expression(&expr, &scope(), &mut arena, None, &mut diags);
    (
        arena.ty(id).cloned().unwrap(),
        diags.iter().map(|d| d.code.id.to_string()).collect(),
    )
}

fn ty(src: &str) -> String {
    let (t, d) = check(src);
    assert!(d.is_empty(), "{src}: unexpected diagnostics {d:?}");
    t.to_string()
}

fn codes(src: &str) -> Vec<String> {
    check(src).1
}

#[test]
fn literals_and_operators() {
    assert_eq!(ty("1 + 2"), "int");
    assert_eq!(ty("1u * 2u"), "uint");
    assert_eq!(ty("'a' + 'b'"), "string");
    assert_eq!(ty("[1, 2] + [3]"), "list<int>");
    assert_eq!(ty("1 < 2.0"), "bool");
    assert_eq!(ty("[1, 'a']"), "list<dyn>");
    assert_eq!(ty("{'a': 1}"), "map<string, int>");
    assert_eq!(ty("10m + 5s"), "duration");
    assert_eq!(ty("\"n=${1 + 1}\""), "string");
    assert_eq!(codes("1 + 1.0"), ["E2002"]);
    assert_eq!(codes("'a' + 1"), ["E2002"]);
    assert_eq!(codes("1 && true"), ["E2001"]);
}

#[test]
fn records_fields_and_nulls() {
    assert_eq!(ty("order.total > 100.0"), "bool");
    assert_eq!(ty("order.items.map(i, i.qty).sum()"), "int");
    assert_eq!(ty("maybe?.total"), "double?");
    assert_eq!(ty("maybe?.total ?? 0.0"), "double");
    assert_eq!(
        ty("{ total: order.total, n: size(order.items) }"),
        "{ n: int, total: double }"
    );
    assert_eq!(codes("order.totl"), ["E2004"]);
    assert_eq!(codes("maybe.total"), ["E2013"]);
    assert_eq!(codes("order?.total"), ["W2000"]);
    assert_eq!(codes("nme"), ["E2000"]);
}

#[test]
fn macros_and_aggregates() {
    assert_eq!(ty("xs.all(x, x > 0)"), "bool");
    assert_eq!(ty("xs.filter(x, x % 2 == 0)"), "list<int>");
    assert_eq!(ty("xs.map(x, x * 2)"), "list<int>");
    assert_eq!(ty("xs.map(x, x > 1, double(x))"), "list<double>");
    assert_eq!(
        ty("order.items.group_by(i, i.sku)"),
        "map<string, list<{ qty: int, sku: string }>>"
    );
    assert_eq!(ty("order.items.sort_by(i, i.qty)[0].sku"), "string");
    assert_eq!(ty("xs.avg()"), "double");
    assert_eq!(ty("xs.count(x, x > 1)"), "int");
    assert_eq!(ty("[[1], [2]].flatten()"), "list<int>");
    assert_eq!(ty("xs.all(i, v, i < v)"), "bool");
}

#[test]
fn dyn_and_optionals() {
    assert_eq!(ty("d.a.b"), "dyn");
    assert_eq!(ty("d + 1"), "int");
    assert_eq!(ty("d == 1.0"), "bool");
    assert_eq!(ty("optional.of(1).orValue(2)"), "int");
    assert_eq!(ty("{'a': 1}.?a"), "optional<int>");
    assert_eq!(ty("type(1) == int"), "bool");
    assert_eq!(ty("math.greatest(1, 2u, 3.0)"), "dyn");
    assert_eq!(ty("math.greatest(1, 2)"), "int");
    assert_eq!(ty("name.startsWith('/groups/' + name)"), "bool");
}

#[test]
fn empty_and_absent_elements_take_their_neighbours_type() {
    assert_eq!(ty("[]"), "list<dyn>");
    assert_eq!(ty("[[], [1]]"), "list<list<int>>");
    assert_eq!(ty("[['a'], [], [[]]]"), "list<dyn>");
    assert_eq!(ty("[[], [[]], [[1.5]]]"), "list<list<list<double>>>");
    assert_eq!(ty("[[], [1], [2.0]]"), "list<dyn>");
    assert_eq!(ty("[[], [d]]"), "list<list<dyn>>");
    assert_eq!(
        ty("[{}, {'a': [true]}, {'b': []}]"),
        "list<map<string, list<bool>>>"
    );
    assert_eq!(ty("[?optional.none(), 1]"), "list<int>");
    assert_eq!(ty("[[?optional.none()], xs]"), "list<list<int>>");
    assert_eq!(
        ty("[optional.none(), optional.of([]), optional.of(xs)]"),
        "list<optional<list<int>>>"
    );
    assert_eq!(ty("true ? [] : xs"), "list<int>");
    assert_eq!(ty("[[], [1]][0]"), "list<int>");
}

#[test]
fn coerce_inserts_checked_conversions() {
    let expr = parse_expression(FileId(0), "d").unwrap();
    let mut arena = ExprArena::new();
    let mut diags = Vec::new();
    let id = check_expression(&expr, &scope(), &mut arena, Some(&Type::Int), &mut diags);
    assert!(diags.is_empty());
    assert!(matches!(
        arena.node(id).unwrap().kind,
        NodeKind::Convert { .. }
    ));
    let expr = parse_expression(FileId(0), "order.note").unwrap();
    let id = check_expression(&expr, &scope(), &mut arena, Some(&Type::String), &mut diags);
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].code.id, "E2001");
    assert!(diags[0].help.as_deref().unwrap_or("").contains("??"));
    let _ = id;
}

#[test]
fn secrets_taint_and_are_refused_outside_integrations() {
    assert_eq!(codes("secret('token')"), ["E2007"]);
    assert!(is_assignable(&Type::String, &Type::Secret));
    assert!(!is_assignable(&Type::Secret, &Type::String));
    assert!(!is_assignable(&Type::Secret, &Type::Dyn));
}
