//! The one group-commit writer for SQLite, used by the run journal (`store/`) and by
//! the connectors' vault (its audit log and breaker states); its batching ([`gather`])
//! is also the PostgreSQL store's.
//!
//! A thread owns the write connection and takes what callers queue on a channel: each
//! batch (up to [`WriterOptions::max_batch`] records) goes into one transaction, so many
//! records share one commit and one fsync. What a batch waits for is the [`Linger`]
//! policy. What to write, and whom to tell how the commit went, is the [`Journal`]'s
//! business; the writer never drops an error: a record's failure, a failed commit and a
//! transaction that could not start all reach the journal, which tells the waiters or
//! counts and reports the failure.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior};

/// What one writer thread writes, and how it reports the outcome.
pub trait Journal: Send + 'static {
    type Record: Send + 'static;
    /// What waits for the commit (acknowledgements, counts), gathered while writing.
    type Pending;

    /// Whether somebody waits for this record to be durable: such a record ends the
    /// [`Linger::WaitForMore`] wait at once.
    fn awaited(record: &Self::Record) -> bool;

    /// Writes the batch inside `tx`, in order, draining it.
    fn write(&mut self, tx: &Transaction<'_>, batch: &mut Vec<Self::Record>) -> Self::Pending;

    /// The batch's commit: `Ok` when everything written is durable; `Err` when nothing of
    /// it is.
    fn committed(&mut self, pending: Self::Pending, result: Result<(), rusqlite::Error>);

    /// The batch's transaction could not start: nothing of it is written.
    fn not_started(&mut self, batch: &mut Vec<Self::Record>, error: rusqlite::Error);
}

/// How long a batch waits for company before it is written.
#[derive(Clone, Copy, Debug)]
pub enum Linger {
    /// When no record of the batch is awaited, wait up to this long for one that is (or
    /// for more records) so they share the commit; an awaited record is written at once.
    WaitForMore(Duration),
    /// Sleep this long before taking the batch, whatever arrives: callers' sends then
    /// find the thread asleep and wake nothing, which keeps a send cheap when records
    /// come one per call. An awaited record is not delayed.
    SleepFirst(Duration),
}

/// A writer's settings.
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// The thread's name.
    pub name: &'static str,
    /// The most records one transaction takes.
    pub max_batch: usize,
    pub linger: Linger,
    /// Take the write lock when the transaction starts (`BEGIN IMMEDIATE`), so a busy
    /// database is waited for before anything is written rather than at the commit.
    pub immediate: bool,
    /// The database's write-ahead log and its limit: past it, the writer folds the log
    /// into the database and empties it between two batches. A checkpoint on another
    /// connection cannot empty a log that a busy writer keeps appending to; the writer
    /// itself can, since no other write is in progress then.
    pub wal_limit: Option<(std::path::PathBuf, u64)>,
}

/// Starts the writer thread on `conn`; records sent on the returned channel are written
/// in order. The thread ends when every sender is dropped, after writing what was queued.
pub fn spawn<J: Journal>(
    conn: Connection,
    journal: J,
    options: WriterOptions,
) -> std::io::Result<mpsc::Sender<J::Record>> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(options.name.into())
        .spawn(move || run(conn, journal, rx, &options))?;
    Ok(tx)
}

fn run<J: Journal>(
    mut conn: Connection,
    mut journal: J,
    rx: mpsc::Receiver<J::Record>,
    options: &WriterOptions,
) {
    // Kept across batches, so a burst does not grow a fresh vector each time.
    let mut batch: Vec<J::Record> = Vec::with_capacity(options.max_batch.min(4096));
    while let Ok(first) = rx.recv() {
        gather(
            &rx,
            first,
            &mut batch,
            options.max_batch,
            options.linger,
            J::awaited,
        );
        commit(&mut conn, &mut journal, &mut batch, options.immediate);
        if let Some((wal, limit)) = &options.wal_limit
            && std::fs::metadata(wal).is_ok_and(|m| m.len() > *limit)
        {
            fold_wal(&conn);
        }
    }
}

/// Takes the batch that starts with `first` from `rx` into `batch`, waiting as `linger`
/// says (shared by every group-commit writer: this SQLite one, the PostgreSQL store's
/// and the vault's on a PostgreSQL store).
pub fn gather<R>(
    rx: &mpsc::Receiver<R>,
    first: R,
    batch: &mut Vec<R>,
    max_batch: usize,
    linger: Linger,
    is_awaited: fn(&R) -> bool,
) {
    let mut awaited = is_awaited(&first);
    if let Linger::SleepFirst(pause) = linger
        && !awaited
    {
        std::thread::sleep(pause);
    }
    batch.push(first);
    let mut deadline: Option<Instant> = None;
    while batch.len() < max_batch {
        let next = match rx.try_recv() {
            Ok(record) => Some(record),
            Err(mpsc::TryRecvError::Disconnected) => None,
            Err(mpsc::TryRecvError::Empty) => match linger {
                Linger::WaitForMore(linger) if !awaited => {
                    let until = *deadline.get_or_insert_with(|| Instant::now() + linger);
                    rx.recv_timeout(until.saturating_duration_since(Instant::now()))
                        .ok()
                }
                _ => None,
            },
        };
        let Some(record) = next else { break };
        awaited |= is_awaited(&record);
        batch.push(record);
    }
}

/// The write-ahead log of the SQLite database at `db` (`db` + `-wal`).
pub fn wal_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::path::PathBuf::from(wal)
}

/// Folds the write-ahead log into the database and truncates it (waiting, within the
/// connection's busy timeout, for readers to leave older snapshots).
fn fold_wal(conn: &Connection) {
    match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(0) => {}
        Ok(_) => tracing::debug!(
            "the write-ahead log is in use by a reader; it is folded after a later batch"
        ),
        Err(e) => tracing::warn!(error = %e, "the write-ahead log could not be folded"),
    }
}

