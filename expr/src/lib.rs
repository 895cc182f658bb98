//! flow-expr: Flow's expression engine. Run-time values, the reference interpreter
//! (CEL semantics plus Flow's additions), the cranelift JIT that must agree with it,
//! and JSON conversion guided by static types.
//!
//! Entry point: build a [`Program`] from a checked [`ExprArena`] and evaluate any of its
//! expressions with [`Program::eval`], giving one value slot per local
//! ([`Program::new_locals`]) and a [`Context`] for `now()` and credentials.

pub mod error;
mod format;
mod functions;
mod interp;
pub mod json;
pub mod time;
pub mod value;

use std::sync::Arc;

use flow_compiler::expr::{ExprArena, ExprId};

pub use error::{ErrorKind, EvalError};
pub use interp::{Context, FixedContext, SystemContext, new_locals};
pub use json::{ConversionError, convert, infer_type};
pub use time::{Duration, Timestamp};
pub use value::{Map, Record, Value};

/// Which evaluator runs an expression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tier {
    /// Interpret first; compile to native code once an expression is hot or runs over a
    /// large list.
    #[default]
    Auto,
    /// Always interpret (`--no-jit`).
    Interpreter,
    /// Compile every expression the JIT supports before its first run (`--jit=always`).
    Jit,
}

/// A checked arena ready to evaluate: its constants prepared once.
pub struct Program {
    arena: Arc<ExprArena>,
    consts: Vec<Option<Value>>,
    tier: Tier,
}

impl Program {
    pub fn new(arena: impl Into<Arc<ExprArena>>) -> Program {
        let arena = arena.into();
        let consts = interp::constants(&arena);
        Program {
            arena,
            consts,
            tier: Tier::Auto,
        }
    }

    pub fn with_tier(mut self, tier: Tier) -> Program {
        self.tier = tier;
        self
    }

    pub fn tier(&self) -> Tier {
        self.tier
    }

    pub fn arena(&self) -> &ExprArena {
        &self.arena
    }

    /// One `null` slot per local of the arena.
    pub fn new_locals(&self) -> Vec<Value> {
        new_locals(&self.arena)
    }

    /// Evaluates expression `root`. `locals[i]` holds the value of `LocalId(i)`; it must
    /// have the local's static type (decode JSON with [`Value::from_json`]).
    pub fn eval(
        &self,
        root: ExprId,
        locals: &mut [Value],
        ctx: &dyn Context,
    ) -> Result<Value, EvalError> {
        self.interpret(root, locals, ctx)
    }

    /// Evaluates with the interpreter only.
    pub fn interpret(
        &self,
        root: ExprId,
        locals: &mut [Value],
        ctx: &dyn Context,
    ) -> Result<Value, EvalError> {
        interp::interpret(&self.arena, &self.consts, root, locals, ctx)
    }
}

/// Evaluates one expression with the interpreter (no preparation kept).
pub fn evaluate(
    arena: &ExprArena,
    root: ExprId,
    locals: &mut [Value],
    ctx: &dyn Context,
) -> Result<Value, EvalError> {
    interp::interpret(arena, &[], root, locals, ctx)
}
