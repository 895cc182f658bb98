//! `flow serve`'s deliveries and schedules as an operator meets them: a real server
//! process on 127.0.0.1, real HTTP clients, the real store. Webhooks exactly once
//! (concurrently, across a restart, and through a SIGKILL mid-burst), signed integration
//! events (tampered, wrong secret, stale), and one run per schedule tick with two servers
//! on one store.

mod serve_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use serve_support::*;

#[test]
fn a_webhook_delivery_starts_one_run_however_often_it_arrives() {
    let (dir, counter, key) = setup("webhook", false);
    let server = Server::start(&dir, &[]);
    let c = client();
    let body = br#"{"id":"o-1","amount":5}"#.to_vec();
    // Three identical deliveries at once.
    let url = server.url("/hooks/orders");
    let http = c.http();
    let answers: Vec<(u16, Json)> = c.block_on(async {
        let sends = (0..3).map(|_| {
            let http = http.clone();
            let url = url.clone();
            let body = body.clone();
            async move {
                let r = http
                    .post(&url)
                    .header("webhook-id", "delivery-1")
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Json>().await.unwrap())
            }
        });
        futures_join(sends).await
    });
    let first = answers[0].1["run"].as_str().unwrap().to_owned();
    for (status, v) in &answers {
        assert_eq!(*status, 202, "{v}");
        assert_eq!(v["run"], first.as_str(), "every reply names the same run");
    }
    // `?wait=` answers with the outcome once the run ends.
    let waited = c.send(
        "POST",
        &server.url("/hooks/orders?wait=20s"),
        None,
        &[("webhook-id", "delivery-1")],
        Some(body.clone()),
    );
    assert_eq!(waited.status, 200, "{}", waited.text);
    assert_eq!(waited.json()["run"], first.as_str());
    assert_eq!(waited.json()["status"], "completed");
    assert_eq!(waited.json()["output"], "o-1");
    assert_eq!(waited.json()["duplicate"], true);
    assert_eq!(server.stop(), 0);

    // After a restart the delivery is still known.
    let server = Server::start(&dir, &[]);
    let again = c.send(
        "POST",
        &server.url("/hooks/orders"),
        None,
        &[("webhook-id", "delivery-1")],
        Some(body.clone()),
    );
    assert_eq!(again.json()["run"], first.as_str(), "{}", again.text);
    // One run, one call.
    let runs = c
        .send(
            "GET",
            &server.url("/api/v1/runs?workflow=on_order"),
            Some(&key),
            &[],
            None,
        )
        .json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs["runs"][0]["trigger"], "webhook");
    assert_eq!(runs["runs"][0]["event"], json!({"id": "o-1", "amount": 5}));
    assert_eq!(counter.hits.load(Ordering::SeqCst), 1);

    // A body that does not fit the declared type: 400 with its path, no run.
    let bad = c.send(
        "POST",
        &server.url("/hooks/orders"),
        None,
        &[],
        Some(br#"{"id":"o-2","amount":"five"}"#.to_vec()),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(bad.json()["error"]["code"], "invalid_body");
    assert_eq!(bad.json()["error"]["path"], "body.amount");
    // `when` does not hold: no run.
    let filtered = c.send(
        "POST",
        &server.url("/hooks/orders"),
        None,
        &[],
        Some(br#"{"id":"o-3","amount":0}"#.to_vec()),
    );
    assert_eq!(filtered.status, 200);
    assert_eq!(filtered.json()["matched"], false);
    // No workflow on the path: 404, recorded.
    let nowhere = c.send(
        "POST",
        &server.url("/hooks/nowhere"),
        None,
        &[],
        Some(b"{}".to_vec()),
    );
    assert_eq!(nowhere.status, 404);
    let runs = c
        .send(
            "GET",
            &server.url("/api/v1/runs?workflow=on_order"),
            Some(&key),
            &[],
            None,
        )
        .json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    let deliveries = c
        .send(
            "GET",
            &server.url("/api/v1/deliveries"),
            Some(&key),
            &[],
            None,
        )
        .json();
    assert_eq!(deliveries["deliveries"][0]["path"], "/nowhere");
    assert_eq!(deliveries["deliveries"][0]["outcome"], "unmatched");
}

#[test]
fn signed_integration_events_are_verified_before_anything_runs() {
    let (dir, counter, key) = setup("events", false);
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
    let body = br#"{"type":"ticket.updated","ticket":{"id":"T-1","queue":"support"}}"#.to_vec();
    let signature = format!("sha256={}", hmac_hex(b"whsec-acme", &body));
    let send = |body: &[u8], signature: &str| {
        c.send(
            "POST",
            &server.url("/hooks/acme/events?wait=20s"),
            None,
            &[
                ("x-acme-signature", signature),
                ("idempotency-key", "evt-1"),
                ("content-type", "application/json"),
            ],
            Some(body.to_vec()),
        )
    };
    // Tampered body, wrong secret: 401 and no run.
    let tampered = send(
        br#"{"type":"ticket.updated","ticket":{"id":"T-2","queue":"support"}}"#,
        &signature,
    );
    assert_eq!(tampered.status, 401, "{}", tampered.text);
    assert_eq!(tampered.json()["error"]["code"], "bad_signature");
    let wrong = send(&body, &format!("sha256={}", hmac_hex(b"another", &body)));
    assert_eq!(wrong.status, 401);
    let missing = c.send(
        "POST",
        &server.url("/hooks/acme/events"),
        None,
        &[],
        Some(body.clone()),
    );
    assert_eq!(missing.status, 401);
    assert_eq!(counter.hits.load(Ordering::SeqCst), 0);
    // The good one runs, once.
    let ok = send(&body, &signature);
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["output"], "T-1");
    let again = send(&body, &signature);
    assert_eq!(again.json()["run"], ok.json()["run"]);
    assert_eq!(counter.hits.load(Ordering::SeqCst), 1);
    // Another queue: verified, but the subscription does not take it.
    let other = br#"{"type":"ticket.updated","ticket":{"id":"T-3","queue":"sales"}}"#.to_vec();
    let sig = format!("sha256={}", hmac_hex(b"whsec-acme", &other));
    let unmatched = c.send(
        "POST",
        &server.url("/hooks/acme/events"),
        None,
        &[("x-acme-signature", &sig)],
        Some(other),
    );
    assert_eq!(unmatched.status, 200);
    assert_eq!(unmatched.json()["matched"], false);
    // The refusals are recorded with their reasons.
    let d = c
        .send(
            "GET",
            &server.url("/api/v1/deliveries"),
            Some(&key),
            &[],
            None,
        )
        .json();
    let reasons: Vec<&str> = d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(
        reasons.iter().filter(|r| r.contains("signature")).count() >= 2,
        "{d}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("X-Acme-Signature")),
        "{d}"
    );
}

#[test]
fn slack_deliveries_with_a_stale_timestamp_are_refused() {
    let dir = scratch("slack");
    std::fs::write(
        dir.join("app.flow"),
        "import slack\n\nworkflow on_message -> string {\n  on slack.message(channel: \"C1\")\n  return event.text\n}\n",
    )
    .unwrap();
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
            "--store",
            "flow.db",
        ],
        "sss\nxoxb-1\n",
    );
    assert_eq!(code, 0, "{err}");
    let server = Server::start(&dir, &["--as", "ops"]);
    let c = client();
    let sign = |body: &str, ts: i64| {
        format!(
            "v0={}",
            hmac_hex(b"sss", format!("v0:{ts}:{body}").as_bytes())
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = r#"{"type":"event_callback","event_id":"Ev1","event":{"type":"message","channel":"C1","user":"U1","text":"hi","ts":"1.2"}}"#;
    let stale = now - 600;
    let refused = c.send(
        "POST",
        &server.url("/hooks/slack/events"),
        None,
        &[
            ("x-slack-request-timestamp", &stale.to_string()),
            ("x-slack-signature", &sign(body, stale)),
        ],
        Some(body.as_bytes().to_vec()),
    );
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("away from now")
    );
    // Slack's URL verification is answered.
    let challenge = r#"{"type":"url_verification","challenge":"abc123"}"#;
    let answered = c.send(
        "POST",
        &server.url("/hooks/slack/events"),
        None,
        &[
            ("x-slack-request-timestamp", &now.to_string()),
            ("x-slack-signature", &sign(challenge, now)),
        ],
        Some(challenge.as_bytes().to_vec()),
    );
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(answered.json()["challenge"], "abc123");
}

