//! The operator's pages: schedules (next and last fire, missed and skipped counts,
//! pause, resume, trigger now), webhook deliveries (accepted runs and rejected or
//! unmatched deliveries with their reasons), and connections (health, latency, circuit
//! state, declared rate limit, last error, and the audit log of credential uses). A
//! connection is shown by its names and health only: no credential, masked or not,
//! reaches a page.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flow_connectors::health::Summary;
use flow_runtime::store::RunFilter;

use super::html::{self, Section, Viewer, error_page, esc, page, time, url};
use super::{Form, check_action};
use crate::app::{AppState, Shared};
use crate::keys::Scope;
use crate::schedule;

/// How long a probe of the connections stays fresh.
const HEALTH_FRESH_MS: i64 = 60_000;

/// The last probe of the connections (when it was made), and whether one is under way.
#[derive(Default)]
pub struct HealthCache {
    last: std::sync::Mutex<Option<(i64, Arc<Summary>)>>,
    probing: std::sync::atomic::AtomicBool,
}

impl HealthCache {
    fn get(&self) -> Option<(i64, Arc<Summary>)> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn put(&self, summary: Summary) -> Arc<Summary> {
        let summary = Arc::new(summary);
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((crate::keys::now_ms(), Arc::clone(&summary)));
        summary
    }
}

/// Starts a probe in the background unless one is fresh or under way.
fn refresh_in_background(state: &AppState) {
    let fresh = state
        .health
        .get()
        .is_some_and(|(at, _)| crate::keys::now_ms() - at < HEALTH_FRESH_MS);
    if fresh
        || state
            .health
            .probing
            .swap(true, std::sync::atomic::Ordering::AcqRel)
    {
        return;
    }
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if let Ok(summary) = crate::api::admin::probe_connections(&state, None).await {
            state.health.put(summary);
        }
        state
            .health
            .probing
            .store(false, std::sync::atomic::Ordering::Release);
    });
}

