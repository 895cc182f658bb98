//! Recovery inside items: every file under `inputs/recover/` has a statement that does
//! not parse inside a workflow or test. The snapshot holds the outline of what was
//! kept (each statement of each workflow and test, error nodes with their text) and the
//! diagnostics of checking the whole program, so a type error elsewhere in the same
//! workflow shows up and no name declared around the broken statement is reported
//! unknown.

use flow_compiler::compile_source;
use flow_grammar::ast::{
    ActionClauseKind, Block, IntegrationMember, Item, StatementKind, TestStatementKind,
};
use flow_grammar::render::Renderer;
use flow_grammar::{FileId, codes, parse};

/// One line per statement, indented by block depth.
fn outline(source: &str, block: &Block, depth: usize, out: &mut String) {
    for s in &block.statements {
        let pad = "  ".repeat(depth + 1);
        let text = |span: flow_grammar::Span| source[span.range()].trim().replace('\n', " ");
        match &s.kind {
            StatementKind::Error { declares } => {
                let name = declares
                    .as_ref()
                    .map_or(String::new(), |n| format!(" declares `{}`", n.name));
                out.push_str(&format!("{pad}<error{name}> {:?}\n", text(s.span)));
            }
            StatementKind::If {
                branches,
                otherwise,
            } => {
                out.push_str(&format!("{pad}if\n"));
                for b in branches {
                    outline(source, &b.body, depth + 1, out);
                }
                if let Some(o) = otherwise {
                    out.push_str(&format!("{pad}else\n"));
                    outline(source, o, depth + 1, out);
                }
            }
            StatementKind::For { body, .. } => {
                out.push_str(&format!("{pad}for\n"));
                outline(source, body, depth + 1, out);
            }
            StatementKind::Try { body, handler, .. } => {
                out.push_str(&format!("{pad}try\n"));
                outline(source, body, depth + 1, out);
                out.push_str(&format!("{pad}catch\n"));
                outline(source, handler, depth + 1, out);
            }
            _ => {
                let first_line = text(s.span);
                out.push_str(&format!("{pad}{}\n", first_line));
            }
        }
    }
}

