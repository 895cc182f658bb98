//! The reference interpreter: evaluates typed expression nodes over local slots with
//! CEL's semantics. It defines the meaning of every expression; the JIT must agree.

use std::sync::Arc;

use flow_ir::expr::{
    Comprehension, ComprehensionKind, Const, ExprArena, ExprId, Node, NodeKind, Overload,
};

use crate::error::{ErrorKind, EvalError};
use crate::functions;
use crate::json::convert;
use crate::time::{Duration, Timestamp};
use crate::value::{Map, Record, Value, sort_order};

/// What an expression may ask of the place it runs in.
pub trait Context {
    /// The current instant. The workflow runtime journals it, so a resumed run sees
    /// the same value.
    fn now(&self) -> Timestamp;
    /// A credential of the connection (integration declarations only).
    fn secret(&self, _name: &str) -> Option<Arc<str>> {
        None
    }
    /// A connection setting (integration declarations only).
    fn setting(&self, _name: &str) -> Option<Value> {
        None
    }
}

/// A context whose clock is the system clock and which has no credentials.
pub struct SystemContext;

impl Context for SystemContext {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A context with a fixed instant (tests, replay).
pub struct FixedContext(pub Timestamp);

impl Context for FixedContext {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// Stack left before recursion grows the stack, and how much it grows by.
pub(crate) const STACK_RED_ZONE: usize = 128 * 1024;
pub(crate) const STACK_GROWTH: usize = 4 * 1024 * 1024;

/// The longest list an expression may build (a guard against runaway memory; inputs
/// may be larger).
pub const MAX_BUILT_LIST: usize = 100_000_000;

/// Evaluates `root` of `arena` with the interpreter. `locals` holds one slot per local
/// of the arena (see [`new_locals`]); comprehension variables are written into their
/// slots during evaluation.
pub fn interpret(
    arena: &ExprArena,
    consts: &[Option<Value>],
    root: ExprId,
    locals: &mut [Value],
    ctx: &dyn Context,
) -> Result<Value, EvalError> {
    Interpreter { arena, consts, ctx }.eval(root, locals)
}

/// One `null` slot per local of the arena.
pub fn new_locals(arena: &ExprArena) -> Vec<Value> {
    vec![Value::Null; arena.locals.len()]
}

/// The constant values of an arena's `Const` nodes, built once so that evaluation does
/// not allocate strings for literals.
pub fn constants(arena: &ExprArena) -> Vec<Option<Value>> {
    arena
        .nodes
        .iter()
        .map(|n| match &n.kind {
            NodeKind::Const(c) => Some(const_value(c)),
            NodeKind::TypeValue(t) => Some(Value::Type(Arc::from(type_value_name(t)))),
            _ => None,
        })
        .collect()
}

fn type_value_name(t: &flow_ir::types::Type) -> &'static str {
    t.cel_type_name()
}

pub fn const_value(c: &Const) -> Value {
    match c {
        Const::Null => Value::Null,
        Const::Bool(b) => Value::Bool(*b),
        Const::Int(i) => Value::Int(*i),
        Const::UInt(u) => Value::UInt(*u),
        Const::Double(d) => Value::Double(*d),
        Const::String(s) => Value::String(Arc::from(s.as_str())),
        Const::Bytes(b) => Value::Bytes(Arc::from(b.as_slice())),
        Const::Duration(n) => {
            Value::Duration(Duration::from_nanos(i128::from(*n)).unwrap_or_default())
        }
    }
}

struct Interpreter<'a> {
    arena: &'a ExprArena,
    consts: &'a [Option<Value>],
    ctx: &'a dyn Context,
}

fn internal(what: &str) -> EvalError {
    EvalError::new(
        ErrorKind::InvalidArgument,
        format!("internal error: {what}"),
    )
}

fn as_bool(v: Value) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(b),
        other => Err(EvalError::new(
            ErrorKind::NoSuchOverload,
            format!(
                "no matching overload: expected bool, found {}",
                other.kind()
            ),
        )),
    }
}

