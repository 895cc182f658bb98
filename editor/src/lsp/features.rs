//! The navigation features, answered from a [`Snapshot`]: diagnostics, hover, go to
//! definition, find references, rename, the document outline and formatting. Names,
//! definitions and hover texts come from the compiler's analysis index.

use std::collections::HashMap;

use flow_compiler::analysis::{self, Reference, SymbolKind};
use flow_grammar::tokens::is_keyword;
use tower_lsp_server::ls_types::{
    self as lsp, DocumentSymbol, Hover, HoverContents, Location, MarkupContent, MarkupKind,
    Position, PrepareRenameResponse, Range, TextEdit, Uri, WorkspaceEdit,
};

use super::convert;
use super::workspace::{Workspace, crosses_files};
use super::world::{Snapshot, uri_of_name};
use crate::format::format_source;

/// The diagnostics of the document itself (its imports report in their own documents).
pub fn diagnostics(snapshot: &Snapshot) -> Vec<lsp::Diagnostic> {
    let Some(file) = snapshot.file() else {
        return Vec::new();
    };
    let uri_of = |name: &str| -> Option<Uri> {
        if name == file.name {
            Some(snapshot.uri.clone())
        } else {
            uri_of_name(name)
        }
    };
    snapshot
        .compilation
        .diagnostics
        .iter()
        .filter(|d| d.span.file == snapshot.root)
        .map(|d| convert::diagnostic(&snapshot.sources, file, d, &uri_of))
        .collect()
}

fn reference_at(snapshot: &Snapshot, position: Position) -> Option<&Reference> {
    let file = snapshot.file()?;
    let offset = convert::offset(file, position);
    snapshot.compilation.analysis.at(snapshot.root, offset)
}

fn location(snapshot: &Snapshot, span: flow_grammar::Span) -> Option<Location> {
    let file = snapshot.sources.get(span.file)?;
    Some(Location::new(
        snapshot.uri_of(span.file)?,
        convert::range(file, span),
    ))
}

/// The outline entry whose name is at `position`: declarations the index has no
/// reference for (a type's own name, say).
fn declaration_at(snapshot: &Snapshot, position: Position) -> Option<&analysis::DocumentSymbol> {
    let file = snapshot.file()?;
    let offset = convert::offset(file, position);
    fn find(
        symbols: &[analysis::DocumentSymbol],
        offset: usize,
    ) -> Option<&analysis::DocumentSymbol> {
        symbols.iter().find_map(|s| {
            if s.name_span.contains(offset) {
                Some(s)
            } else if s.span.contains(offset) {
                find(&s.children, offset)
            } else {
                None
            }
        })
    }
    let own: Vec<analysis::DocumentSymbol> = snapshot
        .compilation
        .analysis
        .symbols_of(snapshot.root)
        .cloned()
        .collect();
    let found = find(&own, offset)?;
    snapshot.compilation.analysis.symbols.iter().find_map(|s| {
        if s.name_span == found.name_span {
            Some(s)
        } else {
            fn inner(
                s: &analysis::DocumentSymbol,
                span: flow_grammar::Span,
            ) -> Option<&analysis::DocumentSymbol> {
                s.children.iter().find_map(|c| {
                    if c.name_span == span {
                        Some(c)
                    } else {
                        inner(c, span)
                    }
                })
            }
            inner(s, found.name_span)
        }
    })
}

/// A declaration as written, for hover on its own name: `type T = {...}`, a workflow's
/// signature, with its doc comment.
fn declaration_text(
    snapshot: &Snapshot,
    name: flow_grammar::Span,
) -> Option<(String, Option<String>)> {
    use super::complete::type_text;
    use flow_grammar::ast::Item;
    snapshot.module().items.iter().find_map(|item| match item {
        Item::Type(t) if t.name.span == name => Some((
            format!("type {} = {}", t.name.name, type_text(&t.ty)),
            t.doc.clone(),
        )),
        Item::Workflow(w) if w.name.span == name => {
            let params: Vec<String> = w
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name.name, type_text(&p.ty)))
                .collect();
            let result = w
                .result
                .as_ref()
                .map(|r| format!(" -> {}", type_text(r)))
                .unwrap_or_default();
            Some((
                format!("workflow {}({}){result}", w.name.name, params.join(", ")),
                w.doc.clone(),
            ))
        }
        Item::Const(c) if c.name.span == name => {
            let ty =
                c.ty.as_ref()
                    .map(|t| format!(": {}", type_text(t)))
                    .unwrap_or_default();
            Some((format!("const {}{ty}", c.name.name), c.doc.clone()))
        }
        Item::Integration(i) if i.name.span == name => {
            Some((format!("integration {}", i.name.name), i.doc.clone()))
        }
        _ => None,
    })
}

