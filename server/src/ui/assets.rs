//! The dashboard's stylesheet and script, embedded in the binary (no CDN, no JavaScript
//! toolchain) and served under names that carry a hash of their content, so a browser
//! may keep them for a year and still never runs a stale copy after an upgrade.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("../../assets/ui.css");
const JS: &str = include_str!("../../assets/ui.js");

static NAMES: LazyLock<(String, String)> =
    LazyLock::new(|| (hashed("ui", CSS, "css"), hashed("ui", JS, "js")));

fn hashed(stem: &str, content: &str, ext: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!("{stem}.{}.{ext}", crate::keys::hex(&digest[..6]))
}

/// The stylesheet's served name.
pub fn css_name() -> &'static str {
    &NAMES.0
}

/// The script's served name.
pub fn js_name() -> &'static str {
    &NAMES.1
}

/// `GET /ui/assets/{name}`: no session needed (the sign-in page uses them too).
pub async fn serve(Path(name): Path<String>) -> Response {
    let (body, kind) = if name == css_name() {
        (CSS, "text/css; charset=utf-8")
    } else if name == js_name() {
        (JS, "text/javascript; charset=utf-8")
    } else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
