//! The standard library's sources, which live inside the binary, written once to a
//! read-only directory so that "go to definition" into `slack.post_message` opens a real
//! file in any editor, with no client-side support needed.
//!
//! The directory name carries a hash of the sources, so two Flow versions never share
//! one and a stale copy is never shown.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static DIRECTORY: OnceLock<Option<PathBuf>> = OnceLock::new();

/// The read-only copy of the stdlib module `name`, written on first use.
pub fn path_of(name: &str) -> Option<PathBuf> {
    flow_stdlib::module(name)?;
    let dir = DIRECTORY.get_or_init(|| write_all().ok()).as_ref()?;
    Some(dir.join(format!("{name}.flow")))
}

/// Whether `path` is one of the read-only stdlib copies.
pub fn is_stdlib_copy(path: &Path) -> bool {
    DIRECTORY
        .get()
        .and_then(|d| d.as_ref())
        .is_some_and(|dir| path.starts_with(dir))
}

fn write_all() -> std::io::Result<PathBuf> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for module in flow_stdlib::MODULES {
        for byte in module.name.bytes().chain(module.source.bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    let dir = std::env::temp_dir().join(format!(
        "flow-stdlib-{}-{hash:016x}",
        env!("CARGO_PKG_VERSION")
    ));
    std::fs::create_dir_all(&dir)?;
    for module in flow_stdlib::MODULES {
        let path = dir.join(format!("{}.flow", module.name));
        if std::fs::read_to_string(&path).is_ok_and(|text| text == module.source) {
            continue;
        }
        if let Ok(meta) = std::fs::metadata(&path) {
            let mut permissions = meta.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            std::fs::set_permissions(&path, permissions)?;
        }
        std::fs::write(&path, module.source)?;
        let mut permissions = std::fs::metadata(&path)?.permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(&path, permissions)?;
    }
    Ok(dir)
}