impl Interpreter<'_> {
    fn node(&self, id: ExprId) -> Result<&Node, EvalError> {
        self.arena
            .node(id)
            .ok_or_else(|| internal("unknown expression node"))
    }

    fn eval(&self, id: ExprId, locals: &mut [Value]) -> Result<Value, EvalError> {
        // Deep expressions (the parser allows 512 levels) must not overflow a small
        // thread stack: grow it on demand.
        stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || self.eval_node(id, locals))
    }

    fn eval_node(&self, id: ExprId, locals: &mut [Value]) -> Result<Value, EvalError> {
        let node = self.node(id)?;
        match &node.kind {
            NodeKind::Const(c) => Ok(match self.consts.get(id.0 as usize) {
                Some(Some(v)) => v.clone(),
                _ => const_value(c),
            }),
            NodeKind::Local(l) => locals
                .get(l.0 as usize)
                .cloned()
                .ok_or_else(|| internal("missing local slot")),
            NodeKind::Field {
                target,
                field,
                index,
                null_safe,
            } => {
                // Borrow a local in place rather than cloning the record it holds.
                if let Some(NodeKind::Local(l)) = self.arena.node(*target).map(|n| &n.kind) {
                    let v = locals
                        .get(l.0 as usize)
                        .ok_or_else(|| internal("missing local slot"))?;
                    return select(v, field, *index, *null_safe);
                }
                let v = self.eval(*target, locals)?;
                select(&v, field, *index, *null_safe)
            }
            NodeKind::OptionalField { target, field } => {
                let v = self.eval(*target, locals)?;
                optional_select(&v, field)
            }
            NodeKind::Index {
                target,
                index,
                optional,
            } => {
                let t = self.eval(*target, locals)?;
                let i = self.eval(*index, locals)?;
                index_value(&t, &i, *optional)
            }
            NodeKind::Call { overload, args } => self.call(*overload, args, locals),
            NodeKind::And(a, b) => self.logic(*a, *b, false, locals),
            NodeKind::Or(a, b) => self.logic(*a, *b, true, locals),
            NodeKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                if self.eval_bool(*condition, locals)? {
                    self.eval(*then, locals)
                } else {
                    self.eval(*otherwise, locals)
                }
            }
            NodeKind::Coalesce { value, default } => match self.eval(*value, locals) {
                Ok(Value::Null) | Ok(Value::Optional(None)) => self.eval(*default, locals),
                Ok(Value::Optional(Some(v))) => Ok((*v).clone()),
                Ok(v) => Ok(v),
                // An absent key defaults too: `input.maybe ?? 0` over JSON.
                Err(e) if e.kind == ErrorKind::NoSuchKey => self.eval(*default, locals),
                Err(e) => Err(e),
            },
            NodeKind::List { items, optional } => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let v = self.eval(*item, locals)?;
                    if optional.get(i).copied().unwrap_or(false) {
                        match v {
                            Value::Optional(Some(inner)) => out.push((*inner).clone()),
                            Value::Optional(None) => {}
                            other => {
                                return Err(EvalError::no_overload(
                                    "optional list element",
                                    &[&other],
                                ));
                            }
                        }
                    } else {
                        out.push(v);
                    }
                }
                Ok(Value::list(out))
            }
            NodeKind::Map { entries } => {
                let mut map = Map::default();
                for entry in entries {
                    let k = self.eval(entry.key, locals)?;
                    let v = self.eval(entry.value, locals)?;
                    let v = if entry.optional {
                        match v {
                            Value::Optional(Some(inner)) => (*inner).clone(),
                            Value::Optional(None) => continue,
                            other => {
                                return Err(EvalError::no_overload(
                                    "optional map entry",
                                    &[&other],
                                ));
                            }
                        }
                    } else {
                        v
                    };
                    if map.insert(k, v)? {
                        return Err(EvalError::invalid_argument("Failed with repeated key"));
                    }
                }
                Ok(Value::Map(Arc::new(map)))
            }
            NodeKind::Record { fields } => {
                let mut out = Vec::with_capacity(fields.len());
                for (name, value) in fields {
                    out.push((Arc::from(name.as_str()), self.eval(*value, locals)?));
                }
                Ok(Value::Record(Arc::new(Record { fields: out })))
            }
            NodeKind::Comprehension(c) => self.comprehension(c, locals),
            NodeKind::Convert { value, to } => {
                let v = self.eval(*value, locals)?;
                convert(&v, to)
            }
            NodeKind::Interpolate(parts) => {
                let mut out = String::new();
                let mut secret = false;
                for part in parts {
                    let v = self.eval(*part, locals)?;
                    secret |= v.is_secret();
                    match v.as_str() {
                        Some(s) => out.push_str(s),
                        None => out.push_str(&functions::stringify(&v)?),
                    }
                }
                Ok(if secret {
                    Value::Secret(out.into())
                } else {
                    Value::String(out.into())
                })
            }
            NodeKind::Has { target, field } => {
                let v = self.eval(*target, locals)?;
                has(&v, field)
            }
            NodeKind::TypeValue(t) => Ok(match self.consts.get(id.0 as usize) {
                Some(Some(v)) => v.clone(),
                _ => Value::Type(Arc::from(t.cel_type_name())),
            }),
            NodeKind::Now => Ok(Value::Timestamp(self.ctx.now())),
            NodeKind::Secret(name) => self.ctx.secret(name).map(Value::Secret).ok_or_else(|| {
                EvalError::new(
                    ErrorKind::Unbound,
                    format!("no secret named {name:?} is configured"),
                )
            }),
            NodeKind::Setting(name) => self.ctx.setting(name).ok_or_else(|| {
                EvalError::new(
                    ErrorKind::Unbound,
                    format!("no setting named {name:?} is configured"),
                )
            }),
            NodeKind::Fail(message) => Err(EvalError::new(ErrorKind::Unbound, message.clone())),
        }
    }

    /// `&&` (`absorb` false) and `||` (`absorb` true): the absorbing value wins over an
    /// error on either side, so the operators are commutative.
    fn logic(
        &self,
        a: ExprId,
        b: ExprId,
        absorb: bool,
        locals: &mut [Value],
    ) -> Result<Value, EvalError> {
        self.logic_bool(a, b, absorb, locals).map(Value::Bool)
    }

    /// `&&` / `||` on bools, without building values for the intermediate results.
    fn logic_bool(
        &self,
        a: ExprId,
        b: ExprId,
        absorb: bool,
        locals: &mut [Value],
    ) -> Result<bool, EvalError> {
        let left = self.eval_bool(a, locals);
        if let Ok(l) = left
            && l == absorb
        {
            return Ok(absorb);
        }
        let right = self.eval_bool(b, locals);
        match (left, right) {
            (_, Ok(r)) if r == absorb => Ok(absorb),
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e),
            (Ok(_), Ok(_)) => Ok(!absorb),
        }
    }

    /// Evaluates a condition: `&&`, `||`, `!` and comparisons of locals and constants
    /// directly to a bool; anything else through [`Self::eval`].
    fn eval_bool(&self, id: ExprId, locals: &mut [Value]) -> Result<bool, EvalError> {
        let node = self.node(id)?;
        match &node.kind {
            NodeKind::And(a, b) => self.logic_bool(*a, *b, false, locals),
            NodeKind::Or(a, b) => self.logic_bool(*a, *b, true, locals),
            NodeKind::Call { overload, args } if args.len() == 2 && is_comparison(*overload) => {
                let a = self.operand(args[0], locals)?;
                let b = self.operand(args[1], locals)?;
                let (a, b) = (a.get(self, locals), b.get(self, locals));
                functions::compare_bool(*overload, a, b)
            }
            _ => as_bool(self.eval(id, locals)?),
        }
    }

    fn call(
        &self,
        overload: Overload,
        args: &[ExprId],
        locals: &mut [Value],
    ) -> Result<Value, EvalError> {
        // `or` and `orValue` do not evaluate their argument when the optional has a value.
        if matches!(overload, Overload::Or | Overload::OrValue)
            && let [recv, alt] = args
        {
            let r = self.eval(*recv, locals)?;
            return match r {
                Value::Optional(Some(v)) => Ok(if overload == Overload::Or {
                    Value::Optional(Some(v))
                } else {
                    (*v).clone()
                }),
                Value::Optional(None) => {
                    let a = self.eval(*alt, locals)?;
                    functions::call(overload, &[Value::Optional(None), a])
                }
                other => Err(EvalError::no_overload(
                    if overload == Overload::Or {
                        "or"
                    } else {
                        "orValue"
                    },
                    &[&other],
                )),
            };
        }
        // `s.startsWith(a + b)` without building `a + b`.
        if overload == Overload::StartsWith
            && let [s, concat] = args
            && let Some((a, b)) = self.string_concat(*concat)
        {
            let s = self.operand(*s, locals)?;
            let a = self.operand(a, locals)?;
            let b = self.operand(b, locals)?;
            let (s, a, b) = (
                s.get(self, locals),
                a.get(self, locals),
                b.get(self, locals),
            );
            if let (Some(s), Some(a), Some(b)) = (s.as_str(), a.as_str(), b.as_str()) {
                return Ok(Value::Bool(
                    s.len() >= a.len() + b.len() && s.starts_with(a) && s[a.len()..].starts_with(b),
                ));
            }
        }
        // One or two arguments: read locals and constants in place instead of cloning them.
        match args {
            [a] => {
                let a = self.operand(*a, locals)?;
                return functions::call_tainted(
                    overload,
                    std::slice::from_ref(a.get(self, locals)),
                );
            }
            [a, b] => {
                let a = self.operand(*a, locals)?;
                let b = self.operand(*b, locals)?;
                let (a, b) = (a.get(self, locals), b.get(self, locals));
                if let Some(r) = functions::call2(overload, a, b) {
                    return r;
                }
                return functions::call_tainted(overload, &[a.clone(), b.clone()]);
            }
            _ => {}
        }
        let mut values: smallvec_like::Args = smallvec_like::Args::new();
        for arg in args {
            values.push(self.eval(*arg, locals)?);
        }
        functions::call_tainted(overload, values.as_slice())
    }

    /// Evaluates an argument, keeping locals and constants by reference (they cannot
    /// fail, so evaluation order and errors are unchanged).
    fn operand(&self, id: ExprId, locals: &mut [Value]) -> Result<Operand, EvalError> {
        match self.arena.node(id).map(|n| &n.kind) {
            Some(NodeKind::Local(l)) if (l.0 as usize) < locals.len() => {
                Ok(Operand::Local(l.0 as usize))
            }
            Some(NodeKind::Const(_) | NodeKind::TypeValue(_))
                if matches!(self.consts.get(id.0 as usize), Some(Some(_))) =>
            {
                Ok(Operand::Const(id.0 as usize))
            }
            _ => Ok(Operand::Owned(self.eval(id, locals)?)),
        }
    }

    /// `(a, b)` when `id` is `a + b` on strings.
    fn string_concat(&self, id: ExprId) -> Option<(ExprId, ExprId)> {
        let node = self.arena.node(id)?;
        match (&node.kind, &node.ty) {
            (
                NodeKind::Call {
                    overload: Overload::Add,
                    args,
                },
                flow_ir::types::Type::String,
            ) => match args.as_slice() {
                [a, b] => Some((*a, *b)),
                _ => None,
            },
            _ => None,
        }
    }

    fn comprehension(&self, c: &Comprehension, locals: &mut [Value]) -> Result<Value, EvalError> {
        use ComprehensionKind as K;
        let range = self.eval(c.range, locals)?;
        if matches!(c.kind, K::OptMap | K::OptFlatMap) {
            return match range {
                Value::Optional(None) => Ok(Value::none()),
                Value::Optional(Some(v)) => {
                    set(locals, c.var.0, (*v).clone())?;
                    let r = self.eval(c.body, locals)?;
                    if c.kind == K::OptMap {
                        Ok(Value::some(r))
                    } else {
                        match r {
                            Value::Optional(_) => Ok(r),
                            other => Err(EvalError::no_overload("optFlatMap", &[&other])),
                        }
                    }
                }
                other => Err(EvalError::no_overload("optMap", &[&other])),
            };
        }
        // (first variable, second variable) pairs: list (elem) or (index, elem); map (key) or (key, value).
        let pairs: Vec<(Value, Value)> = match &range {
            Value::List(items) => {
                if c.var2.is_some() {
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                        .collect()
                } else {
                    return self.over_list(c, items, &range, locals);
                }
            }
            Value::Map(m) => m.entries.clone(),
            Value::Record(r) => r
                .fields
                .iter()
                .map(|(k, v)| (Value::String(k.clone()), v.clone()))
                .collect(),
            other => return Err(EvalError::no_overload(&format!("{:?}", c.kind), &[other])),
        };
        let mut state = Fold::new(c.kind, pairs.len());
        for (a, b) in pairs {
            set(locals, c.var.0, a.clone())?;
            if let Some(v2) = c.var2 {
                set(locals, v2.0, b.clone())?;
            }
            let elem = if c.var2.is_some() && c.kind == K::TransformMap {
                a
            } else if c.var2.is_some() {
                b
            } else {
                a
            };
            if !self.step(c, &mut state, elem, locals)? {
                break;
            }
        }
        state.finish(c.kind, &range)
    }

    fn over_list(
        &self,
        c: &Comprehension,
        items: &Arc<Vec<Value>>,
        range: &Value,
        locals: &mut [Value],
    ) -> Result<Value, EvalError> {
        let mut state = Fold::new(c.kind, items.len());
        for item in items.iter() {
            set(locals, c.var.0, item.clone())?;
            if !self.step(c, &mut state, item.clone(), locals)? {
                break;
            }
        }
        state.finish(c.kind, range)
    }

    /// Folds one element in; `false` stops the loop early.
    fn step(
        &self,
        c: &Comprehension,
        state: &mut Fold,
        elem: Value,
        locals: &mut [Value],
    ) -> Result<bool, EvalError> {
        use ComprehensionKind as K;
        if let Some(f) = c.filter
            && !self.eval_bool(f, locals)?
        {
            return Ok(true);
        }
        match c.kind {
            K::All | K::Exists => {
                let stop_on = c.kind == K::Exists;
                match self.eval_bool(c.body, locals) {
                    Ok(b) if b == stop_on => {
                        state.decided = Some(stop_on);
                        return Ok(false);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if state.error.is_none() {
                            state.error = Some(e);
                        }
                    }
                }
            }
            K::ExistsOne | K::CountIf => {
                if self.eval_bool(c.body, locals)? {
                    state.count += 1;
                }
            }
            K::Map | K::TransformList => {
                let v = self.eval(c.body, locals)?;
                state.push(v)?;
            }
            K::Filter => {
                if self.eval_bool(c.body, locals)? {
                    state.push(elem)?;
                }
            }
            K::TransformMap => {
                let v = self.eval(c.body, locals)?;
                state.pairs.push((elem, v));
            }
            K::SortBy | K::GroupBy => {
                let key = self.eval(c.body, locals)?;
                state.pairs.push((key, elem));
            }
            K::OptMap | K::OptFlatMap => {}
        }
        Ok(true)
    }
}

