//! The server's shared state, its routes and its authentication: every request under
//! `/api/v1` and `/metrics` presents an API key (the dashboard under `/ui/` signs in with
//! one and keeps a session: [`crate::ui`]) (`Authorization: Bearer flow_sk_...`),
//! checked against the scope the route needs and, for a workflow's runs, the key's
//! workflow glob. `/healthz` and `/hooks/...` take none (deliveries are verified by
//! their signatures).

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flow_ir::artefact::Artefact;
use flow_runtime::Engine;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::api;
use crate::deployment::Deployment;
use crate::error::ApiError;
use crate::hooks;
use crate::keys::{self, Key, Refusal, Scope};
use crate::limits::RateLimits;

/// Reads the server's sources again and compiles them (SIGHUP); provided by the binary,
/// which holds the compiler. `Err` carries the diagnostics, already rendered.
pub type Reload = Arc<dyn Fn() -> Result<Vec<Artefact>, String> + Send + Sync>;

/// How a server behaves.
#[derive(Clone, Debug)]
pub struct Options {
    /// Whose connections runs use unless a key says otherwise (`--as`).
    pub owner: Option<String>,
    /// Largest request body (413 beyond).
    pub body_limit: usize,
    /// Whole-request timeout (408 beyond).
    pub request_timeout: Duration,
    /// How long a client has to send a request's headers before it is disconnected.
    pub header_timeout: Duration,
    /// Requests per second per API key and per webhook path (429 beyond).
    pub rate_per_second: u32,
    /// How long `?wait=` may hold a request.
    pub max_wait: Duration,
    /// Whether `/metrics` is served on the main address (with the `metrics:read` scope);
    /// off when it has its own `--metrics-listen` address.
    pub metrics_on_main: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            owner: None,
            body_limit: 1 << 20,
            request_timeout: Duration::from_secs(60),
            header_timeout: Duration::from_secs(10),
            rate_per_second: 1000,
            max_wait: Duration::from_secs(60),
            metrics_on_main: true,
        }
    }
}

/// What every request handler reads.
pub struct Shared {
    pub engine: Engine,
    pub deployment: RwLock<Arc<Deployment>>,
    pub options: Options,
    pub metrics: PrometheusHandle,
    pub reload: Option<Reload>,
    pub started: Instant,
    pub limits: RateLimits,
    /// Serialises deployments (two at once would race for the next version number).
    pub deploying: tokio::sync::Mutex<()>,
    /// The connections integration events are verified with (the vault next to the store).
    pub connections: Arc<flow_connectors::VaultConnections>,
    /// Ticks held by `overlap = buffer` until their schedule's previous run ends.
    pub buffered: crate::schedule::Buffered,
    /// The last probe of the connections, which the dashboard shows without waiting.
    pub health: crate::ui::operate::HealthCache,
    /// Signs and checks approval links.
    pub links: Arc<crate::approval::Signer>,
}

pub type AppState = Arc<Shared>;

impl Shared {
    pub fn deployment(&self) -> Arc<Deployment> {
        Arc::clone(
            &self
                .deployment
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn replace_deployment(&self, d: Deployment) {
        *self
            .deployment
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(d);
    }
}

/// The routes of the main address.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/workflows", get(api::runs::workflows))
        .route("/api/v1/workflows/{workflow}/runs", post(api::runs::start))
        .route("/api/v1/runs", get(api::runs::list))
        .route("/api/v1/runs/cancel", post(api::runs::cancel_many))
        .route("/api/v1/runs/{id}", get(api::runs::show))
        .route("/api/v1/runs/{id}/events", get(api::runs::events))
        .route("/api/v1/runs/{id}/cancel", post(api::runs::cancel))
        .route("/api/v1/runs/{id}/signals/{name}", post(api::signals::send))
        .route("/api/v1/schedules", get(api::admin::schedules))
        .route(
            "/api/v1/schedules/{workflow}/{action}",
            post(api::admin::schedule_action),
        )
        .route(
            "/api/v1/deployments",
            get(api::admin::deployments).post(api::admin::deploy),
        )
        .route(
            "/api/v1/deployments/{version}/rollback",
            post(api::admin::rollback),
        )
        .route("/api/v1/deliveries", get(api::admin::deliveries))
        .route(
            "/api/v1/connections/health",
            get(api::admin::connections_health),
        )
        .route("/hooks/{*path}", post(hooks::receive));
    if state.options.metrics_on_main {
        api = api.route("/metrics", get(metrics_with_key));
    }
    let api = api
        .route_layer(axum::middleware::from_fn(traced))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(json_errors));
    // The dashboard and the approval pages answer their own errors as pages, so they are
    // outside `json_errors` (and outside the API's OpenAPI document).
    let pages = crate::ui::router()
        .merge(crate::approval::router())
        .route_layer(axum::middleware::from_fn(traced));
    api.merge(pages)
        .layer(DefaultBodyLimit::max(state.options.body_limit))
        .layer(axum::middleware::from_fn(crate::metrics::count_requests))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.options.request_timeout,
        ))
        .with_state(state)
}

