//! Webhook deliveries of standard-library events, end to end through `events::deliver`:
//! signature verification, several events sharing one path told apart by `when`, the
//! subscription's arguments, typed results, and Slack's `url_verification` challenge.

mod common;

use common::stdlib;
use flow_connectors::Connection;
use flow_connectors::events::{Delivery, EventError, Outcome, Subscription, deliver};
use flow_connectors::sigv4::{hex, hmac};
use flow_expr::Value;
use serde_json::json;

fn event_index(p: &flow_ir::program::Program, name: &str) -> usize {
    p.integrations[0]
        .events
        .iter()
        .position(|e| e.name == name)
        .unwrap()
}

fn github_issue_payload() -> String {
    json!({
        "action": "labeled",
        "issue": {"id": 1, "number": 7, "title": "Broken", "body": null, "state": "open", "state_reason": null,
                  "html_url": "https://github.com/o/r/issues/7", "user": {"login": "ada", "id": 2, "html_url": "https://github.com/ada"},
                  "labels": [{"id": 3, "name": "bug", "color": "d73a4a", "description": null}], "assignees": [], "comments": 0,
                  "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "closed_at": null},
        "label": {"id": 3, "name": "bug", "color": "d73a4a", "description": null},
        "repository": {"id": 4, "name": "r", "full_name": "o/r", "html_url": "https://github.com/o/r", "owner": {"login": "o"}},
        "sender": {"login": "ada"}
    })
    .to_string()
}

#[test]
fn a_signed_github_delivery_matches_the_subscribed_event_only() {
    let p = stdlib("github");
    let integ = &p.integrations[0];
    let conn = Connection::new("github", "ci").with_secret("webhook_secret", "whsec-gh");
    let body = github_issue_payload();
    let signature = format!("sha256={}", hex(&hmac(b"whsec-gh", body.as_bytes())));
    let delivery = Delivery::new(
        &[
            ("X-GitHub-Event", "issues"),
            ("X-Hub-Signature-256", &signature),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
        0,
    );
    let subs = [
        Subscription {
            event: event_index(&p, "issue"),
            args: vec![Some(Value::string("labeled")), Some(Value::string("bug"))],
        },
        Subscription {
            event: event_index(&p, "issue_comment"),
            args: vec![None],
        },
        Subscription {
            event: event_index(&p, "issue"),
            args: vec![Some(Value::string("closed")), None],
        },
    ];
    let Outcome::Events(matched) =
        deliver(integ, "/github/events", &delivery, &conn, &subs).unwrap()
    else {
        panic!("not an event delivery")
    };
    assert_eq!(matched.len(), 1);
    let (index, value) = &matched[0];
    assert_eq!(*index, event_index(&p, "issue"));
    let v = value.to_json();
    assert_eq!(v["issue"]["number"], 7);
    assert_eq!(v["label"]["name"], "bug");

    // A wrong signature is refused before anything is matched.
    let forged = Delivery::new(
        &[
            ("X-GitHub-Event", "issues"),
            ("X-Hub-Signature-256", "sha256=00"),
        ],
        body.as_bytes(),
        0,
    );
    assert_eq!(
        deliver(integ, "/github/events", &forged, &conn, &subs).unwrap_err(),
        EventError::BadSignature
    );
    // Another path matches nothing.
    let Outcome::Events(none) = deliver(integ, "/elsewhere", &delivery, &conn, &subs).unwrap()
    else {
        panic!()
    };
    assert!(none.is_empty());
}

#[test]
fn slack_challenges_are_answered_and_messages_typed() {
    let p = stdlib("slack");
    let integ = &p.integrations[0];
    let conn = Connection::new("slack", "ops")
        .with_secret("signing_secret", "8f742231b10e8888abcd99yyyzzz85a5");
    let sign = |body: &str, ts: i64| {
        format!(
            "v0={}",
            hex(&hmac(
                b"8f742231b10e8888abcd99yyyzzz85a5",
                format!("v0:{ts}:{body}").as_bytes()
            ))
        )
    };
    let subs = [Subscription {
        event: event_index(&p, "message"),
        args: vec![Some(Value::string("C1")), None],
    }];
    let challenge = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = 1_700_000_000;
    let d = Delivery::new(
        &[
            ("X-Slack-Request-Timestamp", &ts.to_string()),
            ("X-Slack-Signature", &sign(challenge, ts)),
        ],
        challenge.as_bytes(),
        ts,
    );
    match deliver(integ, "/slack/events", &d, &conn, &subs).unwrap() {
        Outcome::Challenge(c) => {
            assert_eq!(c, "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
        }
        other => panic!("{other:?}"),
    }
    let message = json!({"type": "event_callback", "event": {"type": "message", "channel": "C1", "user": "U1", "text": "hello", "ts": "1700000000.000100", "channel_type": "channel"}}).to_string();
    let d = Delivery::new(
        &[
            ("X-Slack-Request-Timestamp", &ts.to_string()),
            ("X-Slack-Signature", &sign(&message, ts)),
        ],
        message.as_bytes(),
        ts + 5,
    );
    let Outcome::Events(matched) = deliver(integ, "/slack/events", &d, &conn, &subs).unwrap()
    else {
        panic!()
    };
    assert_eq!(matched.len(), 1);
    assert_eq!(matched[0].1.to_json()["text"], "hello");
    // The same delivery replayed ten minutes later is refused.
    let late = Delivery::new(
        &[
            ("X-Slack-Request-Timestamp", &ts.to_string()),
            ("X-Slack-Signature", &sign(&message, ts)),
        ],
        message.as_bytes(),
        ts + 600,
    );
    assert!(matches!(
        deliver(integ, "/slack/events", &late, &conn, &subs),
        Err(EventError::Stale(_))
    ));
}

/// While a secret is rotated, the connection holds the new and the old one separated by a
/// space; a delivery signed with either passes, one signed with neither does not.
#[test]
fn a_delivery_signed_with_any_current_secret_passes() {
    let p = stdlib("github");
    let integ = &p.integrations[0];
    let conn = Connection::new("github", "ci").with_secret("webhook_secret", "whsec-new whsec-old");
    let body = github_issue_payload();
    let subs = [Subscription {
        event: event_index(&p, "issue"),
        args: vec![None, None],
    }];
    for (secret, ok) in [
        (&b"whsec-new"[..], true),
        (b"whsec-old", true),
        (b"whsec-other", false),
    ] {
        let signature = format!("sha256={}", hex(&hmac(secret, body.as_bytes())));
        let delivery = Delivery::new(
            &[
                ("X-GitHub-Event", "issues"),
                ("X-Hub-Signature-256", &signature),
            ],
            body.as_bytes(),
            0,
        );
        let result = deliver(integ, "/github/events", &delivery, &conn, &subs);
        assert_eq!(result.is_ok(), ok, "{:?}", result.err());
    }
}
