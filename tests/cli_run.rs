//! `flow run`, `flow runs`, `flow stats`, `flow optimize` and `flow test` as a user runs
//! them: the main example end to end, output and exit codes, and a corrupt store.

use std::path::{Path, PathBuf};
use std::process::Command;

const FLOW: &str = env!("CARGO_BIN_EXE_flow");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flow-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn flow(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(FLOW)
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_sales_report_runs_end_to_end() {
    let dir = scratch("sales");
    let example = root().join("examples/sales_report.flow");
    let source = root().join("examples/data/sales.json");
    let input = serde_json::json!({ "source": source, "output": dir.join("out/dashboard.json") })
        .to_string();
    let (code, stdout, stderr) = flow(
        &dir,
        &[
            "run",
            example.to_str().unwrap(),
            "--input",
            &input,
            "--store",
            "flow.db",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    // The notification, then the output JSON.
    let (first, rest) = stdout.split_once('\n').unwrap();
    assert!(
        first.starts_with("[sales] ") && first.contains("deals won"),
        "{stdout}"
    );
    let output: serde_json::Value = serde_json::from_str(rest).unwrap();
    assert!(output["deals_won"].as_i64().unwrap() > 0);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/dashboard.json")).unwrap())
            .unwrap();
    assert_eq!(written, output);
    assert!(stderr.contains("✓ export"), "{stderr}");

    let (code, list, _) = flow(
        &dir,
        &["runs", "list", "--format", "json", "--store", "flow.db"],
    );
    assert_eq!(code, 0);
    let run: serde_json::Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    assert_eq!(run["status"], "completed");
    let (code, show, _) = flow(
        &dir,
        &[
            "runs",
            "show",
            run["run_id"].as_str().unwrap(),
            "--format",
            "json",
            "--store",
            "flow.db",
        ],
    );
    assert_eq!(code, 0);
    let detail: serde_json::Value = serde_json::from_str(&show).unwrap();
    let steps: Vec<&str> = detail["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, vec!["export", "report", "notify#1"]);
    assert!(
        detail["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "succeeded" && s["attempts"] == 1)
    );

    let (code, stats, _) = flow(
        &dir,
        &[
            "stats",
            "sales_report",
            "--format",
            "json",
            "--store",
            "flow.db",
        ],
    );
    assert_eq!(code, 0);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        (stats["runs"].as_u64(), stats["success_rate"].as_f64()),
        (Some(1), Some(1.0))
    );

    let (code, opt, _) = flow(
        &dir,
        &[
            "optimize",
            "sales_report",
            "--format",
            "json",
            "--store",
            "flow.db",
        ],
    );
    assert_eq!(code, 0);
    let opt: serde_json::Value = serde_json::from_str(&opt).unwrap();
    assert_eq!(
        opt["critical_path"],
        serde_json::json!(["export", "report", "notify#1"])
    );
    assert!(opt["score"].as_u64().unwrap() <= 100);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_run_exits_1_and_a_corrupt_store_exits_2() {
    let dir = scratch("fail");
    std::fs::write(
        dir.join("boom.flow"),
        "workflow boom {\n  fail \"no luck\"\n}\n",
    )
    .unwrap();
    let (code, stdout, stderr) = flow(&dir, &["run", "boom.flow", "--store", "flow.db"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("no luck"), "{stderr}");

    std::fs::write(dir.join("bad.db"), vec![7u8; 4096]).unwrap();
    let (code, _, stderr) = flow(&dir, &["run", "boom.flow", "--store", "bad.db"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("not a Flow store or is corrupt"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flow_test_runs_the_examples_tests() {
    let (code, stdout, stderr) = flow(&root(), &["test", "examples"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.trim().ends_with("passed, 0 failed"), "{stdout}");
    assert!(
        stderr.contains("test onboarding opens a ticket even when jira blips ... ok"),
        "{stderr}"
    );
}
