//! Runs the `test` blocks of every fixture under `tests/inputs/` through the real
//! engine, store and mocks: each statement kind and policy is exercised from Flow source.

mod common;

use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_test_passes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/inputs");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "flow"))
        .collect();
    files.sort();
    let mut ran = 0;
    let mut failures = Vec::new();
    for file in files {
        let program = Arc::new(common::compile(&std::fs::read_to_string(&file).unwrap()));
        for index in 0..program.tests.len() {
            let scratch = tempfile::tempdir().unwrap();
            let report =
                flow_runtime::testing::run_test(Arc::clone(&program), index, scratch.path()).await;
            ran += 1;
            if let Some(f) = report.failure {
                failures.push(format!(
                    "{}: {}: {}",
                    file.display(),
                    report.name,
                    f.message
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failing fixture tests:\n{}",
        failures.join("\n")
    );
    assert!(ran >= 12, "only {ran} fixture tests ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_expectation_is_reported_with_its_place() {
    let src = r#"
workflow one -> int {
  return 1
}

test "wrong on purpose" {
  run one()
  expect output == 2
}
"#;
    let program = Arc::new(common::compile(src));
    let scratch = tempfile::tempdir().unwrap();
    let report = flow_runtime::testing::run_test(program, 0, scratch.path()).await;
    let failure = report.failure.expect("the expectation must fail");
    assert!(
        failure.message.contains("does not hold"),
        "{}",
        failure.message
    );
    assert_eq!(
        src[failure.span.start as usize..failure.span.end as usize].trim(),
        "expect output == 2"
    );
}
