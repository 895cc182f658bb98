//! Signals sent to runs: each kept, in arrival order, until a `wait signal` step of its
//! run takes it. Taking is recorded on the signal itself (`taken_by` = the step's key),
//! so a step that took a signal and was killed before its result reached the journal
//! takes the same one again when the run resumes.
//!
//! Event waits (`wait integration.event(...) when COND`) are registered here too, with
//! what a receiver needs to decide without the run (the event's arguments, the values
//! the condition reads); a delivery a wait takes becomes a signal named `event:STEP`
//! for that run, in the same transaction that removes the wait.

use rusqlite::{OptionalExtension, params};

use super::{RunKey, Store, StoreError};

/// A stored signal's place in its store, and whether it was there already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignalStored {
    /// The signal's number in the store (increasing with arrival).
    pub seq: i64,
    /// A signal with the same sender id was stored before; this one was not.
    pub duplicate: bool,
}

impl Store {
    /// Stores a signal for run `run`, committed (as durably as the store's commits) before
    /// this returns. With a sender `id`, sending again stores nothing and answers with
    /// the first one.
    pub async fn put_signal(
        &self,
        run: RunKey,
        name: &str,
        payload: String,
        id: Option<String>,
        at: i64,
    ) -> Result<SignalStored, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.put_signal(run, name, payload, id, at).await;
        }
        let name = name.to_owned();
        self.write_with(move |conn| {
            if let Some(id) = &id {
                let existing: Option<i64> = conn
                    .query_row(
                        "SELECT id FROM signals WHERE run = ?1 AND signal_id = ?2",
                        params![run, id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(seq) = existing {
                    return Ok(SignalStored {
                        seq,
                        duplicate: true,
                    });
                }
            }
            conn.execute(
                "INSERT INTO signals (run, name, payload, signal_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run, name, payload, id, at],
            )?;
            Ok(SignalStored {
                seq: conn.last_insert_rowid(),
                duplicate: false,
            })
        })
        .await
    }

    /// The payload of the signal the step `step` of run `run` took; when it took none
    /// yet, takes the oldest signal called `name` that no step took. `None`: no such
    /// signal has arrived.
    pub async fn take_signal(
        &self,
        run: RunKey,
        name: &str,
        step: &str,
    ) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.take_signal(run, name, step).await;
        }
        let (name, step) = (name.to_owned(), step.to_owned());
        self.write_with(move |conn| {
            let taken: Option<String> = conn
                .query_row(
                    "SELECT payload FROM signals WHERE run = ?1 AND taken_by = ?2",
                    params![run, step],
                    |r| r.get(0),
                )
                .optional()?;
            if taken.is_some() {
                return Ok(taken);
            }
            let next: Option<(i64, String)> = conn
                .query_row(
                    "SELECT id, payload FROM signals WHERE run = ?1 AND name = ?2 AND taken_by IS NULL ORDER BY id LIMIT 1",
                    params![run, name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, payload)) = next else {
                return Ok(None);
            };
            conn.execute(
                "UPDATE signals SET taken_by = ?1 WHERE id = ?2",
                params![step, id],
            )?;
            Ok(Some(payload))
        })
        .await
    }

    /// The runs with a signal stored after `after` that no step took yet, and the newest
    /// signal's number (for a poller that notices signals other processes stored).
    pub fn signals_after(&self, after: i64) -> Result<(Vec<RunKey>, i64), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.signals_after(after);
        }
        self.read(|conn| {
            let newest: i64 =
                conn.query_row("SELECT coalesce(max(id), 0) FROM signals", [], |r| r.get(0))?;
            if newest <= after {
                return Ok((Vec::new(), newest));
            }
            let mut stmt = conn
                .prepare("SELECT DISTINCT run FROM signals WHERE id > ?1 AND taken_by IS NULL")?;
            let runs = stmt
                .query_map([after], |r| r.get(0))?
                .collect::<Result<Vec<RunKey>, _>>()?;
            Ok((runs, newest))
        })
    }
}

/// A run's step waiting for an integration's event.
#[derive(Clone, Debug, PartialEq)]
pub struct EventWait {
    pub id: i64,
    pub run: RunKey,
    /// The step's key in its run.
    pub step: String,
    /// The run's program (hash) and workflow, whose condition decides.
    pub program: String,
    pub workflow: String,
    pub integration: String,
    pub event: String,
    /// JSON: the event's arguments aligned with its params, each `{"value": V}` or
    /// `null` for the default.
    pub args: String,
    /// JSON: `{"LOCAL": VALUE}`, the values the condition reads besides the event.
    pub locals: String,
    pub at: i64,
}

/// The signal name under which a delivery taken by the event wait `step` is stored.
pub fn event_signal(step: &str) -> String {
    format!("event:{step}")
}

impl Store {
    /// Registers an event wait (once per run and step: a resumed run's second
    /// registration changes nothing), committed before this returns.
    pub async fn put_event_wait(&self, wait: EventWait) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.put_event_wait(wait).await;
        }
        self.write_with(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO event_waits (run, step, program, workflow, integration, event, args, locals, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    wait.run,
                    wait.step,
                    wait.program,
                    wait.workflow,
                    wait.integration,
                    wait.event,
                    wait.args,
                    wait.locals,
                    wait.at
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Forgets an event wait (it timed out).
    pub async fn remove_event_wait(&self, run: RunKey, step: &str) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.remove_event_wait(run, step).await;
        }
        let step = step.to_owned();
        self.write_with(move |conn| {
            conn.execute(
                "DELETE FROM event_waits WHERE run = ?1 AND step = ?2",
                params![run, step],
            )?;
            Ok(())
        })
        .await
    }

    /// The waits for `integration.event`, oldest first.
    pub fn event_waits(
        &self,
        integration: &str,
        event: &str,
    ) -> Result<Vec<EventWait>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.event_waits(integration, event);
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT id, run, step, program, workflow, integration, event, args, locals, at FROM event_waits WHERE integration = ?1 AND event = ?2 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![integration, event], |r| {
                Ok(EventWait {
                    id: r.get(0)?,
                    run: r.get(1)?,
                    step: r.get(2)?,
                    program: r.get(3)?,
                    workflow: r.get(4)?,
                    integration: r.get(5)?,
                    event: r.get(6)?,
                    args: r.get(7)?,
                    locals: r.get(8)?,
                    at: r.get(9)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Gives a delivery to the wait `wait`: removes the wait and stores the event as its
    /// run's signal, in one transaction. `false`: another receiver took the wait first.
    pub async fn give_to_wait(
        &self,
        wait: &EventWait,
        payload: String,
        delivery_id: Option<String>,
        at: i64,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.give_to_wait(wait, payload, delivery_id, at).await;
        }
        let (id, run, name) = (wait.id, wait.run, event_signal(&wait.step));
        self.write_with(move |conn| {
            if conn.execute("DELETE FROM event_waits WHERE id = ?1", [id])? == 0 {
                return Ok(false);
            }
            conn.execute(
                "INSERT INTO signals (run, name, payload, signal_id, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![run, name, payload, delivery_id, at],
            )?;
            Ok(true)
        })
        .await
    }
}
