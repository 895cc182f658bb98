//! The deployed workflows: a table of them, and a page per workflow with its signature,
//! trigger, the deployment versions that carried it, its graph, recent runs, per-step
//! statistics over its recent runs, and `flow optimize`'s score and recommendations.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flow_runtime::report::stats_over;
use flow_runtime::store::RunFilter;

use super::graph;
use super::html::{self, Section, Viewer, error_page, esc, page, time, url};
use crate::api::runs::trigger_text;
use crate::app::AppState;

/// How many recent runs a workflow's statistics cover.
const STATS_RUNS: u64 = 200;

/// `GET /ui/workflows`.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Response {
    let d = state.deployment();
    let mut out = format!(
        "<h1>Workflows</h1><p class=\"muted\">Deployment version {}, deployed {}.</p>",
        d.version,
        time(d.created_at)
    );
    out.push_str("<div class=\"scroll\"><table id=\"workflows\"><thead><tr><th>Workflow</th><th>Signature</th><th>Trigger</th><th>Last run</th></tr></thead><tbody>");
    for (name, entry) in d.workflows.iter().filter(|(n, _)| viewer.key.covers(n)) {
        let Some(wf) = entry.program.program.workflow(entry.workflow) else {
            continue;
        };
        let last = state
            .engine
            .store()
            .list_runs(&RunFilter {
                workflow: Some(name.clone()),
                limit: Some(1),
                ..RunFilter::default()
            })
            .ok()
            .and_then(|mut r| r.pop());
        let _ = write!(
            out,
            "<tr><td><a href=\"/ui/workflows/{}\">{}</a></td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td></tr>",
            url(name),
            esc(name),
            esc(&signature(wf)),
            esc(&wf
                .trigger
                .as_ref()
                .map(|t| trigger_text(&entry.program.program, &t.kind))
                .unwrap_or_default()),
            last.map(|r| format!(
                "<a href=\"/ui/runs/{}\">{}</a> {}",
                url(&r.run_id),
                html::status(r.status.as_str()),
                time(r.created_at)
            ))
            .unwrap_or_else(|| "<span class=\"muted\">never</span>".into()),
        );
    }
    out.push_str("</tbody></table></div>");
    page(&viewer, Section::Workflows, "Workflows", &out)
}

/// `(name: type, ...) -> type`.
fn signature(wf: &flow_ir::program::Workflow) -> String {
    let params: Vec<String> = wf
        .params
        .iter()
        .map(|p| {
            format!(
                "{}: {}{}",
                p.name,
                p.ty,
                if p.default.is_some() { " = …" } else { "" }
            )
        })
        .collect();
    match &wf.result {
        Some(t) => format!("({}) -> {t}", params.join(", ")),
        None => format!("({})", params.join(", ")),
    }
}

