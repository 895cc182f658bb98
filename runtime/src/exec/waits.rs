//! Durable timers (`wait D`, `wait until T`): the instant is journaled before the timer
//! starts, a resumed run waits only for what is left; a run with nothing but timers in
//! flight gives its admission slot back until one fires. Signal waits (`step s = wait
//! signal("name") as T timeout D`) park the same way: the step takes the oldest signal of
//! its name from the store, or sleeps until one is stored or its deadline (journaled like
//! a timer's instant) passes.

use std::sync::Arc;

use flow_expr::Value;
use flow_ir::program::{EventRef, Step, StepCall, StmtId, Wait};
use flow_ir::types::Type;

use super::steps::Journaling;
use super::{Exec, RunShared, TaskDone, TaskResult, step_key};
use crate::attempt::AttemptObserver;
use crate::error::StepError;
use crate::run::Progress;
use crate::store::{EventKind, EventWait, RunStatus, event_signal};

impl Exec {
    /// While the run only waits on timers it gives its admission slot back, so parked
    /// runs do not hold up others.
    pub(super) async fn park_if_only_timers(&mut self) {
        if self.steps_in_flight == 0
            && self.timers_in_flight > 0
            && let Some((permit @ Some(_), _)) = self.admission.as_mut()
        {
            *permit = None;
            let wake = self.wakes.values().min().copied();
            let _ =
                self.shared
                    .services
                    .store
                    .set_status(self.shared.key, RunStatus::Waiting, wake);
        }
    }

    pub(super) async fn unpark(&mut self) {
        if let Some((permit @ None, prio)) = self.admission.as_mut() {
            let p = self.shared.services.admission.acquire(*prio).await;
            *permit = Some(p);
            let _ =
                self.shared
                    .services
                    .store
                    .set_status(self.shared.key, RunStatus::Running, None);
        }
    }

    pub(super) fn start_wait(&mut self, fi: usize, p: usize, sid: StmtId, wait: &Wait, ckey: &str) {
        let indices = match self.frames.get(fi) {
            Some(Some(f)) => f.indices.clone(),
            _ => Vec::new(),
        };
        let key = step_key(&format!("wait@{}", sid.0), &indices);
        if self.replay.fired.contains(&key) {
            self.complete(fi, p);
            return;
        }
        let known = self.replay.timers.get(&key).copied();
        let fire_at = match known {
            Some(at) => at,
            None => {
                let r = match wait {
                    Wait::For(d) => self.const_nanos(fi, d, ckey, "wait").map(|ns| {
                        self.shared
                            .services
                            .clock
                            .now_millis()
                            .saturating_add(ns / 1_000_000)
                    }),
                    Wait::Until(e) => match self.eval_in(fi, *e, ckey, "wait until") {
                        Ok(Value::Timestamp(t)) => {
                            Ok(i64::try_from(t.as_nanos() / 1_000_000).unwrap_or(i64::MAX))
                        }
                        Ok(other) => Err(StepError::expression(format!(
                            "`wait until` needs a timestamp, not {}",
                            other.kind()
                        ))),
                        Err(e) => Err(e),
                    },
                };
                match r {
                    Ok(at) => at,
                    Err(e) => {
                        self.fail_at(fi, e);
                        return;
                    }
                }
            }
        };
        let shared = Arc::clone(&self.shared);
        self.wakes.insert((fi, p), fire_at);
        self.shared.progress(&Progress::Waiting {
            key: key.clone(),
            until_ms: fire_at,
        });
        self.spawn_task(fi, true, async move {
            if known.is_none() {
                shared
                    .journal(
                        EventKind::TimerSet,
                        Some(&key),
                        None,
                        Some(fire_at.to_string()),
                        true,
                    )
                    .await;
            }
            if !shared.services.config.skip_delays {
                tokio::time::sleep(shared.services.clock.until_millis(fire_at)).await;
            }
            shared
                .journal(EventKind::TimerFired, Some(&key), None, None, false)
                .await;
            TaskDone {
                frame: fi,
                pos: p,
                result: TaskResult::Timer,
                timer: true,
            }
        });
    }

