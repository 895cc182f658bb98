//! The vault's contract on both of its homes: its own SQLite file, and the tables of a
//! PostgreSQL run store (on the server `scripts/services/postgres.sh` starts; skipped
//! without one unless `FLOW_TEST_REQUIRE_POSTGRES` is set). Each case runs on both.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use flow_connectors::vault::{AuditEntry, BreakerRecord, KEY_FILE, VaultLocation};
use flow_connectors::{Connections, Vault, VaultConnections, VaultError};
use flow_runtime::store::{Store, StoreLocation, StoreOptions};
use secrecy::SecretString;

#[path = "../../tests/postgres_support/mod.rs"]
mod postgres_support;

/// A fresh home for a vault: a file in `dir`, or a fresh database with its key in `dir`.
fn location(backend: &str, dir: &Path, name: &str) -> Option<VaultLocation> {
    match backend {
        "sqlite" => Some(VaultLocation::File(dir.join("vault.db"))),
        _ => {
            let url = postgres_support::database(name)?;
            let store = Store::open_at(&StoreLocation::Postgres(url), StoreOptions::default())
                .expect("the PostgreSQL store opens");
            Some(VaultLocation::Store {
                store,
                key_dir: dir.to_owned(),
            })
        }
    }
}

fn secrets(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretString> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), SecretString::from((*v).to_owned())))
        .collect()
}

fn audit(owner: &str, purpose: &str, outcome: &'static str) -> AuditEntry {
    AuditEntry {
        integration: Arc::from("acme"),
        owner: owner.to_owned(),
        run_id: Some(Arc::from("run-1")),
        workflow: Some(Arc::from("sync")),
        step: Some("fetch".to_owned()),
        purpose: Arc::from(purpose),
        outcome,
    }
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $case() { super::$case("sqlite"); })*
        }
        mod postgres {
            $(#[test] fn $case() { super::$case("postgres"); })*
        }
    };
}

on_both_backends!(
    connections_are_kept_rotated_turned_off_and_removed,
    audit_rows_and_breaker_states_are_written_and_read_back,
    processes_opening_a_new_vault_together_agree_on_its_key,
    a_wrong_master_key_is_refused,
    a_running_process_sees_another_process_s_changes_after_its_refresh,
);

fn connections_are_kept_rotated_turned_off_and_removed(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(at) = location(backend, dir.path(), "vault_connections") else {
        return;
    };
    let vault = Vault::open_at(&at).unwrap();
    let settings = BTreeMap::from([("site".to_owned(), "acme".to_owned())]);
    let info = vault
        .connect(
            "jira",
            "ops",
            &settings,
            Some("http://127.0.0.1:9"),
            secrets(&[("api_token", "t1")]),
        )
        .unwrap();
    assert_eq!(info.secrets, vec!["api_token".to_owned()]);
    assert!(info.active);
    vault
        .connect(
            "jira",
            "ci",
            &BTreeMap::new(),
            None,
            secrets(&[("api_token", "t2")]),
        )
        .unwrap();
    assert!(matches!(
        vault.load("jira", None),
        Err(VaultError::Ambiguous { .. })
    ));
    let ops = vault.load("jira", Some("ops")).unwrap();
    assert_eq!(ops.secret_text("api_token").as_deref(), Some("t1"));
    assert_eq!(ops.settings.get("site").map(String::as_str), Some("acme"));
    assert_eq!(ops.base_url.as_deref(), Some("http://127.0.0.1:9"));

    vault
        .update_secrets("jira", "ops", vec![("refresh_token".into(), "r1".into())])
        .unwrap();
    let ops = vault.load("jira", Some("ops")).unwrap();
    assert_eq!(ops.secret_text("api_token").as_deref(), Some("t1"));
    assert_eq!(ops.secret_text("refresh_token").as_deref(), Some("r1"));

    assert!(vault.set_active("jira", "ci", false).unwrap());
    assert!(matches!(
        vault.load("jira", Some("ci")),
        Err(VaultError::Inactive { .. })
    ));
    let listed = vault.list(Some("jira")).unwrap();
    let owners: Vec<(&str, bool)> = listed
        .iter()
        .map(|c| (c.owner.as_str(), c.active))
        .collect();
    assert_eq!(owners, vec![("ci", false), ("ops", true)]);
    assert!(vault.list(Some("slack")).unwrap().is_empty());

    assert!(vault.disconnect("jira", "ci").unwrap());
    assert!(!vault.disconnect("jira", "ci").unwrap());
    assert_eq!(vault.load("jira", None).unwrap().owner, "ops");

    // A second handle (another process) reads what the first wrote.
    let again = Vault::open_at(&at).unwrap();
    assert_eq!(again.list(None).unwrap().len(), 1);
    assert_eq!(
        again
            .load("jira", Some("ops"))
            .unwrap()
            .secret_text("refresh_token")
            .as_deref(),
        Some("r1")
    );
}

