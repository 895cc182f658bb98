//! The credential vault: connections (an integration bound to an owner, with settings,
//! an optional `base_url` and encrypted credentials), the audit log of every use, and the
//! circuit-breaker states the driver records, in an SQLite file next to the run store
//! (`.flow/vault.db` beside `.flow/flow.db`).
//!
//! Credentials are encrypted at rest with envelope encryption: each connection's secrets
//! are sealed with XChaCha20-Poly1305 under a random data key of its own, and the data
//! key is sealed under the master key. The master key comes from `FLOW_MASTER_KEY` (32
//! bytes as 64 hex digits or base64, or else a passphrase stretched with Argon2id and a
//! salt kept in the vault) or from a key file (`master.key`, created with mode 0600).
//! The connection's identity (integration and owner) is bound into each seal as
//! associated data, so sealed secrets cannot be moved to another connection's row.
//! Decrypted secrets live in `secrecy` boxes, which zeroize their memory when dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rusqlite::{Connection as Db, OptionalExtension, params};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use flow_runtime::group_commit::{self, Journal, Linger, WriterOptions};

mod writer;

use writer::spawn_writer;

/// The environment variable holding the master key (or a passphrase).
pub const MASTER_KEY_ENV: &str = "FLOW_MASTER_KEY";
/// The key file created next to the vault when the environment gives no key.
pub const KEY_FILE: &str = "master.key";
/// The vault's file name, next to the run store.
pub const VAULT_FILE: &str = "vault.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS connections (
    id          INTEGER PRIMARY KEY,
    integration TEXT NOT NULL,
    owner       TEXT NOT NULL,
    settings    TEXT NOT NULL,
    base_url    TEXT,
    secret_names TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    nonce       BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    key_nonce   BLOB NOT NULL,
    active      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (integration, owner)
);
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY,
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
-- No index on audit beyond its row id: every call appends a row, and an index entry
-- would cost each one as much again. Rows are appended in time order, so a time range
-- is found by a binary search over row ids (`first_audit_row_since`).
DROP INDEX IF EXISTS audit_by_connection;
CREATE TABLE IF NOT EXISTS breakers (
    integration TEXT NOT NULL,
    owner       TEXT NOT NULL,
    state       TEXT NOT NULL,
    since       INTEGER NOT NULL,
    failures    INTEGER NOT NULL,
    PRIMARY KEY (integration, owner)
);
";

/// Errors of the vault. None carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("vault {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the master key does not open the vault {path}: set {MASTER_KEY_ENV} to the key (or passphrase) it was created with, or restore its {KEY_FILE}"
    )]
    WrongKey { path: PathBuf },
    #[error(
        "the credentials of the {integration} connection of `{owner}` are damaged and cannot be decrypted; connect again"
    )]
    Damaged { integration: String, owner: String },
    #[error("no connection for `{integration}`{}: connect one with `flow connect {integration} --owner NAME`", owner.as_ref().map(|o| format!(" owned by `{o}`")).unwrap_or_default())]
    NoConnection {
        integration: String,
        owner: Option<String>,
    },
    #[error("several connections for `{integration}` ({owners}): choose one with `--as OWNER`")]
    Ambiguous { integration: String, owners: String },
    #[error(
        "the {integration} connection of `{owner}` is deactivated: `flow connections activate {integration} --owner {owner}` turns it back on"
    )]
    Inactive { integration: String, owner: String },
    #[error("cannot derive the master key from the passphrase: {0}")]
    Kdf(String),
    #[error("cannot encrypt credentials")]
    Seal,
}

