//! The PostgreSQL store's group-commit writer: one thread, one connection, one
//! transaction per batch (batched as the SQLite writer batches, `group_commit::gather`).
//!
//! A batch's events go in with one statement (`unnest` over arrays), whatever their
//! number. When the connection breaks, the writer keeps the batch, reconnects with
//! backoff and writes it again: every data record is idempotent (events are upserted by
//! `(run, seq)`, a run is created once by its id or dedupe key, status writes set
//! values), so nothing a caller waits for is lost or doubled, and nothing is
//! acknowledged before its commit.
//!
//! Writes are fenced: a run's events, status and end are written only while the run
//! belongs to one of this process's executors, checked in the same statement. A worker
//! paused past its lease (a long pause, SIGSTOP, a partition) whose runs another worker
//! took finds its writes refused ([`StoreError::Fenced`]) and cannot overwrite them. A closure that already ran in the broken
//! transaction (`Exec`) is told the commit failed; one that had not run yet runs in the
//! next attempt.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Instant;

use postgres::{Client, Statement, Transaction};

use super::super::{LINGER, MAX_BATCH};
use super::{AfterCommit, Durability, Event, Owners, RunKey, StoreError, Write, backoff, connect};
use crate::group_commit::{Linger, gather};
use crate::store::NewRun;

/// What the writer takes.
pub(super) enum PgOp {
    Write(Write),
    /// Runs inside the batch's transaction; what it returns is called once the batch
    /// committed (with the commit's error, if any).
    Exec(Box<dyn FnOnce(&mut Transaction<'_>) -> AfterCommit + Send>),
    /// An `Exec` that ran in the transaction being committed.
    Ran(AfterCommit),
}

impl PgOp {
    fn awaited(&self) -> bool {
        match self {
            PgOp::Write(w) => w.awaited(),
            PgOp::Exec(_) | PgOp::Ran(_) => true,
        }
    }
}

/// The writer's connection and its prepared statements.
struct Connection {
    client: Client,
    events: Statement,
    create_run: Statement,
    existing_run: Statement,
    status: Statement,
    finish: Statement,
    owner: Statement,
}

impl Connection {
    fn new(mut client: Client) -> Result<Connection, postgres::Error> {
        Ok(Connection {
            // Fenced: an event is written only while its run belongs to one of this
            // process's executors ($8; empty for a process that executes nothing).
            events: client.prepare(
                "INSERT INTO events (run, seq, at, kind, step, attempt, data) \
                 SELECT u.* FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::text[]) AS u(run, seq, at, kind, step, attempt, data) \
                 WHERE cardinality($8::text[]) = 0 OR EXISTS (SELECT 1 FROM runs r WHERE r.id = u.run AND r.executor = ANY($8::text[])) \
                 ON CONFLICT (run, seq) DO UPDATE SET at = EXCLUDED.at, kind = EXCLUDED.kind, step = EXCLUDED.step, attempt = EXCLUDED.attempt, data = EXCLUDED.data \
                 RETURNING run",
            )?,
            create_run: client.prepare(
                "INSERT INTO runs (run_id, workflow, program, parent, parent_step, owner_as, priority, status, input, created_at, executor, trigger, event, actor, dedupe) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT DO NOTHING RETURNING id",
            )?,
            existing_run: client.prepare(
                "SELECT id FROM runs WHERE dedupe = $1 UNION ALL SELECT id FROM runs WHERE run_id = $2 LIMIT 1",
            )?,
            status: client.prepare(
                "UPDATE runs SET status = $2, wake_at = $3 WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled') \
                 AND (cardinality($4::text[]) = 0 OR executor = ANY($4::text[]))",
            )?,
            finish: client.prepare(
                "UPDATE runs SET status = $2, output = $3, error = $4, finished_at = $5, wake_at = NULL WHERE id = $1 AND status != 'cancelled' \
                 AND (cardinality($6::text[]) = 0 OR executor = ANY($6::text[]))",
            )?,
            owner: client.prepare("SELECT executor = ANY($2::text[]) FROM runs WHERE id = $1")?,
            client,
        })
    }
}

pub(super) fn run(
    url: String,
    at: String,
    durability: Durability,
    client: Client,
    rx: mpsc::Receiver<PgOp>,
    owners: Owners,
) {
    let mut conn = match Connection::new(client) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(store = %at, error = %e, "cannot prepare the store's statements; reconnecting");
            None
        }
    };
    let mut batch: Vec<PgOp> = Vec::with_capacity(1024);
    while let Ok(first) = rx.recv() {
        gather(
            &rx,
            first,
            &mut batch,
            MAX_BATCH,
            Linger::WaitForMore(LINGER),
            PgOp::awaited,
        );
        let mut failures = 0u32;
        let mut outage: Option<Instant> = None;
        while !batch.is_empty() {
            let c = match conn.as_mut().filter(|c| !c.client.is_closed()) {
                Some(c) => c,
                None => {
                    conn = None;
                    match connect(&url, durability).and_then(Connection::new) {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            outage.get_or_insert_with(Instant::now);
                            tracing::warn!(store = %at, error = %e, waiting = batch.len(), "PostgreSQL is unreachable; the journal's writes wait and are retried");
                            std::thread::sleep(backoff(failures));
                            failures += 1;
                        }
                    }
                    continue;
                }
            };
            let owners = owners
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            match commit(c, &mut batch, &owners) {
                Ok(()) => {}
                Err(e) if c.client.is_closed() => {
                    outage.get_or_insert_with(Instant::now);
                    tracing::warn!(store = %at, error = %e, "the connection to PostgreSQL broke while committing; the batch is written again");
                }
                Err(e) => {
                    let message = e.to_string();
                    for op in batch.drain(..) {
                        match op {
                            PgOp::Write(w) => w.fail(StoreError::Postgres {
                                at: at.clone(),
                                message: message.clone(),
                            }),
                            PgOp::Ran(after) => after(Some(message.clone())),
                            // Not run: its caller sees the channel close.
                            PgOp::Exec(_) => {}
                        }
                    }
                }
            }
        }
        if let Some(since) = outage {
            tracing::warn!(store = %at, after = ?since.elapsed(), "PostgreSQL is back; the journal's writes continue");
        }
    }
}

