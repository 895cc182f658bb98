//! Laws of the grammar crate, checked on generated input: the lexer is lossless, and
//! parsing never panics, whatever the input.

use flow_grammar::{FileId, parse, parse_expression, parse_type, tokens};
use proptest::prelude::*;

/// Fragments that look like Flow, so generated text reaches deep into the grammar
/// rather than failing at the first character.
fn flowish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "workflow ",
        "w",
        " {",
        "}",
        "step ",
        "s = ",
        "http.get(",
        "url: ",
        "\"https://x/${a.b}\"",
        ")",
        "\n",
        "retry 3 delay 1s",
        "after ",
        "if ",
        "else ",
        "for x in ",
        "xs",
        " parallel 2",
        "try ",
        "catch err ",
        "let ",
        "= ",
        "1 + 2 * 3",
        "a ?? b",
        "a?.b",
        "[1, 2]",
        "{ a: 1 }",
        "{\"k\": v}",
        "'s'",
        "r\"raw\"",
        "b'\\xff'",
        "\"\"\"multi\nline\"\"\"",
        "// comment\n",
        "/// doc\n",
        "/* block */",
        "-",
        "!",
        "(",
        "[",
        "]",
        ",",
        ":",
        "?",
        ".",
        "return ",
        "fail ",
        "notify console \"t\" \"m\"",
        "integration i { ",
        "action a() -> dyn { GET \"/\" }",
        "type T = { f: list<int>? }",
        "import slack",
        "const C = 9223372036854775807",
        "test \"t\" { expect true }",
        "wait 5m",
        "on schedule(\"* * * * *\")",
        "settings { timeout = 1m }",
        "${",
        "\\",
        "\u{0}",
        "é",
        "😀",
    ]);
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn lexer_round_trips_arbitrary_text(text in any::<String>()) {
        let toks = tokens::lex(&text);
        let joined: String = toks.iter().map(|t| t.text(&text)).collect();
        prop_assert_eq!(joined, text);
    }

    #[test]
    fn lexer_round_trips_flowish_text(text in flowish()) {
        let toks = tokens::lex(&text);
        let mut at = 0;
        for t in &toks {
            prop_assert_eq!(t.start, at, "tokens must be contiguous");
            prop_assert!(t.end > t.start, "tokens must not be empty");
            at = t.end;
        }
        prop_assert_eq!(at, text.len());
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        let (module, diagnostics) = parse(FileId(0), &text);
        // Every diagnostic points inside the text.
        for d in &diagnostics {
            prop_assert!(d.span.end as usize <= text.len());
        }
        prop_assert!(module.items.len() <= text.len());
    }

    #[test]
    fn parse_never_panics_on_flowish_text(text in flowish()) {
        let (_, diagnostics) = parse(FileId(0), &text);
        for d in &diagnostics {
            prop_assert!(d.span.start <= d.span.end);
            prop_assert!(d.span.end as usize <= text.len());
            prop_assert!(!d.message.contains("Rule::"), "a pest rule name leaked: {}", d.message);
        }
        let _ = parse_expression(FileId(0), &text);
        let _ = parse_type(FileId(0), &text);
    }
}

#[test]
fn valid_items_survive_errors_in_other_items() {
    let source = "workflow a {\n  step x = http.get(url: \"u\") retyr 3\n}\n\nworkflow b {\n  log \"fine\"\n}\n";
    let (module, diagnostics) = parse(FileId(0), source);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(module.items.len(), 2, "the second workflow is still parsed");
    // The first keeps its place, with the broken statement as an error node.
    let Some(flow_grammar::ast::Item::Workflow(a)) = module.items.first() else {
        panic!("the first workflow is recovered: {:?}", module.items);
    };
    assert!(matches!(
        a.body.statements[..],
        [flow_grammar::ast::Statement {
            kind: flow_grammar::ast::StatementKind::Error { .. },
            ..
        }]
    ));
}

