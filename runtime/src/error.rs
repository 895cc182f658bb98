//! Error kinds a step can fail with (what `catch` sees as `err.kind`), the step error
//! record, and the runtime's own typed errors.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use flow_ir::program::ErrorKind;

/// An error's message followed by each of its causes (`stage: cause: root cause`), for
/// errors whose own words name only the stage that failed.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// Whether trying again can help. Timeouts and communication failures are transient;
/// bad credentials, bad data and failing expressions fail the same way every time, so
/// retrying them only delays the error.
pub fn is_retryable(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Timeout | ErrorKind::Communication)
}

/// The kind an HTTP error status maps to.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::Authentication,
        403 => ErrorKind::Authorization,
        408 | 504 => ErrorKind::Timeout,
        _ => ErrorKind::Communication,
    }
}

/// How a step (or a statement such as `fail`) failed: the `err` record of a `catch`
/// block is built from it, and it is journaled as is. Connectors must never put a
/// credential in `message` or `details`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepError {
    pub kind: ErrorKind,
    pub message: String,
    /// The step that failed (its instance key, `ticket[2]` inside loops); filled in by
    /// the executor.
    #[serde(default)]
    pub step: String,
    /// How many attempts were made; filled in by the executor.
    #[serde(default)]
    pub attempts: u32,
    /// The HTTP status, when the failure was an HTTP answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Anything else worth keeping (a response body, the field path of a validation error).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
    /// A server's `Retry-After`: the retry loop waits at least this long before the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub retry_after: Option<Duration>,
}

impl StepError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> StepError {
        StepError {
            kind,
            message: message.into(),
            step: String::new(),
            attempts: 0,
            status: None,
            details: serde_json::Value::Null,
            retry_after: None,
        }
    }

    pub fn timeout(message: impl Into<String>) -> StepError {
        StepError::new(ErrorKind::Timeout, message)
    }

    pub fn communication(message: impl Into<String>) -> StepError {
        StepError::new(ErrorKind::Communication, message)
    }

    pub fn validation(message: impl Into<String>) -> StepError {
        StepError::new(ErrorKind::Validation, message)
    }

    pub fn expression(message: impl Into<String>) -> StepError {
        StepError::new(ErrorKind::Expression, message)
    }

    pub fn runtime(message: impl Into<String>) -> StepError {
        StepError::new(ErrorKind::Runtime, message)
    }

    pub fn with_status(mut self, status: u16) -> StepError {
        self.status = Some(status);
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> StepError {
        self.details = details;
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> StepError {
        self.retry_after = Some(after);
        self
    }

    /// The `err` record a `catch` block sees, as JSON:
    /// `{ kind, message, step, attempts, status, details }`.
    pub fn to_record(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind.as_str(),
            "message": self.message,
            "step": self.step,
            "attempts": self.attempts,
            "status": self.status,
            "details": self.details,
        })
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.step.is_empty() {
            write!(f, "{}: {}", self.kind.as_str(), self.message)
        } else {
            write!(
                f,
                "step `{}` failed ({}): {}",
                self.step,
                self.kind.as_str(),
                self.message
            )
        }
    }
}

impl std::error::Error for StepError {}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_for_status(401), ErrorKind::Authentication);
        assert_eq!(kind_for_status(403), ErrorKind::Authorization);
        assert_eq!(kind_for_status(504), ErrorKind::Timeout);
        assert_eq!(kind_for_status(500), ErrorKind::Communication);
        assert_eq!(kind_for_status(404), ErrorKind::Communication);
    }

    #[test]
    fn the_err_record_has_every_field() {
        let mut e = StepError::communication("boom").with_status(503);
        e.step = "ticket".into();
        e.attempts = 3;
        let record = e.to_record();
        assert_eq!(record["kind"], "communication");
        assert_eq!(record["message"], "boom");
        assert_eq!(record["step"], "ticket");
        assert_eq!(record["attempts"], 3);
        assert_eq!(record["status"], 503);
        assert!(record["details"].is_null());
        let back: StepError = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