fn is_comparison(o: Overload) -> bool {
    matches!(
        o,
        Overload::Eq | Overload::Ne | Overload::Lt | Overload::Le | Overload::Gt | Overload::Ge
    )
}

fn set(locals: &mut [Value], slot: u32, v: Value) -> Result<(), EvalError> {
    match locals.get_mut(slot as usize) {
        Some(s) => {
            *s = v;
            Ok(())
        }
        None => Err(internal("missing comprehension slot")),
    }
}

/// An evaluated argument: a local or constant read in place, or a computed value.
enum Operand {
    Local(usize),
    Const(usize),
    Owned(Value),
}

static NULL: Value = Value::Null;

impl Operand {
    fn get<'a>(&'a self, i: &'a Interpreter<'_>, locals: &'a [Value]) -> &'a Value {
        match self {
            Operand::Local(k) => locals.get(*k).unwrap_or(&NULL),
            Operand::Const(k) => i.consts.get(*k).and_then(Option::as_ref).unwrap_or(&NULL),
            Operand::Owned(v) => v,
        }
    }
}

/// The accumulator of a comprehension.
struct Fold {
    decided: Option<bool>,
    error: Option<EvalError>,
    count: i64,
    items: Vec<Value>,
    pairs: Vec<(Value, Value)>,
}

