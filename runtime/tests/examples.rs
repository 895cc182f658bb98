//! The examples that need no account run end to end on the real built-ins.

mod common;

use flow_runtime::RunStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_report_writes_the_dashboard_and_announces_it() {
    let h = common::harness();
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/sales_report.flow"
    ))
    .unwrap();
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/data/sales.json");
    let out = h.dir.path().join("dash/dashboard.json");
    let outcome = h
        .run(
            &src,
            "sales_report",
            serde_json::json!({ "source": source, "output": out.to_str().unwrap() }),
        )
        .await;
    assert_eq!(outcome.status, RunStatus::Completed, "{:?}", outcome.error);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written, outcome.output);
    assert!(outcome.output["deals_won"].as_i64().unwrap() > 0);
    let console = h.console.lock().unwrap().clone();
    assert_eq!(console.len(), 1);
    assert!(console[0].starts_with("[sales] "), "{console:?}");
    assert!(console[0].contains("dashboard written to"), "{console:?}");
}
