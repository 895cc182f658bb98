//! The dashboard at `/ui/`: server-rendered pages over the same store and deployment
//! the run API reads, with one small script for live updates and a few conveniences.
//! Signing in with an API key opens a session ([`session`]); every form that changes
//! something carries the session's CSRF token and is refused without it, and a key
//! without the scope an action needs sees no button for it and is refused if it posts
//! anyway. No secret ever reaches a page: connections are shown by their health, never
//! their credentials.

// A handler's refusal is the page it answers; boxing every one would only add noise.
#![allow(clippy::result_large_err)]

pub mod assets;
pub mod graph;
pub mod html;
pub mod operate;
pub mod overview;
pub mod runs;
pub mod session;
pub mod workflows;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::keys::{self, Refusal, Scope, constant_time_eq};
use html::{Viewer, document, error_page, esc};

/// The dashboard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(overview::show))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/runs", get(runs::list))
        .route("/ui/runs/cancel", post(runs::cancel_selected))
        .route("/ui/runs/{id}", get(runs::detail))
        .route("/ui/runs/{id}/events", get(runs::events))
        .route("/ui/runs/{id}/cancel", post(runs::cancel))
        .route("/ui/runs/{id}/rerun", post(runs::rerun))
        .route("/ui/workflows", get(workflows::list))
        .route("/ui/workflows/{name}", get(workflows::detail))
        .route("/ui/schedules", get(operate::schedules))
        .route(
            "/ui/schedules/{workflow}/{action}",
            post(operate::schedule_action),
        )
        .route("/ui/webhooks", get(operate::webhooks))
        .route("/ui/connections", get(operate::connections))
        .route("/ui/{*rest}", get(no_such_page))
}

async fn no_such_page() -> Response {
    error_page(StatusCode::NOT_FOUND, "There is no such page.")
}

/// A request's viewer, from its session cookie; a request without a live session is sent
/// to the sign-in page (a `GET`) or refused (anything else).
impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Viewer, Response> {
        let found = match cookie(&parts.headers, session::COOKIE) {
            Some(token) => session::find(state.engine.store(), &token).map_err(|e| {
                crate::error::ApiError::internal("cannot read the session", e).into_response()
            })?,
            None => None,
        };
        match found {
            Some((key, csrf)) => Ok(Viewer { key, csrf }),
            None if parts.method == axum::http::Method::GET => {
                let next = parts.uri.path_and_query().map_or("/ui/", |p| p.as_str());
                Err(Redirect::to(&format!("/ui/login?next={}", html::url(next))).into_response())
            }
            None => Err(error_page(
                StatusCode::UNAUTHORIZED,
                "Your session has ended; sign in again.",
            )),
        }
    }
}

/// A cookie's value.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A submitted form's fields, in order (a field may repeat: `run=a&run=b`).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Checks a form that changes something: sent from this origin (when the browser says
/// where from), carrying the session's CSRF token, by a key holding `scope`.
pub fn check_action(
    viewer: &Viewer,
    headers: &HeaderMap,
    form: &Form,
    scope: Scope,
) -> Result<(), Response> {
    if !same_origin(headers) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "This form was sent from another site; it was refused.",
        ));
    }
    let sent = form.get("_csrf").unwrap_or_default();
    if !constant_time_eq(sent.as_bytes(), viewer.csrf.as_bytes()) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            "This form is stale or was not sent from the dashboard; reload the page and try again.",
        ));
    }
    if !viewer.may(scope) {
        return Err(error_page(
            StatusCode::FORBIDDEN,
            &format!(
                "The key `{}` lacks the `{}` scope this action needs.",
                viewer.key.name,
                scope.as_str()
            ),
        ));
    }
    Ok(())
}

/// Whether the request's `Origin` (or, without one, `Sec-Fetch-Site`) says it came from
/// this site. A request naming neither (an old browser, a script) passes: the CSRF token
/// and the SameSite cookie still hold.
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        return host.is_some_and(|h| h == origin_host);
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