impl Fold {
    fn new(kind: ComprehensionKind, n: usize) -> Fold {
        use ComprehensionKind as K;
        let cap = if matches!(kind, K::Map | K::TransformList) {
            n
        } else {
            0
        };
        let pcap = if matches!(kind, K::SortBy | K::GroupBy | K::TransformMap) {
            n
        } else {
            0
        };
        Fold {
            decided: None,
            error: None,
            count: 0,
            items: Vec::with_capacity(cap),
            pairs: Vec::with_capacity(pcap),
        }
    }

    fn push(&mut self, v: Value) -> Result<(), EvalError> {
        if self.items.len() >= MAX_BUILT_LIST {
            return Err(EvalError::limit(format!(
                "a list built by an expression may hold at most {MAX_BUILT_LIST} elements"
            )));
        }
        self.items.push(v);
        Ok(())
    }

    fn finish(self, kind: ComprehensionKind, _range: &Value) -> Result<Value, EvalError> {
        use ComprehensionKind as K;
        match kind {
            K::All | K::Exists => match (self.decided, self.error) {
                (Some(b), _) => Ok(Value::Bool(b)),
                (None, Some(e)) => Err(e),
                (None, None) => Ok(Value::Bool(kind == K::All)),
            },
            K::ExistsOne => Ok(Value::Bool(self.count == 1)),
            K::CountIf => Ok(Value::Int(self.count)),
            K::Map | K::Filter | K::TransformList => Ok(Value::list(self.items)),
            K::TransformMap => Ok(Value::Map(Arc::new(Map::new(self.pairs)?))),
            K::SortBy => {
                let mut pairs = self.pairs;
                let mut error = None;
                pairs.sort_by(|a, b| match sort_order(&a.0, &b.0) {
                    Ok(o) => o,
                    Err(e) => {
                        error.get_or_insert(e);
                        std::cmp::Ordering::Equal
                    }
                });
                match error {
                    Some(e) => Err(e),
                    None => Ok(Value::list(pairs.into_iter().map(|(_, v)| v).collect())),
                }
            }
            K::GroupBy => functions::group(self.pairs),
            K::OptMap | K::OptFlatMap => Ok(Value::none()),
        }
    }
}

