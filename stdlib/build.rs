//! Embeds every `modules/*.flow` file: generates the `MODULES` table included by lib.rs.

use std::fmt::Write;

fn main() {
    println!("cargo:rerun-if-changed=modules");
    let mut names: Vec<String> = std::fs::read_dir("modules")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".flow"))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut out = String::from(
        "/// Every embedded module, sorted by name.\npub const MODULES: &[Module] = &[\n",
    );
    for name in &names {
        let _ = writeln!(
            out,
            "    Module {{ name: {name:?}, source: include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/modules/{name}.flow\")) }},"
        );
    }
    out.push_str("];\n");
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("modules.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        println!("cargo:warning=cannot write {}: {e}", dest.display());
    }
}
