//! flow-compiler: from ASTs to the typed IR. Resolves names across modules, checks types
//! end to end, builds each workflow's dependency graph and lowers to plain serde data.
//!
//! The compiler does no I/O and no async: files come in through a loader the caller
//! provides, diagnostics go out as values.

pub mod expr;
pub mod ir;
pub mod types;
