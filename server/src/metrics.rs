//! Prometheus metrics. Labels are bounded: workflow, trigger, status, integration, action,
//! route and result; never a run id, a key or a path a caller chose.
//!
//! - `flow_runs_started_total{workflow,trigger}`, `flow_runs_finished_total{workflow,status}`
//! - `flow_step_duration_seconds{integration,action}` (histogram),
//!   `flow_step_retries_total`, `flow_step_failures_total` (a child run counts as
//!   integration `run`, action the workflow)
//! - `flow_runs_in_flight`, `flow_admission_wait_seconds`
//! - `flow_schedule_fires_total`, `flow_schedule_misses_total`, `flow_schedule_skips_total`,
//!   `flow_schedule_lateness_seconds`
//! - `flow_webhook_requests_total{result}`, `flow_http_requests_total{route,status}`,
//!   `flow_http_request_duration_seconds{route}`
//! - `flow_deployment_version`, `flow_uptime_seconds`
//! - `flow_store_up` (0 while the store's writer cannot reach it: a PostgreSQL outage),
//!   `flow_store_outages_total`

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use flow_runtime::{Observer, Progress};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::Shared;

/// Installs the process-wide recorder (once) and returns its handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a test harness): keep a private one.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Gauges read when `/metrics` is scraped.
pub fn refresh(state: &Shared) {
    metrics::gauge!("flow_deployment_version").set(state.deployment().version as f64);
    metrics::gauge!("flow_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    let (up, outages) = state.engine.store().health();
    metrics::gauge!("flow_store_up").set(if up { 1.0 } else { 0.0 });
    metrics::counter!("flow_store_outages_total").absolute(outages);
}

/// Counts requests by route template and status, and times them.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::counter!("flow_http_requests_total", "route" => route.clone(), "status" => response.status().as_u16().to_string())
        .increment(1);
    metrics::histogram!("flow_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Top-level runs executing in this process.
pub static RUNS_IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

/// The engine's observer: run and step outcomes as metrics.
pub struct Metrics;

impl Observer for Metrics {
    fn progress(&self, _run_id: &str, workflow: &str, child: bool, event: &Progress) {
        match event {
            Progress::RunStarted { .. } if !child => {
                let n = RUNS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
                metrics::gauge!("flow_runs_in_flight").set(n as f64);
            }
            Progress::RunFinished { status, .. } if !child => {
                let n = RUNS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed) - 1;
                metrics::gauge!("flow_runs_in_flight").set(n as f64);
                metrics::counter!("flow_runs_finished_total", "workflow" => workflow.to_owned(), "status" => status.as_str())
                    .increment(1);
            }
            Progress::StepSucceeded {
                action,
                elapsed,
                replayed: false,
                attempt,
                ..
            } => {
                let (integration, action) = split_action(action);
                metrics::histogram!("flow_step_duration_seconds", "integration" => integration.to_owned(), "action" => action.to_owned())
                    .record(elapsed.as_secs_f64());
                if *attempt > 1 {
                    metrics::counter!("flow_step_retries_total", "integration" => integration.to_owned(), "action" => action.to_owned())
                        .increment(u64::from(*attempt - 1));
                }
            }
            Progress::StepFailed {
                action, last: true, ..
            } => {
                let (integration, action) = split_action(action);
                metrics::counter!("flow_step_failures_total", "integration" => integration.to_owned(), "action" => action.to_owned())
                    .increment(1);
            }
            _ => {}
        }
    }
}

/// `integration.action` as its two labels; a child run (`run WORKFLOW`) is integration
/// `run`, action the workflow.
fn split_action(label: &str) -> (&str, &str) {
    label
        .split_once('.')
        .or_else(|| label.split_once(' '))
        .unwrap_or(("", label))
}
