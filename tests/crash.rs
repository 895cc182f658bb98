//! Crash recovery of the real `flow` binary: a `flow run` is killed with SIGKILL at
//! several points (between steps, during a call, during a `wait`) while calling a local
//! HTTP server that counts requests; `flow resume` (or the next `flow run` on the same
//! store) must complete the run without calling again any step the journal had
//! recorded as succeeded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FLOW: &str = env!("CARGO_BIN_EXE_flow");

const WORKFLOW: &str = r#"
workflow crashy(base: string) -> { a: int, b: int, c: int } {
  step a = http.get(url: "${base}/a")
  step b = http.get(url: "${base}/slow/b") after a
  wait 2s
  step c = http.get(url: "${base}/c")
  return { a: a.status, b: b.status, c: c.status }
}
"#;

const OTHER: &str = r#"
workflow other -> int {
  return 1
}
"#;

/// Counts requests by path: `received` when a request arrives, `answered` once its
/// response was written. Paths under `/slow/` answer after 1.5 s.
#[derive(Clone, Default)]
struct Server {
    received: Arc<Mutex<HashMap<String, u32>>>,
    answered: Arc<Mutex<HashMap<String, u32>>>,
}

impl Server {
    fn start() -> (Server, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = Server::default();
        let s = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || s.handle(stream));
            }
        });
        (server, base)
    }

    fn handle(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        if reader.read_line(&mut first).is_err() {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let path = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
        *self
            .received
            .lock()
            .unwrap()
            .entry(path.clone())
            .or_default() += 1;
        if path.starts_with("/slow/") {
            std::thread::sleep(Duration::from_millis(1500));
        }
        let body = r#"{"ok":true}"#;
        let mut stream = stream;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_ok() {
            let _ = stream.flush();
            *self.answered.lock().unwrap().entry(path).or_default() += 1;
        }
    }

    fn received(&self, path: &str) -> u32 {
        self.received
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    fn answered(&self, path: &str) -> u32 {
        self.answered
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("flow-crash-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("crashy.flow"), WORKFLOW).unwrap();
        std::fs::write(dir.join("other.flow"), OTHER).unwrap();
        Scratch(dir)
    }

    fn store(&self) -> PathBuf {
        self.0.join("flow.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_run(dir: &Path, base: &str) -> Child {
    Command::new(FLOW)
        .args(["run", "crashy.flow", "-q", "--store", "flow.db", "--input"])
        .arg(format!(r#"{{"base":"{base}"}}"#))
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn flow(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(FLOW)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn only_run(dir: &Path) -> serde_json::Value {
    let (code, out) = flow(
        dir,
        &[
            "runs",
            "list",
            "--workflow",
            "crashy",
            "--format",
            "json",
            "--store",
            "flow.db",
        ],
    );
    assert_eq!(code, 0);
    let runs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(runs.len(), 1, "{out}");
    runs.into_iter().next().unwrap()
}

/// The steps the journal records as succeeded.
fn succeeded_steps(dir: &Path, run_id: &str) -> Vec<String> {
    let (code, out) = flow(
        dir,
        &[
            "runs", "show", run_id, "--format", "json", "--store", "flow.db",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let detail: serde_json::Value = serde_json::from_str(&out).unwrap();
    detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "succeeded")
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect()
}

fn path_of(step: &str) -> &'static str {
    match step {
        "a" => "/a",
        "b" => "/slow/b",
        "c" => "/c",
        other => panic!("unknown step {other}"),
    }
}

/// Kills the run at the moment `kill_when` says, resumes it with `finish`, and checks
/// that the run completed and every step recorded as succeeded was called exactly once.
fn crash_and_recover(
    name: &str,
    kill_when: impl Fn(&Server) -> bool,
    finish: &[&str],
) -> (Server, Vec<String>) {
    let (server, base) = Server::start();
    let scratch = Scratch::new(name);
    let mut child = start_run(&scratch.0, &base);
    wait_for("the kill point", || kill_when(&server));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let run = only_run(&scratch.0);
    let run_id = run["run_id"].as_str().unwrap().to_owned();
    assert_ne!(
        run["status"], "completed",
        "the run finished before the kill"
    );
    let done_before = succeeded_steps(&scratch.0, &run_id);

    let (code, out) = flow(&scratch.0, finish);
    assert_eq!(code, 0, "recovery failed: {out}");
    let run = only_run(&scratch.0);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(
        run["output"],
        serde_json::json!({ "a": 200, "b": 200, "c": 200 })
    );
    for step in &done_before {
        assert_eq!(
            server.received(path_of(step)),
            1,
            "step `{step}` had succeeded before the kill but was called again"
        );
    }
    for step in ["a", "b", "c"] {
        assert!(
            server.received(path_of(step)) >= 1,
            "step `{step}` never ran"
        );
    }
    assert!(scratch.store().exists());
    (server, done_before)
}

#[test]
fn killed_between_steps_then_resumed() {
    let (server, _) = crash_and_recover(
        "between",
        |s| s.answered("/a") == 1,
        &["resume", "-q", "--store", "flow.db"],
    );
    assert_eq!(server.received("/c"), 1);
}

#[test]
fn killed_during_a_call_then_resumed() {
    let (server, before) = crash_and_recover(
        "call",
        |s| s.received("/slow/b") == 1,
        &["resume", "-q", "--store", "flow.db"],
    );
    assert_eq!(before, vec!["a".to_string()]);
    // The call in flight had not succeeded: it is made again.
    assert_eq!(server.received("/slow/b"), 2);
    assert_eq!(server.received("/a"), 1);
}

#[test]
fn killed_during_a_wait_then_resumed() {
    let (server, before) = crash_and_recover(
        "wait",
        |s| {
            if s.answered("/slow/b") == 1 {
                // Inside the 2 s wait, after b's result was journaled.
                std::thread::sleep(Duration::from_millis(400));
                true
            } else {
                false
            }
        },
        &["resume", "-q", "--store", "flow.db"],
    );
    assert_eq!(before, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(server.received("/a"), 1);
    assert_eq!(server.received("/slow/b"), 1);
    assert_eq!(server.received("/c"), 1);
}

#[test]
fn the_next_flow_run_on_the_store_finishes_an_interrupted_run() {
    let (server, before) = crash_and_recover(
        "next-run",
        |s| s.received("/slow/b") == 1,
        &["run", "other.flow", "-q", "--store", "flow.db"],
    );
    assert_eq!(before, vec!["a".to_string()]);
    assert_eq!(server.received("/a"), 1);
    assert_eq!(server.received("/c"), 1);
}