#[test]
fn two_servers_on_one_store_fire_each_tick_once() {
    let (dir, counter, key) = setup("ticks", true);
    let a = Server::start(&dir, &[]);
    let b = Server::start(&dir, &[]);
    std::thread::sleep(Duration::from_secs(31));
    let c = client();
    // Stop both, then count: one run per nominal second, none twice.
    let _ = (a.stop(), b.stop());
    let server = Server::start(&dir, &[]);
    let runs = runs_of(&c, &server, &key, "tick");
    let mut instants: Vec<String> = runs
        .iter()
        .map(|r| r["event"]["scheduled_at"].as_str().unwrap().to_owned())
        .collect();
    let total = instants.len();
    instants.sort();
    instants.dedup();
    assert_eq!(instants.len(), total, "a tick fired twice");
    assert!(total >= 28, "only {total} ticks fired in 31 s");
    drop(server);
    let _ = counter;
}

#[test]
fn a_server_killed_during_a_burst_loses_no_accepted_delivery() {
    let (dir, counter, key) = setup("burst", false);
    let mut server = Server::start(&dir, &[]);
    let c = client();
    let url = server.url("/hooks/orders");
    let http = c.http();
    let pid = server.child.id();
    // The kill lands once a few deliveries were answered, while the rest are in flight.
    let answered = Arc::new(AtomicUsize::new(0));
    let answers: Vec<(String, Option<String>)> = c.block_on(async {
        let sends = (0..600).map(|i| {
            let http = http.clone();
            let url = url.clone();
            let answered = Arc::clone(&answered);
            async move {
                let id = format!("d-{i}");
                let body = format!(r#"{{"id":"o-{i}","amount":1}}"#);
                let answer = http
                    .post(&url)
                    .header("webhook-id", &id)
                    .body(body)
                    .send()
                    .await;
                let run = match answer {
                    Ok(r) if r.status().is_success() => r
                        .json::<Json>()
                        .await
                        .ok()
                        .and_then(|v| v["run"].as_str().map(str::to_owned)),
                    _ => None,
                };
                answered.fetch_add(usize::from(run.is_some()), Ordering::SeqCst);
                (id, run)
            }
        });
        let counted = Arc::clone(&answered);
        let killer = async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while counted.load(Ordering::SeqCst) < 20 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        };
        let (answers, ()) = tokio::join!(futures_join(sends), killer);
        answers
    });
    let _ = server.child.wait();
    let accepted: Vec<&(String, Option<String>)> =
        answers.iter().filter(|(_, r)| r.is_some()).collect();
    assert!(
        !accepted.is_empty(),
        "no delivery was accepted before the kill"
    );
    eprintln!(
        "{} of {} deliveries accepted before the kill",
        accepted.len(),
        answers.len()
    );
    let server = Server::start(&dir, &[]);
    // Every accepted delivery has its run, which completes; sent again, it names that run.
    for (id, run) in &accepted {
        let run = run.as_deref().unwrap();
        wait_until("an accepted run to complete", || {
            c.send(
                "GET",
                &server.url(&format!("/api/v1/runs/{run}")),
                Some(&key),
                &[],
                None,
            )
            .json()["status"]
                == "completed"
        });
        let again = c.send(
            "POST",
            &server.url("/hooks/orders"),
            None,
            &[("webhook-id", id)],
            Some(br#"{"id":"x","amount":1}"#.to_vec()),
        );
        assert_eq!(again.json()["run"], run, "{}", again.text);
    }
    // No delivery has two runs.
    let mut all: Vec<String> = runs_of(&c, &server, &key, "on_order")
        .iter()
        .map(|r| r["event"]["id"].as_str().unwrap_or("").to_owned())
        .collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "a delivery started two runs");
    assert!(counter.hits.load(Ordering::SeqCst) >= accepted.len());
}

