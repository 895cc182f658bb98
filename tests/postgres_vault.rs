//! The vault moves with the journal: on a PostgreSQL store, `flow connect` on one machine
//! (a working directory of its own) stores the connection in the database, and a run on
//! another machine uses it, its audit entries land in the same database, and no vault
//! file is made anywhere. A process without the vault's master key is refused clearly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

mod postgres_support;

const TOKEN: &str = "xoxb-SHARED-5e1d0c";
/// 32 bytes as 64 hex digits: the master key every "machine" of the test is given.
const MASTER_KEY: &str = "5f1c0e3a9b7d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";

/// A local stand-in for Slack's `chat.postMessage`, recording each Authorization header.
fn slack_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut authorization = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("authorization:") {
                    authorization = line["authorization:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            record.lock().unwrap().push(authorization);
            let reply =
                r#"{"ok":true,"channel":"C1","ts":"1700000000.000200","message":{"text":"hello"}}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

/// `flow ARGS` in `dir` (one "machine"), with the master key when given.
fn flow(dir: &Path, args: &[&str], stdin: Option<&str>, key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flow"));
    cmd.env_remove("FLOW_MASTER_KEY").env_remove("FLOW_STORE");
    if let Some(k) = key {
        cmd.env("FLOW_MASTER_KEY", k);
    }
    let mut child = cmd
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn machine(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-pg-vault-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a query prints, one row per line (`psql`'s unaligned output).
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-At", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const WORKFLOW: &str = r#"
import slack

workflow announce(channel: string) -> { ts: string } {
  step posted = slack.post_message(channel: channel, text: "hello")
  return { ts: posted.ts }
}
"#;

#[test]
fn a_connection_made_on_one_machine_is_used_by_runs_on_another() {
    let Some(url) = postgres_support::database("vault") else {
        return;
    };
    let (slack, seen) = slack_server();
    let (first, second, stranger) = (machine("a"), machine("b"), machine("c"));
    let store = ["--store", url.as_str()];

    // Machine A connects Slack.
    let connect = [
        &[
            "connect",
            "slack",
            "--owner",
            "ops",
            "--secret",
            "bot_token",
            "--base-url",
        ][..],
        &[slack.as_str()],
        &store,
    ]
    .concat();
    let o = flow(
        &first,
        &connect,
        Some(&format!("{TOKEN}\n")),
        Some(MASTER_KEY),
    );
    assert!(o.status.success(), "{}", text(&o));

    // Machine B sees it and runs a workflow that uses it.
    let list = [&["connections", "list", "--format", "json"][..], &store].concat();
    let o = flow(&second, &list, None, Some(MASTER_KEY));
    assert!(o.status.success(), "{}", text(&o));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["integration"], "slack", "{listed}");
    assert_eq!(listed[0]["owner"], "ops", "{listed}");
    assert_eq!(listed[0]["secrets"], serde_json::json!(["bot_token"]));

    std::fs::write(second.join("announce.flow"), WORKFLOW).unwrap();
    let run = [
        &[
            "run",
            "announce.flow",
            "-w",
            "announce",
            "-i",
            r#"{"channel":"C1"}"#,
        ][..],
        &store,
    ]
    .concat();
    let o = flow(&second, &run, None, Some(MASTER_KEY));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1700000000.000200"),
        "{}",
        text(&o)
    );
    assert_eq!(*seen.lock().unwrap(), vec![format!("Bearer {TOKEN}")]);

    // B's use is in the audit log that A reads.
    let audit = [&["connections", "audit", "--format", "json"][..], &store].concat();
    let o = flow(&first, &audit, None, Some(MASTER_KEY));
    assert!(o.status.success(), "{}", text(&o));
    let entries: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let calls: Vec<&serde_json::Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["purpose"] == "slack.post_message")
        .collect();
    assert_eq!(calls.len(), 1, "{entries}");
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(calls[0]["owner"], "ops");

    // The connection lives in the database, sealed: no vault file on either machine,
    // and the credential is not in its row.
    for dir in [&first, &second] {
        assert!(!dir.join(".flow/vault.db").exists(), "{}", dir.display());
    }
    let row = psql(
        &url,
        "SELECT encode(sealed, 'escape'), secret_names FROM vault_connections",
    );
    assert!(row.contains("bot_token"), "{row}");
    assert!(
        !row.contains(TOKEN),
        "the credential is stored in clear: {row}"
    );

    // Rotation on B shows on A: deactivated there, refused here.
    let deactivate = [
        &["connections", "deactivate", "slack", "--owner", "ops"][..],
        &store,
    ]
    .concat();
    let o = flow(&second, &deactivate, None, Some(MASTER_KEY));
    assert!(o.status.success(), "{}", text(&o));
    let o = flow(&first, &list, None, Some(MASTER_KEY));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["active"], false, "{listed}");

    // A machine without the key is told which key opens the shared vault, and makes
    // none of its own; one with another key is refused.
    let o = flow(&stranger, &list, None, None);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("sealed with a master key this process does not have")
            && text(&o).contains("FLOW_MASTER_KEY"),
        "{}",
        text(&o)
    );
    assert!(!stranger.join(".flow/master.key").exists());
    let other_key = "0".repeat(64);
    let o = flow(&stranger, &list, None, Some(&other_key));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("master key does not open the vault"),
        "{}",
        text(&o)
    );

    for dir in [first, second, stranger] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
