//! The vault canary: a credential planted with `flow connect` is used by real `flow run`
//! processes (runs that succeed and runs that fail, against a local server that even
//! echoes the credential back in its errors) and must appear nowhere else: not in the
//! store or vault files, not in any command's output or logs, not in errors or run
//! outputs. The connection commands are exercised on the way.

use std::path::Path;

mod vault_support;
use vault_support::{flow, flow_with_key, slack_server, temp_dir, text};

const CANARY: &str = "xoxb-CANARY-7f3a9c2e51";
const SIGNING: &str = "SIGNING-CANARY-0b9d";

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

const WORKFLOW: &str = r#"
import slack

workflow announce(channel: string) -> { ts: string } {
  step posted = slack.post_message(channel: channel, text: "hello")
  return { ts: posted.ts }
}

workflow announce_or_report(channel: string) -> string {
  try {
    step posted = slack.post_message(channel: channel, text: "hello")
  } catch err {
    return err.message
  }
  return "posted"
}
"#;

#[test]
fn a_planted_credential_appears_nowhere_but_on_the_wire() {
    let (url, auth) = slack_server();
    let dir = temp_dir("runs");
    let d = dir.as_path();
    std::fs::write(d.join("announce.flow"), WORKFLOW).unwrap();
    let mut transcript = String::new();

    let o = flow(
        d,
        &[
            "connect",
            "slack",
            "--owner",
            "ops",
            "--secret",
            "bot_token",
            "--secret",
            "signing_secret",
            "--base-url",
            &url,
        ],
        Some(&format!("{CANARY}\n{SIGNING}\n")),
    );
    transcript.push_str(&text(&o));
    assert!(o.status.success(), "{}", text(&o));

    // A run that succeeds.
    let o = flow(
        d,
        &[
            "run",
            "announce.flow",
            "-w",
            "announce",
            "-i",
            r#"{"channel":"C1"}"#,
        ],
        None,
    );
    transcript.push_str(&text(&o));
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1700000000.000100"));

    // A run that fails; Slack's error (echoing the token) is the failure message.
    let o = flow(
        d,
        &[
            "run",
            "announce.flow",
            "-w",
            "announce",
            "-i",
            r#"{"channel":"C404"}"#,
        ],
        None,
    );
    transcript.push_str(&text(&o));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("channel_not_found"), "{}", text(&o));

    // A run whose output is the error message.
    let o = flow(
        d,
        &[
            "run",
            "announce.flow",
            "-w",
            "announce_or_report",
            "-i",
            r#"{"channel":"C404"}"#,
        ],
        None,
    );
    transcript.push_str(&text(&o));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("****"),
        "{}",
        text(&o)
    );

    for args in [
        &["connections", "list"][..],
        &["connections", "list", "--format", "json"],
        &["connections", "audit", "--format", "json"],
        &["health", "slack"],
        &["health", "--format", "json"],
        &["runs", "list", "--format", "json"],
    ] {
        let o = flow(d, args, None);
        transcript.push_str(&text(&o));
        assert!(o.status.success(), "flow {args:?}: {}", text(&o));
    }
    let audit = flow(d, &["connections", "audit", "--format", "json"], None);
    let entries: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let purposes: Vec<&str> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["purpose"].as_str().unwrap())
        .collect();
    assert!(
        purposes
            .iter()
            .filter(|p| **p == "slack.post_message")
            .count()
            >= 3,
        "{purposes:?}"
    );
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["run_id"].is_string() && e["step"] == "posted")
    );
    // Every use names who ran it: the operating-system user of the process.
    assert!(
        entries
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "canary-operator"),
        "{entries}"
    );

    // The credential went to the server, and only there.
    assert!(
        auth.lock()
            .unwrap()
            .iter()
            .any(|a| a == &format!("Bearer {CANARY}"))
    );
    for secret in [CANARY, SIGNING] {
        assert!(
            !transcript.contains(secret),
            "a command printed the credential:\n{transcript}"
        );
        let mut files = Vec::new();
        files_under(d, &mut files);
        assert!(files.iter().any(|f| f.ends_with("vault.db")));
        assert!(files.iter().any(|f| f.ends_with("flow.db")));
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let hit = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!hit, "{} holds the credential", f.display());
        }
    }

    // Deactivated, the connection is refused; disconnected, it is gone.
    let o = flow(
        d,
        &["connections", "deactivate", "slack", "--owner", "ops"],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = flow(
        d,
        &[
            "run",
            "announce.flow",
            "-w",
            "announce",
            "-i",
            r#"{"channel":"C1"}"#,
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("deactivated"), "{}", text(&o));
    let o = flow(
        d,
        &["connections", "activate", "slack", "--owner", "ops"],
        None,
    );
    assert!(o.status.success());
    let o = flow(d, &["disconnect", "slack", "--owner", "ops"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = flow(d, &["connections", "list", "--format", "json"], None);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
}

#[test]
fn secrets_are_never_taken_from_the_command_line() {
    let dir = temp_dir("argv");
    let o = flow(
        &dir,
        &[
            "connect",
            "slack",
            "--owner",
            "ops",
            "--secret",
            "bot_token=xoxb-1",
        ],
        Some(""),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = flow(
        &dir,
        &[
            "connect",
            "slack",
            "--owner",
            "ops",
            "--secret",
            "bot_token",
        ],
        Some(""),
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("standard input ended"), "{}", text(&o));
}

#[test]
fn a_master_key_from_the_environment_opens_only_its_own_vault() {
    let dir = temp_dir("env-key");
    let connect = [
        "connect",
        "jira",
        "--owner",
        "ops",
        "--set",
        "site=acme",
        "--set",
        "email=a@b.c",
        "--secret",
        "api_token",
    ];
    let o = flow_with_key(
        &dir,
        &connect,
        Some("jira-canary-token\n"),
        Some("correct horse battery staple"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        !dir.join(".flow/master.key").exists(),
        "no key file when the environment gives the key"
    );
    let o = flow_with_key(
        &dir,
        &["connections", "list"],
        None,
        Some("correct horse battery staple"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("jira"));
    let o = flow_with_key(
        &dir,
        &["connections", "list"],
        None,
        Some("another passphrase"),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("master key does not open the vault"),
        "{}",
        text(&o)
    );
    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let other = temp_dir("hex-key");
    let o = flow_with_key(&other, &connect, Some("jira-canary-token\n"), Some(hex));
    assert!(o.status.success(), "{}", text(&o));
    let o = flow_with_key(&other, &["connections", "list"], None, Some(hex));
    assert!(o.status.success(), "{}", text(&o));
}
