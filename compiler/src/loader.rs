//! How the compiler gets the files a program imports: a [`Loader`] the caller provides
//! (the CLI reads the file system, the language server its open buffers, tests memory).
//! Standard-library modules never go through the loader: they are embedded in
//! `flow-stdlib`.

use std::collections::HashMap;

/// A file found by a [`Loader`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedFile {
    /// The file's canonical name: two imports of the same file must give the same name
    /// (it identifies the module and is shown in diagnostics).
    pub name: String,
    /// The raw content; invalid UTF-8 is reported by the compiler, not the loader.
    pub bytes: Vec<u8>,
}

/// Why an imported file could not be loaded; the message is shown to the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("no file `{0}`")]
    NotFound(String),
    #[error("cannot read `{path}`: {reason}")]
    Unreadable { path: String, reason: String },
}

/// Resolves and reads imported files.
pub trait Loader {
    /// Loads `path`, as written in `import "PATH"` in the module named `from` (a name
    /// this loader returned earlier, or the root file's name).
    fn load(&mut self, from: &str, path: &str) -> Result<LoadedFile, LoadError>;
}

/// A loader over files held in memory, keyed by name; paths are joined to the
/// importing file's directory and normalised (`.` and `..` removed), with `/` separators.
#[derive(Clone, Debug, Default)]
pub struct MemoryLoader {
    pub files: HashMap<String, String>,
}

impl MemoryLoader {
    pub fn new() -> MemoryLoader {
        MemoryLoader::default()
    }

    pub fn with(mut self, name: impl Into<String>, text: impl Into<String>) -> MemoryLoader {
        self.files.insert(name.into(), text.into());
        self
    }
}

impl Loader for MemoryLoader {
    fn load(&mut self, from: &str, path: &str) -> Result<LoadedFile, LoadError> {
        let name = join_relative(from, path);
        match self.files.get(&name) {
            Some(text) => Ok(LoadedFile {
                name,
                bytes: text.clone().into_bytes(),
            }),
            None => Err(LoadError::NotFound(name)),
        }
    }
}

/// `path` relative to the directory of the file `from`, normalised with `/` separators.
/// An absolute `path` is kept as is (normalised).
pub fn join_relative(from: &str, path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if !path.starts_with('/') {
        let dir = match from.rfind('/') {
            Some(i) => &from[..i],
            None => "",
        };
        parts.extend(dir.split('/').filter(|p| !p.is_empty() && *p != "."));
    }
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !from.starts_with('/') {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') || (from.starts_with('/') && !path.starts_with('/')) {
        format!("/{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_to_the_importing_directory() {
        assert_eq!(
            join_relative("examples/a.flow", "./common.flow"),
            "examples/common.flow"
        );
        assert_eq!(
            join_relative("examples/a.flow", "../lib/x.flow"),
            "lib/x.flow"
        );
        assert_eq!(join_relative("a.flow", "./b.flow"), "b.flow");
        assert_eq!(join_relative("a.flow", "../b.flow"), "../b.flow");
        assert_eq!(join_relative("/w/a.flow", "./b/c.flow"), "/w/b/c.flow");
        assert_eq!(join_relative("x/a.flow", "/abs/b.flow"), "/abs/b.flow");
    }
}
