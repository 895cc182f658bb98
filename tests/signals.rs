//! Signal waits with the real `flow` binary: a run parks on `wait signal("...") as T`,
//! `flow signal` stores a signal checked against `T` (through the store, or a server's
//! run API), and the run takes it, in the order signals arrived, even across a SIGKILL
//! of the process that ran it; a wait's `timeout` fails the step with kind `timeout`.

mod serve_support;

use std::path::Path;
use std::process::{Child, Command};

use serve_support::{FLOW, Server, client, flow, scratch, wait_until};

const APPROVAL: &str = r#"
type Decision = { approved: bool, by: string, note: string? }

workflow approve(amount: int) -> string {
  step d = wait signal("decision") as Decision timeout 1h
  return d.approved ? "approved by " + d.by : "rejected by " + d.by
}

workflow two_in_order -> list<int> {
  wait 1500ms
  step first = wait signal("n") as int
  step second = wait signal("n") as int after first
  return [first, second]
}

workflow impatient -> string {
  try {
    step d = wait signal("go") timeout 300ms
  } catch e {
    return "gave up: " + e.kind
  }
  return "went"
}
"#;

/// `flow run WORKFLOW` in the background, its output kept in files under `dir`.
fn start_run(dir: &Path, workflow: &str, input: &str) -> Child {
    Command::new(FLOW)
        .args([
            "run",
            "app.flow",
            "--workflow",
            workflow,
            "--input",
            input,
            "--store",
            "flow.db",
            "-q",
        ])
        .current_dir(dir)
        .stdout(std::fs::File::create(dir.join(format!("{workflow}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{workflow}.err"))).unwrap())
        .spawn()
        .unwrap()
}

/// The id and status of the newest run of `workflow` in the store.
fn newest(dir: &Path, workflow: &str) -> Option<(String, String)> {
    let (_, out, _) = flow(
        dir,
        &[
            "runs",
            "list",
            "--workflow",
            workflow,
            "--format",
            "json",
            "--store",
            "flow.db",
        ],
        "",
    );
    let line = out.lines().next()?;
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    Some((
        v["run_id"].as_str()?.to_owned(),
        v["status"].as_str()?.to_owned(),
    ))
}

fn setup(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    std::fs::write(dir.join("app.flow"), APPROVAL).unwrap();
    dir
}

