//! Macros: `all`, `exists`, `exists_one`, `map`, `filter`, `sort_by`, `group_by` and
//! the other comprehensions the checker expands (CEL's macros and Flow's), each with its
//! bound variable in scope and its result type.

use super::calls::is_orderable;
use super::*;

impl Checker<'_> {
    /// Expands a macro call (`xs.all(x, p)`, `xs.map(x, t)`, ...), or returns `None`
    /// when `name` is not a macro of this shape.
    pub(super) fn macro_call(
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
