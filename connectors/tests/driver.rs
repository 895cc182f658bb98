//! The driver against a real local HTTP server: request building (path segments, query
//! and body with null fields left out), auth kinds, answer decoding and type checks,
//! `error_when`, every pagination kind, `Retry-After`, the circuit breaker, the result
//! cache, OAuth2 refresh with rotation, session sign-in, and credential confinement to
//! the base URL's origin.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use flow_connectors::Connection;
use flow_connectors::driver::DriverConfig;
use flow_connectors::policy::{BreakerConfig, State};
use flow_runtime::ErrorKind;
use serde_json::json;

const ACME: &str = r#"
/// A test API.
integration acme {
  base_url = "https://api.acme.example/v2"
  auth = bearer(secret("token"))
  headers = { "Acme-Version": "2024-01-01" }
  health = GET "/me"

  type Ticket = { id: string, title: string, priority: int? }

  /// Open a ticket.
  action create_ticket(queue: string, title: string, body: string? = null) -> Ticket {
    POST "/queues/${queue}/tickets"
    query { notify: true, tag: null }
    body json { title: title, body: body, meta: { source: "flow", note: null } }
    error_when response.body.ok == false => response.body.error
    result response.body.ticket
  }

  /// One ticket.
  idempotent action get_ticket(id: string) -> Ticket {
    GET "/tickets/${id}"
    result response.body
  }

  /// Tickets by cursor.
  idempotent action list_cursor(status: string = "open") -> list<Ticket> {
    GET "/tickets"
    query { status: status }
    paginate cursor(response.body.next, param: "cursor")
    result response.body.items
  }

  /// Tickets by Link header.
  idempotent action list_link() -> list<Ticket> {
    GET "/linked"
    paginate link()
    result response.body
  }

  /// Tickets by offset.
  idempotent action list_offset() -> list<Ticket> {
    GET "/offset"
    paginate offset(param: "offset", limit_param: "limit", size: 2)
    result response.body.items
  }

  /// Tickets by page.
  idempotent action list_page() -> list<Ticket> {
    GET "/paged"
    paginate page(param: "page", size_param: "per_page", size: 2)
    result response.body.items
  }

  /// Tickets by a cursor in the body.
  idempotent action search(q: string) -> list<Ticket> {
    POST "/search"
    body json { query: q }
    paginate cursor(response.body.next, body_param: "variables.after")
    result response.body.items
  }

  /// A form body.
  action form(email: string, tags: list<string>) -> dyn {
    POST "/form"
    body form { email: email, tags: tags, meta: { a: "1" } }
    result response.body
  }

  /// An XML answer read against a list.
  idempotent action xml_list() -> list<{ Name: string, Size: int }> {
    GET "/xml"
    result response.body.Root.Item
  }

  /// Plain text.
  action echo(text: string) -> string {
    POST "/echo"
    body text text
    result response.body
  }
}
"#;

fn acme_conn(base: &str) -> Connection {
    Connection::new("acme", "ops")
        .with_secret("token", "tok-canary-77")
        .with_base_url(base)
}

