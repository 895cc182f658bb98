//! The expression checker: types an AST expression against a [`Scope`] with CEL's
//! checked-mode rules and Flow's additions, resolves every call against the builtin
//! catalogue and writes the typed nodes into an [`ExprArena`].

use std::collections::HashMap;

use flow_grammar::ast::{self, Access, BinaryOp, ExprKind, StringPart, UnaryOp};
use flow_grammar::{Diagnostic, Span, codes};

use super::catalogue::{self, Sig, Signature};
use flow_ir::expr::*;
use flow_ir::types::{Type, is_assignable, unify};
use shape::Shape;

mod calls;
mod macros;
mod shape;

pub use calls::{Method, display_signature, method_result, methods_of};

/// The names visible where an expression is written.
pub trait Scope {
    /// A variable visible here: workflow params, step results, lets, loop vars, `event`, `err`,
    /// and in integration declarations `response`, `payload`, action params, `target`, `message`.
    fn lookup(&self, name: &str) -> Option<(LocalId, Type)>;
    /// All visible names, for did-you-mean suggestions.
    fn names(&self) -> Vec<String>;
    /// Whether `secret("..")`/`setting("..")` may be called (integration declarations only).
    fn allows_credentials(&self) -> bool {
        false
    }
}

/// A scope with no names (constant expressions, tests).
pub struct EmptyScope;

