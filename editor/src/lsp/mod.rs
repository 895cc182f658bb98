//! The language server (`flow lsp`): the protocol side, on tower-lsp-server. Each request
//! takes the document's analysis from the [`world::World`] and answers with a function
//! of it; the work runs on blocking threads, never on the protocol's event loop.
//!
//! Diagnostics are published when a document opens and, debounced, after changes: a
//! burst of keystrokes costs one analysis, [`DEBOUNCE`] after the last one.

pub mod complete;
pub mod convert;
pub mod features;
pub mod semantic;
pub mod stdlib_files;
pub mod workspace;
pub mod world;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

use world::World;

/// How long the server waits after a change before analysing, so typing stays smooth.
pub const DEBOUNCE: Duration = Duration::from_millis(75);

pub struct Backend {
    client: Client,
    world: Arc<Mutex<World>>,
    /// Per document, the number of the latest change; a debounced analysis runs only if
    /// no change came after the one that scheduled it.
    generations: Arc<Mutex<HashMap<String, u64>>>,
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    // A panic while holding the lock leaves a world that is still consistent (every
    // update is a single insert), so a poisoned lock is taken over, not propagated.
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Backend {
    pub fn new(client: Client) -> Backend {
        Backend {
            client,
            world: Arc::default(),
            generations: Arc::default(),
        }
    }

    /// Runs `f` on the document's analysis, off the event loop.
    async fn with_snapshot<T: Send + 'static>(
        &self,
        uri: &Uri,
        f: impl FnOnce(&world::Snapshot) -> T + Send + 'static,
    ) -> Option<T> {
        let world = self.world.clone();
        let uri = uri.clone();
        tokio::task::spawn_blocking(move || {
            let snapshot = snapshot_of(&world, &uri)?;
            Some(f(&snapshot))
        })
        .await
        .ok()
        .flatten()
    }

    /// Runs `f` on the document's text and syntax (no compilation), off the event loop.
    async fn with_syntax<T: Send + 'static>(
        &self,
        uri: &Uri,
        f: impl FnOnce(&str, &complete::Names<'_>) -> T + Send + 'static,
    ) -> Option<T> {
        let world = self.world.clone();
        let uri = uri.clone();
        tokio::task::spawn_blocking(move || {
            let (text, module, last_good, analysed) = {
                let mut world = lock(&world);
                let (text, module, last_good) = world.syntax(&uri)?;
                (text, module, last_good, world.latest_snapshot(&uri))
            };
            let names =
                complete::Names::new(&module, &last_good).with_analysis(analysed.as_deref(), &text);
            Some(f(&text, &names))
        })
        .await
        .ok()
        .flatten()
    }

    async fn publish(&self, uri: Uri) {
        publish(self.client.clone(), self.world.clone(), uri).await;
    }

    /// Publishes the document's diagnostics [`DEBOUNCE`] from now, unless another change
    /// comes first. The change handler returns at once, so edits are never queued
    /// behind an analysis.
    fn schedule(&self, uri: Uri, generation: u64) {
        let client = self.client.clone();
        let world = self.world.clone();
        let generations = self.generations.clone();
        tokio::spawn(async move {
            tokio::time::sleep(DEBOUNCE).await;
            let current = generations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(uri.as_str())
                .copied()
                .unwrap_or(0);
            if current == generation {
                publish(client, world, uri).await;
            }
        });
    }

    fn bump(&self, uri: &Uri) -> u64 {
        let mut generations = self.generations.lock().unwrap_or_else(|p| p.into_inner());
        let generation = generations.entry(uri.as_str().to_owned()).or_insert(0);
        *generation += 1;
        *generation
    }

    fn offset_position(&self, params: &TextDocumentPositionParams) -> (Uri, Position) {
        (params.text_document.uri.clone(), params.position)
    }
}

