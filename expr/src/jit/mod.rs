//! The cranelift JIT: translates a typed expression to native code. Integers, doubles
//! and bools live in registers (with the interpreter's overflow and division checks);
//! every other value is a pointer to a [`Value`] handled by the `extern "C"` helpers in
//! [`helpers`], which call the interpreter's own functions. Errors travel in the
//! [`JitCtx`]: compiled code checks its `failed` flag after each fallible helper and
//! implements `&&`, `||`, `all` and `exists` error absorption exactly as the
//! interpreter does.
//!
//! One [`Jit`] owns the module (and so all compiled code). Translation returns errors
//! for anything it does not support; the caller then keeps interpreting.

mod calls;
mod comprehension;
pub mod helpers;

use std::collections::HashMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{
    self, AbiParam, Block, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, types,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use flow_ir::expr::{
    Comprehension, ComprehensionKind, Const, ExprArena, ExprId, LocalId, NodeKind, Overload,
};
use flow_ir::types::Type;

use crate::error::EvalError;
use crate::value::Value;
use helpers::{ComprehensionName, JitCtx, Kind, code};

/// Why an expression was not compiled.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("not supported by the JIT: {0}")]
    Unsupported(String),
    #[error("code generation failed: {0}")]
    Codegen(String),
}

fn unsupported<T>(what: impl Into<String>) -> Result<T, JitError> {
    Err(JitError::Unsupported(what.into()))
}

/// How a value is held in compiled code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JTy {
    Int,
    UInt,
    Double,
    Bool,
    /// A `*const Value`.
    Boxed,
}

impl JTy {
    fn of(t: &Type) -> JTy {
        match t {
            Type::Int => JTy::Int,
            Type::UInt => JTy::UInt,
            Type::Double => JTy::Double,
            Type::Bool => JTy::Bool,
            _ => JTy::Boxed,
        }
    }

    fn clif(self) -> ir::Type {
        match self {
            JTy::Int | JTy::UInt | JTy::Boxed => types::I64,
            JTy::Double => types::F64,
            JTy::Bool => types::I8,
        }
    }
}

/// A compiled expression: call it with a context and the locals.
#[derive(Clone, Copy)]
pub struct Compiled {
    func: usize,
    pub result: JTy,
}

type CompiledFn = unsafe extern "C" fn(*mut JitCtx, *const Value) -> u64;

impl Compiled {
    /// Runs the compiled code.
    ///
    /// `locals` must be the slots of the arena the expression was compiled from, each
    /// holding a value of its local's static type, and the program it was compiled for
    /// (arena, constants, module) must still be alive.
    pub fn run(&self, ctx: &mut JitCtx, locals: &[Value]) -> Result<Value, EvalError> {
        ctx.reset();
        // SAFETY: `func` is a finalized function of the module with signature
        // `CompiledFn`, kept alive by the owner of this `Compiled`; its arguments are a
        // live context and the locals slice it was compiled against.
        let bits = unsafe {
            let f: CompiledFn = std::mem::transmute::<usize, CompiledFn>(self.func);
            f(ctx, locals.as_ptr())
        };
        if ctx.failed != 0 {
            return Err(ctx.error.take().unwrap_or_else(|| {
                EvalError::invalid_argument("internal error: JIT failure without an error")
            }));
        }
        Ok(match self.result {
            JTy::Int => Value::Int(bits as i64),
            JTy::UInt => Value::UInt(bits),
            JTy::Double => Value::Double(f64::from_bits(bits)),
            JTy::Bool => Value::Bool(bits & 0xff != 0),
            // SAFETY: a boxed result points at a local, a constant or a temporary of
            // `ctx`, all alive here; it is cloned before `ctx` is reused.
            JTy::Boxed => unsafe { (*(bits as *const Value)).clone() },
        })
    }
}

/// Owns the cranelift module and everything compiled into it.
pub struct Jit {
    /// Freed explicitly when the `Jit` is dropped (see `Drop`).
    module: std::mem::ManuallyDrop<JITModule>,
    ctx: cranelift_codegen::Context,
    builder_ctx: FunctionBuilderContext,
    helpers: HashMap<&'static str, (FuncId, &'static [Kind], Option<Kind>)>,
}

