//! The server's state, without any protocol machinery: the open documents and, for each,
//! the latest analysis (a compilation of the document as a root file, with its imports
//! and the stdlib modules it uses). Every editor feature is a function of a [`Snapshot`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use flow_compiler::loader::join_relative;
use flow_compiler::{Compilation, LoadError, LoadedFile, Loader, compile};
use flow_grammar::ast::{Item, Module};
use flow_grammar::span::SourceFile;
use flow_grammar::{FileId, SourceMap, parse};
use tower_lsp_server::ls_types::Uri;

use super::complete::item_key;
use super::stdlib_files;

/// One open document.
#[derive(Clone, Debug)]
pub struct Document {
    pub uri: Uri,
    /// The name the compiler knows it by: its path for `file:` documents, else the URI.
    pub name: String,
    pub text: Arc<str>,
    pub version: i32,
}

/// Everything known about one version of a document.
pub struct Snapshot {
    pub uri: Uri,
    pub version: i32,
    pub sources: SourceMap,
    pub root: FileId,
    pub compilation: Compilation,
    /// The root file's syntax tree, parsed on first use (completion, symbols).
    module: OnceLock<Module>,
}

impl Snapshot {
    pub fn file(&self) -> Option<&SourceFile> {
        self.sources.get(self.root)
    }

    pub fn text(&self) -> &str {
        self.file().map_or("", |f| f.text.as_str())
    }

    pub fn module(&self) -> &Module {
        self.module.get_or_init(|| parse(self.root, self.text()).0)
    }

    /// The URI of a file of this compilation: a path, or a stdlib module (served from its
    /// read-only copy on disk).
    pub fn uri_of(&self, file: FileId) -> Option<Uri> {
        let source = self.sources.get(file)?;
        if file == self.root {
            return Some(self.uri.clone());
        }
        uri_of_name(&source.name)
    }
}

/// The URI for a file name the compiler uses.
pub fn uri_of_name(name: &str) -> Option<Uri> {
    if let Some(module) = name
        .strip_prefix("<stdlib>/")
        .and_then(|n| n.strip_suffix(".flow"))
    {
        return stdlib_files::path_of(module).and_then(Uri::from_file_path);
    }
    if name.starts_with('/') {
        return Uri::from_file_path(name);
    }
    name.parse().ok()
}

/// The open documents and their latest analyses.
#[derive(Default)]
pub struct World {
    documents: HashMap<String, Document>,
    snapshots: HashMap<String, Arc<Snapshot>>,
    /// The syntax tree of each document's current version, for completion.
    parsed: HashMap<String, (i32, Arc<Module>)>,
    /// For each document, the last version of each item that parsed, so completion
    /// still knows a workflow's steps while the workflow is being edited.
    last_good: HashMap<String, HashMap<String, Item>>,
}

impl World {
    pub fn open(&mut self, uri: Uri, text: String, version: i32) {
        let name = name_of(&uri);
        let key = uri.as_str().to_owned();
        self.documents.insert(
            key,
            Document {
                uri,
                name,
                text: text.into(),
                version,
            },
        );
    }

    /// Replaces a document's text (the server asks for whole-document sync).
    pub fn change(&mut self, uri: &Uri, text: String, version: i32) {
        if let Some(doc) = self.documents.get_mut(uri.as_str()) {
            doc.text = text.into();
            doc.version = version;
        } else {
            self.open(uri.clone(), text, version);
        }
    }

    pub fn close(&mut self, uri: &Uri) {
        self.documents.remove(uri.as_str());
        self.snapshots.remove(uri.as_str());
        self.parsed.remove(uri.as_str());
        self.last_good.remove(uri.as_str());
    }

    /// The document's text, its current syntax tree and the last good version of items
    /// that do not parse now. Parsing only: no compilation.
    pub fn syntax(&mut self, uri: &Uri) -> Option<(Arc<str>, Arc<Module>, Vec<Item>)> {
        let doc = self.documents.get(uri.as_str())?;
        let key = uri.as_str();
        let module = match self.parsed.get(key) {
            Some((version, module)) if *version == doc.version => module.clone(),
            _ => {
                let module = Arc::new(parse(FileId(0), &doc.text).0);
                self.parsed
                    .insert(key.to_owned(), (doc.version, module.clone()));
                let good = self.last_good.entry(key.to_owned()).or_default();
                for item in &module.items {
                    good.insert(item_key(item), item.clone());
                }
                module
            }
        };
        let last_good = self
            .last_good
            .get(key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        Some((doc.text.clone(), module, last_good))
    }

    pub fn document(&self, uri: &Uri) -> Option<&Document> {
        self.documents.get(uri.as_str())
    }

    pub fn version(&self, uri: &Uri) -> Option<i32> {
        self.document(uri).map(|d| d.version)
    }

    /// The analysis of the document's current text, computed when the cached one is stale.
    pub fn snapshot(&mut self, uri: &Uri) -> Option<Arc<Snapshot>> {
        let doc = self.documents.get(uri.as_str())?;
        if let Some(snapshot) = self.snapshots.get(uri.as_str())
            && snapshot.version == doc.version
        {
            return Some(snapshot.clone());
        }
        let snapshot = Arc::new(self.analyze(doc));
        self.snapshots
            .insert(uri.as_str().to_owned(), snapshot.clone());
        Some(snapshot)
    }

    fn analyze(&self, doc: &Document) -> Snapshot {
        let mut sources = SourceMap::new();
        let root = sources.add(doc.name.clone(), doc.text.to_string());
        let open: HashMap<&str, &str> = self
            .documents
            .values()
            .map(|d| (d.name.as_str(), &*d.text))
            .collect();
        let mut loader = WorldLoader { open };
        let compilation = compile(&mut sources, root, &mut loader);
        Snapshot {
            uri: doc.uri.clone(),
            version: doc.version,
            sources,
            root,
            compilation,
            module: OnceLock::new(),
        }
    }
}

/// The compiler's name for a document.
fn name_of(uri: &Uri) -> String {
    if let Some(path) = uri.to_file_path() {
        return path.to_string_lossy().into_owned();
    }
    uri.as_str().to_owned()
}

/// Imports resolve to open documents first (their unsaved text), then to the disk.
struct WorldLoader<'a> {
    open: HashMap<&'a str, &'a str>,
}

impl Loader for WorldLoader<'_> {
    fn load(&mut self, from: &str, path: &str) -> Result<LoadedFile, LoadError> {
        let name = join_relative(from, path);
        if let Some(text) = self.open.get(name.as_str()) {
            return Ok(LoadedFile {
                name,
                bytes: text.as_bytes().to_vec(),
            });
        }
        match std::fs::read(PathBuf::from(&name)) {
            Ok(bytes) => Ok(LoadedFile { name, bytes }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LoadError::NotFound(name)),
            Err(e) => Err(LoadError::Unreadable {
                path: name,
                reason: e.to_string(),
            }),
        }
    }
}
