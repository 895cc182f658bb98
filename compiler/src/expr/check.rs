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

mod shape;

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
        } else if let (Type::Optional(inner), false) = (&from, to.is_optional()) {
            if is_assignable(inner, to) {
                d = d.with_help("this value may be null: give a default with `??`");
            }
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
        if !root {
            if let Some((id, ty)) = self.lookup_bound(name) {
                return self.push(NodeKind::Local(id), ty, span);
            }
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
        if access == Access::Plain {
            if let Some(path) = dotted(whole) {
                if path.len() > 1 && self.lookup_bound(path[0]).is_none() {
                    for k in (2..=path.len()).rev() {
                        let name = path[..k].join(".");
                        let found = self
                            .scope
                            .lookup(&name)
                            .map(|(id, ty)| (NodeKind::Local(id), ty));
                        let found = found.or_else(|| {
                            type_value(&name).map(|t| {
                                (NodeKind::TypeValue(t.clone()), Type::TypeOf(Box::new(t)))
                            })
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

    fn call(
        &mut self,
        target: Option<&ast::Expr>,
        function: &ast::Ident,
        args: &[ast::Arg],
        access: Access,
        root: bool,
        span: Span,
    ) -> ExprId {
        for arg in args {
            if let Some(name) = &arg.name {
                self.error(
                    Diagnostic::new(
                        codes::NAMED_ARGUMENT,
                        name.span,
                        "functions in expressions take positional arguments",
                    )
                    .with_help(format!("remove `{}:`", name.name)),
                );
            }
        }
        let name = function.name.as_str();
        let fspan = function.span;
        match target {
            None => self.global_call(name, args, root, span, fspan),
            Some(target) => {
                // `optional.of(x)`, `math.greatest(..)`, `strings.quote(..)`: a qualified
                // global function, unless the head names a variable.
                if let Some(path) = dotted(target) {
                    let qualified = format!("{}.{name}", path.join("."));
                    let head_is_var = self.lookup_bound(path[0]).is_some()
                        || self.scope.lookup(path[0]).is_some();
                    if !head_is_var && !catalogue::signatures(&qualified, false).is_empty() {
                        return self.global_call(&qualified, args, false, span, fspan);
                    }
                }
                if let Some(id) = self.macro_call(target, name, args, span) {
                    return id;
                }
                let t = self.expr(target);
                let nullable = matches!(self.ty(t), Type::Optional(_));
                if access == Access::NullSafe && nullable {
                    // `a?.f(x)` is `a == null ? null : a.f(x)` with `a` non-null inside.
                    let inner = match self.ty(t) {
                        Type::Optional(inner) => *inner,
                        other => other,
                    };
                    let tspan = self.arena.span(t);
                    let narrowed = self.push(
                        NodeKind::Convert {
                            value: t,
                            to: inner.clone(),
                        },
                        inner,
                        tspan,
                    );
                    let mut ids = vec![narrowed];
                    ids.extend(args.iter().map(|a| self.expr(&a.value)));
                    let call = self.resolve_call(name, true, ids, span, fspan);
                    let call_ty = Type::optional(self.ty(call));
                    let null = self.push(NodeKind::Const(Const::Null), Type::Null, span);
                    let test = self.push(
                        NodeKind::Call {
                            overload: Overload::Eq,
                            args: vec![t, null],
                        },
                        Type::Bool,
                        span,
                    );
                    let null2 = self.push(NodeKind::Const(Const::Null), Type::Null, span);
                    return self.push(
                        NodeKind::Conditional {
                            condition: test,
                            then: null2,
                            otherwise: call,
                        },
                        call_ty,
                        span,
                    );
                }
                let mut ids = vec![t];
                ids.extend(args.iter().map(|a| self.expr(&a.value)));
                self.resolve_call(name, true, ids, span, fspan)
            }
        }
    }

    fn global_call(
        &mut self,
        name: &str,
        args: &[ast::Arg],
        _root: bool,
        span: Span,
        fspan: Span,
    ) -> ExprId {
        match (name, args) {
            ("has", [arg]) => return self.has(&arg.value, span),
            ("now", []) => return self.push(NodeKind::Now, Type::Timestamp, span),
            ("secret" | "setting", [arg]) => {
                let key = match &arg.value.kind {
                    ExprKind::String(s) => Some(s.clone()),
                    _ => None,
                };
                if !self.scope.allows_credentials() {
                    let d = Diagnostic::new(
                        codes::CREDENTIALS_NOT_ALLOWED,
                        span,
                        format!("`{name}()` can only be used inside an integration declaration"),
                    )
                    .with_help(
                        "declare the credential on the integration and let its actions use it",
                    );
                    return self.fail(format!("{name}() is not available here"), d, span);
                }
                let Some(key) = key else {
                    let d = Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        arg.value.span,
                        format!("`{name}()` takes a string literal"),
                    );
                    return self.fail(format!("{name}() needs a literal name"), d, span);
                };
                return if name == "secret" {
                    self.push(NodeKind::Secret(key), Type::Secret, span)
                } else {
                    self.push(NodeKind::Setting(key), Type::Dyn, span)
                };
            }
            _ => {}
        }
        let ids: Vec<ExprId> = args.iter().map(|a| self.expr(&a.value)).collect();
        self.resolve_call(name, false, ids, span, fspan)
    }

    fn has(&mut self, arg: &ast::Expr, span: Span) -> ExprId {
        let ExprKind::Member {
            target,
            field,
            access,
        } = &arg.kind
        else {
            let d = Diagnostic::new(
                codes::INVALID_MACRO,
                arg.span,
                "`has()` takes a field selection such as `has(x.field)`",
            );
            return self.fail("invalid argument to has() macro".into(), d, span);
        };
        let t = self.expr(target);
        let tt = self.ty(t);
        let base = match &tt {
            Type::Optional(inner) if *access == Access::NullSafe => (**inner).clone(),
            Type::CelOptional(inner) => (**inner).clone(),
            other => other.clone(),
        };
        match &base {
            Type::Record(r) if r.field(&field.name).is_none() => {
                let d = Diagnostic::new(
                    codes::UNKNOWN_FIELD,
                    field.span,
                    format!("`{tt}` has no field `{}`", field.name),
                )
                .with_suggestion(&field.name, r.field_names());
                self.error(d);
            }
            Type::Record(_) | Type::Map(..) | Type::Dyn | Type::Error => {}
            other => {
                let d = Diagnostic::new(
                    codes::TYPE_MISMATCH,
                    arg.span,
                    format!("`has()` on `{other}`, which has no fields"),
                );
                self.error(d);
            }
        }
        self.push(
            NodeKind::Has {
                target: t,
                field: field.name.clone(),
            },
            Type::Bool,
            span,
        )
    }

    /// Resolves a call against the catalogue and pushes it.
    fn resolve_call(
        &mut self,
        name: &str,
        receiver: bool,
        args: Vec<ExprId>,
        span: Span,
        fspan: Span,
    ) -> ExprId {
        let sigs = catalogue::signatures(name, receiver);
        if sigs.is_empty() {
            let declared: Vec<&Signature> = self
                .declared
                .iter()
                .filter(|s| s.name == name && s.receiver == receiver)
                .collect();
            if !declared.is_empty() {
                let types: Vec<Type> = args.iter().map(|a| self.ty(*a)).collect();
                let result = declared.iter().find_map(|s| match_signature(s, &types));
                let ty = match result {
                    Some(t) => t,
                    None => self.error(Diagnostic::new(
                        codes::NO_MATCHING_OVERLOAD,
                        span,
                        format!("`{name}` cannot be applied to these arguments"),
                    )),
                };
                let message = format!("function `{name}` is declared but has no implementation");
                return self.push(NodeKind::Fail(message), ty, span);
            }
            let other_style = catalogue::signatures(name, !receiver);
            let mut d = Diagnostic::new(
                codes::UNKNOWN_FUNCTION,
                fspan,
                format!("unknown function `{name}`"),
            )
            .with_label("no function has this name");
            if let Some(sig) = other_style.first() {
                let example = if sig.receiver {
                    format!("x.{name}(..)")
                } else {
                    format!("{name}(x, ..)")
                };
                d = d.with_help(format!("`{name}` is called as `{example}`"));
            } else {
                let names = catalogue::function_names();
                d = d.with_suggestion(name, names.iter().copied());
            }
            // In relaxed mode the other style still runs (`size(x)` vs `x.size()`).
            if self.relaxed {
                if let Some(sig) = other_style.first() {
                    let overload = sig.overload;
                    return self.push(NodeKind::Call { overload, args }, Type::Dyn, span);
                }
            }
            return self.fail("unbound function".into(), d, span);
        }
        let types: Vec<Type> = args.iter().map(|a| self.ty(*a)).collect();
        // With static argument types the first matching signature wins (the catalogue
        // lists specific signatures first); with `dyn` arguments every match counts,
        // and the result is `dyn` unless all matches agree.
        let precise = !types.iter().any(mentions_dyn);
        let mut matched: Vec<(&Signature, Type)> = Vec::new();
        for sig in sigs {
            if let Some(result) = match_signature(sig, &types) {
                matched.push((sig, result));
                if precise {
                    break;
                }
            }
        }
        let arity_fits = sigs.iter().any(|s| {
            if s.variadic {
                types.len() >= s.params.len()
            } else {
                types.len() == s.params.len()
            }
        });
        if matched.is_empty() && !arity_fits {
            let mut counts: Vec<usize> = sigs
                .iter()
                .map(|s| s.params.len() - usize::from(s.receiver))
                .collect();
            counts.sort_unstable();
            counts.dedup();
            let expected = counts
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" or ");
            let found = types.len() - usize::from(receiver);
            let candidates: Vec<String> = sigs.iter().map(display_signature).collect();
            let d = Diagnostic::new(
                codes::WRONG_ARGUMENT_COUNT,
                span,
                format!(
                    "`{name}` takes {expected} argument{}, found {found}",
                    if expected == "1" { "" } else { "s" }
                ),
            )
            .with_label("wrong number of arguments")
            .with_note(format!("it takes: {}", candidates.join("; ")));
            let ty = self.error(d);
            let overload = sigs.first().map(|s| s.overload).unwrap_or(Overload::ToDyn);
            return self.push(NodeKind::Call { overload, args }, ty, span);
        }
        // A constant regular expression is checked now rather than at run time.
        if let (Some(first), [_, pattern]) = (sigs.first(), args.as_slice()) {
            if first.overload == Overload::Matches {
                if let Some(NodeKind::Const(Const::String(p))) =
                    self.arena.node(*pattern).map(|n| &n.kind)
                {
                    if let Err(e) = regex::Regex::new(p) {
                        let pspan = self.arena.span(*pattern);
                        let message = e.to_string();
                        let detail = message
                            .lines()
                            .last()
                            .unwrap_or("invalid")
                            .trim()
                            .trim_start_matches("error: ")
                            .to_string();
                        self.error(
                            Diagnostic::new(
                                codes::INVALID_REGEX,
                                pspan,
                                format!("invalid regular expression: {detail}"),
                            )
                            .with_label("this pattern does not compile")
                            .with_note("patterns use RE2 syntax"),
                        );
                    }
                }
            }
        }
        let Some((first, _)) = matched.first() else {
            let shown: Vec<String> = types.iter().map(|t| format!("`{t}`")).collect();
            let what = match name {
                n if n.starts_with('_') || n.ends_with('_') || n.starts_with('@') => {
                    format!("operator `{}`", operator_symbol(n))
                }
                n => format!("`{n}`"),
            };
            let mut d = Diagnostic::new(
                codes::NO_MATCHING_OVERLOAD,
                span,
                format!(
                    "{what} cannot be applied to {}",
                    if shown.is_empty() {
                        "no arguments".into()
                    } else {
                        shown.join(", ")
                    }
                ),
            );
            for (arg, ty) in args.iter().zip(&types) {
                if matches!(ty, Type::Optional(_)) {
                    d = d.with_secondary(
                        self.arena.span(*arg),
                        format!("this is `{ty}` and may be null; use `??` to give a default"),
                    );
                }
            }
            let candidates: Vec<String> = sigs.iter().map(display_signature).collect();
            d = d.with_note(format!("it takes: {}", candidates.join("; ")));
            if sigs.iter().any(|s| s.params.iter().any(mentions_orderable)) {
                d = d.with_help(
                    "`O` stands for an orderable type: a number, a string, bytes, a bool, a timestamp or a duration",
                );
            }
            if name == "_+_" && types.iter().any(|t| *t == Type::String) {
                d = d.with_help(
                    "convert the other operand with `string(..)`, or use interpolation: \"${x}\"",
                );
            } else if types.iter().filter(|t| t.is_numeric()).count() == 2 {
                d = d.with_help("numbers of different types do not mix in arithmetic: convert with `int()`, `uint()` or `double()`");
            }
            let ty = self.error(d);
            let overload = sigs.first().map(|s| s.overload).unwrap_or(Overload::ToDyn);
            return self.push(NodeKind::Call { overload, args }, ty, span);
        };
        let overload = first.overload;
        let mut ty = matched[0].1.clone();
        if matched.iter().any(|(_, t)| *t != ty) {
            ty = Type::Dyn;
        }
        // Taint: text computed from a secret is a secret.
        if types.iter().any(Type::contains_secret) && matches!(ty, Type::String) {
            ty = Type::Secret;
        }
        if overload == Overload::TypeOf {
            ty = Type::TypeOf(Box::new(types.first().cloned().unwrap_or(Type::Dyn)));
        }
        // The optional constructors keep the free parts of what they hold.
        let shape = match (overload, args.as_slice()) {
            (Overload::OptionalNone, []) => Shape::Optional(Box::new(Shape::Free)),
            (Overload::OptionalOf | Overload::OptionalOfNonZeroValue, [value]) => {
                match self.shape(*value) {
                    inner if inner.has_free() => Shape::Optional(Box::new(inner)),
                    _ => Shape::Known(ty),
                }
            }
            _ => Shape::Known(ty),
        };
        self.push_shaped(NodeKind::Call { overload, args }, shape, span)
    }

    /// Expands a macro call (`xs.all(x, p)`, `xs.map(x, t)`, ...), or returns `None`
    /// when `name` is not a macro of this shape.
    fn macro_call(
        &mut self,
        target: &ast::Expr,
        name: &str,
        args: &[ast::Arg],
        span: Span,
    ) -> Option<ExprId> {
        use ComprehensionKind as K;
        let idents: Vec<Option<&ast::Expr>> = args.iter().map(|a| Some(&a.value)).collect();
        let var_name = |e: Option<&ast::Expr>| match e.map(|e| &e.kind) {
            Some(ExprKind::Ident { name, root: false }) => Some(name.clone()),
            _ => None,
        };
        let (kind, two_vars, has_filter) = match (name, args.len()) {
            ("all", 2) => (K::All, false, false),
            ("all", 3) => (K::All, true, false),
            ("exists", 2) => (K::Exists, false, false),
            ("exists", 3) => (K::Exists, true, false),
            ("exists_one" | "existsOne", 2) => (K::ExistsOne, false, false),
            ("exists_one" | "existsOne", 3) => (K::ExistsOne, true, false),
            ("map", 2) => (K::Map, false, false),
            ("map", 3) => (K::Map, false, true),
            ("filter", 2) => (K::Filter, false, false),
            ("transformList", 3) => (K::TransformList, true, false),
            ("transformList", 4) => (K::TransformList, true, true),
            ("transformMap", 3) => (K::TransformMap, true, false),
            ("transformMap", 4) => (K::TransformMap, true, true),
            ("optMap", 2) => (K::OptMap, false, false),
            ("optFlatMap", 2) => (K::OptFlatMap, false, false),
            ("sort_by", 2) => (K::SortBy, false, false),
            ("group_by", 2) => (K::GroupBy, false, false),
            ("count", 2) => (K::CountIf, false, false),
            (
                "all" | "exists" | "exists_one" | "existsOne" | "map" | "filter" | "transformList"
                | "transformMap" | "optMap" | "optFlatMap" | "sort_by" | "group_by",
                n,
            ) => {
                let (counts, usage) = match name {
                    "all" | "exists" | "exists_one" | "existsOne" => (
                        "2 or 3",
                        format!("`xs.{name}(x, predicate)` or `xs.{name}(i, x, predicate)`"),
                    ),
                    "map" => (
                        "2 or 3",
                        "`xs.map(x, transform)` or `xs.map(x, filter, transform)`".to_string(),
                    ),
                    "transformList" | "transformMap" => (
                        "3 or 4",
                        format!(
                            "`xs.{name}(i, x, transform)` or `xs.{name}(i, x, filter, transform)`"
                        ),
                    ),
                    _ => ("2", format!("`xs.{name}(x, expression)`")),
                };
                let d = Diagnostic::new(
                    codes::WRONG_ARGUMENT_COUNT,
                    span,
                    format!("`{name}` takes {counts} arguments, found {n}"),
                )
                .with_label("wrong number of arguments")
                .with_help(format!("write {usage}"));
                return Some(self.fail(format!("wrong number of arguments to {name}"), d, span));
            }
            _ => return None,
        };
        let v1 = var_name(idents.first().copied().flatten());
        let v2 = if two_vars {
            var_name(idents.get(1).copied().flatten())
        } else {
            None
        };
        if v1.is_none() || (two_vars && v2.is_none()) {
            let bad = args.first().map(|a| a.value.span).unwrap_or(span);
            let d = Diagnostic::new(
                codes::INVALID_MACRO,
                bad,
                format!("`{name}` needs a variable name as its first argument"),
            )
            .with_help(format!("write `list.{name}(x, ...)`"));
            return Some(self.fail(format!("invalid use of the {name} macro"), d, span));
        }
        let range = self.expr(target);
        let rt = self.ty(range);
        let first_body = if two_vars { 2 } else { 1 };
        // Variable types: over a list (element) or (index, element); over a map (key) or (key, value).
        let (t1, t2) = match (&rt, kind) {
            (Type::CelOptional(inner), K::OptMap | K::OptFlatMap) => ((**inner).clone(), Type::Dyn),
            (Type::Dyn | Type::Error, K::OptMap | K::OptFlatMap) => (Type::Dyn, Type::Dyn),
            (_, K::OptMap | K::OptFlatMap) => {
                let d = Diagnostic::new(
                    codes::TYPE_MISMATCH,
                    self.arena.span(range),
                    format!("`{name}` needs an optional, found `{rt}`"),
                );
                let e = self.error(d);
                (e.clone(), e)
            }
            (Type::List(e), _) => {
                if two_vars {
                    (Type::Int, (**e).clone())
                } else {
                    ((**e).clone(), Type::Dyn)
                }
            }
            (Type::Map(k, v), _) => ((**k).clone(), (**v).clone()),
            (Type::Record(_), _) => (Type::String, Type::Dyn),
            (Type::Dyn, _) => (Type::Dyn, Type::Dyn),
            (Type::Error, _) => (Type::Error, Type::Error),
            (Type::Optional(_), _) => {
                let d = Diagnostic::new(
                    codes::MAYBE_NULL,
                    self.arena.span(range),
                    format!("`{rt}` may be null"),
                )
                .with_help("give a default first: `(xs ?? [])`");
                let e = self.error(d);
                (e.clone(), e)
            }
            (other, _) => {
                let d = Diagnostic::new(
                    codes::TYPE_MISMATCH,
                    self.arena.span(range),
                    format!("`{name}` needs a list or a map, found `{other}`"),
                )
                .with_label(format!("this is `{other}`"));
                let e = self.error(d);
                (e.clone(), e)
            }
        };
        let elem_ty = match &rt {
            Type::List(e) => (**e).clone(),
            Type::Map(k, _) => (**k).clone(),
            Type::Record(_) => Type::String,
            Type::Error => Type::Error,
            _ => Type::Dyn,
        };
        let name1 = v1.unwrap_or_default();
        let var = self.arena.new_local(name1.clone(), t1.clone());
        self.bound.push((name1, var, t1));
        let var2 = match v2 {
            Some(n) => {
                let id = self.arena.new_local(n.clone(), t2.clone());
                self.bound.push((n, id, t2));
                Some(id)
            }
            None => None,
        };
        let (filter, body_arg) = if has_filter {
            (
                args.get(first_body).map(|a| self.expr(&a.value)),
                args.get(first_body + 1),
            )
        } else {
            (None, args.get(first_body))
        };
        if let Some(f) = filter {
            self.expect_bool(f, "a filter");
        }
        let body = match body_arg {
            Some(a) => self.expr(&a.value),
            None => self.push(NodeKind::Const(Const::Null), Type::Error, span),
        };
        self.bound.pop();
        if var2.is_some() {
            self.bound.pop();
        }
        let bt = self.ty(body);
        let ty = match kind {
            K::All | K::Exists | K::ExistsOne => {
                self.expect_bool(body, "a predicate");
                Type::Bool
            }
            K::CountIf => {
                self.expect_bool(body, "a predicate");
                Type::Int
            }
            K::Map | K::TransformList => Type::list(bt),
            K::Filter => {
                self.expect_bool(body, "a filter");
                Type::list(elem_ty)
            }
            K::TransformMap => match &rt {
                Type::Map(k, _) => Type::map((**k).clone(), bt),
                Type::List(_) => Type::map(Type::Int, bt),
                _ => Type::map(Type::Dyn, bt),
            },
            K::OptMap => Type::CelOptional(Box::new(bt)),
            K::OptFlatMap => match bt {
                Type::CelOptional(_) | Type::Error => bt,
                Type::Dyn => Type::CelOptional(Box::new(Type::Dyn)),
                other => {
                    let d = Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        self.arena.span(body),
                        format!("`optFlatMap` needs an optional result, found `{other}`"),
                    )
                    .with_help("use `optMap` for a plain value");
                    self.error(d)
                }
            },
            K::SortBy => {
                if !is_orderable(&bt) {
                    let d = Diagnostic::new(
                        codes::TYPE_MISMATCH,
                        self.arena.span(body),
                        format!(
                            "a sort key must be a number, string, bool, timestamp or duration, found `{bt}`"
                        ),
                    );
                    self.error(d);
                }
                Type::list(elem_ty)
            }
            K::GroupBy => {
                if !matches!(
                    bt,
                    Type::Int | Type::UInt | Type::String | Type::Bool | Type::Dyn | Type::Error
                ) {
                    let d = Diagnostic::new(
                        codes::INVALID_MAP_KEY,
                        self.arena.span(body),
                        format!("a group key must be a string, int, uint or bool, found `{bt}`"),
                    );
                    self.error(d);
                }
                Type::map(bt, Type::list(elem_ty))
            }
        };
        let comprehension = Comprehension {
            kind,
            range,
            var,
            var2,
            body,
            filter,
        };
        Some(self.push(NodeKind::Comprehension(Box::new(comprehension)), ty, span))
    }
}

fn mentions_dyn(ty: &Type) -> bool {
    match ty {
        Type::Dyn => true,
        Type::List(t) | Type::Optional(t) | Type::CelOptional(t) => mentions_dyn(t),
        Type::Map(k, v) => mentions_dyn(k) || mentions_dyn(v),
        Type::Record(r) => r.fields.iter().any(|f| mentions_dyn(&f.ty)),
        _ => false,
    }
}

/// A method callable on a receiver, as completion offers it.
#[derive(Clone, Debug, PartialEq)]
pub struct Method {
    pub name: String,
    /// The signature as the reference writes it (`list<A>.size() -> int`).
    pub signature: String,
    pub doc: &'static str,
}

/// The catalogue's methods a receiver of type `ty` accepts (`x.name(...)`), each name
/// once, in catalogue order: exactly those whose receiver the checker would match. A
/// `dyn` receiver accepts every method; an erroneous type none.
pub fn methods_of(ty: &Type) -> Vec<Method> {
    if *ty == Type::Error {
        return Vec::new();
    }
    let mut out: Vec<Method> = Vec::new();
    for f in catalogue::functions() {
        for text in f.signatures {
            let Some(sig) = catalogue::parse_signature(text, f.overload) else {
                continue;
            };
            if !sig.receiver || out.iter().any(|m| m.name == sig.name) {
                continue;
            }
            let Some(receiver) = sig.params.first() else {
                continue;
            };
            if match_sig(receiver, ty, &mut HashMap::new()) {
                out.push(Method {
                    name: sig.name.clone(),
                    signature: (*text).to_owned(),
                    doc: f.doc,
                });
            }
        }
    }
    out
}

/// The type of `receiver.name(...)` as far as the receiver decides it (the first
/// signature whose receiver matches; what only the arguments bind reads as `dyn`), for
/// completion after a call. The macros that keep their receiver's type (`filter`,
/// `sort_by`) and `map` (a list of `dyn`) are included.
pub fn method_result(receiver: &Type, name: &str) -> Option<Type> {
    match (name, receiver) {
        ("filter" | "sort_by", Type::List(_) | Type::Map(..)) => return Some(receiver.clone()),
        ("map", Type::List(_) | Type::Map(..)) => return Some(Type::list(Type::Dyn)),
        _ => {}
    }
    catalogue::signatures(name, true).iter().find_map(|sig| {
        let mut bindings = HashMap::new();
        match_sig(sig.params.first()?, receiver, &mut bindings)
            .then(|| instantiate(&sig.result, &bindings))
    })
}

/// Matches argument types against a signature; the result type on success.
fn match_signature(sig: &Signature, args: &[Type]) -> Option<Type> {
    let n = sig.params.len();
    if sig.variadic {
        if args.len() < n {
            return None;
        }
    } else if args.len() != n {
        return None;
    }
    let mut bindings: HashMap<char, Type> = HashMap::new();
    for (i, arg) in args.iter().enumerate() {
        let param = sig.params.get(i.min(n.saturating_sub(1)))?;
        if !match_sig(param, arg, &mut bindings) {
            return None;
        }
    }
    Some(instantiate(&sig.result, &bindings))
}

fn match_sig(sig: &Sig, ty: &Type, b: &mut HashMap<char, Type>) -> bool {
    let ty = if *ty == Type::Secret {
        &Type::String
    } else {
        ty
    };
    match (sig, ty) {
        // `O` is bound only by an orderable type.
        (Sig::Param('O'), _) if !is_orderable(ty) => false,
        (Sig::Param(p), _) => match b.get(p) {
            Some(bound) => match unify(bound, ty) {
                Some(u) => {
                    b.insert(*p, u);
                    true
                }
                None => false,
            },
            None => {
                b.insert(*p, ty.clone());
                true
            }
        },
        (_, Type::Error) => true,
        (_, Type::Dyn) => {
            bind_all(sig, b);
            true
        }
        (Sig::Exact(t), _) => t == ty,
        (Sig::Num, _) => ty.is_numeric(),
        (Sig::List(e), Type::List(t)) => match_sig(e, t, b),
        (Sig::Map(k, v), Type::Map(tk, tv)) => match_sig(k, tk, b) && match_sig(v, tv, b),
        (Sig::Map(k, v), Type::Record(_)) => {
            match_sig(k, &Type::String, b) && match_sig(v, &Type::Dyn, b)
        }
        (Sig::CelOptional(e), Type::CelOptional(t)) => match_sig(e, t, b),
        (Sig::TypeOf(_), Type::TypeOf(_)) => true,
        _ => false,
    }
}

/// Whether a signature type holds the orderable type parameter `O`.
fn mentions_orderable(sig: &Sig) -> bool {
    match sig {
        Sig::Param('O') => true,
        Sig::List(e) | Sig::CelOptional(e) | Sig::TypeOf(e) => mentions_orderable(e),
        Sig::Map(k, v) => mentions_orderable(k) || mentions_orderable(v),
        _ => false,
    }
}

/// Whether values of `ty` have an order (`<`, `min`, `sort_by`): numbers, strings,
/// bytes, bools, timestamps and durations, or values whose type is known only when they
/// run.
fn is_orderable(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Int
            | Type::UInt
            | Type::Double
            | Type::String
            | Type::Bytes
            | Type::Bool
            | Type::Timestamp
            | Type::Duration
            | Type::Dyn
            | Type::Error
    )
}

/// Binds every unbound parameter in `sig` to `dyn` (the argument was `dyn`).
fn bind_all(sig: &Sig, b: &mut HashMap<char, Type>) {
    match sig {
        Sig::Param(p) => {
            b.entry(*p).or_insert(Type::Dyn);
        }
        Sig::List(e) | Sig::CelOptional(e) | Sig::TypeOf(e) => bind_all(e, b),
        Sig::Map(k, v) => {
            bind_all(k, b);
            bind_all(v, b);
        }
        Sig::Exact(_) | Sig::Num => {}
    }
}

fn instantiate(sig: &Sig, b: &HashMap<char, Type>) -> Type {
    match sig {
        Sig::Exact(t) => t.clone(),
        Sig::Num => Type::Dyn,
        Sig::Param(p) => b.get(p).cloned().unwrap_or(Type::Dyn),
        Sig::List(e) => Type::list(instantiate(e, b)),
        Sig::Map(k, v) => Type::map(instantiate(k, b), instantiate(v, b)),
        Sig::CelOptional(e) => Type::CelOptional(Box::new(instantiate(e, b))),
        Sig::TypeOf(e) => Type::TypeOf(Box::new(instantiate(e, b))),
    }
}

fn display_sig(sig: &Sig) -> String {
    match sig {
        Sig::Exact(t) => t.to_string(),
        Sig::Num => "num".into(),
        Sig::Param(p) => p.to_string(),
        Sig::List(e) => format!("list<{}>", display_sig(e)),
        Sig::Map(k, v) => format!("map<{}, {}>", display_sig(k), display_sig(v)),
        Sig::CelOptional(e) => format!("optional<{}>", display_sig(e)),
        Sig::TypeOf(e) => format!("type<{}>", display_sig(e)),
    }
}

/// A signature as users write the call: `string.startsWith(string) -> bool`, `int + int -> int`.
pub fn display_signature(sig: &Signature) -> String {
    let params: Vec<String> = sig.params.iter().map(display_sig).collect();
    let result = display_sig(&sig.result);
    let name = sig.name.as_str();
    if let (Some(op), [a, b]) = (binary_symbol(name), params.as_slice()) {
        return format!("{a} {op} {b} -> {result}");
    }
    if let (Some(op), [a]) = (unary_symbol(name), params.as_slice()) {
        return format!("{op}{a} -> {result}");
    }
    let variadic = if sig.variadic { "..." } else { "" };
    if sig.receiver {
        let (recv, rest) = params
            .split_first()
            .map(|(r, rest)| (r.clone(), rest.to_vec()))
            .unwrap_or_default();
        format!("{recv}.{name}({}{variadic}) -> {result}", rest.join(", "))
    } else {
        format!("{name}({}{variadic}) -> {result}", params.join(", "))
    }
}

fn binary_symbol(name: &str) -> Option<&'static str> {
    Some(match name {
        "_+_" => "+",
        "_-_" => "-",
        "_*_" => "*",
        "_/_" => "/",
        "_%_" => "%",
        "_==_" => "==",
        "_!=_" => "!=",
        "_<_" => "<",
        "_<=_" => "<=",
        "_>_" => ">",
        "_>=_" => ">=",
        "@in" => "in",
        _ => return None,
    })
}

fn unary_symbol(name: &str) -> Option<&'static str> {
    Some(match name {
        "!_" => "!",
        "-_" => "-",
        _ => return None,
    })
}

fn operator_symbol(name: &str) -> &str {
    binary_symbol(name)
        .or_else(|| unary_symbol(name))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests;
