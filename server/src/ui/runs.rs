//! The runs table (filters, search by id, cursor paging, cancelling a selection) and a
//! run's page: its status, error, input and output, a waterfall of its steps and
//! attempts, the workflow's graph coloured by step status, each step's result folded,
//! and live updates from the run's journal until it ends.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use flow_runtime::report::{RunDetail, StepSummary, detail as run_detail};
use flow_runtime::store::{EventKind, RunFilter, RunRow};
use flow_runtime::{RunOrigin, RunStatus, Started};
use serde_json::Value as Json;

use super::html::{self, Section, Viewer, error_page, esc, page, see_other, time, url};
use super::{Form, check_action, graph, wants_fragment};
use crate::api::runs::{MAX_PAGE, TRIGGERS, cursor, instant, page_size, pairs};
use crate::app::{AppState, Shared};
use crate::keys::Scope;

const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "waiting",
    "completed",
    "failed",
    "cancelled",
];

/// The runs table's query: every field optional; empty means "any".
#[derive(Default)]
struct Query {
    workflow: String,
    status: String,
    trigger: String,
    from: String,
    to: String,
    limit: u64,
    after: String,
}

impl Query {
    fn parse(query: Option<&str>) -> Result<(Query, Option<String>), String> {
        let mut q = Query {
            limit: 50,
            ..Query::default()
        };
        let mut id = None;
        for (k, v) in pairs(query) {
            let v = v.trim().to_owned();
            match k.as_str() {
                "workflow" => q.workflow = v,
                "status" if v.is_empty() || STATUSES.contains(&v.as_str()) => q.status = v,
                "status" => return Err(format!("`{v}` is not a run status")),
                "trigger" if v.is_empty() || TRIGGERS.contains(&v.as_str()) => q.trigger = v,
                "trigger" => return Err(format!("`{v}` is not a trigger")),
                "from" => q.from = v,
                "to" => q.to = v,
                "limit" if !v.is_empty() => q.limit = page_size(&v, MAX_PAGE)?,
                "after" => q.after = v,
                "id" if !v.is_empty() => id = Some(v),
                _ => {}
            }
        }
        Ok((q, id))
    }

    fn filter(&self) -> Result<RunFilter, String> {
        let mut f = RunFilter {
            limit: Some(self.limit),
            ..RunFilter::default()
        };
        if !self.workflow.is_empty() {
            f.workflow = Some(self.workflow.clone());
        }
        if let Some(s) = RunStatus::parse(&self.status) {
            f.statuses.push(s);
        }
        if !self.trigger.is_empty() {
            f.trigger = Some(self.trigger.clone());
        }
        f.since = moment(&self.from)?;
        f.until = moment(&self.to)?;
        if !self.after.is_empty() {
            f.after =
                Some(cursor(&self.after).ok_or("the page cursor is not one this server gave")?);
        }
        Ok(f)
    }

    /// This query as a URL, with `after` replaced.
    fn href(&self, after: Option<&str>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("workflow", &self.workflow),
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", url(v)));
            }
        }
        if self.limit != 50 {
            parts.push(format!("limit={}", self.limit));
        }
        if let Some(a) = after {
            parts.push(format!("after={}", url(a)));
        }
        if parts.is_empty() {
            "/ui/runs".to_owned()
        } else {
            format!("/ui/runs?{}", parts.join("&"))
        }
    }
}

/// A form's time field: empty, Unix ms, RFC 3339, or a `datetime-local` value (UTC).
fn moment(text: &str) -> Result<Option<i64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if let Some(ms) = instant(text) {
        return Ok(Some(ms));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(Some(t.and_utc().timestamp_millis()));
        }
    }
    Err(format!("`{text}` is not a time (2026-12-05T09:00, UTC)"))
}

