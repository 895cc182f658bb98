//! The SQL both backends accept, for components that keep tables of their own in the
//! store (the server's keys, schedules, deployments, deliveries, sessions): statements
//! written once with SQLite's `?1`-numbered parameters (turned into PostgreSQL's `$1`),
//! values as [`SqlValue`], rows as [`SqlRow`], and table definitions whose
//! backend-specific column types are written `{serial}` (an auto-numbered key) and
//! `{blob}` (bytes).
//!
//! What the two dialects share is enough for these tables: `INSERT … ON CONFLICT`,
//! `RETURNING`, `coalesce`, `CASE`; not SQLite's two-argument `max` nor PostgreSQL's
//! `GREATEST`. Integers are 64-bit on both sides (`BIGINT` on PostgreSQL).

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;

use super::{Backend, Store, StoreError, classify, postgres as pg};

/// A value passed to a statement or read from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlValue {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

impl From<i64> for SqlValue {
    fn from(v: i64) -> SqlValue {
        SqlValue::Int(v)
    }
}

impl From<u32> for SqlValue {
    fn from(v: u32) -> SqlValue {
        SqlValue::Int(i64::from(v))
    }
}

impl From<u16> for SqlValue {
    fn from(v: u16) -> SqlValue {
        SqlValue::Int(i64::from(v))
    }
}

impl From<bool> for SqlValue {
    fn from(v: bool) -> SqlValue {
        SqlValue::Int(i64::from(v))
    }
}