/// `v.field` (`index` is the field's static position in a record).
pub fn select(
    v: &Value,
    field: &str,
    index: Option<u32>,
    null_safe: bool,
) -> Result<Value, EvalError> {
    match v {
        Value::Record(r) => {
            let found = match index {
                Some(i) => r.get_at(i as usize, field),
                None => r.get(field),
            };
            found.cloned().ok_or_else(|| EvalError::no_such_key(field))
        }
        Value::Map(m) => m
            .get_str(field)
            .cloned()
            .ok_or_else(|| EvalError::no_such_key(field)),
        Value::Null if null_safe => Ok(Value::Null),
        Value::Optional(None) => Ok(Value::none()),
        Value::Optional(Some(inner)) => optional_select(inner, field),
        other => Err(EvalError::no_overload(
            &format!("field selection .{field}"),
            &[other],
        )),
    }
}

/// `v.?field`: an optional, empty when the field or key is absent.
pub fn optional_select(v: &Value, field: &str) -> Result<Value, EvalError> {
    match v {
        Value::Record(r) => Ok(r
            .get(field)
            .map_or(Value::none(), |x| Value::some(x.clone()))),
        Value::Map(m) => Ok(m
            .get_str(field)
            .map_or(Value::none(), |x| Value::some(x.clone()))),
        Value::Optional(None) => Ok(Value::none()),
        Value::Optional(Some(inner)) => optional_select(inner, field),
        other => Err(EvalError::no_overload(
            &format!("field selection .?{field}"),
            &[other],
        )),
    }
}

