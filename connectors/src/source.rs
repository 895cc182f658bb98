//! Where the driver finds connections: the vault that goes with the run store (opened on
//! first use, so runs that call no connected integration never create it), or
//! connections held in memory (tests, benchmarks).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::vault::{AuditEntry, BreakerRecord, Connection, Vault, VaultError, VaultLocation};

/// A source of connections and the sink of their audit log.
pub trait Connections: Send + Sync {
    /// The connection of `owner` (or the default one) to `integration`.
    fn load(&self, integration: &str, owner: Option<&str>) -> Result<Arc<Connection>, VaultError>;
    /// Stores rotated credentials.
    fn update_secrets(
        &self,
        integration: &str,
        owner: &str,
        changes: Vec<(String, String)>,
    ) -> Result<(), VaultError>;
    /// Records a use of the credentials.
    fn audit(&self, entry: AuditEntry);
    /// Records a circuit breaker's new state.
    fn record_breaker(&self, integration: &str, owner: &str, record: BreakerRecord);
}

/// How long a loaded connection is used before it is read from the vault again, so a
/// long-running process sees what `flow connect`, `flow connections deactivate` or a
/// rotation by another process (another machine, on a shared PostgreSQL vault) changed.
pub const CONNECTION_REFRESH: Duration = Duration::from_secs(30);

/// The vault of a store, opened on first use; loaded connections are kept for
/// [`CONNECTION_REFRESH`] (a rotation by this process updates both at once).
pub struct VaultConnections {
    location: VaultLocation,
    refresh: Duration,
    vault: OnceLock<Result<Vault, String>>,
    /// By integration, then by the owner asked for; looked up on every call without
    /// building a key.
    loaded: Mutex<HashMap<String, ByOwner>>,
}

/// Loaded connections of one integration, by the owner asked for (`None`: the default),
/// with when each was read.
type ByOwner = Vec<(Option<String>, Arc<Connection>, Instant)>;

impl VaultConnections {
    pub fn new(location: VaultLocation) -> VaultConnections {
        VaultConnections {
            location,
            refresh: CONNECTION_REFRESH,
            vault: OnceLock::new(),
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// An already opened vault.
    pub fn with_vault(vault: Vault) -> VaultConnections {
        let location = vault.location().clone();
        let cell = OnceLock::new();
        let _ = cell.set(Ok(vault));
        VaultConnections {
            location,
            refresh: CONNECTION_REFRESH,
            vault: cell,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// Reads loaded connections again after `every` instead of [`CONNECTION_REFRESH`].
    pub fn with_refresh(mut self, every: Duration) -> VaultConnections {
        self.refresh = every;
        self
    }

    pub fn vault(&self) -> Result<&Vault, VaultError> {
        match self
            .vault
            .get_or_init(|| Vault::open_at(&self.location).map_err(|e| e.to_string()))
        {
            Ok(v) => Ok(v),
            Err(message) => Err(VaultError::Unavailable {
                vault: self.location.describe(),
                message: message.clone(),
            }),
        }
    }
}

impl Connections for VaultConnections {
    fn load(&self, integration: &str, owner: Option<&str>) -> Result<Arc<Connection>, VaultError> {
        let cached = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(integration)
            .and_then(|owners| {
                owners
                    .iter()
                    .find(|(o, _, at)| o.as_deref() == owner && at.elapsed() < self.refresh)
                    .map(|(_, c, _)| Arc::clone(c))
            });
        if let Some(c) = cached {
            return Ok(c);
        }
        let read = self.vault()?.load(integration, owner);
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let owners = loaded.entry(integration.to_owned()).or_default();
        owners.retain(|(o, _, _)| o.as_deref() != owner);
        let c = Arc::new(read?);
        owners.push((owner.map(str::to_owned), Arc::clone(&c), Instant::now()));
        Ok(c)
    }

    fn update_secrets(
        &self,
        integration: &str,
        owner: &str,
        changes: Vec<(String, String)>,
    ) -> Result<(), VaultError> {
        self.vault()?.update_secrets(integration, owner, changes)?;
        self.loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(integration);
        Ok(())
    }

    fn audit(&self, entry: AuditEntry) {
        if let Ok(v) = self.vault() {
            v.audit(entry);
        }
    }

    fn record_breaker(&self, integration: &str, owner: &str, record: BreakerRecord) {
        if let Ok(v) = self.vault() {
            v.record_breaker(integration, owner, record);
        }
    }
}

/// Connections held in memory; the audit log is kept in memory too.
#[derive(Default)]
pub struct MemoryConnections {
    connections: Mutex<Vec<Arc<Connection>>>,
    pub audit_log: Mutex<Vec<AuditEntry>>,
    pub breaker_log: Mutex<Vec<(String, String, BreakerRecord)>>,
}

impl MemoryConnections {
    pub fn new(connections: Vec<Connection>) -> MemoryConnections {
        MemoryConnections {
            connections: Mutex::new(connections.into_iter().map(Arc::new).collect()),
            ..MemoryConnections::default()
        }
    }
}

impl Connections for MemoryConnections {
    fn load(&self, integration: &str, owner: Option<&str>) -> Result<Arc<Connection>, VaultError> {
        let all = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.iter()
            .find(|c| c.integration == integration && owner.is_none_or(|o| c.owner == o))
            .cloned()
            .ok_or_else(|| VaultError::NoConnection {
                integration: integration.to_owned(),
                owner: owner.map(str::to_owned),
            })
    }

    fn update_secrets(
        &self,
        integration: &str,
        owner: &str,
        changes: Vec<(String, String)>,
    ) -> Result<(), VaultError> {
        let mut all = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in all.iter_mut() {
            if c.integration == integration && c.owner == owner {
                let mut next = Connection::new(integration, owner);
                next.settings = c.settings.clone();
                next.base_url = c.base_url.clone();
                for name in c.secret_names() {
                    if let Some(v) = c.secret_text(name) {
                        next = next.with_secret(name, &v);
                    }
                }
                for (k, v) in &changes {
                    next = next.with_secret(k, v);
                }
                *c = Arc::new(next);
            }
        }
        Ok(())
    }

    fn audit(&self, entry: AuditEntry) {
        self.audit_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(entry);
    }

    fn record_breaker(&self, integration: &str, owner: &str, record: BreakerRecord) {
        self.breaker_log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((integration.to_owned(), owner.to_owned(), record));
    }
}