impl From<String> for SqlValue {
    fn from(v: String) -> SqlValue {
        SqlValue::Text(v)
    }
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> SqlValue {
        SqlValue::Text(v.to_owned())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(v: Vec<u8>) -> SqlValue {
        SqlValue::Bytes(v)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> SqlValue {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// Converts a column's value to a Rust type.
pub trait FromSqlValue: Sized {
    fn from_sql_value(value: &SqlValue) -> Option<Self>;
}

impl FromSqlValue for i64 {
    fn from_sql_value(value: &SqlValue) -> Option<i64> {
        match value {
            SqlValue::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromSqlValue for String {
    fn from_sql_value(value: &SqlValue) -> Option<String> {
        match value {
            SqlValue::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromSqlValue for Vec<u8> {
    fn from_sql_value(value: &SqlValue) -> Option<Vec<u8>> {
        match value {
            SqlValue::Bytes(b) => Some(b.clone()),
            _ => None,
        }
    }
}

impl FromSqlValue for bool {
    fn from_sql_value(value: &SqlValue) -> Option<bool> {
        match value {
            SqlValue::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}

impl<T: FromSqlValue> FromSqlValue for Option<T> {
    fn from_sql_value(value: &SqlValue) -> Option<Option<T>> {
        match value {
            SqlValue::Null => Some(None),
            other => T::from_sql_value(other).map(Some),
        }
    }
}

/// A row read with [`Store::query`].
#[derive(Clone, Debug, PartialEq)]
pub struct SqlRow(pub Vec<SqlValue>);

impl SqlRow {
    /// Column `index` as `T`; a missing column or another type is an error that names
    /// both (a statement and its reader disagree).
    pub fn get<T: FromSqlValue>(&self, index: usize) -> Result<T, StoreError> {
        let value = self.0.get(index).unwrap_or(&SqlValue::Null);
        T::from_sql_value(value).ok_or_else(|| StoreError::Column {
            index,
            found: format!("{value:?}"),
            wanted: std::any::type_name::<T>(),
        })
    }
}

/// A transaction of the store's writer, as [`Store::transact`] hands it out.
pub trait SqlTx {
    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError>;
    /// Runs a query; returns its rows.
    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, StoreError>;
    /// Runs a query that returns at most one row.
    fn query_opt(&mut self, sql: &str, params: &[SqlValue]) -> Result<Option<SqlRow>, StoreError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// `?1` → `$1`, outside quoted text.
pub(super) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '?' => {
                out.push('$');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// A table definition for this backend: `{serial}` and `{blob}` filled in (for tables
/// kept outside a store, such as the vault's own file).
pub fn table_definition(text: &str, postgres: bool) -> String {
    if postgres {
        text.replace("{serial}", "BIGSERIAL PRIMARY KEY")
            .replace("{blob}", "BYTEA")
            .replace("INTEGER", "BIGINT")
    } else {
        text.replace("{serial}", "INTEGER PRIMARY KEY")
            .replace("{blob}", "BLOB")
    }
}

/// The SQLite side: a connection of the store (the writer's, inside its transaction, or
/// the reader), whose errors are told as the store's (corrupt, locked); or, made with
/// [`SqliteTx::plain`], a connection to another SQLite file that keeps tables in the
/// shared SQL (the vault's), whose errors stay rusqlite's ([`StoreError::Sqlite`]).
pub struct SqliteTx<'a> {
    conn: &'a rusqlite::Connection,
    path: &'a Path,
    store: bool,
}

impl<'a> SqliteTx<'a> {
    pub(super) fn store(conn: &'a rusqlite::Connection, path: &'a Path) -> SqliteTx<'a> {
        SqliteTx {
            conn,
            path,
            store: true,
        }
    }

    /// A connection to the SQLite file at `path` that is not a store.
    pub fn plain(conn: &'a rusqlite::Connection, path: &'a Path) -> SqliteTx<'a> {
        SqliteTx {
            conn,
            path,
            store: false,
        }
    }

    fn fail(&self, e: rusqlite::Error) -> StoreError {
        if self.store {
            classify(self.path, e, Duration::ZERO)
        } else {
            StoreError::Sqlite {
                path: self.path.to_owned(),
                source: e,
            }
        }
    }
}

pub(super) fn sqlite_params(params: &[SqlValue]) -> Vec<rusqlite::types::Value> {
    params
        .iter()
        .map(|p| match p {
            SqlValue::Null => rusqlite::types::Value::Null,
            SqlValue::Int(i) => rusqlite::types::Value::Integer(*i),
            SqlValue::Float(f) => rusqlite::types::Value::Real(*f),
            SqlValue::Text(s) => rusqlite::types::Value::Text(s.clone()),
            SqlValue::Bytes(b) => rusqlite::types::Value::Blob(b.clone()),
        })
        .collect()
}

pub(super) fn sqlite_row(
    row: &rusqlite::Row<'_>,
    columns: usize,
) -> Result<SqlRow, rusqlite::Error> {
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => SqlValue::Null,
            ValueRef::Integer(n) => SqlValue::Int(n),
            ValueRef::Real(f) => SqlValue::Float(f),
            ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => SqlValue::Bytes(b.to_vec()),
        });
    }
    Ok(SqlRow(values))
}

impl SqliteTx<'_> {
    /// Streams the rows of a query to `each`.
    pub(super) fn each(
        &self,
        sql: &str,
        params: &[SqlValue],
        each: &mut dyn FnMut(SqlRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.fail(e))?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(sqlite_params(params)))
            .map_err(|e| self.fail(e))?;
        while let Some(row) = rows.next().map_err(|e| self.fail(e))? {
            each(sqlite_row(row, columns).map_err(|e| self.fail(e))?)?;
        }
        Ok(())
    }
}

impl SqlTx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.fail(e))?;
        let n = stmt
            .execute(rusqlite::params_from_iter(sqlite_params(params)))
            .map_err(|e| self.fail(e))?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, StoreError> {
        let mut out = Vec::new();
        self.each(sql, params, &mut |row| {
            out.push(row);
            Ok(())
        })?;
        Ok(out)
    }
}

impl Store {
    /// Creates tables (and indexes) from a definition in the shared SQL (`{serial}`,
    /// `{blob}`), when missing.
    pub async fn create_tables(&self, definition: &'static str) -> Result<(), StoreError> {
        let postgres = self.is_postgres();
        let text = table_definition(definition, postgres);
        self.transact(move |tx| {
            for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                tx.execute(statement, &[])?;
            }
            Ok(())
        })
        .await
    }

    /// Reads with a statement in the shared SQL (blocking, as the store's reads are).
    pub fn query(&self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, StoreError> {
        let mut out = Vec::new();
        self.query_each(sql, params, |row| {
            out.push(row);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`Store::query`] a row at a time (SQLite streams them from the file).
    pub fn query_each(
        &self,
        sql: &str,
        params: &[SqlValue],
        mut each: impl FnMut(SqlRow) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Sqlite { read, .. } => {
                let conn = read
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                SqliteTx::store(&conn, &self.inner.path).each(sql, params, &mut each)
            }
            Backend::Postgres(p) => {
                for row in p.query(to_postgres(sql), params.to_vec())? {
                    each(row)?;
                }
                Ok(())
            }
        }
    }

    /// [`Store::transact`] for blocking code (a command, a credential lookup): waits on
    /// the calling thread. The store's futures wait only on its own threads, never on a
    /// Tokio reactor, so this works inside and outside a runtime alike (inside one, it
    /// holds its worker thread as the store's reads do).
    pub fn transact_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn SqlTx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        wait_here(self.transact(f))
    }

    /// Runs `f` inside the writer's transaction, all or nothing (a savepoint of its
    /// own), and returns its result once the transaction committed.
    pub async fn transact<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn SqlTx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match &self.inner.backend {
            Backend::Sqlite { .. } => {
                let path = self.inner.path.clone();
                self.exec_sqlite(move |conn| {
                    let mut tx = SqliteTx::store(conn, &path);
                    tx.execute("SAVEPOINT flow_transact", &[])?;
                    match f(&mut tx) {
                        Ok(value) => {
                            tx.execute("RELEASE flow_transact", &[])?;
                            Ok(value)
                        }
                        Err(e) => {
                            let _ = tx.execute("ROLLBACK TO flow_transact", &[]);
                            let _ = tx.execute("RELEASE flow_transact", &[]);
                            Err(e)
                        }
                    }
                })
                .await
            }
            Backend::Postgres(p) => p.transact(f).await,
        }
    }
}

/// Polls `future` to its end on this thread, parking between wake-ups.
fn wait_here<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(value) => return value,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// The PostgreSQL side.
pub(super) struct PostgresTx<'a, 'b> {
    pub tx: &'a mut postgres::Transaction<'b>,
    pub at: &'a str,
}

impl SqlTx for PostgresTx<'_, '_> {
    fn execute(&mut self, sql: &str, params: &[SqlValue]) -> Result<u64, StoreError> {
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        self.tx
            .execute(to_postgres(sql).as_str(), &refs)
            .map_err(|e| pg::error(self.at, e))
    }

    fn query(&mut self, sql: &str, params: &[SqlValue]) -> Result<Vec<SqlRow>, StoreError> {
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
            params.iter().map(|p| p as _).collect();
        let rows = self
            .tx
            .query(to_postgres(sql).as_str(), &refs)
            .map_err(|e| pg::error(self.at, e))?;
        rows.iter()
            .map(|r| pg::sql_row(r).map_err(|e| pg::error(self.at, e)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_outside_quotes_only() {
        assert_eq!(
            to_postgres("SELECT '?1', \"a?\" FROM t WHERE x = ?1 AND y = ?12"),
            "SELECT '?1', \"a?\" FROM t WHERE x = $1 AND y = $12"
        );
    }

    #[test]
    fn definitions_take_each_backend_s_types() {
        let text = "CREATE TABLE t (id {serial}, b {blob}, n INTEGER)";
        assert_eq!(
            table_definition(text, false),
            "CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB, n INTEGER)"
        );
        assert_eq!(
            table_definition(text, true),
            "CREATE TABLE t (id BIGSERIAL PRIMARY KEY, b BYTEA, n BIGINT)"
        );
    }
}