    /// Starts a `wait signal(...)` or `wait integration.event(...)` step: its deadline
    /// (from `timeout`, journaled once so a resumed run keeps it), an event wait's
    /// registration, then a task that takes the signal or the delivery, or fails at the
    /// deadline.
    pub(super) fn start_wait_step(
        &mut self,
        fi: usize,
        p: usize,
        step: &Step,
        key: String,
        ckey: &str,
    ) {
        let waits_for = match &step.call {
            StepCall::Signal { name } => WaitFor::Signal(name.clone()),
            StepCall::Event {
                event, args, reads, ..
            } => match self.event_wait(fi, *event, args, reads, &key, ckey) {
                Ok(wait) => WaitFor::Event(wait),
                Err(e) => {
                    self.fail_at(fi, e);
                    return;
                }
            },
            _ => return,
        };
        let deadline_key = format!("{key}@timeout");
        let known = self.replay.timers.get(&deadline_key).copied();
        let deadline = match (known, &step.timeout) {
            (Some(at), _) => Some(at),
            (None, Some(t)) => match self.const_nanos(fi, t, ckey, "timeout") {
                Ok(ns) => Some(
                    self.shared
                        .services
                        .clock
                        .now_millis()
                        .saturating_add(ns / 1_000_000),
                ),
                Err(e) => {
                    self.fail_at(fi, e);
                    return;
                }
            },
            (None, None) => None,
        };
        if let Some(at) = deadline {
            self.wakes.insert((fi, p), at);
        }
        let shared = Arc::clone(&self.shared);
        let ty = step.result.clone();
        let action = super::steps::action_label(&self.program, &step.call);
        self.spawn_task(fi, true, async move {
            if let (Some(at), None) = (deadline, known) {
                shared
                    .journal(
                        EventKind::TimerSet,
                        Some(&deadline_key),
                        None,
                        Some(at.to_string()),
                        true,
                    )
                    .await;
            }
            let result = take_signal(&shared, waits_for, &key, &ty, &action, deadline).await;
            TaskDone {
                frame: fi,
                pos: p,
                result: TaskResult::Step(result),
                timer: true,
            }
        });
    }

    /// An event wait's registration: the event's arguments and the values its condition
    /// reads, as they are now.
    fn event_wait(
        &mut self,
        fi: usize,
        event: EventRef,
        args: &[Option<flow_ir::expr::ExprId>],
        reads: &[flow_ir::expr::LocalId],
        key: &str,
        ckey: &str,
    ) -> Result<EventWait, StepError> {
        let program = Arc::clone(&self.program);
        let (integ, decl) = program
            .integration(event.integration)
            .and_then(|i| Some((i, i.events.get(event.event as usize)?)))
            .ok_or_else(|| StepError::runtime("event missing from the program"))?;
        let mut given = Vec::with_capacity(decl.params.len());
        for (i, param) in decl.params.iter().enumerate() {
            match args.get(i).copied().flatten() {
                Some(e) => given.push(serde_json::json!({
                    "value": self.eval_in(fi, e, ckey, &param.name)?.to_json()
                })),
                None => given.push(serde_json::Value::Null),
            }
        }
        let mut locals = serde_json::Map::new();
        if let Some(Some(frame)) = self.frames.get(fi) {
            for l in reads {
                if let Some(v) = frame.locals.get(l.0 as usize) {
                    locals.insert(l.0.to_string(), v.to_json());
                }
            }
        }
        Ok(EventWait {
            id: 0,
            run: self.shared.key,
            step: key.to_owned(),
            program: self.shared.program.hash.clone(),
            workflow: self.shared.workflow.to_string(),
            integration: integ.name.clone(),
            event: decl.name.clone(),
            args: serde_json::Value::Array(given).to_string(),
            locals: serde_json::Value::Object(locals).to_string(),
            at: self.shared.services.clock.now_millis(),
        })
    }
}

/// What a wait step waits for.
enum WaitFor {
    Signal(String),
    /// The registration of an event wait.
    Event(EventWait),
}

