//! The SQLite backend's own parts: its schema, opening the file (WAL, durability,
//! busy timeout), reading its rows, the errors a user can act on, and the checkpoints
//! that keep its write-ahead log short.

use super::*;

/// Programs are `.flowc` files (`flow_ir::artefact`) under the hex SHA-256 of their
/// payload, the hash the file carries; `runs.program` names one.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS programs (
    hash       TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    artefact   BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL UNIQUE,
    workflow    TEXT NOT NULL,
    program     TEXT NOT NULL,
    parent      INTEGER,
    parent_step TEXT,
    owner_as    TEXT,
    priority    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    input       TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER,
    executor    TEXT,
    wake_at     INTEGER,
    dedupe      TEXT,
    trigger     TEXT,
    event       TEXT,
    actor       TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, executor);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs(workflow, created_at);
CREATE TABLE IF NOT EXISTS events (
    run     INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    step    TEXT,
    attempt INTEGER,
    data    TEXT,
    PRIMARY KEY (run, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signals (
    id        INTEGER PRIMARY KEY,
    run       INTEGER NOT NULL,
    name      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    signal_id TEXT,
    at        INTEGER NOT NULL,
    taken_by  TEXT
);
CREATE INDEX IF NOT EXISTS signals_untaken ON signals(run, name, id) WHERE taken_by IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS signals_by_sender_id ON signals(run, signal_id) WHERE signal_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS signals_taken ON signals(run, taken_by) WHERE taken_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_waits (
    id          INTEGER PRIMARY KEY,
    run         INTEGER NOT NULL,
    step        TEXT NOT NULL,
    program     TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    integration TEXT NOT NULL,
    event       TEXT NOT NULL,
    args        TEXT NOT NULL,
    locals      TEXT NOT NULL,
    at          INTEGER NOT NULL,
    UNIQUE (run, step)
);
CREATE INDEX IF NOT EXISTS event_waits_by_event ON event_waits(integration, event, id);
";

pub(super) fn run_row(r: &rusqlite::Row<'_>) -> Result<RunRow, rusqlite::Error> {
    run_from_columns(|i| r.get(i), |i| r.get(i))
}

/// Reads an event row; rows of kinds this build does not know are skipped.
pub(super) fn event_row(r: &rusqlite::Row<'_>) -> Result<Option<Event>, rusqlite::Error> {
    let kind: String = r.get(3)?;
    let Some(kind) = EventKind::parse(&kind) else {
        return Ok(None);
    };
    Ok(Some(Event {
        run: r.get(0)?,
        seq: r.get(1)?,
        at: r.get(2)?,
        kind,
        step: r.get(4)?,
        attempt: r.get(5)?,
        data: r.get(6)?,
    }))
}

/// Puts `conn`'s database in WAL mode; `false` when it stays in another mode. SQLite
/// answers "busy" at once, without its busy handler, while other connections open the
/// same new file, so this asks again for up to `wait`.
pub fn use_write_ahead_log(conn: &Connection, wait: Duration) -> Result<bool, rusqlite::Error> {
    let until = std::time::Instant::now() + wait;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) => return Ok(mode.eq_ignore_ascii_case("wal")),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && std::time::Instant::now() < until =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn open_connection(
    path: &Path,
    options: &StoreOptions,
) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| classify(path, e, options.busy_timeout))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| classify(path, e, options.busy_timeout))?;
    let sync = match options.durability {
        Durability::Full => "FULL",
        Durability::Process => "NORMAL",
    };
    // Setting the journal mode is also the first access to the file, which is where a
    // file that is not a database is noticed.
    let wal = use_write_ahead_log(&conn, options.busy_timeout)
        .map_err(|e| classify(path, e, options.busy_timeout))?;
    if !wal {
        return Err(StoreError::Locked {
            path: path.to_path_buf(),
            waited: options.busy_timeout,
        });
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous={sync}; PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
    ))
    .map_err(|e| classify(path, e, options.busy_timeout))?;
    Ok(conn)
}

pub(super) fn init_schema(
    conn: &Connection,
    path: &Path,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    let err = |e| classify(path, e, options.busy_timeout);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if version < SCHEMA_VERSION {
        crate::migrate::upgrade(conn, SCHEMA, SCHEMA_VERSION).map_err(err)?;
    }
    crate::migrate::ensure_indexes(conn).map_err(err)?;
    // Reading the schema shows a damaged first page or schema here. A full
    // `quick_check` would read the whole file at every start (about 1 ms per MiB); a page
    // damaged further in is reported as the same `Corrupt` error when it is first read.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(err)?;
    Ok(())
}

/// Turns an SQLite error into the store error a user can act on.
pub(super) fn classify(path: &Path, e: rusqlite::Error, waited: Duration) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, ref msg) = e {
        match f.code {
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: msg.clone().unwrap_or_else(|| f.to_string()),
                };
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Locked {
                    path: path.to_path_buf(),
                    waited,
                };
            }
            _ => {}
        }
    }
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Copies the WAL back into the database every second while the store is open, without
/// blocking writers (`PASSIVE`); stops when the last handle is dropped. (A passive
/// checkpoint never empties a log that keeps growing: the writer does that past
/// [`StoreOptions::wal_limit`].)
pub(super) fn checkpoint_loop(path: &Path, options: &StoreOptions, store: std::sync::Weak<Inner>) {
    // Opened here, not by `Store::open`: a process that ends within a second (a short
    // `flow run`) never checkpoints, and its start does not wait for this connection.
    let conn = match open_connection(path, options) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "the store's checkpoints are off: cannot open a connection for them");
            return;
        }
    };
    loop {
        std::thread::sleep(Duration::from_secs(1));
        if store.upgrade().is_none() {
            return;
        }
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}
