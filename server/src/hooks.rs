//! Deliveries: `POST /hooks/PATH` serves every `on webhook("/PATH") as T` and every
//! integration event whose declared webhook path is `/PATH` (`/hooks/github/events`).
//!
//! A plain webhook's body is converted to its declared type (`400` with the path of the
//! first mismatch). An integration event's delivery is verified first, with the secrets
//! of the connection the server runs as (`401` and a recorded rejection when the
//! signature, its timestamp or its header is wrong), then matched against each
//! subscribed workflow's arguments. The trigger's `when` decides whether a run starts.
//! Runs are committed before the reply (`202 {"run": ID}`), under a dedupe key built
//! from the provider's delivery id (`X-GitHub-Delivery`, Stripe's event id, Slack's
//! `event_id`, `webhook-id`) or the `Idempotency-Key` header, so a repeated delivery
//! answers with the first run and starts nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flow_connectors::events::{Delivery, EventError, Outcome, Subscription, deliver};
use flow_expr::Value;
use flow_runtime::store::EventWait;
use flow_runtime::{RunOrigin, Started, Store, StoreError};
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::api::runs::{answer_run, json_body, start_run, wait_of};
use crate::app::{AppState, Shared};
use crate::deployment::{Entry, Subscriber, Waited};
use crate::error::ApiError;

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id          {serial},
    at          INTEGER NOT NULL,
    path        TEXT NOT NULL,
    status      INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    reason      TEXT,
    delivery_id TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_at ON deliveries(at);
";

/// How many refused or unmatched deliveries the log keeps: the newest ones.
pub const KEPT: i64 = 100_000;
/// The log drops what is past `KEPT` once every this many rows.
const PRUNE_EVERY: i64 = 1_000;

pub async fn prepare(store: &Store) -> Result<(), StoreError> {
    store.create_tables(TABLE).await
}

/// A delivery that started no run, as `flow deliveries list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Recorded {
    pub at: i64,
    pub path: String,
    pub status: u16,
    /// `rejected` (signature, timestamp, body) or `unmatched` (no workflow took it).
    pub outcome: String,
    pub reason: Option<String>,
    pub delivery_id: Option<String>,
}

/// Deliveries that started no run, newest first.
pub fn recorded(store: &Store, limit: u32) -> Result<Vec<Recorded>, StoreError> {
    if !store.has_table("deliveries")? {
        return Ok(Vec::new());
    }
    store
        .query(
            "SELECT at, path, status, outcome, reason, delivery_id FROM deliveries ORDER BY id DESC LIMIT ?1",
            &[limit.into()],
        )?
        .iter()
        .map(|r| {
            Ok(Recorded {
                at: r.get(0)?,
                path: r.get(1)?,
                status: u16::try_from(r.get::<i64>(2)?).unwrap_or_default(),
                outcome: r.get(3)?,
                reason: r.get(4)?,
                delivery_id: r.get(5)?,
            })
        })
        .collect()
}

async fn record(
    state: &Shared,
    path: &str,
    status: StatusCode,
    outcome: &str,
    reason: &str,
    id: Option<&str>,
) {
    let row = (
        crate::keys::now_ms(),
        path.to_owned(),
        status.as_u16(),
        outcome.to_owned(),
        reason.to_owned(),
        id.map(str::to_owned),
    );
    let written = state
        .engine
        .store()
        .transact(move |tx| {
            let id: i64 = match tx.query_opt(
                "INSERT INTO deliveries (at, path, status, outcome, reason, delivery_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
                &[
                    row.0.into(),
                    row.1.into(),
                    row.2.into(),
                    row.3.into(),
                    row.4.into(),
                    row.5.into(),
                ],
            )? {
                Some(r) => r.get(0)?,
                None => 0,
            };
            if id % PRUNE_EVERY == 0 {
                tx.execute("DELETE FROM deliveries WHERE id <= ?1", &[(id - KEPT).into()])?;
            }
            Ok(())
        })
        .await;
    if let Err(e) = written {
        tracing::error!(error = %e, "a refused delivery could not be recorded");
    }
}

fn count(result: &'static str) {
    metrics::counter!("flow_webhook_requests_total", "result" => result).increment(1);
}