/// A connection with its decrypted credentials, as the driver uses it.
pub struct Connection {
    pub id: i64,
    pub integration: String,
    pub owner: String,
    pub settings: BTreeMap<String, String>,
    pub base_url: Option<String>,
    pub active: bool,
    secrets: BTreeMap<String, SecretString>,
    /// Credentials derived from the secrets (an `Authorization` value), by the driver's
    /// preparation that derived them; emptied when a secret changes.
    derived: Mutex<Vec<(u64, Arc<str>)>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("integration", &self.integration)
            .field("owner", &self.owner)
            .field("settings", &self.settings)
            .field("base_url", &self.base_url)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Connection {
    /// A connection held only in memory (tests, benchmarks, `flow test`).
    pub fn new(integration: &str, owner: &str) -> Connection {
        Connection {
            id: 0,
            integration: integration.to_owned(),
            owner: owner.to_owned(),
            settings: BTreeMap::new(),
            base_url: None,
            active: true,
            secrets: BTreeMap::new(),
            derived: Mutex::new(Vec::new()),
        }
    }

    pub fn with_setting(mut self, name: &str, value: &str) -> Connection {
        self.settings.insert(name.to_owned(), value.to_owned());
        self.forget_derived();
        self
    }

    pub fn with_secret(mut self, name: &str, value: &str) -> Connection {
        self.secrets
            .insert(name.to_owned(), SecretString::from(value.to_owned()));
        self.forget_derived();
        self
    }

    /// A credential derived from this connection's secrets by preparation `id`.
    pub(crate) fn derived_credential(&self, id: u64) -> Option<Arc<str>> {
        self.derived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| Arc::clone(v))
    }

    pub(crate) fn remember_derived_credential(&self, id: u64, value: Arc<str>) {
        let mut derived = self
            .derived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        derived.retain(|(i, _)| *i != id);
        derived.push((id, value));
    }

    fn forget_derived(&mut self) {
        self.derived
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    pub fn with_base_url(mut self, url: &str) -> Connection {
        self.base_url = Some(url.to_owned());
        self
    }

    /// A credential's text, for an expression that reads `secret(name)`.
    pub fn secret_text(&self, name: &str) -> Option<Arc<str>> {
        self.secrets.get(name).map(|s| Arc::from(s.expose_secret()))
    }

    pub fn has_secret(&self, name: &str) -> bool {
        self.secrets.contains_key(name)
    }

    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }

    /// Replaces every credential's text in `text` with `****`, so an API that echoes a
    /// credential back cannot put it in an error or a log.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in self.secrets.values() {
            let s = s.expose_secret();
            if s.len() >= 4 && out.contains(s) {
                out = out.replace(s, "****");
            }
        }
        out
    }

    fn set_secret(&mut self, name: &str, value: String) {
        self.secrets
            .insert(name.to_owned(), SecretString::from(value));
        self.forget_derived();
    }
}

/// What `flow connections list` shows of a connection: never a credential.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionInfo {
    pub integration: String,
    pub owner: String,
    pub settings: BTreeMap<String, String>,
    pub base_url: Option<String>,
    /// The names of the stored credentials.
    pub secrets: Vec<String>,
    pub active: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One use of a connection's credentials.
#[derive(Clone, Debug)]
/// The names are shared (`Arc<str>`): an entry is made on every call, and the driver
/// keeps the integration's name and each action's purpose ready.
pub struct AuditEntry {
    pub integration: Arc<str>,
    pub owner: String,
    pub run_id: Option<Arc<str>>,
    pub workflow: Option<Arc<str>>,
    pub step: Option<String>,
    /// `slack.post_message`, `health`, `oauth2 refresh`.
    pub purpose: Arc<str>,
    /// `ok`, or the error kind.
    pub outcome: &'static str,
}

/// A recorded audit entry, as `flow connections audit` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRecord {
    pub at: i64,
    pub integration: String,
    pub owner: String,
    pub run_id: Option<String>,
    pub workflow: Option<String>,
    pub step: Option<String>,
    pub purpose: String,
    pub outcome: String,
    /// Who ran the process that used the credentials: the operating-system user.
    pub actor: Option<String>,
}

