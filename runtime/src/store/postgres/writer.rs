//! The PostgreSQL store's group-commit writer: one thread, one connection, one
//! transaction per batch (batched as the SQLite writer batches, `group_commit::gather`);
//! a batch of data records of one sort (events, statuses and ends; or creations alone)
//! is one autocommitted statement instead, one round trip.
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

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::Instant;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Statement, Transaction};

use super::super::{LINGER, MAX_BATCH};
use super::{AfterCommit, Durability, Event, Owners, RunKey, StoreError, Write, backoff, connect};
use super::{Health, Target};
use crate::group_commit::{Linger, gather};
use crate::store::NewRun;

/// Whether an error means the connection (or the server) went away, so the batch is
/// written again after reconnecting, rather than a failure of the records themselves. A
/// server shutting down answers with an error before closing the connection.
fn connection_lost(e: &postgres::Error, client: &Client) -> bool {
    if client.is_closed() || e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || code.starts_with("57P")
        }
        // No SQLSTATE: the driver's own failure (I/O on the socket).
        None => e.as_db_error().is_none(),
    }
}

impl Health {
    /// Counts an outage beginning now and returns when it began.
    fn went_down(&self) -> Instant {
        use std::sync::atomic::Ordering;
        self.down.store(true, Ordering::Relaxed);
        self.outages.fetch_add(1, Ordering::Relaxed);
        Instant::now()
    }
}

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
    st: Statements,
}

/// The writer's statements, prepared once per connection.
struct Statements {
    events: Statement,
    combined: Statement,
    create_runs: Statement,
    existing_run: Statement,
    owner: Statement,
}

impl Connection {
    fn new(mut client: Client) -> Result<Connection, postgres::Error> {
        let st = Statements {
            // Fenced: an event is written only while its run belongs to one of this
            // process's executors ($8; empty for a process that executes nothing).
            events: client.prepare(
                "INSERT INTO events (run, seq, at, kind, step, attempt, data) \
                 SELECT u.* FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::text[]) AS u(run, seq, at, kind, step, attempt, data) \
                 WHERE cardinality($8::text[]) = 0 OR EXISTS (SELECT 1 FROM runs r WHERE r.id = u.run AND r.executor = ANY($8::text[])) \
                 ON CONFLICT (run, seq) DO UPDATE SET at = EXCLUDED.at, kind = EXCLUDED.kind, step = EXCLUDED.step, attempt = EXCLUDED.attempt, data = EXCLUDED.data \
                 RETURNING run",
            )?,
            // A stretch's events, statuses and ends in one statement (the same fence). Fenced: each part
            // writes only while the run belongs to one of this process's executors ($8;
            // empty for a process that executes nothing). A run has at most one status
            // or end in it (`Plan`), so no row is updated twice.
            combined: client.prepare(
                "WITH ev AS (\
                   INSERT INTO events (run, seq, at, kind, step, attempt, data) \
                   SELECT u.* FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::int8[], $7::text[]) AS u(run, seq, at, kind, step, attempt, data) \
                   WHERE cardinality($8::text[]) = 0 OR EXISTS (SELECT 1 FROM runs r WHERE r.id = u.run AND r.executor = ANY($8::text[])) \
                   ON CONFLICT (run, seq) DO UPDATE SET at = EXCLUDED.at, kind = EXCLUDED.kind, step = EXCLUDED.step, attempt = EXCLUDED.attempt, data = EXCLUDED.data \
                   RETURNING run), \
                 st AS (\
                   UPDATE runs r SET status = u.status, wake_at = u.wake_at \
                   FROM unnest($9::int8[], $10::text[], $11::int8[]) AS u(id, status, wake_at) \
                   WHERE r.id = u.id AND r.status NOT IN ('completed', 'failed', 'cancelled') \
                   AND (cardinality($8::text[]) = 0 OR r.executor = ANY($8::text[])) RETURNING r.id), \
                 fin AS (\
                   UPDATE runs r SET status = u.status, output = u.output, error = u.error, finished_at = u.at, wake_at = NULL \
                   FROM unnest($12::int8[], $13::text[], $14::text[], $15::text[], $16::int8[]) AS u(id, status, output, error, at) \
                   WHERE r.id = u.id AND r.status != 'cancelled' \
                   AND (cardinality($8::text[]) = 0 OR r.executor = ANY($8::text[])) RETURNING r.id) \
                 SELECT 0::int8, run FROM ev UNION ALL SELECT 1::int8, id FROM fin",
            )?,
            create_runs: client.prepare(
                "INSERT INTO runs (run_id, workflow, program, parent, parent_step, owner_as, priority, status, input, created_at, executor, trigger, event, actor, dedupe, concurrency) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::int8[], $8::text[], $9::text[], $10::int8[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::int8[]) \
                 ON CONFLICT DO NOTHING RETURNING id, run_id",
            )?,
            existing_run: client.prepare(
                "SELECT id FROM runs WHERE dedupe = $1 UNION ALL SELECT id FROM runs WHERE run_id = $2 LIMIT 1",
            )?,
            owner: client.prepare("SELECT executor = ANY($2::text[]) FROM runs WHERE id = $1")?,
        };
        Ok(Connection { client, st })
    }
}

