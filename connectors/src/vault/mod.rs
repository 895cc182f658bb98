//! The credential vault: connections (an integration bound to an owner, with settings,
//! an optional `base_url` and encrypted credentials), the audit log of every use, and the
//! circuit-breaker states the driver records. It goes with the run store: an SQLite file
//! next to an SQLite store (`.flow/vault.db` beside `.flow/flow.db`), the `vault_*`
//! tables of a PostgreSQL store's database (shared by every process on it).
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
use flow_runtime::store::{SqlRow, SqlValue, StoreError};
#[cfg(test)]
use rusqlite::Connection as Db;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::Serialize;
use zeroize::{Zeroize, Zeroizing};

use flow_runtime::group_commit::{self, Journal, Linger, WriterOptions};

mod tables;
mod writer;

pub use tables::VaultLocation;
use tables::{Tables, first_audit_row_since};

/// The environment variable holding the master key (or a passphrase).
pub const MASTER_KEY_ENV: &str = "FLOW_MASTER_KEY";
/// The key file created next to the vault when the environment gives no key.
pub const KEY_FILE: &str = "master.key";
/// The vault's file name, next to the run store.
pub const VAULT_FILE: &str = "vault.db";

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
    #[error("vault: {0}")]
    Store(StoreError),
    /// The vault could not be opened earlier in this process (the first error, again).
    #[error("the vault {vault} cannot be opened: {message}")]
    Unavailable { vault: String, message: String },
    #[error(
        "the master key does not open the vault {vault}: set {MASTER_KEY_ENV} to the key (or passphrase) it was created with, or restore its {KEY_FILE}"
    )]
    WrongKey { vault: String },
    #[error(
        "the vault {vault} is sealed with a master key this process does not have: set {MASTER_KEY_ENV} to that key (or passphrase), or put its key file at {}",
        key_file.display()
    )]
    NoKey { vault: String, key_file: PathBuf },
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

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> VaultError {
        match e {
            // The vault's own file: its errors name it as the vault.
            StoreError::Sqlite { path, source } => VaultError::Sqlite { path, source },
            other => VaultError::Store(other),
        }
    }
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

/// An open vault.
pub struct Vault {
    location: VaultLocation,
    tables: Tables,
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

    /// Opens (creating when missing) the vault file at `path`, with the master key from
    /// the environment or the key file next to it.
    pub fn open(path: &Path) -> Result<Vault, VaultError> {
        Vault::open_at(&VaultLocation::File(path.to_owned()))
    }

    /// Opens (creating when missing) the vault at `location`, with the master key from
    /// the environment or the key file ([`VaultLocation`] says where).
    pub fn open_at(location: &VaultLocation) -> Result<Vault, VaultError> {
        let tables = Tables::open(location)?;
        let master = master_key(location, &tables)?;
        check_key(location, &tables, &master)?;
        let write_failures = Arc::new(AtomicU64::new(0));
        let writer = writer::spawn(location, Arc::clone(&write_failures))?;
        if let VaultLocation::File(path) = location {
            restrict_mode(path);
        }
        Ok(Vault {
            location: location.clone(),
            tables,
            master,
            writer,
            write_failures,
        })
    }

    /// Where this vault lives.
    pub fn location(&self) -> &VaultLocation {
        &self.location
    }

