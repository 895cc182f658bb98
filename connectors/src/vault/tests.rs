//! The vault's tests: credentials sealed and opened, owners, rotation, the audit log and
//! its writer, the master key.

use super::*;
use rusqlite::params;

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned())))
        .collect()
}

#[test]
fn an_audit_row_that_cannot_be_written_is_counted_not_lost_silently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let vault = Vault::open(&path).unwrap();
    let entry = || AuditEntry {
        integration: Arc::from("slack"),
        owner: "ops".to_owned(),
        run_id: None,
        workflow: None,
        step: None,
        purpose: Arc::from("slack.post_message"),
        outcome: "ok",
    };
    vault.audit(entry());
    vault.flush();
    assert_eq!(vault.write_failures(), 0);
    // The audit table goes away under the writer (a damaged or foreign file).
    Db::open(&path)
        .unwrap()
        .execute_batch("DROP TABLE vault_audit")
        .unwrap();
    vault.audit(entry());
    vault.audit(entry());
    vault.flush();
    assert_eq!(vault.write_failures(), 2, "both rows are counted as failed");
    // Breaker states still go through: one failure does not stop the writer.
    vault.record_breaker(
        "slack",
        "ops",
        BreakerRecord {
            state: "open".into(),
            since: 1,
            failures: 3,
        },
    );
    vault.flush();
    assert_eq!(vault.write_failures(), 2);
    assert!(vault.breaker("slack", "ops").unwrap().is_some());
}

#[test]
fn audit_rows_keep_every_field_when_consecutive_entries_share_some() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(&dir.path().join("vault.db")).unwrap();
    let slack: Arc<str> = Arc::from("slack");
    let run: Arc<str> = Arc::from("run-1");
    let entry = |integration: &Arc<str>,
                 owner: &str,
                 run_id: Option<&Arc<str>>,
                 step: Option<&str>,
                 purpose: &str,
                 outcome: &'static str| AuditEntry {
        integration: Arc::clone(integration),
        owner: owner.to_owned(),
        run_id: run_id.cloned(),
        workflow: run_id.map(|_| Arc::from("notify")),
        step: step.map(str::to_owned),
        purpose: Arc::from(purpose),
        outcome,
    };
    let github: Arc<str> = Arc::from("github");
    let entries = vec![
        entry(
            &slack,
            "ops",
            Some(&run),
            Some("a"),
            "slack.post_message",
            "ok",
        ),
        entry(
            &slack,
            "ops",
            Some(&run),
            Some("b"),
            "slack.post_message",
            "ok",
        ),
        entry(&slack, "ops", None, None, "health", "communication"),
        entry(
            &github,
            "ci",
            Some(&run),
            Some("c"),
            "github.get_issue",
            "ok",
        ),
        entry(
            &github,
            "ci",
            Some(&run),
            Some("c"),
            "github.get_issue",
            "validation",
        ),
        entry(&slack, "ops", None, None, "oauth2 refresh", "ok"),
    ];
    // Sent together, so the writer takes them in one batch.
    for e in entries.clone() {
        vault.audit(e);
    }
    vault.flush();
    let mut log = vault.audit_log(None, 10).unwrap();
    log.reverse();
    assert_eq!(log.len(), entries.len());
    for (row, e) in log.iter().zip(&entries) {
        assert_eq!(row.integration, &*e.integration);
        assert_eq!(row.owner, e.owner);
        assert_eq!(row.run_id.as_deref(), e.run_id.as_deref());
        assert_eq!(row.workflow.as_deref(), e.workflow.as_deref());
        assert_eq!(row.step, e.step);
        assert_eq!(row.purpose, &*e.purpose);
        assert_eq!(row.outcome, e.outcome);
        assert_eq!(row.actor.as_deref(), Some(current_actor().as_str()));
    }
}

#[test]
fn recent_calls_count_what_a_full_scan_counts() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(&dir.path().join("vault.db")).unwrap();
    {
        let db = vault.db();
        let mut insert = db
            .prepare(
                "INSERT INTO vault_audit (at, integration, owner, purpose, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .unwrap();
        // Time steps of 0 to 2 ms, two connections, failures, health probes.
        let mut at = 1_000;
        for i in 0..500i64 {
            at += i % 3;
            let owner = if i % 4 == 0 { "ci" } else { "ops" };
            let purpose = if i % 7 == 0 { "health" } else { "acme.get" };
            let outcome = if i % 5 == 0 { "communication" } else { "ok" };
            insert
                .execute(params![at, "acme", owner, purpose, outcome])
                .unwrap();
        }
        // Gaps in the row ids.
        db.execute(
            "DELETE FROM vault_audit WHERE id % 11 = 0 OR id BETWEEN 200 AND 260",
            [],
        )
        .unwrap();
    }
    let scan = |owner: &str, since: i64| -> (u64, u64) {
        vault
            .db()
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(outcome <> 'ok'), 0) FROM vault_audit
                 WHERE integration = 'acme' AND owner = ?1 AND at >= ?2 AND purpose <> 'health'",
                params![owner, since],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .unwrap()
    };
    for since in [
        0, 1_000, 1_001, 1_137, 1_250, 1_400, 1_498, 1_499, 1_500, 5_000,
    ] {
        for owner in ["ops", "ci"] {
            assert_eq!(
                vault.recent_calls("acme", owner, since).unwrap(),
                scan(owner, since),
                "{owner} since {since}"
            );
        }
    }
    let empty = Vault::open(&dir.path().join("empty.db")).unwrap();
    assert_eq!(empty.recent_calls("acme", "ops", 0).unwrap(), (0, 0));
}

