//! Recovery inside items: every file under `inputs/recover/` has a statement that does
//! not parse inside a workflow or test. The snapshot holds the outline of what was
//! kept (each statement of each workflow and test, error nodes with their text) and the
//! diagnostics of checking the whole program, so a type error elsewhere in the same
//! workflow shows up and no name declared around the broken statement is reported
//! unknown.

use flow_compiler::compile_source;
use flow_grammar::ast::{Block, Item, StatementKind, TestStatementKind};
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
