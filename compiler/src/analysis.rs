//! The index the language server reads: for each name written in the program, the
//! definition it resolves to and what hover shows; and each file's outline.
//!
//! It is filled while checking (no second pass) and holds only spans and strings.

use flow_grammar::{FileId, Span};

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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    pub references: Vec<Reference>,
    /// The outline of every user file (stdlib modules excluded).
    pub symbols: Vec<DocumentSymbol>,
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

    /// The outline of one file.
    pub fn symbols_of(&self, file: FileId) -> impl Iterator<Item = &DocumentSymbol> {
        self.symbols.iter().filter(move |s| s.span.file == file)
    }
}
