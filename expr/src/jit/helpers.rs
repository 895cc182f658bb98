//! The run-time half of the JIT: the context compiled code runs with, and the
//! `extern "C"` helpers it calls for everything that is not plain arithmetic (unboxing
//! values, field access, strings, lists, errors). Each helper reuses the interpreter's
//! own functions, so both tiers compute the same values and the same errors.
//!
//! Compiled code passes values around as `*const Value` pointers into the locals, the
//! program's constants or this context's temporaries; every pointer it passes here was
//! produced by a helper or by the translator from those owners, and stays valid for
//! the duration of one call of the compiled function.

use std::sync::Arc;

use flow_ir::expr::Overload;
use flow_ir::types::Type;

use crate::error::{ErrorKind, EvalError};
use crate::functions;
use crate::interp;
use crate::value::{Value, compare, equals};

/// `null`, for pointers to absent things.
static NULL: Value = Value::Null;

/// The state one call of a compiled expression runs with.
#[repr(C)]
pub struct JitCtx {
    /// Non-zero once `error` holds the error being propagated; compiled code reads it
    /// (offset 0) after every call of a fallible helper.
    pub failed: u8,
    pub error: Option<EvalError>,
    /// Errors set aside by `&&`, `||`, `all` and `exists` while they look for an
    /// absorbing value (a stack: those forms nest).
    stash: Vec<Option<EvalError>>,
    /// Values made during the call (boxed so their addresses stay put).
    temps: Vec<Box<Value>>,
    /// Lists being built by `map`, `filter` and list literals.
    builders: Vec<Box<Vec<Value>>>,
}

impl JitCtx {
    pub fn new() -> JitCtx {
        JitCtx {
            failed: 0,
            error: None,
            stash: Vec::new(),
            temps: Vec::new(),
            builders: Vec::new(),
        }
    }

    /// Clears the per-call state, keeping allocations for the next call.
    pub fn reset(&mut self) {
        self.failed = 0;
        self.error = None;
        self.stash.clear();
        self.temps.clear();
        self.builders.clear();
    }

    fn fail(&mut self, e: EvalError) {
        self.failed = 1;
        self.error = Some(e);
    }

    fn temp(&mut self, v: Value) -> *const Value {
        let b = Box::new(v);
        let p: *const Value = &*b;
        self.temps.push(b);
        p
    }

    fn result(&mut self, r: Result<Value, EvalError>) -> *const Value {
        match r {
            Ok(v) => self.temp(v),
            Err(e) => {
                self.fail(e);
                &NULL
            }
        }
    }
}

impl Default for JitCtx {
    fn default() -> Self {
        JitCtx::new()
    }
}

/// The error a non-bool operand of `&&`, `||`, `!` or `? :` gives (as the interpreter).
pub fn not_bool(v: &Value) -> EvalError {
    EvalError::new(
        ErrorKind::NoSuchOverload,
        format!("no matching overload: expected bool, found {}", v.kind()),
    )
}

/// Error codes compiled code reports through [`jit_fail`].
pub mod code {
    pub const OVERFLOW_ADD: i64 = 1;
    pub const OVERFLOW_SUB: i64 = 2;
    pub const OVERFLOW_MUL: i64 = 3;
    pub const OVERFLOW_DIV: i64 = 4;
    pub const OVERFLOW_REM: i64 = 5;
    pub const OVERFLOW_NEG: i64 = 6;
    pub const DIV_ZERO: i64 = 7;
    pub const REM_ZERO: i64 = 8;
}

fn code_error(c: i64) -> EvalError {
    match c {
        code::OVERFLOW_ADD => EvalError::overflow("addition"),
        code::OVERFLOW_SUB => EvalError::overflow("subtraction"),
        code::OVERFLOW_MUL => EvalError::overflow("multiplication"),
        code::OVERFLOW_DIV => EvalError::overflow("division"),
        code::OVERFLOW_REM => EvalError::overflow("modulus"),
        code::OVERFLOW_NEG => EvalError::overflow("negation"),
        code::DIV_ZERO => EvalError::division_by_zero(),
        code::REM_ZERO => EvalError::modulus_by_zero(),
        _ => EvalError::invalid_argument("internal error: unknown JIT error code"),
    }
}

// Every helper below is called only by code the translator generated, with pointers
// that are valid for the call (see the module comment); a null `ctx` never occurs.

macro_rules! ctx {
    ($p:expr) => {
        // SAFETY: compiled code always passes the `JitCtx` it was called with.
        unsafe { &mut *$p }
    };
}

macro_rules! val {
    ($p:expr) => {
        // SAFETY: value pointers come from locals, constants or temporaries that
        // outlive the call (module comment).
        unsafe { &*$p }
    };
}