pub(super) fn run(
    url: Target,
    at: String,
    durability: Durability,
    client: Client,
    rx: mpsc::Receiver<PgOp>,
    owners: Owners,
    health: &Health,
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
                            outage.get_or_insert_with(|| health.went_down());
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
                Err(e) if connection_lost(&e, &c.client) => {
                    outage.get_or_insert_with(|| health.went_down());
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
            health
                .down
                .store(false, std::sync::atomic::Ordering::Relaxed);
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
    // A batch that creates no run and runs no closure (a sequential run's usual batch:
    // a step's start and its result; or its status with them, or its end) is one
    // statement: written without BEGIN and COMMIT, one round trip.
    if batch.iter().all(|op| {
        matches!(
            op,
            PgOp::Write(Write::Events(..) | Write::Status { .. } | Write::Finish { .. })
        )
    }) {
        let plan = Plan::new(batch, 0);
        write_combined(&mut c.client, &c.st, &plan, owners, &mut fenced)?;
        acknowledge(batch, Vec::new(), &fenced);
        return Ok(());
    }
    // A batch of creations alone (a run started on its own) is one statement too, and
    // the wake-up of workers another: each creation is idempotent by its id or dedupe
    // key, so a batch written again after a broken connection creates nothing twice.
    if batch
        .iter()
        .all(|op| matches!(op, PgOp::Write(Write::CreateRun(..))))
    {
        let plan = Plan::new(batch, 0);
        let mut created = insert_runs(&mut c.client, &c.st, &plan.runs)?;
        if plan.runs.iter().any(|(_, r)| r.executor.is_none()) {
            c.client.batch_execute("NOTIFY flow_runnable")?;
        }
        created.sort_unstable_by_key(|(at, _)| *at);
        acknowledge(batch, created, &fenced);
        return Ok(());
    }
    let result = (|| {
        let mut tx = c.client.transaction()?;
        let mut i = 0;
        while i < batch.len() {
            if let PgOp::Exec(_) | PgOp::Ran(_) = batch[i] {
                let op = std::mem::replace(&mut batch[i], PgOp::Ran(Box::new(|_| {})));
                batch[i] = match op {
                    PgOp::Exec(f) => PgOp::Ran(f(&mut tx)),
                    other => other,
                };
                i += 1;
                continue;
            }
            // Data records up to the next closure: written a statement per kind.
            let end = (i..batch.len())
                .find(|&k| matches!(batch[k], PgOp::Exec(_) | PgOp::Ran(_)))
                .unwrap_or(batch.len());
            write_records(
                &mut tx,
                &c.st,
                &batch[i..end],
                i,
                owners,
                &mut created,
                &mut fenced,
            )?;
            i = end;
        }
        tx.commit()
    })();
    created.sort_unstable_by_key(|(at, _)| *at);
    match result {
        Ok(()) => {
            acknowledge(batch, created, &fenced);
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

/// Tells every waiter of a committed batch how its records went, and empties the batch.
fn acknowledge(batch: &mut Vec<PgOp>, created: Vec<(usize, RunKey)>, fenced: &HashSet<usize>) {
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
}

/// A stretch of data records, as the columns its statements bind: the runs it creates,
/// its events (an event written twice keeps its last version, as one after the other
/// would), and per run the record that decides its row (its last end, else its last
/// status). `offset` is the stretch's place in the batch.
struct Plan<'a> {
    offset: usize,
    records: &'a [PgOp],
    runs: Vec<(usize, &'a NewRun)>,
    event_rows: Vec<&'a Event>,
    status_ids: Vec<RunKey>,
    statuses: Vec<&'static str>,
    wakes: Vec<Option<i64>>,
    end_ids: Vec<RunKey>,
    end_statuses: Vec<&'static str>,
    outputs: Vec<Option<&'a str>>,
    errors: Vec<Option<&'a str>>,
    ats: Vec<i64>,
    /// The batch index of each run's end record.
    end_records: HashMap<RunKey, usize>,
}

impl<'a> Plan<'a> {
    fn new(records: &'a [PgOp], offset: usize) -> Plan<'a> {
        let mut plan = Plan {
            offset,
            records,
            runs: Vec::new(),
            event_rows: Vec::new(),
            status_ids: Vec::new(),
            statuses: Vec::new(),
            wakes: Vec::new(),
            end_ids: Vec::new(),
            end_statuses: Vec::new(),
            outputs: Vec::new(),
            errors: Vec::new(),
            ats: Vec::new(),
            end_records: HashMap::new(),
        };
        let mut event_at: HashMap<(RunKey, u32), usize> = HashMap::new();
        let mut last: HashMap<RunKey, usize> = HashMap::new();
        for (k, op) in records.iter().enumerate() {
            match op {
                PgOp::Write(Write::CreateRun(run, _)) => plan.runs.push((offset + k, run)),
                PgOp::Write(Write::Events(events, _)) => {
                    for e in events {
                        match event_at.get(&(e.run, e.seq)) {
                            Some(&at) => plan.event_rows[at] = e,
                            None => {
                                event_at.insert((e.run, e.seq), plan.event_rows.len());
                                plan.event_rows.push(e);
                            }
                        }
                    }
                }
                PgOp::Write(Write::Status { run, .. }) => {
                    let decided_by_end = last
                        .get(run)
                        .is_some_and(|&j| matches!(records[j], PgOp::Write(Write::Finish { .. })));
                    if !decided_by_end {
                        last.insert(*run, k);
                    }
                }
                PgOp::Write(Write::Finish { run, .. }) => {
                    last.insert(*run, k);
                }
                PgOp::Exec(_) | PgOp::Ran(_) => {}
            }
        }
        let mut order: Vec<usize> = last.into_values().collect();
        order.sort_unstable();
        for k in order {
            match &records[k] {
                PgOp::Write(Write::Status {
                    run,
                    status,
                    wake_at,
                    ..
                }) => {
                    plan.status_ids.push(*run);
                    plan.statuses.push(status.as_str());
                    plan.wakes.push(*wake_at);
                }
                PgOp::Write(Write::Finish {
                    run,
                    status,
                    output,
                    error,
                    at,
                    ..
                }) => {
                    plan.end_ids.push(*run);
                    plan.end_statuses.push(status.as_str());
                    plan.outputs.push(output.as_deref());
                    plan.errors.push(error.as_deref());
                    plan.ats.push(*at);
                    plan.end_records.insert(*run, offset + k);
                }
                _ => {}
            }
        }
        plan
    }

    fn event_columns(&self) -> EventColumns<'a> {
        let rows = &self.event_rows;
        EventColumns {
            runs: rows.iter().map(|e| e.run).collect(),
            seqs: rows.iter().map(|e| i64::from(e.seq)).collect(),
            ats: rows.iter().map(|e| e.at).collect(),
            kinds: rows.iter().map(|e| e.kind.as_str()).collect(),
            steps: rows.iter().map(|e| e.step.as_deref()).collect(),
            attempts: rows.iter().map(|e| e.attempt.map(i64::from)).collect(),
            data: rows.iter().map(|e| e.data.as_deref()).collect(),
        }
    }

    /// Marks the event records whose run's events were not written (fenced).
    fn fence_events(&self, written: &HashSet<RunKey>, fenced: &mut HashSet<usize>) {
        for (k, op) in self.records.iter().enumerate() {
            if let PgOp::Write(Write::Events(events, _)) = op
                && events.iter().any(|e| !written.contains(&e.run))
            {
                fenced.insert(self.offset + k);
            }
        }
    }

    /// Marks the end records not written because their run is no longer this
    /// process's (one not written because it was cancelled meanwhile is as it should be).
    fn fence_ends(
        &self,
        db: &mut impl GenericClient,
        st: &Statements,
        done: &HashSet<RunKey>,
        owners: &[String],
        fenced: &mut HashSet<usize>,
    ) -> Result<(), postgres::Error> {
        if owners.is_empty() {
            return Ok(());
        }
        for run in self.end_ids.iter().filter(|r| !done.contains(r)) {
            if let Some(row) = db.query_opt(&st.owner, &[run, &owners])?
                && row.get::<_, Option<bool>>(0) != Some(true)
            {
                fenced.extend(self.end_records.get(run));
            }
        }
        Ok(())
    }
}

/// A batch's events as the arrays its `unnest` binds.
struct EventColumns<'a> {
    runs: Vec<i64>,
    seqs: Vec<i64>,
    ats: Vec<i64>,
    kinds: Vec<&'static str>,
    steps: Vec<Option<&'a str>>,
    attempts: Vec<Option<i64>>,
    data: Vec<Option<&'a str>>,
}

/// Writes a stretch with no runs to create as one statement (its parts in data-modifying
/// `WITH` clauses: one round trip and one commit when run outside a transaction).
fn write_combined(
    db: &mut impl GenericClient,
    st: &Statements,
    plan: &Plan<'_>,
    owners: &[String],
    fenced: &mut HashSet<usize>,
) -> Result<(), postgres::Error> {
    if plan.event_rows.is_empty() && plan.status_ids.is_empty() && plan.end_ids.is_empty() {
        // Nothing to write (a flush: an empty batch somebody waits for).
        return Ok(());
    }
    let e = plan.event_columns();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &e.runs,
        &e.seqs,
        &e.ats,
        &e.kinds,
        &e.steps,
        &e.attempts,
        &e.data,
        &owners,
    ];
    if plan.status_ids.is_empty() && plan.end_ids.is_empty() {
        // Events alone (most batches): the plain insert plans and runs faster.
        let written = db
            .query(&st.events, &params)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        plan.fence_events(&written, fenced);
        return Ok(());
    }
    params.extend([
        &plan.status_ids as &(dyn ToSql + Sync),
        &plan.statuses,
        &plan.wakes,
        &plan.end_ids,
        &plan.end_statuses,
        &plan.outputs,
        &plan.errors,
        &plan.ats,
    ]);
    let rows = db.query(&st.combined, &params)?;
    let (mut written, mut done) = (HashSet::new(), HashSet::new());
    for r in &rows {
        match r.get::<_, i64>(0) {
            0 => written.insert(r.get::<_, i64>(1)),
            _ => done.insert(r.get::<_, i64>(1)),
        };
    }
    plan.fence_events(&written, fenced);
    plan.fence_ends(db, st, &done, owners, fenced)
}

/// Writes a stretch of data records inside the batch's transaction: the runs it creates
/// first (one statement), then the rest as one statement.
fn write_records(
    tx: &mut Transaction<'_>,
    st: &Statements,
    records: &[PgOp],
    offset: usize,
    owners: &[String],
    created: &mut Vec<(usize, RunKey)>,
    fenced: &mut HashSet<usize>,
) -> Result<(), postgres::Error> {
    let plan = Plan::new(records, offset);
    if !plan.runs.is_empty() {
        created.extend(insert_runs(tx, st, &plan.runs)?);
        if plan.runs.iter().any(|(_, r)| r.executor.is_none()) {
            // Delivered at commit, to every worker listening.
            tx.batch_execute("NOTIFY flow_runnable")?;
        }
    }
    if plan.event_rows.is_empty() && plan.status_ids.is_empty() && plan.end_ids.is_empty() {
        return Ok(());
    }
    write_combined(tx, st, &plan, owners, fenced)
}

/// Inserts runs in one statement; a run whose id or dedupe key is taken (a retried
/// batch, a second submission with the same key, or an earlier run of this batch) is
/// not inserted and is answered with the run that holds the key.
fn insert_runs(
    tx: &mut impl GenericClient,
    c: &Statements,
    runs: &[(usize, &NewRun)],
) -> Result<Vec<(usize, RunKey)>, postgres::Error> {
    let col = |f: fn(&NewRun) -> Option<&str>| -> Vec<Option<&str>> {
        runs.iter().map(|(_, r)| f(r)).collect()
    };
    let run_ids = col(|r| Some(r.run_id.as_str()));
    let workflows = col(|r| Some(r.workflow.as_str()));
    let programs = col(|r| Some(r.program.as_str()));
    let parents: Vec<Option<i64>> = runs.iter().map(|(_, r)| r.parent).collect();
    let parent_steps = col(|r| r.parent_step.as_deref());
    let owners = col(|r| r.owner_as.as_deref());
    let priorities: Vec<i64> = runs.iter().map(|(_, r)| r.priority).collect();
    let statuses = col(|r| Some(r.status.as_str()));
    let inputs = col(|r| Some(r.input.as_str()));
    let created_at: Vec<i64> = runs.iter().map(|(_, r)| r.created_at).collect();
    let executors = col(|r| r.executor.as_deref());
    let triggers = col(|r| r.origin.trigger.as_deref());
    let events: Vec<Option<String>> = runs
        .iter()
        .map(|(_, r)| r.origin.event.as_ref().map(|e| e.to_string()))
        .collect();
    let actors = col(|r| r.origin.actor.as_deref());
    let dedupes = col(|r| r.origin.dedupe.as_deref());
    let limits: Vec<Option<i64>> = runs.iter().map(|(_, r)| r.concurrency).collect();
    let inserted: HashMap<String, RunKey> = tx
        .query(
            &c.create_runs,
            &[
                &run_ids,
                &workflows,
                &programs,
                &parents,
                &parent_steps,
                &owners,
                &priorities,
                &statuses,
                &inputs,
                &created_at,
                &executors,
                &triggers,
                &events,
                &actors,
                &dedupes,
                &limits,
            ],
        )?
        .iter()
        .map(|r| (r.get(1), r.get(0)))
        .collect();
    let mut keys = Vec::with_capacity(runs.len());
    for (at, run) in runs {
        let key = match inserted.get(&run.run_id) {
            Some(&key) => key,
            None => tx
                .query_one(&c.existing_run, &[&run.origin.dedupe, &run.run_id])?
                .get(0),
        };
        keys.push((*at, key));
    }
    Ok(keys)
}
