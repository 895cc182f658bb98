//! The durable journal: every run, its events and the compiled program it runs, in an
//! SQLite file (WAL mode, the default) or a PostgreSQL database (`postgres/`), written
//! through a group-commit writer (`group_commit.rs`; `postgres/writer.rs`). [`Store`] is
//! the one interface both backends answer to; `tests/store_conformance.rs` holds them to
//! it.
//!
//! Writes from all runs go through a channel to a single thread that owns the write
//! connection. It takes everything queued, writes it in one transaction and commits
//! once, then tells each writer its records are durable. Under load, one commit (one
//! `fsync` with `synchronous=FULL`) covers hundreds of step transitions, so durability
//! does not cap throughput. A record somebody waits for commits as soon as it arrives;
//! records nobody waits for (a step's "started" event, a status change) linger for up to
//! [`LINGER`] and ride along with the next commit, so a sequential run pays one `fsync`
//! per step, not two.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::group_commit::{self, Journal, Linger, WriterOptions};

mod journal;
mod lease;
mod postgres;
mod signals;
mod sql;
mod sqlite;
pub use signals::{EventWait, event_signal};
pub use sql::{FromSqlValue, SqlRow, SqlTx, SqlValue, SqliteTx, table_definition};

use journal::JournalWrites;
pub use lease::Lease;
pub use sqlite::use_write_ahead_log;
use sqlite::{checkpoint_loop, classify, event_row, init_schema, open_connection, run_row};

/// The schema version this build writes (`PRAGMA user_version`); older stores are
/// upgraded when opened (`migrate`).
const SCHEMA_VERSION: i64 = 4;

/// Most records one transaction takes, so a flood of writes still commits regularly.
const MAX_BATCH: usize = 8192;

/// How long records nobody waits for may wait for a record that must be durable, so the
/// two share one commit. Losing them in a crash costs nothing: a step whose "started"
/// event is lost had not succeeded and runs again on resume.
const LINGER: Duration = Duration::from_millis(5);

/// Errors of the store. Each names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the store directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the store {path} is not a Flow store or is corrupt ({detail}); move it aside and Flow will create a new one, or pass --store PATH"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "the store {path} is locked by another process (waited {waited:?}); wait for it to finish or pass --store PATH"
    )]
    Locked { path: PathBuf, waited: Duration },
    #[error(
        "the store {path} was written by a newer Flow (schema {found}, this build reads {SCHEMA_VERSION})"
    )]
    TooNew { path: PathBuf, found: i64 },
    #[error("store {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store {path}: cannot commit: {message}")]
    Commit { path: PathBuf, message: String },
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("no run with id `{0}` in this store")]
    NoSuchRun(String),
    #[error("store {at}: {message}")]
    Postgres { at: String, message: String },
    #[error(
        "the store {at} was written by a newer Flow (schema {found}, this build reads {})",
        postgres::SCHEMA_VERSION
    )]
    PostgresTooNew { at: String, found: i64 },
    #[error(
        "run {run} now belongs to another executor (this process's lease on it lapsed); its writes from here are refused"
    )]
    Fenced { run: RunKey },
    #[error("a stored column {index} holds {found}, not {wanted}")]
    Column {
        index: usize,
        found: String,
        wanted: &'static str,
    },
    #[error("{what} is not available on a PostgreSQL store yet (store {at}); use an SQLite store")]
    NotOnPostgres { what: &'static str, at: String },
}

/// Where a store lives: an SQLite file, or a PostgreSQL database named by its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    File(PathBuf),
    /// A `postgres://` or `postgresql://` URL (libpq's form, with its key=value options).
    Postgres(String),
}

impl StoreLocation {
    /// `postgres://…` and `postgresql://…` name a PostgreSQL database; anything else is a
    /// file path.
    pub fn parse(text: &str) -> StoreLocation {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            StoreLocation::Postgres(text.to_owned())
        } else {
            StoreLocation::File(PathBuf::from(text))
        }
    }

    /// The path the store's local companions (the vault) are kept next to: the SQLite
    /// file, or `.flow/postgres` for a PostgreSQL store.
    pub fn local_anchor(&self) -> PathBuf {
        match self {
            StoreLocation::File(path) => path.clone(),
            StoreLocation::Postgres(_) => PathBuf::from(".flow/postgres"),
        }
    }

    /// How messages name the store: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::File(path) => path.display().to_string(),
            StoreLocation::Postgres(url) => postgres::redact(url),
        }
    }
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How far a commit goes before a step counts as done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `synchronous=FULL`: every commit reaches the disk (`fsync`) before a dependent step
    /// starts; survives a crash of the process, the kernel or the machine. On PostgreSQL,
    /// `synchronous_commit=on`.
    #[default]
    Full,
    /// `synchronous=NORMAL`: every commit reaches the operating system before a dependent
    /// starts; survives the process being killed at any instant, but a power loss or
    /// kernel crash can lose the last commits. On PostgreSQL, `synchronous_commit=off`:
    /// the server has every commit, and a crash of the server's machine can lose the last
    /// ones.
    Process,
}