pub fn hover(snapshot: &Snapshot, position: Position) -> Option<Hover> {
    let Some(reference) = reference_at(snapshot, position) else {
        let symbol = declaration_at(snapshot, position)?;
        let file = snapshot.file()?;
        let (signature, doc) = match declaration_text(snapshot, symbol.name_span) {
            Some(found) => found,
            None if symbol.detail.is_empty() => {
                (format!("{} {}", kind_word(symbol.kind), symbol.name), None)
            }
            None => (
                format!(
                    "{} {}: {}",
                    kind_word(symbol.kind),
                    symbol.name,
                    symbol.detail
                ),
                None,
            ),
        };
        let mut value = format!("```flow\n{signature}\n```");
        if let Some(doc) = doc.filter(|d| !d.trim().is_empty()) {
            value.push_str("\n\n---\n\n");
            value.push_str(&doc);
        }
        return Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value,
            }),
            range: Some(convert::range(file, symbol.name_span)),
        });
    };
    let file = snapshot.file()?;
    let signature = if reference.hover.is_empty() {
        format!("{} {}", kind_word(reference.kind), reference.name)
    } else {
        reference.hover.clone()
    };
    let mut value = format!("```flow\n{signature}\n```");
    if let Some(doc) = reference.doc.as_deref().filter(|d| !d.trim().is_empty()) {
        value.push_str("\n\n---\n\n");
        value.push_str(doc);
    }
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value,
        }),
        range: Some(convert::range(file, reference.span)),
    })
}

pub fn definition(snapshot: &Snapshot, position: Position) -> Option<Location> {
    let reference = reference_at(snapshot, position)?;
    location(snapshot, reference.definition)
}

pub fn references(
    snapshot: &Snapshot,
    position: Position,
    include_declaration: bool,
    workspace: &Workspace,
) -> Vec<Location> {
    let Some(reference) = reference_at(snapshot, position) else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    let mut locations: Vec<(flow_grammar::Span, Location)> = snapshot
        .compilation
        .analysis
        .references_to(reference.definition)
        .filter(|r| include_declaration || r.span != reference.definition)
        .filter(|r| seen.insert(r.span))
        .filter_map(|r| Some((r.span, location(snapshot, r.span)?)))
        .collect();
    if include_declaration
        && seen.insert(reference.definition)
        && let Some(l) = location(snapshot, reference.definition)
    {
        locations.push((reference.definition, l));
    }
    locations.sort_by_key(|(span, _)| (span.file, span.start));
    let mut found: Vec<Location> = locations.into_iter().map(|(_, l)| l).collect();
    if crosses_files(reference.kind) && !in_stdlib(snapshot, reference.definition) {
        for l in workspace.references(snapshot, reference.definition, &reference.name) {
            if !found.contains(&l) {
                found.push(l);
            }
        }
    }
    found
}

/// What can be renamed: names defined in the user's files, never in the standard library.
fn renamable(kind: SymbolKind) -> bool {
    matches!(
        kind,
        SymbolKind::Step
            | SymbolKind::Type
            | SymbolKind::Const
            | SymbolKind::Let
            | SymbolKind::Param
            | SymbolKind::Workflow
    )
}

fn in_stdlib(snapshot: &Snapshot, span: flow_grammar::Span) -> bool {
    snapshot
        .sources
        .get(span.file)
        .is_none_or(|f| f.name.starts_with("<stdlib>/"))
}

pub fn prepare_rename(snapshot: &Snapshot, position: Position) -> Option<PrepareRenameResponse> {
    let reference = reference_at(snapshot, position)?;
    if !renamable(reference.kind) || in_stdlib(snapshot, reference.definition) {
        return None;
    }
    let file = snapshot.file()?;
    Some(PrepareRenameResponse::RangeWithPlaceholder {
        range: convert::range(file, reference.span),
        placeholder: reference.name.clone(),
    })
}

#[derive(Debug, PartialEq, Eq)]
pub enum RenameError {
    NotRenamable,
    InvalidName(String),
}

impl std::fmt::Display for RenameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenameError::NotRenamable => {
                f.write_str("only steps, types, consts, lets, parameters and workflows of your own files can be renamed")
            }
            RenameError::InvalidName(name) => write!(f, "`{name}` is not a valid name (a letter or `_`, then letters, digits or `_`, and not a keyword)"),
        }
    }
}