#[test]
fn schedule_policies_decide_overlapping_and_missed_ticks() {
    let dir = scratch("policies");
    let every_second = |name: &str, settings: &str, body: &str| {
        format!(
            "workflow {name} -> int {{\n  on schedule(\"* * * * * *\")\n  settings {{\n    {settings}\n  }}\n{body}  return 1\n}}\n\n"
        )
    };
    let slow = "  wait 2500ms\n";
    let mut program = String::new();
    for (name, policy) in [
        ("skip_w", "overlap = skip"),
        ("allow_w", "overlap = allow"),
        ("cancel_w", "overlap = cancel"),
        ("buffer_w", "overlap = buffer"),
    ] {
        program.push_str(&every_second(name, policy, slow));
    }
    for (name, policy) in [
        ("latest_w", "catch_up = latest"),
        ("all_w", "catch_up = all\n    catch_up_within = 1h"),
        ("none_w", "catch_up = none"),
    ] {
        program.push_str(&every_second(name, policy, ""));
    }
    std::fs::write(dir.join("app.flow"), program).unwrap();
    let (code, key, err) = flow(
        &dir,
        &[
            "keys", "create", "--name", "ops", "--scope", "admin", "--store", "flow.db",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_owned();
    let c = client();

    let server = Server::start(&dir, &[]);
    std::thread::sleep(Duration::from_millis(6500));
    let count = |w: &str| runs_of(&c, &server, &key, w);
    let allow = count("allow_w");
    let skip = count("skip_w");
    let cancel = count("cancel_w");
    let buffer = count("buffer_w");
    assert!(allow.len() >= 5, "allow started {} runs", allow.len());
    assert!(
        skip.len() <= 3 && !skip.is_empty(),
        "skip started {} runs",
        skip.len()
    );
    let cancelled = cancel.iter().filter(|r| r["status"] == "cancelled").count();
    assert!(
        cancel.len() >= 5 && cancelled >= cancel.len() - 2,
        "cancel: {} runs, {cancelled} cancelled",
        cancel.len()
    );
    assert!(
        buffer.len() <= 4 && buffer.len() >= 2,
        "buffer started {} runs",
        buffer.len()
    );
    // A run of `buffer_w` starts only once the one before it has ended: they never overlap.
    let mut spans: Vec<(i64, i64)> = buffer
        .iter()
        .map(|r| {
            (
                r["created_at"].as_i64().unwrap(),
                r["finished_at"].as_i64().unwrap_or(i64::MAX),
            )
        })
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1 - 50,
            "buffered runs overlap: {pair:?}"
        );
    }
    let stopped_at = keys_now();
    assert_eq!(server.stop(), 0);

    // Four seconds of downtime, then each catch-up policy.
    std::thread::sleep(Duration::from_secs(4));
    let restarted_at = keys_now();
    let server = Server::start(&dir, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let caught_up = |w: &str| {
        runs_of(&c, &server, &key, w)
            .iter()
            .filter(|r| {
                let at = chrono_ms(r["event"]["scheduled_at"].as_str().unwrap());
                at > stopped_at + 1000 && at < restarted_at - 1000
            })
            .count()
    };
    // `none` fires nothing of the gap, `all` all of it; `latest` fires one tick (the most
    // recent, just before the server came back), so it counts one miss fewer than `none`.
    assert_eq!(caught_up("none_w"), 0);
    assert!(
        caught_up("all_w") >= 2,
        "all caught up {}",
        caught_up("all_w")
    );
    let schedules = c
        .send(
            "GET",
            &server.url("/api/v1/schedules"),
            Some(&key),
            &[],
            None,
        )
        .json();
    let missed = |w: &str| {
        schedules["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["workflow"] == w)
            .unwrap()["missed"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(missed("all_w"), 0, "{schedules}");
    assert!(missed("none_w") >= 3, "{schedules}");
    assert!(
        missed("latest_w") < missed("none_w") && missed("latest_w") >= missed("none_w") - 2,
        "{schedules}"
    );
}

fn keys_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Unix ms of an RFC 3339 instant as the server writes it (`2026-01-01T10:00:00.000Z`).
fn chrono_ms(text: &str) -> i64 {
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, ms) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    // Days since the epoch (civil from days, proleptic Gregorian).
    let (y, m) = if d[1] <= 2 {
        (d[0] - 1, d[1] + 9)
    } else {
        (d[0], d[1] - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + t[0]) * 60 + t[1]) * 60_000 + t[2] * 1000 + ms.parse::<i64>().unwrap()
}