#[derive(Clone, Debug)]
pub struct StoreOptions {
    pub durability: Durability,
    /// How long to wait for another process's lock before failing with [`StoreError::Locked`].
    pub busy_timeout: Duration,
    /// The write-ahead log's size past which it is folded into the database and emptied
    /// while the store is in use (a checkpoint that waits a moment for readers), so a
    /// process under constant load keeps it bounded.
    pub wal_limit: u64,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            wal_limit: 64 << 20,
        }
    }
}

/// A run's internal key (the `runs` rowid). Users see the textual run id.
pub type RunKey = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Accepted, not started yet.
    Pending,
    Running,
    /// Parked on a `wait` timer.
    Waiting,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "waiting" => RunStatus::Waiting,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the run has ended (nothing more will happen to it).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

/// What happened in a run. Stored as one row of `events`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    /// An attempt of a step began (`attempt` is 1-based).
    StepStarted,
    /// `data` is the result as JSON.
    StepSucceeded,
    /// `data` is `{ "error": StepError, "final": bool }`; `final` means no retry follows.
    StepFailed,
    /// `data` is the instant the timer fires, in Unix milliseconds.
    TimerSet,
    TimerFired,
    /// A `now()` reading: `data` is the instant in Unix nanoseconds.
    Clock,
    Log,
    /// A child run started for a `run` step; `data` is the child's run id.
    ChildStarted,
    RunCompleted,
    RunFailed,
    RunCancelled,
    /// The run was picked up again after its process stopped.
    RunResumed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::StepStarted => "step_started",
            EventKind::StepSucceeded => "step_succeeded",
            EventKind::StepFailed => "step_failed",
            EventKind::TimerSet => "timer_set",
            EventKind::TimerFired => "timer_fired",
            EventKind::Clock => "clock",
            EventKind::Log => "log",
            EventKind::ChildStarted => "child_started",
            EventKind::RunCompleted => "run_completed",
            EventKind::RunFailed => "run_failed",
            EventKind::RunCancelled => "run_cancelled",
            EventKind::RunResumed => "run_resumed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        use EventKind::*;
        [
            RunStarted,
            StepStarted,
            StepSucceeded,
            StepFailed,
            TimerSet,
            TimerFired,
            Clock,
            Log,
            ChildStarted,
            RunCompleted,
            RunFailed,
            RunCancelled,
            RunResumed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub run: RunKey,
    pub seq: u32,
    /// Unix milliseconds.
    pub at: i64,
    pub kind: EventKind,
    /// The step instance (`ticket[2]`), timer or clock key the event is about.
    pub step: Option<String>,
    pub attempt: Option<u32>,
    /// JSON.
    pub data: Option<String>,
}

/// A run to create.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub run_id: String,
    pub workflow: String,
    pub program: String,
    pub parent: Option<RunKey>,
    pub parent_step: Option<String>,
    pub owner_as: Option<String>,
    pub priority: i64,
    /// JSON.
    pub input: String,
    pub created_at: i64,
    /// The executor that runs it; `None` queues it for whichever worker claims it first
    /// ([`Store::claim_runnable`]).
    pub executor: Option<String>,
    pub status: RunStatus,
    /// The workflow's `concurrency` (a top-level run's), which claims by workers honour
    /// across processes on PostgreSQL.
    pub concurrency: Option<i64>,
    /// How the run came to be: [`RunOrigin`].
    pub origin: RunOrigin,
}

/// How a top-level run came to be: what started it, the trigger's event, who asked, and
/// the key that makes its creation idempotent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RunOrigin {
    /// `api`, `schedule`, `webhook`, `event` or `cli`; `None` for a child run.
    pub trigger: Option<String>,
    /// The trigger's event (the workflow's `event`), JSON.
    pub event: Option<serde_json::Value>,
    /// Who started it: an API key's name.
    pub actor: Option<String>,
    /// At most one run is created per key: a second creation with the same key returns
    /// the first run (webhook delivery ids, `Idempotency-Key`, schedule ticks). Keys are
    /// forgotten by `flow runs prune` along with their runs.
    #[serde(skip)]
    pub dedupe: Option<String>,
}

