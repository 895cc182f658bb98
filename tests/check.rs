//! Checker fixtures and compiler laws.
//!
//! - Every file under `inputs/check/` is compiled; its rendered diagnostics (as a
//!   terminal shows them, without colour) are snapshotted, and so is the IR (workflows
//!   and tests, as JSON) of every file with no errors. A fixture named `ok_*` must have
//!   no diagnostic at all; one named `err_*` must have an error; `warn_*` a warning and
//!   no error.
//! - Every example checks clean (no errors, no warnings).
//! - Every registered diagnostic code is documented in `docs/diagnostics.md` and
//!   triggered by some fixture under `inputs/`.
//! - The IR survives serialise → deserialise (JSON and the `.flowc` artefact) unchanged.
//! - A damaged `.flowc` file gives its error code, never a panic.

use std::collections::BTreeSet;
use std::path::PathBuf;

use flow_compiler::{Compilation, LoadError, LoadedFile, Loader, compile};
use flow_grammar::render::Renderer;
use flow_grammar::{SourceMap, codes, decode_source};
use flow_ir::artefact;
use proptest::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reads imports relative to the importing file, under `base` (a directory of the repository).
struct FixtureLoader(&'static str);

impl Loader for FixtureLoader {
    fn load(&mut self, from: &str, path: &str) -> Result<LoadedFile, LoadError> {
        let name = flow_compiler::loader::join_relative(from, path);
        std::fs::read(root().join(self.0).join(&name))
            .map(|bytes| LoadedFile {
                name: name.clone(),
                bytes,
            })
            .map_err(|_| LoadError::NotFound(name))
    }
}

/// Compiles a file of `tests/inputs/` (named relative to it, e.g. `check/x.flow`).
fn compile_fixture(name: &str) -> (SourceMap, Compilation) {
    let bytes = std::fs::read(root().join("tests/inputs").join(name)).unwrap();
    let mut sources = SourceMap::new();
    match decode_source(flow_grammar::FileId(0), &bytes) {
        Ok(text) => {
            let id = sources.add(name, text);
            let compilation = compile(&mut sources, id, &mut FixtureLoader("tests/inputs"));
            (sources, compilation)
        }
        Err((lossy, d)) => {
            sources.add(name, lossy);
            let compilation = Compilation {
                program: Default::default(),
                diagnostics: vec![d],
                analysis: Default::default(),
            };
            (sources, compilation)
        }
    }
}

fn render(sources: &SourceMap, c: &Compilation) -> String {
    let mut renderer = Renderer::new(sources, false);
    c.diagnostics.iter().map(|d| renderer.terminal(d)).collect()
}

/// The workflows and tests of a program, without the integrations (which are the
/// stdlib's, snapshotted by their own tests).
fn ir_json(c: &Compilation) -> String {
    let p = &c.program;
    let value = serde_json::json!({
        "integrations": p.integrations.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
        "workflows": p.workflows,
        "tests": p.tests,
    });
    serde_json::to_string_pretty(&value).unwrap()
}

#[test]
fn checker_fixtures() {
    insta::glob!("inputs/check/*.flow", |path| {
        let name = format!("check/{}", path.file_name().unwrap().to_string_lossy());
        let (sources, c) = compile_fixture(&name);
        let stem = path.file_stem().unwrap().to_string_lossy().to_string();
        let errors = c.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = c.diagnostics.len() - errors;
        if stem.starts_with("ok_") {
            assert!(
                c.diagnostics.is_empty(),
                "{name}: expected no diagnostics, got:\n{}",
                render(&sources, &c)
            );
        } else if stem.starts_with("err_") {
            assert!(errors > 0, "{name}: expected an error");
        } else if stem.starts_with("warn_") {
            assert!(
                errors == 0 && warnings > 0,
                "{name}: expected warnings only, got:\n{}",
                render(&sources, &c)
            );
        }
        insta::assert_snapshot!("diagnostics", render(&sources, &c));
        if errors == 0 {
            insta::assert_snapshot!("ir", ir_json(&c));
        }
    });
}

#[test]
fn every_example_checks_clean() {
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "flow"))
        .collect();
    examples.sort();
    assert!(!examples.is_empty());
    for path in examples {
        let mut sources = SourceMap::new();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
        let id = sources.add(name.clone(), text);
        let c = compile(&mut sources, id, &mut FixtureLoader("."));
        assert!(
            c.diagnostics.is_empty(),
            "{name} does not check clean:\n{}",
            render(&sources, &c)
        );
        assert!(
            !c.program.workflows.is_empty(),
            "{name}: no workflow lowered"
        );
    }
}

