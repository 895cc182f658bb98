//! The approval page end to end (examples/link_approval.flow under `flow serve`): a run
//! parks on `wait signal("decision")` after `approval.link` made a signed link; the page
//! behind it shows what is asked, refuses a changed link, and sends one answer (approve
//! or reject) that the run takes as its `approval.Decision`.

mod serve_support;

use flow_runtime::store::EventKind;
use flow_runtime::{Store, StoreOptions};
use serve_support::{Server, admin_key, client, scratch, wait_until};

fn status_and_output(server: &Server, key: &str, run: &str) -> (String, serde_json::Value) {
    let r = client()
        .send(
            "GET",
            &server.url(&format!("/api/v1/runs/{run}")),
            Some(key),
            &[],
            None,
        )
        .json();
    (
        r["status"].as_str().unwrap_or_default().to_owned(),
        r["output"].clone(),
    )
}

/// The link the run's `page` step made, read from its journal.
fn link_of(dir: &std::path::Path, run: &str) -> String {
    let store = Store::open(&dir.join("flow.db"), StoreOptions::default()).unwrap();
    let row = store.run_by_id(run).unwrap().unwrap();
    let made = store
        .events(row.key)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == EventKind::StepSucceeded && e.step.as_deref() == Some("page"))
        .expect("the page step succeeded");
    let result: serde_json::Value = serde_json::from_str(made.data.as_deref().unwrap()).unwrap();
    result["url"].as_str().unwrap().to_owned()
}

fn start(server: &Server, key: &str, id: &str) -> String {
    let a = client().send(
        "POST",
        &server.url("/api/v1/workflows/refund_approval/runs"),
        Some(key),
        &[],
        Some(
            format!(r#"{{"refund": {{"id": "{id}", "customer": "Ada", "amount": 900}}}}"#)
                .into_bytes(),
        ),
    );
    assert_eq!(a.status, 202, "{}", a.text);
    let run = a.json()["run"].as_str().unwrap().to_owned();
    wait_until("the run to wait for its decision", || {
        status_and_output(server, key, &run).0 == "waiting"
    });
    run
}

fn post(url: &str, form: &str) -> (u16, String) {
    let c = client();
    let a = c.send(
        "POST",
        url,
        None,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes().to_vec()),
    );
    (a.status, a.text)
}

#[test]
fn a_person_answers_through_the_signed_link_once() {
    let dir = scratch("approval-link");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/link_approval.flow"),
        dir.join("app.flow"),
    )
    .unwrap();
    let key = admin_key(&dir);
    let server = Server::start(&dir, &[]);

    let run = start(&server, &key, "R-7");
    let link = link_of(&dir, &run);
    assert!(
        link.starts_with(&format!("{}/approve/", server.base)),
        "{link}"
    );
    let c = client();
    let page = c.send("GET", &link, None, &[], None);
    assert_eq!(page.status, 200);
    assert!(
        page.text.contains("Refund 900 to Ada (R-7)?"),
        "{}",
        page.text
    );
    assert!(page.text.contains("id=\"approve\"") && page.text.contains("id=\"reject\""));

    // A changed link is refused, and so is an answer through it.
    let mut forged = link.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(c.send("GET", &forged, None, &[], None).status, 403);
    assert_eq!(post(&forged, "decision=approve&by=Mallory").0, 403);
    // An answer without a name is asked again; nothing is sent.
    assert_eq!(post(&link, "decision=approve&by=").0, 400);
    assert_eq!(status_and_output(&server, &key, &run).0, "waiting");

    let (status, text) = post(&link, "decision=approve&by=Grace&note=fine");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Approved"), "{text}");
    wait_until("the run to finish", || {
        status_and_output(&server, &key, &run).0 == "completed"
    });
    assert_eq!(
        status_and_output(&server, &key, &run).1,
        serde_json::json!("refunded, approved by Grace")
    );
    // The link takes one answer: a second changes nothing.
    let (status, text) = post(&link, "decision=reject&by=Mallory");
    assert!(status == 200 || status == 409, "{status} {text}");
    assert!(text.contains("Already"), "{text}");
    assert_eq!(
        status_and_output(&server, &key, &run).1,
        serde_json::json!("refunded, approved by Grace")
    );

    // A rejection reaches the run the same way.
    let run = start(&server, &key, "R-8");
    let (status, _) = post(&link_of(&dir, &run), "decision=reject&by=Ann");
    assert_eq!(status, 200);
    wait_until("the rejected run to finish", || {
        status_and_output(&server, &key, &run).0 == "completed"
    });
    assert_eq!(
        status_and_output(&server, &key, &run).1,
        serde_json::json!("declined by Ann")
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
