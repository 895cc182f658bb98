//! The index the language server reads: for each name written in the program, the
//! definition it resolves to and what hover shows; each file's outline; and the names in
//! scope in each block of a workflow with their static types (what completion after
//! `name.` offers depends on the type).
//!
//! It is filled while checking (no second pass) and holds only spans and strings.

use flow_grammar::{FileId, Span};
use flow_ir::types::Type;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SymbolKind {
    Type,
    Const,
    Integration,
    Action,
    Event,
    Workflow,
    Step,
    Let,
    Param,
    /// `event`, `err`, loop variables and other bound names.
    Variable,
    Module,
    Test,
}

/// One use (or the definition itself) of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Where the name is written.
    pub span: Span,
    /// Where what it names is defined (in any file, stdlib modules included).
    pub definition: Span,
    pub kind: SymbolKind,
    pub name: String,
    /// One line for hover: a signature or `name: type`.
    pub hover: String,
    /// The definition's doc comment.
    pub doc: Option<String>,
}

/// An entry of a file's outline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentSymbol {
    pub name: String,
    pub kind: SymbolKind,
    /// The whole item.
    pub span: Span,
    /// The name.
    pub name_span: Span,
    pub detail: String,
    pub children: Vec<DocumentSymbol>,
}

/// A name in scope inside a workflow body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeName {
    pub name: String,
    pub ty: Type,
    pub kind: SymbolKind,
    pub definition: Span,
    /// Where the name can be read: its block (a `let` from its declaration on).
    pub visible: Span,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    pub references: Vec<Reference>,
    /// The outline of every user file (stdlib modules excluded).
    pub symbols: Vec<DocumentSymbol>,
    /// Names in scope in workflow bodies, one entry per name and block.
    pub scope: Vec<ScopeName>,
}

impl Analysis {
    pub(crate) fn reference(
        &mut self,
        span: Span,
        definition: Span,
        kind: SymbolKind,
        name: &str,
        doc: Option<String>,
    ) {
        self.references.push(Reference {
            span,
            definition,
            kind,
            name: name.to_owned(),
            hover: String::new(),
            doc,
        });
    }

    pub(crate) fn reference_with(
        &mut self,
        span: Span,
        definition: Span,
        kind: SymbolKind,
        name: &str,
        hover: String,
        doc: Option<String>,
    ) {
        self.references.push(Reference {
            span,
            definition,
            kind,
            name: name.to_owned(),
            hover,
            doc,
        });
    }

    /// The innermost reference covering `offset` in `file`.
    pub fn at(&self, file: FileId, offset: usize) -> Option<&Reference> {
        self.references
            .iter()
            .filter(|r| r.span.file == file && r.span.contains(offset))
            .min_by_key(|r| r.span.len())
    }

    /// Every reference to the definition at `definition` (including the definition itself).
    pub fn references_to(&self, definition: Span) -> impl Iterator<Item = &Reference> {
        self.references
            .iter()
            .filter(move |r| r.definition == definition)
    }

    /// The name `name` as seen at `offset` in `file`: the entry of the innermost block
    /// that sees it there.
    pub fn name_at(&self, file: FileId, offset: usize, name: &str) -> Option<&ScopeName> {
        self.names_at(file, offset).find(|n| n.name == name)
    }

    /// Every name in scope at `offset` in `file`, each once, innermost first.
    pub fn names_at(&self, file: FileId, offset: usize) -> impl Iterator<Item = &ScopeName> {
        let mut visible: Vec<&ScopeName> = self
            .scope
            .iter()
            .filter(|n| n.visible.file == file && n.visible.contains(offset))
            .collect();
        visible.sort_by_key(|n| n.visible.len());
        let mut seen = std::collections::HashSet::new();
        visible
            .into_iter()
            .filter(move |n| seen.insert(n.name.as_str()))
    }

    /// The outline of one file.
    pub fn symbols_of(&self, file: FileId) -> impl Iterator<Item = &DocumentSymbol> {
        self.symbols.iter().filter(move |s| s.span.file == file)
    }
}
