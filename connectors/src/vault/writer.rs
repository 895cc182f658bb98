//! The vault's writer: audit rows and breaker states written in the background, every
//! failure logged and counted. A vault file has the runtime's group-commit writer on a
//! connection of its own; a vault in a PostgreSQL store sends its batches through the
//! store's writer, which commits them with the journal's.

use super::*;
use flow_runtime::store::Store;
use rusqlite::params;

/// The vault's side of the group-commit writer (`flow_runtime::group_commit`): audit rows
/// and breaker states nobody waits for, each statement prepared once per batch, and
/// flushes that wait for everything sent before them. A write that fails is counted in
/// `failures` and logged; an audit row and its error hold no secret.
struct VaultWrites {
    actor: String,
    failures: Arc<AtomicU64>,
}

impl VaultWrites {
    fn failed(&self, rows: u64, what: &str, error: &rusqlite::Error) {
        if rows == 0 {
            return;
        }
        self.failures.fetch_add(rows, Ordering::Relaxed);
        tracing::warn!(rows, %error, "the vault could not write {what}");
    }
}

impl Journal for VaultWrites {
    type Record = Write;
    /// Rows written in the batch (lost if its commit fails) and the flushes to answer.
    type Pending = (u64, Vec<mpsc::Sender<()>>);

    fn awaited(w: &Write) -> bool {
        matches!(w, Write::Flush(_))
    }

    fn write(&mut self, tx: &rusqlite::Transaction<'_>, batch: &mut Vec<Write>) -> Self::Pending {
        // Each statement is looked up once per batch, not once per row.
        let mut insert: Option<rusqlite::CachedStatement<'_>> = None;
        let mut upsert: Option<rusqlite::CachedStatement<'_>> = None;
        let mut previous: Option<AuditEntry> = None;
        let mut rows = 0u64;
        let mut flushes = Vec::new();
        for w in batch.drain(..) {
            match w {
                Write::Audit(e, at) => {
                    if insert.is_none() {
                        match tx.prepare_cached(INSERT_AUDIT) {
                            Ok(statement) => insert = Some(statement),
                            Err(error) => {
                                self.failed(1, "an audit row", &error);
                                continue;
                            }
                        }
                    }
                    let Some(statement) = insert.as_mut() else {
                        continue;
                    };
                    match insert_audit_row(statement, &e, at, previous.as_ref(), &self.actor) {
                        Ok(_) => {
                            rows += 1;
                            previous = Some(e);
                        }
                        Err(error) => {
                            self.failed(1, "an audit row", &error);
                            // The statement may hold part of this row's bindings.
                            previous = None;
                        }
                    }
                }
                Write::Breaker {
                    integration,
                    owner,
                    record,
                } => {
                    if upsert.is_none() {
                        match tx.prepare_cached(UPSERT_BREAKER) {
                            Ok(statement) => upsert = Some(statement),
                            Err(error) => {
                                self.failed(1, "a breaker state", &error);
                                continue;
                            }
                        }
                    }
                    let Some(statement) = upsert.as_mut() else {
                        continue;
                    };
                    let written = statement.execute(params![
                        integration,
                        owner,
                        record.state,
                        record.since,
                        record.failures
                    ]);
                    match written {
                        Ok(_) => rows += 1,
                        Err(error) => self.failed(1, "a breaker state", &error),
                    }
                }
                Write::Flush(done) => flushes.push(done),
            }
        }
        (rows, flushes)
    }

    fn committed(&mut self, (rows, flushes): Self::Pending, result: Result<(), rusqlite::Error>) {
        if let Err(error) = result {
            self.failed(rows, "a batch of audit rows and breaker states", &error);
        }
        for done in flushes {
            let _ = done.send(());
        }
    }

    fn not_started(&mut self, batch: &mut Vec<Write>, error: rusqlite::Error) {
        let mut lost = 0;
        for w in batch.drain(..) {
            match w {
                Write::Flush(done) => {
                    let _ = done.send(());
                }
                Write::Audit(..) | Write::Breaker { .. } => lost += 1,
            }
        }
        self.failed(lost, "a batch of audit rows and breaker states", &error);
    }
}

/// The vault's write-ahead log size past which its writer folds and empties it.
const WAL_LIMIT: u64 = 16 << 20;