/// Writes the batch in one transaction. `Ok`: committed, every waiter told and the batch
/// emptied. `Err`: nothing committed; the closures that ran were told and left the
/// batch, the rest stays for the caller to retry or fail.
fn commit(
    c: &mut Connection,
    batch: &mut Vec<PgOp>,
    owners: &[String],
) -> Result<(), postgres::Error> {
    let mut created: Vec<(usize, RunKey)> = Vec::new();
    // Records refused because their run belongs to another executor now.
    let mut fenced: HashSet<usize> = HashSet::new();
    let result = (|| {
        let mut tx = c.client.transaction()?;
        let mut queued = false;
        let mut i = 0;
        while i < batch.len() {
            match &batch[i] {
                PgOp::Write(Write::Events(..)) => {
                    let end = (i..batch.len())
                        .find(|&k| !matches!(batch[k], PgOp::Write(Write::Events(..))))
                        .unwrap_or(batch.len());
                    let events = batch[i..end].iter().flat_map(|op| match op {
                        PgOp::Write(Write::Events(events, _)) => events.as_slice(),
                        _ => &[],
                    });
                    let written = insert_events(&mut tx, &c.events, events, owners)?;
                    for (k, op) in batch.iter().enumerate().take(end).skip(i) {
                        if let PgOp::Write(Write::Events(events, _)) = op
                            && events.iter().any(|e| !written.contains(&e.run))
                        {
                            fenced.insert(k);
                        }
                    }
                    i = end;
                    continue;
                }
                PgOp::Write(Write::CreateRun(run, _)) => {
                    let key = insert_run(&mut tx, &c.create_run, &c.existing_run, run)?;
                    created.push((i, key));
                    if run.executor.is_none() && !queued {
                        // Delivered at commit, to every worker listening.
                        tx.batch_execute("NOTIFY flow_runnable")?;
                        queued = true;
                    }
                }
                PgOp::Write(Write::Status {
                    run,
                    status,
                    wake_at,
                    ..
                }) => {
                    tx.execute(&c.status, &[run, &status.as_str(), wake_at, &owners])?;
                }
                PgOp::Write(Write::Finish {
                    run,
                    status,
                    output,
                    error,
                    at,
                    ..
                }) => {
                    let n = tx.execute(
                        &c.finish,
                        &[run, &status.as_str(), output, error, at, &owners],
                    )?;
                    if n == 0
                        && !owners.is_empty()
                        && let Some(row) = tx.query_opt(&c.owner, &[run, &owners])?
                        && row.get::<_, Option<bool>>(0) != Some(true)
                    {
                        fenced.insert(i);
                    }
                }
                PgOp::Exec(_) => {
                    let op = std::mem::replace(&mut batch[i], PgOp::Ran(Box::new(|_| {})));
                    if let PgOp::Exec(f) = op {
                        batch[i] = PgOp::Ran(f(&mut tx));
                    }
                }
                PgOp::Ran(_) => {}
            }
            i += 1;
        }
        tx.commit()
    })();
    match result {
        Ok(()) => {
            let mut created = created.into_iter().peekable();
            for (i, op) in batch.drain(..).enumerate() {
                if fenced.contains(&i)
                    && let PgOp::Write(w) = op
                {
                    let run = match &w {
                        Write::Events(events, _) => events.first().map_or(0, |e| e.run),
                        Write::Finish { run, .. } | Write::Status { run, .. } => *run,
                        Write::CreateRun(..) => 0,
                    };
                    w.fail(StoreError::Fenced { run });
                    continue;
                }
                match op {
                    PgOp::Write(Write::CreateRun(_, done)) => {
                        let key = created.next_if(|(at, _)| *at == i).map(|(_, k)| k);
                        let _ = done.send(key.ok_or(StoreError::WriterGone));
                    }
                    PgOp::Write(
                        Write::Events(_, Some(done))
                        | Write::Status {
                            done: Some(done), ..
                        }
                        | Write::Finish {
                            done: Some(done), ..
                        },
                    ) => {
                        let _ = done.send(Ok(()));
                    }
                    PgOp::Write(_) | PgOp::Exec(_) => {}
                    PgOp::Ran(after) => after(None),
                }
            }
            Ok(())
        }
        Err(e) => {
            let message = e.to_string();
            batch.retain_mut(|op| match op {
                PgOp::Ran(after) => {
                    let after = std::mem::replace(after, Box::new(|_| {}));
                    after(Some(message.clone()));
                    false
                }
                _ => true,
            });
            Err(e)
        }
    }
}

