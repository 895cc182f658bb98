//! Durable timers (`wait D`, `wait until T`): the instant is journaled before the timer
//! starts, a resumed run waits only for what is left; a run with nothing but timers in
//! flight gives its admission slot back until one fires.

use std::sync::Arc;

use flow_expr::Value;
use flow_ir::program::{StmtId, Wait};

use super::{Exec, TaskDone, TaskResult, step_key};
use crate::error::StepError;
use crate::run::Progress;
use crate::store::{EventKind, RunStatus};

impl Exec {
    /// While the run only waits on timers it gives its admission slot back, so parked
    /// runs do not hold up others.
    pub(super) async fn park_if_only_timers(&mut self) {
        if self.steps_in_flight == 0 && self.timers_in_flight > 0 {
            if let Some((permit @ Some(_), _)) = self.admission.as_mut() {
                *permit = None;
                let wake = self.wakes.values().min().copied();
                let _ = self.shared.services.store.set_status(
                    self.shared.key,
                    RunStatus::Waiting,
                    wake,
                );
            }
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
}
