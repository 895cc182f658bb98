//! Parser fixtures: the AST of every valid file under `inputs/parse/`, and the rendered
//! diagnostics (as a terminal shows them, without colour) of every malformed file under
//! `inputs/syntax/`, are snapshotted.

use flow_grammar::render::Renderer;
use flow_grammar::{Diagnostic, FileId, SourceMap, decode_source, parse};

/// Loads a fixture as the CLI does: bytes that are not UTF-8 give their diagnostic.
fn load(path: &std::path::Path) -> (SourceMap, FileId, Option<Diagnostic>) {
    let bytes = std::fs::read(path).unwrap();
    let mut sources = SourceMap::new();
    let name = format!("inputs/{}", path.file_name().unwrap().to_string_lossy());
    let (text, problem) = match decode_source(FileId(0), &bytes) {
        Ok(text) => (text, None),
        Err((lossy, d)) => (lossy, Some(d)),
    };
    let id = sources.add(name, text);
    (sources, id, problem)
}

#[test]
fn valid_files_parse_to_the_expected_ast() {
    insta::glob!("inputs/parse/*.flow", |path| {
        let (sources, id, problem) = load(path);
        assert!(problem.is_none());
        let text = &sources.get(id).unwrap().text;
        let (module, diagnostics) = parse(id, text);
        assert!(
            diagnostics.is_empty(),
            "{}: unexpected diagnostics {diagnostics:#?}",
            path.display()
        );
        insta::assert_debug_snapshot!(module);
    });
}

#[test]
fn malformed_files_get_diagnostics() {
    insta::glob!("inputs/syntax/*.flow", |path| {
        let (sources, id, problem) = load(path);
        let text = &sources.get(id).unwrap().text;
        let diagnostics = match problem {
            Some(d) => vec![d],
            None => parse(id, text).1,
        };
        assert!(
            diagnostics.iter().any(|d| d.is_error()),
            "{}: a malformed fixture must produce an error",
            path.display()
        );
        let mut renderer = Renderer::new(&sources, false);
        let rendered: String = diagnostics.iter().map(|d| renderer.terminal(d)).collect();
        insta::assert_snapshot!(rendered);
    });
}
