//! flow-expr: Flow's expression engine. Run-time values, the reference interpreter
//! (CEL semantics plus Flow's additions), the cranelift JIT that must agree with it,
//! and JSON conversion guided by static types.
//!
//! Entry point: build a [`Program`] from a checked [`ExprArena`] and evaluate any of its
//! expressions with [`Program::eval`], giving one value slot per local
//! ([`Program::new_locals`]) and a [`Context`] for `now()` and credentials.

pub mod decode;
pub mod error;
mod format;
mod functions;
mod interp;
mod jit;
pub mod json;
mod modes;
pub mod time;
pub mod value;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use flow_ir::expr::{ExprArena, ExprId, NodeKind};

pub use error::{ErrorKind, EvalError};
pub use interp::{Context, FixedContext, SystemContext, new_locals};
pub use json::{ConversionError, Leniency, convert, infer_type};
pub use modes::Mode;
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

/// How many interpreted evaluations make an expression hot.
pub const HOT_THRESHOLD: u32 = 64;
/// A comprehension over a list input at least this long is compiled at once.
pub const LARGE_LIST: usize = 1024;

/// Per-expression tiering state.
#[derive(Default)]
struct Slot {
    runs: AtomicU32,
    compiled: OnceLock<Option<jit::Compiled>>,
}

/// A checked arena ready to evaluate: its constants prepared once, its expressions
/// interpreted and, once hot (or over a large list), compiled to native code.
pub struct Program {
    arena: Arc<ExprArena>,
    consts: Vec<Option<Value>>,
    tier: Tier,
    slots: Vec<Slot>,
    jit: Mutex<Option<jit::Jit>>,
    has_loop: Vec<bool>,
}

thread_local! {
    static JIT_CTX: std::cell::RefCell<jit::helpers::JitCtx> = std::cell::RefCell::new(jit::helpers::JitCtx::new());
}

impl Program {
    pub fn new(arena: impl Into<Arc<ExprArena>>) -> Program {
        let arena = arena.into();
        let consts = interp::constants(&arena);
        let slots = (0..arena.nodes.len()).map(|_| Slot::default()).collect();
        let has_loop = arena
            .nodes
            .iter()
            .map(|n| matches!(n.kind, NodeKind::Comprehension(_)))
            .collect();
        Program {
            arena,
            consts,
            tier: Tier::Auto,
            slots,
            jit: Mutex::new(None),
            has_loop,
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
    /// have the local's static type (decode JSON with [`Value::from_json`]). The tier
    /// decides between the interpreter and the JIT; both give the same result.
    pub fn eval(
        &self,
        root: ExprId,
        locals: &mut [Value],
        ctx: &dyn Context,
    ) -> Result<Value, EvalError> {
        if locals.len() < self.arena.locals.len() {
            return Err(EvalError::invalid_argument(
                "internal error: fewer local slots than the arena has locals",
            ));
        }
        let compiled = match self.tier {
            Tier::Interpreter => None,
            Tier::Jit => self.compiled(root),
            Tier::Auto => {
                let slot = self.slots.get(root.0 as usize);
                match slot.and_then(|s| s.compiled.get()) {
                    Some(c) => *c,
                    None => {
                        let runs = slot.map_or(0, |s| s.runs.fetch_add(1, Ordering::Relaxed));
                        if runs >= HOT_THRESHOLD || self.over_large_list(root, locals) {
                            self.compiled(root)
                        } else {
                            None
                        }
                    }
                }
            }
        };
        match compiled {
            Some(c) => JIT_CTX.with(|jctx| match jctx.try_borrow_mut() {
                Ok(mut jctx) => c.run(&mut jctx, locals),
                Err(_) => c.run(&mut jit::helpers::JitCtx::new(), locals),
            }),
            None => self.interpret(root, locals, ctx),
        }
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

    /// Whether `root` is compiled (or compiles now); `false` when the JIT does not
    /// support it, which is logged at debug level once.
    pub fn is_compiled(&self, root: ExprId) -> bool {
        self.compiled(root).is_some()
    }

    fn compiled(&self, root: ExprId) -> Option<jit::Compiled> {
        let slot = self.slots.get(root.0 as usize)?;
        *slot.compiled.get_or_init(|| {
            let mut guard = match self.jit.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if guard.is_none() {
                match jit::Jit::new() {
                    Ok(j) => *guard = Some(j),
                    Err(e) => {
                        tracing::debug!("JIT unavailable, interpreting: {e}");
                        return None;
                    }
                }
            }
            let j = guard.as_mut()?;
            match j.compile(&self.arena, &self.consts, root) {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::debug!("expression {} interpreted: {e}", root.0);
                    None
                }
            }
        })
    }

    /// Whether `root` loops and some list local is large.
    fn over_large_list(&self, root: ExprId, locals: &[Value]) -> bool {
        let loops = self
            .has_loop
            .iter()
            .skip(root.0 as usize)
            .take(1)
            .any(|b| *b)
            || self
                .has_loop
                .get(..=root.0 as usize)
                .is_some_and(|s| s.iter().any(|b| *b));
        loops
            && locals
                .iter()
                .any(|v| matches!(v, Value::List(l) if l.len() >= LARGE_LIST))
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
