//! Traces over OTLP: `flow serve` and `flow run` export a span per request, run, step
//! attempt and outgoing HTTP call to a receiver on 127.0.0.1 that decodes the published
//! OTLP protobuf messages; the parent/child structure holds, a caller's `traceparent`
//! becomes the request's parent, and calls carry the client span's `traceparent`.

mod serve_support;

use std::collections::HashMap;
use std::process::Command;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serve_support::*;

/// One exported span, ids in hex.
#[derive(Clone, Debug)]
struct Span {
    trace: String,
    id: String,
    parent: String,
    name: String,
    /// 2 server, 3 client (OTLP's `SpanKind`).
    kind: i32,
    attributes: HashMap<String, String>,
    service: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// Every span the receiver got so far.
fn spans(receiver: &Counter) -> Vec<Span> {
    let mut out = Vec::new();
    for r in receiver.seen.lock().unwrap().iter() {
        assert_eq!(
            r.line, "POST /v1/traces HTTP/1.1",
            "OTLP/HTTP's traces path"
        );
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        let export = ExportTraceServiceRequest::decode(r.body.as_slice())
            .expect("an OTLP ExportTraceServiceRequest");
        for rs in export.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(&a.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(Span {
                        trace: hex(&s.trace_id),
                        id: hex(&s.span_id),
                        parent: hex(&s.parent_span_id),
                        name: s.name.clone(),
                        kind: s.kind,
                        attributes: s
                            .attributes
                            .iter()
                            .map(|a| (a.key.clone(), text(&a.value)))
                            .collect(),
                        service: service.clone(),
                    });
                }
            }
        }
    }
    out
}

fn find<'a>(spans: &'a [Span], trace: &str, name: &str) -> Option<&'a Span> {
    spans.iter().find(|s| s.trace == trace && s.name == name)
}

fn program(counter: u16) -> String {
    format!(
        r#"
integration acme {{
  base_url = "http://127.0.0.1:{counter}"

  action ping() -> {{ ok: bool }} {{
    GET "/ping"
  }}
}}

type Order = {{ id: string, amount: int }}

workflow on_order -> string {{
  on webhook("/orders") as Order
  step seen = http.post(url: "http://127.0.0.1:{counter}/seen", json: event)
  return event.id
}}

workflow traced(name: string) -> string {{
  step a = http.get(url: "http://127.0.0.1:{counter}/greet?token=hidden")
  step b = acme.ping()
  return "hello " + name
}}
"#
    )
}