// SAFETY: the module holds raw pointers to code and data it owns; nothing in it is tied
// to a thread. `Jit` is only used behind a `Mutex` by its owner.
unsafe impl Send for Jit {}

impl Jit {
    pub fn new() -> Result<Jit, JitError> {
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v).map_err(|e| JitError::Codegen(e.to_string()))
        };
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(&mut flags, "is_pic", "false")?;
        set(&mut flags, "opt_level", "speed")?;
        let isa = cranelift_native::builder()
            .map_err(|e| JitError::Codegen(format!("host not supported: {e}")))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
        let all = helpers::all();
        for h in &all {
            builder.symbol(h.name, h.ptr);
        }
        let mut module = JITModule::new(builder);
        let mut table = HashMap::new();
        for h in &all {
            let mut sig = module.make_signature();
            for p in h.params {
                sig.params.push(AbiParam::new(kind_type(*p)));
            }
            if let Some(r) = h.ret {
                sig.returns.push(AbiParam::new(kind_type(r)));
            }
            let id = module
                .declare_function(h.name, Linkage::Import, &sig)
                .map_err(|e| JitError::Codegen(e.to_string()))?;
            table.insert(h.name, (id, h.params, h.ret));
        }
        Ok(Jit {
            ctx: module.make_context(),
            module: std::mem::ManuallyDrop::new(module),
            builder_ctx: FunctionBuilderContext::new(),
            helpers: table,
        })
    }

    /// Compiles expression `root` of `arena`. `consts` are the program's constant
    /// values (their addresses are embedded in the code, so they must not move).
    pub fn compile(
        &mut self,
        arena: &ExprArena,
        consts: &[Option<Value>],
        root: ExprId,
    ) -> Result<Compiled, JitError> {
        self.module.clear_context(&mut self.ctx);
        let ptr = types::I64;
        let mut sig = self.module.make_signature();
        sig.params.push(AbiParam::new(ptr));
        sig.params.push(AbiParam::new(ptr));
        sig.returns.push(AbiParam::new(types::I64));
        self.ctx.func.signature = sig.clone();
        let frontend_config = self.module.target_config();
        let result_ty = JTy::of(
            arena
                .ty(root)
                .ok_or_else(|| JitError::Codegen("unknown root".into()))?,
        );
        // A translation that stops at an unsupported node leaves the builder's context
        // half-used; the next compile must not start from it (cranelift asserts so).
        let built = (|| -> Result<(), JitError> {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.builder_ctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let ctx_ptr = b.block_params(entry)[0];
            let locals_ptr = b.block_params(entry)[1];
            let err_block = b.create_block();
            let mut refs = HashMap::new();
            for (name, (id, params, ret)) in &self.helpers {
                let fref = self.module.declare_func_in_func(*id, b.func);
                refs.insert(*name, (fref, *params, *ret));
            }
            let mut t = Translator {
                b,
                arena,
                consts,
                refs,
                ctx_ptr,
                locals_ptr,
                bound: HashMap::new(),
                err_block,
                locals_cache: HashMap::new(),
            };
            t.preload_locals(root)?;
            let (v, ty) = t.expr(root)?;
            if ty != result_ty {
                return Err(JitError::Codegen(format!(
                    "result kind {ty:?}, expected {result_ty:?}"
                )));
            }
            let bits = t.to_bits(v, ty);
            t.b.ins().return_(&[bits]);
            t.b.switch_to_block(t.err_block);
            let zero = t.b.ins().iconst(types::I64, 0);
            t.b.ins().return_(&[zero]);
            t.b.seal_all_blocks();
            t.b.finalize(frontend_config);
            Ok(())
        })();
        if let Err(e) = built {
            self.builder_ctx = FunctionBuilderContext::new();
            self.module.clear_context(&mut self.ctx);
            return Err(e);
        }
        let id = self
            .module
            .declare_anonymous_function(&sig)
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| JitError::Codegen(format!("{e:?}")))?;
        self.module.clear_context(&mut self.ctx);
        self.module
            .finalize_definitions()
            .map_err(|e| JitError::Codegen(e.to_string()))?;
        let code = self.module.get_finalized_function(id);
        Ok(Compiled {
            func: code as usize,
            result: result_ty,
        })
    }
}

