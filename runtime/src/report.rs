//! Read models over the journal: a run's steps with status, attempts, durations and
//! errors (`flow runs show`), and aggregates over many runs (`flow stats`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::StepError;
use crate::store::{Event, EventKind, RunFilter, RunRow, Store, StoreError};

/// One step instance of a run, as the journal tells it.
#[derive(Clone, Debug, Serialize)]
pub struct StepSummary {
    pub step: String,
    /// `succeeded`, `failed` or `running` (started, no outcome yet).
    pub status: &'static str,
    pub attempts: u32,
    /// From the first attempt's start to the outcome, in milliseconds.
    pub duration_ms: Option<i64>,
    pub started_at: i64,
    pub error: Option<StepError>,
    /// The signal a `wait signal(...)` step waits for, while it waits.
    pub waiting_for: Option<String>,
    /// The event (`integration.event`) a `wait integration.event(...)` step waits for,
    /// while it waits.
    pub waiting_for_event: Option<String>,
}

/// A run with its steps.
#[derive(Clone, Debug, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunRow,
    pub duration_ms: Option<i64>,
    pub steps: Vec<StepSummary>,
    /// `wait` timers: key and the Unix-ms instant they fire.
    pub timers: Vec<(String, i64)>,
    pub logs: Vec<String>,
}

/// Folds a run's events into per-step summaries, in the order steps started.
pub fn steps_of(events: &[Event]) -> Vec<StepSummary> {
    let mut order: Vec<String> = Vec::new();
    let mut steps: BTreeMap<String, StepSummary> = BTreeMap::new();
    for e in events {
        let Some(step) = e.step.as_deref() else {
            continue;
        };
        match e.kind {
            EventKind::StepStarted => {
                let s = steps.entry(step.to_owned()).or_insert_with(|| {
                    order.push(step.to_owned());
                    StepSummary {
                        step: step.to_owned(),
                        status: "running",
                        attempts: 0,
                        duration_ms: None,
                        started_at: e.at,
                        error: None,
                        waiting_for: None,
                        waiting_for_event: None,
                    }
                });
                s.attempts = s.attempts.max(e.attempt.unwrap_or(1));
                s.status = "running";
                let data = e
                    .data
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok());
                let text = |k: &str| data.as_ref()?.get(k)?.as_str().map(str::to_owned);
                s.waiting_for = text("signal");
                s.waiting_for_event = text("event");
            }
            EventKind::StepSucceeded => {
                if let Some(s) = steps.get_mut(step) {
                    s.status = "succeeded";
                    s.waiting_for = None;
                    s.waiting_for_event = None;
                    s.duration_ms = Some(e.at - s.started_at);
                    s.attempts = s.attempts.max(e.attempt.unwrap_or(1));
                    s.error = None;
                }
            }
            EventKind::StepFailed => {
                if let Some(s) = steps.get_mut(step) {
                    let data: serde_json::Value = e
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or_default();
                    s.error = data
                        .get("error")
                        .and_then(|v| serde_json::from_value(v.clone()).ok());
                    if data.get("final").and_then(serde_json::Value::as_bool) == Some(true) {
                        s.status = "failed";
                        s.waiting_for = None;
                        s.waiting_for_event = None;
                        s.duration_ms = Some(e.at - s.started_at);
                    }
                }
            }
            _ => {}
        }
    }
    order.into_iter().filter_map(|k| steps.remove(&k)).collect()
}

/// A run with its steps, by id.
pub fn run_detail(store: &Store, run_id: &str) -> Result<RunDetail, StoreError> {
    let run = store
        .run_by_id(run_id)?
        .ok_or_else(|| StoreError::NoSuchRun(run_id.to_owned()))?;
    let events = store.events(run.key)?;
    Ok(detail(run, &events))
}

pub fn detail(run: RunRow, events: &[Event]) -> RunDetail {
    let steps = steps_of(events);
    let timers = events
        .iter()
        .filter(|e| e.kind == EventKind::TimerSet)
        .filter_map(|e| Some((e.step.clone()?, e.data.as_deref()?.parse().ok()?)))
        .collect();
    let logs = events
        .iter()
        .filter(|e| e.kind == EventKind::Log)
        .filter_map(|e| serde_json::from_str::<String>(e.data.as_deref()?).ok())
        .collect();
    let duration_ms = run.finished_at.map(|f| f - run.created_at);
    RunDetail {
        run,
        duration_ms,
        steps,
        timers,
        logs,
    }
}

/// Durations and retries of one step across runs.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StepStats {
    pub step: String,
    pub runs: usize,
    pub mean_ms: f64,
    pub p50_ms: i64,
    pub p95_ms: i64,
    /// Attempts beyond the first, summed over runs.
    pub retries: u64,
    /// Runs in which the step needed more than one attempt.
    pub runs_with_retries: usize,
    pub failures: usize,
}