/// The routes of a separate `--metrics-listen` address: `/metrics` without a key.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics_open))
        .with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    let d = state.deployment();
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": d.version,
        "workflows": d.workflows.len(),
        "uptime_s": state.started.elapsed().as_secs(),
    }))
    .into_response()
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

async fn metrics_with_key(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match authorize(&state, &headers, Scope::MetricsRead, None) {
        Ok(_) => metrics_text(&state),
        Err(e) => e.into_response(),
    }
}

async fn metrics_open(State(state): State<AppState>) -> Response {
    metrics_text(&state)
}

fn metrics_text(state: &Shared) -> Response {
    crate::metrics::refresh(state);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The span of a request, when traces are exported ([`flow_runtime::trace`]): a child of
/// the caller's W3C `traceparent`, and the parent of the runs the request starts.
async fn traced(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if !flow_runtime::trace::enabled() {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let method = request.method().clone();
    let span = tracing::info_span!(
        target: "flow::trace",
        "request",
        otel.name = %format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    if let Some(parent) = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        flow_runtime::trace::adopt(&span, parent);
    }
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if status >= 500 {
        flow_runtime::trace::record_error(&span);
    }
    response
}

/// Gives the errors axum and tower answer by themselves (`405`, `408`, `413`, a body
/// extractor's `400` or `415`) the JSON body and stable `code` of every other error;
/// `Allow` and the other headers are kept.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not take that method; `Allow` lists the ones it takes",
        ),
        StatusCode::REQUEST_TIMEOUT => {
            ("timeout", "the request took longer than the server allows")
        }
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            "the body is larger than the server's limit (`--max-body`)",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the body's content type is not one this endpoint reads",
        ),
        s if s.is_server_error() => ("internal", "the server failed; its log has the detail"),
        _ => ("invalid_request", "the request is malformed"),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut answer = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE {
            answer.headers_mut().insert(name.clone(), value.clone());
        }
    }
    answer
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at /api/v1/openapi.json")
}

/// Checks a request's key: present, known, live, holding `scope`, and covering
/// `workflow` when the request is about one. Counts against the key's rate limit.
pub fn authorize(
    state: &Shared,
    headers: &HeaderMap,
    scope: Scope,
    workflow: Option<&str>,
) -> Result<Key, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized("this endpoint needs an API key: `Authorization: Bearer flow_sk_...` (create one with `flow keys create`)")
        })?;
    let key = match keys::authenticate(state.engine.store(), presented)? {
        Ok(key) => key,
        Err(Refusal::Unknown) => return Err(ApiError::unauthorized("unknown API key")),
        Err(Refusal::Expired) => return Err(ApiError::unauthorized("this API key has expired")),
        Err(Refusal::Revoked) => return Err(ApiError::unauthorized("this API key was revoked")),
    };
    if !key.allows(scope) {
        return Err(ApiError::forbidden(format!(
            "the key `{}` lacks the `{}` scope",
            key.name,
            scope.as_str()
        )));
    }
    if let Some(w) = workflow
        && !key.covers(w)
    {
        return Err(ApiError::forbidden(format!(
            "the key `{}` may not touch workflow `{w}`",
            key.name
        )));
    }
    state.limits.check(&format!("key:{}", key.id))?;
    Ok(key)
}
