//! API keys: `flow_sk_` followed by 32 random bytes in hex, shown once at creation. The
//! store keeps the key's SHA-256 only (a key is 256 random bits, so a fast hash is as
//! safe as a slow one and costs nothing per request), its scopes, the workflows it may
//! touch (a glob), the owner whose connections its runs use, and its expiry and
//! revocation. Keys are looked up by hash and compared in constant time; a key is never
//! logged.

use std::time::{SystemTime, UNIX_EPOCH};

use flow_runtime::store::{SqlRow, SqlValue};
use flow_runtime::{Store, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The prefix every key starts with, so a leaked key is recognisable (secret scanners).
pub const PREFIX: &str = "flow_sk_";

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Scope {
    /// Read runs, their journals and the server's state.
    #[serde(rename = "runs:read")]
    RunsRead,
    /// Start and cancel runs.
    #[serde(rename = "runs:write")]
    RunsWrite,
    /// Deploy, roll back, manage schedules.
    #[serde(rename = "admin")]
    Admin,
    /// Read `/metrics`.
    #[serde(rename = "metrics:read")]
    MetricsRead,
}

impl Scope {
    pub const ALL: [Scope; 4] = [
        Scope::RunsRead,
        Scope::RunsWrite,
        Scope::Admin,
        Scope::MetricsRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::RunsRead => "runs:read",
            Scope::RunsWrite => "runs:write",
            Scope::Admin => "admin",
            Scope::MetricsRead => "metrics:read",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether holding `self` grants `wanted`: `admin` grants every scope, `runs:write`
    /// grants `runs:read`.
    pub fn grants(self, wanted: Scope) -> bool {
        self == wanted
            || self == Scope::Admin
            || (self == Scope::RunsWrite && wanted == Scope::RunsRead)
    }
}

/// A key as stored (without its secret).
#[derive(Clone, Debug, Serialize)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// A glob over workflow names (`*` matches any run of characters); `None`: all.
    pub workflows: Option<String>,
    /// Whose connections the runs it starts use.
    pub owner: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Key {
    pub fn allows(&self, wanted: Scope) -> bool {
        self.scopes.iter().any(|s| s.grants(wanted))
    }

    /// Whether the key may touch runs of `workflow`.
    pub fn covers(&self, workflow: &str) -> bool {
        self.workflows
            .as_deref()
            .is_none_or(|glob| glob_matches(glob, workflow))
    }
}

/// What a new key is allowed.
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub workflows: Option<String>,
    pub owner: Option<String>,
    /// Lifetime in milliseconds.
    pub expires_in: Option<i64>,
}

/// Why a key could not be created, listed or revoked.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a key named `{0}` exists; revoke it first or choose another name")]
    NameTaken(String),
    #[error("no key named `{0}`")]
    NoSuchKey(String),
    #[error("a key needs at least one scope: runs:read, runs:write, admin, metrics:read")]
    NoScope,
    #[error("cannot draw random bytes for a key: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a presented key is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    Revoked,
}

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    hash       {blob} NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    workflows  TEXT,
    owner_as   TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
";

/// Creates the keys table when missing.
pub async fn prepare(store: &Store) -> Result<(), StoreError> {
    store.create_tables(TABLE).await
}

/// Creates a key; returns it with its secret, the only time the secret exists.
pub async fn create(store: &Store, new: NewKey) -> Result<(Key, String), KeyError> {
    if new.scopes.is_empty() {
        return Err(KeyError::NoScope);
    }
    prepare(store).await?;
    let random = |n| random_hex(n).map_err(|e| KeyError::Random(e.to_string()));
    let text = format!("{PREFIX}{}", random(32)?);
    let id = format!("k{}", random(6)?);
    let now = now_ms();
    let key = Key {
        id,
        name: new.name,
        scopes: new.scopes,
        workflows: new.workflows,
        owner: new.owner,
        created_at: now,
        expires_at: new.expires_in.map(|d| now.saturating_add(d)),
        revoked_at: None,
    };
    let row = key.clone();
    let hash = digest(&text);
    let inserted = store
        .transact(move |tx| {
            tx.execute(
                "INSERT INTO api_keys (id, name, hash, scopes, workflows, owner_as, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (name) DO NOTHING",
                &[
                    row.id.into(),
                    row.name.into(),
                    hash.to_vec().into(),
                    scopes_text(&row.scopes).into(),
                    row.workflows.into(),
                    row.owner.into(),
                    row.created_at.into(),
                    row.expires_at.into(),
                ],
            )
        })
        .await?;
    if inserted == 0 {
        return Err(KeyError::NameTaken(key.name));
    }
    Ok((key, text))
}

