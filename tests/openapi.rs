//! The server's OpenAPI document (`server/openapi.json`, served at
//! `/api/v1/openapi.json`) describes exactly the routes the server registers: every
//! `.route(...)` of `server/src/app.rs` is a path of the document with the same methods,
//! and every path and method of the document is routed. Each operation names the scope
//! its handler checks (or says it takes no key), has the bearer key exactly when the
//! handler checks one, lists its answers, and refers only to schemas the document has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A route's method and the handler axum calls for it (`api::runs::list`).
type Handlers = BTreeMap<String, String>;

/// The paths `router()` of `server/src/app.rs` routes, in OpenAPI's spelling (`{*path}`
/// is `{path}`), with their methods and handlers. (The separate metrics address has a
/// router of its own, `metrics_router`, which the document does not describe.)
fn routed() -> BTreeMap<String, Handlers> {
    let source = read("server/src/app.rs");
    let start = source
        .find("pub fn router(")
        .expect("app.rs has `pub fn router`");
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
    let mut routes = BTreeMap::new();
    for part in body.split(".route(").skip(1) {
        let Some(rest) = part.trim_start().strip_prefix('"') else {
            continue;
        };
        let end = rest.find('"').unwrap();
        let path = rest[..end].replace("{*", "{");
        let args = balanced(&rest[end + 1..]);
        let mut handlers = Handlers::new();
        for method in ["get", "post", "put", "patch", "delete"] {
            let call = format!("{method}(");
            for (at, _) in args.match_indices(&call) {
                let before = args[..at].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let inner = &args[at + call.len()..];
                let handler = &inner[..inner.find(')').unwrap()];
                handlers.insert(method.to_owned(), handler.trim().to_owned());
            }
        }
        assert!(!handlers.is_empty(), "{path}: no handler found in app.rs");
        routes.insert(path, handlers);
    }
    routes
}

/// The text up to the parenthesis that closes the one `text` is inside of.
fn balanced(text: &str) -> &str {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return &text[..i],
            ')' => depth -= 1,
            _ => {}
        }
    }
    text
}

/// The scope a handler passes to `authorize` (`None`: it checks no key), read from its
/// source: `api::runs::list` is `list` in `server/src/api/runs.rs`, a bare name is in
/// `server/src/app.rs`.
fn scope_of(handler: &str) -> Option<&'static str> {
    let (module, name) = handler.rsplit_once("::").unwrap_or(("app", handler));
    let source = read(&format!("server/src/{}.rs", module.replace("::", "/")));
    let start = source
        .find(&format!("async fn {name}("))
        .unwrap_or_else(|| panic!("no `async fn {name}` for {handler}"));
    let body = &source[start..];
    let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
    let scope = body.split("Scope::").nth(1)?;
    let ident: String = scope.chars().take_while(|c| c.is_alphanumeric()).collect();
    Some(match ident.as_str() {
        "RunsRead" => "runs:read",
        "RunsWrite" => "runs:write",
        "Admin" => "admin",
        "MetricsRead" => "metrics:read",
        other => panic!("{handler}: an unknown scope `{other}`"),
    })
}

fn document() -> Value {
    serde_json::from_str(&read("server/openapi.json")).expect("the document is JSON")
}

#[test]
fn the_document_is_openapi_3_1_with_a_bearer_key() {
    let doc = document();
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi: {version:?}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"]["apiKey"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["apiKey"]["scheme"],
        "bearer"
    );
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]));
    assert_eq!(
        error["properties"]["error"]["required"],
        serde_json::json!(["code", "message"])
    );
}

#[test]
fn the_document_describes_every_route_and_no_other() {
    let doc = document();
    let routed = routed();
    assert!(routed.len() >= 15, "found only {routed:?} in app.rs");
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let served: BTreeSet<&str> = routed.keys().map(String::as_str).collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "routes the document lacks: {missing:?}");
    assert!(
        extra.is_empty(),
        "documented paths no route serves: {extra:?}"
    );
    for (path, handlers) in &routed {
        let methods: BTreeSet<&str> = paths[path]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let routed_methods: BTreeSet<&str> = handlers.keys().map(String::as_str).collect();
        assert_eq!(methods, routed_methods, "{path}: methods");
    }
}

#[test]
fn every_operation_names_the_scope_its_handler_checks() {
    let doc = document();
    for (path, handlers) in routed() {
        for (method, handler) in handlers {
            let op = &doc["paths"][&path][&method];
            let what = format!("{method} {path} ({handler})");
            let description = op["description"].as_str().unwrap_or_default();
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no security"));
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{what}: no responses"));
            match scope_of(&handler) {
                Some(scope) => {
                    assert_eq!(
                        security,
                        &vec![serde_json::json!({"apiKey": []})],
                        "{what}: security"
                    );
                    assert!(
                        description.starts_with(&format!("Scope `{scope}`")),
                        "{what}: the description should begin with Scope `{scope}`: {description:?}"
                    );
                    for status in ["401", "403", "429"] {
                        assert!(responses.contains_key(status), "{what}: no {status}");
                    }
                }
                None => {
                    assert!(security.is_empty(), "{what}: takes no key");
                    assert!(
                        description.starts_with("No key"),
                        "{what}: the description should begin with `No key`: {description:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_answer_is_described_and_every_reference_resolves() {
    let doc = document();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{what}: no operationId");
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{what}: no success answer"
            );
            for (status, response) in responses {
                assert!(
                    response["description"].is_string(),
                    "{what} {status}: no description"
                );
                // Every error the handlers build is the shared Error object.
                let error = status.starts_with('4') || status.starts_with('5');
                if let Some(json) = response["content"]
                    .get("application/json")
                    .filter(|_| error)
                {
                    assert_eq!(
                        json["schema"]["$ref"], "#/components/schemas/Error",
                        "{what} {status}"
                    );
                }
            }
        }
    }
    check_refs(&doc, &doc);
}

fn check_refs(doc: &Value, v: &Value) {
    match v {
        Value::Object(m) => {
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
        Value::Array(a) => a.iter().for_each(|x| check_refs(doc, x)),
        _ => {}
    }
}