#[test]
fn a_killed_waiting_run_takes_the_signal_sent_while_it_was_down() {
    let dir = setup("signal-kill");
    let mut child = start_run(&dir, "approve", r#"{"amount": 5}"#);
    let mut id = String::new();
    wait_until("the run waits", || match newest(&dir, "approve") {
        Some((run, status)) if status == "waiting" => {
            id = run;
            true
        }
        _ => false,
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // What the run waits for is in its detail.
    let (_, shown, _) = flow(&dir, &["runs", "show", &id, "--store", "flow.db"], "");
    assert!(shown.contains("waiting for signal `decision`"), "{shown}");

    // A payload of the wrong type is refused with its path, and nothing is stored.
    let (code, _, err) = flow(
        &dir,
        &[
            "signal",
            &id,
            "decision",
            "--data",
            r#"{"approved": "yes", "by": "ann"}"#,
            "--store",
            "flow.db",
        ],
        "",
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("data.approved") && err.contains("nothing was stored"),
        "{err}"
    );
    // So is a signal the workflow never waits for.
    let (code, _, err) = flow(&dir, &["signal", &id, "decison", "--store", "flow.db"], "");
    assert_eq!(code, 1);
    assert!(
        err.contains("never waits for a signal `decison`") && err.contains("decision"),
        "{err}"
    );

    // Sent while nothing runs it: stored, and sending again with the same id adds nothing.
    let data = r#"{"approved": true, "by": "ann"}"#;
    for _ in 0..2 {
        let (code, out, err) = flow(
            &dir,
            &[
                "signal", &id, "decision", "--data", data, "--id", "ann-1", "--store", "flow.db",
                "--format", "json",
            ],
            "",
        );
        assert_eq!(code, 0, "{err}");
        let sent: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(sent["seq"], 1, "{out}");
    }

    let (code, out, err) = flow(&dir, &["resume", &id, "-q", "--store", "flow.db"], "");
    assert_eq!(code, 0, "{err}");
    let resumed: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(resumed["status"], "completed", "{out}");
    assert_eq!(resumed["output"], "approved by ann");
    // An ended run takes no more signals.
    let (code, _, err) = flow(
        &dir,
        &[
            "signal", &id, "decision", "--data", data, "--store", "flow.db",
        ],
        "",
    );
    assert_eq!(code, 1);
    assert!(err.contains("has ended"), "{err}");
}

#[test]
fn signals_that_arrive_before_the_wait_are_taken_in_order() {
    let dir = setup("signal-order");
    let child = start_run(&dir, "two_in_order", "{}");
    let mut id = String::new();
    wait_until("the run exists", || match newest(&dir, "two_in_order") {
        Some((run, _)) => {
            id = run;
            true
        }
        None => false,
    });
    // The run is still in its `wait 1500ms`: both signals wait for it.
    for n in ["7", "8"] {
        let (code, _, err) = flow(
            &dir,
            &["signal", &id, "n", "--data", n, "--store", "flow.db"],
            "",
        );
        assert_eq!(code, 0, "{err}");
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let output = std::fs::read_to_string(dir.join("two_in_order.out")).unwrap();
    let value: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(value, serde_json::json!([7, 8]));
}

#[test]
fn a_wait_that_times_out_fails_with_kind_timeout() {
    let dir = setup("signal-timeout");
    let (code, out, err) = flow(
        &dir,
        &[
            "run",
            "app.flow",
            "--workflow",
            "impatient",
            "-q",
            "--store",
            "flow.db",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), r#""gave up: timeout""#);
}

#[test]
fn the_run_api_takes_signals_checked_against_their_type() {
    let dir = setup("signal-api");
    let (code, key, err) = flow(
        &dir,
        &[
            "keys",
            "create",
            "--name",
            "ops",
            "--scope",
            "runs:write",
            "--store",
            "flow.db",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let (_, reader, _) = flow(
        &dir,
        &[
            "keys",
            "create",
            "--name",
            "eyes",
            "--scope",
            "runs:read",
            "--store",
            "flow.db",
        ],
        "",
    );
    let (key, reader) = (key.trim().to_owned(), reader.trim().to_owned());
    let server = Server::start(&dir, &[]);
    let c = client();
    let started = c.send(
        "POST",
        &server.url("/api/v1/workflows/approve/runs"),
        Some(&key),
        &[],
        Some(br#"{"amount": 9}"#.to_vec()),
    );
    assert_eq!(started.status, 202, "{}", started.text);
    let id = started.json()["run"].as_str().unwrap().to_owned();
    let send = |name: &str, body: &str, key: &str, headers: &[(&str, &str)]| {
        c.send(
            "POST",
            &server.url(&format!("/api/v1/runs/{id}/signals/{name}")),
            Some(key),
            headers,
            Some(body.as_bytes().to_vec()),
        )
    };
    wait_until("the run waits", || {
        let run = c
            .send(
                "GET",
                &server.url(&format!("/api/v1/runs/{id}")),
                Some(&key),
                &[],
                None,
            )
            .json();
        run["steps"][0]["waiting_for"] == "decision"
    });
    let r = send("decision", r#"{"approved": true}"#, &key, &[]);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json()["error"]["code"], "invalid_body");
    assert_eq!(r.json()["error"]["path"], "data.by");
    let r = send("nope", "{}", &key, &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "no_such_signal");
    assert_eq!(send("decision", "{}", &reader, &[]).status, 403);
    let body = r#"{"approved": false, "by": "bob", "note": "too much"}"#;
    let r = send("decision", body, &key, &[("Idempotency-Key", "bob-1")]);
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json()["duplicate"], false);
    let again = send("decision", body, &key, &[("Idempotency-Key", "bob-1")]);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(again.json()["seq"], r.json()["seq"]);
    let mut run = serde_json::Value::Null;
    wait_until("the run ends", || {
        run = c
            .send(
                "GET",
                &server.url(&format!("/api/v1/runs/{id}")),
                Some(&key),
                &[],
                None,
            )
            .json();
        run["status"] == "completed"
    });
    assert_eq!(run["output"], "rejected by bob");
    let r = send("decision", body, &key, &[]);
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["code"], "run_ended");

    // A waiting run can be cancelled; then it takes no signal.
    let other = c.send(
        "POST",
        &server.url("/api/v1/workflows/approve/runs"),
        Some(&key),
        &[],
        Some(br#"{"amount": 3}"#.to_vec()),
    );
    let other = other.json()["run"].as_str().unwrap().to_owned();
    let status = |id: &str| {
        c.send(
            "GET",
            &server.url(&format!("/api/v1/runs/{id}")),
            Some(&key),
            &[],
            None,
        )
        .json()["status"]
            .clone()
    };
    wait_until("the second run waits", || status(&other) == "waiting");
    let cancelled = c.send(
        "POST",
        &server.url(&format!("/api/v1/runs/{other}/cancel")),
        Some(&key),
        &[],
        None,
    );
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    wait_until("the cancel", || status(&other) == "cancelled");
    let r = c.send(
        "POST",
        &server.url(&format!("/api/v1/runs/{other}/signals/decision")),
        Some(&key),
        &[],
        Some(body.as_bytes().to_vec()),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(server.stop(), 0);
}
