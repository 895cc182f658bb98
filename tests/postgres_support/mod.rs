//! What the tests against a PostgreSQL store share: a fresh database of their own on
//! the server `scripts/services/postgres.sh` started.

use std::process::{Command, Stdio};

/// A fresh database on the test server, or `None` when there is no server.
pub fn database(name: &str) -> Option<String> {
    let Ok(admin) = std::env::var("FLOW_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("FLOW_TEST_REQUIRE_POSTGRES").is_none(),
            "FLOW_TEST_REQUIRE_POSTGRES is set but the PostgreSQL server did not start"
        );
        eprintln!("skipped: FLOW_TEST_POSTGRES_URL is not set (scripts/test.sh starts a server)");
        return None;
    };
    let db = format!("flow_{name}_{}", std::process::id());
    let status = Command::new("psql")
        .args([
            admin.as_str(),
            "-q",
            "-c",
            &format!("DROP DATABASE IF EXISTS {db}"),
        ])
        .args(["-c", &format!("CREATE DATABASE {db}")])
        .stdout(Stdio::null())
        .status()
        .expect("psql runs");
    assert!(status.success(), "cannot create database {db}");
    Some(format!("{}/{db}", admin.rsplit_once('/').unwrap().0))
}