/// `POST /hooks/{*path}`.
pub async fn receive(
    State(state): State<AppState>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{}", path.trim_start_matches('/'));
    match receive_at(&state, &path, query.as_deref(), &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn receive_at(
    state: &Arc<Shared>,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let d = state.deployment();
    // Paths nothing serves share one bucket, so that a scan of made-up paths cannot
    // claim a limit of its own for each.
    let served =
        d.hooks.contains_key(path) || d.events.contains_key(path) || d.waited.contains_key(path);
    let bucket = if served {
        format!("hook:{path}")
    } else {
        "hook:(unmatched)".to_owned()
    };
    if let Err(e) = state.limits.check(&bucket) {
        count("rate_limited");
        return Err(e);
    }
    let wait = wait_of(query, state)?;
    if let Some(hook) = d.hooks.get(path) {
        return plain(state, path, hook.clone(), headers, &body, wait).await;
    }
    let subscribers = d.events.get(path).map(Vec::as_slice).unwrap_or(&[]);
    let waited = d.waited.get(path).map(Vec::as_slice).unwrap_or(&[]);
    if !subscribers.is_empty() || !waited.is_empty() {
        return events(state, path, subscribers, waited, headers, &body, wait).await;
    }
    count("unmatched");
    record(
        state,
        path,
        StatusCode::NOT_FOUND,
        "unmatched",
        "no workflow is triggered by this path",
        delivery_id(headers, None).as_deref(),
    )
    .await;
    Err(ApiError::not_found(format!(
        "no workflow is triggered by `/hooks{path}`"
    )))
}

async fn plain(
    state: &Shared,
    path: &str,
    hook: crate::deployment::Hook,
    headers: &HeaderMap,
    body: &[u8],
    wait: Option<std::time::Duration>,
) -> Result<Response, ApiError> {
    let json = json_body(body, Json::Null).inspect_err(|_| count("invalid"))?;
    let event = match Value::from_json_named(&json, &hook.body_type, "body") {
        Ok(v) => v,
        Err(e) => {
            count("invalid");
            return Err(ApiError::bad_request("invalid_body", e.to_string())
                .with_detail(json!({ "path": e.path })));
        }
    };
    if !trigger_holds(&hook.entry, &event)? {
        count("filtered");
        return Ok((
            StatusCode::OK,
            axum::Json(json!({ "run": null, "matched": false })),
        )
            .into_response());
    }
    let id = delivery_id(headers, None);
    let started = start(
        state,
        &hook.entry,
        &hook.name,
        "webhook",
        event.to_json(),
        path,
        id.as_deref(),
    )
    .await?;
    count("accepted");
    Ok(answer(state, vec![started], wait).await)
}

async fn events(
    state: &Shared,
    path: &str,
    subscribers: &[Subscriber],
    waited: &[Waited],
    headers: &HeaderMap,
    body: &[u8],
    wait: Option<std::time::Duration>,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let borrowed: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let delivery = Delivery::new(&borrowed, body, crate::keys::now_ms() / 1000);
    let payload: Option<Json> = serde_json::from_slice(body).ok();
    let id = delivery_id(headers, payload.as_ref());
    let mut started = Vec::new();
    for sub in subscribers {
        let Some(integ) = sub.entry.program.program.integration(sub.integration) else {
            continue;
        };
        let conn = connection(state, integ, path, id.as_deref()).await?;
        let subscription = Subscription {
            event: sub.event as usize,
            args: sub.args.clone(),
        };
        match deliver(
            integ,
            path,
            &delivery,
            &conn,
            std::slice::from_ref(&subscription),
        ) {
            Ok(Outcome::Challenge(c)) => {
                count("challenge");
                return Ok((StatusCode::OK, axum::Json(json!({ "challenge": c }))).into_response());
            }
            Ok(Outcome::Events(matched)) => {
                for (_, value) in matched {
                    if trigger_holds(&sub.entry, &value)? {
                        started.push(
                            start(
                                state,
                                &sub.entry,
                                &sub.name,
                                "event",
                                value.to_json(),
                                path,
                                id.as_deref(),
                            )
                            .await?,
                        );
                    }
                }
            }
            Err(e) => return Err(refused(state, path, id.as_deref(), e).await),
        }
    }
    let resumed = give_to_waits(state, path, waited, &delivery, id.as_deref()).await?;
    if started.is_empty() && !resumed.is_empty() {
        count("accepted");
        return Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "run": null, "runs": [], "resumed": resumed, "duplicate": false })),
        )
            .into_response());
    }
    if started.is_empty() {
        count("unmatched");
        record(
            state,
            path,
            StatusCode::OK,
            "unmatched",
            "verified, but no subscribed workflow's arguments or `when` took it",
            id.as_deref(),
        )
        .await;
        return Ok((
            StatusCode::OK,
            axum::Json(json!({ "run": null, "matched": false })),
        )
            .into_response());
    }
    count("accepted");
    Ok(answer(state, started, wait).await)
}

