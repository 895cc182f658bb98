//! A process's executor lease on a store: on SQLite, a lock file the kernel releases
//! when the process dies; on PostgreSQL, a row in `executors` its process keeps fresh
//! (`postgres/lease.rs`).

use super::*;

/// A process's claim on the runs it executes. On SQLite the lock file stays locked while
/// the process lives; the kernel releases it when the process dies, however it dies,
/// which is how another process on the machine tells a crashed executor's runs from a
/// live one's. On PostgreSQL, processes on other machines tell by the executor's
/// heartbeat.
pub struct Lease {
    pub token: String,
    hold: Hold,
}

enum Hold {
    File(#[allow(dead_code, reason = "held for its lock")] std::fs::File),
    Heartbeat(postgres::Heartbeat),
}

impl Store {
    /// Takes a new executor lease for this process.
    pub fn acquire_lease(&self) -> Result<Lease, StoreError> {
        match self.pg() {
            Some(pg) => {
                let token = Lease::new_token();
                let heartbeat = pg.start_heartbeat(&token)?;
                Ok(Lease {
                    token,
                    hold: Hold::Heartbeat(heartbeat),
                })
            }
            None => Lease::acquire(self.path()),
        }
    }

    /// Whether the executor holding `token` is alive: its lock file is locked (SQLite), or
    /// its heartbeat is fresh (PostgreSQL). A run is never taken from an executor on
    /// elapsed time alone.
    pub fn executor_alive(&self, token: &str) -> bool {
        match self.pg() {
            Some(pg) => pg.executor_alive(token),
            None => Lease::is_alive(self.path(), token),
        }
    }
}

impl Lease {
    fn new_token() -> String {
        format!("{}-{:016x}", std::process::id(), fastrand::u64(..))
    }

    fn dir(store: &Path) -> PathBuf {
        let mut name = store
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".executors");
        store.with_file_name(name)
    }

    /// Takes a new lease for this process.
    fn acquire(store: &Path) -> Result<Lease, StoreError> {
        let dir = Lease::dir(store);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let token = Lease::new_token();
        let path = dir.join(format!("{token}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        file.try_lock().map_err(|e| StoreError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        Ok(Lease {
            token,
            hold: Hold::File(file),
        })
    }

    /// Whether the executor holding `token` is still alive. A dead one's lock file is
    /// removed.
    fn is_alive(store: &Path, token: &str) -> bool {
        let path = Lease::dir(store).join(format!("{token}.lock"));
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
            return false;
        };
        match file.try_lock() {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                false
            }
            Err(_) => true,
        }
    }

    /// Gives the lease up (a process that ends normally).
    pub fn release(self, store: &Store) {
        match self.hold {
            Hold::File(_) => {
                let path = Lease::dir(store.path()).join(format!("{}.lock", self.token));
                let _ = std::fs::remove_file(path);
            }
            Hold::Heartbeat(heartbeat) => heartbeat.stop(),
        }
    }
}
