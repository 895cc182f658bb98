//! The dashboard's HTML: escaping, the page frame (navigation, sign-out, security
//! headers), and the small formatters every page shares (instants, durations, statuses,
//! JSON shown folded).

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::keys::{Key, Scope};

/// Text made safe for HTML content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string component.
pub fn url(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Who is looking: the signed-in key and the session's CSRF token, which every form
/// that changes something carries.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub key: Key,
    pub csrf: String,
}

impl Viewer {
    pub fn may(&self, scope: Scope) -> bool {
        self.key.allows(scope)
    }

    /// The hidden field of a form that changes something.
    pub fn csrf_field(&self) -> String {
        format!(
            "<input type=\"hidden\" name=\"_csrf\" value=\"{}\">",
            esc(&self.csrf)
        )
    }

    /// A one-button form posting to `action` (class `action`), shown only to a key
    /// holding `scope`; empty otherwise.
    pub fn button(&self, scope: Scope, action: &str, id: &str, class: &str, label: &str) -> String {
        if !self.may(scope) {
            return String::new();
        }
        let id = if id.is_empty() {
            String::new()
        } else {
            format!(" id=\"{}\"", esc(id))
        };
        format!(
            "<form method=\"post\" action=\"{}\" class=\"inline\">{}<button type=\"submit\"{id} class=\"action {}\">{}</button></form>",
            esc(action),
            self.csrf_field(),
            esc(class),
            esc(label)
        )
    }
}

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Runs,
    Workflows,
    Schedules,
    Webhooks,
    Connections,
}

const SECTIONS: [(Section, &str, &str); 6] = [
    (Section::Overview, "/ui/", "Overview"),
    (Section::Runs, "/ui/runs", "Runs"),
    (Section::Workflows, "/ui/workflows", "Workflows"),
    (Section::Schedules, "/ui/schedules", "Schedules"),
    (Section::Webhooks, "/ui/webhooks", "Webhooks"),
    (Section::Connections, "/ui/connections", "Connections"),
];

/// A signed-in page: navigation, the key's name, sign-out, and `main`.
pub fn page(viewer: &Viewer, section: Section, title: &str, main: &str) -> Response {
    let mut nav = String::new();
    for (s, href, label) in SECTIONS {
        let current = if s == section {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{href}\"{current}>{label}</a>");
    }
    let body = format!(
        "<header><a class=\"brand\" href=\"/ui/\">Flow</a><nav id=\"nav\" aria-label=\"sections\">{nav}</nav>\
         <form method=\"post\" action=\"/ui/logout\" class=\"who\">{csrf}<span title=\"scopes: {scopes}\">{name}</span>\
         <button type=\"submit\" id=\"sign-out\">Sign out</button></form></header>\
         <main id=\"main\">{main}</main>",
        csrf = viewer.csrf_field(),
        scopes = esc(&viewer
            .key
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")),
        name = esc(&viewer.key.name),
    );
    document(StatusCode::OK, title, &body)
}

/// A whole HTML document with the dashboard's headers: no caching (pages show live
/// state and who is signed in), no framing, scripts and styles only from this server.
pub fn document(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>{} · Flow</title><link rel=\"stylesheet\" href=\"/ui/assets/{}\">\
         <script src=\"/ui/assets/{}\" defer></script></head><body>{body}</body></html>",
        esc(title),
        super::assets::css_name(),
        super::assets::js_name(),
    );
    with_headers(status, html)
}

/// Only `main`'s content: what a page's script fetches to update itself in place.
pub fn fragment(main: String) -> Response {
    with_headers(StatusCode::OK, main)
}

fn with_headers(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `303 See Other` to `to`: where a form's answer sends the browser.
pub fn see_other(to: &str) -> Response {
    let mut r = axum::response::Redirect::to(to).into_response();
    *r.status_mut() = StatusCode::SEE_OTHER;
    r
}

/// An error page (signed in or not), with the status.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    document(
        status,
        "Error",
        &format!(
            "<main id=\"main\" class=\"narrow\"><h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/ui/\">Back to the overview</a></p></main>",
            status.as_u16(),
            esc(message)
        ),
    )
}

/// A Unix-ms instant as UTC, in a `<time>` element the script shows in local time.
pub fn time(ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return String::new();
    };
    format!(
        "<time datetime=\"{}\">{}</time>",
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        t.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// A duration in milliseconds, in the largest units that keep it short.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h {}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A status as a badge (its colour comes from the class).
pub fn status(text: &str) -> String {
    format!("<span class=\"badge {}\">{}</span>", esc(text), esc(text))
}

/// A JSON value, pretty-printed, folded under `summary`.
pub fn json_details(summary: &str, value: &serde_json::Value, open: bool) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    format!(
        "<details{}><summary>{}</summary><pre class=\"json\">{}</pre></details>",
        if open { " open" } else { "" },
        esc(summary),
        esc(&text)
    )
}

/// At most `max` characters, an ellipsis marking a cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}

/// A `<select>` of `options` (value, label) with `current` selected.
pub fn select(name: &str, label: &str, options: &[(String, String)], current: &str) -> String {
    let mut out = format!("<label>{}<select name=\"{}\">", esc(label), esc(name));
    for (value, text) in options {
        let selected = if value == current { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(value),
            esc(text)
        );
    }
    out.push_str("</select></label>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\" title='y'>&</a>"),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    proptest::proptest! {
        /// Escaped text holds no character that could open or close markup or an
        /// attribute, and reads back as the original.
        #[test]
        fn escaped_text_is_inert_and_faithful(text in ".*") {
            let out = esc(&text);
            proptest::prop_assert!(!out.contains(['<', '>', '"', '\'']));
            let back = out
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&");
            proptest::prop_assert_eq!(back, text);
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12), "12 ms");
        assert_eq!(duration(4_250), "4.2 s");
        assert_eq!(duration(192_000), "3m 12s");
        assert_eq!(duration(7_440_000), "2h 4m");
    }
}
