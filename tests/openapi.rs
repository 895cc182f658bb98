//! The server's OpenAPI document (`server/openapi.json`, served at
//! `/api/v1/openapi.json`) describes exactly the routes the server registers: every
//! `.route(...)` of `server/src/app.rs` is a path of the document and every path of the
//! document is a route, each with its operations, responses and, under `/api/v1` and
//! `/metrics`, the bearer key.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The paths `server/src/app.rs` routes, in OpenAPI's spelling (`{*path}` is `{path}`).
fn routed() -> BTreeSet<String> {
    let source = std::fs::read_to_string(root().join("server/src/app.rs")).unwrap();
    let mut paths = BTreeSet::new();
    for part in source.split(".route(").skip(1) {
        let rest = part.trim_start();
        let Some(rest) = rest.strip_prefix('"') else {
            continue;
        };
        let end = rest.find('"').unwrap();
        paths.insert(rest[..end].replace("{*", "{"));
    }
    paths
}

#[test]
fn the_document_describes_every_route_and_no_other() {
    let text = std::fs::read_to_string(root().join("server/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).expect("the document is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let routed = routed();
    assert!(routed.len() >= 15, "found only {routed:?} in app.rs");
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(missing.is_empty(), "routes the document lacks: {missing:?}");
    assert!(
        extra.is_empty(),
        "documented paths no route serves: {extra:?}"
    );
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(!responses.is_empty(), "{method} {path}: no responses");
            let open =
                path == "/healthz" || path == "/api/v1/openapi.json" || path.starts_with("/hooks/");
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path}: no security"));
            assert_eq!(security.is_empty(), open, "{method} {path}: security");
            if !open {
                assert!(responses.contains_key("401"), "{method} {path}: no 401");
            }
            // Every schema reference resolves.
            check_refs(&doc, op);
        }
    }
}

fn check_refs(doc: &serde_json::Value, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .expect("a local schema");
                assert!(
                    doc["components"]["schemas"].get(name).is_some(),
                    "unresolved {r}"
                );
            }
            m.values().for_each(|x| check_refs(doc, x));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| check_refs(doc, x)),
        _ => {}
    }
}
