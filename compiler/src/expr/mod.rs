//! Typed expressions: the arena IR the runtime evaluates, and the interface through
//! which the rest of the compiler checks an AST expression into it.
//!
//! An expression is checked against a [`Scope`] (the names visible where it is written)
//! into an [`ExprArena`]: a flat vector of typed nodes addressed by [`ExprId`], with the
//! spans in a side table. Every operator and function call is resolved to an
//! [`Overload`] the runtime dispatches on; every place where a `dyn` value must become a
//! concrete type holds an explicit [`NodeKind::Convert`].

pub mod catalogue;
mod check;
mod ir;

pub use crate::types::is_assignable;
pub use check::{
    CheckOptions, EmptyScope, Scope, Variables, check_expression, check_expression_with, coerce,
    display_signature,
};
pub use ir::*;