/// Analyses the document (if its analysis is stale) and sends its diagnostics.
async fn publish(client: Client, world: Arc<Mutex<World>>, uri: Uri) {
    let key = uri.clone();
    let world_for_syntax = world.clone();
    let result = tokio::task::spawn_blocking(move || {
        let snapshot = snapshot_of(&world, &key)?;
        Some((snapshot.version, features::diagnostics(&snapshot)))
    })
    .await
    .ok()
    .flatten();
    if let Some((version, diagnostics)) = result {
        client
            .publish_diagnostics(uri.clone(), diagnostics, Some(version))
            .await;
    }
    // Keep completion's syntax tree fresh, after the diagnostics are out.
    let _ = tokio::task::spawn_blocking(move || {
        let job = lock(&world_for_syntax).syntax_job(&uri);
        if let Some((version, text)) = job {
            let module = flow_grammar::parse(flow_grammar::FileId(0), &text).0;
            lock(&world_for_syntax).store_syntax(&uri, version, module);
        }
    })
    .await;
}

/// The document's analysis; a stale one is recomputed without holding the world's lock,
/// so other requests (completion above all) are not kept waiting behind a compilation.
fn snapshot_of(world: &Mutex<World>, uri: &Uri) -> Option<Arc<world::Snapshot>> {
    let prepared = lock(world).prepare(uri)?;
    match prepared {
        world::Prepared::Ready(snapshot) => Some(snapshot),
        world::Prepared::Job(job) => {
            let snapshot = job.run();
            Some(lock(world).store(snapshot))
        }
    }
}