/// Starts the writer of the vault at `location`.
pub(super) fn spawn(
    location: &VaultLocation,
    failures: Arc<AtomicU64>,
) -> Result<mpsc::Sender<Write>, VaultError> {
    match location {
        VaultLocation::File(path) => spawn_file_writer(path, failures),
        VaultLocation::Store { store, .. } => spawn_store_writer(store.clone(), failures),
    }
}

/// The file's writer, on its own connection.
fn spawn_file_writer(
    path: &Path,
    failures: Arc<AtomicU64>,
) -> Result<mpsc::Sender<Write>, VaultError> {
    let db = tables::open_file(path)?;
    let journal = VaultWrites {
        actor: current_actor(),
        failures,
    };
    let options = WriterOptions {
        name: "flow-vault-audit",
        max_batch: MAX_BATCH,
        // Entries come one per call: sleeping a moment before writing lets a burst share
        // one transaction, and the callers' sends find the writer asleep rather than
        // waiting, so they wake no thread. A flush is not delayed.
        linger: Linger::SleepFirst(WRITER_LINGER),
        immediate: false,
        // One audit row per call: at thousands of calls a second the log outgrows what
        // SQLite's automatic checkpoint can fold while the vault is read, and every
        // commit slows with it.
        wal_limit: Some((group_commit::wal_path(path), WAL_LIMIT)),
    };
    group_commit::spawn(db, journal, options).map_err(|source| VaultError::Io {
        path: path.to_owned(),
        source,
    })
}

/// The writer of a vault in a PostgreSQL store: a thread that gathers what arrives within
/// [`WRITER_LINGER`] of the first entry (at most [`MAX_BATCH`]) and hands the batch to
/// the store's writer as one transaction. A batch that fails is counted and logged whole
/// (its rows were all or nothing); flushes are answered once their batch is settled.
fn spawn_store_writer(
    store: Store,
    failures: Arc<AtomicU64>,
) -> Result<mpsc::Sender<Write>, VaultError> {
    let (tx, rx) = mpsc::channel::<Write>();
    let actor = current_actor();
    std::thread::Builder::new()
        .name("flow-vault-audit".into())
        .spawn(move || {
            let mut batch = Vec::new();
            while let Ok(first) = rx.recv() {
                group_commit::gather(
                    &rx,
                    first,
                    &mut batch,
                    MAX_BATCH,
                    Linger::SleepFirst(WRITER_LINGER),
                    VaultWrites::awaited,
                );
                let mut rows = Vec::new();
                let mut flushes = Vec::new();
                for w in batch.drain(..) {
                    match w {
                        Write::Flush(done) => flushes.push(done),
                        other => rows.extend(row_of(other, &actor)),
                    }
                }
                let count = rows.len() as u64;
                if count > 0 {
                    let written = store.transact_blocking(move |t| {
                        for (sql, params) in &rows {
                            t.execute(sql, params)?;
                        }
                        Ok(())
                    });
                    if let Err(error) = written {
                        failures.fetch_add(count, Ordering::Relaxed);
                        tracing::warn!(
                            rows = count,
                            %error,
                            "the vault could not write a batch of audit rows and breaker states"
                        );
                    }
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        })
        .map_err(|source| VaultError::Io {
            path: PathBuf::from("flow-vault-audit thread"),
            source,
        })?;
    Ok(tx)
}

/// An audit row or a breaker state as a statement of the shared SQL (a flush is none).
fn row_of(w: Write, actor: &str) -> Option<(&'static str, Vec<SqlValue>)> {
    Some(match w {
        Write::Audit(e, at) => (
            INSERT_AUDIT,
            vec![
                at.into(),
                (&*e.integration).into(),
                e.owner.into(),
                e.run_id.as_deref().into(),
                e.workflow.as_deref().into(),
                e.step.into(),
                (&*e.purpose).into(),
                e.outcome.into(),
                actor.into(),
            ],
        ),
        Write::Breaker {
            integration,
            owner,
            record,
        } => (
            UPSERT_BREAKER,
            vec![
                integration.into(),
                owner.into(),
                record.state.into(),
                record.since.into(),
                record.failures.into(),
            ],
        ),
        Write::Flush(_) => return None,
    })
}
