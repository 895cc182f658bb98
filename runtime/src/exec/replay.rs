//! What the journal says a run already did ([`Replay`]), read once when a run resumes,
//! and `now()` readings: taken from the journal when replayed, journaled when new.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use flow_expr::{Context, Timestamp};
use serde_json::Value as Json;

use super::Exec;
use crate::error::StepError;
use crate::store::{Event, EventKind};

/// What the journal says a run already did.
#[derive(Default)]
pub(super) struct Replay {
    pub(super) succeeded: HashMap<String, Json>,
    pub(super) failed: HashMap<String, StepError>,
    /// The highest attempt that failed, per step.
    pub(super) failed_attempts: HashMap<String, u32>,
    pub(super) timers: HashMap<String, i64>,
    pub(super) fired: HashSet<String>,
    pub(super) clocks: HashMap<String, i128>,
    pub(super) next_seq: u32,
    pub(super) started_at: Option<i64>,
}

impl Replay {
    pub(super) fn from_events(events: &[Event]) -> Replay {
        let mut r = Replay::default();
        for e in events {
            r.next_seq = r.next_seq.max(e.seq + 1);
            let step = e.step.clone().unwrap_or_default();
            match e.kind {
                EventKind::RunStarted => {
                    r.started_at.get_or_insert(e.at);
                }
                EventKind::StepSucceeded => {
                    let v = e
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or(Json::Null);
                    r.succeeded.insert(step, v);
                }
                EventKind::StepFailed => {
                    let data: Json = e
                        .data
                        .as_deref()
                        .and_then(|d| serde_json::from_str(d).ok())
                        .unwrap_or(Json::Null);
                    let attempt = e.attempt.unwrap_or(1);
                    let n = r.failed_attempts.entry(step.clone()).or_insert(0);
                    *n = (*n).max(attempt);
                    if data.get("final").and_then(Json::as_bool) == Some(true)
                        && let Some(err) = data
                            .get("error")
                            .and_then(|v| serde_json::from_value::<StepError>(v.clone()).ok())
                    {
                        r.failed.insert(step, err);
                    }
                }
                EventKind::TimerSet => {
                    if let Some(at) = e.data.as_deref().and_then(|d| d.parse::<i64>().ok()) {
                        r.timers.insert(step, at);
                    }
                }
                EventKind::TimerFired => {
                    r.fired.insert(step);
                }
                EventKind::Clock => {
                    if let Some(ns) = e.data.as_deref().and_then(|d| d.parse::<i128>().ok()) {
                        r.clocks.insert(step, ns);
                    }
                }
                _ => {}
            }
        }
        r
    }
}

/// `now()` for one statement: readings are keyed by statement instance and position,
/// taken from the journal when the run is resumed and journaled when new.
pub(super) struct ClockCtx<'a> {
    key: String,
    n: Cell<u32>,
    replay: &'a HashMap<String, i128>,
    now: i128,
    new: RefCell<Vec<(String, i128)>>,
}

impl<'a> ClockCtx<'a> {
    /// Readings for statement instance `key`; `now` is the instant a new reading takes.
    pub(super) fn new(key: String, replay: &'a HashMap<String, i128>, now: i128) -> Self {
        ClockCtx {
            key,
            n: Cell::new(0),
            replay,
            now,
            new: RefCell::new(Vec::new()),
        }
    }

    /// The readings that were not in the journal, to be journaled.
    pub(super) fn into_new(self) -> Vec<(String, i128)> {
        self.new.into_inner()
    }
}

impl Context for ClockCtx<'_> {
    fn now(&self) -> Timestamp {
        let n = self.n.get();
        self.n.set(n + 1);
        let key = format!("{}#{n}", self.key);
        let ns = match self.replay.get(&key) {
            Some(ns) => *ns,
            None => {
                self.new.borrow_mut().push((key, self.now));
                self.now
            }
        };
        Timestamp::from_nanos(ns).unwrap_or_else(|_| Timestamp::now())
    }
}

impl Exec {
    pub(super) fn clock_ctx(&self, key: String) -> ClockCtx<'_> {
        ClockCtx::new(
            key,
            &self.replay.clocks,
            self.shared.services.clock.now_nanos(),
        )
    }

    pub(super) fn journal_clocks(&mut self, readings: Vec<(String, i128)>) {
        for (key, ns) in readings {
            self.replay.clocks.insert(key.clone(), ns);
            let e = self
                .shared
                .record(EventKind::Clock, Some(&key), None, Some(ns.to_string()));
            let _ = self.shared.services.store.append_nowait(vec![e]);
            self.shared.unsynced_clock.store(true, Ordering::Relaxed);
        }
    }
}
