//! Workspace-wide references: every `.flow` file under the workspace folders, compiled
//! as a root file (open documents with their unsaved text), for the uses of a name that
//! other files can import (a workflow, a type, a constant, an integration and its
//! actions and events). Names local to a workflow never leave their file, so they are
//! answered from the document's own analysis.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use flow_compiler::analysis::SymbolKind;
use flow_compiler::compile;
use flow_grammar::{SourceMap, Span};
use tower_lsp_server::ls_types::Location;

use super::convert;
use super::world::{Snapshot, WorldLoader, uri_of_name};

/// Most files scanned in one request; a workspace beyond it is scanned in part.
const MAX_FILES: usize = 5_000;
/// Folders never scanned: build output, dependencies, version control.
const SKIPPED_FOLDERS: &[&str] = &["target", "node_modules", ".git", ".hg", ".svn"];

/// The workspace folders and the open documents' texts, copied out of the world so a
/// scan runs without holding its lock.
#[derive(Clone, Default)]
pub struct Workspace {
    pub roots: Vec<PathBuf>,
    /// Open documents by the compiler's name for them (their path).
    pub open: Vec<(String, Arc<str>)>,
}

/// Whether uses of a name of this kind can be in other files.
pub fn crosses_files(kind: SymbolKind) -> bool {
    matches!(
        kind,
        SymbolKind::Type
            | SymbolKind::Const
            | SymbolKind::Workflow
            | SymbolKind::Integration
            | SymbolKind::Action
            | SymbolKind::Event
    )
}

impl Workspace {
    /// Every use in another workspace file of what `definition` (a span of `snapshot`'s
    /// sources) defines, the definition itself excluded.
    pub fn references(&self, snapshot: &Snapshot, definition: Span, name: &str) -> Vec<Location> {
        let Some(defining) = snapshot.sources.get(definition.file) else {
            return Vec::new();
        };
        let defining_name = defining.name.clone();
        let own = snapshot.file().map(|f| f.name.clone()).unwrap_or_default();
        let open: HashMap<&str, &str> = self
            .open
            .iter()
            .map(|(name, text)| (name.as_str(), &**text))
            .collect();
        let mut found = Vec::new();
        for path in flow_files(&self.roots) {
            let file_name = path.to_string_lossy().into_owned();
            if file_name == own {
                continue;
            }
            let text = match open.get(file_name.as_str()) {
                Some(text) => (*text).to_owned(),
                None => match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(_) => continue,
                },
            };
            // A file that never writes the name cannot refer to it.
            if !text.contains(name) {
                continue;
            }
            let mut sources = SourceMap::new();
            let root = sources.add(file_name.clone(), text);
            let mut loader = WorldLoader { open: open.clone() };
            let compilation = compile(&mut sources, root, &mut loader);
            let Some(source) = sources.get(root) else {
                continue;
            };
            for r in &compilation.analysis.references {
                let same_definition = sources
                    .get(r.definition.file)
                    .is_some_and(|f| f.name == defining_name)
                    && r.definition.start == definition.start
                    && r.definition.end == definition.end;
                if r.span.file != root || !same_definition || r.span == r.definition {
                    continue;
                }
                if let Some(uri) = uri_of_name(&file_name) {
                    found.push(Location::new(uri, convert::range(source, r.span)));
                }
            }
        }
        found
    }
}

/// The `.flow` files under `roots`, in a stable order.
pub fn flow_files(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = roots.to_vec();
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for path in entries {
            if files.len() >= MAX_FILES {
                return files;
            }
            if path.is_dir() {
                if !skipped(&path) {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "flow") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn skipped(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| SKIPPED_FOLDERS.contains(&n) || n.starts_with('.'))
}