pub extern "C" fn jit_fail(ctx: *mut JitCtx, c: i64) {
    ctx!(ctx).fail(code_error(c));
}

pub extern "C" fn jit_fail_message(ctx: *mut JitCtx, msg: *const String) {
    let msg = val!(msg).clone();
    ctx!(ctx).fail(EvalError::new(ErrorKind::Unbound, msg));
}

pub extern "C" fn jit_stash(ctx: *mut JitCtx) -> i64 {
    let c = ctx!(ctx);
    let e = c.error.take();
    c.failed = 0;
    c.stash.push(e);
    (c.stash.len() - 1) as i64
}

pub extern "C" fn jit_unstash(ctx: *mut JitCtx, token: i64) {
    let c = ctx!(ctx);
    let idx = token.max(0) as usize;
    let e = c.stash.get_mut(idx).and_then(Option::take);
    c.stash.truncate(idx);
    c.error = e;
    c.failed = u8::from(c.error.is_some());
}

pub extern "C" fn jit_drop_stash(ctx: *mut JitCtx, token: i64) {
    let c = ctx!(ctx);
    c.stash.truncate(token.max(0) as usize);
}

pub extern "C" fn jit_clear_error(ctx: *mut JitCtx) {
    let c = ctx!(ctx);
    c.error = None;
    c.failed = 0;
}

pub extern "C" fn jit_unbox_int(ctx: *mut JitCtx, v: *const Value) -> i64 {
    match val!(v) {
        Value::Int(i) => *i,
        other => {
            ctx!(ctx).fail(EvalError::conversion(format!(
                "expected int, found {}",
                other.kind()
            )));
            0
        }
    }
}

pub extern "C" fn jit_unbox_uint(ctx: *mut JitCtx, v: *const Value) -> i64 {
    match val!(v) {
        Value::UInt(u) => *u as i64,
        other => {
            ctx!(ctx).fail(EvalError::conversion(format!(
                "expected uint, found {}",
                other.kind()
            )));
            0
        }
    }
}

pub extern "C" fn jit_unbox_double(ctx: *mut JitCtx, v: *const Value) -> f64 {
    match val!(v) {
        Value::Double(d) => *d,
        other => {
            ctx!(ctx).fail(EvalError::conversion(format!(
                "expected double, found {}",
                other.kind()
            )));
            0.0
        }
    }
}

pub extern "C" fn jit_unbox_bool(ctx: *mut JitCtx, v: *const Value) -> i8 {
    match val!(v) {
        Value::Bool(b) => i8::from(*b),
        other => {
            ctx!(ctx).fail(not_bool(other));
            0
        }
    }
}

pub extern "C" fn jit_box_int(ctx: *mut JitCtx, v: i64) -> *const Value {
    ctx!(ctx).temp(Value::Int(v))
}

pub extern "C" fn jit_box_uint(ctx: *mut JitCtx, v: i64) -> *const Value {
    ctx!(ctx).temp(Value::UInt(v as u64))
}

pub extern "C" fn jit_box_double(ctx: *mut JitCtx, v: f64) -> *const Value {
    ctx!(ctx).temp(Value::Double(v))
}

pub extern "C" fn jit_box_bool(ctx: *mut JitCtx, v: i8) -> *const Value {
    ctx!(ctx).temp(Value::Bool(v != 0))
}

/// `target.field`: a pointer into the record or map when the field is there.
pub extern "C" fn jit_field(
    ctx: *mut JitCtx,
    target: *const Value,
    index: i64,
    name: *const String,
    null_safe: i8,
) -> *const Value {
    let name: &str = val!(name);
    match val!(target) {
        Value::Record(r) => {
            let found = if index >= 0 {
                r.get_at(index as usize, name)
            } else {
                r.get(name)
            };
            match found {
                Some(v) => v,
                None => {
                    ctx!(ctx).fail(EvalError::no_such_key(name));
                    &NULL
                }
            }
        }
        Value::Map(m) => match m.get_str(name) {
            Some(v) => v,
            None => {
                ctx!(ctx).fail(EvalError::no_such_key(name));
                &NULL
            }
        },
        other => {
            let index = u32::try_from(index).ok();
            let r = interp::select(other, name, index, null_safe != 0);
            ctx!(ctx).result(r)
        }
    }
}

/// `target[i]` for an int index: a pointer into the list when in range.
pub extern "C" fn jit_index_int(ctx: *mut JitCtx, target: *const Value, i: i64) -> *const Value {
    if let Value::List(items) = val!(target)
        && let Some(v) = usize::try_from(i).ok().and_then(|k| items.get(k))
    {
        return v;
    }
    let r = interp::index_value(val!(target), &Value::Int(i), false);
    ctx!(ctx).result(r)
}

