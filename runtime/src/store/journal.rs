//! The journal's side of the group-commit writer: how runs, events and statuses are
//! written in a batch's transaction, and whom to tell once the batch is durable.

use super::*;

/// The journal's side of the group-commit writer: runs, events and statuses, and the
/// acknowledgements each waiting caller gets once its records are durable.
pub(super) struct JournalWrites {
    pub(super) path: PathBuf,
}

/// What waits for a batch's commit.
#[derive(Default)]
pub(super) struct Acks {
    done: Vec<Done>,
    created: Vec<(
        oneshot::Sender<Result<RunKey, StoreError>>,
        Result<RunKey, StoreError>,
    )>,
    after: Vec<AfterCommit>,
}

impl Acks {
    /// A record's own failure goes to its waiter now; a waiter of a record written waits
    /// for the commit.
    fn settle(&mut self, path: &Path, done: Option<Done>, r: Result<(), rusqlite::Error>) {
        if let Some(done) = done {
            match r {
                Ok(()) => self.done.push(done),
                Err(e) => {
                    let _ = done.send(Err(classify(path, e, Duration::ZERO)));
                }
            }
        }
    }
}

impl Journal for JournalWrites {
    type Record = Op;
    type Pending = Acks;

    /// Whether somebody waits for this record to be durable.
    fn awaited(op: &Op) -> bool {
        match op {
            Op::Write(write) => write.awaited(),
            Op::Exec(_) => true,
        }
    }

    fn write(&mut self, tx: &rusqlite::Transaction<'_>, batch: &mut Vec<Op>) -> Acks {
        let path = &self.path;
        let mut acks = Acks::default();
        for op in batch.drain(..) {
            match op {
                Op::Write(Write::Events(events, done)) => {
                    acks.settle(path, done, insert_events(tx, &events))
                }
                Op::Write(Write::CreateRun(run, done)) => {
                    let r = insert_run(tx, &run).map_err(|e| classify(path, e, Duration::ZERO));
                    acks.created.push((done, r));
                }
                Op::Write(Write::Status {
                    run,
                    status,
                    wake_at,
                    done,
                }) => {
                    let r = tx
                        .prepare_cached("UPDATE runs SET status = ?2, wake_at = ?3 WHERE id = ?1 AND status NOT IN ('completed', 'failed', 'cancelled')")
                        .and_then(|mut s| s.execute(params![run, status.as_str(), wake_at]));
                    acks.settle(path, done, r.map(drop));
                }
                Op::Write(Write::Finish {
                    run,
                    status,
                    output,
                    error,
                    at,
                    done,
                }) => {
                    let r = tx
                        .prepare_cached(
                            "UPDATE runs SET status = ?2, output = ?3, error = ?4, finished_at = ?5, wake_at = NULL WHERE id = ?1 AND status != 'cancelled'",
                        )
                        .and_then(|mut s| {
                            s.execute(params![run, status.as_str(), output, error, at])
                        });
                    acks.settle(path, done, r.map(drop));
                }
                Op::Exec(f) => acks.after.push(f(tx)),
            }
        }
        acks
    }

    fn committed(&mut self, acks: Acks, result: Result<(), rusqlite::Error>) {
        match result {
            Ok(()) => {
                for done in acks.done {
                    let _ = done.send(Ok(()));
                }
                for (done, r) in acks.created {
                    let _ = done.send(r);
                }
                for f in acks.after {
                    f(None);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let err = || StoreError::Commit {
                    path: self.path.clone(),
                    message: msg.clone(),
                };
                for done in acks.done {
                    let _ = done.send(Err(err()));
                }
                for (done, _) in acks.created {
                    let _ = done.send(Err(err()));
                }
                for f in acks.after {
                    f(Some(msg.clone()));
                }
            }
        }
    }

    fn not_started(&mut self, batch: &mut Vec<Op>, e: rusqlite::Error) {
        let msg = classify(&self.path, e, Duration::ZERO).to_string();
        let err = || StoreError::Commit {
            path: self.path.clone(),
            message: msg.clone(),
        };
        for op in batch.drain(..) {
            match op {
                Op::Write(write) => write.fail(err()),
                Op::Exec(_) => {
                    // Never ran: its caller sees the writer's channel close when the op
                    // drops.
                }
            }
        }
    }
}

fn insert_events(conn: &Connection, events: &[Event]) -> Result<(), rusqlite::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO events (run, seq, at, kind, step, attempt, data) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for e in events {
        stmt.execute(params![
            e.run,
            e.seq,
            e.at,
            e.kind.as_str(),
            e.step,
            e.attempt,
            e.data
        ])?;
    }
    Ok(())
}

/// Inserts a run; with a dedupe key already taken, inserts nothing and returns the key of
/// the run that holds it.
fn insert_run(conn: &Connection, run: &NewRun) -> Result<RunKey, rusqlite::Error> {
    let o = &run.origin;
    let inserted = conn.prepare_cached(
        "INSERT INTO runs (run_id, workflow, program, parent, parent_step, owner_as, priority, status, input, created_at, executor, trigger, event, actor, dedupe) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) ON CONFLICT (dedupe) WHERE dedupe IS NOT NULL DO NOTHING",
    )?
    .execute(params![
        run.run_id,
        run.workflow,
        run.program,
        run.parent,
        run.parent_step,
        run.owner_as,
        run.priority,
        run.status.as_str(),
        run.input,
        run.created_at,
        run.executor,
        o.trigger,
        o.event.as_ref().map(|e| e.to_string()),
        o.actor,
        o.dedupe,
    ])?;
    if inserted == 0 {
        return conn
            .prepare_cached("SELECT id FROM runs WHERE dedupe = ?1")?
            .query_row([&o.dedupe], |r| r.get(0));
    }
    Ok(conn.last_insert_rowid())
}