impl Drop for Jit {
    fn drop(&mut self) {
        // SAFETY: the `Jit` is owned by a `Program` together with every `Compiled` handle
        // made from it; handles are only used inside `Program::eval` while the program
        // is borrowed, so when the program (and this `Jit`) is dropped no compiled
        // function is running or can be called again. `module` is not used after this.
        unsafe {
            let module = std::mem::ManuallyDrop::take(&mut self.module);
            module.free_memory();
        }
    }
}

fn kind_type(k: Kind) -> ir::Type {
    match k {
        Kind::I64 => types::I64,
        Kind::F64 => types::F64,
        Kind::I8 => types::I8,
    }
}

struct Translator<'a> {
    b: FunctionBuilder<'a>,
    arena: &'a ExprArena,
    consts: &'a [Option<Value>],
    refs: HashMap<&'static str, (ir::FuncRef, &'static [Kind], Option<Kind>)>,
    ctx_ptr: ir::Value,
    locals_ptr: ir::Value,
    /// Comprehension variables: SSA variables holding the element.
    bound: HashMap<LocalId, (Variable, JTy)>,
    /// Where a failing operation jumps (the error is then in the context).
    err_block: Block,
    /// Scope locals, read once at entry.
    locals_cache: HashMap<LocalId, (ir::Value, JTy)>,
}

const VALUE_SIZE: i64 = std::mem::size_of::<Value>() as i64;

static LIST_NAMES: [ComprehensionName; 5] = [
    ComprehensionName("All"),
    ComprehensionName("Exists"),
    ComprehensionName("ExistsOne"),
    ComprehensionName("Map"),
    ComprehensionName("Filter"),
];