fn list_index(i: &Value, len: usize) -> Result<Option<usize>, EvalError> {
    let n: i128 = match i {
        Value::Int(n) => i128::from(*n),
        Value::UInt(n) => i128::from(*n),
        Value::Double(d) if d.fract() == 0.0 && d.is_finite() => *d as i128,
        Value::Double(d) => {
            return Err(EvalError::invalid_argument(format!(
                "invalid list index {d}"
            )));
        }
        other => return Err(EvalError::no_overload("list index", &[other])),
    };
    Ok(if n >= 0 && n < len as i128 {
        Some(n as usize)
    } else {
        None
    })
}

/// `t[i]`, or `t[?i]` when `optional`.
pub fn index_value(t: &Value, i: &Value, optional: bool) -> Result<Value, EvalError> {
    let wrap = |found: Option<&Value>, missing: EvalError| -> Result<Value, EvalError> {
        match (found, optional) {
            (Some(v), false) => Ok(v.clone()),
            (Some(v), true) => Ok(Value::some(v.clone())),
            (None, true) => Ok(Value::none()),
            (None, false) => Err(missing),
        }
    };
    match t {
        Value::List(items) => {
            let idx = list_index(i, items.len())?;
            wrap(
                idx.and_then(|k| items.get(k)),
                EvalError::index_out_of_range(format!("{i:?}"), items.len()),
            )
        }
        Value::Map(m) => wrap(m.get(i), EvalError::no_such_key(&format!("{i:?}"))),
        Value::Record(r) => match i.as_str() {
            Some(name) => wrap(r.get(name), EvalError::no_such_key(name)),
            None => wrap(None, EvalError::no_such_key(&format!("{i:?}"))),
        },
        Value::Optional(None) => Ok(Value::none()),
        Value::Optional(Some(inner)) => index_value(inner, i, true),
        other => Err(EvalError::no_overload("index", &[other, i])),
    }
}

