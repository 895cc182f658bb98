//! flow-editor: what editors need from Flow. The formatter (`format`), shared by
//! `flow fmt` and the language server, and the language server itself (`lsp`).
//!
//! This crate links the grammar and the compiler, never the runtime: an editor must be
//! able to check and navigate a workflow without being able to run it.

pub mod format;
pub mod lsp;
