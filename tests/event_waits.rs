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
    let (code, key, err) = flow(
        &dir,
        &[
            "keys", "create", "--name", "ops", "--scope", "admin", "--store", "flow.db",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_owned();
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