fn has(v: &Value, field: &str) -> Result<Value, EvalError> {
    Ok(Value::Bool(match v {
        Value::Map(m) => m.get_str(field).is_some(),
        Value::Record(r) => r.get(field).is_some_and(|x| !matches!(x, Value::Null)),
        Value::Optional(None) | Value::Null => false,
        Value::Optional(Some(inner)) => return has(inner, field),
        other => return Err(EvalError::no_overload(&format!("has(.{field})"), &[other])),
    }))
}

/// Argument storage without a heap allocation for up to four arguments.
mod smallvec_like {
    use crate::value::Value;

    pub struct Args {
        inline: [Value; 4],
        len: usize,
        spill: Vec<Value>,
    }

    impl Args {
        pub fn new() -> Args {
            Args {
                inline: [Value::Null, Value::Null, Value::Null, Value::Null],
                len: 0,
                spill: Vec::new(),
            }
        }

        pub fn push(&mut self, v: Value) {
            if self.len < 4 && self.spill.is_empty() {
                if let Some(slot) = self.inline.get_mut(self.len) {
                    *slot = v;
                }
                self.len += 1;
            } else {
                if self.spill.is_empty() {
                    self.spill
                        .extend(self.inline.iter().take(self.len).cloned());
                }
                self.spill.push(v);
                self.len += 1;
            }
        }

        pub fn as_slice(&self) -> &[Value] {
            if self.spill.is_empty() {
                self.inline.get(..self.len).unwrap_or(&[])
            } else {
                &self.spill
            }
        }
    }
}
