//! Every action of every connected standard-library integration, called through the
//! driver with arguments generated from its parameter types, against a local server: the
//! request must be built (path, query, headers, body), authenticated with the
//! integration's auth kind (bearer, basic, API key, OAuth2 refresh, session sign-in,
//! SigV4) and sent with the declared method. The local server answers `{}`, so a result
//! that needs more is reported as a validation error, which is expected here: answers
//! are checked against real emulators, Prism and the vendors' documented examples in the
//! other tests.

mod common;

use std::sync::Arc;

use common::*;
use flow_connectors::Connection;
use flow_ir::types::Type;
use flow_runtime::ErrorKind;
use serde_json::{Value, json};

fn sample(ty: &Type) -> Value {
    match ty {
        Type::Bool => json!(true),
        Type::Int | Type::UInt => json!(2),
        Type::Double => json!(1.5),
        Type::String | Type::Secret => json!("x1"),
        Type::Bytes => json!("aGk="),
        Type::Timestamp => json!("2024-01-01T00:00:00Z"),
        Type::Duration => json!("1s"),
        Type::List(t) => json!([sample(t)]),
        Type::Map(_, v) => json!({ "k": sample(v) }),
        Type::Record(r) => Value::Object(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), sample(&f.ty)))
                .collect(),
        ),
        Type::Optional(t) => sample(t),
        _ => json!({ "a": 1 }),
    }
}

/// The literal text a path expression starts with.
fn leading_text(arena: &flow_compiler::expr::ExprArena, id: flow_compiler::expr::ExprId) -> String {
    use flow_compiler::expr::{Const, NodeKind};
    match arena.node(id).map(|n| &n.kind) {
        Some(NodeKind::Const(Const::String(s))) => s.clone(),
        Some(NodeKind::Interpolate(parts)) => parts
            .first()
            .map(|p| leading_text(arena, *p))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

#[tokio::test]
async fn every_stdlib_action_builds_and_sends_its_request() {
    let (url, seen) = server(Arc::new(|s: &Seen, _| {
        let path = s.uri.split('?').next().unwrap_or("");
        if path.ends_with("/token") {
            json_reply(
                200,
                json!({ "access_token": "oauth-access", "expires_in": 3600 }),
            )
        } else if path.ends_with("/auth/signin") {
            json_reply(200, json!({ "credentials": { "token": "session-token" } }))
        } else {
            json_reply(200, json!({}))
        }
    }))
    .await;
    let mut report = Vec::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for compiled in connected_stdlib() {
        let program = Arc::clone(&compiled.program);
        let integ = compiled.integration().unwrap();
        let (settings, secrets) = flow_connectors::catalog::needs(integ);
        let mut conn = Connection::new(&integ.name, "ops").with_base_url(&url);
        for s in &settings {
            conn = conn.with_setting(s, if s == "region" { "us-east-1" } else { "acme" });
        }
        conn = conn.with_setting("token_url", &format!("{url}/oauth/token"));
        for s in &secrets {
            conn = conn.with_secret(s, &format!("secret-{s}"));
        }
        let (driver, _) = driver(vec![conn]);
        for action in &integ.actions {
            count += 1;
            let args: serde_json::Map<String, Value> = action
                .params
                .iter()
                .filter(|p| p.default.is_none())
                .map(|p| (p.name.clone(), sample(&p.ty)))
                .collect();
            let before = seen.lock().unwrap().len();
            let name = format!("{}.{}", integ.name, action.name);
            let outcome = call(&driver, &program, &name, Value::Object(args)).await;
            let sent: Vec<Seen> = seen.lock().unwrap()[before..].to_vec();
            let request = sent
                .iter()
                .rev()
                .find(|s| !s.uri.ends_with("/token") && !s.uri.ends_with("/auth/signin"));
            let absolute = action
                .request
                .as_ref()
                .is_some_and(|r| leading_text(&action.exprs, r.path).starts_with("https://"));
            match (&outcome, request) {
                (_, Some(req)) => {
                    let method = action.request.as_ref().unwrap().method.as_str();
                    if req.method != method {
                        failures.push(format!("{name}: sent {} instead of {method}", req.method));
                    }
                    let authed = req.headers.iter().any(|(k, v)| {
                        k == "authorization"
                            || k.contains("key")
                            || k.contains("token")
                            || k.contains("auth")
                            || v.contains("secret-")
                    }) || req.uri.contains("secret-");
                    if !authed {
                        failures.push(format!("{name}: the request carries no credential"));
                    }
                    match &outcome {
                        Err(e)
                            if e.kind == ErrorKind::Expression
                                && !e.message.contains("`result`")
                                && !e.message.contains("`paginate`")
                                && !e.message.contains("`error_when`") =>
                        {
                            failures.push(format!("{name}: {e}"));
                        }
                        _ => {}
                    }
                    report.push(format!("{name}: {} {}", req.method, req.uri));
                }
                (Err(e), None) if absolute && e.kind == ErrorKind::Communication => {
                    report.push(format!(
                        "{name}: absolute URL on the vendor's host, not reachable here"
                    ));
                }
                (outcome, None) => failures.push(format!("{name}: no request sent: {outcome:?}")),
            }
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(count >= 150, "only {count} actions");
    assert!(
        failures.is_empty(),
        "{} of {count} actions failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
