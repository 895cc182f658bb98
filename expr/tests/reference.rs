//! The function reference in `docs/expressions.md` is written from the catalogue: this
//! test fails when the two differ. `UPDATE_DOCS=1 cargo test -p flow-expr --test
//! reference` rewrites the section.

use std::path::PathBuf;

use flow_compiler::expr::catalogue::{self, parse_signature};
use flow_compiler::expr::display_signature;

const START: &str = "<!-- catalogue:start -->";
const END: &str = "<!-- catalogue:end -->";

fn render() -> String {
    let mut out = String::new();
    for f in catalogue::functions() {
        let sigs: Vec<String> = f
            .signatures
            .iter()
            .filter_map(|s| parse_signature(s, f.overload))
            .filter(|s| !s.name.starts_with('@'))
            .map(|s| format!("`{}`", display_signature(&s)))
            .collect();
        if sigs.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "### {:?}\n\n{}\n\n{}\n\n",
            f.overload,
            sigs.join("<br>"),
            f.doc
        ));
        out.push_str("| example | result |\n|---|---|\n");
        for e in f.examples {
            out.push_str(&format!(
                "| `{}` | `{}` |\n",
                e.expr.replace('|', "\\|"),
                e.result.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}

#[test]
fn function_reference_matches_the_catalogue() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/expressions.md");
    let text = std::fs::read_to_string(&path).expect("docs/expressions.md exists");
    let (Some(start), Some(end)) = (text.find(START), text.find(END)) else {
        panic!("docs/expressions.md has no catalogue markers");
    };
    let current = &text[start + START.len()..end];
    let wanted = format!("\n\n{}", render());
    if current != wanted {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{START}{wanted}{}", &text[..start], &text[end..]);
            std::fs::write(&path, updated).expect("writes docs");
        } else {
            panic!(
                "docs/expressions.md's function reference is out of date: run UPDATE_DOCS=1 cargo test -p flow-expr --test reference"
            );
        }
    }
}