/// Where to go after signing in: a dashboard path, never another site.
fn next_of(text: Option<&str>) -> String {
    match text {
        Some(t) if t.starts_with("/ui/") && !t.starts_with("//") && !t.contains('\\') => {
            t.to_owned()
        }
        _ => "/ui/".to_owned(),
    }
}

fn login_document(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    document(
        status,
        "Sign in",
        &format!(
            "<main id=\"main\" class=\"narrow\"><h1>Flow</h1><form id=\"login\" method=\"post\" action=\"/ui/login\">\
             <input type=\"hidden\" name=\"next\" value=\"{}\">\
             <label for=\"key\">API key</label>\
             <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required autofocus placeholder=\"flow_sk_...\">\
             {error}<button type=\"submit\" id=\"sign-in\">Sign in</button>\
             <p class=\"hint\">Create a key with <code>flow keys create NAME --scope runs:read</code>; a key with <code>runs:write</code> or <code>admin</code> can also act.</p>\
             </form></main>",
            esc(next)
        ),
    )
}

async fn login_form(RawQuery(query): RawQuery) -> Response {
    let next = crate::api::runs::pairs(query.as_deref())
        .into_iter()
        .find(|(k, _)| k == "next")
        .map(|(_, v)| v);
    login_document(StatusCode::OK, &next_of(next.as_deref()), None)
}

async fn login(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let next = next_of(form.get("next"));
    if !same_origin(&headers) {
        return login_document(
            StatusCode::FORBIDDEN,
            &next,
            Some("This sign-in was sent from another site; it was refused."),
        );
    }
    let presented = form.get("key").unwrap_or_default().trim();
    let key = match keys::authenticate(state.engine.store(), presented) {
        Ok(Ok(key)) => key,
        Ok(Err(refusal)) => {
            let why = match refusal {
                Refusal::Unknown => "This key is not known to this server.",
                Refusal::Expired => "This key has expired.",
                Refusal::Revoked => "This key was revoked.",
            };
            return login_document(StatusCode::UNAUTHORIZED, &next, Some(why));
        }
        Err(e) => {
            return crate::error::ApiError::internal("cannot check the key", e).into_response();
        }
    };
    if !key.allows(Scope::RunsRead) {
        return login_document(
            StatusCode::FORBIDDEN,
            &next,
            Some("This key cannot read runs (it needs runs:read, runs:write or admin)."),
        );
    }
    let opened = match session::open(state.engine.store(), &key).await {
        Ok(o) => o,
        Err(e) => return e.into_response(),
    };
    let mut response = html::see_other(&next);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{}={}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
        session::COOKIE,
        opened.token,
        session::LIFETIME_MS / 1000
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(refused) = check_action(&viewer, &headers, &form, Scope::RunsRead) {
        return refused;
    }
    if let Some(token) = cookie(&headers, session::COOKIE)
        && let Err(e) = session::close(state.engine.store(), &token).await
    {
        return crate::error::ApiError::internal("cannot end the session", e).into_response();
    }
    let mut response = html::see_other("/ui/login");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("flow_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

/// Whether the page was asked for as a fragment (`?part=main`) by its own script.
pub fn wants_fragment(query: Option<&str>) -> bool {
    crate::api::runs::pairs(query)
        .iter()
        .any(|(k, v)| k == "part" && v == "main")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_redirects_stay_on_the_dashboard() {
        assert_eq!(
            next_of(Some("/ui/runs?status=failed")),
            "/ui/runs?status=failed"
        );
        assert_eq!(next_of(Some("//evil.example/ui/")), "/ui/");
        assert_eq!(next_of(Some("https://evil.example/")), "/ui/");
        assert_eq!(next_of(Some("/api/v1/runs")), "/ui/");
        assert_eq!(next_of(None), "/ui/");
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let f = Form::parse(b"_csrf=t&run=a&run=b%20c");
        assert_eq!(f.get("_csrf"), Some("t"));
        assert_eq!(f.all("run"), vec!["a", "b c"]);
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
    }
}