/// The overview's health card: the score and unhealthy connections of the last probe
/// (a stale probe is refreshed in the background; the page never waits for one).
pub async fn health_summary_html(state: &AppState, viewer: &Viewer) -> String {
    refresh_in_background(state);
    let Some((at, s)) = state.health.get() else {
        return "<p class=\"muted\">Probing the connections; <a href=\"/ui/connections\">see them</a>.</p>".to_owned();
    };
    let _ = viewer;
    let mut out = format!(
        "<div class=\"figure\">{} / {}</div><div class=\"muted\">connections healthy, probed {}</div>",
        s.healthy,
        s.total,
        time(at)
    );
    let bad: Vec<_> = s
        .connections
        .iter()
        .filter(|c| c.status == "unhealthy")
        .collect();
    if !bad.is_empty() {
        out.push_str("<ul>");
        for c in bad {
            let _ = write!(
                out,
                "<li class=\"unhealthy\">{} ({}): {}</li>",
                esc(&c.integration),
                esc(&c.owner),
                esc(c.message.as_deref().unwrap_or("unhealthy"))
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("<p><a href=\"/ui/connections\">All connections</a></p>");
    out
}

/// The deployed schedules' states, of the workflows the viewer's key covers.
fn visible_schedules(
    state: &Shared,
    viewer: &Viewer,
) -> Result<Vec<schedule::ScheduleState>, flow_runtime::StoreError> {
    let d = state.deployment();
    let mut list = schedule::states(state.engine.store(), &d.schedules, crate::keys::now_ms())?;
    list.retain(|s| viewer.key.covers(&s.workflow));
    Ok(list)
}

/// The overview's schedules card: paused schedules and those that missed or skipped.
pub fn schedules_attention_html(state: &Shared, viewer: &Viewer) -> String {
    let list = match visible_schedules(state, viewer) {
        Ok(l) => l,
        Err(e) => return format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
    };
    if list.is_empty() {
        return "<p class=\"muted\">No workflow has a schedule.</p>".to_owned();
    }
    let attention: Vec<_> = list
        .iter()
        .filter(|s| s.paused || s.missed > 0 || s.skipped > 0)
        .collect();
    let mut out = format!(
        "<p>{} schedule{}, {} needing attention.</p>",
        list.len(),
        if list.len() == 1 { "" } else { "s" },
        attention.len()
    );
    if !attention.is_empty() {
        out.push_str("<ul>");
        for s in attention {
            let _ = write!(
                out,
                "<li><b>{}</b>{}: {} missed, {} skipped</li>",
                esc(&s.workflow),
                if s.paused { " (paused)" } else { "" },
                s.missed,
                s.skipped
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("<p><a href=\"/ui/schedules\">All schedules</a></p>");
    out
}

/// `GET /ui/schedules`.
pub async fn schedules(State(state): State<AppState>, viewer: Viewer) -> Response {
    let list = match visible_schedules(&state, &viewer) {
        Ok(l) => l,
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let mut out = String::from("<h1>Schedules</h1>");
    out.push_str("<div class=\"scroll\"><table id=\"schedules\"><thead><tr><th>Workflow</th><th>Cron</th><th>Time zone</th><th>State</th><th>Next fire</th><th>Last fire</th><th class=\"num\">Fires</th><th class=\"num\">Missed</th><th class=\"num\">Skipped</th><th></th></tr></thead><tbody>");
    for s in &list {
        let base = format!("/ui/schedules/{}", url(&s.workflow));
        let toggle = if s.paused {
            viewer.button(
                Scope::Admin,
                &format!("{base}/resume"),
                "",
                "resume",
                "Resume",
            )
        } else {
            viewer.button(Scope::Admin, &format!("{base}/pause"), "", "pause", "Pause")
        };
        let trigger = viewer.button(
            Scope::Admin,
            &format!("{base}/trigger"),
            "",
            "trigger",
            "Trigger now",
        );
        let _ = write!(
            out,
            "<tr data-workflow=\"{}\"><td><a href=\"/ui/workflows/{}\">{}</a></td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{toggle} {trigger}</td></tr>",
            esc(&s.workflow),
            url(&s.workflow),
            esc(&s.workflow),
            esc(&s.cron),
            esc(&s.time_zone),
            html::status(if s.paused { "paused" } else { "running" }),
            esc(s.next_fire.as_deref().unwrap_or("—")),
            esc(s.last_fire.as_deref().unwrap_or("—")),
            s.fires,
            s.missed,
            s.skipped,
        );
    }
    out.push_str("</tbody></table></div>");
    if list.is_empty() {
        out.push_str(
            "<p class=\"muted\">No deployed workflow has <code>on schedule(...)</code>.</p>",
        );
    }
    page(&viewer, Section::Schedules, "Schedules", &out)
}

/// `POST /ui/schedules/{workflow}/{pause|resume|trigger}` (scope `admin`).
pub async fn schedule_action(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((workflow, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = Form::parse(&body);
    if let Err(refused) = check_action(&viewer, &headers, &form, Scope::Admin) {
        return refused;
    }
    if !viewer.key.covers(&workflow) {
        return error_page(
            StatusCode::FORBIDDEN,
            &format!(
                "The key `{}` may not touch workflow `{workflow}`.",
                viewer.key.name
            ),
        );
    }
    let d = state.deployment();
    let Some(s) = d.schedules.iter().find(|s| s.name == workflow) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!(
                "Workflow `{workflow}` has no schedule in deployment {}.",
                d.version
            ),
        );
    };
    let done = match action.as_str() {
        "pause" | "resume" => schedule::set_paused(state.engine.store(), s, action == "pause")
            .await
            .map(|_| None)
            .map_err(crate::error::ApiError::from),
        "trigger" => schedule::fire(
            &state,
            s,
            crate::keys::now_ms(),
            schedule::Gate::Manual,
            &state.buffered,
        )
        .await
        .map_err(|e| crate::error::ApiError::internal("cannot trigger the schedule", e)),
        other => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("There is no schedule action `{other}`."),
            );
        }
    };
    match done {
        Ok(_) => html::see_other("/ui/schedules"),
        Err(e) => e.into_response(),
    }
}

/// `GET /ui/webhooks`: runs started by deliveries, and deliveries that started none.
pub async fn webhooks(State(state): State<AppState>, viewer: Viewer) -> Response {
    let d = state.deployment();
    let mut out = String::from("<h1>Webhooks</h1>");
    out.push_str("<h2>Endpoints</h2><div class=\"scroll\"><table id=\"endpoints\"><thead><tr><th>Path</th><th>Starts</th></tr></thead><tbody>");
    let mut paths: Vec<(String, String)> = d
        .hooks
        .iter()
        .map(|(p, h)| (format!("/hooks{p}"), h.name.clone()))
        .chain(d.events.iter().flat_map(|(p, subs)| {
            subs.iter()
                .map(move |s| (format!("/hooks{p}"), s.name.clone()))
        }))
        .filter(|(_, w)| viewer.key.covers(w))
        .collect();
    paths.sort();
    for (path, wf) in &paths {
        let _ = write!(
            out,
            "<tr><td class=\"mono\">POST {}</td><td><a href=\"/ui/workflows/{}\">{}</a></td></tr>",
            esc(path),
            url(wf),
            esc(wf)
        );
    }
    out.push_str("</tbody></table></div>");
    if paths.is_empty() {
        out.push_str("<p class=\"muted\">No deployed workflow is started by a webhook or an integration event.</p>");
    }

    out.push_str("<section id=\"deliveries\"><h2>Accepted deliveries</h2>");
    let mut accepted = Vec::new();
    for trigger in ["webhook", "event"] {
        match state.engine.store().list_runs(&RunFilter {
            trigger: Some(trigger.into()),
            limit: Some(25),
            ..RunFilter::default()
        }) {
            Ok(runs) => accepted.extend(runs),
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        }
    }
    accepted.retain(|r| viewer.key.covers(&r.workflow));
    accepted.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    accepted.truncate(25);
    if accepted.is_empty() {
        out.push_str("<p class=\"muted\">No delivery has started a run.</p>");
    } else {
        out.push_str("<div class=\"scroll\"><table id=\"accepted\"><thead><tr><th>Received</th><th>Trigger</th><th>Workflow</th><th>Run</th><th>Status</th></tr></thead><tbody>");
        for r in &accepted {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td><a class=\"mono\" href=\"/ui/runs/{}\">{}</a></td><td>{}</td></tr>",
                time(r.created_at),
                esc(r.origin.trigger.as_deref().unwrap_or("")),
                esc(&r.workflow),
                url(&r.run_id),
                esc(&r.run_id),
                html::status(r.status.as_str())
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("<h2>Rejected and unmatched deliveries</h2>");
    if !viewer.may(Scope::Admin) {
        out.push_str("<p class=\"muted\">Rejected deliveries are shown to keys with the <code>admin</code> scope.</p>");
    } else {
        match crate::hooks::recorded(state.engine.store(), 100) {
            Ok(list) if list.is_empty() => {
                out.push_str("<p class=\"muted\">No delivery was rejected or went unmatched.</p>")
            }
            Ok(list) => {
                out.push_str("<div class=\"scroll\"><table id=\"rejected\"><thead><tr><th>Received</th><th>Path</th><th>Answer</th><th>Outcome</th><th>Reason</th><th>Delivery id</th></tr></thead><tbody>");
                for r in list {
                    let _ = write!(
                        out,
                        "<tr><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                        time(r.at),
                        esc(&r.path),
                        r.status,
                        html::status(&r.outcome),
                        esc(r.reason.as_deref().unwrap_or("")),
                        esc(r.delivery_id.as_deref().unwrap_or(""))
                    );
                }
                out.push_str("</tbody></table></div>");
            }
            Err(e) => return crate::error::ApiError::from(e).into_response(),
        }
    }
    out.push_str("</section>");
    page(&viewer, Section::Webhooks, "Webhooks", &out)
}

/// `GET /ui/connections`: waits for a probe when the last one is stale (at most as long
/// as the slowest health request's own timeout).
pub async fn connections(State(state): State<AppState>, viewer: Viewer) -> Response {
    let mut out = String::from("<h1>Connections</h1>");
    if !viewer.may(Scope::Admin) {
        out.push_str("<p class=\"muted\">Connections are shown to keys with the <code>admin</code> scope.</p><section id=\"connections\"></section><section id=\"audit\"></section>");
        return page(&viewer, Section::Connections, "Connections", &out);
    }
    let summary = match state.health.get() {
        Some((at, s)) if crate::keys::now_ms() - at < HEALTH_FRESH_MS => (at, s),
        _ => match crate::api::admin::probe_connections(&state, None).await {
            Ok(s) => (crate::keys::now_ms(), state.health.put(s)),
            Err(e) => return e.into_response(),
        },
    };
    let d = state.deployment();
    let rate_of = |name: &str| {
        d.programs
            .iter()
            .flat_map(|p| p.program.integrations.iter())
            .find(|i| i.name == name)
            .and_then(|i| i.rate_limit.as_ref())
            .map(|r| format!("{} per {}", r.count, html::duration(r.per / 1_000_000)))
    };
    let _ = write!(
        out,
        "<section id=\"connections\"><p>{} of {} healthy; probed {}.</p>",
        summary.1.healthy,
        summary.1.total,
        time(summary.0)
    );
    if summary.1.connections.is_empty() {
        out.push_str("<p class=\"muted\">No connection is stored for the integrations this deployment uses. Add one with <code>flow connect INTEGRATION</code>.</p>");
    } else {
        out.push_str("<div class=\"scroll\"><table><thead><tr><th>Integration</th><th>Owner</th><th>Health</th><th class=\"num\">Latency</th><th>Circuit</th><th class=\"num\">Calls (1 h)</th><th class=\"num\">Error rate</th><th>Rate limit</th><th>Last error</th></tr></thead><tbody>");
        for c in &summary.1.connections {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.integration),
                esc(&c.owner),
                html::status(&c.status),
                c.latency_ms.map(|l| format!("{l} ms")).unwrap_or_default(),
                html::status(&c.circuit),
                c.calls_last_hour,
                c.error_rate
                    .map(|r| format!("{:.1}%", r * 100.0))
                    .unwrap_or_default(),
                esc(&rate_of(&c.integration).unwrap_or_else(|| "none declared".into())),
                esc(c.message.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section><section id=\"audit\"><h2>Credential uses</h2>");
    let audit = state
        .connections
        .vault()
        .map_err(|e| e.to_string())
        .and_then(|v| v.audit_log(None, 100).map_err(|e| e.to_string()));
    match audit {
        Ok(rows) if rows.is_empty() => {
            out.push_str("<p class=\"muted\">No credential has been used yet.</p>")
        }
        Ok(rows) => {
            out.push_str("<div class=\"scroll\"><table><thead><tr><th>When</th><th>Integration</th><th>Owner</th><th>Purpose</th><th>Outcome</th><th>Run</th><th>Step</th><th>Actor</th></tr></thead><tbody>");
            for r in rows {
                let run = r
                    .run_id
                    .as_deref()
                    .map(|id| {
                        format!(
                            "<a class=\"mono\" href=\"/ui/runs/{}\">{}</a>",
                            url(id),
                            esc(id)
                        )
                    })
                    .unwrap_or_default();
                let _ = write!(
                    out,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{run}</td><td>{}</td><td>{}</td></tr>",
                    time(r.at),
                    esc(&r.integration),
                    esc(&r.owner),
                    esc(&r.purpose),
                    esc(&r.outcome),
                    esc(r.step.as_deref().unwrap_or("")),
                    esc(r.actor.as_deref().unwrap_or("")),
                );
            }
            out.push_str("</tbody></table></div>");
        }
        Err(e) => {
            let _ = write!(
                out,
                "<p class=\"error\">The audit log cannot be read: {}</p>",
                esc(&e)
            );
        }
    }
    out.push_str("</section>");
    page(&viewer, Section::Connections, "Connections", &out)
}
