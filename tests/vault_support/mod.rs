//! What the vault's command-line tests share: a local stand-in for Slack's Web API that
//! records the credentials it is sent, and `flow` run as a process in a directory of its
//! own, with or without a master key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

/// A local stand-in for Slack's Web API: `chat.postMessage` succeeds for channel `C1`
/// and fails otherwise with an error that echoes the token; `auth.test` answers ok.
/// Records each request's Authorization header.
pub fn slack_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let auth = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&auth);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
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
            let body = String::from_utf8_lossy(&body).into_owned();
            seen.lock().unwrap().push(authorization.clone());
            let reply = if request_line.contains("/auth.test") {
                r#"{"ok":true,"team":"T1"}"#.to_owned()
            } else if body.contains("\"channel\":\"C1\"") {
                r#"{"ok":true,"channel":"C1","ts":"1700000000.000100","message":{"text":"hello"}}"#
                    .to_owned()
            } else {
                format!(r#"{{"ok":false,"error":"channel_not_found (sent with {authorization})"}}"#)
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, auth)
}

pub fn flow(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    flow_with_key(dir, args, stdin, None)
}

pub fn flow_with_key(dir: &Path, args: &[&str], stdin: Option<&str>, key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flow"));
    cmd.env_remove("FLOW_MASTER_KEY").env_remove("FLOW_STORE");
    if let Some(k) = key {
        cmd.env("FLOW_MASTER_KEY", k);
    }
    cmd.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("USER", "canary-operator")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
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

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh directory under the system's temporary directory, named for this process.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-vault-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
