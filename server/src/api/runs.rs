//! The run API: start a workflow (`Idempotency-Key`, `?wait=`), read a run with its
//! steps, list runs with filters and cursor pagination, follow a run's journal as
//! server-sent events, cancel one run or every run a filter selects.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use flow_expr::Value;
use flow_ir::program::{Program, TriggerKind, Workflow};
use flow_runtime::report::run_detail;
use flow_runtime::store::{RunFilter, RunRow};
use flow_runtime::{RunHandle, RunOrigin, RunStatus, Started, StoreError};
use serde_json::{Value as Json, json};

use crate::app::{AppState, Shared, authorize};
use crate::deployment::Entry;
use crate::error::ApiError;
use crate::keys::Scope;

/// Most runs one page lists.
pub(crate) const MAX_PAGE: u64 = 500;

/// `GET /api/v1/workflows`: the deployed workflows, their parameters and triggers.
pub async fn workflows(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::RunsRead, None)?;
    let d = state.deployment();
    let list: Vec<Json> = d
        .workflows
        .iter()
        .filter(|(name, _)| key.covers(name))
        .filter_map(|(name, entry)| {
            let wf = entry.program.program.workflow(entry.workflow)?;
            Some(json!({
                "name": name,
                "doc": wf.doc,
                "params": wf.params.iter().map(|p| json!({"name": p.name, "type": p.ty.to_string(), "required": p.default.is_none() && !p.ty.is_optional()})).collect::<Vec<_>>(),
                "trigger": wf.trigger.as_ref().map(|t| trigger_text(&entry.program.program, &t.kind)),
                "program": entry.program.hash,
            }))
        })
        .collect();
    Ok(axum::Json(json!({ "version": d.version, "workflows": list })).into_response())
}

/// A trigger as written in the language: `schedule("0 9 * * *", tz: "...")`,
/// `webhook("/path")`, `github.issue`.
pub(crate) fn trigger_text(program: &Program, kind: &TriggerKind) -> String {
    match kind {
        TriggerKind::Schedule {
            cron, time_zone, ..
        } => match time_zone {
            Some(tz) => format!("schedule(\"{cron}\", tz: \"{tz}\")"),
            None => format!("schedule(\"{cron}\")"),
        },
        TriggerKind::Webhook { path, .. } => format!("webhook(\"{path}\")"),
        TriggerKind::Event { event, .. } => match (
            program.integration(event.integration),
            program.event(*event),
        ) {
            (Some(i), Some(e)) => format!("{}.{}", i.name, e.name),
            _ => "event".to_owned(),
        },
    }
}

/// `POST /api/v1/workflows/{workflow}/runs`: starts a run with the body as its input.
pub async fn start(
    State(state): State<AppState>,
    Path(workflow): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::RunsWrite, Some(&workflow))?;
    let wait = wait_of(query.as_deref(), &state)?;
    let d = state.deployment();
    let entry = d.workflows.get(&workflow).ok_or_else(|| {
        ApiError::not_found(format!(
            "no workflow `{workflow}` in deployment {}",
            d.version
        ))
    })?;
    let input = json_body(&body, json!({}))?;
    if let Some(wf) = entry.program.program.workflow(entry.workflow) {
        check_input(wf, &input)?;
    }
    let dedupe = idempotency_key(&headers)?.map(|k| format!("api:{workflow}:{k}"));
    let origin = RunOrigin {
        trigger: Some("api".into()),
        event: None,
        actor: Some(key.name.clone()),
        dedupe,
    };
    let owner = key.owner.clone().or_else(|| state.options.owner.clone());
    let started = start_run(&state, entry, &workflow, input, origin, owner.as_deref()).await?;
    Ok(answer_started(&state, started, wait).await)
}

/// A request's JSON body; `empty` when the body is empty or blank.
pub(crate) fn json_body(body: &[u8], empty: Json) -> Result<Json, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(empty);
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("the body is not JSON: {e}")))
}

/// Starts a run of a deployed workflow and counts it.
pub(crate) async fn start_run(
    state: &Shared,
    entry: &Entry,
    workflow: &str,
    input: Json,
    origin: RunOrigin,
    owner: Option<&str>,
) -> Result<Started, ApiError> {
    let trigger = origin.trigger.clone().unwrap_or_default();
    let started = state
        .engine
        .start(&entry.program, workflow, input, origin, owner)
        .await
        .map_err(|e| ApiError::internal("cannot start the run", e))?;
    if matches!(started, Started::New(_)) {
        metrics::counter!("flow_runs_started_total", "workflow" => workflow.to_owned(), "trigger" => trigger)
            .increment(1);
    }
    Ok(started)
}