impl Translator<'_> {
    fn call(
        &mut self,
        name: &'static str,
        args: &[ir::Value],
    ) -> Result<Option<ir::Value>, JitError> {
        let (fref, _, ret) = *self
            .refs
            .get(name)
            .ok_or_else(|| JitError::Codegen(format!("no helper {name}")))?;
        let inst = self.b.ins().call(fref, args);
        Ok(if ret.is_some() {
            self.b.inst_results(inst).first().copied()
        } else {
            None
        })
    }

    fn call1(&mut self, name: &'static str, args: &[ir::Value]) -> Result<ir::Value, JitError> {
        self.call(name, args)?
            .ok_or_else(|| JitError::Codegen(format!("{name} returns nothing")))
    }

    /// Jumps to the error block when the last helper failed.
    fn check(&mut self) {
        let failed = self
            .b
            .ins()
            .load(types::I8, MemFlagsData::trusted(), self.ctx_ptr, 0);
        let next = self.b.create_block();
        self.b.ins().brif(failed, self.err_block, &[], next, &[]);
        self.b.switch_to_block(next);
    }

    fn iconst(&mut self, v: i64) -> ir::Value {
        self.b.ins().iconst(types::I64, v)
    }

    fn ptr_const<T>(&mut self, p: *const T) -> ir::Value {
        self.b.ins().iconst(types::I64, p as usize as i64)
    }

    fn fail_with(&mut self, c: i64) -> Result<(), JitError> {
        let ctx = self.ctx_ptr;
        let code = self.iconst(c);
        self.call("jit_fail", &[ctx, code])?;
        let err = self.err_block;
        self.b.ins().jump(err, &[]);
        Ok(())
    }

    /// Branches to a new block that reports error `c` when `cond` is true.
    fn fail_if(&mut self, cond: ir::Value, c: i64) -> Result<(), JitError> {
        let bad = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(cond, bad, &[], ok, &[]);
        self.b.switch_to_block(bad);
        self.fail_with(c)?;
        self.b.switch_to_block(ok);
        Ok(())
    }

    fn to_bits(&mut self, v: ir::Value, ty: JTy) -> ir::Value {
        match ty {
            JTy::Int | JTy::UInt | JTy::Boxed => v,
            JTy::Double => self.b.ins().bitcast(types::I64, MemFlagsData::new(), v),
            JTy::Bool => self.b.ins().uextend(types::I64, v),
        }
    }

    /// Reads every scope local the expression uses, once, at entry.
    fn preload_locals(&mut self, root: ExprId) -> Result<(), JitError> {
        let mut used = Vec::new();
        collect_locals(self.arena, root, &mut used, &mut Vec::new());
        used.sort();
        used.dedup();
        for l in used {
            let ty = self
                .arena
                .local(l)
                .map(|i| JTy::of(&i.ty))
                .ok_or_else(|| JitError::Codegen("unknown local".into()))?;
            let offset = i64::from(l.0) * VALUE_SIZE;
            let p = self.b.ins().iadd_imm_s(self.locals_ptr, offset);
            let v = self.unbox(p, ty)?;
            self.locals_cache.insert(l, (v, ty));
        }
        Ok(())
    }

    fn unbox(&mut self, p: ir::Value, ty: JTy) -> Result<ir::Value, JitError> {
        let ctx = self.ctx_ptr;
        let name = match ty {
            JTy::Boxed => return Ok(p),
            JTy::Int => "jit_unbox_int",
            JTy::UInt => "jit_unbox_uint",
            JTy::Double => "jit_unbox_double",
            JTy::Bool => "jit_unbox_bool",
        };
        let v = self.call1(name, &[ctx, p])?;
        self.check();
        Ok(v)
    }

    fn boxed(&mut self, v: ir::Value, ty: JTy) -> Result<ir::Value, JitError> {
        let ctx = self.ctx_ptr;
        let name = match ty {
            JTy::Boxed => return Ok(v),
            JTy::Int => "jit_box_int",
            JTy::UInt => "jit_box_uint",
            JTy::Double => "jit_box_double",
            JTy::Bool => "jit_box_bool",
        };
        self.call1(name, &[ctx, v])
    }

    fn node_ty(&self, id: ExprId) -> Result<JTy, JitError> {
        self.arena
            .ty(id)
            .map(JTy::of)
            .ok_or_else(|| JitError::Codegen("unknown node".into()))
    }

    fn expr(&mut self, id: ExprId) -> Result<(ir::Value, JTy), JitError> {
        stacker::maybe_grow(
            crate::interp::STACK_RED_ZONE,
            crate::interp::STACK_GROWTH,
            || self.expr_node(id),
        )
    }

    fn expr_node(&mut self, id: ExprId) -> Result<(ir::Value, JTy), JitError> {
        let node = self
            .arena
            .node(id)
            .ok_or_else(|| JitError::Codegen("unknown node".into()))?;
        let want = JTy::of(&node.ty);
        let v = match &node.kind {
            NodeKind::Const(c) => match c {
                Const::Bool(b) => self.b.ins().iconst(types::I8, i64::from(*b)),
                Const::Int(i) if want == JTy::Int => self.iconst(*i),
                Const::UInt(u) if want == JTy::UInt => self.iconst(*u as i64),
                Const::Double(d) if want == JTy::Double => self.b.ins().f64const(*d),
                _ => {
                    let p = match self.consts.get(id.0 as usize) {
                        Some(Some(v)) => v as *const Value,
                        _ => return unsupported("a constant without a prepared value"),
                    };
                    let boxed = self.ptr_const(p);
                    self.unbox(boxed, want)?
                }
            },
            NodeKind::TypeValue(_) => match self.consts.get(id.0 as usize) {
                Some(Some(v)) => {
                    let p = v as *const Value;
                    self.ptr_const(p)
                }
                _ => return unsupported("a type value without a prepared value"),
            },
            NodeKind::Local(l) => {
                if let Some((var, ty)) = self.bound.get(l).copied() {
                    let v = self.b.use_var(var);
                    return self.coerce_kind(v, ty, want);
                }
                match self.locals_cache.get(l).copied() {
                    Some((v, ty)) => return self.coerce_kind(v, ty, want),
                    None => return Err(JitError::Codegen("local not preloaded".into())),
                }
            }
            NodeKind::Field {
                target,
                field,
                index,
                null_safe,
            } => {
                let (t, tty) = self.expr(*target)?;
                let t = self.boxed(t, tty)?;
                let idx = self.iconst(index.map_or(-1, i64::from));
                let name = self.ptr_const(field as *const String);
                let ns = self.b.ins().iconst(types::I8, i64::from(*null_safe));
                let ctx = self.ctx_ptr;
                let p = self.call1("jit_field", &[ctx, t, idx, name, ns])?;
                self.check();
                self.unbox(p, want)?
            }
            NodeKind::Index {
                target,
                index,
                optional,
            } => {
                let (t, tty) = self.expr(*target)?;
                let t = self.boxed(t, tty)?;
                let (i, ity) = self.expr(*index)?;
                let ctx = self.ctx_ptr;
                let p = if ity == JTy::Int && !optional {
                    self.call1("jit_index_int", &[ctx, t, i])?
                } else {
                    let i = self.boxed(i, ity)?;
                    let o = self.b.ins().iconst(types::I8, i64::from(*optional));
                    self.call1("jit_index", &[ctx, t, i, o])?
                };
                self.check();
                self.unbox(p, want)?
            }
            NodeKind::Call { overload, args } => return self.call_node(overload, args, want),
            NodeKind::And(a, b) => self.logic(*a, *b, false)?,
            NodeKind::Or(a, b) => self.logic(*a, *b, true)?,
            NodeKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                let c = self.bool_of(*condition)?;
                let then_block = self.b.create_block();
                let else_block = self.b.create_block();
                let join = self.b.create_block();
                let param = self.b.append_block_param(join, want.clif());
                self.b.ins().brif(c, then_block, &[], else_block, &[]);
                self.b.switch_to_block(then_block);
                let (tv, tt) = self.expr(*then)?;
                let tv = self.coerce_kind(tv, tt, want)?.0;
                self.b.ins().jump(join, &[ir::BlockArg::Value(tv)]);
                self.b.switch_to_block(else_block);
                let (ev, et) = self.expr(*otherwise)?;
                let ev = self.coerce_kind(ev, et, want)?.0;
                self.b.ins().jump(join, &[ir::BlockArg::Value(ev)]);
                self.b.switch_to_block(join);
                param
            }
            NodeKind::List { items, optional } => {
                if optional.iter().any(|o| *o) {
                    return unsupported("optional list elements");
                }
                let ctx = self.ctx_ptr;
                let cap = self.iconst(items.len() as i64);
                let builder = self.call1("jit_list_new", &[ctx, cap])?;
                for item in items {
                    let (v, ty) = self.expr(*item)?;
                    self.push_item(builder, v, ty)?;
                }
                let list = self.call1("jit_list_finish", &[ctx, builder])?;
                self.unbox(list, want)?
            }
            NodeKind::Comprehension(c) => return self.comprehension(c, want),
            NodeKind::Convert { value, to } => {
                let (v, ty) = self.expr(*value)?;
                let v = self.boxed(v, ty)?;
                let to_ptr = self.ptr_const(to as *const Type);
                let ctx = self.ctx_ptr;
                let p = self.call1("jit_convert", &[ctx, v, to_ptr])?;
                self.check();
                self.unbox(p, want)?
            }
            NodeKind::Fail(message) => {
                let ctx = self.ctx_ptr;
                let m = self.ptr_const(message as *const String);
                self.call("jit_fail_message", &[ctx, m])?;
                let err = self.err_block;
                self.b.ins().jump(err, &[]);
                let dead = self.b.create_block();
                self.b.switch_to_block(dead);
                self.zero(want)
            }
            other => return unsupported(node_name(other)),
        };
        Ok((v, want))
    }

    fn zero(&mut self, ty: JTy) -> ir::Value {
        match ty {
            JTy::Double => self.b.ins().f64const(0.0),
            JTy::Bool => self.b.ins().iconst(types::I8, 0),
            _ => self.b.ins().iconst(types::I64, 0),
        }
    }

    /// Converts between a produced kind and the kind the node's type calls for.
    fn coerce_kind(
        &mut self,
        v: ir::Value,
        have: JTy,
        want: JTy,
    ) -> Result<(ir::Value, JTy), JitError> {
        if have == want {
            return Ok((v, want));
        }
        let b = self.boxed(v, have)?;
        Ok((self.unbox(b, want)?, want))
    }

    fn push_item(&mut self, builder: ir::Value, v: ir::Value, ty: JTy) -> Result<(), JitError> {
        let ctx = self.ctx_ptr;
        let name = match ty {
            JTy::Int => "jit_list_push_int",
            JTy::UInt => "jit_list_push_uint",
            JTy::Double => "jit_list_push_double",
            JTy::Bool => "jit_list_push_bool",
            JTy::Boxed => "jit_list_push",
        };
        self.call(name, &[ctx, builder, v])?;
        self.check();
        Ok(())
    }

    /// Evaluates a boolean operand (unboxing a `dyn` with the interpreter's error).
    fn bool_of(&mut self, id: ExprId) -> Result<ir::Value, JitError> {
        let (v, ty) = self.expr(id)?;
        match ty {
            JTy::Bool => Ok(v),
            JTy::Boxed => self.unbox(v, JTy::Bool),
            _ => {
                let b = self.boxed(v, ty)?;
                self.unbox(b, JTy::Bool)
            }
        }
    }

    /// `&&` (`absorb` false) / `||` (`absorb` true) with error absorption.
    fn logic(&mut self, a: ExprId, b: ExprId, absorb: bool) -> Result<ir::Value, JitError> {
        let outer_err = self.err_block;
        let done = self.b.create_block();
        let result = self.b.append_block_param(done, types::I8);
        let absorb_v = i64::from(absorb);

        // Left operand, with its own error target.
        let a_err = self.b.create_block();
        self.err_block = a_err;
        let av = self.bool_of(a)?;
        self.err_block = outer_err;
        let decided = self.b.create_block();
        let eval_b = self.b.create_block();
        let is_absorbing = self.b.ins().icmp_imm_s(IntCC::Equal, av, absorb_v);
        self.b.ins().brif(is_absorbing, decided, &[], eval_b, &[]);
        self.b.switch_to_block(decided);
        let k = self.b.ins().iconst(types::I8, absorb_v);
        self.b.ins().jump(done, &[ir::BlockArg::Value(k)]);
        // Left was the other value: the result is the right operand (errors propagate).
        self.b.switch_to_block(eval_b);
        let bv = self.bool_of(b)?;
        self.b.ins().jump(done, &[ir::BlockArg::Value(bv)]);

        // Left failed: set its error aside and look at the right operand.
        self.b.switch_to_block(a_err);
        let ctx = self.ctx_ptr;
        let token = self.call1("jit_stash", &[ctx])?;
        let b_err = self.b.create_block();
        self.err_block = b_err;
        let bv2 = self.bool_of(b)?;
        self.err_block = outer_err;
        let absorbed = self.b.create_block();
        let restore = self.b.create_block();
        let is_absorbing = self.b.ins().icmp_imm_s(IntCC::Equal, bv2, absorb_v);
        self.b.ins().brif(is_absorbing, absorbed, &[], restore, &[]);
        self.b.switch_to_block(absorbed);
        self.call("jit_drop_stash", &[ctx, token])?;
        let k = self.b.ins().iconst(types::I8, absorb_v);
        self.b.ins().jump(done, &[ir::BlockArg::Value(k)]);
        // Right did not absorb (or failed): the left error wins.
        self.b.switch_to_block(restore);
        self.call("jit_unstash", &[ctx, token])?;
        self.b.ins().jump(outer_err, &[]);
        self.b.switch_to_block(b_err);
        self.call("jit_unstash", &[ctx, token])?;
        self.b.ins().jump(outer_err, &[]);

        self.b.switch_to_block(done);
        Ok(result)
    }
}