pub fn rename(
    snapshot: &Snapshot,
    position: Position,
    new_name: &str,
    workspace: &Workspace,
) -> Result<WorkspaceEdit, RenameError> {
    let reference = reference_at(snapshot, position).ok_or(RenameError::NotRenamable)?;
    if !renamable(reference.kind) || in_stdlib(snapshot, reference.definition) {
        return Err(RenameError::NotRenamable);
    }
    if !is_identifier(new_name) || is_keyword(new_name) {
        return Err(RenameError::InvalidName(new_name.to_owned()));
    }
    let mut spans: Vec<flow_grammar::Span> = snapshot
        .compilation
        .analysis
        .references_to(reference.definition)
        .map(|r| r.span)
        .chain(std::iter::once(reference.definition))
        .collect();
    spans.sort_by_key(|s| (s.file, s.start));
    spans.dedup();
    let mut changes: HashMap<Uri, Vec<TextEdit>> = HashMap::new();
    for span in spans {
        if in_stdlib(snapshot, span) {
            return Err(RenameError::NotRenamable);
        }
        if let Some(l) = location(snapshot, span) {
            changes
                .entry(l.uri)
                .or_default()
                .push(TextEdit::new(l.range, new_name.to_owned()));
        }
    }
    if crosses_files(reference.kind) {
        for l in workspace.references(snapshot, reference.definition, &reference.name) {
            let edits = changes.entry(l.uri).or_default();
            let edit = TextEdit::new(l.range, new_name.to_owned());
            if !edits.contains(&edit) {
                edits.push(edit);
            }
        }
    }
    Ok(WorkspaceEdit {
        changes: Some(changes),
        ..WorkspaceEdit::default()
    })
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn document_symbols(snapshot: &Snapshot) -> Vec<DocumentSymbol> {
    let Some(file) = snapshot.file() else {
        return Vec::new();
    };
    snapshot
        .compilation
        .analysis
        .symbols_of(snapshot.root)
        .map(|s| symbol(file, s))
        .collect()
}

#[allow(deprecated)]
fn symbol(file: &flow_grammar::span::SourceFile, s: &analysis::DocumentSymbol) -> DocumentSymbol {
    let children: Vec<DocumentSymbol> = s.children.iter().map(|c| symbol(file, c)).collect();
    DocumentSymbol {
        name: s.name.clone(),
        detail: (!s.detail.is_empty()).then(|| s.detail.clone()),
        kind: symbol_kind(s.kind),
        tags: None,
        deprecated: None,
        range: convert::range(file, s.span),
        selection_range: convert::range(file, s.name_span),
        children: (!children.is_empty()).then_some(children),
    }
}

pub fn symbol_kind(kind: SymbolKind) -> lsp::SymbolKind {
    match kind {
        SymbolKind::Type => lsp::SymbolKind::STRUCT,
        SymbolKind::Const => lsp::SymbolKind::CONSTANT,
        SymbolKind::Integration | SymbolKind::Module => lsp::SymbolKind::MODULE,
        SymbolKind::Action => lsp::SymbolKind::METHOD,
        SymbolKind::Event => lsp::SymbolKind::EVENT,
        SymbolKind::Workflow => lsp::SymbolKind::FUNCTION,
        SymbolKind::Step => lsp::SymbolKind::FIELD,
        SymbolKind::Let | SymbolKind::Variable => lsp::SymbolKind::VARIABLE,
        SymbolKind::Param => lsp::SymbolKind::TYPE_PARAMETER,
        SymbolKind::Test => lsp::SymbolKind::NAMESPACE,
    }
}

pub fn kind_word(kind: SymbolKind) -> &'static str {
    match kind {
        SymbolKind::Type => "type",
        SymbolKind::Const => "const",
        SymbolKind::Integration => "integration",
        SymbolKind::Action => "action",
        SymbolKind::Event => "event",
        SymbolKind::Workflow => "workflow",
        SymbolKind::Step => "step",
        SymbolKind::Let => "let",
        SymbolKind::Param => "param",
        SymbolKind::Variable => "variable",
        SymbolKind::Module => "module",
        SymbolKind::Test => "test",
    }
}

/// The whole document, formatted; no edit when it is already formatted or does not parse.
pub fn formatting(snapshot: &Snapshot) -> Option<Vec<TextEdit>> {
    let file = snapshot.file()?;
    let formatted = format_source(&file.text).ok()?;
    if formatted == file.text {
        return Some(Vec::new());
    }
    let end = convert::position(file, file.text.len());
    Some(vec![TextEdit::new(
        Range::new(Position::new(0, 0), end),
        formatted,
    )])
}