/// `GET /ui/runs`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Response {
    let (q, id) = match Query::parse(query.as_deref()) {
        Ok(parsed) => parsed,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    if let Some(id) = id {
        return match state.engine.store().run_by_id(&id) {
            Ok(Some(run)) if viewer.key.covers(&run.workflow) => {
                Redirect::to(&format!("/ui/runs/{}", url(&run.run_id))).into_response()
            }
            Ok(_) => error_page(StatusCode::NOT_FOUND, &format!("There is no run `{id}`.")),
            Err(e) => crate::error::ApiError::from(e).into_response(),
        };
    }
    let filter = match q.filter() {
        Ok(f) => f,
        Err(e) => return error_page(StatusCode::BAD_REQUEST, &e),
    };
    let (runs, next) = match crate::api::runs::page_of(&state, filter).await {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let runs: Vec<&RunRow> = runs
        .iter()
        .filter(|r| viewer.key.covers(&r.workflow))
        .collect();
    let d = state.deployment();
    let mut workflows: Vec<(String, String)> = vec![(String::new(), "any".into())];
    workflows.extend(
        d.workflows
            .keys()
            .filter(|w| viewer.key.covers(w))
            .map(|w| (w.clone(), w.clone())),
    );
    if !q.workflow.is_empty() && !d.workflows.contains_key(&q.workflow) {
        workflows.push((q.workflow.clone(), q.workflow.clone()));
    }
    let any = |list: &[&str]| -> Vec<(String, String)> {
        std::iter::once((String::new(), "any".to_owned()))
            .chain(list.iter().map(|s| ((*s).to_owned(), (*s).to_owned())))
            .collect()
    };
    let mut out = String::from("<h1>Runs</h1>");
    let _ = write!(
        out,
        "<form id=\"filters\" class=\"filters\" method=\"get\" action=\"/ui/runs\">{}{}{}\
         <label>From (UTC)<input type=\"datetime-local\" name=\"from\" value=\"{}\"></label>\
         <label>To (UTC)<input type=\"datetime-local\" name=\"to\" value=\"{}\"></label>\
         <label>Per page<input type=\"number\" name=\"limit\" min=\"1\" max=\"{MAX_PAGE}\" value=\"{}\"></label>\
         <button type=\"submit\" id=\"apply\">Apply</button><a href=\"/ui/runs\">Clear</a></form>\
         <form class=\"filters\" method=\"get\" action=\"/ui/runs\" role=\"search\">\
         <label>Run id<input name=\"id\" placeholder=\"r...\" autocomplete=\"off\"></label><button type=\"submit\" id=\"find\">Open</button></form>",
        html::select("workflow", "Workflow", &workflows, &q.workflow),
        html::select("status", "Status", &any(&STATUSES), &q.status),
        html::select("trigger", "Trigger", &any(&TRIGGERS), &q.trigger),
        esc(&q.from),
        esc(&q.to),
        q.limit,
    );
    let can_cancel = viewer.may(Scope::RunsWrite) && runs.iter().any(|r| !r.status.is_final());
    if can_cancel {
        let _ = write!(
            out,
            "<form id=\"cancel-form\" method=\"post\" action=\"/ui/runs/cancel\" data-confirm=\"Cancel the selected runs?\">{}",
            viewer.csrf_field()
        );
    }
    out.push_str("<div class=\"scroll\"><table id=\"runs\"><thead><tr>");
    if can_cancel {
        out.push_str("<th><input type=\"checkbox\" id=\"select-all\" aria-label=\"select every unfinished run on this page\"></th>");
    }
    out.push_str("<th>Run</th><th>Workflow</th><th>Status</th><th class=\"optional\">Trigger</th><th>Created</th><th class=\"num\">Duration</th></tr></thead><tbody>");
    for r in &runs {
        out.push_str(&format!(
            "<tr class=\"run\" data-run-id=\"{}\">",
            esc(&r.run_id)
        ));
        if can_cancel {
            if r.status.is_final() {
                out.push_str("<td></td>");
            } else {
                let _ = write!(
                    out,
                    "<td><input type=\"checkbox\" class=\"select-run\" name=\"run\" value=\"{}\" aria-label=\"select {}\"></td>",
                    esc(&r.run_id),
                    esc(&r.run_id)
                );
            }
        }
        let _ = write!(
            out,
            "<td><a class=\"run-link mono\" href=\"/ui/runs/{}\">{}</a></td><td><a href=\"/ui/workflows/{}\">{}</a></td>\
             <td class=\"status\">{}</td><td class=\"optional\">{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
            url(&r.run_id),
            esc(&r.run_id),
            url(&r.workflow),
            esc(&r.workflow),
            html::status(r.status.as_str()),
            esc(r.origin.trigger.as_deref().unwrap_or("cli")),
            time(r.created_at),
            r.finished_at
                .map(|f| html::duration(f - r.created_at))
                .unwrap_or_default(),
        );
    }
    out.push_str("</tbody></table></div>");
    if runs.is_empty() {
        out.push_str("<p class=\"muted\">No run matches these filters.</p>");
    }
    if can_cancel {
        out.push_str("<div class=\"toolbar\"><button type=\"submit\" id=\"cancel-selected\" class=\"action danger\">Cancel selected</button></div></form>");
    }
    out.push_str("<div class=\"pager\">");
    if !q.after.is_empty() {
        let _ = write!(
            out,
            "<a href=\"{}\" id=\"first\">First page</a>",
            esc(&q.href(None))
        );
    }
    if let Some(next) = &next {
        let _ = write!(
            out,
            "<a href=\"{}\" id=\"next\" rel=\"next\">Next page</a>",
            esc(&q.href(Some(next)))
        );
    }
    out.push_str("</div>");
    page(&viewer, Section::Runs, "Runs", &out)
}

/// `POST /ui/runs/cancel`: cancels the selected runs.
pub async fn cancel_selected(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(refused) = check_action(&viewer, &headers, &form, Scope::RunsWrite) {
        return refused;
    }
    for id in form.all("run") {
        match state.engine.store().run_by_id(id) {
            Ok(Some(run)) if viewer.key.covers(&run.workflow) && !run.status.is_final() => {
                if let Err(e) = state.engine.cancel(&run).await {
                    return crate::error::ApiError::internal("cannot cancel a run", e)
                        .into_response();
                }
            }
            Ok(_) => {}
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        }
    }
    let back = headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/ui/runs").map(|i| r[i..].to_owned()))
        .unwrap_or_else(|| "/ui/runs".to_owned());
    see_other(&back)
}

/// The run `id` names, when the viewer may see it.
fn run_for(state: &Shared, viewer: &Viewer, id: &str) -> Result<RunRow, Response> {
    match state.engine.store().run_by_id(id) {
        Ok(Some(run)) if viewer.key.covers(&run.workflow) => Ok(run),
        Ok(_) => Err(error_page(
            StatusCode::NOT_FOUND,
            &format!("There is no run `{id}`."),
        )),
        Err(e) => Err(crate::error::ApiError::from(e).into_response()),
    }
}

/// `GET /ui/runs/{id}` (`?part=main`: only the main part, for live updates).
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let run = match run_for(&state, &viewer, &id) {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let events = match state.engine.store().events(run.key) {
        Ok(e) => e,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let mut results: HashMap<String, Json> = HashMap::new();
    // What each step was called with: its first `step_started` that recorded it.
    let mut args: HashMap<String, Json> = HashMap::new();
    for e in &events {
        if e.kind == EventKind::StepStarted
            && let (Some(step), Some(data)) = (&e.step, &e.data)
            && !args.contains_key(step)
            && let Ok(mut d) = serde_json::from_str::<Json>(data)
        {
            if let Some(a) = d.get_mut("args") {
                args.insert(step.clone(), a.take());
            } else if let Some(omitted) = d.get("args_omitted") {
                args.insert(
                    step.clone(),
                    Json::String(format!(
                        "(too large to keep: {})",
                        omitted.as_str().unwrap_or("?")
                    )),
                );
            }
        }
        if e.kind == EventKind::StepSucceeded
            && let (Some(step), Some(data)) = (&e.step, &e.data)
        {
            results.insert(
                step.clone(),
                serde_json::from_str(data).unwrap_or(Json::String(data.clone())),
            );
        }
    }
    let timers_set: HashMap<String, i64> = events
        .iter()
        .filter(|e| e.kind == EventKind::TimerSet)
        .filter_map(|e| Some((e.step.clone()?, e.at)))
        .collect();
    let shown = events.last().map(|e| e.seq);
    let detail = run_detail(run, &events);
    let main = run_main(
        &state,
        &viewer,
        &detail,
        &args,
        &results,
        &timers_set,
        shown,
    );
    if wants_fragment(query.as_deref()) {
        return html::fragment(main);
    }
    page(
        &viewer,
        Section::Runs,
        &format!("Run {}", detail.run.run_id),
        &main,
    )
}

/// A step's status as the graph and the waterfall colour it.
fn step_state(s: &StepSummary) -> &'static str {
    if s.waiting_for.is_some() || s.waiting_for_event.is_some() {
        "waiting"
    } else {
        s.status
    }
}

fn run_main(
    state: &Shared,
    viewer: &Viewer,
    d: &RunDetail,
    args: &HashMap<String, Json>,
    results: &HashMap<String, Json>,
    timers_set: &HashMap<String, i64>,
    shown: Option<u32>,
) -> String {
    let run = &d.run;
    let now = crate::keys::now_ms();
    let mut out = String::new();
    let live = if run.status.is_final() {
        String::new()
    } else {
        format!(
            " data-live=\"/ui/runs/{}/events{}\"",
            url(&run.run_id),
            shown.map(|seq| format!("?after={seq}")).unwrap_or_default()
        )
    };
    let _ = write!(
        out,
        "<h1{live}>Run <span class=\"mono\">{}</span> of <a href=\"/ui/workflows/{}\">{}</a> <span id=\"run-status\" class=\"badge {}\">{}</span>{}</h1>",
        esc(&run.run_id),
        url(&run.workflow),
        esc(&run.workflow),
        run.status.as_str(),
        run.status.as_str(),
        if live.is_empty() {
            ""
        } else {
            " <span class=\"live\">live</span>"
        }
    );
    out.push_str("<div class=\"toolbar\">");
    if !run.status.is_final() && viewer.may(Scope::RunsWrite) {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/ui/runs/{}/cancel\" class=\"inline\">{}<button type=\"submit\" id=\"cancel\" class=\"action danger\">Cancel run</button></form>",
            url(&run.run_id),
            viewer.csrf_field()
        );
    }
    if viewer.may(Scope::RunsWrite) && run.parent.is_none() {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/ui/runs/{}/rerun\" class=\"inline\">{}<button type=\"submit\" id=\"rerun\" class=\"action\">Run again with this input</button></form>",
            url(&run.run_id),
            viewer.csrf_field()
        );
    }
    out.push_str("</div>");

    // What the run waits for, and why it failed: the first things a reader wants.
    let waiting: Vec<String> = d
        .steps
        .iter()
        .filter_map(|s| {
            if let Some(sig) = &s.waiting_for {
                Some(format!(
                    "step <b>{}</b> waits for signal <code>{}</code>",
                    esc(&s.step),
                    esc(sig)
                ))
            } else {
                s.waiting_for_event.as_ref().map(|ev| {
                    format!(
                        "step <b>{}</b> waits for event <code>{}</code>",
                        esc(&s.step),
                        esc(ev)
                    )
                })
            }
        })
        .chain(
            d.timers
                .iter()
                .filter(|(_, at)| *at > now && run.status == RunStatus::Waiting)
                .map(|(key, at)| format!("timer <b>{}</b> fires at {}", esc(key), time(*at))),
        )
        .collect();
    if !waiting.is_empty() {
        let _ = write!(
            out,
            "<p id=\"waiting\" class=\"waiting\">Waiting: {}</p>",
            waiting.join("; ")
        );
    }
    if let Some(err) = &run.error {
        let kind = err.get("kind").and_then(Json::as_str).unwrap_or("error");
        let message = err
            .get("message")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| err.to_string());
        let step = err.get("step").and_then(Json::as_str).unwrap_or_default();
        let _ = write!(
            out,
            "<section id=\"error\" class=\"card\"><h2 class=\"failed\">Error: {}</h2><p>{}</p>{}{}</section>",
            esc(kind),
            esc(&message),
            if step.is_empty() {
                String::new()
            } else {
                format!("<p class=\"muted\">in step <b>{}</b></p>", esc(step))
            },
            html::json_details("the whole error", err, false)
        );
    }

    let _ = write!(
        out,
        "<dl class=\"facts\"><dt>Created</dt><dd>{}</dd><dt>Finished</dt><dd>{}</dd><dt>Duration</dt><dd>{}</dd>\
         <dt>Trigger</dt><dd>{}</dd><dt>Started by</dt><dd>{}</dd><dt>Program</dt><dd class=\"mono\">{}</dd>{}</dl>",
        time(run.created_at),
        run.finished_at.map(time).unwrap_or_else(|| "—".into()),
        html::duration(run.finished_at.unwrap_or(now) - run.created_at),
        esc(run.origin.trigger.as_deref().unwrap_or("cli")),
        esc(run.origin.actor.as_deref().unwrap_or("—")),
        esc(run.program.get(..12).unwrap_or(&run.program)),
        match run.parent {
            Some(parent) => match state.engine.store().run_by_key(parent) {
                Ok(Some(p)) => format!(
                    "<dt>Parent</dt><dd><a class=\"mono\" href=\"/ui/runs/{}\">{}</a> (step {})</dd>",
                    url(&p.run_id),
                    esc(&p.run_id),
                    esc(run.parent_step.as_deref().unwrap_or("?"))
                ),
                _ => String::new(),
            },
            None => String::new(),
        }
    );
    out.push_str("<div class=\"grid\">");
    out.push_str(&html::json_details("Input", &run.input, true));
    if let Some(output) = &run.output {
        out.push_str(&html::json_details("Output", output, true));
    }
    out.push_str("</div>");

    out.push_str("<h2>Timeline</h2><div id=\"timeline\" class=\"scroll\">");
    out.push_str(&waterfall(d, timers_set, now));
    out.push_str("</div>");

    out.push_str("<h2>Graph</h2><div id=\"graph\" class=\"scroll\">");
    // The run's own program: the deployed one, or the store's copy for an older version.
    match state
        .engine
        .program_by_hash(&run.program)
        .ok()
        .and_then(|prepared| {
            let p = &prepared.program;
            let (_, wf) = p.workflow_by_name(&run.workflow)?;
            let mut status: HashMap<String, &'static str> = HashMap::new();
            for s in &d.steps {
                let base = s.step.split('[').next().unwrap_or(&s.step).to_owned();
                let st = step_state(s);
                let entry = status.entry(base).or_insert(st);
                // Iterations of a loop step: a failure shows over a wait over a success.
                let rank = |x: &str| match x {
                    "failed" => 4,
                    "running" => 3,
                    "waiting" => 2,
                    _ => 1,
                };
                if rank(st) > rank(entry) {
                    *entry = st;
                }
            }
            Some(graph::svg(p, wf, &status))
        }) {
        Some(svg) => out.push_str(&svg),
        None => out.push_str("<p class=\"muted\">The program of this run is not in the store.</p>"),
    }
    out.push_str("<div class=\"legend\"><span class=\"succeeded\">succeeded</span><span class=\"running\">running</span><span class=\"waiting\">waiting</span><span class=\"failed\">failed</span><span class=\"not-started\">not started</span></div></div>");

    out.push_str("<h2>Steps</h2><div id=\"steps\">");
    if d.steps.is_empty() {
        out.push_str("<p class=\"muted\">No step has started.</p>");
    }
    for s in &d.steps {
        let st = step_state(s);
        let _ = write!(
            out,
            "<details class=\"step\" id=\"step-{}\" data-key=\"{}\"><summary><b>{}</b> {} · {} attempt{}{}</summary>",
            esc(&s.step),
            esc(&s.step),
            esc(&s.step),
            html::status(st),
            s.attempts,
            if s.attempts == 1 { "" } else { "s" },
            s.duration_ms
                .map(|ms| format!(" · {}", html::duration(ms)))
                .unwrap_or_default()
        );
        if let Some(a) = args.get(&s.step) {
            out.push_str(&html::json_details("Arguments", a, false));
        }
        if let Some(result) = results.get(&s.step) {
            out.push_str(&html::json_details("Result", result, true));
        }
        if let Some(err) = &s.error {
            out.push_str(&html::json_details(
                &format!(
                    "Error ({})",
                    serde_json::to_value(err.kind)
                        .ok()
                        .and_then(|k| k.as_str().map(str::to_owned))
                        .unwrap_or_default()
                ),
                &serde_json::to_value(err).unwrap_or_default(),
                true,
            ));
        }
        out.push_str("</details>");
    }
    out.push_str("</div>");
    if !d.logs.is_empty() {
        out.push_str("<h2>Log</h2><pre id=\"log\">");
        for line in &d.logs {
            out.push_str(&esc(line));
            out.push('\n');
        }
        out.push_str("</pre>");
    }
    out
}

