//! Typed expressions: the checker through which the rest of the compiler turns an AST
//! expression into `flow-ir`'s expression arena (re-exported here), and the builtin
//! function catalogue.
//!
//! An expression is checked against a [`Scope`] (the names visible where it is written)
//! into an [`ExprArena`]: a flat vector of typed nodes addressed by [`ExprId`], with the
//! spans in a side table. Every operator and function call is resolved to an
//! [`Overload`] the runtime dispatches on; every place where a `dyn` value must become a
//! concrete type holds an explicit [`NodeKind::Convert`].

pub mod catalogue;
mod check;

pub use check::{
    CheckOptions, EmptyScope, Method, Scope, Variables, check_expression, check_expression_with,
    coerce, display_signature, method_result, methods_of,
};
pub use flow_ir::expr::*;
pub use flow_ir::types::is_assignable;
