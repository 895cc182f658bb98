//! Actions that neither an emulator nor Prism can check (the OpenAPI documents available
//! predate them), against a local server answering with the examples of the vendors'
//! API references: Slack's write and lookup methods, Jira's enhanced search, Notion's
//! page creation, search and comments. Each test checks the request the driver sent and
//! the typed result it read.

mod common;

use std::sync::Arc;

use common::*;
use flow_connectors::Connection;
use serde_json::json;

#[tokio::test]
async fn slack_methods_match_the_api_reference() {
    let (url, seen) = server(Arc::new(|s: &Seen, _| {
        let path = s.uri.split('?').next().unwrap_or("");
        json_reply(200, match path {
            "/chat.postMessage" if s.body.contains("\"C0\"") => json!({"ok": false, "error": "channel_not_found"}),
            // Examples from api.slack.com/methods/*.
            "/chat.postMessage" => json!({"ok": true, "channel": "C123ABC456", "ts": "1503435956.000247", "message": {"text": "Here's a message for you", "username": "ecto1", "bot_id": "B123ABC456", "type": "message", "subtype": "bot_message", "ts": "1503435956.000247"}}),
            "/chat.update" => json!({"ok": true, "channel": "C123ABC456", "ts": "1401383885.000061", "text": "Updated text you carefully authored", "message": {"text": "Updated text you carefully authored", "user": "U34567890"}}),
            "/chat.delete" => json!({"ok": true, "channel": "C123ABC456", "ts": "1401383885.000061"}),
            "/chat.scheduleMessage" => json!({"ok": true, "channel": "C123ABC456", "scheduled_message_id": "Q1298393284", "post_at": 1562180400, "message": {"text": "Here's a message for you in the future", "type": "delayed_message"}}),
            "/reactions.add" => json!({"ok": true}),
            "/conversations.list" if !s.uri.contains("cursor=") => json!({"ok": true, "channels": [{"id": "C012AB3CD", "name": "general", "is_channel": true, "is_private": false, "is_archived": false, "is_member": true, "num_members": 4}], "response_metadata": {"next_cursor": "dGVhbTpDMDYxRkE1UEI="}}),
            "/conversations.list" => json!({"ok": true, "channels": [{"id": "C061EG9T2", "name": "random", "is_channel": true, "is_private": false, "is_archived": false, "is_member": true, "num_members": 4}], "response_metadata": {"next_cursor": ""}}),
            "/users.lookupByEmail" => json!({"ok": true, "user": {"id": "W012A3CDE", "team_id": "T012AB3C4", "name": "spengler", "deleted": false, "real_name": "Egon Spengler", "tz": "America/Los_Angeles", "profile": {"real_name": "Egon Spengler", "display_name": "spengler", "email": "spengler@ghostbusters.example.com"}, "is_bot": false}}),
            "/chat.getPermalink" => json!({"ok": true, "channel": "C1H9RESGA", "permalink": "https://ghostbusters.slack.com/archives/C1H9RESGA/p135854651500008"}),
            _ => json!({"ok": false, "error": "channel_not_found"}),
        })
    }))
    .await;
    let p = stdlib("slack");
    let (d, _) = driver(vec![
        Connection::new("slack", "ops")
            .with_secret("bot_token", "xoxb-fixture")
            .with_base_url(&url),
    ]);
    let posted = call(
        &d,
        &p,
        "slack.post_message",
        json!({"channel": "C123ABC456", "text": "Here's a message for you"}),
    )
    .await
    .unwrap();
    assert_eq!(
        posted.to_json(),
        json!({"channel": "C123ABC456", "ts": "1503435956.000247", "text": "Here's a message for you"})
    );
    let updated = call(&d, &p, "slack.update_message", json!({"channel": "C123ABC456", "ts": "1401383885.000061", "text": "Updated text you carefully authored"})).await.unwrap();
    assert_eq!(
        updated.to_json()["text"],
        "Updated text you carefully authored"
    );
    call(
        &d,
        &p,
        "slack.delete_message",
        json!({"channel": "C123ABC456", "ts": "1401383885.000061"}),
    )
    .await
    .unwrap();
    let scheduled = call(
        &d,
        &p,
        "slack.schedule_message",
        json!({"channel": "C123ABC456", "text": "later", "post_at": 1562180400}),
    )
    .await
    .unwrap();
    assert_eq!(scheduled.to_json()["scheduled_message_id"], "Q1298393284");
    call(
        &d,
        &p,
        "slack.add_reaction",
        json!({"channel": "C123ABC456", "timestamp": "1503435956.000247", "name": "thumbsup"}),
    )
    .await
    .unwrap();
    let channels = call(&d, &p, "slack.list_channels", json!({}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(
        channels
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["general", "random"]
    );
    let user = call(
        &d,
        &p,
        "slack.lookup_user_by_email",
        json!({"email": "spengler@ghostbusters.example.com"}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(user["profile"]["display_name"], "spengler");
    let link = call(
        &d,
        &p,
        "slack.get_permalink",
        json!({"channel": "C1H9RESGA", "message_ts": "p135854651500008"}),
    )
    .await
    .unwrap()
    .to_json();
    assert!(
        link["permalink"]
            .as_str()
            .unwrap()
            .starts_with("https://ghostbusters.slack.com/")
    );
    let e = call(
        &d,
        &p,
        "slack.post_message",
        json!({"channel": "C0", "text": "x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "slack.post_message: channel_not_found");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].header("authorization"), Some("Bearer xoxb-fixture"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen[0].body).unwrap(),
        json!({"channel": "C123ABC456", "text": "Here's a message for you", "reply_broadcast": false})
    );
    assert!(
        seen.iter()
            .any(|s| s.uri.contains("cursor=dGVhbTpDMDYxRkE1UEI%3D")),
        "the cursor is sent encoded"
    );
}

#[tokio::test]
async fn jira_enhanced_search_matches_the_api_reference() {
    let issue = |key: &str| {
        json!({"id": "10002", "key": key, "self": format!("https://your-domain.atlassian.net/rest/api/3/issue/{key}"), "fields": {
            "summary": "Broken login", "status": {"name": "To Do"}, "issuetype": {"name": "Bug"},
            "project": {"key": "ED", "name": "Edison Project"}, "priority": {"name": "High"},
            "assignee": null, "reporter": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"},
            "labels": ["triage"], "created": "2024-01-01T10:00:00.000+0000", "updated": "2024-01-02T10:00:00.000+0000",
            "description": {"type": "doc", "version": 1, "content": []}
        }})
    };
    let (url, seen) = server(Arc::new(move |s: &Seen, _| {
        if s.uri.contains("nextPageToken=") {
            json_reply(200, json!({"issues": [issue("ED-2")], "isLast": true}))
        } else {
            json_reply(
                200,
                json!({"issues": [issue("ED-1")], "nextPageToken": "CAEaAggD", "isLast": false}),
            )
        }
    }))
    .await;
    let p = stdlib("jira");
    let conn = Connection::new("jira", "ops")
        .with_setting("site", "your-domain")
        .with_setting("email", "mia@example.com")
        .with_secret("api_token", "jira-fixture")
        .with_base_url(&format!("{url}/rest/api/3"));
    let (d, _) = driver(vec![conn]);
    let found = call(&d, &p, "jira.search", json!({"jql": "project = ED"}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["ED-1", "ED-2"]
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen[0].uri.starts_with("/rest/api/3/search/jql?"),
        "{}",
        seen[0].uri
    );
    assert!(seen[0].uri.contains("jql=project%20%3D%20ED"));
    assert_eq!(
        seen[0].header("authorization"),
        Some("Basic bWlhQGV4YW1wbGUuY29tOmppcmEtZml4dHVyZQ==")
    );
}

#[tokio::test]
async fn notion_pages_search_and_comments_match_the_api_reference() {
    let page = json!({"object": "page", "id": "59833787-2cf9-4fdf-8782-e53db20768a5", "created_time": "2022-03-01T19:05:00.000Z",
        "last_edited_time": "2022-07-06T20:25:00.000Z", "archived": false, "url": "https://www.notion.so/Tuscan-kale-598337872cf94fdf8782e53db20768a5",
        "properties": {"Name": {"id": "title", "type": "title", "title": [{"plain_text": "Tuscan kale"}]}}});
    let page_for_server = page.clone();
    let (url, seen) = server(Arc::new(move |s: &Seen, _| match s.uri.as_str() {
        "/v1/pages" => json_reply(200, page_for_server.clone()),
        "/v1/search" => json_reply(200, json!({"object": "list", "results": [{"object": "page", "id": "59833787-2cf9-4fdf-8782-e53db20768a5", "url": "https://www.notion.so/Tuscan-kale-598337872cf94fdf8782e53db20768a5", "last_edited_time": "2022-07-06T20:25:00.000Z"}], "next_cursor": null, "has_more": false})),
        "/v1/comments" => json_reply(200, json!({"object": "comment", "id": "b52b8ed6-e029-4707-a671-832549c09de3", "discussion_id": "f1407351-36f5-4c49-a13c-49f8ba11776d", "created_time": "2022-07-15T20:53:00.000Z", "rich_text": [{"type": "text", "text": {"content": "Hello world"}, "plain_text": "Hello world"}]})),
        _ => json_reply(404, json!({"object": "error", "status": 404, "code": "object_not_found", "message": "Could not find page"})),
    }))
    .await;
    let p = stdlib("notion");
    let (d, _) = driver(vec![
        Connection::new("notion", "docs")
            .with_secret("token", "secret_fixture")
            .with_base_url(&format!("{url}/v1")),
    ]);
    let created = call(
        &d,
        &p,
        "notion.create_page",
        json!({"database_id": "d9824bdc-8445-4327-be8b-5b47500af6ce", "title": "Tuscan kale"}),
    )
    .await
    .unwrap();
    assert_eq!(created.to_json()["id"], page["id"]);
    call(&d, &p, "notion.create_database_page", json!({"database_id": "d9824bdc-8445-4327-be8b-5b47500af6ce", "properties": {"Name": {"title": [{"text": {"content": "Tuscan kale"}}]}}})).await.unwrap();
    let results = call(
        &d,
        &p,
        "notion.search",
        json!({"query": "kale", "object": "page"}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(results.as_array().unwrap().len(), 1);
    let comment = call(
        &d,
        &p,
        "notion.create_comment",
        json!({"page_id": "59833787-2cf9-4fdf-8782-e53db20768a5", "text": "Hello world"}),
    )
    .await
    .unwrap();
    assert_eq!(
        comment.to_json()["discussion_id"],
        "f1407351-36f5-4c49-a13c-49f8ba11776d"
    );
    let e = call(&d, &p, "notion.get_page", json!({"page_id": "missing"}))
        .await
        .unwrap_err();
    assert_eq!(e.message, "notion.get_page: HTTP 404: Could not find page");
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].header("notion-version"), Some("2022-06-28"));
    let search: serde_json::Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(
        search,
        json!({"query": "kale", "filter": {"property": "object", "value": "page"}, "page_size": 100})
    );
}
