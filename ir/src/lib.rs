//! flow-ir: the contract between the compiler and everything that runs a program.
//!
//! Plain serde data and nothing else: source positions ([`span`]), static types
//! ([`types`]), the typed expression arena ([`expr`]), the compiled program with its
//! workflows, integrations and tests ([`program`]), and the `.flowc` framing
//! ([`artefact`]). The compiler produces these values; the expression engine, the
//! runtime, the connectors and the server read them and link nothing else of the
//! compiler, so Cargo itself keeps the crossing narrow. Spans live in side tables and
//! are read only to report.

pub mod artefact;
pub mod expr;
pub mod program;
pub mod span;
pub mod types;

pub use span::{FileId, Span};