#[test]
fn errors_in_several_items_are_all_reported() {
    let source = "workflow a { let = 1 }\nworkflow b { step }\nworkflow c { log \"ok\" }\n";
    let (module, diagnostics) = parse(FileId(0), source);
    assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
    assert_eq!(module.items.len(), 1);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("const X = {}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let (_, diagnostics) = parse(FileId(0), &deep);
    assert_eq!(diagnostics[0].code.id, "E0006");
    let chain = format!("const X = {}", vec!["1"; 5_000].join(" + "));
    let (_, diagnostics) = parse(FileId(0), &chain);
    assert_eq!(
        diagnostics[0].code.id, "E0006",
        "a 5,000-operand chain is deeper than the limit"
    );
    let prefixes = format!("const X = {}true", "!".repeat(100_000));
    let (_, diagnostics) = parse(FileId(0), &prefixes);
    assert_eq!(diagnostics[0].code.id, "E0006");
    let ternaries = format!("const X = {}0", "true ? 1 : ".repeat(3_000));
    let (_, diagnostics) = parse(FileId(0), &ternaries);
    assert_eq!(diagnostics[0].code.id, "E0006");
}

#[test]
fn negative_int_literals_fold() {
    let expr = parse_expression(FileId(0), "-9223372036854775808").expect("parses");
    assert!(
        matches!(expr.kind, flow_grammar::ast::ExprKind::Int(i64::MIN)),
        "{expr:?}"
    );
    let too_big = parse_expression(FileId(0), "9223372036854775808").expect_err("out of range");
    assert_eq!(too_big[0].code.id, "E0008");
}

#[test]
fn precedence_follows_cel_with_coalesce_above_comparison() {
    use flow_grammar::ast::{BinaryOp, ExprKind};
    let expr = parse_expression(FileId(0), "a ?? 0 > 5 && b || c").expect("parses");
    let ExprKind::Binary {
        op: BinaryOp::Or,
        lhs,
        ..
    } = expr.kind
    else {
        panic!("|| is loosest")
    };
    let ExprKind::Binary {
        op: BinaryOp::And,
        lhs,
        ..
    } = lhs.kind
    else {
        panic!("&& next")
    };
    let ExprKind::Binary {
        op: BinaryOp::Gt,
        lhs,
        ..
    } = lhs.kind
    else {
        panic!("> next")
    };
    assert!(matches!(
        lhs.kind,
        ExprKind::Binary {
            op: BinaryOp::Coalesce,
            ..
        }
    ));
    let sub = parse_expression(FileId(0), "1 - 2 - 3").expect("parses");
    let ExprKind::Binary {
        op: BinaryOp::Sub,
        lhs,
        ..
    } = sub.kind
    else {
        panic!()
    };
    assert!(
        matches!(
            lhs.kind,
            ExprKind::Binary {
                op: BinaryOp::Sub,
                ..
            }
        ),
        "left associative"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Whatever was parsed before with the same cache, an incremental parse equals a
    /// fresh one, spans and diagnostics included.
    #[test]
    fn incremental_parse_equals_fresh_parse(before in flowish(), after in flowish(), file in 0u32..3) {
        let mut cache = flow_grammar::ParseCache::new();
        let _ = flow_grammar::parse_incremental(FileId(file), &before, &mut cache);
        cache.end_round();
        let incremental = flow_grammar::parse_incremental(FileId(file), &after, &mut cache);
        prop_assert_eq!(incremental, parse(FileId(file), &after));
    }
}

#[test]
fn incremental_parse_moves_cached_items_after_an_edit() {
    let original: String = std::fs::read_dir("../examples")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "flow"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut cache = flow_grammar::ParseCache::new();
    let first = flow_grammar::parse_incremental(FileId(0), &original, &mut cache);
    assert_eq!(first, parse(FileId(0), &original));
    let cached = cache.len();
    assert!(cached > 5, "clean items are cached: {cached}");
    cache.end_round();
    assert_eq!(cache.len(), cached, "items used in the round are kept");
    // An edit near the start shifts every later item.
    let edited = original.replacen("workflow", "\n\n// an added comment\nworkflow", 1);
    let second = flow_grammar::parse_incremental(FileId(1), &edited, &mut cache);
    assert_eq!(second, parse(FileId(1), &edited));
    cache.end_round();
    cache.end_round();
    assert!(
        cache.is_empty(),
        "a round that uses nothing forgets everything"
    );
}
