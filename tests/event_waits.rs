//! Event waits with a real `flow serve`: runs park on `wait acme.ticket_updated(queue:
//! "support") when event.id == ticket`, and a signed delivery of the event goes to the one
//! waiting run whose condition holds (it reads the run's parameter and an earlier step);
//! a delivery no wait takes and no trigger starts is recorded as unmatched.

mod serve_support;

use serve_support::*;

fn program(counter: u16) -> String {
    format!(
        r#"
integration acme {{
  base_url = "http://127.0.0.1:{counter}"

  /// A ticket changed.
  event ticket_updated(queue: string? = null) -> {{ id: string, queue: string }} {{
    webhook "/acme/events"
    verify hmac_sha256(secret("webhook_secret"), header: "X-Acme-Signature", prefix: "sha256=")
    when payload.type == "ticket.updated" && (queue == null || payload.ticket.queue == queue)
    result payload.ticket
  }}
}}

workflow follow(ticket: string) -> string {{
  step opened = http.get(url: "http://127.0.0.1:{counter}/open")
  step update = wait acme.ticket_updated(queue: "support") when event.id == ticket && opened.status == 200
    timeout 1h
  return update.id + " in " + update.queue
}}
"#
    )
}

#[test]
fn a_delivery_goes_to_the_waiting_run_whose_condition_holds() {
    let dir = scratch("event-waits");
    let counter = Counter::start();
    std::fs::write(dir.join("app.flow"), program(counter.port)).unwrap();
    let key = admin_key(&dir);
    let (code, _, err) = flow(
        &dir,
        &[
            "connect",
            "acme",
            "--owner",
            "ops",
            "--secret",
            "webhook_secret",
            "--store",
            "flow.db",
        ],
        "whsec-acme\n",
    );
    assert_eq!(code, 0, "{err}");
    let server = Server::start(&dir, &["--as", "ops"]);
    let c = client();
    let runs: Vec<String> = ["T-1", "T-2", "T-3"]
        .iter()
        .map(|t| {
            let r = c.send(
                "POST",
                &server.url("/api/v1/workflows/follow/runs"),
                Some(&key),
                &[],
                Some(format!(r#"{{"ticket": "{t}"}}"#).into_bytes()),
            );
            assert_eq!(r.status, 202, "{}", r.text);
            r.json()["run"].as_str().unwrap().to_owned()
        })
        .collect();
    let run = |id: &str| {
        c.send(
            "GET",
            &server.url(&format!("/api/v1/runs/{id}")),
            Some(&key),
            &[],
            None,
        )
        .json()
    };
    for id in &runs {
        wait_until("the run waits for the event", || {
            run(id)["steps"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["waiting_for_event"] == "acme.ticket_updated")
            })
        });
    }
    let deliver = |body: &str, id: &str| {
        let signature = format!("sha256={}", hmac_hex(b"whsec-acme", body.as_bytes()));
        c.send(
            "POST",
            &server.url("/hooks/acme/events"),
            None,
            &[
                ("x-acme-signature", signature.as_str()),
                ("idempotency-key", id),
                ("content-type", "application/json"),
            ],
            Some(body.as_bytes().to_vec()),
        )
    };
    // Another queue: the waits' argument does not take it; nobody else does.
    let other = deliver(
        r#"{"type":"ticket.updated","ticket":{"id":"T-2","queue":"sales"}}"#,
        "d-1",
    );
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(other.json()["matched"], false);
    // A ticket nobody waits for.
    let nobody = deliver(
        r#"{"type":"ticket.updated","ticket":{"id":"T-9","queue":"support"}}"#,
        "d-2",
    );
    assert_eq!(nobody.json()["matched"], false, "{}", nobody.text);
    // T-2's run takes it; the two others keep waiting.
    let taken = deliver(
        r#"{"type":"ticket.updated","ticket":{"id":"T-2","queue":"support"}}"#,
        "d-3",
    );
    assert_eq!(taken.status, 202, "{}", taken.text);
    assert_eq!(taken.json()["resumed"], serde_json::json!([runs[1]]));
    wait_until("the run ends", || run(&runs[1])["status"] == "completed");
    assert_eq!(run(&runs[1])["output"], "T-2 in support");
    for id in [&runs[0], &runs[2]] {
        assert_eq!(run(id)["status"], "waiting");
    }
    // The same delivery again goes nowhere: T-2's run no longer waits.
    let again = deliver(
        r#"{"type":"ticket.updated","ticket":{"id":"T-2","queue":"support"}}"#,
        "d-4",
    );
    assert_eq!(again.json()["matched"], false, "{}", again.text);
    let (_, listed, _) = flow(
        &dir,
        &[
            "deliveries",
            "--server",
            &server.base,
            "--key",
            &key,
            "--format",
            "json",
        ],
        "",
    );
    assert!(listed.contains("unmatched"), "{listed}");
    assert_eq!(server.stop(), 0);
}

