//! The dashboard over HTTP (its behaviour in a real browser is scripts/test.d/dashboard.sh):
//! signing in and out, sessions that end with their key, CSRF and origin checks on every
//! action, scopes (a read-only key sees no action and is refused one), every page
//! answering HTML with its security headers, live journal streams, and a canary secret
//! stored in a connection appearing in no page.

mod serve_support;

use std::time::Duration;

use serve_support::{Server, admin_key, flow, scratch, wait_until};

const CANARY: &str = "xoxb-CANARY-dashboard-5e1f";

struct Browser {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    content_type: String,
    csp: Option<String>,
    body: String,
}

impl Browser {
    fn new(server: &Server) -> Browser {
        Browser {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            base: server.base.clone(),
            cookie: None,
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        form: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("flow_session={c}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(f) = form {
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .body(f.to_owned());
        }
        self.rt.block_on(async {
            let r = req.send().await.unwrap();
            let h = |name: &str| {
                r.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (location, set_cookie, csp) =
                (h("location"), h("set-cookie"), h("content-security-policy"));
            let content_type = h("content-type").unwrap_or_default();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            Page {
                status,
                location,
                set_cookie,
                content_type,
                csp,
                body,
            }
        })
    }

    fn get(&self, path: &str) -> Page {
        self.request("GET", path, None, &[])
    }

    fn sign_in(&mut self, key: &str) -> Page {
        let p = self.request("POST", "/ui/login", Some(&format!("key={key}")), &[]);
        if let Some(c) = &p.set_cookie {
            let token = c
                .split(';')
                .next()
                .and_then(|kv| kv.strip_prefix("flow_session="))
                .unwrap();
            self.cookie = Some(token.to_owned());
        }
        p
    }

    /// The CSRF token of the signed-in session, as the pages carry it.
    fn csrf(&self) -> String {
        let page = self.get("/ui/runs").body;
        let at = page
            .find("name=\"_csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 20;
        page[at..at + 64].to_owned()
    }
}

const PROGRAM: &str = r##"
import slack

/// Greets quickly.
workflow greet(name: string) -> string {
  return "hello " + name
}

workflow parked(n: int) -> int {
  wait 1h
  return n
}

workflow broken(n: int) -> int {
  step r = http.get(url: "http://127.0.0.1:1/nothing-listens-here")
  return n
}

workflow announce(text: string) -> string {
  step sent = slack.post_message(channel: "#general", text: text)
  return sent.ts
}
"##;

fn key(dir: &std::path::Path, name: &str, scope: &str) -> String {
    let (code, key, err) = flow(
        dir,
        &[
            "keys", "create", "--name", name, "--scope", scope, "--store", "flow.db",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    key.trim().to_owned()
}

fn start_run(server: &Server, key: &str, workflow: &str, input: &str) -> String {
    let c = serve_support::client();
    let a = c.send(
        "POST",
        &server.url(&format!("/api/v1/workflows/{workflow}/runs")),
        Some(key),
        &[("content-type", "application/json")],
        Some(input.as_bytes().to_vec()),
    );
    assert_eq!(a.status, 202, "{}", a.text);
    a.json()["run"].as_str().unwrap().to_owned()
}

fn status_of(server: &Server, key: &str, run: &str) -> String {
    let c = serve_support::client();
    c.send(
        "GET",
        &server.url(&format!("/api/v1/runs/{run}")),
        Some(key),
        &[],
        None,
    )
    .json()["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_dashboard_signs_in_checks_every_action_and_never_shows_a_secret() {
    let dir = scratch("dashboard");
    std::fs::write(dir.join("app.flow"), PROGRAM).unwrap();
    let admin = admin_key(&dir);
    let reader = key(&dir, "reader", "runs:read");
    let (code, _, err) = flow(
        &dir,
        &[
            "connect",
            "slack",
            "--owner",
            "default",
            "--secret",
            "bot_token",
            "--secret",
            "signing_secret",
            "--base-url",
            "http://127.0.0.1:1",
            "--store",
            "flow.db",
        ],
        &format!("{CANARY}\n{CANARY}-signing\n"),
    );
    assert_eq!(code, 0, "{err}");
    let server = Server::start(&dir, &[]);
    let done = start_run(&server, &admin, "greet", r#"{"name": "ann"}"#);
    let parked = start_run(&server, &admin, "parked", r#"{"n": 1}"#);
    let broken = start_run(&server, &admin, "broken", r#"{"n": 1}"#);
    wait_until("the runs to settle", || {
        status_of(&server, &admin, &done) == "completed"
            && status_of(&server, &admin, &parked) == "waiting"
            && status_of(&server, &admin, &broken) == "failed"
    });

    let mut b = Browser::new(&server);
    // Without a session, a page sends to the sign-in form and remembers where to return.
    let p = b.get("/ui/runs?status=failed");
    assert!(p.status == 303 || p.status == 307, "{}", p.status);
    assert_eq!(
        p.location.as_deref(),
        Some("/ui/login?next=%2Fui%2Fruns%3Fstatus%3Dfailed")
    );
    let p = b.get("/ui/login");
    assert_eq!(p.status, 200);
    assert!(p.body.contains("id=\"login\""));
    // A wrong key is refused with a message and no cookie.
    let p = b.sign_in("flow_sk_0000");
    assert_eq!(p.status, 401);
    assert!(p.body.contains("class=\"error\""), "{}", p.body);
    assert!(p.set_cookie.is_none());
    // A right one opens a session in an HttpOnly, SameSite=Strict cookie.
    let p = b.sign_in(&admin);
    assert_eq!(p.status, 303);
    assert_eq!(p.location.as_deref(), Some("/ui/"));
    let cookie = p.set_cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // Every page answers HTML with a strict content security policy.
    let pages = [
        "/ui/".to_owned(),
        "/ui/?window=day".into(),
        "/ui/?window=week".into(),
        "/ui/runs".into(),
        "/ui/runs?status=failed&workflow=broken".into(),
        format!("/ui/runs/{done}"),
        format!("/ui/runs/{parked}"),
        format!("/ui/runs/{broken}"),
        "/ui/workflows".into(),
        "/ui/workflows/greet".into(),
        "/ui/schedules".into(),
        "/ui/webhooks".into(),
        "/ui/connections".into(),
    ];
    for path in &pages {
        let p = b.get(path);
        assert_eq!(p.status, 200, "{path}: {}", p.body);
        assert!(p.content_type.starts_with("text/html"), "{path}");
        assert!(
            p.csp
                .as_deref()
                .is_some_and(|c| c.contains("script-src 'self'")),
            "{path}"
        );
        assert!(!p.body.contains(CANARY), "{path} shows the canary secret");
    }
    // The failed run's page shows its error; the runs table filters.
    let p = b.get(&format!("/ui/runs/{broken}"));
    assert!(p.body.contains("id=\"error\""), "{}", p.body);
    // Each step shows what it was called with.
    assert!(
        p.body.contains("<summary>Arguments</summary>"),
        "{}",
        p.body
    );
    assert!(p.body.contains("nothing-listens-here"), "{}", p.body);
    let p = b.get("/ui/runs?status=failed");
    assert!(p.body.contains(&broken) && !p.body.contains(&done));
    // Search by id opens the run.
    let p = b.get(&format!("/ui/runs?id={done}"));
    assert_eq!(p.location, Some(format!("/ui/runs/{done}")));
    // The overview reaches the failure in one more click.
    let p = b.get("/ui/");
    assert!(p.body.contains(&format!("href=\"/ui/runs/{broken}\"")));
    // The assets are served under the names the pages use, and contain no secret.
    for asset in p.body.split("/ui/assets/").skip(1) {
        let name = &asset[..asset.find('"').unwrap()];
        let a = b.get(&format!("/ui/assets/{name}"));
        assert_eq!(a.status, 200, "{name}");
        assert!(!a.body.contains(CANARY));
    }
    // A journal stream answers server-sent events; after the end, a reconnect is told
    // to stop.
    let p = b.request(
        "GET",
        &format!("/ui/runs/{done}/events"),
        None,
        &[("last-event-id", "1000")],
    );
    assert_eq!(p.status, 204);
    let p = b.get(&format!("/ui/runs/{done}/events"));
    assert!(p.content_type.starts_with("text/event-stream"));
    assert!(p.body.contains("event: run_completed"), "{}", p.body);

    // An action without the session's CSRF token, or from another site, is refused.
    let cancel = format!("/ui/runs/{parked}/cancel");
    let p = b.request("POST", &cancel, Some("_csrf=forged"), &[]);
    assert_eq!(p.status, 403);
    let csrf = b.csrf();
    let p = b.request(
        "POST",
        &cancel,
        Some(&format!("_csrf={csrf}")),
        &[("origin", "http://evil.example")],
    );
    assert_eq!(p.status, 403);
    assert_eq!(status_of(&server, &admin, &parked), "waiting");
    // With it, the run is cancelled.
    let p = b.request("POST", &cancel, Some(&format!("_csrf={csrf}")), &[]);
    assert_eq!(p.status, 303, "{}", p.body);
    wait_until("the cancel", || {
        status_of(&server, &admin, &parked) == "cancelled"
    });
    // Run again with the same input.
    let p = b.request(
        "POST",
        &format!("/ui/runs/{done}/rerun"),
        Some(&format!("_csrf={csrf}")),
        &[],
    );
    assert_eq!(p.status, 303);
    let again = p
        .location
        .unwrap()
        .trim_start_matches("/ui/runs/")
        .to_owned();
    assert_ne!(again, done);
    wait_until("the new run", || {
        status_of(&server, &admin, &again) == "completed"
    });

    // A read-only key sees no action and is refused one.
    let mut r = Browser::new(&server);
    assert_eq!(r.sign_in(&reader).status, 303);
    let parked2 = start_run(&server, &admin, "parked", r#"{"n": 2}"#);
    wait_until("the second parked run", || {
        status_of(&server, &admin, &parked2) == "waiting"
    });
    for path in pages.iter().chain([&format!("/ui/runs/{parked2}")]) {
        let p = r.get(path);
        assert_eq!(p.status, 200, "{path}");
        assert!(
            !p.body.contains("class=\"action"),
            "{path} offers an action to a reader"
        );
        assert!(!p.body.contains(CANARY));
    }
    let rcsrf = r.csrf();
    let p = r.request(
        "POST",
        &format!("/ui/runs/{parked2}/cancel"),
        Some(&format!("_csrf={rcsrf}")),
        &[],
    );
    assert_eq!(p.status, 403);
    assert_eq!(status_of(&server, &admin, &parked2), "waiting");

    // Revoking the key ends its sessions at once.
    let (code, _, err) = flow(
        &dir,
        &["keys", "revoke", "reader", "--store", "flow.db"],
        "",
    );
    assert_eq!(code, 0, "{err}");
    let p = r.get("/ui/runs");
    assert_eq!(p.status, 303);
    // Signing out ends the session.
    let p = b.request("POST", "/ui/logout", Some(&format!("_csrf={csrf}")), &[]);
    assert_eq!(p.status, 303);
    assert_eq!(b.get("/ui/").status, 303);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
