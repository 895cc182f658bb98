//! The server's state, without any protocol machinery: the open documents and, for each,
//! the latest analysis (a compilation of the document as a root file, with its imports
//! and the stdlib modules it uses). Every editor feature is a function of a [`Snapshot`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use flow_compiler::loader::join_relative;
use flow_compiler::{Compilation, LoadError, LoadedFile, Loader, compile_incremental};
use flow_grammar::ast::{Item, Module};
use flow_grammar::span::SourceFile;
use flow_grammar::{FileId, ParseCache, SourceMap, parse};
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
    last_good: HashMap<String, (HashMap<String, Item>, Arc<Vec<Item>>)>,
    /// For each document, the items its last analysis parsed (its own and those of the
    /// files and stdlib modules it imports), so that an analysis after an edit parses
    /// only the items whose text changed.
    parse_caches: HashMap<String, Arc<Mutex<ParseCache>>>,
    /// The workspace folders the client named, scanned for workspace-wide references.
    roots: Vec<PathBuf>,
}

impl World {
    pub fn set_workspace_roots(&mut self, roots: Vec<PathBuf>) {
        self.roots = roots;
    }

    /// The workspace folders and the open documents' texts, for a scan off the lock.
    pub fn workspace(&self) -> super::workspace::Workspace {
        super::workspace::Workspace {
            roots: self.roots.clone(),
            open: self
                .documents
                .values()
                .map(|d| (d.name.clone(), d.text.clone()))
                .collect(),
        }
    }

    pub fn open(&mut self, uri: Uri, text: String, version: i32) {
        let name = name_of(&uri);
        let key = uri.as_str().to_owned();
        self.parse_caches.entry(key.clone()).or_default();
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
        self.parse_caches.remove(uri.as_str());
    }

    /// The document's current text, its latest syntax tree and the last good version of
    /// every item, for completion. The tree is reparsed only when none exists yet;
    /// otherwise it may be a few keystrokes old (the debounced analysis refreshes it with
    /// [`World::refresh_syntax`]), which completion tolerates: it reads the text around
    /// the cursor from the current text and only names from the tree.
    pub fn syntax(&mut self, uri: &Uri) -> Option<(Arc<str>, Arc<Module>, Arc<Vec<Item>>)> {
        let key = uri.as_str();
        if !self.parsed.contains_key(key) {
            self.refresh_syntax(uri);
        }
        let doc = self.documents.get(key)?;
        let (_, module) = self.parsed.get(key)?;
        let last_good = self
            .last_good
            .get(key)
            .map(|(_, items)| items.clone())
            .unwrap_or_default();
        Some((doc.text.clone(), module.clone(), last_good))
    }

    /// Parses the document's current text (when not parsed yet) and updates the last
    /// good version of each item.
    pub fn refresh_syntax(&mut self, uri: &Uri) {
        if let Some((version, text)) = self.syntax_job(uri) {
            let module = parse(FileId(0), &text).0;
            self.store_syntax(uri, version, module);
        }
    }

    /// The version and text to parse when the syntax tree is out of date.
    pub fn syntax_job(&self, uri: &Uri) -> Option<(i32, Arc<str>)> {
        let doc = self.documents.get(uri.as_str())?;
        match self.parsed.get(uri.as_str()) {
            Some((version, _)) if *version >= doc.version => None,
            _ => Some((doc.version, doc.text.clone())),
        }
    }

    /// Keeps a syntax tree of `version` unless a newer one is stored.
    pub fn store_syntax(&mut self, uri: &Uri, version: i32, module: Module) {
        let key = uri.as_str();
        if self.parsed.get(key).is_some_and(|(v, _)| *v >= version) {
            return;
        }
        let (good, _) = self.last_good.entry(key.to_owned()).or_default();
        for item in &module.items {
            good.insert(item_key(item), item.clone());
        }
        let items = Arc::new(good.values().cloned().collect());
        if let Some(entry) = self.last_good.get_mut(key) {
            entry.1 = items;
        }
        self.parsed
            .insert(key.to_owned(), (version, Arc::new(module)));
    }

