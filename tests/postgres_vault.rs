//! The vault moves with the journal: on a PostgreSQL store, `flow connect` on one machine
//! (a working directory of its own) stores the connection in the database, and a run on
//! another machine uses it, its audit entries land in the same database, and no vault
//! file is made anywhere. A process without the vault's master key is refused clearly.

use std::process::Command;

mod postgres_support;
mod vault_support;
use vault_support::{flow, flow_with_key, slack_server, temp_dir, text};

const TOKEN: &str = "xoxb-SHARED-5e1d0c";
/// 32 bytes as 64 hex digits: the master key every "machine" of the test is given.
const MASTER_KEY: &str = "5f1c0e3a9b7d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";

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
    let (first, second, stranger) = (temp_dir("pg-a"), temp_dir("pg-b"), temp_dir("pg-c"));
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
    let o = flow_with_key(
        &first,
        &connect,
        Some(&format!("{TOKEN}\n")),
        Some(MASTER_KEY),
    );
    assert!(o.status.success(), "{}", text(&o));

    // Machine B sees it and runs a workflow that uses it.
    let list = [&["connections", "list", "--format", "json"][..], &store].concat();
    let o = flow_with_key(&second, &list, None, Some(MASTER_KEY));
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
    let o = flow_with_key(&second, &run, None, Some(MASTER_KEY));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1700000000.000100"),
        "{}",
        text(&o)
    );
    assert_eq!(*seen.lock().unwrap(), vec![format!("Bearer {TOKEN}")]);

    // B's use is in the audit log that A reads.
    let audit = [&["connections", "audit", "--format", "json"][..], &store].concat();
    let o = flow_with_key(&first, &audit, None, Some(MASTER_KEY));
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
    let o = flow_with_key(&second, &deactivate, None, Some(MASTER_KEY));
    assert!(o.status.success(), "{}", text(&o));
    let o = flow_with_key(&first, &list, None, Some(MASTER_KEY));
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["active"], false, "{listed}");

    // A machine without the key is told which key opens the shared vault, and makes
    // none of its own; one with another key is refused.
    let o = flow(&stranger, &list, None);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("sealed with a master key this process does not have")
            && text(&o).contains("FLOW_MASTER_KEY"),
        "{}",
        text(&o)
    );
    assert!(!stranger.join(".flow/master.key").exists());
    let other_key = "0".repeat(64);
    let o = flow_with_key(&stranger, &list, None, Some(&other_key));
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