/// A connection for `acme` (it needs no secret), owned by `ops`.
fn connect(dir: &std::path::Path) {
    let (code, _, err) = flow(
        dir,
        &["connect", "acme", "--owner", "ops", "--store", "flow.db"],
        "",
    );
    assert_eq!(code, 0, "{err}");
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER: &str = "b7ad6b7169203331";
const HOOK_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HOOK_CALLER: &str = "00f067aa0ba902b7";

#[test]
fn requests_runs_steps_and_calls_are_traced_with_their_parents() {
    let dir = scratch("traces");
    let upstream = Counter::start();
    let receiver = Counter::start();
    std::fs::write(dir.join("app.flow"), program(upstream.port)).unwrap();
    let key = admin_key(&dir);
    connect(&dir);
    let endpoint = format!("http://127.0.0.1:{}", receiver.port);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let server = Server::start_with_env(&dir, &["--as", "ops"], &env);
    let c = client();
    let started = c.send(
        "POST",
        &server.url("/api/v1/workflows/traced/runs?wait=20s"),
        Some(&key),
        &[("traceparent", &format!("00-{TRACE}-{CALLER}-01"))],
        Some(br#"{"name":"otel"}"#.to_vec()),
    );
    assert_eq!(started.status, 200, "{}", started.text);
    assert_eq!(started.json()["status"], "completed", "{}", started.text);
    let delivered = c.send(
        "POST",
        &server.url("/hooks/orders?wait=20s"),
        None,
        &[("traceparent", &format!("00-{HOOK_TRACE}-{HOOK_CALLER}-01"))],
        Some(br#"{"id":"o-1","amount":5}"#.to_vec()),
    );
    assert_eq!(delivered.status, 200, "{}", delivered.text);
    wait_until("the API run's and the delivery's spans", || {
        let all = spans(&receiver);
        find(&all, TRACE, "step b").is_some()
            && all
                .iter()
                .filter(|s| s.trace == TRACE && s.kind == 3)
                .count()
                >= 2
            && find(&all, HOOK_TRACE, "step seen").is_some()
            && all.iter().any(|s| s.trace == HOOK_TRACE && s.kind == 3)
    });
    let all = spans(&receiver);

    // API request ← caller; run ← request; steps ← run; calls ← their step.
    let request = find(&all, TRACE, "POST /api/v1/workflows/{workflow}/runs").expect("request");
    assert_eq!(
        request.parent, CALLER,
        "the caller's traceparent is the parent"
    );
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!(request.service, "flow");
    assert_eq!(request.attributes["http.response.status_code"], "200");
    let run = find(&all, TRACE, "run traced").expect("run span");
    assert_eq!(run.parent, request.id);
    assert_eq!(run.attributes["flow.workflow"], "traced");
    assert_eq!(run.attributes["flow.status"], "completed");
    assert_eq!(
        run.attributes["flow.run_id"],
        started.json()["run"].as_str().unwrap()
    );
    for (step, path) in [("a", "/greet"), ("b", "/ping")] {
        let attempt = find(&all, TRACE, &format!("step {step}")).expect("step span");
        assert_eq!(attempt.parent, run.id, "step {step} under its run");
        assert_eq!(attempt.attributes["flow.attempt"], "1");
        let call = all
            .iter()
            .find(|s| s.trace == TRACE && s.kind == 3 && s.parent == attempt.id)
            .unwrap_or_else(|| panic!("no client span under step {step}: {all:#?}"));
        assert_eq!(call.name, "GET");
        assert_eq!(call.attributes["http.response.status_code"], "200");
        assert!(
            call.attributes["url.full"].ends_with(path),
            "no query in the URL: {:?}",
            call.attributes["url.full"]
        );
        // The call carried the client span as its parent.
        let seen = upstream.seen.lock().unwrap();
        let sent = seen
            .iter()
            .find(|r| r.line.contains(path))
            .expect("the upstream got the call");
        assert_eq!(
            sent.header("traceparent"),
            Some(format!("00-{TRACE}-{}-01", call.id).as_str())
        );
    }

    // A webhook delivery: the same structure under the sender's traceparent.
    let request = find(&all, HOOK_TRACE, "POST /hooks/{*path}").expect("delivery span");
    assert_eq!(request.parent, HOOK_CALLER);
    let run = find(&all, HOOK_TRACE, "run on_order").expect("the delivery's run");
    assert_eq!(run.parent, request.id);
    let attempt = find(&all, HOOK_TRACE, "step seen").expect("its step");
    assert_eq!(attempt.parent, run.id);
    assert_eq!(server.stop(), 0);

    // `flow run` exports too: the run is a root, and the spans are flushed at exit.
    let before = spans(&receiver).len();
    let out = Command::new(FLOW)
        .args([
            "run",
            "app.flow",
            "--workflow",
            "traced",
            "--input",
            r#"{"name":"cli"}"#,
            "--store",
            "flow.db",
            "--as",
            "ops",
        ])
        .current_dir(&dir)
        .envs(env)
        .env("FLOW_VAULT_KEY", VAULT_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = spans(&receiver);
    let run = all[before..]
        .iter()
        .find(|s| s.name == "run traced")
        .expect("flow run's spans were exported before it exited");
    assert_eq!(run.parent, "", "a run the CLI started is a root");
    let steps = all[before..]
        .iter()
        .filter(|s| s.trace == run.trace && s.parent == run.id)
        .count();
    assert_eq!(steps, 2, "{all:#?}");
}

#[test]
fn without_an_endpoint_nothing_is_exported_and_no_traceparent_is_sent() {
    let dir = scratch("traces-off");
    let upstream = Counter::start();
    std::fs::write(dir.join("app.flow"), program(upstream.port)).unwrap();
    connect(&dir);
    let out = Command::new(FLOW)
        .args([
            "run",
            "app.flow",
            "--workflow",
            "traced",
            "--input",
            r#"{"name":"x"}"#,
            "--store",
            "flow.db",
            "--as",
            "ops",
        ])
        .current_dir(&dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("FLOW_VAULT_KEY", VAULT_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = upstream.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen.iter().all(|r| r.header("traceparent").is_none()));
}