/// The steps as bars on the run's time axis (attempts, waits and timers marked).
fn waterfall(d: &RunDetail, timers_set: &HashMap<String, i64>, now: i64) -> String {
    let start = d.run.created_at;
    let end = d.run.finished_at.unwrap_or(now).max(start + 1).max(
        d.steps
            .iter()
            .map(|s| s.started_at + s.duration_ms.unwrap_or(0))
            .max()
            .unwrap_or(0),
    );
    let span = (end - start).max(1) as f64;
    const LABEL: f64 = 200.0;
    const WIDTH: f64 = 900.0;
    const ROW: usize = 22;
    let rows = d.steps.len() + d.timers.len();
    if rows == 0 {
        return "<p class=\"muted\">Nothing has happened yet.</p>".to_owned();
    }
    let height = rows * ROW + 24;
    let x = |t: i64| LABEL + (t - start) as f64 / span * (WIDTH - LABEL - 70.0);
    let mut out = format!(
        "<svg role=\"img\" aria-label=\"timeline of the run's steps\" viewBox=\"0 0 {WIDTH} {height}\" width=\"{WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LABEL}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/><text x=\"{LABEL}\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        height - 18,
        WIDTH - 70.0,
        height - 18,
        height - 4,
        WIDTH - 70.0,
        height - 4,
        esc(&html::duration(end - start))
    );
    for (i, s) in d.steps.iter().enumerate() {
        let y = i * ROW + 2;
        let stop = s.started_at + s.duration_ms.unwrap_or(now - s.started_at);
        let (x1, x2) = (x(s.started_at), x(stop).max(x(s.started_at) + 2.0));
        let class = match step_state(s) {
            "succeeded" => "bar-ok",
            "failed" => "bar-bad",
            _ => "bar-other",
        };
        let _ = write!(
            out,
            "<g><title>{}: {} after {}, {}{}</title><text x=\"0\" y=\"{}\">{}</text>\
             <rect class=\"{class}\" x=\"{x1:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" rx=\"2\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}{}</text></g>",
            esc(&s.step),
            step_state(s),
            html::duration(s.started_at - start),
            s.duration_ms
                .map(html::duration)
                .unwrap_or_else(|| "still going".into()),
            if s.attempts > 1 {
                format!(", {} attempts", s.attempts)
            } else {
                String::new()
            },
            y + 14,
            esc(&html::clip(&s.step, 28)),
            y + 3,
            x2 - x1,
            ROW - 8,
            x2 + 4.0,
            y + 14,
            esc(&s
                .duration_ms
                .map(html::duration)
                .unwrap_or_else(|| "…".into())),
            if s.attempts > 1 {
                format!(" ×{}", s.attempts)
            } else {
                String::new()
            },
        );
    }
    for (k, (key, at)) in d.timers.iter().enumerate() {
        let y = (d.steps.len() + k) * ROW + 2;
        // A wait: a bar from when it was set to when it fires (or now, if later).
        let set = timers_set.get(key).copied().unwrap_or(*at).max(start);
        let (x1, x2) = (x(set), x((*at).min(end)).max(x(set) + 2.0));
        let _ = write!(
            out,
            "<g><title>timer {}: set after {}, fires after {}</title><text x=\"0\" y=\"{}\">{}</text>\
             <rect class=\"bar-wait\" x=\"{x1:.1}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" rx=\"2\"/>\
             <text x=\"{:.1}\" y=\"{}\">wait {}</text></g>",
            esc(key),
            html::duration(set - start),
            html::duration(*at - start),
            y + 14,
            esc(&html::clip(&format!("timer {key}"), 28)),
            y + 3,
            x2 - x1,
            ROW - 8,
            x2 + 4.0,
            y + 14,
            esc(&html::duration(*at - set)),
        );
    }
    out.push_str("</svg>");
    out
}

