//! A process's executor lease on a store: a lock file the kernel releases when the
//! process dies.

use super::*;

/// A process's claim on the runs it executes. The lock file stays locked while the
/// process lives; the kernel releases it when the process dies, however it dies, which
/// is how another process tells a crashed executor's runs from a live one's.
pub struct Lease {
    pub token: String,
    _file: std::fs::File,
}

impl Lease {
    fn dir(store: &Path) -> PathBuf {
        let mut name = store
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".executors");
        store.with_file_name(name)
    }

    /// Takes a new lease for this process.
    pub fn acquire(store: &Path) -> Result<Lease, StoreError> {
        let dir = Lease::dir(store);
        std::fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
            path: dir.clone(),
            source,
        })?;
        let token = format!("{}-{:016x}", std::process::id(), fastrand::u64(..));
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
        Ok(Lease { token, _file: file })
    }

    /// Whether the executor holding `token` is still alive. A dead one's lock file is
    /// removed.
    pub fn is_alive(store: &Path, token: &str) -> bool {
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

    pub fn release(self, store: &Path) {
        let path = Lease::dir(store).join(format!("{}.lock", self.token));
        let _ = std::fs::remove_file(path);
    }
}