impl Scope for EmptyScope {
    fn lookup(&self, _: &str) -> Option<(LocalId, Type)> {
        None
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Named variables, the i-th bound to local `i` (`flow eval`'s `input` and `--var`s, the
/// conformance harness's bindings, tests).
pub struct Variables(pub Vec<(String, Type)>);

impl Scope for Variables {
    fn lookup(&self, name: &str) -> Option<(LocalId, Type)> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some((LocalId(i as u32), self.0[i].1.clone()))
    }
    fn names(&self) -> Vec<String> {
        self.0.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// How strictly to check.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions<'a> {
    /// Unchecked CEL: type errors, unknown names and unknown functions are not reported
    /// but become run-time errors (typed `dyn`). Used by the conformance harness for
    /// cases that CEL evaluates without its checker; workflows never use it.
    pub relaxed: bool,
    /// Functions declared by the host without an implementation (the conformance
    /// suite's type-deduction cases): calls are typed by these signatures and fail if
    /// evaluated. Their `overload` field is ignored.
    pub declared: &'a [Signature],
}

/// Checks `expr` in `scope` into `arena`, converting it to `expected` when given.
/// Never fails: problems are pushed to `diagnostics` and the node is typed
/// [`Type::Error`] so that one mistake is reported once.
pub fn check_expression(
    expr: &ast::Expr,
    scope: &dyn Scope,
    arena: &mut ExprArena,
    expected: Option<&Type>,
    diagnostics: &mut Vec<Diagnostic>,
) -> ExprId {
    check_expression_with(
        expr,
        scope,
        arena,
        expected,
        CheckOptions::default(),
        diagnostics,
    )
}

/// [`check_expression`] with options.
pub fn check_expression_with(
    expr: &ast::Expr,
    scope: &dyn Scope,
    arena: &mut ExprArena,
    expected: Option<&Type>,
    options: CheckOptions<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> ExprId {
    let mut checker = Checker {
        scope,
        arena,
        diagnostics,
        bound: Vec::new(),
        relaxed: options.relaxed,
        declared: options.declared,
        shapes: HashMap::new(),
    };
    let id = checker.expr(expr);
    match expected {
        Some(to) => coerce(checker.arena, id, to, checker.diagnostics),
        None => id,
    }
}

/// Converts an already-checked expression to `to`: inserts a [`NodeKind::Convert`]
/// where the value must be checked or reshaped at run time (from `dyn`, record width
/// subtyping, a record used as a map), accepts `T` for `T?` as it is, or reports a
/// type mismatch at the expression's span.
pub fn coerce(
    arena: &mut ExprArena,
    id: ExprId,
    to: &Type,
    diagnostics: &mut Vec<Diagnostic>,
) -> ExprId {
    let Some(from) = arena.ty(id).cloned() else {
        return id;
    };
    if &from == to
        || matches!(from, Type::Error)
        || matches!(to, Type::Error | Type::Dyn) && !from.contains_secret()
    {
        return id;
    }
    let span = arena.span(id);
    if !is_assignable(&from, to) {
        let mut d = Diagnostic::new(
            codes::TYPE_MISMATCH,
            span,
            format!("expected `{to}`, found `{from}`"),
        )
        .with_label(format!("this is `{from}`"));
        if from.contains_secret() && !to.contains_secret() {
            d = d.with_note(
                "a secret can only be passed where a credential is expected (auth, headers)",
            );
        } else if let (Type::Optional(inner), false) = (&from, to.is_optional())
            && is_assignable(inner, to)
        {
            d = d.with_help("this value may be null: give a default with `??`");
        }
        diagnostics.push(d);
        return id;
    }
    if needs_conversion(&from, to) {
        return arena.push(
            Node {
                kind: NodeKind::Convert {
                    value: id,
                    to: to.clone(),
                },
                ty: to.clone(),
            },
            span,
        );
    }
    id
}

/// Whether a value of static type `from` must be checked or reshaped to have type `to`.
fn needs_conversion(from: &Type, to: &Type) -> bool {
    match (from, to) {
        (_, Type::Dyn) | (Type::Error, _) | (_, Type::Error) => false,
        (Type::Dyn, _) => true,
        _ if from == to => false,
        (Type::Null, _) => false,
        (Type::Optional(f), Type::Optional(t)) => needs_conversion(f, t),
        (f, Type::Optional(t)) => needs_conversion(f, t),
        (Type::List(f), Type::List(t)) => needs_conversion(f, t),
        (Type::Map(fk, fv), Type::Map(tk, tv)) => {
            needs_conversion(fk, tk) || needs_conversion(fv, tv)
        }
        (Type::CelOptional(f), Type::CelOptional(t)) => needs_conversion(f, t),
        (Type::Record(f), Type::Record(t)) => {
            f.field_names().ne(t.field_names())
                || f.fields
                    .iter()
                    .zip(&t.fields)
                    .any(|(a, b)| needs_conversion(&a.ty, &b.ty))
        }
        (Type::Record(_), Type::Map(..)) => true,
        _ => false,
    }
}

struct Checker<'a> {
    scope: &'a dyn Scope,
    arena: &'a mut ExprArena,
    diagnostics: &'a mut Vec<Diagnostic>,
    /// Comprehension variables in scope, innermost last.
    bound: Vec<(String, LocalId, Type)>,
    relaxed: bool,
    declared: &'a [Signature],
    /// The shapes of the nodes whose type has a free part (literals holding an empty
    /// list or map, `optional.none()`); see [`Shape`].
    shapes: HashMap<ExprId, Shape>,
}

fn type_value(name: &str) -> Option<Type> {
    Some(match name {
        "int" => Type::Int,
        "uint" => Type::UInt,
        "double" => Type::Double,
        "bool" => Type::Bool,
        "string" => Type::String,
        "bytes" => Type::Bytes,
        "list" => Type::list(Type::Dyn),
        "map" => Type::map(Type::Dyn, Type::Dyn),
        "null_type" => Type::Null,
        "type" => Type::TypeOf(Box::new(Type::Dyn)),
        "optional_type" => Type::CelOptional(Box::new(Type::Dyn)),
        "google.protobuf.Timestamp" => Type::Timestamp,
        "google.protobuf.Duration" => Type::Duration,
        _ => return None,
    })
}

/// The dotted name of an identifier chain (`a.b.c`), if `expr` is one.
fn dotted(expr: &ast::Expr) -> Option<Vec<&str>> {
    match &expr.kind {
        ExprKind::Ident { name, .. } => Some(vec![name.as_str()]),
        ExprKind::Member {
            target,
            field,
            access: Access::Plain,
        } => {
            let mut path = dotted(target)?;
            path.push(field.name.as_str());
            Some(path)
        }
        _ => None,
    }
}

impl Checker<'_> {
    fn push(&mut self, kind: NodeKind, ty: Type, span: Span) -> ExprId {
        self.arena.push(Node { kind, ty }, span)
    }

    fn ty(&self, id: ExprId) -> Type {
        self.arena.ty(id).cloned().unwrap_or(Type::Error)
    }

    fn shape(&self, id: ExprId) -> Shape {
        match self.shapes.get(&id) {
            Some(shape) => shape.clone(),
            None => Shape::Known(self.ty(id)),
        }
    }

    /// Pushes a node typed by `shape`, keeping the shape when it has a free part.
    fn push_shaped(&mut self, kind: NodeKind, shape: Shape, span: Span) -> ExprId {
        let id = self.push(kind, shape.to_type(), span);
        if shape.has_free() {
            self.shapes.insert(id, shape);
        }
        id
    }

    /// Reports a diagnostic (dropped when relaxed) and returns the type to give the
    /// offending node.
    fn error(&mut self, diagnostic: Diagnostic) -> Type {
        if self.relaxed {
            Type::Dyn
        } else {
            self.diagnostics.push(diagnostic);
            Type::Error
        }
    }

    fn warn(&mut self, diagnostic: Diagnostic) {
        if !self.relaxed {
            self.diagnostics.push(diagnostic);
        }
    }

    fn fail(&mut self, message: String, diagnostic: Diagnostic, span: Span) -> ExprId {
        let ty = self.error(diagnostic);
        self.push(NodeKind::Fail(message), ty, span)
    }

    fn expr(&mut self, expr: &ast::Expr) -> ExprId {
        // The parser allows expressions 512 deep; grow the stack rather than overflow
        // a small thread's.
        stacker::maybe_grow(128 * 1024, 4 * 1024 * 1024, || self.expr_node(expr))
    }

    fn expr_node(&mut self, expr: &ast::Expr) -> ExprId {
        let span = expr.span;
        match &expr.kind {
            ExprKind::Null => self.push(NodeKind::Const(Const::Null), Type::Null, span),
            ExprKind::Bool(b) => self.push(NodeKind::Const(Const::Bool(*b)), Type::Bool, span),
            ExprKind::Int(v) => self.push(NodeKind::Const(Const::Int(*v)), Type::Int, span),
            ExprKind::UInt(v) => self.push(NodeKind::Const(Const::UInt(*v)), Type::UInt, span),
            ExprKind::Double(v) => {
                self.push(NodeKind::Const(Const::Double(*v)), Type::Double, span)
            }
            ExprKind::String(s) => self.push(
                NodeKind::Const(Const::String(s.clone())),
                Type::String,
                span,
            ),
            ExprKind::Bytes(b) => {
                self.push(NodeKind::Const(Const::Bytes(b.clone())), Type::Bytes, span)
            }
            ExprKind::Duration(n) => {
                self.push(NodeKind::Const(Const::Duration(*n)), Type::Duration, span)
            }
            ExprKind::Interpolated(parts) => self.interpolated(parts, span),
            ExprKind::Ident { name, root } => self.ident(name, *root, span),
            ExprKind::Member {
                target,
                field,
                access,
            } => self.member(expr, target, field, *access),
            ExprKind::Index {
                target,
                index,
                access,
            } => {
                let t = self.expr(target);
                let i = self.expr(index);
                self.index(t, i, *access == Access::CelOptional, span)
            }
            ExprKind::Call {
                target,
                function,
                args,
                access,
                root,
            } => self.call(target.as_deref(), function, args, *access, *root, span),
            ExprKind::Unary { op, operand } => {
                let arg = self.expr(operand);
                let name = match op {
                    UnaryOp::Not => "!_",
                    UnaryOp::Neg => "-_",
                };
                self.resolve_call(name, false, vec![arg], span, span)
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs, span),
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                let c = self.expr(condition);
                self.expect_bool(c, "a condition");
                let a = self.expr(then);
                let b = self.expr(otherwise);
                let (ta, tb) = (self.ty(a), self.ty(b));
                let shape = match Shape::unify(&self.shape(a), &self.shape(b)) {
                    Some(shape) => shape,
                    None => Shape::Known(
                        self.error(
                            Diagnostic::new(
                                codes::TYPE_MISMATCH,
                                span,
                                "the branches of `? :` have different types",
                            )
                            .with_secondary(self.arena.span(a), format!("this is `{ta}`"))
                            .with_secondary(self.arena.span(b), format!("this is `{tb}`"))
                            .with_help("convert one branch, or wrap a branch in `dyn()`"),
                        ),
                    ),
                };
                self.push_shaped(
                    NodeKind::Conditional {
                        condition: c,
                        then: a,
                        otherwise: b,
                    },
                    shape,
                    span,
                )
            }
            ExprKind::List(items) => {
                let mut ids = Vec::with_capacity(items.len());
                let mut flags = Vec::with_capacity(items.len());
                let mut elem: Option<Shape> = None;
                for item in items {
                    let id = self.expr(&item.value);
                    let mut shape = self.shape(id);
                    if item.optional {
                        shape = match shape {
                            Shape::Optional(inner) => *inner,
                            other => Shape::Known(self.optional_inner(id, &other.to_type())),
                        };
                    }
                    elem = Some(match elem {
                        None => shape,
                        Some(prev) => Shape::join(&prev, &shape),
                    });
                    ids.push(id);
                    flags.push(item.optional);
                }
                let shape = Shape::List(Box::new(elem.unwrap_or(Shape::Free)));
                self.push_shaped(
                    NodeKind::List {
                        items: ids,
                        optional: flags,
                    },
                    shape,
                    span,
                )
            }
            ExprKind::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                let (mut kt, mut vt): (Option<Shape>, Option<Shape>) = (None, None);
                for entry in entries {
                    let key = self.expr(&entry.key);
                    let value = self.expr(&entry.value);
                    let k = self.ty(key);
                    if !matches!(
                        k,
                        Type::String
                            | Type::Int
                            | Type::UInt
                            | Type::Bool
                            | Type::Dyn
                            | Type::Error
                    ) {
                        self.error(
                            Diagnostic::new(
                                codes::INVALID_MAP_KEY,
                                entry.key.span,
                                format!("`{k}` cannot be a map key"),
                            )
                            .with_label("map keys are `string`, `int`, `uint` or `bool`"),
                        );
                    }
                    let mut v = self.shape(value);
                    if entry.optional {
                        v = match v {
                            Shape::Optional(inner) => *inner,
                            other => Shape::Known(self.optional_inner(value, &other.to_type())),
                        };
                    }
                    let k = Shape::Known(k);
                    kt = Some(kt.map_or(k.clone(), |p| Shape::join(&p, &k)));
                    vt = Some(vt.map_or(v.clone(), |p| Shape::join(&p, &v)));
                    out.push(MapEntry {
                        key,
                        value,
                        optional: entry.optional,
                    });
                }
                let shape = Shape::Map(
                    Box::new(kt.unwrap_or(Shape::Free)),
                    Box::new(vt.unwrap_or(Shape::Free)),
                );
                self.push_shaped(NodeKind::Map { entries: out }, shape, span)
            }
            ExprKind::Record(fields) => {
                let mut out: Vec<(String, ExprId)> = Vec::with_capacity(fields.len());
                for field in fields {
                    let id = self.expr(&field.value);
                    if out.iter().any(|(n, _)| n == &field.name.name) {
                        self.error(
                            Diagnostic::new(
                                codes::DUPLICATE_FIELD,
                                field.name.span,
                                format!("field `{}` is given twice", field.name.name),
                            )
                            .with_label("given again here"),
                        );
                        continue;
                    }
                    out.push((field.name.name.clone(), id));
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                let ty = Type::record(
                    None,
                    out.iter()
                        .map(|(n, id)| (n.clone(), self.ty(*id)))
                        .collect(),
                );
                self.push(NodeKind::Record { fields: out }, ty, span)
            }
        }
    }

    /// The `T` of an optional element `?x` in a list or map literal.
    fn optional_inner(&mut self, id: ExprId, ty: &Type) -> Type {
        match ty {
            Type::CelOptional(inner) => (**inner).clone(),
            Type::Dyn | Type::Error => Type::Dyn,
            other => {
                let span = self.arena.span(id);
                self.error(
                    Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        span,
                        format!("expected an optional, found `{other}`"),
                    )
                    .with_label("`?` here needs an `optional.of(..)` value"),
                )
            }
        }
    }

