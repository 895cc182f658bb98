//! flow-compiler: from ASTs to the typed IR. Resolves names across modules, checks types
//! end to end, builds each workflow's dependency graph and lowers to plain serde data.
//!
//! What it produces is `flow-ir`'s plain data; this crate adds only the checking.
//!
//! The compiler does no I/O and no async: files come in through a [`Loader`] the caller
//! provides, diagnostics go out as values. Entry point: [`compile`].

pub mod analysis;
pub mod artefact;
mod check;
mod compile;
pub mod expr;
pub mod graph;
pub mod loader;
pub mod type_expr;

pub use compile::{
    Compilation, compile, compile_incremental, compile_source, compile_stdlib_module,
};
pub use loader::{LoadError, LoadedFile, Loader, MemoryLoader};