/// `GET /ui/runs/{id}/events?after=SEQ`: the run's journal after the event the page was
/// rendered with, as server-sent events (the page's live updates), with the session
/// instead of an API key.
pub async fn events(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let after = pairs(query.as_deref())
        .into_iter()
        .find(|(k, _)| k == "after")
        .and_then(|(_, v)| v.parse::<u32>().ok());
    match run_for(&state, &viewer, &id) {
        Ok(run) => crate::api::runs::journal_stream(&state, &run, &headers, after),
        Err(refused) => refused,
    }
}

/// The run a form posted to `/ui/runs/{id}/...` acts on, once the form passed the
/// checks of [`check_action`] for `runs:write`.
fn run_acted_on(
    state: &Shared,
    viewer: &Viewer,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<RunRow, Response> {
    check_action(viewer, headers, &Form::parse(body), Scope::RunsWrite)?;
    run_for(state, viewer, id)
}

/// `POST /ui/runs/{id}/cancel`.
pub async fn cancel(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = match run_acted_on(&state, &viewer, &id, &headers, &body) {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    if let Err(e) = state.engine.cancel(&run).await {
        return crate::error::ApiError::internal("cannot cancel the run", e).into_response();
    }
    see_other(&format!("/ui/runs/{}", url(&id)))
}

/// `POST /ui/runs/{id}/rerun`: a new run of the same workflow (the deployed version)
/// with the same input, started by the signed-in key.
pub async fn rerun(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = match run_acted_on(&state, &viewer, &id, &headers, &body) {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let d = state.deployment();
    let Some(entry) = d.workflows.get(&run.workflow) else {
        return error_page(
            StatusCode::CONFLICT,
            &format!(
                "Workflow `{}` is not in the deployed version {}; it cannot run again.",
                run.workflow, d.version
            ),
        );
    };
    let origin = RunOrigin {
        trigger: Some("api".into()),
        event: None,
        actor: Some(viewer.key.name.clone()),
        dedupe: None,
    };
    let owner = viewer
        .key
        .owner
        .clone()
        .or_else(|| state.options.owner.clone());
    match crate::api::runs::start_run(
        &state,
        entry,
        &run.workflow,
        run.input.clone(),
        origin,
        owner.as_deref(),
    )
    .await
    {
        Ok(Started::New(h)) => see_other(&format!("/ui/runs/{}", url(&h.run_id))),
        Ok(Started::Existing(r)) => see_other(&format!("/ui/runs/{}", url(&r.run_id))),
        Err(e) => e.into_response(),
    }
}