/// `202 {"run": ID, "status": ...}`, or with `?wait=` and a run that ends in time, `200`
/// with the run.
pub(crate) async fn answer_started(
    state: &Shared,
    started: Started,
    wait: Option<Duration>,
) -> Response {
    let (run_id, handle, duplicate) = match started {
        Started::New(h) => (h.run_id.clone(), Some(h), false),
        Started::Existing(row) => (row.run_id, None, true),
    };
    answer_run(state, &run_id, handle, wait, duplicate).await
}

pub(crate) async fn answer_run(
    state: &Shared,
    run_id: &str,
    handle: Option<RunHandle>,
    wait: Option<Duration>,
    duplicate: bool,
) -> Response {
    if let Some(wait) = wait
        && wait_for_end(state, run_id, handle, wait).await
        && let Ok(detail) = run_detail(state.engine.store(), run_id)
    {
        let mut body = serde_json::to_value(&detail).unwrap_or_default();
        body["run"] = json!(run_id);
        body["duplicate"] = json!(duplicate);
        return (StatusCode::OK, axum::Json(body)).into_response();
    }
    let status = state
        .engine
        .store()
        .run_by_id(run_id)
        .ok()
        .flatten()
        .map(|r| r.status.as_str())
        .unwrap_or("pending");
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({ "run": run_id, "status": status, "duplicate": duplicate })),
    )
        .into_response()
}

/// Whether the run ended within `wait`.
async fn wait_for_end(
    state: &Shared,
    run_id: &str,
    handle: Option<RunHandle>,
    wait: Duration,
) -> bool {
    if let Some(h) = handle {
        return tokio::time::timeout(wait, h.outcome()).await.is_ok();
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match state.engine.store().run_by_id(run_id) {
            Ok(Some(r)) if r.status.is_final() => return true,
            Ok(Some(_)) => {}
            _ => return false,
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks a run's input against the workflow's parameters before anything is stored.
fn check_input(wf: &Workflow, input: &Json) -> Result<(), ApiError> {
    let Json::Object(args) = input else {
        return Err(ApiError::bad_request(
            "invalid_input",
            "the body must be a JSON object of the workflow's arguments",
        ));
    };
    for name in args.keys() {
        if !wf.params.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = wf.params.iter().map(|p| p.name.as_str()).collect();
            return Err(ApiError::bad_request(
                "invalid_input",
                format!(
                    "`{}` takes no argument `{name}`; it takes: {}",
                    wf.name,
                    known.join(", ")
                ),
            )
            .with_detail(json!({ "path": name })));
        }
    }
    for p in &wf.params {
        match args.get(&p.name) {
            Some(j) => {
                Value::from_json_named(j, &p.ty, &p.name).map_err(|e| {
                    ApiError::bad_request("invalid_input", e.to_string())
                        .with_detail(json!({ "path": e.path }))
                })?;
            }
            None if p.default.is_none() && !p.ty.is_optional() => {
                return Err(ApiError::bad_request(
                    "invalid_input",
                    format!("missing argument `{}` ({})", p.name, p.ty),
                )
                .with_detail(json!({ "path": p.name })));
            }
            None => {}
        }
    }
    Ok(())
}

/// The `Idempotency-Key` header, when given.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().map_err(|_| {
                ApiError::bad_request("invalid_header", "`Idempotency-Key` must be visible ASCII")
            })?;
            if text.is_empty() || text.len() > 255 {
                return Err(ApiError::bad_request(
                    "invalid_header",
                    "`Idempotency-Key` must be 1 to 255 characters",
                ));
            }
            Ok(Some(text.to_owned()))
        }
    }
}

/// `?wait=30s`: how long to hold the request for the run's end (at most `max_wait`).
pub(crate) fn wait_of(query: Option<&str>, state: &Shared) -> Result<Option<Duration>, ApiError> {
    let Some(text) = pairs(query)
        .into_iter()
        .find(|(k, _)| k == "wait")
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    let d = parse_duration(&text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_query",
            format!("`wait={text}` is not a duration such as 30s or 500ms"),
        )
    })?;
    Ok(Some(d.min(state.options.max_wait)))
}

/// `500ms`, `30s`, `2m`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

/// A query string's pairs, decoded.
pub(crate) fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// What a run's `trigger` may be: `cli` selects runs started by `flow run` (they record
/// none).
pub(crate) const TRIGGERS: [&str; 5] = ["api", "schedule", "webhook", "event", "cli"];

