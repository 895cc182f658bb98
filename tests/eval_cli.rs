//! `flow eval` end to end: JSON in, JSON out, type errors as diagnostics, exit codes.

use std::io::Write;
use std::process::{Command, Stdio};

fn flow_eval(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flow"))
        .arg("eval")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flow runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writes stdin");
    let out = child.wait_with_output().expect("flow finishes");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ORDERS: &str = r#"{"orders": [{"id": "a", "total": 120.5, "items": [1, 2]}, {"id": "b", "total": 80, "items": []}]}"#;

#[test]
fn evaluates_over_inferred_input_in_every_tier() {
    for tier in [&["--no-jit"][..], &["--jit=always"][..], &[][..]] {
        let mut args = vec![
            "-c",
            "input.orders.filter(o, o.total > 100.0).map(o, o.id)",
            "--input",
            "-",
        ];
        args.extend_from_slice(tier);
        let (code, out, err) = flow_eval(&args, ORDERS);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), r#"["a"]"#);
    }
    let (code, out, _) = flow_eval(
        &[
            "-c",
            "input.orders.group_by(o, size(o.items) > 0)",
            "-i",
            "-",
        ],
        ORDERS,
    );
    assert_eq!(code, 0);
    assert!(out.contains(r#""true":[{"id":"a""#), "{out}");
}

#[test]
fn variables_and_declared_types() {
    let (code, out, _) = flow_eval(&["x * 2", "--var", "x=21"], "");
    assert_eq!((code, out.trim()), (0, "42"));
    let (code, _, err) = flow_eval(
        &[
            "input",
            "-i",
            "-",
            "--type",
            "{ orders: list<{ id: int }> }",
        ],
        ORDERS,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("input.orders[0].id: expected int, found string"),
        "{err}"
    );
}

#[test]
fn type_errors_are_diagnostics_and_evaluation_errors_exit_1() {
    let (code, _, err) = flow_eval(&["input.orders[0].totl", "-i", "-"], ORDERS);
    assert_eq!(code, 1);
    assert!(
        err.contains("E2004") && err.contains("did you mean `total`?"),
        "{err}"
    );
    let (code, _, err) = flow_eval(&["1 / 0"], "");
    assert_eq!(code, 1);
    assert!(err.contains("division by zero"), "{err}");
    let (code, _, err) = flow_eval(&["input", "-i", "-"], "{not json");
    assert_eq!(code, 2);
    assert!(err.contains("not valid JSON"), "{err}");
}
