//! `flow check` end to end: exit statuses, output formats and hostile input, through the
//! real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn flow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run flow")
}

fn check_file(dir: &Path, name: &str, bytes: &[u8]) -> (Option<i32>, String) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = flow(&["check", "--format", "json", path.to_str().unwrap()]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn codes(json_lines: &str) -> Vec<String> {
    json_lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("one JSON object per line"))
        .map(|v| v["code"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-cli-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn examples_check_clean() {
    let out = flow(&["check", "examples"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_malformed_fixture_exits_1() {
    let dir = Path::new("tests/inputs/syntax");
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    assert!(entries.len() >= 40);
    for path in entries {
        let out = flow(&["check", "--format", "json", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", path.display());
        let codes = codes(&String::from_utf8_lossy(&out.stdout));
        assert!(
            codes.iter().any(|c| c.starts_with("E0")),
            "{}: {codes:?}",
            path.display()
        );
    }
}

#[test]
fn hostile_inputs_get_a_diagnostic_never_a_crash() {
    let dir = temp_dir("hostile");
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        (
            "utf8.flow",
            b"workflow w {\n  log \"caf\xe9\"\n}\n".to_vec(),
            1,
            "E0001",
        ),
        (
            "nul.flow",
            b"workflow w {\n  let x = 1\0\n}\n".to_vec(),
            1,
            "E0003",
        ),
        (
            "nested.flow",
            format!("const X = {}1{}\n", "(".repeat(10_000), ")".repeat(10_000)).into_bytes(),
            1,
            "E0006",
        ),
        (
            "string.flow",
            b"workflow w {\n  log \"never closed\n}\n".to_vec(),
            1,
            "E0004",
        ),
        (
            "comment.flow",
            b"/* never closed\nworkflow w { log \"x\" }\n".to_vec(),
            1,
            "E0005",
        ),
        (
            "stray.flow",
            b"workflow w { log \"x\" }\n}\n".to_vec(),
            1,
            "E0010",
        ),
        (
            "large.flow",
            "// padding\n".repeat(900_000).into_bytes(),
            1,
            "E0013",
        ),
        ("empty.flow", Vec::new(), 0, "W0001"),
    ];
    for (name, bytes, status, code) in cases {
        let (got, stdout) = check_file(&dir, name, &bytes);
        assert_eq!(got, Some(status), "{name}: {stdout}");
        assert!(
            codes(&stdout).iter().any(|c| c == code),
            "{name}: expected {code} in {stdout}"
        );
    }
}

#[test]
fn json_diagnostics_have_the_documented_fields() {
    let dir = temp_dir("json");
    let (status, stdout) = check_file(
        &dir,
        "typo.flow",
        b"workflow w {\n  step a = http.get(url: \"u\")\n    retyr 3\n}\n",
    );
    assert_eq!(status, Some(1));
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    for key in [
        "code",
        "severity",
        "message",
        "file",
        "line",
        "column",
        "end_line",
        "end_column",
        "labels",
        "help",
    ] {
        assert!(first.get(key).is_some(), "missing `{key}` in {first}");
    }
    assert_eq!(first["code"], "E0002");
    assert_eq!(first["severity"], "error");
    assert_eq!(
        (first["line"].as_u64(), first["column"].as_u64()),
        (Some(3), Some(5))
    );
    assert_eq!(
        (first["end_line"].as_u64(), first["end_column"].as_u64()),
        (Some(3), Some(10))
    );
    assert_eq!(first["help"], "did you mean `retry`?");
}

#[test]
fn human_output_is_plain_without_a_terminal() {
    let dir = temp_dir("human");
    let path = dir.join("bad.flow");
    std::fs::write(&path, "workflow w { let = 1 }\n").unwrap();
    let out = flow(&["check", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("[E0002]"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no colour codes when not on a terminal: {stderr}"
    );
}

#[test]
fn unreadable_paths_are_usage_errors() {
    let out = flow(&["check", "does/not/exist.flow"]);
    assert_eq!(out.status.code(), Some(2));
    let out = flow(&["check"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing PATH is a usage error"
    );
}

#[test]
fn directories_are_searched_recursively() {
    let dir = temp_dir("recursive");
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("a/b/deep.flow"), "workflow w { let = 1 }\n").unwrap();
    std::fs::write(dir.join("a/ok.flow"), "workflow v { log \"ok\" }\n").unwrap();
    std::fs::write(dir.join("a/notes.txt"), "not flow").unwrap();
    let out = flow(&["check", "--format", "json", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deep.flow"), "{stdout}");
}

#[test]
fn version_and_help() {
    let out = flow(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("flow "));
    let out = flow(&["check", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--format"), "{help}");
}
