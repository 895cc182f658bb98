//! The overview: runs per interval, success rate and p50/p95 duration over the last
//! hour, day or week as charts; the workflows that failed and their latest failed runs
//! (two clicks from here to a failure's error); connection health; schedules that need
//! attention.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use flow_runtime::report::quantile;
use flow_runtime::store::RunFilter;
use flow_runtime::{RunStatus, StoreError};

use super::html::{self, Section, Viewer, clip, esc, page, time, url};
use crate::api::runs::pairs;
use crate::app::AppState;

/// A window the charts cover: its name, length and number of bars.
#[derive(Clone, Copy)]
struct Window {
    name: &'static str,
    length_ms: i64,
    buckets: usize,
    per: &'static str,
}

const WINDOWS: [Window; 3] = [
    Window {
        name: "hour",
        length_ms: 3_600_000,
        buckets: 60,
        per: "minute",
    },
    Window {
        name: "day",
        length_ms: 86_400_000,
        buckets: 48,
        per: "30 minutes",
    },
    Window {
        name: "week",
        length_ms: 7 * 86_400_000,
        buckets: 84,
        per: "2 hours",
    },
];

/// One bar of the charts.
#[derive(Clone, Default)]
struct Bucket {
    completed: u64,
    failed: u64,
    other: u64,
    durations: Vec<i64>,
}

/// What the window's runs add up to.
#[derive(Default)]
struct Summary {
    buckets: Vec<Bucket>,
    /// Per workflow: runs, failed runs.
    workflows: BTreeMap<String, (u64, u64)>,
    durations: Vec<i64>,
}

/// One pass over the window's runs, read through the `created_at` index.
fn summarise(
    store: &flow_runtime::Store,
    since: i64,
    w: Window,
    covers: impl Fn(&str) -> bool,
) -> Result<Summary, StoreError> {
    let width = w.length_ms / w.buckets as i64;
    let mut s = Summary {
        buckets: vec![Bucket::default(); w.buckets],
        ..Summary::default()
    };
    store.query_each(
        "SELECT created_at, status, finished_at, workflow FROM runs WHERE created_at >= ?1 AND parent IS NULL",
        &[since.into()],
        |r| {
            let workflow: String = r.get(3)?;
            if !covers(&workflow) {
                return Ok(());
            }
            let created: i64 = r.get(0)?;
            let status: String = r.get(1)?;
            let finished: Option<i64> = r.get(2)?;
            let i = (((created - since) / width).max(0) as usize).min(w.buckets - 1);
            let b = &mut s.buckets[i];
            let failed = status == RunStatus::Failed.as_str();
            match status.as_str() {
                "completed" => b.completed += 1,
                "failed" => b.failed += 1,
                _ => b.other += 1,
            }
            if let Some(f) = finished {
                b.durations.push(f - created);
                s.durations.push(f - created);
            }
            let entry = s.workflows.entry(workflow).or_default();
            entry.0 += 1;
            entry.1 += u64::from(failed);
            Ok(())
        },
    )?;
    s.durations.sort_unstable();
    for b in &mut s.buckets {
        b.durations.sort_unstable();
    }
    Ok(s)
}