pub extern "C" fn jit_index(
    ctx: *mut JitCtx,
    target: *const Value,
    index: *const Value,
    optional: i8,
) -> *const Value {
    let r = interp::index_value(val!(target), val!(index), optional != 0);
    ctx!(ctx).result(r)
}

/// A builtin call on boxed arguments (`args` points to `n` value pointers).
pub extern "C" fn jit_call(
    ctx: *mut JitCtx,
    overload: *const Overload,
    args: *const *const Value,
    n: i64,
) -> *const Value {
    let overload = *val!(overload);
    let n = n.max(0) as usize;
    let mut values = Vec::with_capacity(n);
    for k in 0..n {
        // SAFETY: the translator stored exactly `n` valid value pointers at `args`.
        let p = unsafe { *args.add(k) };
        values.push(val!(p).clone());
    }
    let r = functions::call_tainted(overload, &values);
    ctx!(ctx).result(r)
}

/// A two-argument builtin whose result is a bool, without boxing the result.
pub extern "C" fn jit_call2_bool(
    ctx: *mut JitCtx,
    overload: *const Overload,
    a: *const Value,
    b: *const Value,
) -> i8 {
    let overload = *val!(overload);
    let (a, b) = (val!(a), val!(b));
    let r = match functions::call2(overload, a, b) {
        Some(r) => r,
        None => functions::call_tainted(overload, &[a.clone(), b.clone()]),
    };
    match r {
        Ok(Value::Bool(v)) => i8::from(v),
        Ok(other) => {
            ctx!(ctx).fail(EvalError::conversion(format!(
                "expected bool, found {}",
                other.kind()
            )));
            0
        }
        Err(e) => {
            ctx!(ctx).fail(e);
            0
        }
    }
}

/// A one-argument builtin on a borrowed value.
pub extern "C" fn jit_call1(
    ctx: *mut JitCtx,
    overload: *const Overload,
    a: *const Value,
) -> *const Value {
    let overload = *val!(overload);
    let r = functions::call_tainted(overload, std::slice::from_ref(val!(a)));
    ctx!(ctx).result(r)
}

/// `s.startsWith(a + b)` on strings without building `a + b`.
pub extern "C" fn jit_starts_with_concat(s: *const Value, a: *const Value, b: *const Value) -> i8 {
    match (val!(s).as_str(), val!(a).as_str(), val!(b).as_str()) {
        (Some(s), Some(a), Some(b)) => i8::from(s.starts_with(a) && s[a.len()..].starts_with(b)),
        _ => 0,
    }
}

pub extern "C" fn jit_equals(a: *const Value, b: *const Value) -> i8 {
    i8::from(equals(val!(a), val!(b)))
}

/// Ordering of two boxed values: -1, 0, 1, or 2 when unordered (NaN).
pub extern "C" fn jit_compare(ctx: *mut JitCtx, a: *const Value, b: *const Value) -> i64 {
    match compare(val!(a), val!(b)) {
        Ok(Some(o)) => o as i64,
        Ok(None) => 2,
        Err(e) => {
            ctx!(ctx).fail(e);
            2
        }
    }
}

pub extern "C" fn jit_list_len(
    ctx: *mut JitCtx,
    v: *const Value,
    what: *const ComprehensionName,
) -> i64 {
    match val!(v) {
        Value::List(items) => items.len() as i64,
        other => {
            let name = val!(what);
            ctx!(ctx).fail(EvalError::no_overload(name.0, &[other]));
            0
        }
    }
}

