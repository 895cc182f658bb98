//! The vault's writer: audit rows and breaker states written in the background through
//! the runtime's group-commit writer, every failure logged and counted.

use super::*;

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

/// Starts the vault's writer on its own connection.
pub(super) fn spawn_writer(
    path: &Path,
    failures: Arc<AtomicU64>,
) -> Result<mpsc::Sender<Write>, VaultError> {
    let db = open_db(path)?;
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