    /// The vault file's connection (tests read and damage the file directly).
    #[cfg(test)]
    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.tables.file().expect("a vault file").1
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
        self.tables.execute(
            "INSERT INTO vault_connections (integration, owner, settings, base_url, secret_names, sealed, nonce, wrapped_key, key_nonce, active, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?10)
             ON CONFLICT (integration, owner) DO UPDATE SET settings = ?3, base_url = ?4, secret_names = ?5,
               sealed = ?6, nonce = ?7, wrapped_key = ?8, key_nonce = ?9, active = 1, updated_at = ?10",
            &[
                integration.into(),
                owner.into(),
                settings_json.into(),
                base_url.into(),
                names_json.into(),
                sealed.data.into(),
                sealed.nonce.into(),
                sealed.key.into(),
                sealed.key_nonce.into(),
                now.into(),
            ],
        )?;
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
        self.tables.execute(
            "UPDATE vault_connections SET secret_names = ?3, sealed = ?4, nonce = ?5, wrapped_key = ?6, key_nonce = ?7, updated_at = ?8
             WHERE integration = ?1 AND owner = ?2",
            &[
                integration.into(),
                owner.into(),
                names_json.into(),
                sealed.data.into(),
                sealed.nonce.into(),
                sealed.key.into(),
                sealed.key_nonce.into(),
                now_ms().into(),
            ],
        )?;
        Ok(())
    }

    /// Removes a connection; `false` when there was none.
    pub fn disconnect(&self, integration: &str, owner: &str) -> Result<bool, VaultError> {
        let n = self.tables.execute(
            "DELETE FROM vault_connections WHERE integration = ?1 AND owner = ?2",
            &[integration.into(), owner.into()],
        )?;
        Ok(n > 0)
    }

    /// Turns a connection on or off; `false` when there is none.
    pub fn set_active(
        &self,
        integration: &str,
        owner: &str,
        active: bool,
    ) -> Result<bool, VaultError> {
        let n = self.tables.execute(
            "UPDATE vault_connections SET active = ?3, updated_at = ?4 WHERE integration = ?1 AND owner = ?2",
            &[integration.into(), owner.into(), active.into(), now_ms().into()],
        )?;
        Ok(n > 0)
    }

    /// Every connection (optionally of one integration), without credentials.
    pub fn list(&self, integration: Option<&str>) -> Result<Vec<ConnectionInfo>, VaultError> {
        self.tables
            .query(
                "SELECT integration, owner, settings, base_url, secret_names, active, created_at, updated_at
                 FROM vault_connections WHERE integration = coalesce(?1, integration) ORDER BY integration, owner",
                &[integration.into()],
            )?
            .iter()
            .map(info_row)
            .collect()
    }

    fn info(&self, integration: &str, owner: &str) -> Result<Option<ConnectionInfo>, VaultError> {
        self.tables
            .query_opt(
                "SELECT integration, owner, settings, base_url, secret_names, active, created_at, updated_at
                 FROM vault_connections WHERE integration = ?1 AND owner = ?2",
                &[integration.into(), owner.into()],
            )?
            .as_ref()
            .map(info_row)
            .transpose()
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
        let row = self.tables.query_opt(
            "SELECT id, settings, base_url, sealed, nonce, wrapped_key, key_nonce, active
             FROM vault_connections WHERE integration = ?1 AND owner = ?2",
            &[integration.into(), owner.into()],
        )?;
        let Some(row) = row else {
            return Err(VaultError::NoConnection {
                integration: integration.to_owned(),
                owner: Some(owner.to_owned()),
            });
        };
        let (id, settings, base_url, active): (i64, String, Option<String>, bool) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(7)?);
        let (data, nonce, key, key_nonce) = (row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?);
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
        let row = self.tables.query_opt(
            "SELECT state, since, failures FROM vault_breakers WHERE integration = ?1 AND owner = ?2",
            &[integration.into(), owner.into()],
        )?;
        row.map(|r| {
            Ok(BreakerRecord {
                state: r.get(0)?,
                since: r.get(1)?,
                failures: u32::try_from(r.get::<i64>(2)?).unwrap_or(u32::MAX),
            })
        })
        .transpose()
    }

    /// Calls and failed calls of a connection since `since_ms`: only the rows from the
    /// first one recorded at or after `since_ms` are read.
    pub fn recent_calls(
        &self,
        integration: &str,
        owner: &str,
        since_ms: i64,
    ) -> Result<(u64, u64), VaultError> {
        let first = first_audit_row_since(&self.tables, since_ms)?;
        let row = self.tables.query_opt(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END), 0) FROM vault_audit
             WHERE id >= ?4 AND integration = ?1 AND owner = ?2 AND at >= ?3 AND purpose <> 'health'",
            &[integration.into(), owner.into(), since_ms.into(), first.into()],
        )?;
        let count = |i| -> Result<u64, VaultError> {
            Ok(row
                .as_ref()
                .map(|r| r.get::<i64>(i))
                .transpose()?
                .unwrap_or(0) as u64)
        };
        Ok((count(0)?, count(1)?))
    }

    /// The most recent audit entries, newest first.
    pub fn audit_log(
        &self,
        integration: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, VaultError> {
        self.tables
            .query(
                "SELECT at, integration, owner, run_id, workflow, step, purpose, outcome, actor FROM vault_audit
                 WHERE integration = coalesce(?1, integration) ORDER BY id DESC LIMIT ?2",
                &[integration.into(), (limit.min(i64::MAX as usize) as i64).into()],
            )?
            .iter()
            .map(|r| {
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
            .collect()
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

fn info_row(r: &SqlRow) -> Result<ConnectionInfo, VaultError> {
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

fn master_key(
    location: &VaultLocation,
    tables: &Tables,
) -> Result<SecretBox<[u8; 32]>, VaultError> {
    if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
        let text = Zeroizing::new(text);
        if let Some(key) = decode_key(&text) {
            return Ok(SecretBox::new(Box::new(key)));
        }
        // A passphrase: stretch it with Argon2id and the vault's own salt (the first
        // process to open the vault chooses it; every other reads that one).
        tables.execute(
            "INSERT INTO vault_meta (name, value) VALUES ('kdf_salt', ?1) ON CONFLICT (name) DO NOTHING",
            &[random::<16>().to_vec().into()],
        )?;
        let salt: Vec<u8> = tables
            .query_opt("SELECT value FROM vault_meta WHERE name = 'kdf_salt'", &[])?
            .map(|r| r.get(0))
            .transpose()?
            .unwrap_or_default();
        let mut key = Box::new([0u8; 32]);
        argon2::Argon2::default()
            .hash_password_into(text.as_bytes(), &salt, key.as_mut())
            .map_err(|e| VaultError::Kdf(e.to_string()))?;
        return Ok(SecretBox::new(key));
    }
    let file = location.key_file();
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
                    vault: location.describe(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A vault sealed already needs its own key: a new one would not open it, and
            // its file would stand in the way of the right one.
            let sealed = tables
                .query_opt("SELECT 1 FROM vault_meta WHERE name = 'key_check'", &[])?
                .is_some();
            if sealed {
                return Err(VaultError::NoKey {
                    vault: location.describe(),
                    key_file: file,
                });
            }
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let key = Zeroizing::new(random::<32>());
            let text =
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.as_ref()));
            if !write_key_file(&file, text.as_bytes()).map_err(io)? {
                // Another process created the key first: that one is the vault's.
                return master_key(location, tables);
            }
            if matches!(location, VaultLocation::Store { .. }) {
                tracing::warn!(
                    key_file = %file.display(),
                    "created a master key for the vault shared on {}; every other process on this store needs the same key: set {MASTER_KEY_ENV} or copy the file",
                    location.describe()
                );
            }
            Ok(SecretBox::new(Box::new(*key)))
        }
        Err(e) => Err(io(e)),
    }
}

/// Creates the key file with `bytes`, whole or not at all: written to a file of its own
/// first and linked into place, so a process starting at the same moment never reads it
/// half-written. `false` when the key file exists already.
fn write_key_file(file: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    use std::io::Write as _;
    let mut draft = file.as_os_str().to_owned();
    draft.push(format!(
        ".{}.{:x}",
        std::process::id(),
        u64::from_le_bytes(random::<8>())
    ));
    let draft = PathBuf::from(draft);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&draft).and_then(|mut f| {
        f.write_all(bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&draft, file));
    let _ = std::fs::remove_file(&draft);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Seals a known text under the master key the first time, and checks it opens after,
/// so a wrong key is reported at once rather than as damaged connections.
fn check_key(
    location: &VaultLocation,
    tables: &Tables,
    master: &SecretBox<[u8; 32]>,
) -> Result<(), VaultError> {
    const CHECK: &[u8] = b"flow vault key check";
    let cipher = XChaCha20Poly1305::new(master.expose_secret().into());
    let read = || -> Result<Option<Vec<u8>>, VaultError> {
        tables
            .query_opt("SELECT value FROM vault_meta WHERE name = 'key_check'", &[])?
            .map(|r| r.get(0))
            .transpose()
            .map_err(VaultError::from)
    };
    let found = match read()? {
        Some(blob) => blob,
        None => {
            let nonce = random::<24>();
            let data = cipher
                .encrypt(XNonce::from_slice(&nonce), CHECK)
                .map_err(|_| VaultError::Seal)?;
            let mut blob = nonce.to_vec();
            blob.extend(data);
            // Another process may have written its check first: the stored one decides.
            tables.execute(
                "INSERT INTO vault_meta (name, value) VALUES ('key_check', ?1) ON CONFLICT (name) DO NOTHING",
                &[blob.into()],
            )?;
            read()?.unwrap_or_default()
        }
    };
    let opens = found.len() > 24 && {
        let (nonce, data) = found.split_at(24);
        cipher
            .decrypt(XNonce::from_slice(nonce), data)
            .is_ok_and(|plain| plain == CHECK)
    };
    if opens {
        Ok(())
    } else {
        Err(VaultError::WrongKey {
            vault: location.describe(),
        })
    }
}

/// The operating-system user running this process (`USER`, else `LOGNAME`, else the
/// numeric uid), recorded as the actor of every audit entry it writes.
fn current_actor() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.trim().is_empty()
        {
            return name;
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
    "INSERT INTO vault_audit (at, integration, owner, run_id, workflow, step, purpose, outcome, actor)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
const UPSERT_BREAKER: &str =
    "INSERT INTO vault_breakers (integration, owner, state, since, failures) VALUES (?1, ?2, ?3, ?4, ?5)
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

#[cfg(test)]
mod tests;