/// `GET /ui/?window=hour|day|week`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Response {
    let chosen = pairs(query.as_deref())
        .into_iter()
        .find(|(k, _)| k == "window")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let w = WINDOWS
        .iter()
        .copied()
        .find(|w| w.name == chosen)
        .unwrap_or(WINDOWS[0]);
    let now = crate::keys::now_ms();
    let since = now - w.length_ms;
    let store = state.engine.store().clone();
    let key = viewer.key.clone();
    let summary =
        tokio::task::spawn_blocking(move || summarise(&store, since, w, |wf| key.covers(wf))).await;
    let summary = match summary {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return crate::error::ApiError::from(e).into_response(),
        Err(e) => {
            return crate::error::ApiError::internal("the overview stopped", e).into_response();
        }
    };
    let mut out = String::from(
        "<h1>Overview</h1><div class=\"toolbar\" role=\"group\" aria-label=\"window\">",
    );
    for other in WINDOWS {
        if other.name == w.name {
            let _ = write!(out, "<b>Last {}</b>", other.name);
        } else {
            let _ = write!(
                out,
                "<a href=\"/ui/?window={}\">Last {}</a>",
                other.name, other.name
            );
        }
    }
    out.push_str("</div>");

    let total: u64 = summary
        .buckets
        .iter()
        .map(|b| b.completed + b.failed + b.other)
        .sum();
    let completed: u64 = summary.buckets.iter().map(|b| b.completed).sum();
    let failed: u64 = summary.buckets.iter().map(|b| b.failed).sum();
    let rate = if completed + failed == 0 {
        "—".to_owned()
    } else {
        percent(completed, completed + failed)
    };
    let _ = write!(
        out,
        "<div class=\"grid\"><div class=\"card\"><h2>Runs</h2><div class=\"figure\">{total}</div><div class=\"muted\">{completed} completed, {failed} failed</div></div>\
         <div class=\"card\"><h2>Success rate</h2><div class=\"figure\">{rate}</div><div class=\"muted\">of finished runs</div></div>\
         <div class=\"card\"><h2>Duration</h2><div class=\"figure\">{}</div><div class=\"muted\">p50; p95 {}</div></div></div>",
        if summary.durations.is_empty() {
            "—".to_owned()
        } else {
            html::duration(quantile(&summary.durations, 0.5))
        },
        if summary.durations.is_empty() {
            "—".to_owned()
        } else {
            html::duration(quantile(&summary.durations, 0.95))
        },
    );

    out.push_str("<section id=\"charts\"><div class=\"grid\">");
    let _ = write!(
        out,
        "<div class=\"card\"><h2>Runs per {}</h2>{}<div class=\"legend\"><span class=\"completed\">completed</span><span class=\"failed\">failed</span><span class=\"cancelled\">other</span></div></div>",
        w.per,
        bars(&summary.buckets)
    );
    let rates: Vec<Option<f64>> = summary
        .buckets
        .iter()
        .map(|b| {
            (b.completed + b.failed > 0)
                .then(|| b.completed as f64 * 100.0 / (b.completed + b.failed) as f64)
        })
        .collect();
    let _ = write!(
        out,
        "<div class=\"card\"><h2>Success rate</h2>{}</div>",
        lines(&[("line-rate", &rates)], "%", Some(100.0))
    );
    let p50: Vec<Option<f64>> = summary
        .buckets
        .iter()
        .map(|b| (!b.durations.is_empty()).then(|| quantile(&b.durations, 0.5) as f64))
        .collect();
    let p95: Vec<Option<f64>> = summary
        .buckets
        .iter()
        .map(|b| (!b.durations.is_empty()).then(|| quantile(&b.durations, 0.95) as f64))
        .collect();
    let _ = write!(
        out,
        "<div class=\"card\"><h2>Duration</h2>{}<div class=\"legend\"><span class=\"running\">p50</span><span class=\"waiting\">p95</span></div></div>",
        lines(&[("line-p50", &p50), ("line-p95", &p95)], " ms", None)
    );
    out.push_str("</div></section>");

    // Failing workflows, worst first, each linking to its failed runs.
    let mut failing: Vec<(&String, &(u64, u64))> = summary
        .workflows
        .iter()
        .filter(|(_, (_, f))| *f > 0)
        .collect();
    failing.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(b.0)));
    out.push_str(
        "<div class=\"grid\"><section id=\"failing\" class=\"card\"><h2>Failing workflows</h2>",
    );
    if failing.is_empty() {
        let _ = write!(
            out,
            "<p class=\"muted\">No run failed in the last {}.</p>",
            w.name
        );
    } else {
        out.push_str("<table><thead><tr><th>Workflow</th><th class=\"num\">Failed</th><th class=\"num\">Runs</th></tr></thead><tbody>");
        for (wf, (runs, failed)) in failing.iter().take(10) {
            let _ = write!(
                out,
                "<tr><td><a href=\"/ui/runs?workflow={}&amp;status=failed\">{}</a></td><td class=\"num failed\">{failed}</td><td class=\"num\">{runs}</td></tr>",
                url(wf),
                esc(wf)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");

    let recent = state.engine.store().list_runs(&RunFilter {
        statuses: vec![RunStatus::Failed],
        limit: Some(8),
        ..RunFilter::default()
    });
    out.push_str("<section id=\"recent-failures\" class=\"card\"><h2>Latest failures</h2>");
    match recent {
        Ok(runs) => {
            let runs: Vec<_> = runs
                .into_iter()
                .filter(|r| viewer.key.covers(&r.workflow))
                .collect();
            if runs.is_empty() {
                out.push_str("<p class=\"muted\">No failed run.</p>");
            }
            out.push_str("<ul>");
            for r in runs {
                let why = r
                    .error
                    .as_ref()
                    .and_then(|e| e.get("message"))
                    .and_then(|m| m.as_str())
                    .unwrap_or("");
                let _ = write!(
                    out,
                    "<li><a class=\"run-link mono\" href=\"/ui/runs/{}\">{}</a> {} {}<br><span class=\"muted\">{}</span></li>",
                    url(&r.run_id),
                    esc(&r.run_id),
                    esc(&r.workflow),
                    time(r.created_at),
                    esc(&clip(why, 120))
                );
            }
            out.push_str("</ul>");
        }
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    }
    out.push_str("</section>");

    out.push_str("<section id=\"health\" class=\"card\"><h2>Connections</h2>");
    out.push_str(&super::operate::health_summary_html(&state, &viewer).await);
    out.push_str("</section>");

    out.push_str("<section id=\"schedules\" class=\"card\"><h2>Schedules</h2>");
    out.push_str(&super::operate::schedules_attention_html(&state, &viewer));
    out.push_str("</section></div>");
    page(&viewer, Section::Overview, "Overview", &out)
}

/// `part` of `whole` as a percentage, with the decimals that keep a failure visible
/// (9,998 of 10,000 is 99.98%, never a rounded 100.0%).
fn percent(part: u64, whole: u64) -> String {
    let p = part as f64 * 100.0 / whole as f64;
    if part == whole {
        "100%".to_owned()
    } else if p >= 99.9 {
        format!("{:.2}%", p.min(99.99))
    } else {
        format!("{p:.1}%")
    }
}

const CHART_W: f64 = 420.0;
const CHART_H: f64 = 120.0;
const AXIS: f64 = 34.0;

/// Stacked bars: completed, failed, other.
fn bars(buckets: &[Bucket]) -> String {
    let max = buckets
        .iter()
        .map(|b| b.completed + b.failed + b.other)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = (CHART_W - AXIS) / buckets.len() as f64;
    let mut out = chart_open("runs per interval", max, "");
    for (i, b) in buckets.iter().enumerate() {
        let x = AXIS + i as f64 * step;
        let mut y = CHART_H;
        for (count, class) in [
            (b.completed, "bar-ok"),
            (b.failed, "bar-bad"),
            (b.other, "bar-other"),
        ] {
            if count == 0 {
                continue;
            }
            let h = count as f64 / max * (CHART_H - 6.0);
            y -= h;
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{count}</title></rect>",
                (step - 1.0).max(1.0)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Lines over the buckets; a gap where a bucket has no value.
fn lines(series: &[(&str, &Vec<Option<f64>>)], unit: &str, fixed_max: Option<f64>) -> String {
    let max = fixed_max.unwrap_or_else(|| {
        series
            .iter()
            .flat_map(|(_, s)| s.iter().flatten())
            .fold(0.0f64, |a, b| a.max(*b))
            .max(1.0)
    });
    let mut out = chart_open("trend", max, unit);
    for (class, values) in series {
        let n = values.len().max(1) as f64;
        let step = (CHART_W - AXIS) / n;
        let mut d = String::new();
        let mut dots = String::new();
        let mut pen_down = false;
        for (i, v) in values.iter().enumerate() {
            match v {
                Some(v) => {
                    let x = AXIS + (i as f64 + 0.5) * step;
                    let y = CHART_H - v / max * (CHART_H - 6.0);
                    let _ = write!(d, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
                    let _ = write!(
                        dots,
                        "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"1.8\"><title>{}</title></circle>",
                        if unit == " ms" {
                            html::duration(*v as i64)
                        } else {
                            format!("{v:.1}{unit}")
                        }
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = write!(
                out,
                "<path class=\"{class}\" d=\"{}\"/>{dots}",
                d.trim_end()
            );
        }
    }
    out.push_str("</svg>");
    out
}

fn chart_open(label: &str, max: f64, unit: &str) -> String {
    let top = if unit == " ms" {
        html::duration(max as i64)
    } else {
        format!("{}{unit}", max.round())
    };
    format!(
        "<svg role=\"img\" aria-label=\"{label}\" viewBox=\"0 0 {CHART_W} {}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\">\
         <line class=\"axis\" x1=\"{AXIS}\" y1=\"{CHART_H}\" x2=\"{CHART_W}\" y2=\"{CHART_H}\"/>\
         <text x=\"0\" y=\"12\">{}</text><text x=\"0\" y=\"{CHART_H}\">0</text>",
        CHART_H + 4.0,
        esc(&top)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_never_rounds_away() {
        assert_eq!(percent(10_000, 10_000), "100%");
        assert_eq!(percent(10_000, 10_002), "99.98%");
        assert_eq!(percent(999_999, 1_000_000), "99.99%");
        assert_eq!(percent(1, 3), "33.3%");
    }
}