/// A run as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRow {
    #[serde(skip)]
    pub key: RunKey,
    pub run_id: String,
    pub workflow: String,
    pub program: String,
    #[serde(skip)]
    pub parent: Option<RunKey>,
    pub parent_step: Option<String>,
    pub owner_as: Option<String>,
    pub priority: i64,
    pub status: RunStatus,
    pub input: serde_json::Value,
    pub output: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    #[serde(skip)]
    pub executor: Option<String>,
    pub wake_at: Option<i64>,
    #[serde(flatten)]
    pub origin: RunOrigin,
}

type Done = oneshot::Sender<Result<(), StoreError>>;
type AfterCommit = Box<dyn FnOnce(Option<String>) + Send>;

/// A write every backend's writer takes as data (so a writer may retry it).
enum Write {
    Events(Vec<Event>, Option<Done>),
    CreateRun(NewRun, oneshot::Sender<Result<RunKey, StoreError>>),
    Status {
        run: RunKey,
        status: RunStatus,
        wake_at: Option<i64>,
        done: Option<Done>,
    },
    Finish {
        run: RunKey,
        status: RunStatus,
        output: Option<String>,
        error: Option<String>,
        at: i64,
        done: Option<Done>,
    },
}

impl Write {
    /// Whether somebody waits for this record to be durable.
    fn awaited(&self) -> bool {
        match self {
            Write::Events(_, done) | Write::Status { done, .. } | Write::Finish { done, .. } => {
                done.is_some()
            }
            Write::CreateRun(..) => true,
        }
    }

    /// Tells the record's waiter, if any, that it failed.
    fn fail(self, error: StoreError) {
        match self {
            Write::Events(_, Some(done))
            | Write::Status {
                done: Some(done), ..
            }
            | Write::Finish {
                done: Some(done), ..
            } => {
                let _ = done.send(Err(error));
            }
            Write::CreateRun(_, done) => {
                let _ = done.send(Err(error));
            }
            // Nobody waits for these; the run that queued them learns of the failure
            // from its next awaited record, which fails the same way.
            Write::Events(_, None)
            | Write::Status { done: None, .. }
            | Write::Finish { done: None, .. } => {}
        }
    }
}

/// What the SQLite writer takes.
enum Op {
    Write(Write),
    /// Runs inside the batch's transaction; what it returns is called once the batch
    /// committed (with the commit's error, if any), so results are never seen early.
    Exec(Box<dyn FnOnce(&Connection) -> AfterCommit + Send>),
}

/// A handle on an open store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// The SQLite file; for a PostgreSQL store, `.flow/postgres`, next to which local
    /// companions (the vault) are kept.
    path: PathBuf,
    location: StoreLocation,
    options: StoreOptions,
    backend: Backend,
    /// [`Store::work_hint`]'s notifier, made when first asked for.
    hint: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
}

enum Backend {
    Sqlite {
        tx: mpsc::Sender<Op>,
        read: Mutex<Connection>,
        /// The write-ahead log's file size when this store was opened ([`Store::fold_wal`]).
        wal_at_open: u64,
    },
    Postgres(postgres::Postgres),
}

impl Store {
    /// Opens (creating when missing) the store at `location`.
    pub fn open_at(location: &StoreLocation, options: StoreOptions) -> Result<Store, StoreError> {
        match location {
            StoreLocation::File(path) => Store::open(path, options),
            StoreLocation::Postgres(url) => {
                let backend = postgres::Postgres::open(url, &options)?;
                Ok(Store {
                    inner: Arc::new(Inner {
                        path: location.local_anchor(),
                        location: location.clone(),
                        options,
                        backend: Backend::Postgres(backend),
                        hint: std::sync::OnceLock::new(),
                    }),
                })
            }
        }
    }