/// A page size from a query: a whole number, `0` read as `1` and anything above `max`
/// as `max`; a negative number or text is refused.
pub(crate) fn page_size(text: &str, max: u64) -> Result<u64, String> {
    match text.parse::<i128>() {
        Ok(n) if n >= 0 => Ok((n.min(max as i128) as u64).max(1)),
        _ => Err(format!("not a page size (a whole number, at most {max})")),
    }
}

/// The `workflow` a query names, for the key check made before the query is parsed.
pub(crate) fn workflow_of(query: Option<&str>) -> Option<String> {
    pairs(query)
        .into_iter()
        .find(|(k, _)| k == "workflow")
        .map(|(_, v)| v)
}

/// The filter of `GET /api/v1/runs` and `POST /api/v1/runs/cancel`.
fn filter_of(query: Option<&str>) -> Result<RunFilter, ApiError> {
    let mut f = RunFilter {
        limit: Some(50),
        ..RunFilter::default()
    };
    for (k, v) in pairs(query) {
        let bad = |what: &str| ApiError::bad_request("invalid_query", format!("`{k}={v}`: {what}"));
        match k.as_str() {
            "workflow" => f.workflow = Some(v.clone()),
            "status" => f.statuses.push(RunStatus::parse(&v).ok_or_else(|| {
                bad("not a status (pending, running, waiting, completed, failed, cancelled)")
            })?),
            "trigger" => {
                if !TRIGGERS.contains(&v.as_str()) {
                    return Err(bad("not a trigger (api, schedule, webhook, event, cli)"));
                }
                f.trigger = Some(v.clone())
            }
            "since" => {
                f.since = Some(
                    instant(&v).ok_or_else(|| bad("not an RFC 3339 time or Unix milliseconds"))?,
                )
            }
            "until" => {
                f.until = Some(
                    instant(&v).ok_or_else(|| bad("not an RFC 3339 time or Unix milliseconds"))?,
                )
            }
            "limit" => f.limit = Some(page_size(&v, MAX_PAGE).map_err(|m| bad(&m))?),
            "cursor" => {
                f.after = Some(cursor(&v).ok_or_else(|| bad("not a cursor this server gave"))?)
            }
            "wait" => {}
            _ => {
                return Err(bad(
                    "unknown parameter; filters are workflow, status, trigger, since, until, limit, cursor",
                ));
            }
        }
    }
    Ok(f)
}

pub(crate) fn instant(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

pub(crate) fn cursor(text: &str) -> Option<(i64, i64)> {
    let (at, key) = text.strip_prefix('c')?.split_once('_')?;
    Some((at.parse().ok()?, key.parse().ok()?))
}

/// `GET /api/v1/runs`: newest first, one page at a time.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(
        &state,
        &headers,
        Scope::RunsRead,
        workflow_of(query.as_deref()).as_deref(),
    )?;
    let (runs, next) = page_of(&state, filter_of(query.as_deref())?).await?;
    let runs: Vec<&RunRow> = runs.iter().filter(|r| key.covers(&r.workflow)).collect();
    Ok(axum::Json(json!({ "runs": runs, "next_cursor": next })).into_response())
}

/// One page of the runs `filter` selects (`limit`, 50 by default), newest first, and the
/// cursor of the next page when there is one.
pub(crate) async fn page_of(
    state: &Shared,
    mut filter: RunFilter,
) -> Result<(Vec<RunRow>, Option<String>), ApiError> {
    let limit = filter.limit.unwrap_or(50);
    filter.limit = Some(limit + 1);
    let store = state.engine.store().clone();
    let mut runs = tokio::task::spawn_blocking(move || store.list_runs(&filter))
        .await
        .map_err(|e| ApiError::internal("the listing stopped", e))??;
    let next = if runs.len() as u64 > limit {
        runs.truncate(limit as usize);
        runs.last().map(|r| format!("c{}_{}", r.created_at, r.key))
    } else {
        None
    };
    Ok((runs, next))
}

/// The run named in a path, when the key may see it.
pub(crate) fn run_for(
    state: &Shared,
    key: &crate::keys::Key,
    id: &str,
) -> Result<RunRow, ApiError> {
    let run = state
        .engine
        .store()
        .run_by_id(id)?
        .filter(|r| key.covers(&r.workflow))
        .ok_or_else(|| ApiError::not_found(format!("no run `{id}`")))?;
    Ok(run)
}

/// `GET /api/v1/runs/{id}`: the run with its steps, attempts and timings.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::RunsRead, None)?;
    run_for(&state, &key, &id)?;
    let detail = run_detail(state.engine.store(), &id).map_err(|e| match e {
        StoreError::NoSuchRun(_) => ApiError::not_found(format!("no run `{id}`")),
        e => e.into(),
    })?;
    Ok(axum::Json(detail).into_response())
}