#[test]
fn credentials_round_trip_and_are_not_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let vault = Vault::open(&path).unwrap();
    let mut settings = BTreeMap::new();
    settings.insert("site".to_owned(), "acme".to_owned());
    vault
        .connect(
            "jira",
            "ops",
            &settings,
            None,
            secrets(&[("api_token", "canary-4f9a1c")]),
        )
        .unwrap();
    let c = vault.load("jira", None).unwrap();
    assert_eq!(c.secret_text("api_token").as_deref(), Some("canary-4f9a1c"));
    assert_eq!(c.settings.get("site").map(String::as_str), Some("acme"));
    assert!(!format!("{c:?}").contains("canary"));
    vault.flush();
    drop(vault);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"canary"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [KEY_FILE, "vault.db"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}

#[test]
fn a_vault_from_before_actors_and_table_prefixes_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    {
        let db = Db::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY, at INTEGER NOT NULL,
             integration TEXT NOT NULL, owner TEXT NOT NULL, run_id TEXT, workflow TEXT,
             step TEXT, purpose TEXT NOT NULL, outcome TEXT NOT NULL);
             INSERT INTO audit (at, integration, owner, purpose, outcome)
             VALUES (1, 'slack', 'ops', 'health', 'ok');",
        )
        .unwrap();
    }
    let vault = Vault::open(&path).unwrap();
    vault.audit(AuditEntry {
        integration: "slack".into(),
        owner: "ops".into(),
        run_id: None,
        workflow: None,
        step: None,
        purpose: "slack.post_message".into(),
        outcome: "ok",
    });
    vault.flush();
    let log = vault.audit_log(None, 10).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].actor.as_deref(), Some(current_actor().as_str()));
    assert_eq!(log[1].actor, None);
}

#[test]
fn owners_activation_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::open(&dir.path().join("vault.db")).unwrap();
    let none = BTreeMap::new();
    vault
        .connect(
            "slack",
            "alice",
            &none,
            None,
            secrets(&[("bot_token", "a")]),
        )
        .unwrap();
    vault
        .connect(
            "slack",
            "bob",
            &none,
            Some("http://127.0.0.1:1"),
            secrets(&[("bot_token", "b")]),
        )
        .unwrap();
    assert!(matches!(
        vault.load("slack", None),
        Err(VaultError::Ambiguous { .. })
    ));
    assert!(matches!(
        vault.load("jira", None),
        Err(VaultError::NoConnection { .. })
    ));
    assert_eq!(
        vault
            .load("slack", Some("bob"))
            .unwrap()
            .base_url
            .as_deref(),
        Some("http://127.0.0.1:1")
    );
    assert!(vault.set_active("slack", "bob", false).unwrap());
    assert!(matches!(
        vault.load("slack", Some("bob")),
        Err(VaultError::Inactive { .. })
    ));
    vault
        .update_secrets(
            "slack",
            "alice",
            vec![("refresh_token".into(), "r2".into())],
        )
        .unwrap();
    let a = vault.load("slack", Some("alice")).unwrap();
    assert_eq!(a.secret_text("refresh_token").as_deref(), Some("r2"));
    assert_eq!(a.secret_text("bot_token").as_deref(), Some("a"));
    assert!(vault.disconnect("slack", "alice").unwrap());
    assert_eq!(vault.list(None).unwrap().len(), 1);
}

#[test]
fn a_wrong_master_key_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    drop(Vault::open(&path).unwrap());
    std::fs::write(
        dir.path().join(KEY_FILE),
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    )
    .unwrap();
    assert!(matches!(
        Vault::open(&path),
        Err(VaultError::WrongKey { .. })
    ));
}

#[test]
fn the_mask_hides_every_credential() {
    let c = Connection::new("x", "y").with_secret("token", "s3cr3t-value");
    assert_eq!(c.mask("bad token s3cr3t-value!"), "bad token ****!");
}
