//! Calls: a method or global function resolved against the catalogue's signatures
//! (overloads, type parameters, the orderable `O`, conversions to the declared
//! parameter types), `has()`, and what completion asks of the catalogue: the methods a
//! receiver type takes and what a call on it gives.

use super::*;

impl Checker<'_> {
    pub(super) fn call(
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

    pub(super) fn global_call(
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

    pub(super) fn has(&mut self, arg: &ast::Expr, span: Span) -> ExprId {
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
    pub(super) fn resolve_call(
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
            if self.relaxed
                && let Some(sig) = other_style.first()
            {
                let overload = sig.overload;
                return self.push(NodeKind::Call { overload, args }, Type::Dyn, span);
            }
            return self.fail("unbound function".into(), d, span);
        }
        let types: Vec<Type> = args.iter().map(|a| self.ty(*a)).collect();
        // With static argument types the first matching signature wins (the catalogue
        // lists specific signatures first); with `dyn` arguments every match counts,
        // and the result is `dyn` unless all matches agree.
        let precise = !types.iter().any(Type::contains_dyn);
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
        if let (Some(first), [_, pattern]) = (sigs.first(), args.as_slice())
            && first.overload == Overload::Matches
            && let Some(NodeKind::Const(Const::String(p))) =
                self.arena.node(*pattern).map(|n| &n.kind)
            && let Err(e) = regex::Regex::new(p)
        {
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
            if name == "_+_" && types.contains(&Type::String) {
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
pub(super) fn is_orderable(ty: &Type) -> bool {
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
