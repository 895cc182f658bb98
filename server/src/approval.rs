//! Approval pages: `approval.link(...)` in a workflow makes a signed link to
//! `/approve/{token}` on this server; the person who opens it sees what is asked and
//! approves or rejects, and their answer is sent to the run as a signal (once: the token
//! is the signal's id, so a second answer changes nothing). The token is the credential:
//! it names the run, the signal, the title and an expiry, signed with HMAC-SHA256 under a
//! key kept in the store, so no API key and no session is needed, and a changed or
//! expired token is refused.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use flow_runtime::builtins::LinkSigner;
use flow_runtime::signals::{SignalError, SignalRequest};
use flow_runtime::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::app::AppState;
use crate::keys::{constant_time_eq, now_ms};
use crate::ui::Form;
use crate::ui::html::{document, esc};

/// The approval pages' routes: `/approve/{token}`, `GET` to see, `POST` to answer.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/approve/{token}", axum::routing::get(page).post(decide))
}

/// What a link grants: answering `signal` of `run` until `expires_at`.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Grant {
    #[serde(rename = "r")]
    run: String,
    #[serde(rename = "s")]
    signal: String,
    #[serde(rename = "t")]
    title: String,
    #[serde(rename = "e")]
    expires_at: i64,
}

/// Signs and checks links; its public URL is set once the server knows it.
pub struct Signer {
    key: [u8; 32],
    base: OnceLock<String>,
}

impl Signer {
    /// The store's link key (made the first time).
    pub async fn load(
        store: &Store,
        public_url: Option<String>,
    ) -> Result<Arc<Signer>, StoreError> {
        let mut fresh = [0u8; 32];
        getrandom::getrandom(&mut fresh).map_err(|e| StoreError::Commit {
            path: store.path().to_path_buf(),
            message: format!("cannot draw random bytes for the link key: {e}"),
        })?;
        store
            .create_tables("CREATE TABLE IF NOT EXISTS server_keys (name TEXT PRIMARY KEY, key {blob} NOT NULL)")
            .await?;
        let key: Vec<u8> = store
            .transact(move |tx| {
                tx.execute(
                    "INSERT INTO server_keys (name, key) VALUES ('approval_links', ?1) ON CONFLICT (name) DO NOTHING",
                    &[fresh.to_vec().into()],
                )?;
                match tx.query_opt("SELECT key FROM server_keys WHERE name = 'approval_links'", &[])? {
                    Some(r) => r.get(0),
                    None => Ok(Vec::new()),
                }
            })
            .await?;
        let mut k = [0u8; 32];
        let n = key.len().min(32);
        k[..n].copy_from_slice(&key[..n]);
        let signer = Signer {
            key: k,
            base: OnceLock::new(),
        };
        if let Some(url) = public_url {
            signer.set_base(&url);
        }
        Ok(Arc::new(signer))
    }

    /// Where links point (`--public-url`, else the address the server listens on); the
    /// first call wins.
    pub fn set_base(&self, url: &str) {
        let _ = self.base.set(url.trim_end_matches('/').to_owned());
    }

    fn token(&self, grant: &Grant) -> String {
        let payload = serde_json::to_vec(grant).unwrap_or_default();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = b64.encode(&payload);
        let mac = flow_connectors::sigv4::hmac(&self.key, body.as_bytes());
        format!("{body}.{}", b64.encode(mac))
    }

    /// The grant a token carries, when its signature holds (expiry is the caller's).
    fn check(&self, token: &str) -> Option<Grant> {
        let (body, mac) = token.split_once('.')?;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let sent = b64.decode(mac).ok()?;
        let want = flow_connectors::sigv4::hmac(&self.key, body.as_bytes());
        if !constant_time_eq(&sent, &want) {
            return None;
        }
        serde_json::from_slice(&b64.decode(body).ok()?).ok()
    }
}

impl LinkSigner for Signer {
    fn link(
        &self,
        run_id: &str,
        signal: &str,
        title: &str,
        expires_at_ms: i64,
    ) -> Result<String, String> {
        let base = self
            .base
            .get()
            .ok_or("the server does not know its public URL yet; pass --public-url")?;
        let token = self.token(&Grant {
            run: run_id.to_owned(),
            signal: signal.to_owned(),
            title: title.to_owned(),
            expires_at: expires_at_ms,
        });
        Ok(format!("{base}/approve/{token}"))
    }
}

/// The grant of a path's token, or the page that refuses it.
fn grant_of(state: &AppState, token: &str) -> Result<Grant, Response> {
    let Some(grant) = state.links.check(token) else {
        return Err(answer(
            StatusCode::FORBIDDEN,
            "This link is not valid",
            "It was changed or was not made by this server. Ask for a new one.",
        ));
    };
    if grant.expires_at <= now_ms() {
        return Err(answer(
            StatusCode::GONE,
            "This link has expired",
            "The request it was made for is no longer waiting for an answer here.",
        ));
    }
    Ok(grant)
}