/// The byte offset of `position` in `text`.
fn offset_in(text: &str, position: Position) -> usize {
    let file = flow_grammar::span::SourceFile::new(flow_grammar::FileId(0), "", text);
    convert::offset(&file, position)
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        #[allow(deprecated)]
        let mut roots: Vec<std::path::PathBuf> = params
            .workspace_folders
            .unwrap_or_default()
            .iter()
            .filter_map(|f| f.uri.to_file_path())
            .map(|p| p.into_owned())
            .collect();
        #[allow(deprecated)]
        if roots.is_empty()
            && let Some(root) = params.root_uri.as_ref().and_then(|u| u.to_file_path())
        {
            roots.push(root.into_owned());
        }
        lock(&self.world).set_workspace_roots(roots);
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                text_document_sync: Some(TextDocumentSyncCapability::Kind(
                    TextDocumentSyncKind::FULL,
                )),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                rename_provider: Some(OneOf::Right(RenameOptions {
                    prepare_provider: Some(true),
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                })),
                document_symbol_provider: Some(OneOf::Left(true)),
                document_formatting_provider: Some(OneOf::Left(true)),
                completion_provider: Some(CompletionOptions {
                    trigger_characters: Some(vec![".".into(), "(".into(), ",".into(), " ".into()]),
                    ..CompletionOptions::default()
                }),
                signature_help_provider: Some(SignatureHelpOptions {
                    trigger_characters: Some(vec!["(".into(), ",".into()]),
                    retrigger_characters: Some(vec![":".into()]),
                    work_done_progress_options: WorkDoneProgressOptions::default(),
                }),
                semantic_tokens_provider: Some(
                    SemanticTokensServerCapabilities::SemanticTokensOptions(
                        SemanticTokensOptions {
                            legend: semantic::legend(),
                            full: Some(SemanticTokensFullOptions::Bool(true)),
                            range: None,
                            work_done_progress_options: WorkDoneProgressOptions::default(),
                        },
                    ),
                ),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "flow".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            ..InitializeResult::default()
        })
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        lock(&self.world).open(doc.uri.clone(), doc.text, doc.version);
        self.bump(&doc.uri);
        self.publish(doc.uri).await;
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = params.text_document.uri;
        // Full sync: the last change holds the whole text.
        let Some(change) = params.content_changes.into_iter().last() else {
            return;
        };
        lock(&self.world).change(&uri, change.text, params.text_document.version);
        let importers = lock(&self.world).invalidate_importers(&uri);
        let generation = self.bump(&uri);
        self.schedule(uri, generation);
        // Files that import the changed one (through `import "./file.flow"`) are checked
        // again against its unsaved text.
        for importer in importers {
            let generation = self.bump(&importer);
            self.schedule(importer, generation);
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        lock(&self.world).close(&uri);
        self.generations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(uri.as_str());
        self.client.publish_diagnostics(uri, Vec::new(), None).await;
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let (uri, position) = self.offset_position(&params.text_document_position_params);
        Ok(self
            .with_snapshot(&uri, move |s| features::hover(s, position))
            .await
            .flatten())
    }

    async fn goto_definition(
        &self,
        params: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let (uri, position) = self.offset_position(&params.text_document_position_params);
        let location = self
            .with_snapshot(&uri, move |s| features::definition(s, position))
            .await
            .flatten();
        Ok(location.map(GotoDefinitionResponse::Scalar))
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let (uri, position) = self.offset_position(&params.text_document_position);
        let include = params.context.include_declaration;
        let workspace = lock(&self.world).workspace();
        Ok(self
            .with_snapshot(&uri, move |s| {
                features::references(s, position, include, &workspace)
            })
            .await)
    }

    async fn prepare_rename(
        &self,
        params: TextDocumentPositionParams,
    ) -> Result<Option<PrepareRenameResponse>> {
        let (uri, position) = self.offset_position(&params);
        Ok(self
            .with_snapshot(&uri, move |s| features::prepare_rename(s, position))
            .await
            .flatten())
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let (uri, position) = self.offset_position(&params.text_document_position);
        let new_name = params.new_name;
        let workspace = lock(&self.world).workspace();
        match self
            .with_snapshot(&uri, move |s| {
                features::rename(s, position, &new_name, &workspace)
            })
            .await
        {
            Some(Ok(edit)) => Ok(Some(edit)),
            Some(Err(e)) => Err(Error::invalid_params(e.to_string())),
            None => Ok(None),
        }
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let uri = params.text_document.uri;
        let symbols = self.with_snapshot(&uri, features::document_symbols).await;
        Ok(symbols.map(DocumentSymbolResponse::Nested))
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let uri = params.text_document.uri;
        Ok(self
            .with_snapshot(&uri, features::formatting)
            .await
            .flatten())
    }

    async fn semantic_tokens_full(
        &self,
        params: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        let uri = params.text_document.uri;
        let tokens = self.with_snapshot(&uri, semantic::tokens).await;
        Ok(tokens.map(SemanticTokensResult::Tokens))
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let (uri, position) = self.offset_position(&params.text_document_position);
        let items = self
            .with_syntax(&uri, move |text, names| {
                complete::completion(text, offset_in(text, position), names)
            })
            .await;
        Ok(items.map(CompletionResponse::Array))
    }

    async fn signature_help(&self, params: SignatureHelpParams) -> Result<Option<SignatureHelp>> {
        let (uri, position) = self.offset_position(&params.text_document_position_params);
        let help = self
            .with_syntax(&uri, move |text, names| {
                complete::signature_help(text, offset_in(text, position), names)
            })
            .await;
        Ok(help.flatten())
    }
}

/// Serves the protocol on standard input and output until the client says `exit`.
pub async fn serve_stdio() {
    let (service, socket) = LspService::new(Backend::new);
    Server::new(tokio::io::stdin(), tokio::io::stdout(), socket)
        .serve(service)
        .await;
}

/// Serves the protocol over any byte streams (tests run the server in-process this way).
pub async fn serve<I, O>(input: I, output: O)
where
    I: tokio::io::AsyncRead + Unpin,
    O: tokio::io::AsyncWrite,
{
    let (service, socket) = LspService::new(Backend::new);
    Server::new(input, output, socket).serve(service).await;
}