    fn expect_bool(&mut self, id: ExprId, what: &str) {
        let ty = self.ty(id);
        if !matches!(ty, Type::Bool | Type::Dyn | Type::Error) {
            let span = self.arena.span(id);
            let mut d = Diagnostic::new(
                codes::TYPE_MISMATCH,
                span,
                format!("{what} must be `bool`, found `{ty}`"),
            )
            .with_label(format!("this is `{ty}`"));
            if ty == Type::optional(Type::Bool) {
                d = d.with_help("this value may be null: write `(x ?? false)`");
            }
            self.error(d);
        }
    }

    fn interpolated(&mut self, parts: &[StringPart], span: Span) -> ExprId {
        let mut ids = Vec::with_capacity(parts.len());
        let mut secret = false;
        for part in parts {
            let id = match part {
                StringPart::Text(t) => self.push(
                    NodeKind::Const(Const::String(t.clone())),
                    Type::String,
                    span,
                ),
                StringPart::Expr(e) => {
                    let id = self.expr(e);
                    let ty = self.ty(id);
                    secret |= ty.contains_secret();
                    match ty {
                        Type::String | Type::Secret => id,
                        _ => {
                            let out = if ty.contains_secret() {
                                Type::Secret
                            } else {
                                Type::String
                            };
                            let span = self.arena.span(id);
                            self.push(
                                NodeKind::Call {
                                    overload: Overload::Stringify,
                                    args: vec![id],
                                },
                                out,
                                span,
                            )
                        }
                    }
                }
            };
            ids.push(id);
        }
        self.push(
            NodeKind::Interpolate(ids),
            if secret { Type::Secret } else { Type::String },
            span,
        )
    }