/// `(a, b)` when `id` is `a + b` on strings.
fn string_concat(arena: &ExprArena, id: ExprId) -> Option<(ExprId, ExprId)> {
    let node = arena.node(id)?;
    match (&node.kind, &node.ty) {
        (
            NodeKind::Call {
                overload: Overload::Add,
                args,
            },
            Type::String,
        ) => match args.as_slice() {
            [a, b] => Some((*a, *b)),
            _ => None,
        },
        _ => None,
    }
}

fn icc_s_or_u(signed: IntCC, unsigned: IntCC, k: JTy) -> IntCC {
    if k == JTy::Bool { unsigned } else { signed }
}

fn node_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::OptionalField { .. } => "optional field selection `.?`",
        NodeKind::Coalesce { .. } => "`??`",
        NodeKind::Map { .. } => "map literals",
        NodeKind::Record { .. } => "record literals",
        NodeKind::Interpolate(_) => "string interpolation",
        NodeKind::Has { .. } => "`has()`",
        NodeKind::Now => "`now()`",
        NodeKind::Secret(_) | NodeKind::Setting(_) => "credentials",
        _ => "this expression form",
    }
}

/// The scope locals an expression reads (not the comprehension variables it binds).
fn collect_locals(arena: &ExprArena, id: ExprId, out: &mut Vec<LocalId>, bound: &mut Vec<LocalId>) {
    stacker::maybe_grow(
        crate::interp::STACK_RED_ZONE,
        crate::interp::STACK_GROWTH,
        || collect_locals_node(arena, id, out, bound),
    )
}

