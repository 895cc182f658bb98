//! The server's errors as callers see them: an HTTP status and a JSON body with a stable
//! `code` and a message, never a stack trace, a secret or a store path.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to a caller.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable across releases; programs match on it (`docs/server.md` lists them).
    pub code: &'static str,
    pub message: String,
    /// Seconds, for `429` and `503`.
    pub retry_after: Option<u64>,
    /// Extra fields of the body (a validation error's `path`, a deployment's diagnostics).
    pub detail: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            detail: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A failure of this server (the store, the runtime): logged in full, answered
    /// without detail.
    pub fn internal(what: &str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "{what}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what}; the server's log has the detail"),
        )
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> ApiError {
        self.detail = Some(detail);
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": { "code": self.code, "message": self.message } });
        if let (Some(serde_json::Value::Object(extra)), Some(error)) = (
            self.detail,
            body.get_mut("error").and_then(|e| e.as_object_mut()),
        ) {
            error.extend(extra);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<flow_runtime::StoreError> for ApiError {
    fn from(e: flow_runtime::StoreError) -> ApiError {
        ApiError::internal("the store failed", e)
    }
}