/// `GET /api/v1/runs/{id}/events`: the journal as server-sent events, live until the
/// run ends. Each event's `id` is its sequence number; a client reconnecting with
/// `Last-Event-ID` gets the events after it.
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::RunsRead, None)?;
    let run = run_for(&state, &key, &id)?;
    Ok(journal_stream(&state, &run, &headers, None))
}

/// A run's journal as server-sent events from the one after `Last-Event-ID`, live until
/// the run ends. A reconnect after the end gets `204 No Content`, which tells a browser's
/// `EventSource` to stop.
///
/// `after` is where a caller that already shows the journal up to an event starts (the
/// dashboard's `?after=SEQ`); `Last-Event-ID`, sent by a reconnecting client, wins over it.
pub(crate) fn journal_stream(
    state: &Shared,
    run: &RunRow,
    headers: &HeaderMap,
    after: Option<u32>,
) -> Response {
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .or(after)
        .map_or(0, |seq| seq.saturating_add(1));
    let store = state.engine.store().clone();
    if from > 0
        && run.status.is_final()
        && store
            .events_from(run.key, from)
            .is_ok_and(|events| events.is_empty())
    {
        return StatusCode::NO_CONTENT.into_response();
    }
    let stream = futures_util::stream::unfold(
        (store, run.key, from, false),
        |(store, run, next, done)| async move {
            if done {
                return None;
            }
            loop {
                let fresh = store.events_from(run, next).unwrap_or_default();
                let ended = store
                    .status_of(run)
                    .ok()
                    .flatten()
                    .is_none_or(|s| s.is_final());
                if !fresh.is_empty() || ended {
                    let next = fresh.last().map_or(next, |e| e.seq + 1);
                    // An ended run's last events were read after its status, so none is lost.
                    let out: Vec<Result<SseEvent, Infallible>> = fresh
                        .iter()
                        .map(|e| {
                            let data = json!({
                                "seq": e.seq, "at": e.at, "kind": e.kind.as_str(), "step": e.step,
                                "attempt": e.attempt,
                                "data": e.data.as_deref().and_then(|d| serde_json::from_str::<Json>(d).ok()),
                            });
                            Ok(SseEvent::default()
                                .id(e.seq.to_string())
                                .event(e.kind.as_str())
                                .data(data.to_string()))
                        })
                        .collect();
                    return Some((futures_util::stream::iter(out), (store, run, next, ended)));
                }
                tokio::time::sleep(Duration::from_millis(JOURNAL_POLL_MS)).await;
            }
        },
    );
    use futures_util::StreamExt as _;
    Sse::new(stream.flatten())
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// How often a followed run's journal is read for new events.
const JOURNAL_POLL_MS: u64 = 50;

/// `POST /api/v1/runs/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(&state, &headers, Scope::RunsWrite, None)?;
    let run = run_for(&state, &key, &id)?;
    let cancelled = state
        .engine
        .cancel(&run)
        .await
        .map_err(|e| ApiError::internal("cannot cancel the run", e))?;
    Ok(axum::Json(json!({ "run": id, "cancelled": cancelled })).into_response())
}

/// `POST /api/v1/runs/cancel?workflow=...&status=...`: cancels every unfinished run the
/// filter selects (at least one filter is required).
pub async fn cancel_many(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = authorize(
        &state,
        &headers,
        Scope::RunsWrite,
        workflow_of(query.as_deref()).as_deref(),
    )?;
    let mut filter = filter_of(query.as_deref())?;
    if filter.workflow.is_none() && filter.trigger.is_none() && filter.statuses.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "cancelling by filter needs at least one of workflow, trigger, status",
        ));
    }
    filter.limit = Some(u64::MAX >> 1);
    if filter.statuses.is_empty() {
        filter.statuses = vec![RunStatus::Pending, RunStatus::Running, RunStatus::Waiting];
    }
    let runs = state.engine.store().list_runs(&filter)?;
    let mut cancelled = Vec::new();
    for run in runs
        .iter()
        .filter(|r| key.covers(&r.workflow) && !r.status.is_final())
    {
        if state
            .engine
            .cancel(run)
            .await
            .map_err(|e| ApiError::internal("cannot cancel a run", e))?
        {
            cancelled.push(run.run_id.clone());
        }
    }
    Ok(axum::Json(json!({ "cancelled": cancelled })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_cursors_parse() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(cursor("c1700_42"), Some((1700, 42)));
        assert_eq!(cursor("x"), None);
    }
}