fn answer(status: StatusCode, title: &str, text: &str) -> Response {
    document(
        status,
        title,
        &format!(
            "<main id=\"main\" class=\"narrow\"><h1>{}</h1><p id=\"outcome\">{}</p></main>",
            esc(title),
            esc(text)
        ),
    )
}

/// The signal id an answer through `token` is sent under: one answer per link.
fn answer_id(token: &str) -> String {
    let digest = crate::keys::digest(token);
    format!("approval:{}", crate::keys::hex(&digest[..16]))
}

/// `GET /approve/{token}`: what is asked, and the two buttons.
pub async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let grant = match grant_of(&state, &token) {
        Ok(g) => g,
        Err(refused) => return refused,
    };
    let run = match state.engine.store().run_by_id(&grant.run) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return answer(
                StatusCode::NOT_FOUND,
                "No such request",
                "The run this link was made for is gone.",
            );
        }
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    if run.status.is_final() {
        return answer(
            StatusCode::OK,
            "Already settled",
            &format!(
                "This request is {}; nothing is waiting for an answer.",
                run.status.as_str()
            ),
        );
    }
    let expires = chrono::DateTime::from_timestamp_millis(grant.expires_at)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default();
    document(
        StatusCode::OK,
        &grant.title,
        &format!(
            "<main id=\"main\" class=\"narrow\"><h1>{}</h1>\
             <p class=\"muted\">Asked by workflow <b>{}</b> (run <span class=\"mono\">{}</span>); this link works until {}.</p>\
             <form id=\"decide\" method=\"post\">\
             <label for=\"by\">Your name</label><input id=\"by\" name=\"by\" required maxlength=\"200\" autocomplete=\"name\">\
             <label for=\"note\">Note (optional)</label><input id=\"note\" name=\"note\" maxlength=\"2000\">\
             <div class=\"toolbar\"><button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\" class=\"action\">Approve</button>\
             <button type=\"submit\" name=\"decision\" value=\"reject\" id=\"reject\" class=\"action danger\">Reject</button></div>\
             </form></main>",
            esc(&grant.title),
            esc(&run.workflow),
            esc(&run.run_id),
            esc(&expires),
        ),
    )
}

/// `POST /approve/{token}`: sends the answer as the run's signal.
pub async fn decide(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let grant = match grant_of(&state, &token) {
        Ok(g) => g,
        Err(refused) => return refused,
    };
    let form = Form::parse(&body);
    let approved = match form.get("decision") {
        Some("approve") => true,
        Some("reject") => false,
        _ => {
            return answer(
                StatusCode::BAD_REQUEST,
                "No decision",
                "Choose Approve or Reject.",
            );
        }
    };
    let by = form.get("by").unwrap_or_default().trim();
    if by.is_empty() {
        return answer(
            StatusCode::BAD_REQUEST,
            "Who is answering?",
            "Go back and type your name.",
        );
    }
    let note = form.get("note").map(str::trim).filter(|n| !n.is_empty());
    let sent = state
        .engine
        .signal(SignalRequest {
            run_id: grant.run.clone(),
            name: grant.signal.clone(),
            payload: json!({ "approved": approved, "by": by, "note": note }),
            id: Some(answer_id(&token)),
        })
        .await;
    match sent {
        Ok(s) if s.duplicate => answer(
            StatusCode::OK,
            "Already answered",
            "An answer was already sent through this link; it stands.",
        ),
        Ok(_) => answer(
            StatusCode::OK,
            if approved { "Approved" } else { "Rejected" },
            &format!(
                "Thank you, {by}: your answer was sent to the workflow {}.",
                if approved { "(approved)" } else { "(rejected)" }
            ),
        ),
        Err(SignalError::Ended { .. }) => answer(
            StatusCode::CONFLICT,
            "Already settled",
            "The request ended before this answer arrived.",
        ),
        Err(e @ (SignalError::NoSuchSignal { .. } | SignalError::Invalid { .. })) => answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This answer does not fit",
            &format!("The workflow cannot take it: {e}"),
        ),
        Err(e) => crate::error::ApiError::internal("cannot send the answer", e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_only_as_signed() {
        let s = Signer {
            key: [7; 32],
            base: OnceLock::new(),
        };
        let grant = Grant {
            run: "r1".into(),
            signal: "decision".into(),
            title: "Pay £40?".into(),
            expires_at: 1,
        };
        let token = s.token(&grant);
        assert_eq!(s.check(&token), Some(grant));
        // Another key, a changed body, a changed signature: refused.
        let other = Signer {
            key: [8; 32],
            base: OnceLock::new(),
        };
        assert_eq!(other.check(&token), None);
        let (body, mac) = token.split_once('.').unwrap();
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"r":"r2","s":"decision","t":"x","e":99999999999999}"#);
        assert_eq!(s.check(&format!("{forged}.{mac}")), None);
        assert_eq!(s.check(&format!("{body}.AAAA")), None);
        assert_eq!(s.check("no-dot"), None);
    }
}
