//! What the `flow serve` tests share: a server process on 127.0.0.1 killed when dropped,
//! a small blocking HTTP client, a counting HTTP server, the program every test serves,
//! and the `flow` command.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const FLOW: &str = env!("CARGO_BIN_EXE_flow");

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn flow(cwd: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
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
pub const VAULT_KEY: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A `flow serve` process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(dir, extra, &[])
    }

    /// A server with more environment variables.
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
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
            .envs(env.iter().copied())
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

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then wait for the exit status.
    pub fn stop(mut self) -> i32 {
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

pub fn client() -> web::Client {
    web::Client::new()
}

/// A tiny blocking HTTP client over reqwest's async one.
pub mod web {
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

/// A counting HTTP server on 127.0.0.1: answers every request `200 {"ok": true}` (an
/// OTLP export under `/v1/`: `200` with an empty protobuf), and keeps what it received.
pub struct Counter {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Received>>>,
}

/// A request the counter received.
#[derive(Clone, Debug)]
pub struct Received {
    /// `GET /greet HTTP/1.1`
    pub line: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Counter {
    pub fn start() -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let counted = Arc::clone(&hits);
        let kept = Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let counted = Arc::clone(&counted);
                let kept = Arc::clone(&kept);
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut length = 0usize;
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut headers = Vec::new();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            if h == "\r\n" {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                            }
                            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        let _ = reader.read_exact(&mut body);
                        let otlp = line.starts_with("POST /v1/");
                        kept.lock().unwrap().push(Received {
                            line: line.trim_end().to_owned(),
                            headers,
                            body,
                        });
                        counted.fetch_add(1, Ordering::SeqCst);
                        let (kind, answer) = if otlp {
                            ("application/x-protobuf", "")
                        } else {
                            ("application/json", "{\"ok\":true}")
                        };
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                    }
                });
            }
        });
        Counter { port, hits, seen }
    }
}

/// The program every test serves: a typed webhook, a signed integration event, a
/// workflow started over the API, a slow one to cancel, and (optionally) a schedule.
pub fn program(counter: u16, schedule: bool) -> String {
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

pub fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    use flow_connectors::sigv4::{hex, hmac};
    hex(&hmac(secret, body))
}

pub fn setup(name: &str, schedule: bool) -> (PathBuf, Counter, String) {
    let dir = scratch(name);
    let counter = Counter::start();
    std::fs::write(dir.join("app.flow"), program(counter.port, schedule)).unwrap();
    let key = admin_key(&dir);
    (dir, counter, key)
}

/// An `admin` API key named `ops` in the directory's store.
pub fn admin_key(dir: &Path) -> String {
    let (code, key, err) = flow(
        dir,
        &[
            "keys", "create", "--name", "ops", "--scope", "admin", "--store", "flow.db",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    key.trim().to_owned()
}

pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub async fn futures_join<F: std::future::Future>(
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

/// All runs of a workflow, through every page.
pub fn runs_of(
    c: &web::Client,
    server: &Server,
    key: &str,
    workflow: &str,
) -> Vec<serde_json::Value> {
    let mut runs = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .send(
                "GET",
                &server.url(&format!(
                    "/api/v1/runs?workflow={workflow}&limit=500{cursor}"
                )),
                Some(key),
                &[],
                None,
            )
            .json();
        runs.extend(page["runs"].as_array().unwrap().clone());
        match page["next_cursor"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => return runs,
        }
    }
}