/// The codes a fixture triggers: every `.flow` file under `inputs/` and every `.flowc`.
fn triggered_codes() -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root().join("tests/inputs")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root().join("tests/inputs"))
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            match path.extension().and_then(|e| e.to_str()) {
                Some("flow") => {
                    let (_, c) = compile_fixture(&rel);
                    found.extend(c.diagnostics.iter().map(|d| d.code.id));
                }
                Some("flowc") => {
                    if let Err(e) = artefact::decode(&std::fs::read(&path).unwrap()) {
                        found.insert(flow_compiler::artefact::error_code(&e).id);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// Codes whose input is too big to keep as a file: the test builds the input.
fn generated_triggers() -> BTreeSet<&'static str> {
    let mut found = BTreeSet::new();
    let mut huge = String::from("workflow w {\n  log \"x\"\n}\n");
    huge.push_str(&"// padding\n".repeat(flow_grammar::MAX_SOURCE_BYTES / 11 + 1));
    let (_, c) = flow_compiler::compile_source("huge.flow", &huge);
    found.extend(c.diagnostics.iter().map(|d| d.code.id));
    found
}

#[test]
fn every_code_is_documented_and_triggered() {
    let doc = std::fs::read_to_string(root().join("docs/diagnostics.md")).unwrap();
    let mut triggered = triggered_codes();
    triggered.extend(generated_triggers());
    let mut undocumented = Vec::new();
    let mut untriggered = Vec::new();
    for code in codes::ALL {
        if !doc.contains(&format!("## {}", code.id)) {
            undocumented.push(code.id);
        }
        if !triggered.contains(code.id) {
            untriggered.push(code.id);
        }
    }
    assert!(
        undocumented.is_empty(),
        "codes with no entry in docs/diagnostics.md: {undocumented:?}"
    );
    assert!(
        untriggered.is_empty(),
        "codes no fixture under tests/inputs/ triggers: {untriggered:?}"
    );
}

#[test]
fn damaged_artefacts_give_their_codes() {
    let cases = [
        ("not_flowc.flowc", codes::ARTEFACT_NOT_FLOWC),
        ("other_version.flowc", codes::ARTEFACT_VERSION),
        ("corrupt.flowc", codes::ARTEFACT_CORRUPT),
        ("truncated.flowc", codes::ARTEFACT_TRUNCATED),
        ("undecodable.flowc", codes::ARTEFACT_UNREADABLE),
    ];
    for (file, code) in cases {
        let bytes = std::fs::read(root().join("tests/inputs/flowc").join(file)).unwrap();
        let err = artefact::decode(&bytes).expect_err(file);
        assert_eq!(
            flow_compiler::artefact::error_code(&err),
            code,
            "{file}: {err}"
        );
    }
}

#[test]
fn every_prefix_and_bit_flip_of_an_artefact_is_rejected_cleanly() {
    let (_, c) = compile_fixture("check/ok_fanout_try.flow");
    assert!(!c.has_errors());
    let bytes = artefact::encode(&c.program).unwrap();
    assert_eq!(artefact::decode(&bytes).unwrap(), c.program);
    for cut in (0..bytes.len()).step_by(97) {
        assert!(
            artefact::decode(&bytes[..cut]).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
    for i in (0..bytes.len()).step_by(89) {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x40;
        assert!(
            artefact::decode(&damaged).is_err(),
            "flip at byte {i} accepted"
        );
    }
}

/// A generated workflow: `n` steps over `http`, each reading some earlier ones, some in
/// `if`/`for`/`try` blocks, with modifiers.
fn generated_program(shape: &[(u8, u8, bool)]) -> String {
    let mut src = String::from(
        "workflow generated(base: string = \"https://example.com\") -> { n: int } {\n",
    );
    for (i, &(kind, reads, retry)) in shape.iter().enumerate() {
        let url = if i > 0 && reads > 0 {
            let j = (reads as usize) % i;
            format!("\"${{base}}/{i}?s=${{string(s{j}.status)}}\"")
        } else {
            format!("\"${{base}}/{i}\"")
        };
        let modifiers = if retry {
            " retry 2 delay 1s backoff 2.0 timeout 10s"
        } else {
            ""
        };
        let step = format!("step s{i} = http.get(url: {url}){modifiers}");
        match kind % 4 {
            0 => src.push_str(&format!("  {step}\n")),
            1 => src.push_str(&format!("  if {i} > 1 {{\n    {step}\n  }}\n")),
            2 => src.push_str(&format!(
                "  for x{i} in [1, 2] parallel 2 {{\n    {step}\n  }}\n"
            )),
            _ => src.push_str(&format!(
                "  try {{\n    {step}\n  }} catch err {{\n    log err.message\n  }}\n"
            )),
        }
    }
    src.push_str(&format!("  return {{ n: {} }}\n}}\n", shape.len()));
    src
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn ir_survives_serialisation(shape in proptest::collection::vec((0u8..4, 0u8..4, any::<bool>()), 1..12)) {
        let src = generated_program(&shape);
        let (_, c) = flow_compiler::compile_source("generated.flow", &src);
        let program = c.program;
        let json = serde_json::to_string(&program).unwrap();
        let back: flow_ir::program::Program = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &program);
        let bytes = artefact::encode(&program).unwrap();
        let back = artefact::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &program);
    }
}

#[test]
fn the_editor_index_resolves_names_to_definitions() {
    let src = "type Pair = { left: int, right: int }\n\nworkflow w(p: Pair) -> int {\n  step probe = http.get(url: \"https://example.com\")\n  let total = p.left + probe.status\n  return total\n}\n";
    let (sources, c) = flow_compiler::compile_source("index.flow", src);
    assert!(c.diagnostics.is_empty(), "{}", render(&sources, &c));
    let file = flow_grammar::FileId(0);
    let at = |needle: &str, nth: usize| src.match_indices(needle).nth(nth).unwrap().0 + 1;
    // `probe` read in the `let` resolves to the step's name.
    let use_site = c
        .analysis
        .at(file, at("probe", 1))
        .expect("a reference at the use of `probe`");
    assert_eq!(use_site.definition.start as usize, at("probe", 0) - 1);
    assert!(
        use_site.hover.contains("http.Response"),
        "{}",
        use_site.hover
    );
    // `Pair` in the parameter list resolves to the type declaration, with its fields.
    let ty = c
        .analysis
        .at(file, at("Pair", 1))
        .expect("a reference at the use of `Pair`");
    assert_eq!(ty.definition.start as usize, at("Pair", 0) - 1);
    // `http.get`'s action name resolves into the stdlib module, with the action's signature.
    let action = c
        .analysis
        .at(file, at("get", 0))
        .expect("a reference at `get`");
    assert!(
        action.hover.contains("action http.get("),
        "{}",
        action.hover
    );
    assert_ne!(action.definition.file, file);
    // Every reference to the step, its definition included.
    assert_eq!(c.analysis.references_to(use_site.definition).count(), 2);
    // The outline: the type and the workflow with its step.
    let outline: Vec<&str> = c
        .analysis
        .symbols_of(file)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(outline, ["Pair", "w"]);
    let steps: Vec<&str> = c
        .analysis
        .symbols_of(file)
        .flat_map(|s| s.children.iter().map(|c| c.name.as_str()))
        .collect();
    assert_eq!(steps, ["probe"]);
}