/// A circuit breaker's recorded state.
#[derive(Clone, Debug, Serialize)]
pub struct BreakerRecord {
    pub state: String,
    pub since: i64,
    pub failures: u32,
}

enum Write {
    Audit(AuditEntry, i64),
    Breaker {
        integration: String,
        owner: String,
        record: BreakerRecord,
    },
    Flush(mpsc::Sender<()>),
}

/// The vault file.
pub struct Vault {
    path: PathBuf,
    db: Mutex<Db>,
    master: SecretBox<[u8; 32]>,
    /// To the background writer (`Sender` is `Sync`: callers send without a lock).
    writer: mpsc::Sender<Write>,
    /// Audit rows and breaker states that could not be written (see
    /// [`Vault::write_failures`]).
    write_failures: Arc<AtomicU64>,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    OsRng.fill_bytes(&mut out);
    out
}

fn aad(integration: &str, owner: &str) -> Vec<u8> {
    format!("flow-vault:v1:{integration}\u{0}{owner}").into_bytes()
}

impl Vault {
    /// The vault next to a run store (`.flow/flow.db` → `.flow/vault.db`).
    pub fn path_for_store(store: &Path) -> PathBuf {
        store
            .parent()
            .map(|p| p.join(VAULT_FILE))
            .unwrap_or_else(|| PathBuf::from(VAULT_FILE))
    }

