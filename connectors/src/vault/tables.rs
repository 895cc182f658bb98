//! Where the vault's tables live: its own SQLite file beside an SQLite run store, or the
//! database of a PostgreSQL run store (so every process on that store shares the
//! connections). Statements are written once, in the SQL both accept
//! (`flow_runtime::store::SqlTx`); only opening and the audit writer differ.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use flow_runtime::store::{
    SqlRow, SqlTx, SqlValue, SqliteTx, Store, table_definition, use_write_ahead_log,
};
use rusqlite::Connection as Db;

use super::VaultError;

/// The vault's tables, in the shared SQL (`{serial}`, `{blob}` per backend). The names
/// carry `vault_` so they sit plainly beside the journal's in a shared database.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS vault_meta (
    name  TEXT PRIMARY KEY,
    value {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS vault_connections (
    id          {serial},
    integration TEXT NOT NULL,
    owner       TEXT NOT NULL,
    settings    TEXT NOT NULL,
    base_url    TEXT,
    secret_names TEXT NOT NULL,
    sealed      {blob} NOT NULL,
    nonce       {blob} NOT NULL,
    wrapped_key {blob} NOT NULL,
    key_nonce   {blob} NOT NULL,
    active      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (integration, owner)
);
-- No index on the audit log beyond its row id: every call appends a row, and an index
-- entry would cost each one as much again. Rows are appended in time order, so a time
-- range is found by a binary search over row ids (`first_audit_row_since`).
CREATE TABLE IF NOT EXISTS vault_audit (
    id          {serial},
    at          INTEGER NOT NULL,
    integration TEXT NOT NULL,
    owner       TEXT NOT NULL,
    run_id      TEXT,
    workflow    TEXT,
    step        TEXT,
    purpose     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    actor       TEXT
);
CREATE TABLE IF NOT EXISTS vault_breakers (
    integration TEXT NOT NULL,
    owner       TEXT NOT NULL,
    state       TEXT NOT NULL,
    since       INTEGER NOT NULL,
    failures    INTEGER NOT NULL,
    PRIMARY KEY (integration, owner)
)";

/// Vault files from before the `vault_` names, renamed when opened.
const OLD_NAMES: [(&str, &str); 4] = [
    ("meta", "vault_meta"),
    ("connections", "vault_connections"),
    ("audit", "vault_audit"),
    ("breakers", "vault_breakers"),
];

/// The key of the advisory lock under which a PostgreSQL store's vault tables are made
/// (two processes starting together must not race on `CREATE TABLE`).
const POSTGRES_SCHEMA_LOCK: i64 = 0x666c_6f77_7661_756c; // "flowvaul"

/// Where a vault lives.
#[derive(Clone)]
pub enum VaultLocation {
    /// Its own SQLite file (`.flow/vault.db` beside `.flow/flow.db`).
    File(PathBuf),
    /// The tables of a PostgreSQL run store, shared by every process on it. Without
    /// `FLOW_MASTER_KEY`, the master key file is kept in `key_dir`.
    Store { store: Store, key_dir: PathBuf },
}

impl VaultLocation {
    /// The vault that goes with a run store: the file beside an SQLite store, the same
    /// database for a PostgreSQL one.
    pub fn of_store(store: &Store) -> VaultLocation {
        let beside = super::Vault::path_for_store(store.path());
        if store.is_postgres() {
            VaultLocation::Store {
                store: store.clone(),
                key_dir: beside
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from(".")),
            }
        } else {
            VaultLocation::File(beside)
        }
    }

    /// The vault as messages name it: the file, or the store's URL without its password.
    pub fn describe(&self) -> String {
        match self {
            VaultLocation::File(path) => path.display().to_string(),
            VaultLocation::Store { store, .. } => {
                format!("{} (vault_* tables)", store.location().describe())
            }
        }
    }

    /// The file holding the master key when the environment gives none.
    pub(super) fn key_file(&self) -> PathBuf {
        match self {
            VaultLocation::File(path) => {
                path.parent().unwrap_or(Path::new("")).join(super::KEY_FILE)
            }
            VaultLocation::Store { key_dir, .. } => key_dir.join(super::KEY_FILE),
        }
    }
}

/// An open vault's tables.
pub(super) enum Tables {
    File { path: PathBuf, db: Mutex<Db> },
    Store(Store),
}

