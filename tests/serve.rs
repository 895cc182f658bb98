//! `flow serve` as an operator runs it: a real server process on 127.0.0.1, real HTTP
//! clients, the real store. Webhooks exactly once (concurrently and across a restart),
//! signed integration events (tampered, wrong secret, stale), the run API (start, wait,
//! read, list with filters and cursors, the journal as server-sent events, cancel), the
//! auth matrix of every endpoint, deployments, and one run per schedule tick with two
//! servers on one store.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

const FLOW: &str = env!("CARGO_BIN_EXE_flow");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn flow(cwd: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(FLOW)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("FLOW_VAULT_KEY", VAULT_KEY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fixed vault key, so `flow connect` and the server read the same vault.
const VAULT_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A `flow serve` process; killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut args = vec![
            "serve",
            "app.flow",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "flow.db",
            "--grace",
            "2s",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(FLOW)
            .args(&args)
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("FLOW_VAULT_KEY", VAULT_KEY)
            .env("FLOW_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.to_owned());
                }
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not start:\n{}", log.lock().unwrap());
            }
        };
        Server { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then wait for the exit status.
    fn stop(mut self) -> i32 {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        status.code().unwrap_or(-1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> web::Client {
    web::Client::new()
}

/// A tiny blocking HTTP client over reqwest's async one.
mod web {
    pub use self::inner::*;
    mod inner {
        use std::time::Duration;

        pub struct Client {
            rt: tokio::runtime::Runtime,
            http: ::reqwest::Client,
        }

        pub struct Answer {
            pub status: u16,
            pub text: String,
        }

        impl Answer {
            pub fn json(&self) -> serde_json::Value {
                serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null)
            }
        }

        impl Client {
            pub fn new() -> Client {
                Client {
                    rt: tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap(),
                    http: ::reqwest::Client::builder()
                        .timeout(Duration::from_secs(60))
                        .build()
                        .unwrap(),
                }
            }

            pub fn send(
                &self,
                method: &str,
                url: &str,
                key: Option<&str>,
                headers: &[(&str, &str)],
                body: Option<Vec<u8>>,
            ) -> Answer {
                let mut req = self.http.request(method.parse().unwrap(), url);
                if let Some(k) = key {
                    req = req.bearer_auth(k);
                }
                for (k, v) in headers {
                    req = req.header(*k, *v);
                }
                if let Some(b) = body {
                    req = req.body(b);
                }
                self.rt.block_on(async {
                    let resp = req.send().await.unwrap();
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    Answer { status, text }
                })
            }

            pub fn http(&self) -> ::reqwest::Client {
                self.http.clone()
            }

            pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
                self.rt.block_on(f)
            }
        }
    }
}

/// A counting HTTP server on 127.0.0.1: answers every request `200 {"ok": true}`.
struct Counter {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Counter {
    fn start() -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let counted = Arc::clone(&counted);
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        let _ = reader.read_exact(&mut body);
                        counted.fetch_add(1, Ordering::SeqCst);
                        let answer = "{\"ok\":true}";
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                    }
                });
            }
        });
        Counter { port, hits }
    }
}

/// The program every test serves: a typed webhook, a signed integration event, a
/// workflow started over the API, a slow one to cancel, and (optionally) a schedule.
fn program(counter: u16, schedule: bool) -> String {
    let scheduled = if schedule {
        "workflow tick {\n  on schedule(\"* * * * * *\")\n  step _t = http.get(url: \"http://127.0.0.1:COUNTER/tick\")\n}\n"
    } else {
        ""
    };
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

type Order = {{ id: string, amount: int }}

workflow on_order -> string {{
  on webhook("/orders") as Order when event.amount > 0
  step _seen = http.post(url: "http://127.0.0.1:{counter}/seen", json: event)
  return event.id
}}

workflow on_ticket -> string {{
  on acme.ticket_updated(queue: "support")
  step _seen = http.get(url: "http://127.0.0.1:{counter}/ticket")
  return event.id
}}

workflow greet(name: string, times: int = 1) -> string {{
  step _a = http.get(url: "http://127.0.0.1:{counter}/greet")
  return "hello " + name
}}

workflow slow(n: int) -> int {{
  wait 1h
  return n
}}
{}"#,
        scheduled.replace("COUNTER", &counter.to_string())
    )
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    use flow_connectors::sigv4::{hex, hmac};
    hex(&hmac(secret, body))
}

fn setup(name: &str, schedule: bool) -> (PathBuf, Counter, String) {
    let dir = scratch(name);
    let counter = Counter::start();
    std::fs::write(dir.join("app.flow"), program(counter.port, schedule)).unwrap();
    let (code, key, err) = flow(
        &dir,
        &[
            "keys", "create", "--name", "ops", "--scope", "admin", "--store", "flow.db",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    (dir, counter, key.trim().to_owned())
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

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

async fn futures_join<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F: Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
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
fn two_servers_on_one_store_fire_each_tick_once() {
    let (dir, counter, key) = setup("ticks", true);
    let a = Server::start(&dir, &[]);
    let b = Server::start(&dir, &[]);
    std::thread::sleep(Duration::from_secs(31));
    let c = client();
    // Stop both, then count: one run per nominal second, none twice.
    let _ = (a.stop(), b.stop());
    let server = Server::start(&dir, &[]);
    let mut runs = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .send(
                "GET",
                &server.url(&format!("/api/v1/runs?workflow=tick&limit=500{cursor}")),
                Some(&key),
                &[],
                None,
            )
            .json();
        runs.extend(page["runs"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => break,
        }
    }
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
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .send(
                "GET",
                &server.url(&format!("/api/v1/runs?workflow=on_order&limit=500{cursor}")),
                Some(&key),
                &[],
                None,
            )
            .json();
        all.extend(
            page["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["event"]["id"].as_str().unwrap_or("").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => break,
        }
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "a delivery started two runs");
    assert!(counter.hits.load(Ordering::SeqCst) >= accepted.len());
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
