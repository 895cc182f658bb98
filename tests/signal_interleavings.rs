//! The law of signal waits, with real processes: whatever the interleaving of signal
//! arrivals, wait entries, SIGKILLs of the process running the workflow and resumes,
//! the run ends as an uninterrupted run would: each wait takes the oldest signal of its
//! name, so `a` and `b` get the first and second `n`, and `c` the `m`.

mod serve_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use serve_support::{FLOW, flow, scratch};

const WORKFLOW: &str = r#"
workflow three -> list<int> {
  step a = wait signal("n") as int
  step b = wait signal("n") as int after a
  wait 200ms
  step c = wait signal("m") as int
  return [a, b, c]
}
"#;

#[derive(Clone, Debug)]
enum Op {
    /// Send signal `name` with a value.
    Send(&'static str, i64),
    /// SIGKILL the process that runs the workflow, then start `flow resume`.
    Kill,
    /// Let time pass (ms).
    Pause(u64),
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(FLOW)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The newest run of `three`: id, status and output.
fn newest(dir: &Path) -> Option<serde_json::Value> {
    let (_, out, _) = flow(
        dir,
        &["runs", "list", "--format", "json", "--store", "flow.db"],
        "",
    );
    serde_json::from_str(out.lines().next()?).ok()
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let sends = Just(vec![Op::Send("n", 1), Op::Send("n", 2), Op::Send("m", 3)]).prop_shuffle();
    let noise = prop::collection::vec(
        prop_oneof![Just(Op::Kill), (0u64..400).prop_map(Op::Pause)],
        0..5,
    );
    (sends, noise, prop::collection::vec(0usize..8, 5)).prop_map(|(sends, noise, at)| {
        // The sends keep their relative order (the two `n` in particular); the noise
        // goes anywhere among them.
        let mut all = sends;
        for (op, i) in noise.into_iter().zip(at) {
            let i = i.min(all.len());
            all.insert(i, op);
        }
        all
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_ends_as_an_uninterrupted_run(ops in ops()) {
        let dir = scratch(&format!("interleave-{}", fastrand_suffix()));
        std::fs::write(dir.join("app.flow"), WORKFLOW).unwrap();
        let mut running = Some(spawn(&dir, &["run", "app.flow", "-q", "--store", "flow.db"]));
        let deadline = Instant::now() + Duration::from_secs(30);
        let id = loop {
            if let Some(run) = newest(&dir) {
                break run["run_id"].as_str().unwrap().to_owned();
            }
            prop_assert!(Instant::now() < deadline, "the run never started");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut expected_n = Vec::new();
        let mut expected_m = Vec::new();
        for op in &ops {
            match op {
                Op::Send(name, v) => {
                    let data = v.to_string();
                    let (code, _, err) = flow(
                        &dir,
                        &["signal", &id, name, "--data", &data, "--store", "flow.db"],
                        "",
                    );
                    prop_assert_eq!(code, 0, "{}", err);
                    if *name == "n" { expected_n.push(*v) } else { expected_m.push(*v) }
                }
                Op::Kill => {
                    if let Some(mut child) = running.take() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    running = Some(spawn(&dir, &["resume", &id, "-q", "--store", "flow.db"]));
                }
                Op::Pause(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            }
        }
        let mut child = running.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            prop_assert!(Instant::now() < deadline, "the run did not end after every signal was sent");
            std::thread::sleep(Duration::from_millis(20));
        }
        let run = newest(&dir).unwrap();
        prop_assert_eq!(&run["status"], "completed", "{}", run);
        let want = serde_json::json!([expected_n[0], expected_n[1], expected_m[0]]);
        prop_assert_eq!(&run["output"], &want, "ops {:?}", ops);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A per-case suffix for the scratch directory.
fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