impl Tables {
    /// Opens (creating when missing) the tables at `location`.
    pub(super) fn open(location: &VaultLocation) -> Result<Tables, VaultError> {
        match location {
            VaultLocation::File(path) => {
                let io = |source| VaultError::Io {
                    path: path.to_owned(),
                    source,
                };
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let sql = |source| VaultError::Sqlite {
                    path: path.to_owned(),
                    source,
                };
                let db = open_file(path)?;
                use_write_ahead_log(&db, BUSY_TIMEOUT).map_err(sql)?;
                db.execute_batch("PRAGMA synchronous=NORMAL;")
                    .map_err(sql)?;
                upgrade_file(&db).map_err(sql)?;
                db.execute_batch(&table_definition(SCHEMA, false))
                    .map_err(sql)?;
                Ok(Tables::File {
                    path: path.to_owned(),
                    db: Mutex::new(db),
                })
            }
            VaultLocation::Store { store, .. } => {
                let definition = table_definition(SCHEMA, true);
                store.transact_blocking(move |tx| {
                    tx.execute(
                        "SELECT pg_advisory_xact_lock(?1)",
                        &[SqlValue::Int(POSTGRES_SCHEMA_LOCK)],
                    )?;
                    for statement in definition
                        .split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                    {
                        tx.execute(statement, &[])?;
                    }
                    Ok(())
                })?;
                Ok(Tables::Store(store.clone()))
            }
        }
    }

    /// The file's connection (the vault's file only).
    #[cfg(test)]
    pub(super) fn file(&self) -> Option<(&Path, std::sync::MutexGuard<'_, Db>)> {
        match self {
            Tables::File { path, db } => Some((
                path,
                db.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            )),
            Tables::Store(_) => None,
        }
    }

    /// Runs a query in the shared SQL.
    pub(super) fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, VaultError> {
        match self {
            Tables::File { path, db } => {
                let db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(SqliteTx::plain(&db, path).query(sql, params)?)
            }
            Tables::Store(store) => Ok(store.query(sql, params)?),
        }
    }

    /// A query's only row, if any.
    pub(super) fn query_opt(
        &self,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<Option<SqlRow>, VaultError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs a statement in the shared SQL, committed when this returns; the rows changed.
    pub(super) fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<u64, VaultError> {
        match self {
            Tables::File { path, db } => {
                let db = db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                Ok(SqliteTx::plain(&db, path).execute(sql, params)?)
            }
            Tables::Store(store) => {
                let (sql, params) = (sql.to_owned(), params.to_vec());
                Ok(store.transact_blocking(move |tx| tx.execute(&sql, &params))?)
            }
        }
    }
}

/// How long the vault's file connections wait for another process's lock.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection to the vault's file that waits up to [`BUSY_TIMEOUT`] for a busy database.
pub(super) fn open_file(path: &Path) -> Result<Db, VaultError> {
    let sql = |source| VaultError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let db = Db::open(path).map_err(sql)?;
    db.busy_timeout(BUSY_TIMEOUT).map_err(sql)?;
    Ok(db)
}

/// Vault files from before the `vault_` names get them, lose an index the audit log no
/// longer keeps, and gain the audit log's actor column if they predate it. A file with
/// `vault_meta` is current: one query at each open.
fn upgrade_file(db: &Db) -> Result<(), rusqlite::Error> {
    let exists = |name: &str| -> Result<bool, rusqlite::Error> {
        db.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?
            .exists([name])
    };
    if exists("vault_meta")? {
        return Ok(());
    }
    for (old, new) in OLD_NAMES {
        if exists(old)? && !exists(new)? {
            db.execute_batch(&format!("ALTER TABLE {old} RENAME TO {new}"))?;
        }
    }
    db.execute_batch("DROP INDEX IF EXISTS audit_by_connection")?;
    let has_actor = db
        .prepare("SELECT 1 FROM pragma_table_info('vault_audit') WHERE name = 'actor'")?
        .exists([])?;
    if exists("vault_audit")? && !has_actor {
        db.execute_batch("ALTER TABLE vault_audit ADD COLUMN actor TEXT")?;
    }
    Ok(())
}

/// The row id from which the audit entries are recorded at or after `since_ms` (one
/// past the last row when none is). Entries are appended in time order, so this is a
/// binary search over row ids, each probe one lookup of the row at or after an id (ids
/// may have gaps). Should clocks step back (or, on a shared store, processes' clocks
/// differ a little), a few rows near the boundary may be missed; the callers filter by
/// time as well.
pub(super) fn first_audit_row_since(tables: &Tables, since_ms: i64) -> Result<i64, VaultError> {
    let Some(bounds) = tables.query_opt("SELECT MIN(id), MAX(id) FROM vault_audit", &[])? else {
        return Ok(0);
    };
    let (Some(mut lo), Some(max)) = (bounds.get::<Option<i64>>(0)?, bounds.get::<Option<i64>>(1)?)
    else {
        return Ok(0);
    };
    let mut hi = max + 1;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row = tables.query_opt(
            "SELECT id, at FROM vault_audit WHERE id >= ?1 ORDER BY id LIMIT 1",
            &[SqlValue::Int(mid)],
        )?;
        match row {
            // Every row up to `id` is older; there are none between `mid` and `id`.
            Some(row) if row.get::<i64>(1)? < since_ms => lo = row.get::<i64>(0)? + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}