#[test]
fn broken_statements_cost_only_themselves() {
    insta::glob!("inputs/recover/*.flow", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = format!("recover/{}", path.file_name().unwrap().to_string_lossy());
        let (module, syntax) = parse(FileId(0), &text);
        assert_eq!(
            syntax.iter().filter(|d| d.is_error()).count(),
            1,
            "{name}: the syntax error is reported once: {syntax:?}"
        );
        let mut kept = String::new();
        for item in &module.items {
            match item {
                Item::Workflow(w) => {
                    kept.push_str(&format!("workflow {}\n", w.name.name));
                    outline(&text, &w.body, 0, &mut kept);
                }
                Item::Test(t) => {
                    kept.push_str(&format!("test {:?}\n", t.name));
                    for s in &t.statements {
                        let shown = text[s.span.range()].trim().replace('\n', " ");
                        match &s.kind {
                            TestStatementKind::Error { .. } => {
                                kept.push_str(&format!("  <error> {shown:?}\n"))
                            }
                            _ => kept.push_str(&format!("  {shown}\n")),
                        }
                    }
                }
                Item::Integration(i) => {
                    kept.push_str(&format!("integration {}\n", i.name.name));
                    for m in &i.members {
                        match m {
                            IntegrationMember::Setting(s) => {
                                kept.push_str(&format!("  {} = ...\n", s.name.name))
                            }
                            IntegrationMember::Type(t) => {
                                kept.push_str(&format!("  type {}\n", t.name.name))
                            }
                            IntegrationMember::Action(a) => {
                                kept.push_str(&format!("  action {}\n", a.name.name));
                                for c in &a.clauses {
                                    let shown = text[c.span.range()].trim().replace('\n', " ");
                                    match c.kind {
                                        ActionClauseKind::Error => {
                                            kept.push_str(&format!("    <error> {shown:?}\n"))
                                        }
                                        _ => kept.push_str(&format!("    {shown}\n")),
                                    }
                                }
                            }
                            IntegrationMember::Event(e) => {
                                kept.push_str(&format!("  event {}\n", e.name.name))
                            }
                            IntegrationMember::Error(span) => {
                                let shown = text[span.range()].trim().replace('\n', " ");
                                kept.push_str(&format!("  <error> {shown:?}\n"));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let (sources, compilation) = compile_source(&name, &text);
        for d in &compilation.diagnostics {
            assert_ne!(
                d.code,
                codes::UNKNOWN_NAME,
                "{name}: a name around the broken statement is reported unknown: {}",
                d.message
            );
        }
        let mut renderer = Renderer::new(&sources, false);
        let rendered: String = compilation
            .diagnostics
            .iter()
            .map(|d| renderer.terminal(d))
            .collect();
        insta::assert_snapshot!(format!("{kept}\n{rendered}"));
    });
}

mod deleting_a_token {
    //! Deleting one token inside a statement of a valid program leaves hover and
    //! definition answering, as before, for every name outside that statement.

    use flow_compiler::{Compilation, compile_source};
    use flow_grammar::ast::Item;
    use flow_grammar::tokens::{TokenKind, lex};
    use flow_grammar::{FileId, SourceMap, Span, parse};
    use proptest::prelude::*;

    const PROGRAMS: &[(&str, &str)] = &[
        (
            "incident_fanout.flow",
            include_str!("../examples/incident_fanout.flow"),
        ),
        (
            "customer_onboarding.flow",
            include_str!("../examples/customer_onboarding.flow"),
        ),
        (
            "sales_report.flow",
            include_str!("../examples/sales_report.flow"),
        ),
        (
            "health_monitor.flow",
            include_str!("../examples/health_monitor.flow"),
        ),
    ];

    /// The top-level statements of every workflow body.
    fn statements(text: &str) -> Vec<Span> {
        parse(FileId(0), text)
            .0
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Workflow(w) => Some(w.body.statements.iter().map(|s| s.span)),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn definition_key(sources: &SourceMap, c: &Compilation, span: Span) -> (String, u32, u32) {
        let _ = c;
        let name = sources
            .get(span.file)
            .map(|f| f.name.clone())
            .unwrap_or_default();
        (name, span.start, span.end)
    }

    fn check(program: usize, pick: usize) -> Result<(), TestCaseError> {
        let (name, text) = PROGRAMS[program % PROGRAMS.len()];
        let statements = statements(text);
        // Tokens inside a statement, brackets aside (a deleted bracket unbalances the
        // item, which costs it: see ARCHITECTURE.md).
        let candidates: Vec<(Span, flow_grammar::tokens::Token)> = lex(text)
            .into_iter()
            .filter(|t| {
                !t.kind.is_trivia()
                    && !matches!(
                        t.kind,
                        TokenKind::LBrace
                            | TokenKind::RBrace
                            | TokenKind::LParen
                            | TokenKind::RParen
                            | TokenKind::LBracket
                            | TokenKind::RBracket
                    )
            })
            .filter_map(|t| {
                let s = statements
                    .iter()
                    .find(|s| (s.start as usize) <= t.start && t.end <= s.end as usize)?;
                Some((*s, t))
            })
            .collect();
        let (statement, token) = candidates[pick % candidates.len()];
        let edited = format!("{}{}", &text[..token.start], &text[token.end..]);
        let removed = (token.end - token.start) as u32;
        let shift = |offset: u32| {
            if offset as usize >= token.end {
                offset - removed
            } else {
                offset
            }
        };
        let (before_sources, before) = compile_source(name, text);
        let (after_sources, after) = compile_source(name, &edited);
        let root = FileId(0);
        let inside = |span: Span| {
            span.file == root && statement.start <= span.start && span.end <= statement.end
        };
        for r in &before.analysis.references {
            if r.span.file != root || inside(r.span) || inside(r.definition) {
                continue;
            }
            let at = shift(r.span.start) as usize;
            let found = after.analysis.at(root, at);
            prop_assert!(
                found.is_some_and(|f| f.name == r.name),
                "{name}: deleting {:?} at {} loses `{}` at {}",
                &text[token.start..token.end],
                token.start,
                r.name,
                r.span.start
            );
            let found = found.unwrap();
            let (file, start, end) = definition_key(&before_sources, &before, r.definition);
            let expected = if r.definition.file == root {
                (file, shift(start), shift(end))
            } else {
                (file, start, end)
            };
            prop_assert_eq!(
                definition_key(&after_sources, &after, found.definition),
                expected,
                "{}: definition of `{}` after deleting {:?}",
                name,
                r.name,
                &text[token.start..token.end]
            );
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]
        #[test]
        fn names_outside_the_statement_still_answer(program in 0usize..64, pick in 0usize..100_000) {
            check(program, pick)?;
        }
    }
}