    fn lookup_bound(&self, name: &str) -> Option<(LocalId, Type)> {
        self.bound
            .iter()
            .rev()
            .find(|(n, _, _)| n == name)
            .map(|(_, id, ty)| (*id, ty.clone()))
    }

    fn ident(&mut self, name: &str, root: bool, span: Span) -> ExprId {
        if root {
            // CEL's `.name` skips container namespaces; Flow has none, so a leading
            // dot is almost certainly a slip.
            self.error(
                Diagnostic::new(
                    codes::NOT_SUPPORTED_EXPR,
                    span,
                    format!("`.{name}`: the root-namespace form is not supported"),
                )
                .with_label("Flow has no namespaces to skip")
                .with_help(format!("write `{name}`")),
            );
        }
        if !root && let Some((id, ty)) = self.lookup_bound(name) {
            return self.push(NodeKind::Local(id), ty, span);
        }
        if let Some((id, ty)) = self.scope.lookup(name) {
            return self.push(NodeKind::Local(id), ty, span);
        }
        if let Some(t) = type_value(name) {
            return self.push(
                NodeKind::TypeValue(t.clone()),
                Type::TypeOf(Box::new(t)),
                span,
            );
        }
        let mut names = self.scope.names();
        names.extend(self.bound.iter().map(|(n, _, _)| n.clone()));
        let d = Diagnostic::new(
            codes::UNKNOWN_VARIABLE,
            span,
            format!("unknown name `{name}`"),
        )
        .with_label("not defined here")
        .with_suggestion(name, names.iter().map(String::as_str));
        self.fail(format!("undeclared reference to '{name}'"), d, span)
    }