/// Takes the signal (or the delivery) for the step `key`, journaling its start, its value
/// or its timeout, sleeping until one is stored or `deadline` passes.
async fn take_signal(
    shared: &RunShared,
    waits_for: WaitFor,
    key: &str,
    ty: &Type,
    action: &Arc<str>,
    deadline: Option<i64>,
) -> Result<Value, StepError> {
    let (name, started_data, progress) = match &waits_for {
        WaitFor::Signal(name) => (
            name.clone(),
            serde_json::json!({ "signal": name }),
            Progress::WaitingForSignal {
                key: key.to_owned(),
                signal: name.clone(),
                until_ms: deadline,
            },
        ),
        WaitFor::Event(wait) => {
            let event = format!("{}.{}", wait.integration, wait.event);
            (
                event_signal(key),
                serde_json::json!({ "event": event }),
                Progress::WaitingForEvent {
                    key: key.to_owned(),
                    event,
                    until_ms: deadline,
                },
            )
        }
    };
    let name = name.as_str();
    let mut observer = Journaling {
        shared,
        key,
        action,
        started: None,
        args: None,
    };
    // Started like any step, with what it waits for (`flow runs show`, the run API).
    shared
        .journal(
            EventKind::StepStarted,
            Some(key),
            Some(1),
            Some(started_data.to_string()),
            false,
        )
        .await;
    observer.started = Some(tokio::time::Instant::now());
    shared.progress(&progress);
    let services = &shared.services;
    if let Some(mocked) = &services.config.mocked_signals {
        // In a test, an event wait takes `mock INTEGRATION.EVENT ...`.
        let mocked_name = match &waits_for {
            WaitFor::Signal(name) => name.clone(),
            WaitFor::Event(w) => format!("event:{}.{}", w.integration, w.event),
        };
        let mock_hint = match &waits_for {
            WaitFor::Signal(name) => format!("mock signal.{name}"),
            WaitFor::Event(w) => format!("mock {}.{}", w.integration, w.event),
        };
        let outcome = match (mocked.0)(&mocked_name) {
            Some(Ok(json)) => Value::from_json(&json, ty).map_err(|e| {
                StepError::validation(format!(
                    "the mocked `{mocked_name}` does not fit its type: {e}"
                ))
            }),
            Some(Err(e)) => Err(e),
            None => Err(StepError::runtime(format!(
                "nothing arrives for the wait `{key}` in this test: mock it with `{mock_hint} returns VALUE` (or `fails timeout()`)"
            ))),
        };
        return finish_wait(shared, &mut observer, key, action, outcome).await;
    }
    if let WaitFor::Event(wait) = &waits_for {
        // Registered before the run parks, so a receiver can give it a delivery.
        if let Err(e) = services.store.put_event_wait(wait.clone()).await {
            let outcome = Err(StepError::runtime(format!("journal: {e}")));
            return finish_wait(shared, &mut observer, key, action, outcome).await;
        }
    }
    let waiting = services.signals.wait(&services.store, shared.key);
    let outcome = loop {
        // Armed before looking, so a signal stored meanwhile still wakes this step.
        let notified = waiting.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match services.store.take_signal(shared.key, name, key).await {
            Ok(Some(payload)) => {
                let value = serde_json::from_str::<serde_json::Value>(&payload)
                    .map_err(|e| e.to_string())
                    .and_then(|json| Value::from_json(&json, ty).map_err(|e| e.to_string()));
                break value.map_err(|e| {
                    StepError::validation(format!(
                        "the payload of signal `{name}` does not fit its type: {e}"
                    ))
                });
            }
            Ok(None) => {}
            Err(e) => break Err(StepError::runtime(format!("journal: {e}"))),
        }
        let until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep(services.clock.until_millis(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut notified => {}
            _ = until_deadline => {
                let what = match &waits_for {
                    WaitFor::Signal(name) => format!("no signal `{name}`"),
                    WaitFor::Event(w) => format!("no `{}.{}` event", w.integration, w.event),
                };
                break Err(StepError::timeout(format!(
                    "{what} arrived before the step's timeout"
                )));
            }
        }
    };
    if let (WaitFor::Event(_), Err(_)) = (&waits_for, &outcome) {
        // A wait that timed out takes no delivery any more.
        let _ = services.store.remove_event_wait(shared.key, key).await;
    }
    drop(waiting);
    finish_wait(shared, &mut observer, key, action, outcome).await
}

/// Journals a wait's end: its value (durably, before anything reads it) or its failure.
async fn finish_wait(
    shared: &RunShared,
    observer: &mut Journaling<'_>,
    key: &str,
    action: &Arc<str>,
    outcome: Result<Value, StepError>,
) -> Result<Value, StepError> {
    match outcome {
        Ok(value) => {
            shared
                .journal_durable(
                    EventKind::StepSucceeded,
                    Some(key),
                    Some(1),
                    Some(value.to_json().to_string()),
                )
                .await?;
            shared.progress(&Progress::StepSucceeded {
                step: key.to_owned(),
                action: Arc::clone(action),
                attempt: 1,
                elapsed: observer.started.map(|s| s.elapsed()).unwrap_or_default(),
                replayed: false,
            });
            Ok(value)
        }
        Err(mut e) => {
            e.step = key.to_owned();
            e.attempts = 1;
            observer.failed(1, &e, true).await;
            Err(e)
        }
    }
}