/// `GET /ui/workflows/{name}`.
pub async fn detail(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let d = state.deployment();
    let entry = match d.workflows.get(&name) {
        Some(e) if viewer.key.covers(&name) => e,
        _ => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("No workflow `{name}` is deployed (version {}).", d.version),
            );
        }
    };
    let program = &entry.program.program;
    let Some(wf) = program.workflow(entry.workflow) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "The workflow is missing from its program.",
        );
    };
    let mut out = format!("<h1>{}</h1>", esc(&name));
    if let Some(doc) = &wf.doc {
        let _ = write!(out, "<p>{}</p>", esc(doc));
    }
    let _ = write!(
        out,
        "<dl class=\"facts\" id=\"signature\"><dt>Signature</dt><dd class=\"mono\">{}{}</dd><dt>Trigger</dt><dd class=\"mono\">{}</dd>\
         <dt>Program</dt><dd class=\"mono\">{}</dd><dt>Steps</dt><dd>{}</dd></dl>",
        esc(&name),
        esc(&signature(wf)),
        esc(&wf
            .trigger
            .as_ref()
            .map(|t| trigger_text(program, &t.kind))
            .unwrap_or_else(|| "none: started by `flow run`, the API or a parent".into())),
        esc(entry.program.hash.get(..12).unwrap_or(&entry.program.hash)),
        wf.steps.len(),
    );
    let _ = write!(
        out,
        "<div class=\"toolbar\"><a href=\"/ui/runs?workflow={}\">All runs</a><a href=\"/ui/runs?workflow={}&amp;status=failed\">Failed runs</a></div>",
        url(&name),
        url(&name)
    );

    out.push_str("<h2>Graph</h2><div id=\"graph\" class=\"scroll\">");
    out.push_str(&graph::svg(program, wf, &HashMap::new()));
    out.push_str("</div>");

    let store = state.engine.store().clone();
    let wf_name = name.clone();
    let recent = tokio::task::spawn_blocking(move || {
        let runs = store.list_runs(&RunFilter {
            workflow: Some(wf_name.clone()),
            limit: Some(STATS_RUNS),
            ..RunFilter::default()
        })?;
        let stats = stats_over(&store, Some(&wf_name), &runs)?;
        Ok::<_, flow_runtime::StoreError>((runs, stats))
    })
    .await;
    let (runs, stats) = match recent {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return crate::error::ApiError::from(e).into_response(),
        Err(e) => {
            return crate::error::ApiError::internal("the statistics stopped", e).into_response();
        }
    };

    out.push_str("<h2>Recent runs</h2><div id=\"recent-runs\" class=\"scroll\">");
    if runs.is_empty() {
        out.push_str("<p class=\"muted\">No run yet.</p>");
    } else {
        out.push_str("<table><thead><tr><th>Run</th><th>Status</th><th>Created</th><th class=\"num\">Duration</th></tr></thead><tbody>");
        for r in runs.iter().take(15) {
            let _ = write!(
                out,
                "<tr><td><a class=\"run-link mono\" href=\"/ui/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                url(&r.run_id),
                esc(&r.run_id),
                html::status(r.status.as_str()),
                time(r.created_at),
                r.finished_at
                    .map(|f| html::duration(f - r.created_at))
                    .unwrap_or_default()
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</div>");

    let _ = write!(
        out,
        "<h2>Steps over the last {} run{}</h2><div id=\"step-stats\" class=\"scroll\">",
        stats.runs,
        if stats.runs == 1 { "" } else { "s" }
    );
    if stats.steps.is_empty() {
        out.push_str("<p class=\"muted\">No step has run yet.</p>");
    } else {
        let _ = write!(
            out,
            "<p>Success rate {:.1}% · p50 {} · p95 {}</p>",
            stats.success_rate * 100.0,
            html::duration(stats.p50_ms),
            html::duration(stats.p95_ms)
        );
        out.push_str("<table><thead><tr><th>Step</th><th class=\"num\">Runs</th><th class=\"num\">p50</th><th class=\"num\">p95</th><th class=\"num\">Retries</th><th class=\"num\">Failures</th></tr></thead><tbody>");
        for s in &stats.steps {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&s.step),
                s.runs,
                html::duration(s.p50_ms),
                html::duration(s.p95_ms),
                s.retries,
                s.failures
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</div>");

    let opt = flow_runtime::optimize::optimize(wf, &stats, program);
    let _ = write!(
        out,
        "<h2>Optimisation</h2><div id=\"optimize\"><p><span class=\"figure\">{}</span> / 100 over {} run{}; critical path {} ({})</p>",
        opt.score,
        opt.runs_analysed,
        if opt.runs_analysed == 1 { "" } else { "s" },
        esc(&opt.critical_path.join(" → ")),
        html::duration(opt.critical_path_ms as i64)
    );
    if opt.recommendations.is_empty() {
        out.push_str("<p class=\"muted\">Nothing to improve.</p>");
    } else {
        out.push_str("<ul>");
        for r in &opt.recommendations {
            let _ = write!(
                out,
                "<li><b>{}</b> ({}, −{}): {}</li>",
                esc(&r.step),
                esc(r.kind),
                r.penalty,
                esc(&r.message)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</div>");

    let versions = crate::deployment::list(state.engine.store()).unwrap_or_default();
    out.push_str("<h2>Versions</h2><div id=\"versions\" class=\"scroll\"><table><thead><tr><th>Version</th><th>Deployed</th><th>By</th><th></th></tr></thead><tbody>");
    for v in versions
        .iter()
        .filter(|v| v.workflows.contains(&name))
        .take(20)
    {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v.version,
            time(v.created_at),
            esc(&v.actor),
            if v.active {
                html::status("active")
            } else {
                String::new()
            }
        );
    }
    out.push_str("</tbody></table></div>");
    page(&viewer, Section::Workflows, &name, &out)
}
