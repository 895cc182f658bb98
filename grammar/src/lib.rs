//! flow-grammar: the surface of the Flow language. Source files and spans, the lossless
//! lexer, the pest grammar and the AST it builds, and the diagnostics every later phase
//! reports through.
//!
//! This crate knows nothing of types, names or the runtime: it turns text into trees and
//! explains, in the user's words, why a text is not Flow.

pub mod ast;
pub mod ast_spans;
pub mod codes;
pub mod diagnostic;
mod parse;
pub mod render;
pub mod span;
pub mod suggest;
pub mod tokens;

pub use codes::Code;
pub use diagnostic::{Diagnostic, Label, Severity, has_errors};
pub use parse::{
    MAX_EXPRESSION_DEPTH, MAX_NESTING, MAX_SOURCE_BYTES, ParseCache, decode_source, parse,
    parse_expression, parse_incremental, parse_type,
};
pub use span::{FileId, LineColumn, SourceFile, SourceMap, Span};