/// The connection a delivery for `integ` is verified with (the server's `--as` owner).
async fn connection(
    state: &Shared,
    integ: &flow_ir::program::Integration,
    path: &str,
    id: Option<&str>,
) -> Result<Arc<flow_connectors::Connection>, ApiError> {
    let owner = state.options.owner.as_deref();
    match flow_connectors::Connections::load(state.connections.as_ref(), &integ.name, owner) {
        Ok(c) => Ok(c),
        Err(e) => {
            count("rejected");
            let reason = format!(
                "no connection to `{}` to verify the delivery with: {e}",
                integ.name
            );
            record(
                state,
                path,
                StatusCode::UNAUTHORIZED,
                "rejected",
                &reason,
                id,
            )
            .await;
            Err(ApiError::unauthorized(reason))
        }
    }
}

/// A delivery refused by its verification or its body: recorded, and the error to answer.
async fn refused(state: &Shared, path: &str, id: Option<&str>, e: EventError) -> ApiError {
    let (status, outcome) = match e {
        EventError::Body | EventError::Validation(_) => (StatusCode::BAD_REQUEST, "invalid"),
        EventError::Expression { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "error"),
        _ => (StatusCode::UNAUTHORIZED, "rejected"),
    };
    count(outcome);
    record(state, path, status, "rejected", &e.to_string(), id).await;
    let code = match status {
        StatusCode::UNAUTHORIZED => "bad_signature",
        StatusCode::BAD_REQUEST => "invalid_body",
        _ => "internal",
    };
    ApiError::new(status, code, e.to_string())
}

/// Offers a delivery to the runs waiting for its events (`wait integration.event(...)
/// when COND`), oldest wait first: the first whose arguments and condition hold takes it
/// (for each waited event), and is woken. Returns the ids of the runs that took it.
async fn give_to_waits(
    state: &Shared,
    path: &str,
    waited: &[Waited],
    delivery: &Delivery,
    id: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    let mut resumed = Vec::new();
    for w in waited {
        let Some(integ) = w.program.program.integration(w.integration) else {
            continue;
        };
        let Some(decl) = integ.events.get(w.event as usize) else {
            continue;
        };
        let waits = {
            let store = state.engine.store().clone();
            let (i, e) = (integ.name.clone(), decl.name.clone());
            tokio::task::spawn_blocking(move || store.event_waits(&i, &e))
                .await
                .map_err(|e| ApiError::internal("the event waits could not be read", e))??
        };
        if waits.is_empty() {
            continue;
        }
        let conn = connection(state, integ, path, id).await?;
        for wait in waits {
            let args = wait_args(&wait, decl);
            let subscription = Subscription {
                event: w.event as usize,
                args,
            };
            let matched = match deliver(
                integ,
                path,
                delivery,
                &conn,
                std::slice::from_ref(&subscription),
            ) {
                Ok(Outcome::Events(matched)) => matched,
                Ok(Outcome::Challenge(_)) => Vec::new(),
                Err(e) => return Err(refused(state, path, id, e).await),
            };
            let Some((_, value)) = matched.into_iter().next() else {
                continue;
            };
            if !wait_holds(state, &wait, &value) {
                continue;
            }
            let given = state
                .engine
                .store()
                .give_to_wait(
                    &wait,
                    value.to_json().to_string(),
                    id.map(str::to_owned),
                    crate::keys::now_ms(),
                )
                .await?;
            if given {
                state.engine.wake(wait.run);
                if let Ok(Some(run)) = state.engine.store().run_by_key(wait.run) {
                    resumed.push(run.run_id);
                }
                break;
            }
        }
    }
    Ok(resumed)
}

/// A wait's recorded arguments, aligned with the event's params (`None`: the default).
fn wait_args(wait: &EventWait, decl: &flow_ir::program::Event) -> Vec<Option<Value>> {
    let recorded: Vec<Json> = serde_json::from_str(&wait.args).unwrap_or_default();
    decl.params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let v = recorded.get(i)?.get("value")?;
            Value::from_json(v, &p.ty).ok()
        })
        .collect()
}