/// Every key, newest first.
pub fn list(store: &Store) -> Result<Vec<Key>, StoreError> {
    if !store.has_table("api_keys")? {
        return Ok(Vec::new());
    }
    store
        .query(
            "SELECT id, name, scopes, workflows, owner_as, created_at, expires_at, revoked_at FROM api_keys ORDER BY created_at DESC, name",
            &[],
        )?
        .iter()
        .map(key_row)
        .collect()
}

/// Revokes the key named `name`; it is refused from then on.
pub async fn revoke(store: &Store, name: &str) -> Result<(), KeyError> {
    prepare(store).await?;
    let owned = name.to_owned();
    let n = store
        .transact(move |tx| {
            tx.execute(
                "UPDATE api_keys SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                &[owned.into(), now_ms().into()],
            )
        })
        .await?;
    if n == 0 {
        return Err(KeyError::NoSuchKey(name.to_owned()));
    }
    Ok(())
}

/// The key a request presents, or why it is refused.
pub fn authenticate(store: &Store, presented: &str) -> Result<Result<Key, Refusal>, StoreError> {
    if !presented.starts_with(PREFIX) {
        return Ok(Err(Refusal::Unknown));
    }
    let hash = digest(presented);
    let found = store
        .query(
            "SELECT id, name, scopes, workflows, owner_as, created_at, expires_at, revoked_at, hash FROM api_keys WHERE hash = ?1",
            &[SqlValue::Bytes(hash.to_vec())],
        )?
        .first()
        .map(|r| Ok::<_, StoreError>((key_row(r)?, r.get::<Vec<u8>>(8)?)))
        .transpose()?;
    let Some((key, stored)) = found else {
        return Ok(Err(Refusal::Unknown));
    };
    // The lookup was by hash; comparing again in constant time keeps the decision
    // independent of how the index compares.
    if !constant_time_eq(&stored, &hash) {
        return Ok(Err(Refusal::Unknown));
    }
    Ok(live(key))
}

/// The key with id `id` (a signed-in dashboard session names its key by id), or why it
/// is refused now.
pub fn by_id(store: &Store, id: &str) -> Result<Result<Key, Refusal>, StoreError> {
    let found = store
        .query(
            "SELECT id, name, scopes, workflows, owner_as, created_at, expires_at, revoked_at FROM api_keys WHERE id = ?1",
            &[id.into()],
        )?
        .first()
        .map(key_row)
        .transpose()?;
    Ok(found.map_or(Err(Refusal::Unknown), live))
}

/// The key, unless it was revoked or has expired.
fn live(key: Key) -> Result<Key, Refusal> {
    if key.revoked_at.is_some() {
        return Err(Refusal::Revoked);
    }
    if key.expires_at.is_some_and(|at| at <= now_ms()) {
        return Err(Refusal::Expired);
    }
    Ok(key)
}

fn key_row(r: &SqlRow) -> Result<Key, StoreError> {
    let scopes: String = r.get(2)?;
    Ok(Key {
        id: r.get(0)?,
        name: r.get(1)?,
        scopes: scopes.split(',').filter_map(Scope::parse).collect(),
        workflows: r.get(3)?,
        owner: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

fn scopes_text(scopes: &[Scope]) -> String {
    let mut names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

pub(crate) fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// `n` random bytes from the operating system, as hex.
pub(crate) fn random_hex(n: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes)?;
    Ok(hex(&bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `*` matches any run of characters (dots included); everything else matches itself.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("*", "anything.at.all"));
        assert!(glob_matches("billing.*", "billing.refund"));
        assert!(!glob_matches("billing.*", "ops.refund"));
        assert!(glob_matches("*_sync", "crm_sync"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("a*b*c", "axxcyyb"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
        assert!(!glob_matches("ab*ba", "aba"));
    }

    #[test]
    fn scopes_grant() {
        assert!(Scope::Admin.grants(Scope::MetricsRead));
        assert!(Scope::RunsWrite.grants(Scope::RunsRead));
        assert!(!Scope::RunsRead.grants(Scope::RunsWrite));
        assert!(!Scope::MetricsRead.grants(Scope::RunsRead));
    }
}