    fn member(
        &mut self,
        whole: &ast::Expr,
        target: &ast::Expr,
        field: &ast::Ident,
        access: Access,
    ) -> ExprId {
        let span = whole.span;
        // A dotted name may be one variable (`a.b.c` declared as such): the longest
        // declared prefix wins, unless the head is a comprehension variable.
        if access == Access::Plain
            && let Some(path) = dotted(whole)
            && path.len() > 1
            && self.lookup_bound(path[0]).is_none()
        {
            for k in (2..=path.len()).rev() {
                let name = path[..k].join(".");
                let found = self
                    .scope
                    .lookup(&name)
                    .map(|(id, ty)| (NodeKind::Local(id), ty));
                let found = found.or_else(|| {
                    type_value(&name)
                        .map(|t| (NodeKind::TypeValue(t.clone()), Type::TypeOf(Box::new(t))))
                });
                if let Some((kind, ty)) = found {
                    let mut id = self.push(kind, ty, span);
                    for seg in &path[k..] {
                        id = self.field(id, seg, false, span, span);
                    }
                    return id;
                }
            }
        }
        let t = self.expr(target);
        match access {
            Access::CelOptional => self.optional_field(t, &field.name, span, field.span),
            Access::NullSafe => self.field(t, &field.name, true, span, field.span),
            Access::Plain => self.field(t, &field.name, false, span, field.span),
        }
    }

