//! Upgrades of the run store's schema, applied when a store written by an older Flow is
//! opened, inside one transaction (two processes opening the same old store upgrade it
//! once: the second finds the new version when its transaction starts).
//!
//! - 1 → 2: programs were kept as the IR in JSON under a 128-bit FNV-1a hash; they are now
//!   the `.flowc` bytes under their SHA-256 (the artefact's own hash), so a program is
//!   encoded and hashed once, whether it comes from a source or a `.flowc` file. Each old
//!   program is re-encoded and the runs that name it follow. A program this build cannot
//!   read stays as it was: its runs could not resume before either, and say so.
//! - 2 → 3: runs record how they came to be (`trigger`, `event`, `actor`) and may carry a
//!   `dedupe` key, unique among runs, which makes their creation idempotent.
//! - 3 → 4: the `signals` table (signals sent to runs, kept until a `wait signal` step
//!   takes them), created by the schema itself.

use flow_ir::artefact::Artefact;
use flow_ir::program::Program;
use rusqlite::{Connection, params};

/// Brings a store at `from` (0 for a new file) to `to`, creating what `schema` declares.
pub(crate) fn upgrade(conn: &Connection, schema: &str, to: i64) -> Result<(), rusqlite::Error> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        // Read again inside the transaction: another process may have upgraded it.
        let from: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if from >= to {
            return Ok(());
        }
        conn.execute_batch(schema)?;
        if from == 1 {
            programs_to_artefacts(conn)?;
        }
        if (1..3).contains(&from) {
            for column in ["dedupe TEXT", "trigger TEXT", "event TEXT", "actor TEXT"] {
                conn.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {column}"))?;
            }
        }
        conn.execute_batch(INDEXES)?;
        conn.execute_batch(&format!("PRAGMA user_version = {to}"))
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Indexes on columns older stores gain in an upgrade, so created after it; also made
/// when a store of the current version lacks one (an index added within a version).
/// They serve the run API's filters: each filter, and workflow with status, reads its
/// runs newest first straight from an index instead of sorting what it selected. The
/// index by creation time carries what the dashboard's overview adds up (status, end,
/// workflow, parent), so a week of runs is read from the index alone; it replaced
/// `runs_by_created(created_at)`, of which it is an extension.
pub(crate) const INDEXES: &str = "
CREATE UNIQUE INDEX IF NOT EXISTS runs_by_dedupe ON runs(dedupe) WHERE dedupe IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_by_trigger ON runs(trigger, created_at);
CREATE INDEX IF NOT EXISTS runs_by_status_created ON runs(status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_workflow_status ON runs(workflow, status, created_at);
DROP INDEX IF EXISTS runs_by_created;
CREATE INDEX IF NOT EXISTS runs_by_created_outcome ON runs(created_at, status, finished_at, workflow, parent);
";

/// Creates the indexes of [`INDEXES`] a store lacks.
pub(crate) fn ensure_indexes(conn: &Connection) -> Result<(), rusqlite::Error> {
    let present: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('runs_by_dedupe', 'runs_by_trigger', 'runs_by_status_created', 'runs_by_workflow_status', 'runs_by_created_outcome')",
        [],
        |r| r.get(0),
    )?;
    if present < 5 {
        conn.execute_batch(INDEXES)?;
    }
    Ok(())
}

/// 1 → 2: JSON programs become `.flowc` bytes under their SHA-256.
fn programs_to_artefacts(conn: &Connection) -> Result<(), rusqlite::Error> {
    let old: Vec<(String, i64, Vec<u8>)> = {
        let mut stmt = conn.prepare("SELECT hash, created_at, artefact FROM programs")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    for (hash, created_at, json) in old {
        let Ok(program) = serde_json::from_slice::<Program>(&json) else {
            continue;
        };
        let Ok(artefact) = Artefact::encode(program) else {
            continue;
        };
        let new = artefact.hash_hex();
        conn.execute(
            "INSERT OR IGNORE INTO programs (hash, created_at, artefact) VALUES (?1, ?2, ?3)",
            params![new, created_at, artefact.bytes],
        )?;
        conn.execute(
            "UPDATE runs SET program = ?2 WHERE program = ?1",
            params![hash, new],
        )?;
        conn.execute("DELETE FROM programs WHERE hash = ?1", params![hash])?;
    }
    Ok(())
}