    /// The other open documents that import files, whose analyses may depend on the
    /// document that just changed; their cached analyses are dropped.
    pub fn invalidate_importers(&mut self, changed: &Uri) -> Vec<Uri> {
        let importers: Vec<Uri> = self
            .documents
            .values()
            .filter(|d| d.uri.as_str() != changed.as_str() && d.text.contains("import \""))
            .map(|d| d.uri.clone())
            .collect();
        for uri in &importers {
            self.snapshots.remove(uri.as_str());
        }
        importers
    }

    pub fn document(&self, uri: &Uri) -> Option<&Document> {
        self.documents.get(uri.as_str())
    }

    pub fn version(&self, uri: &Uri) -> Option<i32> {
        self.document(uri).map(|d| d.version)
    }

    /// The latest analysis of the document, whatever text it was made from (completion
    /// reads types from it rather than wait for a new one).
    pub fn latest_snapshot(&self, uri: &Uri) -> Option<Arc<Snapshot>> {
        self.snapshots.get(uri.as_str()).cloned()
    }

    /// The analysis of the document's current text, computed when the cached one is stale.
    pub fn snapshot(&mut self, uri: &Uri) -> Option<Arc<Snapshot>> {
        match self.prepare(uri)? {
            Prepared::Ready(snapshot) => Some(snapshot),
            Prepared::Job(job) => Some(self.store(job.run())),
        }
    }

    /// The cached analysis when it is current, else the work to compute it, which holds
    /// copies of what it needs so it can run without the world (and its lock).
    pub fn prepare(&self, uri: &Uri) -> Option<Prepared> {
        let doc = self.documents.get(uri.as_str())?;
        if let Some(snapshot) = self.snapshots.get(uri.as_str())
            && snapshot.version == doc.version
        {
            return Some(Prepared::Ready(snapshot.clone()));
        }
        let open = self
            .documents
            .values()
            .map(|d| (d.name.clone(), d.text.clone()))
            .collect();
        let parse_cache = self
            .parse_caches
            .get(uri.as_str())
            .cloned()
            .unwrap_or_default();
        Some(Prepared::Job(AnalysisJob {
            document: doc.clone(),
            open,
            parse_cache,
        }))
    }

    /// Keeps an analysis, unless a newer one was stored meanwhile; returns the newest.
    pub fn store(&mut self, snapshot: Snapshot) -> Arc<Snapshot> {
        let key = snapshot.uri.as_str().to_owned();
        if let Some(existing) = self.snapshots.get(&key)
            && existing.version > snapshot.version
        {
            return existing.clone();
        }
        let snapshot = Arc::new(snapshot);
        self.snapshots.insert(key, snapshot.clone());
        snapshot
    }
}

pub enum Prepared {
    Ready(Arc<Snapshot>),
    Job(AnalysisJob),
}

/// Compiling one version of a document, detached from the world.
pub struct AnalysisJob {
    document: Document,
    open: Vec<(String, Arc<str>)>,
    parse_cache: Arc<Mutex<ParseCache>>,
}

impl AnalysisJob {
    pub fn run(self) -> Snapshot {
        let doc = self.document;
        let mut sources = SourceMap::new();
        let root = sources.add(doc.name.clone(), doc.text.to_string());
        let open: HashMap<&str, &str> = self
            .open
            .iter()
            .map(|(name, text)| (name.as_str(), &**text))
            .collect();
        let mut loader = WorldLoader { open };
        // A poisoned cache only means an earlier analysis panicked midway; its entries
        // are still whole items, and a wrong reuse is impossible (keys are texts).
        let mut cache = self
            .parse_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let compilation = compile_incremental(&mut sources, root, &mut loader, &mut cache);
        drop(cache);
        Snapshot {
            uri: doc.uri,
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
pub(super) struct WorldLoader<'a> {
    pub open: HashMap<&'a str, &'a str>,
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