/// A stand-in for Slack's Web API on 127.0.0.1: `chat.postMessage` answers `ok` with the
/// next message ts (`1700.1`, `1700.2`, ...).
fn fake_slack() -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let posted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let posted = std::sync::Arc::clone(&posted);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let n = posted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    let answer = format!(
                        r#"{{"ok":true,"channel":"C1","ts":"1700.{n}","message":{{"text":"posted"}}}}"#
                    );
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                }
            });
        }
    });
    port
}

#[test]
fn a_click_on_a_slack_button_goes_to_the_run_that_posted_the_message() {
    let dir = scratch("slack-approval");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("examples/deploy_approval.flow"),
        dir.join("app.flow"),
    )
    .unwrap();
    let slack = fake_slack();
    let key = admin_key(&dir);
    let base = format!("http://127.0.0.1:{slack}");
    let (code, _, err) = flow(
        &dir,
        &[
            "connect",
            "slack",
            "--owner",
            "ops",
            "--secret",
            "signing_secret",
            "--secret",
            "bot_token",
            "--base-url",
            &base,
            "--store",
            "flow.db",
        ],
        "sss\nxoxb-1\n",
    );
    assert_eq!(code, 0, "{err}");
    let server = Server::start(&dir, &["--as", "ops"]);
    let c = client();
    let run = |id: &str| {
        c.send(
            "GET",
            &server.url(&format!("/api/v1/runs/{id}")),
            Some(&key),
            &[],
            None,
        )
        .json()
    };
    // One run at a time, so the first posts message 1700.1 and the second 1700.2.
    let mut runs = Vec::new();
    for version in ["1.0", "2.0"] {
        let r = c.send(
            "POST",
            &server.url("/api/v1/workflows/deploy_approval/runs"),
            Some(&key),
            &[],
            Some(format!(r#"{{"service": "api", "version": "{version}"}}"#).into_bytes()),
        );
        assert_eq!(r.status, 202, "{}", r.text);
        let id = r.json()["run"].as_str().unwrap().to_owned();
        wait_until("the run waits for a click", || {
            run(&id)["steps"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["waiting_for_event"] == "slack.interaction")
            })
        });
        runs.push(id);
    }
    let click = |message_ts: &str, action: &str, user: &str| {
        let payload = serde_json::json!({
            "type": "block_actions",
            "user": { "id": "U1", "username": user, "name": user },
            "container": { "type": "message", "message_ts": message_ts, "channel_id": "C1" },
            "actions": [{ "action_id": action, "type": "button" }],
        });
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let signature = format!(
            "v0={}",
            hmac_hex(b"sss", format!("v0:{now}:{body}").as_bytes())
        );
        c.send(
            "POST",
            &server.url("/hooks/slack/interactivity"),
            None,
            &[
                ("x-slack-request-timestamp", now.to_string().as_str()),
                ("x-slack-signature", signature.as_str()),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            Some(body.into_bytes()),
        )
    };
    let second = click("1700.2", "approve", "ann");
    assert_eq!(second.status, 202, "{}", second.text);
    assert_eq!(second.json()["resumed"], serde_json::json!([runs[1]]));
    wait_until("the second run ends", || {
        run(&runs[1])["status"] == "completed"
    });
    assert_eq!(run(&runs[1])["output"], "approved by ann");
    assert_eq!(run(&runs[0])["status"], "waiting");
    let first = click("1700.1", "reject", "bob");
    assert_eq!(first.json()["resumed"], serde_json::json!([runs[0]]));
    wait_until("the first run ends", || {
        run(&runs[0])["status"] == "completed"
    });
    assert_eq!(run(&runs[0])["output"], "rejected by bob");
    assert_eq!(server.stop(), 0);
}