fn collect_locals_node(
    arena: &ExprArena,
    id: ExprId,
    out: &mut Vec<LocalId>,
    bound: &mut Vec<LocalId>,
) {
    let Some(node) = arena.node(id) else { return };
    let visit = |e: ExprId, out: &mut Vec<LocalId>, bound: &mut Vec<LocalId>| {
        collect_locals(arena, e, out, bound)
    };
    match &node.kind {
        NodeKind::Local(l) => {
            if !bound.contains(l) {
                out.push(*l);
            }
        }
        NodeKind::Field { target, .. }
        | NodeKind::OptionalField { target, .. }
        | NodeKind::Has { target, .. } => visit(*target, out, bound),
        NodeKind::Index { target, index, .. } => {
            visit(*target, out, bound);
            visit(*index, out, bound);
        }
        NodeKind::Call { args, .. } => args.iter().for_each(|a| visit(*a, out, bound)),
        NodeKind::And(a, b) | NodeKind::Or(a, b) => {
            visit(*a, out, bound);
            visit(*b, out, bound);
        }
        NodeKind::Conditional {
            condition,
            then,
            otherwise,
        } => {
            visit(*condition, out, bound);
            visit(*then, out, bound);
            visit(*otherwise, out, bound);
        }
        NodeKind::Coalesce { value, default } => {
            visit(*value, out, bound);
            visit(*default, out, bound);
        }
        NodeKind::List { items, .. } => items.iter().for_each(|a| visit(*a, out, bound)),
        NodeKind::Map { entries } => entries.iter().for_each(|e| {
            visit(e.key, out, bound);
            visit(e.value, out, bound);
        }),
        NodeKind::Record { fields } => fields.iter().for_each(|(_, e)| visit(*e, out, bound)),
        NodeKind::Comprehension(c) => {
            visit(c.range, out, bound);
            bound.push(c.var);
            if let Some(v2) = c.var2 {
                bound.push(v2);
            }
            if let Some(f) = c.filter {
                visit(f, out, bound);
            }
            visit(c.body, out, bound);
        }
        NodeKind::Convert { value, .. } => visit(*value, out, bound),
        NodeKind::Interpolate(parts) => parts.iter().for_each(|a| visit(*a, out, bound)),
        NodeKind::Const(_)
        | NodeKind::TypeValue(_)
        | NodeKind::Now
        | NodeKind::Secret(_)
        | NodeKind::Setting(_)
        | NodeKind::Fail(_) => {}
    }
}
