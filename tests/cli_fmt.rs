//! `flow fmt` end to end through the real binary: rewriting, `--check`, files with syntax
//! errors left byte for byte as they were, standard input, and exit statuses.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn flow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run flow")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-cli-fmt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const MESSY: &str =
    "workflow w{\nstep a=slack.post_message(channel:\"#a\",text:\"hi\") timeout 10s // why\n}\n";
const TIDY: &str = "workflow w {\n  step a = slack.post_message(channel: \"#a\", text: \"hi\")\n    timeout 10s // why\n}\n";
const BROKEN: &str = "workflow w {\n  step a = slack.post_message(\n}\n";

#[test]
fn check_lists_unformatted_files_and_changes_nothing() {
    let dir = temp_dir("check");
    std::fs::write(dir.join("messy.flow"), MESSY).unwrap();
    std::fs::write(dir.join("tidy.flow"), TIDY).unwrap();
    let out = flow(&["fmt", "--check", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("messy.flow") && !listed.contains("tidy.flow"),
        "{listed}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("messy.flow")).unwrap(),
        MESSY
    );
}

#[test]
fn rewriting_formats_and_then_check_passes() {
    let dir = temp_dir("rewrite");
    std::fs::write(dir.join("messy.flow"), MESSY).unwrap();
    let out = flow(&["fmt", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("messy.flow")).unwrap(),
        TIDY
    );
    let again = flow(&["fmt", "--check", dir.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[test]
fn a_file_with_syntax_errors_is_reported_and_left_alone() {
    let dir = temp_dir("broken");
    std::fs::write(dir.join("broken.flow"), BROKEN).unwrap();
    std::fs::write(dir.join("messy.flow"), MESSY).unwrap();
    let out = flow(&["fmt", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("E0") && stderr.contains("not formatted"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(dir.join("broken.flow")).unwrap(),
        BROKEN.as_bytes()
    );
    // The other file is still formatted.
    assert_eq!(
        std::fs::read_to_string(dir.join("messy.flow")).unwrap(),
        TIDY
    );
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let out = flow(&["fmt", "/nonexistent/flow-fmt-test.flow"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn standard_input_is_formatted_to_standard_output() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(MESSY.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), TIDY);
}

#[test]
fn invalid_utf8_is_reported_not_rewritten() {
    let dir = temp_dir("utf8");
    let bytes = b"workflow w {\n  let x = \"\xff\"\n}\n";
    std::fs::write(dir.join("bad.flow"), bytes).unwrap();
    let out = flow(&["fmt", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read(dir.join("bad.flow")).unwrap(), bytes);
}