/// Whether a waiting step's `when` holds for `event`, evaluated with the values the run
/// recorded when it started waiting. A wait whose program or step cannot be found, or
/// whose condition fails to evaluate, does not take the delivery.
fn wait_holds(state: &Shared, wait: &EventWait, event: &Value) -> bool {
    let Ok(prepared) = state.engine.program_by_hash(&wait.program) else {
        return false;
    };
    let Some(index) = prepared
        .program
        .workflows
        .iter()
        .position(|w| w.name == wait.workflow)
    else {
        return false;
    };
    let wf = &prepared.program.workflows[index];
    let name = wait.step.split('[').next().unwrap_or(&wait.step);
    let Some((_, step)) = wf.step_by_name(name) else {
        return false;
    };
    let flow_ir::program::StepCall::Event {
        when, event_local, ..
    } = &step.call
    else {
        return false;
    };
    let Some(when) = when else {
        return true;
    };
    let Some(exprs) = prepared.workflow(flow_ir::program::WorkflowId::from_index(index)) else {
        return false;
    };
    let mut locals = exprs.new_locals();
    let recorded: serde_json::Map<String, Json> =
        serde_json::from_str(&wait.locals).unwrap_or_default();
    for (k, v) in recorded {
        let Ok(i) = k.parse::<usize>() else { continue };
        let Some(info) = wf.exprs.locals.get(i) else {
            continue;
        };
        if let (Some(slot), Ok(value)) = (locals.get_mut(i), Value::from_json(&v, &info.ty)) {
            *slot = value;
        }
    }
    if let Some(slot) = locals.get_mut(event_local.0 as usize) {
        *slot = event.clone();
    }
    matches!(
        exprs.eval(*when, &mut locals, &flow_expr::SystemContext),
        Ok(Value::Bool(true))
    )
}

/// Whether the workflow's `when` holds for `event` (no `when`: it does).
fn trigger_holds(entry: &Entry, event: &Value) -> Result<bool, ApiError> {
    let program = &entry.program.program;
    let (Some(wf), Some(exprs)) = (
        program.workflow(entry.workflow),
        entry.program.workflow(entry.workflow),
    ) else {
        return Ok(false);
    };
    let Some(when) = wf.trigger.as_ref().and_then(|t| t.when) else {
        return Ok(true);
    };
    let mut locals = exprs.new_locals();
    let ctx = flow_expr::SystemContext;
    for c in &wf.consts {
        if let Ok(v) = exprs.eval(c.value, &mut locals, &ctx)
            && let Some(slot) = locals.get_mut(c.local.0 as usize)
        {
            *slot = v;
        }
    }
    if let Some(slot) = wf.event.and_then(|l| locals.get_mut(l.0 as usize)) {
        *slot = event.clone();
    }
    match exprs.eval(when, &mut locals, &ctx) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(_) => Ok(false),
        Err(e) => Err(ApiError::bad_request(
            "trigger_condition",
            format!("the trigger's `when` cannot be evaluated for this delivery: {e}"),
        )),
    }
}

async fn start(
    state: &Shared,
    entry: &Entry,
    workflow: &str,
    trigger: &str,
    event: Json,
    path: &str,
    id: Option<&str>,
) -> Result<Started, ApiError> {
    let origin = RunOrigin {
        trigger: Some(trigger.to_owned()),
        event: Some(event),
        actor: None,
        dedupe: id.map(|id| format!("hook:{path}:{workflow}:{id}")),
    };
    start_run(
        state,
        entry,
        workflow,
        json!({}),
        origin,
        state.options.owner.as_deref(),
    )
    .await
}

async fn answer(
    state: &Shared,
    started: Vec<Started>,
    wait: Option<std::time::Duration>,
) -> Response {
    let mut ids = Vec::new();
    let mut first = None;
    let mut duplicate = false;
    for s in started {
        match s {
            Started::New(h) => {
                ids.push(h.run_id.clone());
                if first.is_none() {
                    first = Some(h);
                }
            }
            Started::Existing(row) => {
                duplicate = true;
                ids.push(row.run_id);
            }
        }
    }
    if ids.len() == 1 {
        return answer_run(state, &ids[0], first, wait, duplicate).await;
    }
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "run": ids.first(), "runs": ids, "duplicate": duplicate })),
    )
        .into_response()
}

/// The provider's id for a delivery, which makes repeats of it start nothing.
pub fn delivery_id(headers: &HeaderMap, payload: Option<&Json>) -> Option<String> {
    for name in ["x-github-delivery", "webhook-id", "idempotency-key"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok())
            && !v.is_empty()
        {
            return Some(format!("{name}:{v}"));
        }
    }
    let payload = payload?;
    if headers.contains_key("stripe-signature")
        && let Some(id) = payload.get("id").and_then(Json::as_str)
    {
        return Some(format!("stripe:{id}"));
    }
    if let Some(id) = payload.get("event_id").and_then(Json::as_str) {
        return Some(format!("slack:{id}"));
    }
    None
}
