//! The formatter's laws, checked on data: every fixture under `inputs/fmt/` formats to
//! its snapshot; every example, stdlib module and parser fixture formats, and formatting
//! is idempotent; and, as property tests over that corpus, the layout does not depend on
//! how the source was spaced, and comments inserted anywhere survive, each exactly once.

use std::path::{Path, PathBuf};

use flow_editor::format::{FormatError, format_source};
use flow_grammar::tokens::{TokenKind, lex};
use flow_grammar::{FileId, has_errors, parse};
use proptest::prelude::*;

fn format(source: &str) -> String {
    match format_source(source) {
        Ok(text) => text,
        Err(FormatError::Syntax(d)) => panic!("syntax errors: {d:#?}"),
        Err(e) => panic!("{e}\n--- source ---\n{source}"),
    }
}

#[test]
fn fixtures_format_to_their_snapshots() {
    insta::glob!("inputs/fmt/*.flow", |path| {
        let source = std::fs::read_to_string(path).unwrap();
        let once = format(&source);
        assert_eq!(
            format(&once),
            once,
            "{}: formatting is not idempotent",
            path.display()
        );
        insta::assert_snapshot!(once);
    });
}

/// Every `.flow` file the repository holds that parses: examples, stdlib modules and
/// the parser's valid fixtures.
fn corpus() -> &'static [(PathBuf, String)] {
    static CORPUS: std::sync::OnceLock<Vec<(PathBuf, String)>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(load_corpus)
}

fn load_corpus() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in [
        "examples",
        "stdlib/modules",
        "tests/inputs/parse",
        "editor/tests/inputs/fmt",
    ] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "flow") {
                let text = std::fs::read_to_string(&path).unwrap();
                let (_, diagnostics) = parse(FileId(0), &text);
                if !has_errors(&diagnostics) {
                    files.push((path, text));
                }
            }
        }
    }
    assert!(
        files.len() >= 5,
        "the corpus is unexpectedly small: {}",
        files.len()
    );
    files
}

