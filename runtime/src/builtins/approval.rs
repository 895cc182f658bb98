//! `approval.link`: a signed link to a page where a person approves or rejects, whose
//! answer reaches the run as a signal. The page and the signing key belong to the server
//! (`flow serve`), which gives the runtime a [`LinkSigner`]; without one the step fails
//! and says why.

use std::sync::Arc;

use flow_expr::{Duration, Timestamp};
use serde_json::{Value as Json, json};

use crate::error::StepError;
use crate::invoke::CallContext;

/// Makes the links; provided by the server that serves the pages.
pub trait LinkSigner: Send + Sync {
    /// The page's URL for `signal` of `run_id`, showing `title`, until `expires_at_ms`.
    fn link(
        &self,
        run_id: &str,
        signal: &str,
        title: &str,
        expires_at_ms: i64,
    ) -> Result<String, String>;
}

/// The longest a link may live.
const MAX_LIFETIME_MS: i64 = 90 * 86_400_000;

pub fn call(
    signer: Option<&Arc<dyn LinkSigner>>,
    action: &str,
    args: &serde_json::Map<String, Json>,
    ctx: &CallContext,
) -> Result<Json, StepError> {
    if action != "link" {
        return Err(StepError::runtime(format!(
            "`approval.{action}` is not an action of the built-in approval integration"
        )));
    }
    let Some(signer) = signer else {
        return Err(StepError::runtime(
            "approval.link needs `flow serve`: the approval page is served by the server, so start this run through it (the run API, a trigger) rather than `flow run`",
        ));
    };
    let text = |k: &str| args.get(k).and_then(Json::as_str).unwrap_or_default();
    let signal = text("signal");
    if signal.is_empty() {
        return Err(StepError::validation("approval.link: `signal` is empty"));
    }
    let lifetime = Duration::parse(text("expires_in"))
        .map(|d| (d.as_nanos() / 1_000_000) as i64)
        .map_err(|e| StepError::validation(format!("approval.link: `expires_in`: {e}")))?;
    if !(1..=MAX_LIFETIME_MS).contains(&lifetime) {
        return Err(StepError::validation(
            "approval.link: `expires_in` must be positive and at most 90 days",
        ));
    }
    let expires_at = (Timestamp::now().as_nanos() / 1_000_000) as i64 + lifetime;
    let url = signer
        .link(&ctx.run_id, signal, text("title"), expires_at)
        .map_err(StepError::runtime)?;
    let expires = Timestamp::from_nanos(i128::from(expires_at) * 1_000_000)
        .map(|t| t.to_rfc3339())
        .map_err(|e| StepError::runtime(format!("approval.link: {e}")))?;
    Ok(json!({ "url": url, "expires_at": expires }))
}