#[tokio::test]
async fn requests_are_built_from_the_declaration() {
    let (base, seen) = server(Arc::new(|s: &Seen, _| match s.uri.as_str() {
        u if u.starts_with("/queues/") => json_reply(
            201,
            json!({"ok": true, "ticket": {"id": "T1", "title": "Hi", "extra": 1}}),
        ),
        _ => json_reply(404, json!({"message": "no route"})),
    }))
    .await;
    let program = compile(ACME);
    let (driver, audit) = driver(vec![acme_conn(&base)]);
    let v = call(
        &driver,
        &program,
        "acme.create_ticket",
        json!({"queue": "a/b c?#", "title": "Hi"}),
    )
    .await
    .unwrap();
    assert_eq!(
        v.to_json(),
        json!({"id": "T1", "title": "Hi", "priority": null})
    );
    let s = seen.lock().unwrap()[0].clone();
    assert_eq!(s.method, "POST");
    assert_eq!(s.uri, "/queues/a%2Fb%20c%3F%23/tickets?notify=true");
    assert_eq!(s.header("authorization"), Some("Bearer tok-canary-77"));
    assert_eq!(s.header("acme-version"), Some("2024-01-01"));
    assert_eq!(s.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    assert_eq!(body, json!({"title": "Hi", "meta": {"source": "flow"}}));
    let log = audit.audit_log.lock().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(&*log[0].purpose, "acme.create_ticket");
    assert_eq!(log[0].run_id.as_deref(), Some("run-1"));
    assert_eq!(log[0].outcome, "ok");
}

#[tokio::test]
async fn errors_carry_the_status_the_api_message_and_never_the_secret() {
    let (base, _) = server(Arc::new(|s: &Seen, _| match s.uri.as_str() {
        "/tickets/gone" => json_reply(404, json!({"message": "ticket gone (token tok-canary-77)"})),
        "/tickets/bad" => json_reply(200, json!({"id": 7, "title": "x"})),
        "/tickets/denied" => json_reply(401, json!({"error": "invalid token"})),
        u if u.starts_with("/queues/") => {
            json_reply(200, json!({"ok": false, "error": "queue_archived"}))
        }
        _ => json_reply(500, json!({})),
    }))
    .await;
    let program = compile(ACME);
    let (driver, _) = driver(vec![acme_conn(&base)]);
    let e = call(&driver, &program, "acme.get_ticket", json!({"id": "gone"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Communication);
    assert_eq!(e.status, Some(404));
    assert_eq!(
        e.message,
        "acme.get_ticket: HTTP 404: ticket gone (token ****)"
    );
    assert!(!e.details.to_string().contains("canary"));
    let e = call(&driver, &program, "acme.get_ticket", json!({"id": "bad"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Validation);
    assert!(
        e.message
            .contains("result.id: expected string, found number"),
        "{}",
        e.message
    );
    assert_eq!(e.details["path"], "result.id");
    let e = call(
        &driver,
        &program,
        "acme.get_ticket",
        json!({"id": "denied"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Authentication);
    let e = call(
        &driver,
        &program,
        "acme.create_ticket",
        json!({"queue": "q", "title": "t"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.message, "acme.create_ticket: queue_archived");
    assert_eq!(e.status, Some(200));
}

#[tokio::test]
async fn every_pagination_kind_fetches_every_page() {
    let base_cell: Arc<std::sync::OnceLock<String>> = Arc::default();
    let cell = Arc::clone(&base_cell);
    let (base, seen) = server(Arc::new(move |s: &Seen, _| {
        let t = |id: &str| json!({"id": id, "title": id});
        let base = cell.get().cloned().unwrap_or_default();
        match s.uri.as_str() {
            "/tickets?status=open" => json_reply(200, json!({"items": [t("a"), t("b")], "next": "c2"})),
            "/tickets?status=open&cursor=c2" => json_reply(200, json!({"items": [t("c")], "next": null})),
            "/linked" => (200, vec![("content-type", "application/json".into()), ("link", format!("<{base}/linked?page=2>; rel=\"next\", <{base}/linked?page=2>; rel=\"last\""))], json!([t("l1")]).to_string()),
            "/linked?page=2" => json_reply(200, json!([t("l2")])),
            "/offset?offset=0&limit=2" => json_reply(200, json!({"items": [t("o1"), t("o2")]})),
            "/offset?offset=2&limit=2" => json_reply(200, json!({"items": [t("o3")]})),
            "/paged?page=1&per_page=2" => json_reply(200, json!({"items": [t("p1"), t("p2")]})),
            "/paged?page=2&per_page=2" => json_reply(200, json!({"items": []})),
            "/search" if s.body.contains("after") => json_reply(200, json!({"items": [t("s2")]})),
            "/search" => json_reply(200, json!({"items": [t("s1")], "next": "x9"})),
            other => json_reply(404, json!({"message": format!("unexpected {other}")})),
        }
    }))
    .await;
    base_cell.set(base.clone()).unwrap();
    let program = compile(ACME);
    let (driver, _) = driver(vec![acme_conn(&base)]);
    let ids = |v: flow_expr::Value| -> Vec<String> {
        v.to_json()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(call(&driver, &program, "acme.list_cursor", json!({}))
            .await
            .unwrap()),
        ["a", "b", "c"]
    );
    assert_eq!(
        ids(call(&driver, &program, "acme.list_link", json!({}))
            .await
            .unwrap()),
        ["l1", "l2"]
    );
    assert_eq!(
        ids(call(&driver, &program, "acme.list_offset", json!({}))
            .await
            .unwrap()),
        ["o1", "o2", "o3"]
    );
    assert_eq!(
        ids(call(&driver, &program, "acme.list_page", json!({}))
            .await
            .unwrap()),
        ["p1", "p2"]
    );
    assert_eq!(
        ids(call(&driver, &program, "acme.search", json!({"q": "x"}))
            .await
            .unwrap()),
        ["s1", "s2"]
    );
    let bodies: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.uri == "/search")
        .map(|s| s.body.clone())
        .collect();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&bodies[1]).unwrap(),
        json!({"query": "x", "variables": {"after": "x9"}})
    );
}

#[tokio::test]
async fn the_page_cap_stops_a_runaway_listing() {
    let (base, _) = server(Arc::new(|_: &Seen, n| {
        json_reply(
            200,
            json!({"items": [{"id": "x", "title": "x"}], "next": format!("c{n}")}),
        )
    }))
    .await;
    let program = compile(ACME);
    let config = DriverConfig {
        page_cap: 5,
        ..DriverConfig::default()
    };
    let (driver, _) = driver_with(vec![acme_conn(&base)], config);
    let e = call(&driver, &program, "acme.list_cursor", json!({}))
        .await
        .unwrap_err();
    assert!(e.message.contains("stopped after 5 pages"), "{}", e.message);
}

#[tokio::test]
async fn bodies_and_answers_in_every_encoding() {
    let (base, seen) = server(Arc::new(|s: &Seen, _| match s.uri.as_str() {
        "/form" => json_reply(200, json!({"ok": true})),
        "/xml" => (
            200,
            vec![("content-type", "application/xml".into())],
            "<Root><Item><Name>a</Name><Size>3</Size></Item></Root>".into(),
        ),
        "/echo" => (
            200,
            vec![("content-type", "text/plain".into())],
            format!("echo: {}", s.body),
        ),
        _ => json_reply(404, json!({})),
    }))
    .await;
    let program = compile(ACME);
    let (driver, _) = driver(vec![acme_conn(&base)]);
    call(
        &driver,
        &program,
        "acme.form",
        json!({"email": "a@b.c", "tags": ["x", "y"]}),
    )
    .await
    .unwrap();
    let xml = call(&driver, &program, "acme.xml_list", json!({}))
        .await
        .unwrap();
    assert_eq!(xml.to_json(), json!([{"Name": "a", "Size": 3}]));
    let echo = call(&driver, &program, "acme.echo", json!({"text": "hé"}))
        .await
        .unwrap();
    assert_eq!(echo.to_json(), json!("echo: hé"));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        seen[0].body,
        "email=a%40b.c&meta%5Ba%5D=1&tags%5B0%5D=x&tags%5B1%5D=y"
    );
    assert_eq!(
        seen[2].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test]
async fn retry_after_is_waited_out_and_longer_waits_go_to_the_executor() {
    let (base, seen) = server(Arc::new(|s: &Seen, n| match (s.uri.as_str(), n) {
        ("/tickets/slow", 0) => (429, vec![("retry-after", "1".into())], String::new()),
        ("/tickets/slow", _) => json_reply(200, json!({"id": "s", "title": "t"})),
        ("/tickets/later", _) => (503, vec![("retry-after", "3600".into())], String::new()),
        _ => json_reply(404, json!({})),
    }))
    .await;
    let program = compile(ACME);
    let (driver, _) = driver(vec![acme_conn(&base)]);
    let v = call(&driver, &program, "acme.get_ticket", json!({"id": "slow"}))
        .await
        .unwrap();
    assert_eq!(v.to_json()["id"], "s");
    assert_eq!(seen.lock().unwrap().len(), 2);
    let e = call(&driver, &program, "acme.get_ticket", json!({"id": "later"}))
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(503));
    assert_eq!(e.retry_after, Some(Duration::from_secs(3600)));
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_refuses_calls() {
    let (base, seen) = server(Arc::new(|_: &Seen, _| {
        json_reply(502, json!({"message": "bad gateway"}))
    }))
    .await;
    let program = compile(ACME);
    let config = DriverConfig {
        breaker: BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_secs(60),
        },
        ..DriverConfig::default()
    };
    let (driver, source) = driver_with(vec![acme_conn(&base)], config);
    for _ in 0..3 {
        let e = call(&driver, &program, "acme.get_ticket", json!({"id": "x"}))
            .await
            .unwrap_err();
        assert_eq!(e.status, Some(502));
    }
    assert_eq!(driver.circuit("acme", "ops"), State::Open);
    let e = call(&driver, &program, "acme.get_ticket", json!({"id": "x"}))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("circuit for acme (ops) is open"),
        "{}",
        e.message
    );
    assert!(e.retry_after.is_some());
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "an open circuit sends nothing"
    );
    let log = source.breaker_log.lock().unwrap();
    assert_eq!(log.last().unwrap().2.state, "open");
}

#[tokio::test]
async fn cached_results_of_idempotent_actions_are_reused() {
    let (base, seen) = server(Arc::new(|_: &Seen, n| {
        json_reply(200, json!({"id": format!("v{n}"), "title": "t"}))
    }))
    .await;
    let program = compile(ACME);
    let (driver, _) = driver(vec![acme_conn(&base)]);
    let mut c = ctx();
    c.cache = Some(Duration::from_secs(60));
    let a = call_with(&driver, &program, "acme.get_ticket", json!({"id": "1"}), &c)
        .await
        .unwrap();
    let b = call_with(&driver, &program, "acme.get_ticket", json!({"id": "1"}), &c)
        .await
        .unwrap();
    let other = call_with(&driver, &program, "acme.get_ticket", json!({"id": "2"}), &c)
        .await
        .unwrap();
    assert_eq!(a.to_json(), b.to_json());
    assert_ne!(a.to_json(), other.to_json());
    assert_eq!(seen.lock().unwrap().len(), 2);
}

const AUTHS: &str = r#"
integration keyed {
  base_url = "https://keyed.example"
  auth = api_key(query: "key", value: secret("key"))
  health = GET "/ping"
  /// Items.
  idempotent action items() -> dyn {
    GET "/items?fixed=1"
    result response.body
  }
}

integration oauthy {
  base_url = "https://oauthy.example"
  auth = oauth2(token_url: "https://oauthy.example/token", client_id: setting("client_id"), client_secret: secret("client_secret"), refresh: true)
  health = GET "/me"
  /// Me.
  idempotent action me() -> dyn {
    GET "/me"
    result response.body
  }
}

integration sessiony {
  base_url = "https://sessiony.example/api"
  auth = session(url: "https://sessiony.example/api/signin", body: { name: setting("user"), secret: secret("password") }, token: response.body.credentials.token, header: "X-Session", ttl: 1h)
  health = GET "/me"
  /// Me.
  idempotent action me() -> dyn {
    GET "/me"
    result response.body
  }
}
"#;

#[tokio::test]
async fn api_key_oauth2_and_session_auth() {
    let (base, seen) = server(Arc::new(|s: &Seen, _| match s.uri.as_str() {
        "/items?fixed=1&key=k%2B1" => json_reply(200, json!(["ok"])),
        "/token" if s.body.contains("refresh_token=r1") => json_reply(
            200,
            json!({"access_token": "a1", "expires_in": 3600, "refresh_token": "r2"}),
        ),
        "/me" if s.header("authorization") == Some("Bearer a1") => {
            json_reply(200, json!({"me": "oauth"}))
        }
        "/api/signin" if s.body.contains("\"secret\":\"pw\"") => {
            json_reply(200, json!({"credentials": {"token": "sess-1"}}))
        }
        "/api/me" if s.header("x-session") == Some("sess-1") => {
            json_reply(200, json!({"me": "session"}))
        }
        other => json_reply(401, json!({"message": format!("unexpected {other}")})),
    }))
    .await;
    let program = compile(AUTHS);
    let (driver, source) = driver(vec![
        Connection::new("keyed", "ops")
            .with_secret("key", "k+1")
            .with_base_url(&base),
        Connection::new("oauthy", "ops")
            .with_setting("client_id", "cid")
            .with_setting("token_url", &format!("{base}/token"))
            .with_secret("client_secret", "cs")
            .with_secret("refresh_token", "r1")
            .with_base_url(&base),
        Connection::new("sessiony", "ops")
            .with_setting("user", "ada")
            .with_secret("password", "pw")
            .with_base_url(&format!("{base}/api")),
    ]);
    assert_eq!(
        call(&driver, &program, "keyed.items", json!({}))
            .await
            .unwrap()
            .to_json(),
        json!(["ok"])
    );
    assert_eq!(
        call(&driver, &program, "oauthy.me", json!({}))
            .await
            .unwrap()
            .to_json(),
        json!({"me": "oauth"})
    );
    // The rotated refresh token was stored.
    let conn = flow_connectors::Connections::load(&*source, "oauthy", Some("ops")).unwrap();
    assert_eq!(conn.secret_text("refresh_token").as_deref(), Some("r2"));
    assert_eq!(
        call(&driver, &program, "sessiony.me", json!({}))
            .await
            .unwrap()
            .to_json(),
        json!({"me": "session"})
    );
    // A second call reuses the session: one sign-in only.
    call(&driver, &program, "sessiony.me", json!({}))
        .await
        .unwrap();
    let signins = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.uri == "/api/signin")
        .count();
    assert_eq!(signins, 1);
    let token_body = &seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.uri == "/token")
        .unwrap()
        .body
        .clone();
    assert!(
        token_body.contains("grant_type=refresh_token") && token_body.contains("client_id=cid")
    );
}

#[tokio::test]
async fn credentials_go_only_to_the_base_urls_origin() {
    let (other, other_seen) = server(Arc::new(|_: &Seen, _| {
        json_reply(200, json!([{"id": "z", "title": "z"}]))
    }))
    .await;
    let link = format!("{other}/elsewhere");
    let (base, _) = server(Arc::new(move |s: &Seen, _| match s.uri.as_str() {
        "/linked" => (
            200,
            vec![
                ("content-type", "application/json".into()),
                ("link", format!("<{link}>; rel=\"next\"")),
            ],
            json!([{"id": "a", "title": "a"}]).to_string(),
        ),
        _ => json_reply(404, json!({})),
    }))
    .await;
    let program = compile(ACME);
    let (driver, _) = driver(vec![acme_conn(&base)]);
    let v = call(&driver, &program, "acme.list_link", json!({}))
        .await
        .unwrap();
    assert_eq!(v.to_json().as_array().unwrap().len(), 2);
    let s = other_seen.lock().unwrap()[0].clone();
    assert_eq!(s.header("authorization"), None);
    assert_eq!(s.header("acme-version"), None);
}

#[tokio::test]
async fn health_probes_the_declared_endpoint() {
    let (base, seen) = server(Arc::new(|s: &Seen, _| match s.uri.as_str() {
        "/me" => json_reply(200, json!({"ok": true})),
        _ => json_reply(404, json!({})),
    }))
    .await;
    let program = compile(ACME);
    let (driver, _) = driver(vec![]);
    driver.probe(&program, 0, &acme_conn(&base)).await.unwrap();
    assert_eq!(
        seen.lock().unwrap()[0].header("authorization"),
        Some("Bearer tok-canary-77")
    );
    let e = driver
        .probe(&program, 0, &acme_conn("http://127.0.0.1:9"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Communication);
}

#[tokio::test]
async fn a_missing_connection_is_an_authentication_error() {
    let program = compile(ACME);
    let (driver, _) = driver(vec![]);
    let e = call(&driver, &program, "acme.get_ticket", json!({"id": "1"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Authentication);
    assert!(
        e.message.contains("flow connect acme --owner"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_connection_sets_its_own_breaker_thresholds() {
    let (base, seen) = server(Arc::new(|_: &Seen, _| {
        json_reply(500, json!({"message": "down"}))
    }))
    .await;
    let program = compile(ACME);
    let conn = acme_conn(&base)
        .with_setting("breaker_failures", "1")
        .with_setting("breaker_open_for", "10m");
    let (driver, _) = driver(vec![conn]);
    call(&driver, &program, "acme.get_ticket", json!({"id": "x"}))
        .await
        .unwrap_err();
    let e = call(&driver, &program, "acme.get_ticket", json!({"id": "x"}))
        .await
        .unwrap_err();
    assert!(e.message.contains("is open"), "{}", e.message);
    assert!(e.retry_after.unwrap() > Duration::from_secs(500));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_bearer_header_is_derived_once_per_connection_and_again_after_rotation() {
    use flow_connectors::Connections;
    let (base, seen) = server(Arc::new(|s: &Seen, _| match s.uri.as_str() {
        u if u.starts_with("/tickets/") => json_reply(200, json!({"id": "T1", "title": "Hi"})),
        _ => json_reply(404, json!({"message": "no route"})),
    }))
    .await;
    let program = compile(ACME);
    let (driver, source) = driver(vec![acme_conn(&base)]);
    for _ in 0..3 {
        call(&driver, &program, "acme.get_ticket", json!({"id": "T1"}))
            .await
            .unwrap();
    }
    source
        .update_secrets(
            "acme",
            "ops",
            vec![("token".into(), "tok-rotated-88".into())],
        )
        .unwrap();
    call(&driver, &program, "acme.get_ticket", json!({"id": "T1"}))
        .await
        .unwrap();
    let sent: Vec<Option<String>> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        sent,
        [
            Some("Bearer tok-canary-77".to_owned()),
            Some("Bearer tok-canary-77".to_owned()),
            Some("Bearer tok-canary-77".to_owned()),
            Some("Bearer tok-rotated-88".to_owned()),
        ]
    );
}