/// Aggregates over the finished runs of a workflow (or all workflows).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub workflow: Option<String>,
    pub runs: usize,
    pub completed: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub unfinished: usize,
    pub success_rate: f64,
    pub mean_ms: f64,
    pub p50_ms: i64,
    pub p95_ms: i64,
    pub steps: Vec<StepStats>,
}

/// The `q` quantile (nearest rank) of sorted values.
pub fn quantile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn mean(values: &[i64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<i64>() as f64 / values.len() as f64
    }
}

/// Statistics over runs created at or after `since` (Unix ms).
pub fn stats(
    store: &Store,
    workflow: Option<&str>,
    since: Option<i64>,
) -> Result<Stats, StoreError> {
    let filter = RunFilter {
        workflow: workflow.map(str::to_owned),
        since,
        ..RunFilter::default()
    };
    let runs = store.list_runs(&filter)?;
    stats_over(store, workflow, &runs)
}

/// Statistics over the given runs (the dashboard's: a workflow's most recent ones).
pub fn stats_over(
    store: &Store,
    workflow: Option<&str>,
    runs: &[RunRow],
) -> Result<Stats, StoreError> {
    let mut s = Stats {
        workflow: workflow.map(str::to_owned),
        runs: runs.len(),
        ..Stats::default()
    };
    let mut durations = Vec::new();
    let mut per_step: BTreeMap<String, (Vec<i64>, u64, usize, usize, usize)> = BTreeMap::new();
    for run in runs {
        match run.status {
            crate::store::RunStatus::Completed => s.completed += 1,
            crate::store::RunStatus::Failed => s.failed += 1,
            crate::store::RunStatus::Cancelled => s.cancelled += 1,
            _ => s.unfinished += 1,
        }
        if let Some(f) = run.finished_at {
            durations.push(f - run.created_at);
        }
        for step in steps_of(&store.events(run.key)?) {
            // Loop iterations (`ticket[3]`) count under their step's name.
            let name = step.step.split('[').next().unwrap_or(&step.step).to_owned();
            let entry = per_step.entry(name).or_default();
            if let Some(d) = step.duration_ms {
                entry.0.push(d);
            }
            entry.1 += u64::from(step.attempts.saturating_sub(1));
            if step.attempts > 1 {
                entry.2 += 1;
            }
            if step.status == "failed" {
                entry.3 += 1;
            }
            entry.4 += 1;
        }
    }
    let finished = s.completed + s.failed + s.cancelled;
    s.success_rate = if finished == 0 {
        0.0
    } else {
        s.completed as f64 / finished as f64
    };
    durations.sort_unstable();
    s.mean_ms = mean(&durations);
    s.p50_ms = quantile(&durations, 0.5);
    s.p95_ms = quantile(&durations, 0.95);
    for (step, (mut d, retries, with_retries, failures, count)) in per_step {
        d.sort_unstable();
        s.steps.push(StepStats {
            step,
            runs: count,
            mean_ms: mean(&d),
            p50_ms: quantile(&d, 0.5),
            p95_ms: quantile(&d, 0.95),
            retries,
            runs_with_retries: with_retries,
            failures,
        });
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 50);
        assert_eq!(quantile(&v, 0.95), 95);
        assert_eq!(quantile(&[7], 0.95), 7);
        assert_eq!(quantile(&[], 0.5), 0);
    }

    fn ev(
        seq: u32,
        at: i64,
        kind: EventKind,
        step: &str,
        attempt: u32,
        data: Option<&str>,
    ) -> Event {
        Event {
            run: 1,
            seq,
            at,
            kind,
            step: Some(step.into()),
            attempt: Some(attempt),
            data: data.map(str::to_owned),
        }
    }

    #[test]
    fn steps_fold_attempts_durations_and_errors() {
        let events = vec![
            ev(0, 100, EventKind::StepStarted, "a", 1, None),
            ev(
                1,
                110,
                EventKind::StepFailed,
                "a",
                1,
                Some(r#"{"error":{"kind":"timeout","message":"slow"},"final":false}"#),
            ),
            ev(2, 120, EventKind::StepStarted, "a", 2, None),
            ev(3, 150, EventKind::StepSucceeded, "a", 2, Some("1")),
            ev(4, 150, EventKind::StepStarted, "b", 1, None),
            ev(
                5,
                160,
                EventKind::StepFailed,
                "b",
                1,
                Some(r#"{"error":{"kind":"validation","message":"bad"},"final":true}"#),
            ),
            ev(6, 170, EventKind::StepStarted, "c", 1, None),
        ];
        let steps = steps_of(&events);
        assert_eq!(steps.len(), 3);
        assert_eq!(
            (steps[0].status, steps[0].attempts, steps[0].duration_ms),
            ("succeeded", 2, Some(50))
        );
        assert!(steps[0].error.is_none());
        assert_eq!(steps[1].status, "failed");
        assert_eq!(
            steps[1].error.as_ref().map(|e| e.message.as_str()),
            Some("bad")
        );
        assert_eq!(steps[2].status, "running");
    }
}