fn audit_rows_and_breaker_states_are_written_and_read_back(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(at) = location(backend, dir.path(), "vault_audit") else {
        return;
    };
    let vault = Vault::open_at(&at).unwrap();
    let before = flow_connectors::vault::now_ms();
    for i in 0..50 {
        let outcome = if i % 5 == 0 { "communication" } else { "ok" };
        vault.audit(audit("ops", "acme.get", outcome));
    }
    vault.audit(audit("ops", "health", "ok"));
    vault.audit(audit("ci", "acme.get", "ok"));
    vault.record_breaker(
        "acme",
        "ops",
        BreakerRecord {
            state: "open".into(),
            since: 42,
            failures: 5,
        },
    );
    vault.flush();
    assert_eq!(vault.write_failures(), 0);

    let log = vault.audit_log(Some("acme"), 100).unwrap();
    assert_eq!(log.len(), 52);
    assert_eq!(log[0].owner, "ci", "newest first");
    assert_eq!(log[0].run_id.as_deref(), Some("run-1"));
    assert_eq!(log[0].workflow.as_deref(), Some("sync"));
    assert_eq!(log[0].step.as_deref(), Some("fetch"));
    assert!(log[0].actor.is_some());
    assert_eq!(vault.audit_log(None, 3).unwrap().len(), 3);
    assert!(vault.audit_log(Some("slack"), 10).unwrap().is_empty());

    // Health probes are not calls; failures are counted apart.
    assert_eq!(vault.recent_calls("acme", "ops", before).unwrap(), (50, 10));
    assert_eq!(vault.recent_calls("acme", "ci", before).unwrap(), (1, 0));
    assert_eq!(vault.recent_calls("acme", "ops", i64::MAX).unwrap(), (0, 0));

    let breaker = vault.breaker("acme", "ops").unwrap().unwrap();
    assert_eq!(
        (breaker.state.as_str(), breaker.since, breaker.failures),
        ("open", 42, 5)
    );
    vault.record_breaker(
        "acme",
        "ops",
        BreakerRecord {
            state: "closed".into(),
            since: 43,
            failures: 0,
        },
    );
    drop(vault); // dropping flushes
    let again = Vault::open_at(&at).unwrap();
    assert_eq!(
        again.breaker("acme", "ops").unwrap().unwrap().state,
        "closed"
    );
    assert!(again.breaker("acme", "ci").unwrap().is_none());
}

fn processes_opening_a_new_vault_together_agree_on_its_key(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(at) = location(backend, dir.path(), "vault_key_race") else {
        return;
    };
    let opened: Vec<Result<Vault, VaultError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4).map(|_| s.spawn(|| Vault::open_at(&at))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let vaults: Vec<Vault> = opened
        .into_iter()
        .map(|v| v.expect("every process opens the vault"))
        .collect();
    vaults[0]
        .connect(
            "acme",
            "ops",
            &BTreeMap::new(),
            None,
            secrets(&[("token", "k")]),
        )
        .unwrap();
    for v in &vaults {
        assert_eq!(
            v.load("acme", None)
                .unwrap()
                .secret_text("token")
                .as_deref(),
            Some("k")
        );
    }
    assert!(dir.path().join(KEY_FILE).exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("master.key."))
        .collect();
    assert!(leftovers.is_empty(), "drafts of the key file are removed");
}

fn a_wrong_master_key_is_refused(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(at) = location(backend, dir.path(), "vault_wrong_key") else {
        return;
    };
    drop(Vault::open_at(&at).unwrap());
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    // Without its key the vault says which key it needs, and makes no other.
    match Vault::open_at(&at) {
        Err(e @ VaultError::NoKey { .. }) => {
            let message = e.to_string();
            assert!(message.contains("FLOW_MASTER_KEY"), "{message}");
            assert!(message.contains(KEY_FILE), "{message}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a vault opened without its key"),
    }
    assert!(!dir.path().join(KEY_FILE).exists());
    std::fs::write(
        dir.path().join(KEY_FILE),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    .unwrap();
    match Vault::open_at(&at) {
        Err(e @ VaultError::WrongKey { .. }) => {
            let message = e.to_string();
            assert!(message.contains("FLOW_MASTER_KEY"), "{message}");
            if backend == "postgres" {
                assert!(message.contains("vault_* tables"), "{message}");
                assert!(!message.contains("password"), "{message}");
            }
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a wrong key opened the vault"),
    }
}

fn a_running_process_sees_another_process_s_changes_after_its_refresh(backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let Some(at) = location(backend, dir.path(), "vault_refresh") else {
        return;
    };
    let admin = Vault::open_at(&at).unwrap();
    let connect = |token: &str| {
        admin
            .connect(
                "acme",
                "ops",
                &BTreeMap::new(),
                None,
                secrets(&[("token", token)]),
            )
            .unwrap();
    };
    connect("t1");
    let refresh = std::time::Duration::from_millis(200);
    let worker = VaultConnections::new(at.clone()).with_refresh(refresh);
    let token = || {
        worker
            .load("acme", None)
            .unwrap()
            .secret_text("token")
            .map(|t| t.to_string())
    };
    assert_eq!(token().as_deref(), Some("t1"));
    // Another process rotates the credential, then turns the connection off.
    connect("t2");
    assert_eq!(
        token().as_deref(),
        Some("t1"),
        "within the refresh the loaded connection is used"
    );
    std::thread::sleep(refresh + std::time::Duration::from_millis(50));
    assert_eq!(token().as_deref(), Some("t2"));
    assert!(admin.set_active("acme", "ops", false).unwrap());
    std::thread::sleep(refresh + std::time::Duration::from_millis(50));
    assert!(matches!(
        worker.load("acme", None),
        Err(VaultError::Inactive { .. })
    ));
}