/// All of a batch's events in one statement; returns the runs whose events were
/// written (the others belong to another executor now). An event written twice in the
/// batch (a step replayed) keeps its last version, as one after the other would.
fn insert_events<'a>(
    tx: &mut Transaction<'_>,
    statement: &Statement,
    events: impl Iterator<Item = &'a Event>,
    owners: &[String],
) -> Result<HashSet<RunKey>, postgres::Error> {
    let mut last: std::collections::HashMap<(RunKey, u32), usize> = Default::default();
    let mut rows: Vec<&Event> = Vec::new();
    for e in events {
        match last.get(&(e.run, e.seq)) {
            Some(&at) => rows[at] = e,
            None => {
                last.insert((e.run, e.seq), rows.len());
                rows.push(e);
            }
        }
    }
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let runs: Vec<i64> = rows.iter().map(|e| e.run).collect();
    let seqs: Vec<i64> = rows.iter().map(|e| i64::from(e.seq)).collect();
    let ats: Vec<i64> = rows.iter().map(|e| e.at).collect();
    let kinds: Vec<&str> = rows.iter().map(|e| e.kind.as_str()).collect();
    let steps: Vec<Option<&str>> = rows.iter().map(|e| e.step.as_deref()).collect();
    let attempts: Vec<Option<i64>> = rows.iter().map(|e| e.attempt.map(i64::from)).collect();
    let data: Vec<Option<&str>> = rows.iter().map(|e| e.data.as_deref()).collect();
    let written = tx.query(
        statement,
        &[
            &runs, &seqs, &ats, &kinds, &steps, &attempts, &data, &owners,
        ],
    )?;
    Ok(written.iter().map(|r| r.get(0)).collect())
}

/// Inserts a run; when its id or dedupe key is taken (a retried batch, a second
/// submission with the same key), inserts nothing and returns the run that holds it.
fn insert_run(
    tx: &mut Transaction<'_>,
    create: &Statement,
    existing: &Statement,
    run: &NewRun,
) -> Result<RunKey, postgres::Error> {
    let o = &run.origin;
    let event = o.event.as_ref().map(|e| e.to_string());
    if let Some(row) = tx.query_opt(
        create,
        &[
            &run.run_id,
            &run.workflow,
            &run.program,
            &run.parent,
            &run.parent_step,
            &run.owner_as,
            &run.priority,
            &run.status.as_str(),
            &run.input,
            &run.created_at,
            &run.executor,
            &o.trigger,
            &event,
            &o.actor,
            &o.dedupe,
        ],
    )? {
        return Ok(row.get(0));
    }
    Ok(tx.query_one(existing, &[&o.dedupe, &run.run_id])?.get(0))
}
