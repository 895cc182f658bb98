//! `POST /api/v1/runs/{id}/signals/{name}`: sends a signal to a run that waits for it
//! (`wait signal("name") as T`). The body is the payload, checked against `T` before
//! anything is stored; `?id=` or `Idempotency-Key` makes sending again harmless.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flow_runtime::signals::{SignalError, SignalRequest};
use serde_json::{Value as Json, json};

use super::runs::{idempotency_key, json_body, pairs, run_for};
use crate::app::{AppState, authorize};
use crate::error::ApiError;
use crate::keys::Scope;

/// Scope `runs:write`, on a run of a workflow the key covers.
pub async fn send(
    State(state): State<AppState>,
    Path((id, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::RunsWrite, None)?;
    let run = run_for(&state, &key, &id)?;
    let mut sender_id = idempotency_key(&headers)?;
    for (k, v) in pairs(query.as_deref()) {
        match k.as_str() {
            "id" if !v.is_empty() && v.len() <= 255 => sender_id = Some(v),
            "id" => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "`id` must be 1 to 255 characters",
                ));
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("`{k}`: unknown parameter; the only one is id"),
                ));
            }
        }
    }
    let payload = json_body(&body, Json::Null)?;
    let request = SignalRequest {
        run_id: run.run_id.clone(),
        name,
        payload,
        id: sender_id,
    };
    let sent = state
        .engine
        .signal_run(run, request)
        .await
        .map_err(refused)?;
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, axum::Json(json!(sent))).into_response())
}

fn refused(e: SignalError) -> ApiError {
    match &e {
        SignalError::NoSuchRun(_) => ApiError::not_found(e.to_string()),
        SignalError::NoSuchSignal { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, "no_such_signal", e.to_string())
        }
        SignalError::Ended { .. } => {
            ApiError::new(StatusCode::CONFLICT, "run_ended", e.to_string())
        }
        SignalError::Invalid { path, .. } => {
            let path = path.clone();
            ApiError::bad_request("invalid_body", e.to_string())
                .with_detail(json!({ "path": path }))
        }
        SignalError::Program(_) | SignalError::Store(_) => {
            ApiError::internal("cannot send the signal", e)
        }
    }
}