#[test]
fn the_whole_corpus_formats_idempotently() {
    for (path, text) in corpus() {
        let once = match format_source(text) {
            Ok(once) => once,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        assert_eq!(
            format(&once),
            once,
            "{}: formatting is not idempotent",
            path.display()
        );
    }
}

#[test]
fn syntax_errors_leave_the_text_alone() {
    let source = "workflow w {\n  step a = slack.post(\n}\n";
    assert!(matches!(format_source(source), Err(FormatError::Syntax(d)) if !d.is_empty()));
}

/// Respaces a source: every whitespace run not touching a comment is replaced by another
/// run that keeps whether it held a blank line, a line break or neither.
fn respace(source: &str, choices: &[u8]) -> String {
    let tokens = lex(source);
    let mut out = String::new();
    let mut choice = choices.iter().cycle();
    for (i, t) in tokens.iter().enumerate() {
        let text = t.text(source);
        let near_comment = |j: Option<usize>| {
            j.and_then(|j| tokens.get(j))
                .is_some_and(|n| n.kind.is_trivia() && n.kind != TokenKind::Whitespace)
        };
        if t.kind != TokenKind::Whitespace
            || near_comment(i.checked_sub(1))
            || near_comment(Some(i + 1))
        {
            out.push_str(text);
            continue;
        }
        let c = *choice.next().unwrap_or(&0) as usize;
        let indent = " ".repeat(c % 7);
        match text.matches('\n').count() {
            0 => out.push_str(&" ".repeat(1 + c % 3)),
            1 => out.push_str(&format!("\n{indent}")),
            _ => out.push_str(&format!("\n{}\n{indent}", " ".repeat(c % 2))),
        }
    }
    out
}

/// Puts a comment after the `at`-th significant token (modulo their count).
fn insert_comment(source: &str, at: usize, block: bool) -> String {
    let tokens = lex(source);
    let significant: Vec<_> = tokens.iter().filter(|t| !t.kind.is_trivia()).collect();
    if significant.is_empty() {
        return source.to_owned();
    }
    let t = significant[at % significant.len()];
    let comment = if block {
        " /* inserted */ "
    } else {
        " // inserted\n"
    };
    format!("{}{comment}{}", &source[..t.end], &source[t.end..])
}

fn comments(source: &str) -> Vec<String> {
    let mut texts: Vec<String> = lex(source)
        .iter()
        .filter(|t| t.kind.is_trivia() && t.kind != TokenKind::Whitespace)
        .map(|t| t.text(source).trim_end().to_owned())
        .collect();
    texts.sort();
    texts
}

/// Expressions of every form the grammar has, with random spacing and line breaks
/// between tokens.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x".to_owned()),
        Just("user".to_owned()),
        Just(".root".to_owned()),
        Just("42".to_owned()),
        Just("-7".to_owned()),
        Just("0x1F".to_owned()),
        Just("3u".to_owned()),
        Just("2.5e3".to_owned()),
        Just("1h30m".to_owned()),
        Just("'single'".to_owned()),
        Just(r#""a ${ x  +  1 } b""#.to_owned()),
        Just(r#"r"raw\d""#.to_owned()),
        Just(r#"b"\x00""#.to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
    ];
    let space = prop_oneof![Just(""), Just(" "), Just("  "), Just("\n  ")];
    leaf.prop_recursive(4, 48, 4, move |inner| {
        let s = space.clone();
        prop_oneof![
            (
                inner.clone(),
                prop_oneof![
                    Just("+"),
                    Just("-"),
                    Just("*"),
                    Just("/"),
                    Just("%"),
                    Just("=="),
                    Just("!="),
                    Just("<"),
                    Just(">="),
                    Just("&&"),
                    Just("||"),
                    Just("??"),
                    Just("in")
                ],
                inner.clone(),
                s.clone()
            )
                .prop_map(|(a, op, b, s)| format!("{a} {s}{op} {b}")),
            (prop_oneof![Just("!"), Just("-")], inner.clone())
                .prop_map(|(op, a)| format!("{op}({a})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("{c} ? {a} : {b}")),
            inner.clone().prop_map(|a| format!("({a})")),
            (
                inner.clone(),
                prop_oneof![Just("."), Just("?."), Just(".?")]
            )
                .prop_map(|(a, dot)| format!("({a}){dot}field")),
            (inner.clone(), inner.clone(), any::<bool>())
                .prop_map(|(a, i, opt)| format!("({a})[{}{i}]", if opt { "?" } else { "" })),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 0..4),
                s.clone()
            )
                .prop_map(|(t, args, s)| format!("({t}).map({s}{})", args.join(&format!(",{s}")))),
            (prop::collection::vec(inner.clone(), 0..4), any::<bool>()).prop_map(
                |(args, named)| {
                    let args: Vec<String> = args
                        .iter()
                        .enumerate()
                        .map(|(i, a)| {
                            if named {
                                format!("a{i}: {a}")
                            } else {
                                a.clone()
                            }
                        })
                        .collect();
                    format!("f({})", args.join(", "))
                }
            ),
            prop::collection::vec((inner.clone(), any::<bool>()), 0..4).prop_map(|items| format!(
                "[{}]",
                items
                    .iter()
                    .map(|(v, o)| format!("{}{v}", if *o { "?" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|fields| format!(
                "{{ {} }}",
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("k{i}: {v}"))
                    .collect::<Vec<_>>()
                    .join(",\n")
            )),
            prop::collection::vec(inner.clone(), 1..3).prop_map(|entries| format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|v| format!("\"key\": {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ]
    })
}

proptest! {
    // PROPTEST_CASES raises the number of cases for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_expressions_format_faithfully_and_idempotently(e in expression()) {
        let source = format!("workflow w {{\n  let value = {e}\n  step s = crm.call(arg: {e})\n    timeout {e}\n}}\n");
        let (_, diagnostics) = parse(FileId(0), &source);
        prop_assume!(!has_errors(&diagnostics));
        let once = match format_source(&source) {
            Ok(once) => once,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{source}"))),
        };
        prop_assert_eq!(format(&once), once.clone(), "not idempotent:\n{}", source);
    }

    #[test]
    fn layout_does_not_depend_on_spacing(file in any::<prop::sample::Index>(), choices in prop::collection::vec(any::<u8>(), 1..64)) {
        let corpus = corpus();
        let (path, text) = &corpus[file.index(corpus.len())];
        let respaced = respace(text, &choices);
        let (original, _) = parse(FileId(0), text);
        let (module, diagnostics) = parse(FileId(0), &respaced);
        // Respacing can only change the meaning through doc comments or item boundaries;
        // such variants are not the subject here.
        prop_assume!(!has_errors(&diagnostics) && flow_editor::format::same_meaning(&original, &module));
        prop_assert_eq!(format(&respaced), format(text), "{}", path.display());
    }

    #[test]
    fn inserted_comments_survive_exactly_once(file in any::<prop::sample::Index>(), places in prop::collection::vec((any::<usize>(), any::<bool>()), 1..4)) {
        let corpus = corpus();
        let (path, text) = &corpus[file.index(corpus.len())];
        let mut commented = text.clone();
        for (at, block) in places {
            commented = insert_comment(&commented, at, block);
        }
        let (original, _) = parse(FileId(0), text);
        let (module, diagnostics) = parse(FileId(0), &commented);
        prop_assume!(!has_errors(&diagnostics) && flow_editor::format::same_meaning(&original, &module));
        let once = match format_source(&commented) {
            Ok(once) => once,
            Err(e) => return Err(TestCaseError::fail(format!("{}: {e}\n{commented}", path.display()))),
        };
        prop_assert_eq!(comments(&once), comments(&commented), "{}\n{}", path.display(), commented);
        let twice = format(&once);
        if twice != once {
            let diff: Vec<String> = once.lines().zip(twice.lines()).filter(|(a, b)| a != b).take(3).map(|(a, b)| format!("-{a}\n+{b}")).collect();
            return Err(TestCaseError::fail(format!("{}: not idempotent\n{}\n--- input ---\n{commented}", path.display(), diff.join("\n"))));
        }
    }
}