    /// Opens (creating when missing) the SQLite store at `path`, checking that it is a
    /// Flow store this build can read.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let wal_at_open = std::fs::metadata(group_commit::wal_path(path)).map_or(0, |m| m.len());
        let write = open_connection(path, &options)?;
        init_schema(&write, path, &options)?;
        // Checkpoints run on their own connection and thread, so a commit never waits
        // for one (SQLite's automatic checkpoint would run inside the writer's commit).
        write
            .execute_batch("PRAGMA wal_autocheckpoint=0;")
            .map_err(|e| classify(path, e, options.busy_timeout))?;
        let read = open_connection(path, &options)?;
        let tx = group_commit::spawn(
            write,
            JournalWrites {
                path: path.to_path_buf(),
            },
            WriterOptions {
                name: "flow-store-writer",
                max_batch: MAX_BATCH,
                linger: Linger::WaitForMore(LINGER),
                immediate: true,
                wal_limit: Some((group_commit::wal_path(path), options.wal_limit)),
            },
        )
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let inner = Arc::new(Inner {
            path: path.to_path_buf(),
            location: StoreLocation::File(path.to_path_buf()),
            options,
            backend: Backend::Sqlite {
                tx,
                read: Mutex::new(read),
                wal_at_open,
            },
            hint: std::sync::OnceLock::new(),
        });
        let weak = Arc::downgrade(&inner);
        let (db, checkpoint_options) = (path.to_path_buf(), inner.options.clone());
        std::thread::Builder::new()
            .name("flow-store-checkpoint".into())
            .spawn(move || checkpoint_loop(&db, &checkpoint_options, weak))
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Store { inner })
    }

    /// The SQLite file, or for a PostgreSQL store the local path (`.flow/postgres`) its
    /// local companions (the vault) are kept next to.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub fn location(&self) -> &StoreLocation {
        &self.inner.location
    }

    /// Whether this store is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self.inner.backend, Backend::Postgres(_))
    }

    /// Whether the store is reachable now (its writer committed last time it tried),
    /// and how many outages it went through since it was opened. An SQLite file is
    /// always reachable.
    pub fn health(&self) -> (bool, u64) {
        match self.pg() {
            Some(pg) => pg.health(),
            None => (true, 0),
        }
    }

    pub fn durability(&self) -> Durability {
        self.inner.options.durability
    }

    fn pg(&self) -> Option<&postgres::Postgres> {
        match &self.inner.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite { .. } => None,
        }
    }

    fn send(&self, write: Write) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Sqlite { tx, .. } => tx
                .send(Op::Write(write))
                .map_err(|_| StoreError::WriterGone),
            Backend::Postgres(pg) => pg.send(write),
        }
    }

    fn not_on_postgres(&self, what: &'static str) -> StoreError {
        StoreError::NotOnPostgres {
            what,
            at: self.inner.location.describe(),
        }
    }

    /// Queues events; the returned receiver resolves once they are committed.
    pub fn append(
        &self,
        events: Vec<Event>,
    ) -> Result<oneshot::Receiver<Result<(), StoreError>>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.send(Write::Events(events, Some(done)))?;
        Ok(rx)
    }

    /// Queues events without waiting for them (they commit with the next batch, in order
    /// with everything queued after them).
    pub fn append_nowait(&self, events: Vec<Event>) -> Result<(), StoreError> {
        self.send(Write::Events(events, None))
    }

    /// Appends events and waits until they are durable.
    pub async fn append_durable(&self, events: Vec<Event>) -> Result<(), StoreError> {
        self.append(events)?
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// Creates a run; resolves once the run is durable.
    pub async fn create_run(&self, run: NewRun) -> Result<RunKey, StoreError> {
        let queued = run.executor.is_none();
        let (done, rx) = oneshot::channel();
        self.send(Write::CreateRun(run, done))?;
        let key = rx.await.map_err(|_| StoreError::WriterGone)??;
        if queued && let Some(hint) = self.inner.hint.get() {
            hint.notify_one();
        }
        Ok(key)
    }

    /// Queues run creation and returns the receiver, so many submissions share a commit.
    pub fn create_run_queued(
        &self,
        run: NewRun,
    ) -> Result<oneshot::Receiver<Result<RunKey, StoreError>>, StoreError> {
        let (done, rx) = oneshot::channel();
        self.send(Write::CreateRun(run, done))?;
        Ok(rx)
    }

    pub fn set_status(
        &self,
        run: RunKey,
        status: RunStatus,
        wake_at: Option<i64>,
    ) -> Result<(), StoreError> {
        self.send(Write::Status {
            run,
            status,
            wake_at,
            done: None,
        })
    }

    /// Records a run's end; resolves once it is durable.
    pub async fn finish_run(
        &self,
        run: RunKey,
        status: RunStatus,
        output: Option<String>,
        error: Option<String>,
        at: i64,
    ) -> Result<(), StoreError> {
        let (done, rx) = oneshot::channel();
        self.send(Write::Finish {
            run,
            status,
            output,
            error,
            at,
            done: Some(done),
        })?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` on the writer thread inside its current transaction and returns its
    /// result (for the few writes that read back, such as claiming orphaned runs).
    pub async fn write_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.inner.path.clone();
        self.exec_sqlite(move |conn| f(conn).map_err(|e| classify(&path, e, Duration::ZERO)))
            .await
    }

    /// Runs `f` on the SQLite writer inside its current transaction; its result is
    /// handed back once the batch committed.
    async fn exec_sqlite<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Backend::Sqlite { tx: writer, .. } = &self.inner.backend else {
            return Err(self.not_on_postgres("this SQLite-only write"));
        };
        let (tx, rx) = oneshot::channel();
        let path = self.inner.path.clone();
        let op = Op::Exec(Box::new(move |conn: &Connection| -> AfterCommit {
            let result = f(conn);
            Box::new(move |commit_error: Option<String>| {
                let result = match commit_error {
                    None => result,
                    Some(message) => Err(StoreError::Commit { path, message }),
                };
                let _ = tx.send(result);
            })
        }));
        writer.send(op).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs a read on the read connection (blocking; call from a blocking context).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let Backend::Sqlite { read, .. } = &self.inner.backend else {
            return Err(self.not_on_postgres("this SQLite-only read"));
        };
        let conn = read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn).map_err(|e| classify(&self.inner.path, e, self.inner.options.busy_timeout))
    }

    /// Whether the store has table `name` (tables other components keep in the store,
    /// such as the server's, exist once those components first ran on it).
    pub fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.has_table(name);
        }
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            )?
            .query_row([name], |r| r.get::<_, i64>(0))
            .map(|n| n > 0)
        })
    }

    /// Saves a compiled program (its `.flowc` bytes) under its hash, once.
    pub async fn save_program(
        &self,
        hash: &str,
        artefact: Vec<u8>,
        at: i64,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.save_program(hash, artefact, at).await;
        }
        let hash = hash.to_owned();
        self.write_with(move |conn| {
            conn.prepare_cached(
                "INSERT OR IGNORE INTO programs (hash, created_at, artefact) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![hash, at, artefact])?;
            Ok(())
        })
        .await
    }

    pub fn program(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.program(hash);
        }
        self.read(|conn| {
            conn.prepare_cached("SELECT artefact FROM programs WHERE hash = ?1")?
                .query_row([hash], |r| r.get(0))
                .optional()
        })
    }

    pub fn run_by_id(&self, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.run_by_id(run_id);
        }
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1"))?
                .query_row([run_id], run_row)
                .optional()
        })
    }

    pub fn run_by_key(&self, key: RunKey) -> Result<Option<RunRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.run_by_key(key);
        }
        self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                .query_row([key], run_row)
                .optional()
        })
    }

    /// A child run by its parent and step instance.
    pub fn child_run(&self, parent: RunKey, step: &str) -> Result<Option<RunRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.child_run(parent, step);
        }
        self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE parent = ?1 AND parent_step = ?2"
            ))?
            .query_row(params![parent, step], run_row)
            .optional()
        })
    }

    /// Runs, newest first.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRow>, StoreError> {
        let (sql, args) = filter.to_sql();
        if let Some(pg) = self.pg() {
            return pg.list_runs(sql::to_postgres(&sql), args);
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(&sql)?;
            let params = sql::sqlite_params(&args);
            let rows = stmt.query_map(rusqlite::params_from_iter(params), run_row)?;
            rows.collect()
        })
    }

    pub fn events(&self, run: RunKey) -> Result<Vec<Event>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.events_from(run, 0);
        }
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT run, seq, at, kind, step, attempt, data FROM events WHERE run = ?1 ORDER BY seq")?;
            let rows = stmt.query_map([run], event_row)?;
            rows.filter_map(|r| r.transpose()).collect()
        })
    }

    /// A run's events from sequence number `from` on (a follower's next read).
    pub fn events_from(&self, run: RunKey, from: u32) -> Result<Vec<Event>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.events_from(run, from);
        }
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT run, seq, at, kind, step, attempt, data FROM events WHERE run = ?1 AND seq >= ?2 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![run, from], event_row)?;
            rows.filter_map(|r| r.transpose()).collect()
        })
    }

    /// Events of many runs at once (for statistics), grouped by run in `seq` order.
    pub fn events_of_kinds(
        &self,
        runs: &[RunKey],
        kinds: &[EventKind],
    ) -> Result<Vec<Event>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.events_of_kinds(runs, kinds);
        }
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        self.read(|conn| {
            let mut out = Vec::new();
            let mut stmt = conn.prepare_cached(
                "SELECT run, seq, at, kind, step, attempt, data FROM events WHERE run = ?1 ORDER BY seq",
            )?;
            for run in runs {
                for row in stmt.query_map([run], event_row)? {
                    if let Some(e) = row?
                        && kinds.contains(&e.kind.as_str())
                    {
                        out.push(e);
                    }
                }
            }
            Ok(out)
        })
    }

    /// The executors that own unfinished runs.
    pub fn unfinished_owners(&self) -> Result<Vec<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.unfinished_owners();
        }
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT DISTINCT executor FROM runs WHERE status IN ('pending', 'running', 'waiting') AND executor IS NOT NULL",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
    }

    /// Moves the unfinished top-level runs of a dead executor to `to`; returns their keys.
    pub async fn claim_runs_of(&self, from: &str, to: &str) -> Result<Vec<RunKey>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.claim_runs_of(from, to).await;
        }
        let (from, to) = (from.to_owned(), to.to_owned());
        self.write_with(move |conn| {
            let mut stmt = conn.prepare(
                "UPDATE runs SET executor = ?2 WHERE executor = ?1 AND status IN ('pending', 'running', 'waiting') RETURNING id, parent",
            )?;
            let rows = stmt.query_map(params![from, to], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)))?;
            let mut keys = Vec::new();
            for row in rows {
                let (key, parent) = row?;
                // Child runs are driven by their parent's `run` step, not on their own.
                if parent.is_none() {
                    keys.push(key);
                }
            }
            Ok(keys)
        })
        .await
    }

    /// Moves one unfinished run (and its unfinished children) to executor `to`, when its
    /// current executor is `from` (the caller checked `from` is not alive).
    pub async fn claim_run(
        &self,
        key: RunKey,
        from: Option<String>,
        to: &str,
    ) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.claim_run(key, from, to).await;
        }
        let to = to.to_owned();
        self.write_with(move |conn| {
            let n = conn.execute(
                "UPDATE runs SET executor = ?3 WHERE (id = ?1 OR parent = ?1) AND executor IS ?2 AND status IN ('pending', 'running', 'waiting')",
                params![key, from, to],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// Marks a run (not yet finished) cancelled; the executor running it, if any, sees
    /// the status and stops. Returns whether it changed anything.
    pub async fn cancel_run(&self, key: RunKey, at: i64) -> Result<bool, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.cancel_run(key, at).await;
        }
        self.write_with(move |conn| {
            let n = conn.execute(
                "UPDATE runs SET status = 'cancelled', finished_at = ?2, error = '{\"kind\":\"runtime\",\"message\":\"cancelled\"}' WHERE (id = ?1 OR parent = ?1) AND status IN ('pending', 'running', 'waiting')",
                params![key, at],
            )?;
            Ok(n > 0)
        })
        .await
    }

    /// The status as stored now (to notice a `flow runs cancel` from another process).
    pub fn status_of(&self, key: RunKey) -> Result<Option<RunStatus>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.status_of(key);
        }
        self.read(|conn| {
            conn.prepare_cached("SELECT status FROM runs WHERE id = ?1")?
                .query_row([key], |r| r.get::<_, String>(0))
                .optional()
                .map(|s| s.and_then(|s| RunStatus::parse(&s)))
        })
    }

    /// Runs of executor `executor` marked cancelled (by `flow runs cancel`). Executor
    /// tokens are new in every process, so this never drags old runs along.
    pub fn cancelled_of(&self, executor: &str) -> Result<Vec<RunKey>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.cancelled_of(executor);
        }
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM runs WHERE executor = ?1 AND status = 'cancelled'",
            )?;
            let rows = stmt.query_map([executor], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Deletes finished runs created before `before` (Unix ms), with their events and
    /// children; returns how many top-level runs went.
    pub async fn prune(&self, before: i64) -> Result<usize, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.prune(before).await;
        }
        self.write_with(move |conn| {
            conn.execute_batch("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY); DELETE FROM temp.doomed;")?;
            let n = conn.execute(
                "INSERT INTO temp.doomed SELECT id FROM runs WHERE parent IS NULL AND created_at < ?1 AND status IN ('completed', 'failed', 'cancelled')",
                [before],
            )?;
            // Children of doomed runs, to any depth.
            loop {
                let added = conn.execute(
                    "INSERT OR IGNORE INTO temp.doomed SELECT id FROM runs WHERE parent IN (SELECT id FROM temp.doomed)",
                    [],
                )?;
                if added == 0 {
                    break;
                }
            }
            conn.execute("DELETE FROM events WHERE run IN (SELECT id FROM temp.doomed)", [])?;
            conn.execute("DELETE FROM signals WHERE run IN (SELECT id FROM temp.doomed)", [])?;
            conn.execute("DELETE FROM event_waits WHERE run IN (SELECT id FROM temp.doomed)", [])?;
            conn.execute("DELETE FROM runs WHERE id IN (SELECT id FROM temp.doomed)", [])?;
            conn.execute(
                "DELETE FROM programs WHERE hash NOT IN (SELECT DISTINCT program FROM runs)",
                [],
            )?;
            Ok(n)
        })
        .await
    }

    /// Claims up to `limit` top-level runs for executor `to`, highest priority and oldest
    /// first: queued runs nobody claimed, and (on PostgreSQL) unfinished runs whose
    /// executor's heartbeat went stale. Each run is claimed by one executor only, however
    /// many claim at once (`FOR UPDATE SKIP LOCKED` on PostgreSQL; the single writer on
    /// SQLite, whose dead executors' runs `Engine::recover` takes by their lock files).
    pub async fn claim_runnable(&self, to: &str, limit: usize) -> Result<Vec<RunRow>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.claim_runnable(to, limit).await;
        }
        let to = to.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write_with(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "UPDATE runs SET executor = ?1 WHERE id IN (SELECT id FROM runs WHERE status IN ('pending', 'running', 'waiting') AND parent IS NULL AND executor IS NULL ORDER BY priority DESC, created_at, id LIMIT ?2) RETURNING {RUN_COLUMNS}"
            ))?;
            let rows = stmt.query_map(params![to, limit], run_row)?;
            let mut rows = rows.collect::<Result<Vec<_>, _>>()?;
            rows.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.created_at, r.key));
            Ok(rows)
        })
        .await
    }

    /// Notified when runs may have been queued for workers: on PostgreSQL by any process
    /// (`LISTEN flow_runnable`, a hint only: a worker also polls, since notifications do
    /// not pass a transaction-mode pooler); on SQLite by this process's own queueing.
    pub fn work_hint(&self) -> Arc<tokio::sync::Notify> {
        let hint = self
            .inner
            .hint
            .get_or_init(|| Arc::new(tokio::sync::Notify::new()))
            .clone();
        if let Some(pg) = self.pg() {
            pg.listen_for_work(&hint);
        }
        hint
    }

    /// Waits for everything queued so far to be committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.append_durable(Vec::new()).await
    }

    /// Folds the write-ahead log back into the database file and starts it again from
    /// its beginning, when this process made it grow past [`WAL_FOLD_BYTES`] (or found
    /// it over twice that) and no other process is using the store (it does not wait: a
    /// busy store is left to whoever closes it last). For a process about to exit: the
    /// periodic checkpoint never runs in a process that lives a few milliseconds, and the
    /// next process to open the store reads the log's valid frames first.
    ///
    /// The log's file keeps its size (at most [`WAL_KEPT_BYTES`]): the next processes'
    /// commits overwrite it in place, and on this kind of disk an `fsync` of a file that
    /// does not grow costs about half as much as one of a file that does (which must also
    /// commit the file system's journal). Only a process whose writes outgrow the kept
    /// file folds again.
    pub fn fold_wal(&self) {
        let Backend::Sqlite {
            read, wal_at_open, ..
        } = &self.inner.backend
        else {
            return;
        };
        let wal = group_commit::wal_path(&self.inner.path);
        let size = std::fs::metadata(&wal).map_or(0, |m| m.len());
        let grown = size > WAL_FOLD_BYTES && size > *wal_at_open;
        if !grown && size <= WAL_KEPT_BYTES {
            return;
        }
        let conn = read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = conn.busy_timeout(Duration::ZERO);
        // RESTART copies the log into the database and lets the next write start it from
        // the beginning; that write is made here (the schema version, written again), so
        // the next process does not read the copied frames back as its log. It also
        // trims a longer file to `WAL_KEPT_BYTES`.
        let copied = conn
            .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0))
            .is_ok_and(|busy| busy == 0);
        if copied {
            let _ = conn.execute_batch(&format!(
                "PRAGMA journal_size_limit = {WAL_KEPT_BYTES}; PRAGMA user_version = {SCHEMA_VERSION};"
            ));
        }
        let _ = conn.busy_timeout(self.inner.options.busy_timeout);
    }
}

/// The write-ahead log's size past which [`Store::fold_wal`] folds it: opening a store
/// reads the log's valid frames (about 0.25 ms per MiB on this machine), while folding
/// costs a copy and two `fsync`s.
const WAL_FOLD_BYTES: u64 = 1 << 20;

/// The most of the log's file [`Store::fold_wal`] keeps for later commits to overwrite.
const WAL_KEPT_BYTES: u64 = 2 * WAL_FOLD_BYTES;

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    /// Any of these statuses (besides `status`, when both are given).
    pub statuses: Vec<RunStatus>,
    /// How the run started (`api`, `schedule`, `webhook`, `event`, `cli`).
    pub trigger: Option<String>,
    /// Created at or after, Unix ms.
    pub since: Option<i64>,
    /// Created before, Unix ms.
    pub until: Option<i64>,
    /// Continue after this run (its `created_at` and store key): a page's cursor.
    pub after: Option<(i64, RunKey)>,
    pub limit: Option<u64>,
    pub include_children: bool,
}

impl RunFilter {
    /// The query this filter asks for, in the SQL both backends accept (`?N`
    /// parameters, turned into `$N` for PostgreSQL), with its arguments.
    fn to_sql(&self) -> (String, Vec<SqlValue>) {
        let mut sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE created_at >= ?1");
        let mut args = vec![SqlValue::Int(self.since.unwrap_or(i64::MIN))];
        let arg = |args: &mut Vec<SqlValue>, v: SqlValue| {
            args.push(v);
            format!("?{}", args.len())
        };
        if let Some(w) = &self.workflow {
            let p = arg(&mut args, SqlValue::Text(w.clone()));
            sql.push_str(&format!(" AND workflow = {p}"));
        }
        let statuses: Vec<RunStatus> = self
            .status
            .into_iter()
            .chain(self.statuses.iter().copied())
            .collect();
        if !statuses.is_empty() {
            let marks: Vec<String> = statuses
                .iter()
                .map(|s| arg(&mut args, SqlValue::Text(s.as_str().to_owned())))
                .collect();
            sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
        }
        match self.trigger.as_deref() {
            // `flow run` records no trigger: the CLI is what started a run without one.
            Some("cli") => sql.push_str(" AND trigger IS NULL"),
            Some(t) => {
                let p = arg(&mut args, SqlValue::Text(t.to_owned()));
                sql.push_str(&format!(" AND trigger = {p}"));
            }
            None => {}
        }
        if let Some(u) = self.until {
            let p = arg(&mut args, SqlValue::Int(u));
            sql.push_str(&format!(" AND created_at < {p}"));
        }
        if let Some((at, key)) = self.after {
            let a = arg(&mut args, SqlValue::Int(at));
            let k = arg(&mut args, SqlValue::Int(key));
            sql.push_str(&format!(
                " AND (created_at < {a} OR (created_at = {a} AND id < {k}))"
            ));
        }
        if !self.include_children {
            sql.push_str(" AND parent IS NULL");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC");
        if let Some(limit) = self.limit {
            sql.push_str(&format!(" LIMIT {}", limit.min(i64::MAX as u64)));
        }
        (sql, args)
    }
}

const RUN_COLUMNS: &str = "id, run_id, workflow, program, parent, parent_step, owner_as, priority, status, input, output, error, created_at, finished_at, executor, wake_at, trigger, event, actor, dedupe";

/// A row of [`RUN_COLUMNS`] as either backend's driver reads it: `int(i)` and `text(i)`
/// give column `i`, `None` for NULL (which the NOT NULL columns never hold).
fn run_from_columns<E>(
    int: impl Fn(usize) -> Result<Option<i64>, E>,
    text: impl Fn(usize) -> Result<Option<String>, E>,
) -> Result<RunRow, E> {
    let status = text(8)?.unwrap_or_default();
    Ok(RunRow {
        key: int(0)?.unwrap_or_default(),
        run_id: text(1)?.unwrap_or_default(),
        workflow: text(2)?.unwrap_or_default(),
        program: text(3)?.unwrap_or_default(),
        parent: int(4)?,
        parent_step: text(5)?,
        owner_as: text(6)?,
        priority: int(7)?.unwrap_or_default(),
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        input: json_column(text(9)?).unwrap_or(serde_json::Value::Null),
        output: json_column(text(10)?),
        error: json_column(text(11)?),
        created_at: int(12)?.unwrap_or_default(),
        finished_at: int(13)?,
        executor: text(14)?,
        wake_at: int(15)?,
        origin: RunOrigin {
            trigger: text(16)?,
            event: json_column(text(17)?),
            actor: text(18)?,
            dedupe: text(19)?,
        },
    })
}

fn json_column(text: Option<String>) -> Option<serde_json::Value> {
    text.map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
}