/// The name a comprehension reports in a "no such overload" error.
pub struct ComprehensionName(pub &'static str);

pub extern "C" fn jit_list_get(v: *const Value, i: i64) -> *const Value {
    match val!(v) {
        Value::List(items) => usize::try_from(i)
            .ok()
            .and_then(|k| items.get(k))
            .map_or(&NULL as *const Value, |x| x),
        _ => &NULL,
    }
}

pub extern "C" fn jit_list_new(ctx: *mut JitCtx, cap: i64) -> *mut Vec<Value> {
    let mut b = Box::new(Vec::with_capacity(cap.clamp(0, 1 << 20) as usize));
    let p: *mut Vec<Value> = &mut *b;
    ctx!(ctx).builders.push(b);
    p
}

fn push(ctx: *mut JitCtx, b: *mut Vec<Value>, v: Value) {
    // SAFETY: `b` came from `jit_list_new` in this call; the box it points into is
    // owned by `ctx.builders` and not otherwise borrowed.
    let list = unsafe { &mut *b };
    if list.len() >= interp::MAX_BUILT_LIST {
        ctx!(ctx).fail(EvalError::limit(format!(
            "a list built by an expression may hold at most {} elements",
            interp::MAX_BUILT_LIST
        )));
        return;
    }
    list.push(v);
}

pub extern "C" fn jit_list_push(ctx: *mut JitCtx, b: *mut Vec<Value>, v: *const Value) {
    push(ctx, b, val!(v).clone());
}

pub extern "C" fn jit_list_push_int(ctx: *mut JitCtx, b: *mut Vec<Value>, v: i64) {
    push(ctx, b, Value::Int(v));
}

pub extern "C" fn jit_list_push_uint(ctx: *mut JitCtx, b: *mut Vec<Value>, v: i64) {
    push(ctx, b, Value::UInt(v as u64));
}

pub extern "C" fn jit_list_push_double(ctx: *mut JitCtx, b: *mut Vec<Value>, v: f64) {
    push(ctx, b, Value::Double(v));
}

pub extern "C" fn jit_list_push_bool(ctx: *mut JitCtx, b: *mut Vec<Value>, v: i8) {
    push(ctx, b, Value::Bool(v != 0));
}

pub extern "C" fn jit_list_finish(ctx: *mut JitCtx, b: *mut Vec<Value>) -> *const Value {
    // SAFETY: as in `push`.
    let list = std::mem::take(unsafe { &mut *b });
    ctx!(ctx).temp(Value::List(Arc::new(list)))
}

pub extern "C" fn jit_convert(ctx: *mut JitCtx, v: *const Value, to: *const Type) -> *const Value {
    let r = crate::json::convert(val!(v), val!(to));
    ctx!(ctx).result(r)
}

/// Every helper with its name and signature, for registration with the JIT module.
pub struct Helper {
    pub name: &'static str,
    pub ptr: *const u8,
    pub params: &'static [Kind],
    pub ret: Option<Kind>,
}

/// A helper parameter or result kind: pointers and integers are 64-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    I64,
    F64,
    I8,
}

use Kind::{F64, I8, I64};

pub fn all() -> Vec<Helper> {
    macro_rules! h {
        ($f:ident, [$($p:expr),*], $r:expr) => {
            Helper { name: stringify!($f), ptr: $f as *const u8, params: &[$($p),*], ret: $r }
        };
    }
    vec![
        h!(jit_fail, [I64, I64], None),
        h!(jit_fail_message, [I64, I64], None),
        h!(jit_stash, [I64], Some(I64)),
        h!(jit_unstash, [I64, I64], None),
        h!(jit_drop_stash, [I64, I64], None),
        h!(jit_clear_error, [I64], None),
        h!(jit_unbox_int, [I64, I64], Some(I64)),
        h!(jit_unbox_uint, [I64, I64], Some(I64)),
        h!(jit_unbox_double, [I64, I64], Some(F64)),
        h!(jit_unbox_bool, [I64, I64], Some(I8)),
        h!(jit_box_int, [I64, I64], Some(I64)),
        h!(jit_box_uint, [I64, I64], Some(I64)),
        h!(jit_box_double, [I64, F64], Some(I64)),
        h!(jit_box_bool, [I64, I8], Some(I64)),
        h!(jit_field, [I64, I64, I64, I64, I8], Some(I64)),
        h!(jit_index_int, [I64, I64, I64], Some(I64)),
        h!(jit_index, [I64, I64, I64, I8], Some(I64)),
        h!(jit_call, [I64, I64, I64, I64], Some(I64)),
        h!(jit_equals, [I64, I64], Some(I8)),
        h!(jit_call2_bool, [I64, I64, I64, I64], Some(I8)),
        h!(jit_call1, [I64, I64, I64], Some(I64)),
        h!(jit_starts_with_concat, [I64, I64, I64], Some(I8)),
        h!(jit_compare, [I64, I64, I64], Some(I64)),
        h!(jit_list_len, [I64, I64, I64], Some(I64)),
        h!(jit_list_get, [I64, I64], Some(I64)),
        h!(jit_list_new, [I64, I64], Some(I64)),
        h!(jit_list_push, [I64, I64, I64], None),
        h!(jit_list_push_int, [I64, I64, I64], None),
        h!(jit_list_push_uint, [I64, I64, I64], None),
        h!(jit_list_push_double, [I64, I64, F64], None),
        h!(jit_list_push_bool, [I64, I64, I8], None),
        h!(jit_list_finish, [I64, I64], Some(I64)),
        h!(jit_convert, [I64, I64, I64], Some(I64)),
    ]
}
