//! The operator's API (scope `admin`, listing also `runs:read`): schedules (list, pause,
//! resume, trigger now), deployments (list, deploy `.flowc` artefacts, roll back), and
//! deliveries that started no run.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use flow_ir::artefact::Artefact;
use serde_json::json;

use crate::api::runs::{page_size, pairs};
use crate::app::{AppState, Shared, authorize};
use crate::deployment::{self, DeployError};
use crate::error::ApiError;
use crate::hooks;
use crate::keys::Scope;
use crate::schedule;

/// `GET /api/v1/schedules`.
pub async fn schedules(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::RunsRead, None)?;
    let d = state.deployment();
    let list = schedule::states(state.engine.store(), &d.schedules, crate::keys::now_ms())?;
    let list: Vec<_> = list
        .into_iter()
        .filter(|s| key.covers(&s.workflow))
        .collect();
    Ok(axum::Json(json!({ "schedules": list })).into_response())
}

/// `POST /api/v1/schedules/{workflow}/{pause|resume|trigger}`.
pub async fn schedule_action(
    State(state): State<AppState>,
    Path((workflow, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin, Some(&workflow))?;
    let d = state.deployment();
    let s = d
        .schedules
        .iter()
        .find(|s| s.name == workflow)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "workflow `{workflow}` has no schedule in deployment {}",
                d.version
            ))
        })?;
    match action.as_str() {
        "pause" | "resume" => {
            schedule::set_paused(state.engine.store(), s, action == "pause").await?;
            Ok(
                axum::Json(json!({ "workflow": workflow, "paused": action == "pause" }))
                    .into_response(),
            )
        }
        "trigger" => {
            let run = schedule::fire(
                &state,
                s,
                crate::keys::now_ms(),
                schedule::Gate::Manual,
                &state.buffered,
            )
            .await
            .map_err(|e| ApiError::internal("cannot trigger the schedule", e))?;
            Ok((
                StatusCode::ACCEPTED,
                axum::Json(json!({ "workflow": workflow, "run": run })),
            )
                .into_response())
        }
        other => Err(ApiError::not_found(format!(
            "no schedule action `{other}`; actions: pause, resume, trigger"
        ))),
    }
}

/// `GET /api/v1/deployments`.
pub async fn deployments(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::RunsRead, None)?;
    let list = deployment::list(state.engine.store())?;
    Ok(
        axum::Json(json!({ "active": state.deployment().version, "deployments": list }))
            .into_response(),
    )
}

/// `POST /api/v1/deployments`: the body is `{"artefacts": [BASE64 .flowc, ...]}` (what
/// `flow deploy` sends after checking the sources), or one `.flowc` file as
/// `application/octet-stream`. The artefacts replace the deployed set.
pub async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::Admin, None)?;
    let binary = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/octet-stream"));
    let blobs: Vec<Vec<u8>> = if binary {
        vec![body.to_vec()]
    } else {
        let doc: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}"))
        })?;
        let list = doc
            .get("artefacts")
            .and_then(|a| a.as_array())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_deployment",
                    "expected {\"artefacts\": [base64 .flowc, ...]}",
                )
            })?;
        list.iter()
            .enumerate()
            .map(|(i, a)| {
                a.as_str()
                    .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_deployment",
                            format!("artefacts[{i}] is not base64"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut artefacts = Vec::new();
    for (i, bytes) in blobs.into_iter().enumerate() {
        artefacts.push(Artefact::decode(bytes).map_err(|e| {
            ApiError::bad_request("invalid_artefact", format!("artefacts[{i}]: {e}"))
        })?);
    }
    let version = redeploy(&state, artefacts, &key.name).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "version": version })),
    )
        .into_response())
}

/// `POST /api/v1/deployments/{version}/rollback`: deploys an earlier version's programs
/// again, as a new version.
pub async fn rollback(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin, None)?;
    let version: i64 = version.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_path",
            format!("`{version}` is not a deployment version (a whole number)"),
        )
    })?;
    let artefacts =
        deployment::artefacts_of(state.engine.store(), version).map_err(deploy_error)?;
    let new = redeploy(&state, artefacts, &format!("rollback to {version}")).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "version": new, "rollback_of": version })),
    )
        .into_response())
}

/// Makes `artefacts` the served deployment; the running one keeps serving when they
/// cannot be deployed.
pub async fn redeploy(
    state: &Shared,
    artefacts: Vec<Artefact>,
    actor: &str,
) -> Result<i64, ApiError> {
    let _one_at_a_time = state.deploying.lock().await;
    let d = deployment::activate(&state.engine, artefacts, actor)
        .await
        .map_err(deploy_error)?;
    let version = d.version;
    state.replace_deployment(d);
    tracing::info!(version, actor, "deployed");
    Ok(version)
}

fn deploy_error(e: DeployError) -> ApiError {
    match e {
        DeployError::NoSuchVersion(_) => ApiError::not_found(e.to_string()),
        DeployError::Store(e) => e.into(),
        DeployError::Engine(e) => ApiError::internal("cannot load the programs", e),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_deployment",
            other.to_string(),
        ),
    }
}

/// `GET /api/v1/deliveries?limit=N`: deliveries that started no run (rejected or
/// unmatched), newest first.
pub async fn deliveries(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin, None)?;
    let mut limit = 100;
    for (k, v) in pairs(query.as_deref()) {
        match k.as_str() {
            "limit" => {
                limit = page_size(&v, 1000).map_err(|m| {
                    ApiError::bad_request("invalid_query", format!("`limit={v}`: {m}"))
                })? as u32
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("`{k}`: unknown parameter; the only one is limit"),
                ));
            }
        }
    }
    let list = hooks::recorded(state.engine.store(), limit)?;
    Ok(axum::Json(json!({ "deliveries": list })).into_response())
}

/// `GET /api/v1/connections/health?owner=NAME`: probes the connection of every
/// integration the deployment uses (each declared `health` request, sent with the
/// connection's credentials), with latency, circuit state, the last hour's error rate
/// and a score, as `flow health` does.
pub async fn connections_health(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, Scope::Admin, None)?;
    let owner = pairs(query.as_deref())
        .into_iter()
        .find(|(k, _)| k == "owner")
        .map(|(_, v)| v);
    let summary = probe_connections(&state, owner.as_deref()).await?;
    Ok(axum::Json(summary).into_response())
}

/// Probes the connection of every integration the deployment uses (of `owner` only,
/// when given).
pub(crate) async fn probe_connections(
    state: &Shared,
    owner: Option<&str>,
) -> Result<flow_connectors::health::Summary, ApiError> {
    let d = state.deployment();
    let mut seen = std::collections::BTreeSet::new();
    let mut integrations = Vec::new();
    for p in &d.programs {
        for (i, integ) in p.program.integrations.iter().enumerate() {
            if seen.insert(integ.name.clone()) {
                integrations.push(flow_connectors::catalog::Compiled {
                    program: Arc::clone(&p.program),
                    index: i as u32,
                });
            }
        }
    }
    let vault = state
        .connections
        .vault()
        .map_err(|e| ApiError::internal("cannot open the vault", e))?;
    let driver = flow_connectors::Driver::new(
        state.connections.clone(),
        flow_connectors::DriverConfig::default(),
    );
    Ok(flow_connectors::health::check(&driver, vault, &integrations, owner).await)
}