fn commit<J: Journal>(
    conn: &mut Connection,
    journal: &mut J,
    batch: &mut Vec<J::Record>,
    immediate: bool,
) {
    let behavior = if immediate {
        TransactionBehavior::Immediate
    } else {
        TransactionBehavior::Deferred
    };
    let tx = match conn.transaction_with_behavior(behavior) {
        Ok(tx) => tx,
        Err(e) => {
            journal.not_started(batch, e);
            batch.clear();
            return;
        }
    };
    let pending = journal.write(&tx, batch);
    batch.clear();
    let result = tx.commit();
    journal.committed(pending, result);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Writes numbers into a table and reports each batch's size and commit.
    struct Numbers {
        batches: Arc<Mutex<Vec<(usize, bool)>>>,
    }

    enum Record {
        Number(i64),
        /// Waits for everything before it to be durable.
        Sync(mpsc::Sender<bool>),
    }

    impl Journal for Numbers {
        type Record = Record;
        type Pending = (usize, Vec<mpsc::Sender<bool>>);

        fn awaited(record: &Record) -> bool {
            matches!(record, Record::Sync(_))
        }

        fn write(&mut self, tx: &Transaction<'_>, batch: &mut Vec<Record>) -> Self::Pending {
            let mut syncs = Vec::new();
            let n = batch.len();
            for record in batch.drain(..) {
                match record {
                    Record::Number(x) => {
                        tx.execute("INSERT INTO numbers(x) VALUES (?1)", [x])
                            .expect("insert");
                    }
                    Record::Sync(done) => syncs.push(done),
                }
            }
            (n, syncs)
        }

        fn committed(&mut self, (n, syncs): Self::Pending, result: Result<(), rusqlite::Error>) {
            self.batches
                .lock()
                .expect("batches")
                .push((n, result.is_ok()));
            for done in syncs {
                let _ = done.send(result.is_ok());
            }
        }

        fn not_started(&mut self, batch: &mut Vec<Record>, _: rusqlite::Error) {
            for record in batch.drain(..) {
                if let Record::Sync(done) = record {
                    let _ = done.send(false);
                }
            }
        }
    }

    fn writer(
        linger: Linger,
    ) -> (
        mpsc::Sender<Record>,
        Arc<Mutex<Vec<(usize, bool)>>>,
        tempfile::TempDir,
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let conn = Connection::open(dir.path().join("n.db")).expect("open");
        conn.execute_batch("CREATE TABLE numbers(x INTEGER)")
            .expect("schema");
        // A busy database fails at once rather than after rusqlite's default 5 s.
        conn.busy_timeout(Duration::ZERO).expect("timeout");
        let batches = Arc::new(Mutex::new(Vec::new()));
        let tx = spawn(
            conn,
            Numbers {
                batches: Arc::clone(&batches),
            },
            WriterOptions {
                name: "test-writer",
                max_batch: 1000,
                linger,
                immediate: true,
                wal_limit: None,
            },
        )
        .expect("spawn");
        (tx, batches, dir)
    }

    fn count(dir: &tempfile::TempDir) -> i64 {
        let conn = Connection::open(dir.path().join("n.db")).expect("open");
        conn.query_row("SELECT COUNT(*) FROM numbers", [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn records_nobody_waits_for_share_a_commit_with_the_next_awaited_one() {
        let (tx, batches, dir) = writer(Linger::WaitForMore(Duration::from_millis(500)));
        for x in 0..100 {
            tx.send(Record::Number(x)).expect("send");
        }
        let (done, wait) = mpsc::channel();
        tx.send(Record::Sync(done)).expect("send");
        assert!(wait.recv().expect("acknowledged"), "the commit succeeded");
        assert_eq!(count(&dir), 100);
        // All hundred and the sync went in one transaction: the linger waited for it.
        assert_eq!(*batches.lock().expect("batches"), vec![(101, true)]);
    }

    #[test]
    fn many_threads_sending_at_once_are_all_written_in_order_of_their_sends() {
        let (tx, batches, dir) = writer(Linger::SleepFirst(Duration::from_millis(5)));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for x in 0..250 {
                        tx.send(Record::Number(t * 1000 + x)).expect("send");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("sender");
        }
        let (done, wait) = mpsc::channel();
        tx.send(Record::Sync(done)).expect("send");
        assert!(wait.recv().expect("acknowledged"));
        assert_eq!(count(&dir), 2000);
        let batches = batches.lock().expect("batches");
        assert!(batches.iter().all(|(_, ok)| *ok));
        assert_eq!(batches.iter().map(|(n, _)| n).sum::<usize>(), 2001);
        assert!(
            batches.len() < 2001,
            "records shared transactions: {} batches",
            batches.len()
        );
    }

    #[test]
    fn a_commit_that_fails_reaches_the_journal() {
        let (tx, batches, dir) = writer(Linger::WaitForMore(Duration::from_millis(1)));
        // Another connection holds the write lock past the writer's busy timeout (none).
        let blocker = Connection::open(dir.path().join("n.db")).expect("open");
        blocker.execute_batch("BEGIN IMMEDIATE").expect("lock");
        let (done, wait) = mpsc::channel();
        tx.send(Record::Number(1)).expect("send");
        tx.send(Record::Sync(done)).expect("send");
        assert!(
            !wait.recv().expect("told"),
            "the waiter hears of the failure"
        );
        blocker.execute_batch("ROLLBACK").expect("unlock");
        assert_eq!(count(&dir), 0);
        assert!(batches.lock().expect("batches").is_empty(), "no commit ran");
    }
}
