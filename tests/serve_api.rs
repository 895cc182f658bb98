//! `flow serve`'s run API and command line: start, wait, read, list with filters and
//! cursors, follow as server-sent events, cancel; the auth matrix of every endpoint;
//! deployments and rollbacks; `flow run` and `flow runs` against a server.

mod serve_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serve_support::*;

#[test]
fn the_run_api_starts_reads_lists_follows_and_cancels_runs() {
    let (dir, counter, key) = setup("api", false);
    let server = Server::start(&dir, &[]);
    let c = client();
    let start = |input: &str, extra: &[(&str, &str)], query: &str| {
        c.send(
            "POST",
            &server.url(&format!("/api/v1/workflows/greet/runs{query}")),
            Some(&key),
            extra,
            Some(input.as_bytes().to_vec()),
        )
    };
    let done = start(r#"{"name":"ada"}"#, &[], "?wait=20s");
    assert_eq!(done.status, 200, "{}", done.text);
    let run = done.json();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], "hello ada");
    assert_eq!(run["actor"], "ops");
    assert_eq!(run["steps"][0]["step"], "_a");
    assert_eq!(run["steps"][0]["attempts"], 1);
    // A bad input is refused with its path, before anything is stored.
    let bad = start(r#"{"name":7}"#, &[], "");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["path"], "name");
    let unknown = start(r#"{"nom":"x"}"#, &[], "");
    assert_eq!(unknown.status, 400);
    let missing = start("{}", &[], "");
    assert_eq!(missing.status, 400, "{}", missing.text);
    // Idempotency-Key: the same run.
    let a = start(r#"{"name":"bo"}"#, &[("idempotency-key", "k-1")], "");
    let b = start(r#"{"name":"bo"}"#, &[("idempotency-key", "k-1")], "");
    assert_eq!(a.status, 202);
    assert_eq!(a.json()["run"], b.json()["run"]);
    assert_eq!(b.json()["duplicate"], true);
    let id = a.json()["run"].as_str().unwrap().to_owned();
    wait_until("the run to end", || {
        c.send(
            "GET",
            &server.url(&format!("/api/v1/runs/{id}")),
            Some(&key),
            &[],
            None,
        )
        .json()["status"]
            == "completed"
    });
    assert_eq!(counter.hits.load(Ordering::SeqCst), 2);
    // Three more, then pages of two.
    for n in ["c", "d", "e"] {
        start(&format!(r#"{{"name":"{n}"}}"#), &[], "?wait=20s");
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .send(
                "GET",
                &server.url(&format!(
                    "/api/v1/runs?workflow=greet&status=completed&limit=2{cursor}"
                )),
                Some(&key),
                &[],
                None,
            )
            .json();
        for r in page["runs"].as_array().unwrap() {
            seen.push(r["run_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "pages do not overlap");
    let by_trigger = c
        .send(
            "GET",
            &server.url("/api/v1/runs?trigger=webhook"),
            Some(&key),
            &[],
            None,
        )
        .json();
    assert!(by_trigger["runs"].as_array().unwrap().is_empty());
    let bad_filter = c.send(
        "GET",
        &server.url("/api/v1/runs?status=sleeping"),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(bad_filter.status, 400);

    // The journal as server-sent events ends with the run's end.
    let events = c.send(
        "GET",
        &server.url(&format!("/api/v1/runs/{id}/events")),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(events.status, 200);
    assert!(
        events.text.contains("event: run_started"),
        "{}",
        events.text
    );
    assert!(events.text.contains("event: step_succeeded"));
    assert!(events.text.contains("event: run_completed"));

    // A waiting run is cancelled.
    let slow = c
        .send(
            "POST",
            &server.url("/api/v1/workflows/slow/runs"),
            Some(&key),
            &[],
            Some(br#"{"n":1}"#.to_vec()),
        )
        .json();
    let slow_id = slow["run"].as_str().unwrap().to_owned();
    wait_until("the slow run to wait", || {
        c.send(
            "GET",
            &server.url(&format!("/api/v1/runs/{slow_id}")),
            Some(&key),
            &[],
            None,
        )
        .json()["status"]
            == "waiting"
    });
    let cancelled = c.send(
        "POST",
        &server.url(&format!("/api/v1/runs/{slow_id}/cancel")),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(cancelled.json()["cancelled"], true, "{}", cancelled.text);
    let row = c
        .send(
            "GET",
            &server.url(&format!("/api/v1/runs/{slow_id}")),
            Some(&key),
            &[],
            None,
        )
        .json();
    assert_eq!(row["status"], "cancelled");
    // Unknown ids and workflows are 404 with a code.
    let none = c.send(
        "GET",
        &server.url("/api/v1/runs/r-none"),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(none.status, 404);
    assert_eq!(none.json()["error"]["code"], "not_found");
    let nowf = c.send(
        "POST",
        &server.url("/api/v1/workflows/nope/runs"),
        Some(&key),
        &[],
        Some(b"{}".to_vec()),
    );
    assert_eq!(nowf.status, 404);
    // Metrics: counted, with no run id in any label.
    let metrics = c.send("GET", &server.url("/metrics"), Some(&key), &[], None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .text
            .contains("flow_runs_started_total{workflow=\"greet\",trigger=\"api\"}"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("flow_runs_finished_total"));
    assert!(
        metrics
            .text
            .contains("flow_step_duration_seconds_bucket{integration=\"http\",action=\"get\""),
        "{}",
        metrics.text
    );
    assert!(!metrics.text.contains(&id));
}

#[test]
fn every_endpoint_checks_its_key() {
    let (dir, _counter, admin) = setup("auth", false);
    let make = |name: &str, scope: &str, extra: &[&str]| {
        let mut args = vec![
            "keys", "create", "--name", name, "--scope", scope, "--store", "flow.db",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = flow(&dir, &args, "");
        assert_eq!(code, 0, "{err}");
        out.trim().to_owned()
    };
    let reader = make("reader", "runs:read", &[]);
    let writer = make("writer", "runs:write", &[]);
    let greeter = make("greeter", "runs:write", &["--workflow", "gr*"]);
    let expired = make("old", "admin", &["--expires", "1ms"]);
    let revoked = make("gone", "admin", &[]);
    let (code, _, _) = flow(&dir, &["keys", "revoke", "gone", "--store", "flow.db"], "");
    assert_eq!(code, 0);
    let (_, listed, _) = flow(
        &dir,
        &["keys", "list", "--format", "json", "--store", "flow.db"],
        "",
    );
    assert!(!listed.contains("flow_sk_"), "secrets are never listed");
    std::thread::sleep(Duration::from_millis(5));
    let server = Server::start(&dir, &[]);
    let c = client();
    // (method, path, body, the scope it needs, the workflow it touches)
    let endpoints: [(&str, &str, &str, &str, Option<&str>); 10] = [
        ("GET", "/api/v1/runs", "", "runs:read", None),
        ("GET", "/api/v1/workflows", "", "runs:read", None),
        (
            "POST",
            "/api/v1/workflows/greet/runs",
            r#"{"name":"x"}"#,
            "runs:write",
            Some("greet"),
        ),
        (
            "POST",
            "/api/v1/workflows/slow/runs",
            r#"{"n":1}"#,
            "runs:write",
            Some("slow"),
        ),
        ("GET", "/api/v1/schedules", "", "runs:read", None),
        ("GET", "/api/v1/deployments", "", "runs:read", None),
        ("GET", "/api/v1/deliveries", "", "admin", None),
        ("GET", "/api/v1/connections/health", "", "admin", None),
        ("POST", "/api/v1/deployments/1/rollback", "", "admin", None),
        ("GET", "/metrics", "", "metrics:read", None),
    ];
    for (method, path, body, scope, workflow) in endpoints {
        let send = |key: Option<&str>| {
            c.send(
                method,
                &server.url(path),
                key,
                &[],
                (!body.is_empty()).then(|| body.as_bytes().to_vec()),
            )
            .status
        };
        assert_eq!(send(None), 401, "{method} {path} without a key");
        assert_eq!(
            send(Some("flow_sk_0000")),
            401,
            "{method} {path} with an unknown key"
        );
        assert_eq!(
            send(Some(&expired)),
            401,
            "{method} {path} with an expired key"
        );
        assert_eq!(
            send(Some(&revoked)),
            401,
            "{method} {path} with a revoked key"
        );
        assert!(
            send(Some(&admin)) < 400,
            "{method} {path} with the admin key"
        );
        let reader_status = send(Some(&reader));
        let writer_status = send(Some(&writer));
        match scope {
            "runs:read" => assert!(
                reader_status < 400 && writer_status < 400,
                "{method} {path}"
            ),
            "runs:write" => {
                assert_eq!(reader_status, 403, "{method} {path}");
                assert!(writer_status < 400, "{method} {path}");
            }
            _ => {
                assert_eq!(reader_status, 403, "{method} {path}");
                assert_eq!(writer_status, 403, "{method} {path}");
            }
        }
        if let Some(w) = workflow {
            let expect = if w.starts_with("gr") { 202 } else { 403 };
            assert_eq!(
                send(Some(&greeter)),
                expect,
                "{method} {path} with a key for gr*"
            );
        }
    }
    // /healthz needs no key.
    assert_eq!(
        c.send("GET", &server.url("/healthz"), None, &[], None)
            .status,
        200
    );
}

#[test]
fn deployments_are_numbered_and_a_bad_one_is_refused() {
    let (dir, _counter, key) = setup("deploy", false);
    let server = Server::start(&dir, &[]);
    let c = client();
    let list = c
        .send(
            "GET",
            &server.url("/api/v1/deployments"),
            Some(&key),
            &[],
            None,
        )
        .json();
    assert_eq!(list["active"], 1);
    // A new program with another workflow, deployed from the command line.
    std::fs::write(
        dir.join("more.flow"),
        "workflow hello -> string {\n  return \"hi\"\n}\n",
    )
    .unwrap();
    let (code, out, err) = flow(
        &dir,
        &[
            "deploy",
            "more.flow",
            "--server",
            &server.base,
            "--key",
            &key,
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deployed version 2"), "{out}");
    let hi = c.send(
        "POST",
        &server.url("/api/v1/workflows/hello/runs?wait=20s"),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(hi.json()["output"], "hi", "{}", hi.text);
    // The old workflows are gone from version 2.
    let greet = c.send(
        "POST",
        &server.url("/api/v1/workflows/greet/runs"),
        Some(&key),
        &[],
        Some(br#"{"name":"x"}"#.to_vec()),
    );
    assert_eq!(greet.status, 404);
    // A program with errors is refused here; the server keeps serving version 2.
    std::fs::write(
        dir.join("broken.flow"),
        "workflow broken -> int {\n  return \"no\"\n}\n",
    )
    .unwrap();
    let (code, _, err) = flow(
        &dir,
        &[
            "deploy",
            "broken.flow",
            "--server",
            &server.base,
            "--key",
            &key,
        ],
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error"), "{err}");
    // Bytes that are not an artefact are refused by the server.
    let junk = c.send(
        "POST",
        &server.url("/api/v1/deployments"),
        Some(&key),
        &[("content-type", "application/octet-stream")],
        Some(b"junk".to_vec()),
    );
    assert_eq!(junk.status, 400, "{}", junk.text);
    // Roll back to version 1: greet is served again, as version 3.
    let (code, out, err) = flow(
        &dir,
        &[
            "deployments",
            "rollback",
            "1",
            "--server",
            &server.base,
            "--key",
            &key,
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deployed version 3"), "{out}");
    let greet = c.send(
        "POST",
        &server.url("/api/v1/workflows/greet/runs"),
        Some(&key),
        &[],
        Some(br#"{"name":"x"}"#.to_vec()),
    );
    assert_eq!(greet.status, 202);
    let (code, out, _) = flow(
        &dir,
        &[
            "deployments",
            "list",
            "--server",
            &server.base,
            "--key",
            &key,
        ],
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn flow_run_and_flow_runs_talk_to_a_server() {
    let (dir, _counter, key) = setup("cli", false);
    let server = Server::start(&dir, &[]);
    let remote = ["--server", server.base.as_str(), "--key", key.as_str()];
    let mut args = vec!["run", "--workflow", "greet", "--input", r#"{"name":"cli"}"#];
    args.extend_from_slice(&remote);
    let (code, out, err) = flow(&dir, &args, "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "\"hello cli\"");
    let id = err.split_whitespace().nth(1).unwrap().to_owned();
    let mut args = vec!["runs", "list", "--format", "json"];
    args.extend_from_slice(&remote);
    let (code, out, err) = flow(&dir, &args, "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id), "{out}");
    let mut args = vec!["runs", "show", id.as_str()];
    args.extend_from_slice(&remote);
    let (code, out, _) = flow(&dir, &args, "");
    assert_eq!(code, 0);
    assert!(out.contains("completed") && out.contains("_a"), "{out}");
    // A waiting run, cancelled from the command line.
    let slow = client()
        .send(
            "POST",
            &server.url("/api/v1/workflows/slow/runs"),
            Some(&key),
            &[],
            Some(br#"{"n":1}"#.to_vec()),
        )
        .json();
    let slow = slow["run"].as_str().unwrap();
    let mut args = vec!["runs", "cancel", slow];
    args.extend_from_slice(&remote);
    let (code, _, err) = flow(&dir, &args, "");
    assert_eq!(code, 0, "{err}");
    // A wrong key is reported with the server's code.
    let (code, _, err) = flow(
        &dir,
        &[
            "runs",
            "list",
            "--server",
            &server.base,
            "--key",
            "flow_sk_x",
        ],
        "",
    );
    assert_eq!(code, 2);
    assert!(err.contains("unauthorized"), "{err}");
}

#[test]
fn oversized_bodies_and_request_floods_are_refused_with_their_codes() {
    let (dir, _counter, key) = setup("hardening", false);
    let server = Server::start(&dir, &["--max-body", "256", "--rate-limit", "3"]);
    let c = client();
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(1000));
    let refused = c.send(
        "POST",
        &server.url("/api/v1/workflows/greet/runs"),
        Some(&key),
        &[],
        Some(big.into_bytes()),
    );
    assert_eq!(refused.status, 413, "{}", refused.text);
    // Three requests a second per key: the fourth at once is refused with Retry-After.
    let statuses: Vec<u16> = (0..6)
        .map(|_| {
            c.send("GET", &server.url("/api/v1/runs"), Some(&key), &[], None)
                .status
        })
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let limited = c.send("GET", &server.url("/api/v1/runs"), Some(&key), &[], None);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"]["code"], "rate_limited");
    // Errors never carry a store path or a stack trace.
    assert!(!limited.text.contains("flow.db") && !limited.text.contains("panicked"));
}

#[test]
fn malformed_requests_get_json_errors_and_the_key_is_checked_first() {
    let (dir, _counter, key) = setup("malformed", false);
    // A run started by `flow run` records no trigger: `trigger=cli` selects it.
    let (code, _, err) = flow(
        &dir,
        &[
            "run",
            "app.flow",
            "--workflow",
            "greet",
            "--input",
            r#"{"name":"cli"}"#,
            "--store",
            "flow.db",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let server = Server::start(&dir, &["--max-body", "256"]);
    let c = client();
    let get = |path: &str, key: Option<&str>| c.send("GET", &server.url(path), key, &[], None);
    // No key: 401 even when the query or the path is malformed too.
    for path in ["/api/v1/runs?limit=abc", "/api/v1/runs?trigger=nope"] {
        assert_eq!(get(path, None).status, 401, "{path}");
    }
    let posted = |path: &str, key: Option<&str>| c.send("POST", &server.url(path), key, &[], None);
    assert_eq!(posted("/api/v1/runs/cancel?limit=-1", None).status, 401);
    assert_eq!(posted("/api/v1/deployments/abc/rollback", None).status, 401);
    // With a key: 400 with a stable code, the parameter and what it should be.
    for (path, says) in [
        ("/api/v1/runs?limit=-5", "page size"),
        ("/api/v1/runs?limit=abc", "page size"),
        ("/api/v1/runs?trigger=nope", "not a trigger"),
        ("/api/v1/deliveries?limit=abc", "page size"),
        ("/api/v1/deliveries?limt=5", "unknown parameter"),
    ] {
        let r = get(path, Some(&key));
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.json()["error"]["code"], "invalid_query", "{path}");
        assert!(r.text.contains(says), "{path}: {}", r.text);
    }
    let r = posted("/api/v1/deployments/abc/rollback", Some(&key));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "invalid_path");
    let cli = get("/api/v1/runs?trigger=cli", Some(&key)).json();
    let runs = cli["runs"].as_array().expect("a page of runs");
    assert_eq!(runs.len(), 1, "{cli}");
    assert_eq!(runs[0]["output"], "hello cli");
    // What axum answers by itself is JSON too: a wrong method keeps its `Allow`.
    let r = c.send("DELETE", &server.url("/api/v1/runs"), Some(&key), &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(
        r.json()["error"]["code"],
        "method_not_allowed",
        "{}",
        r.text
    );
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(1000));
    let r = c.send(
        "POST",
        &server.url("/api/v1/workflows/greet/runs"),
        Some(&key),
        &[],
        Some(big.into_bytes()),
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["code"], "body_too_large", "{}", r.text);
    // Made-up hook paths share one rate-limit bucket instead of one each.
    assert_eq!(server.stop(), 0);
    let server = Server::start(&dir, &["--rate-limit", "3"]);
    let posted = |path: &str| c.send("POST", &server.url(path), None, &[], None);
    let statuses: Vec<u16> = (0..8)
        .map(|i| posted(&format!("/hooks/scan-{i}")).status)
        .collect();
    assert_eq!(statuses[0], 404, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use std::io::{Read, Write};
    let (dir, _counter, _key) = setup("slow-headers", false);
    let server = Server::start(&dir, &["--header-timeout", "1s"]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "disconnected after {waited:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // Others are served meanwhile and after.
    let c = client();
    assert_eq!(
        c.send("GET", &server.url("/healthz"), None, &[], None)
            .status,
        200
    );
    assert_eq!(server.stop(), 0);
}