    /// `target.name` / `target?.name`.
    fn field(
        &mut self,
        target: ExprId,
        name: &str,
        null_safe: bool,
        span: Span,
        name_span: Span,
    ) -> ExprId {
        let tt = self.ty(target);
        let (base, nullable) = match &tt {
            Type::Optional(inner) => ((**inner).clone(), true),
            other => (other.clone(), false),
        };
        if null_safe && !nullable && !matches!(base, Type::Dyn | Type::Error | Type::Null) {
            self.warn(
                Diagnostic::new(
                    codes::NULL_SAFE_ON_NON_NULL,
                    name_span,
                    format!("`?.` on a value of type `{tt}`, which is never null"),
                )
                .with_help("write `.` instead"),
            );
        }
        if nullable && !null_safe {
            let ty = self.error(
                Diagnostic::new(codes::MAYBE_NULL, span, format!("`{tt}` may be null"))
                    .with_label("this value may be null")
                    .with_help(format!(
                        "write `?.{name}` to get null when it is null, and `??` to give a default"
                    )),
            );
            return self.push(
                NodeKind::Field {
                    target,
                    field: name.to_string(),
                    index: None,
                    null_safe: false,
                },
                ty,
                span,
            );
        }
        let (index, fty) = match &base {
            Type::Record(r) => match r.field(name) {
                Some((i, t)) => (u32::try_from(i).ok(), t.clone()),
                None => {
                    let d = Diagnostic::new(
                        codes::UNKNOWN_FIELD,
                        name_span,
                        format!("`{tt}` has no field `{name}`"),
                    )
                    .with_label("no such field")
                    .with_suggestion(name, r.field_names())
                    .with_note(format!(
                        "its fields are: {}",
                        r.field_names()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    (None, self.error(d))
                }
            },
            Type::Map(k, v) => {
                if !matches!(**k, Type::String | Type::Dyn | Type::Error) {
                    let d = Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        name_span,
                        format!("`.{name}` on `{tt}`, whose keys are not strings"),
                    )
                    .with_help(format!("index it instead: `[{name}]`"));
                    (None, self.error(d))
                } else {
                    (None, (**v).clone())
                }
            }
            Type::Dyn => (None, Type::Dyn),
            Type::Error => (None, Type::Error),
            Type::CelOptional(inner) => {
                let fty = self.field_type_of(inner, name);
                (None, Type::CelOptional(Box::new(fty)))
            }
            other => {
                let d = Diagnostic::new(
                    codes::UNKNOWN_FIELD,
                    name_span,
                    format!("`{other}` has no fields"),
                )
                .with_label(format!("`.{name}` on a value of type `{other}`"));
                (None, self.error(d))
            }
        };
        let ty = if null_safe && (nullable || matches!(base, Type::Null)) {
            Type::optional(fty)
        } else {
            fty
        };
        self.push(
            NodeKind::Field {
                target,
                field: name.to_string(),
                index,
                null_safe,
            },
            ty,
            span,
        )
    }

    /// The type of field `name` of a value of type `ty`, without reporting.
    fn field_type_of(&self, ty: &Type, name: &str) -> Type {
        match ty {
            Type::Record(r) => r.field(name).map(|(_, t)| t.clone()).unwrap_or(Type::Dyn),
            Type::Map(_, v) => (**v).clone(),
            Type::Optional(inner) => Type::optional(self.field_type_of(inner, name)),
            Type::CelOptional(inner) => self.field_type_of(inner, name),
            Type::Error => Type::Error,
            _ => Type::Dyn,
        }
    }

    /// `target.?name`.
    fn optional_field(
        &mut self,
        target: ExprId,
        name: &str,
        span: Span,
        name_span: Span,
    ) -> ExprId {
        let tt = self.ty(target);
        let base = match &tt {
            Type::CelOptional(inner) => (**inner).clone(),
            other => other.clone(),
        };
        let fty = match &base {
            Type::Record(r) => match r.field(name) {
                Some((_, t)) => t.clone(),
                None => {
                    let d = Diagnostic::new(
                        codes::UNKNOWN_FIELD,
                        name_span,
                        format!("`{tt}` has no field `{name}`"),
                    )
                    .with_suggestion(name, r.field_names());
                    self.error(d)
                }
            },
            Type::Map(_, v) => (**v).clone(),
            Type::Dyn | Type::Optional(_) => Type::Dyn,
            Type::Error => Type::Error,
            other => {
                let d = Diagnostic::new(
                    codes::UNKNOWN_FIELD,
                    name_span,
                    format!("`{other}` has no fields"),
                );
                self.error(d)
            }
        };
        self.push(
            NodeKind::OptionalField {
                target,
                field: name.to_string(),
            },
            Type::CelOptional(Box::new(fty)),
            span,
        )
    }

    fn index(&mut self, target: ExprId, index: ExprId, optional: bool, span: Span) -> ExprId {
        let tt = self.ty(target);
        let it = self.ty(index);
        let (base, wrap) = match &tt {
            Type::CelOptional(inner) => ((**inner).clone(), true),
            other => (other.clone(), optional),
        };
        let elem = match &base {
            Type::List(e) => {
                if !matches!(it, Type::Int | Type::UInt | Type::Dyn | Type::Error) {
                    let ispan = self.arena.span(index);
                    self.error(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            ispan,
                            format!("a list index must be `int`, found `{it}`"),
                        )
                        .with_label(format!("this is `{it}`")),
                    );
                }
                (**e).clone()
            }
            Type::Map(k, v) => {
                let key_ok = matches!(it, Type::Dyn | Type::Error)
                    || matches!(**k, Type::Dyn | Type::Error)
                    || is_assignable(&it, k)
                    || (k.is_numeric() && it.is_numeric());
                if !key_ok {
                    let ispan = self.arena.span(index);
                    self.error(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            ispan,
                            format!("a key of `{tt}` must be `{k}`, found `{it}`"),
                        )
                        .with_label(format!("this is `{it}`")),
                    );
                }
                (**v).clone()
            }
            Type::Record(r) => {
                let name = match self.arena.node(index).map(|n| &n.kind) {
                    Some(NodeKind::Const(Const::String(s))) => Some(s.clone()),
                    _ => None,
                };
                match name {
                    Some(name) if !wrap => {
                        let ispan = self.arena.span(index);
                        return self.field(target, &name, false, span, ispan);
                    }
                    Some(name) => r.field(&name).map(|(_, t)| t.clone()).unwrap_or(Type::Dyn),
                    None => Type::Dyn,
                }
            }
            Type::Dyn => Type::Dyn,
            Type::Error => Type::Error,
            Type::Optional(_) => self.error(
                Diagnostic::new(codes::MAYBE_NULL, span, format!("`{tt}` may be null"))
                    .with_help("give a default first: `(x ?? [])[i]`"),
            ),
            other => {
                let tspan = self.arena.span(target);
                self.error(
                    Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        tspan,
                        format!("`{other}` cannot be indexed"),
                    )
                    .with_label(format!("this is `{other}`")),
                )
            }
        };
        let ty = if wrap {
            Type::CelOptional(Box::new(elem))
        } else {
            elem
        };
        self.push(
            NodeKind::Index {
                target,
                index,
                optional,
            },
            ty,
            span,
        )
    }

    fn binary(&mut self, op: BinaryOp, lhs: &ast::Expr, rhs: &ast::Expr, span: Span) -> ExprId {
        let a = self.expr(lhs);
        let b = self.expr(rhs);
        match op {
            BinaryOp::And | BinaryOp::Or => {
                let what = if op == BinaryOp::And {
                    "an operand of `&&`"
                } else {
                    "an operand of `||`"
                };
                self.expect_bool(a, what);
                self.expect_bool(b, what);
                let kind = if op == BinaryOp::And {
                    NodeKind::And(a, b)
                } else {
                    NodeKind::Or(a, b)
                };
                self.push(kind, Type::Bool, span)
            }
            BinaryOp::Coalesce => {
                let (ta, tb) = (self.ty(a), self.ty(b));
                let inner = match &ta {
                    Type::Optional(inner) | Type::CelOptional(inner) => (**inner).clone(),
                    Type::Null => tb.clone(),
                    Type::Dyn | Type::Error => ta.clone(),
                    other => {
                        self.warn(
                            Diagnostic::new(
                                codes::NULL_SAFE_ON_NON_NULL,
                                self.arena.span(a),
                                format!("`??` on a value of type `{other}`, which is never null"),
                            )
                            .with_help("the default is never used"),
                        );
                        other.clone()
                    }
                };
                let ty = match unify(&inner, &tb) {
                    Some(t) => t,
                    None => self.error(
                        Diagnostic::new(
                            codes::TYPE_MISMATCH,
                            self.arena.span(b),
                            format!("the default must be `{inner}`, found `{tb}`"),
                        )
                        .with_label(format!("this is `{tb}`")),
                    ),
                };
                self.push(
                    NodeKind::Coalesce {
                        value: a,
                        default: b,
                    },
                    ty,
                    span,
                )
            }
            BinaryOp::In => self.resolve_call("@in", false, vec![a, b], span, span),
            other => {
                let name = match other {
                    BinaryOp::Eq => "_==_",
                    BinaryOp::Ne => "_!=_",
                    BinaryOp::Lt => "_<_",
                    BinaryOp::Le => "_<=_",
                    BinaryOp::Gt => "_>_",
                    BinaryOp::Ge => "_>=_",
                    BinaryOp::Add => "_+_",
                    BinaryOp::Sub => "_-_",
                    BinaryOp::Mul => "_*_",
                    BinaryOp::Div => "_/_",
                    _ => "_%_",
                };
                self.resolve_call(name, false, vec![a, b], span, span)
            }
        }
    }
}

#[cfg(test)]
mod tests;