    /// Opens (creating when missing) the vault at `path`, with the master key from the
    /// environment or the key file next to it.
    pub fn open(path: &Path) -> Result<Vault, VaultError> {
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
        let db = open_db(path)?;
        db.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
            .map_err(sql)?;
        db.execute_batch(SCHEMA).map_err(sql)?;
        add_actor_column(&db).map_err(sql)?;
        let master = master_key(path, &db)?;
        check_key(path, &db, &master)?;
        let write_failures = Arc::new(AtomicU64::new(0));
        let writer = spawn_writer(path, Arc::clone(&write_failures))?;
        restrict_mode(path);
        Ok(Vault {
            path: path.to_owned(),
            db: Mutex::new(db),
            master,
            writer,
            write_failures,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sql(&self, source: rusqlite::Error) -> VaultError {
        VaultError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Creates or replaces the connection of `owner` to `integration`. Credentials not
    /// given are kept from the previous connection when `keep_secrets` is set.
    pub fn connect(
        &self,
        integration: &str,
        owner: &str,
        settings: &BTreeMap<String, String>,
        base_url: Option<&str>,
        secrets: BTreeMap<String, SecretString>,
    ) -> Result<ConnectionInfo, VaultError> {
        let mut all: BTreeMap<String, SecretString> = BTreeMap::new();
        if let Ok(old) = self.load_exact(integration, owner) {
            all.extend(old.secrets);
        }
        all.extend(secrets);
        let names: Vec<String> = all.keys().cloned().collect();
        let sealed = self.seal(integration, owner, &all)?;
        let now = now_ms();
        let settings_json = serde_json::to_string(settings).unwrap_or_else(|_| "{}".into());
        let names_json = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
        self.db()
            .execute(
                "INSERT INTO connections (integration, owner, settings, base_url, secret_names, sealed, nonce, wrapped_key, key_nonce, active, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?10)
                 ON CONFLICT (integration, owner) DO UPDATE SET settings = ?3, base_url = ?4, secret_names = ?5,
                   sealed = ?6, nonce = ?7, wrapped_key = ?8, key_nonce = ?9, active = 1, updated_at = ?10",
                params![integration, owner, settings_json, base_url, names_json, sealed.data, sealed.nonce, sealed.key, sealed.key_nonce, now],
            )
            .map_err(|e| self.sql(e))?;
        self.info(integration, owner)?
            .ok_or_else(|| VaultError::NoConnection {
                integration: integration.to_owned(),
                owner: Some(owner.to_owned()),
            })
    }

    /// Stores new values of some credentials of a connection (a rotated OAuth refresh
    /// token, a fresh access token), keeping the others.
    pub fn update_secrets(
        &self,
        integration: &str,
        owner: &str,
        changes: Vec<(String, String)>,
    ) -> Result<(), VaultError> {
        let mut current = self.load_exact(integration, owner)?;
        for (name, value) in changes {
            current.set_secret(&name, value);
        }
        let names: Vec<String> = current.secrets.keys().cloned().collect();
        let sealed = self.seal(integration, owner, &current.secrets)?;
        let names_json = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
        self.db()
            .execute(
                "UPDATE connections SET secret_names = ?3, sealed = ?4, nonce = ?5, wrapped_key = ?6, key_nonce = ?7, updated_at = ?8
                 WHERE integration = ?1 AND owner = ?2",
                params![integration, owner, names_json, sealed.data, sealed.nonce, sealed.key, sealed.key_nonce, now_ms()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Removes a connection; `false` when there was none.
    pub fn disconnect(&self, integration: &str, owner: &str) -> Result<bool, VaultError> {
        let n = self
            .db()
            .execute(
                "DELETE FROM connections WHERE integration = ?1 AND owner = ?2",
                params![integration, owner],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Turns a connection on or off; `false` when there is none.
    pub fn set_active(
        &self,
        integration: &str,
        owner: &str,
        active: bool,
    ) -> Result<bool, VaultError> {
        let n = self
            .db()
            .execute(
                "UPDATE connections SET active = ?3, updated_at = ?4 WHERE integration = ?1 AND owner = ?2",
                params![integration, owner, active, now_ms()],
            )
            .map_err(|e| self.sql(e))?;
        Ok(n > 0)
    }

    /// Every connection (optionally of one integration), without credentials.
    pub fn list(&self, integration: Option<&str>) -> Result<Vec<ConnectionInfo>, VaultError> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT integration, owner, settings, base_url, secret_names, active, created_at, updated_at
                 FROM connections WHERE ?1 IS NULL OR integration = ?1 ORDER BY integration, owner",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![integration], info_row)
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }

    fn info(&self, integration: &str, owner: &str) -> Result<Option<ConnectionInfo>, VaultError> {
        self.db()
            .query_row(
                "SELECT integration, owner, settings, base_url, secret_names, active, created_at, updated_at
                 FROM connections WHERE integration = ?1 AND owner = ?2",
                params![integration, owner],
                info_row,
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// The connection a call uses: `owner`'s when given; otherwise the owner `default`'s,
    /// or the integration's only connection.
    pub fn load(&self, integration: &str, owner: Option<&str>) -> Result<Connection, VaultError> {
        let owner = match owner {
            Some(o) => o.to_owned(),
            None => {
                let all = self.list(Some(integration))?;
                if all.iter().any(|c| c.owner == "default") {
                    "default".to_owned()
                } else {
                    match all.as_slice() {
                        [] => {
                            return Err(VaultError::NoConnection {
                                integration: integration.to_owned(),
                                owner: None,
                            });
                        }
                        [one] => one.owner.clone(),
                        many => {
                            return Err(VaultError::Ambiguous {
                                integration: integration.to_owned(),
                                owners: many
                                    .iter()
                                    .map(|c| c.owner.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            });
                        }
                    }
                }
            }
        };
        let c = self.load_exact(integration, &owner)?;
        if !c.active {
            return Err(VaultError::Inactive {
                integration: integration.to_owned(),
                owner,
            });
        }
        Ok(c)
    }

    fn load_exact(&self, integration: &str, owner: &str) -> Result<Connection, VaultError> {
        type Row = (
            i64,
            String,
            Option<String>,
            Vec<u8>,
            Vec<u8>,
            Vec<u8>,
            Vec<u8>,
            bool,
        );
        let row: Option<Row> = self
            .db()
            .query_row(
                "SELECT id, settings, base_url, sealed, nonce, wrapped_key, key_nonce, active
                 FROM connections WHERE integration = ?1 AND owner = ?2",
                params![integration, owner],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.sql(e))?;
        let Some((id, settings, base_url, data, nonce, key, key_nonce, active)) = row else {
            return Err(VaultError::NoConnection {
                integration: integration.to_owned(),
                owner: Some(owner.to_owned()),
            });
        };
        let damaged = || VaultError::Damaged {
            integration: integration.to_owned(),
            owner: owner.to_owned(),
        };
        let sealed = Sealed {
            data,
            nonce,
            key,
            key_nonce,
        };
        let plain = self
            .open_sealed(integration, owner, &sealed)
            .ok_or_else(damaged)?;
        let map: BTreeMap<String, String> =
            serde_json::from_slice(&plain).map_err(|_| damaged())?;
        let secrets = map
            .into_iter()
            .map(|(k, v)| (k, SecretString::from(v)))
            .collect();
        Ok(Connection {
            id,
            integration: integration.to_owned(),
            owner: owner.to_owned(),
            settings: serde_json::from_str(&settings).unwrap_or_default(),
            base_url,
            active,
            secrets,
            derived: Mutex::new(Vec::new()),
        })
    }

    fn seal(
        &self,
        integration: &str,
        owner: &str,
        secrets: &BTreeMap<String, SecretString>,
    ) -> Result<Sealed, VaultError> {
        let plain: BTreeMap<&str, &str> = secrets
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose_secret()))
            .collect();
        let plain = Zeroizing::new(serde_json::to_vec(&plain).map_err(|_| VaultError::Seal)?);
        let data_key = Zeroizing::new(random::<32>());
        let aad = aad(integration, owner);
        let nonce = random::<24>();
        let cipher = XChaCha20Poly1305::new(data_key.as_ref().into());
        let data = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Seal)?;
        let key_nonce = random::<24>();
        let wrap = XChaCha20Poly1305::new(self.master.expose_secret().into());
        let key = wrap
            .encrypt(
                XNonce::from_slice(&key_nonce),
                Payload {
                    msg: data_key.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Seal)?;
        Ok(Sealed {
            data,
            nonce: nonce.to_vec(),
            key,
            key_nonce: key_nonce.to_vec(),
        })
    }

    fn open_sealed(
        &self,
        integration: &str,
        owner: &str,
        s: &Sealed,
    ) -> Option<Zeroizing<Vec<u8>>> {
        if s.nonce.len() != 24 || s.key_nonce.len() != 24 {
            return None;
        }
        let aad = aad(integration, owner);
        let wrap = XChaCha20Poly1305::new(self.master.expose_secret().into());
        let mut data_key = Zeroizing::new(
            wrap.decrypt(
                XNonce::from_slice(&s.key_nonce),
                Payload {
                    msg: &s.key,
                    aad: &aad,
                },
            )
            .ok()?,
        );
        if data_key.len() != 32 {
            data_key.zeroize();
            return None;
        }
        let cipher = XChaCha20Poly1305::new(data_key.as_slice().into());
        cipher
            .decrypt(
                XNonce::from_slice(&s.nonce),
                Payload {
                    msg: &s.data,
                    aad: &aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }

    /// Records a use of a connection's credentials (written in the background).
    pub fn audit(&self, entry: AuditEntry) {
        if self.writer.send(Write::Audit(entry, now_ms())).is_err() {
            self.writer_gone("an audit row");
        }
    }

    /// How many audit rows and breaker states this vault could not write since it was
    /// opened (each was logged as it failed).
    pub fn write_failures(&self) -> u64 {
        self.write_failures.load(Ordering::Relaxed)
    }

    fn writer_gone(&self, what: &str) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("the vault's writer has stopped; {what} was not written");
    }

    /// Records a circuit breaker's new state (written in the background).
    pub fn record_breaker(&self, integration: &str, owner: &str, record: BreakerRecord) {
        let sent = self.writer.send(Write::Breaker {
            integration: integration.to_owned(),
            owner: owner.to_owned(),
            record,
        });
        if sent.is_err() {
            self.writer_gone("a breaker state");
        }
    }

    /// Waits until every audit entry and breaker state sent so far is written.
    pub fn flush(&self) {
        let (tx, rx) = mpsc::channel();
        if self.writer.send(Write::Flush(tx)).is_err() {
            return;
        }
        if rx.recv_timeout(std::time::Duration::from_secs(10)).is_err() {
            tracing::warn!("the vault's writer did not finish writing within 10 s");
        }
    }

    /// The last recorded breaker state of a connection.
    pub fn breaker(
        &self,
        integration: &str,
        owner: &str,
    ) -> Result<Option<BreakerRecord>, VaultError> {
        self.db()
            .query_row(
                "SELECT state, since, failures FROM breakers WHERE integration = ?1 AND owner = ?2",
                params![integration, owner],
                |r| {
                    Ok(BreakerRecord {
                        state: r.get(0)?,
                        since: r.get(1)?,
                        failures: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Calls and failed calls of a connection since `since_ms`: only the rows from the
    /// first one recorded at or after `since_ms` are read.
    pub fn recent_calls(
        &self,
        integration: &str,
        owner: &str,
        since_ms: i64,
    ) -> Result<(u64, u64), VaultError> {
        let db = self.db();
        let first = first_audit_row_since(&db, since_ms).map_err(|e| self.sql(e))?;
        db.query_row(
            "SELECT COUNT(*), COALESCE(SUM(outcome <> 'ok'), 0) FROM audit
             WHERE id >= ?4 AND integration = ?1 AND owner = ?2 AND at >= ?3 AND purpose <> 'health'",
            params![integration, owner, since_ms, first],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
        )
        .map_err(|e| self.sql(e))
    }

    /// The most recent audit entries, newest first.
    pub fn audit_log(
        &self,
        integration: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, VaultError> {
        let db = self.db();
        let mut stmt = db
            .prepare(
                "SELECT at, integration, owner, run_id, workflow, step, purpose, outcome, actor FROM audit
                 WHERE ?1 IS NULL OR integration = ?1 ORDER BY id DESC LIMIT ?2",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map(params![integration, limit as i64], |r| {
                Ok(AuditRecord {
                    at: r.get(0)?,
                    integration: r.get(1)?,
                    owner: r.get(2)?,
                    run_id: r.get(3)?,
                    workflow: r.get(4)?,
                    step: r.get(5)?,
                    purpose: r.get(6)?,
                    outcome: r.get(7)?,
                    actor: r.get(8)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.sql(e))
    }
}

impl Drop for Vault {
    fn drop(&mut self) {
        self.flush();
    }
}

struct Sealed {
    data: Vec<u8>,
    nonce: Vec<u8>,
    key: Vec<u8>,
    key_nonce: Vec<u8>,
}

fn info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConnectionInfo> {
    let settings: String = r.get(2)?;
    let names: String = r.get(4)?;
    Ok(ConnectionInfo {
        integration: r.get(0)?,
        owner: r.get(1)?,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        base_url: r.get(3)?,
        secrets: serde_json::from_str(&names).unwrap_or_default(),
        active: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

/// Only the owner may read the vault (and SQLite's write-ahead log and index beside it).
fn restrict_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut files = vec![path.to_owned()];
        for suffix in ["-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            files.push(PathBuf::from(p));
        }
        for f in files {
            let _ = std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let t = text.trim();
    if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut out = [0u8; 32];
        for (i, chunk) in t.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).ok()?;
            *out.get_mut(i)? = u8::from_str_radix(s, 16).ok()?;
        }
        return Some(out);
    }
    let bytes = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(t).ok()?);
    <[u8; 32]>::try_from(bytes.as_slice()).ok()
}

fn master_key(path: &Path, db: &Db) -> Result<SecretBox<[u8; 32]>, VaultError> {
    let sql = |source| VaultError::Sqlite {
        path: path.to_owned(),
        source,
    };
    if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
        let text = Zeroizing::new(text);
        if let Some(key) = decode_key(&text) {
            return Ok(SecretBox::new(Box::new(key)));
        }
        // A passphrase: stretch it with Argon2id and the vault's own salt.
        let salt: Option<Vec<u8>> = db
            .query_row("SELECT value FROM meta WHERE name = 'kdf_salt'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        let salt = match salt {
            Some(s) => s,
            None => {
                let s = random::<16>().to_vec();
                db.execute(
                    "INSERT INTO meta (name, value) VALUES ('kdf_salt', ?1)",
                    params![s],
                )
                .map_err(sql)?;
                s
            }
        };
        let mut key = Box::new([0u8; 32]);
        argon2::Argon2::default()
            .hash_password_into(text.as_bytes(), &salt, key.as_mut())
            .map_err(|e| VaultError::Kdf(e.to_string()))?;
        return Ok(SecretBox::new(key));
    }
    let file = path
        .parent()
        .map(|d| d.join(KEY_FILE))
        .unwrap_or_else(|| PathBuf::from(KEY_FILE));
    let io = |source| VaultError::Io {
        path: file.clone(),
        source,
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            decode_key(&text)
                .map(|k| SecretBox::new(Box::new(k)))
                .ok_or_else(|| VaultError::WrongKey {
                    path: path.to_owned(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Zeroizing::new(random::<32>());
            let text =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.as_ref()));
            write_key_file(&file, text.as_bytes()).map_err(io)?;
            Ok(SecretBox::new(Box::new(*key)))
        }
        Err(e) => Err(io(e)),
    }
}

fn write_key_file(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(file)?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// Seals a known text under the master key the first time, and checks it opens after,
/// so a wrong key is reported at once rather than as damaged connections.
fn check_key(path: &Path, db: &Db, master: &SecretBox<[u8; 32]>) -> Result<(), VaultError> {
    let sql = |source| VaultError::Sqlite {
        path: path.to_owned(),
        source,
    };
    const CHECK: &[u8] = b"flow vault key check";
    let cipher = XChaCha20Poly1305::new(master.expose_secret().into());
    let found: Option<Vec<u8>> = db
        .query_row("SELECT value FROM meta WHERE name = 'key_check'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql)?;
    match found {
        Some(blob) if blob.len() > 24 => {
            let (nonce, data) = blob.split_at(24);
            match cipher.decrypt(XNonce::from_slice(nonce), data) {
                Ok(plain) if plain == CHECK => Ok(()),
                _ => Err(VaultError::WrongKey {
                    path: path.to_owned(),
                }),
            }
        }
        Some(_) => Err(VaultError::WrongKey {
            path: path.to_owned(),
        }),
        None => {
            let nonce = random::<24>();
            let data = cipher
                .encrypt(XNonce::from_slice(&nonce), CHECK)
                .map_err(|_| VaultError::Seal)?;
            let mut blob = nonce.to_vec();
            blob.extend(data);
            db.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('key_check', ?1)",
                params![blob],
            )
            .map_err(sql)?;
            Ok(())
        }
    }
}

/// Vaults created before the audit log recorded its actor get the column.
/// The row id from which the audit entries are recorded at or after `since_ms` (one
/// past the last row when none is). Entries are appended in time order, so this is a
/// binary search over row ids, each probe one lookup of the row at or after an id (ids
/// may have gaps). Should clocks step back, a few rows near the boundary may be missed;
/// the callers filter by time as well.
fn first_audit_row_since(db: &Db, since_ms: i64) -> Result<i64, rusqlite::Error> {
    let (min, max): (Option<i64>, Option<i64>) =
        db.query_row("SELECT MIN(id), MAX(id) FROM audit", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let (Some(mut lo), Some(max)) = (min, max) else {
        return Ok(0);
    };
    let mut hi = max + 1;
    let mut probe =
        db.prepare_cached("SELECT id, at FROM audit WHERE id >= ?1 ORDER BY id LIMIT 1")?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row: Option<(i64, i64)> = probe
            .query_row([mid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            // Every row up to `id` is older; there are none between `mid` and `id`.
            Some((id, at)) if at < since_ms => lo = id + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

fn add_actor_column(db: &Db) -> Result<(), rusqlite::Error> {
    let has_actor = db
        .prepare("SELECT 1 FROM pragma_table_info('audit') WHERE name = 'actor'")?
        .exists([])?;
    if !has_actor {
        db.execute_batch("ALTER TABLE audit ADD COLUMN actor TEXT")?;
    }
    Ok(())
}

/// The operating-system user running this process (`USER`, else `LOGNAME`, else the
/// numeric uid), recorded as the actor of every audit entry it writes.
fn current_actor() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var) {
            if !name.trim().is_empty() {
                return name;
            }
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata("/proc/self") {
            return format!("uid {}", meta.uid());
        }
    }
    "unknown".to_owned()
}

const INSERT_AUDIT: &str =
    "INSERT INTO audit (at, integration, owner, run_id, workflow, step, purpose, outcome, actor)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const UPSERT_BREAKER: &str =
    "INSERT INTO breakers (integration, owner, state, since, failures) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (integration, owner) DO UPDATE SET state = ?3, since = ?4, failures = ?5";

/// How long the background writer waits after the first of a batch of entries before it
/// writes them: what an entry may wait at most, beyond the write itself.
const WRITER_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// Inserts one audit row with `insert` (`INSERT_AUDIT`), binding only the fields that
/// differ from the row inserted before it with the same statement (`previous`):
/// consecutive entries mostly share their names, SQLite keeps a statement's bindings
/// from one execution to the next, and binding text copies it.
fn insert_audit_row(
    insert: &mut rusqlite::Statement<'_>,
    e: &AuditEntry,
    at: i64,
    previous: Option<&AuditEntry>,
    actor: &str,
) -> rusqlite::Result<usize> {
    insert.raw_bind_parameter(1, at)?;
    if previous.is_none_or(|p| p.integration != e.integration) {
        insert.raw_bind_parameter(2, &*e.integration)?;
    }
    if previous.is_none_or(|p| p.owner != e.owner) {
        insert.raw_bind_parameter(3, &e.owner)?;
    }
    if previous.is_none_or(|p| p.run_id != e.run_id) {
        insert.raw_bind_parameter(4, e.run_id.as_deref())?;
    }
    if previous.is_none_or(|p| p.workflow != e.workflow) {
        insert.raw_bind_parameter(5, e.workflow.as_deref())?;
    }
    if previous.is_none_or(|p| p.step != e.step) {
        insert.raw_bind_parameter(6, &e.step)?;
    }
    if previous.is_none_or(|p| p.purpose != e.purpose) {
        insert.raw_bind_parameter(7, &*e.purpose)?;
    }
    if previous.is_none_or(|p| p.outcome != e.outcome) {
        insert.raw_bind_parameter(8, e.outcome)?;
    }
    if previous.is_none() {
        insert.raw_bind_parameter(9, actor)?;
    }
    insert.raw_execute()
}

/// The most entries one transaction of the background writer takes.
const MAX_BATCH: usize = 4096;

/// A connection to the vault's file that waits up to 5 s for a busy database.
fn open_db(path: &Path) -> Result<Db, VaultError> {
    let sql = |source| VaultError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let db = Db::open(path).map_err(sql)?;
    db.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sql)?;
    Ok(db)
}

#[cfg(test)]
mod tests;
