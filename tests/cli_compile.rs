//! `flow check`, `flow compile` and `flow graph` end to end, through the real binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn flow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli_compile");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn check_passes_on_the_examples_and_fails_with_json_diagnostics() {
    let ok = flow(&["check", "examples"]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stderr).contains("no problems"));

    let bad = flow(&[
        "check",
        "tests/inputs/check/err_missing_import.flow",
        "--format",
        "json",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let line = String::from_utf8_lossy(&bad.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let value: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["code"], "E1000", "{line}");
}

#[test]
fn compile_writes_an_artefact_that_decodes_to_the_program() {
    let out = scratch("onboarding.flowc");
    let run = flow(&[
        "compile",
        "examples/customer_onboarding.flow",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let program = flow_ir::artefact::decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(program.workflows.len(), 1);
    assert_eq!(program.workflows[0].name, "customer_onboarding");
    let names: Vec<&str> = program
        .integrations
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    for used in ["salesforce", "hubspot", "jira", "slack"] {
        assert!(names.contains(&used), "{used} missing from {names:?}");
    }

    let json = flow(&[
        "compile",
        "examples/customer_onboarding.flow",
        "--emit",
        "ir-json",
    ]);
    assert_eq!(json.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["workflows"][0]["name"], "customer_onboarding");
}

#[test]
fn compile_refuses_a_file_with_errors_and_writes_nothing() {
    let out = scratch("broken.flowc");
    let _ = std::fs::remove_file(&out);
    let run = flow(&[
        "compile",
        "tests/inputs/check/err_cycle_two_steps.flow",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("E1009"));
    assert!(!out.exists());
}

#[test]
fn graph_draws_steps_and_blocks() {
    let dot = flow(&["graph", "examples/incident_fanout.flow", "--format", "dot"]);
    assert_eq!(
        dot.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dot.stderr)
    );
    let text = String::from_utf8_lossy(&dot.stdout);
    assert!(text.starts_with("digraph"), "{text}");
    assert!(text.contains("subgraph cluster_"), "{text}");
    assert!(text.contains("jira.create_issue"), "{text}");

    let mermaid = flow(&[
        "graph",
        "examples/incident_fanout.flow",
        "--format",
        "mermaid",
    ]);
    let text = String::from_utf8_lossy(&mermaid.stdout);
    assert!(text.starts_with("flowchart TD"), "{text}");
    assert!(
        text.contains("for component in incident.components parallel 4"),
        "{text}"
    );
}

#[test]
fn graph_asks_which_workflow_and_explains_how_to_get_graphviz() {
    let many = flow(&["graph", "examples/sales_report.flow"]);
    assert_eq!(many.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&many.stderr).contains("--workflow"));

    let empty = scratch("no_tools");
    std::fs::create_dir_all(&empty).unwrap();
    let svg = Command::new(env!("CARGO_BIN_EXE_flow"))
        .args(["graph", "examples/health_monitor.flow", "--format", "svg"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", &empty)
        .output()
        .unwrap();
    assert_eq!(svg.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&svg.stderr).contains("apt-get install graphviz"));
}
