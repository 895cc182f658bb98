//! Integrations: the signatures of actions, events and workflows (what calls are checked
//! against), and the lowering of each integration's settings, actions and events.

mod member;

use flow_grammar::ast::{
    self, ActionClauseKind, EventClauseKind, ExprKind, IntegrationMember, SettingValue,
};
use std::sync::Arc;

use flow_grammar::{Diagnostic, Span, codes};

use super::members::Member;
use super::scope::{Binding, Bindings, check_in};
use super::settings::ConstVal;
use super::{ActionSig, Checker, EventSig, IntegIdx, ModIdx, ParamSig};
use crate::analysis::SymbolKind;
use crate::expr::{ExprArena, ExprId, coerce};
use flow_ir::program::{
    self as ir, AuthKind, BodyKind, ConstOr, FormArg, Method, PaginateKind, VerifyScheme,
};
use flow_ir::types::{Type, is_assignable};

const AUTH_KINDS: &[&str] = &[
    "bearer",
    "basic",
    "api_key",
    "oauth2",
    "aws_sigv4",
    "session",
];
const PAGINATION_KINDS: &[&str] = &["cursor", "link", "offset", "page"];
const VERIFY_SCHEMES: &[&str] = &[
    "slack_signature",
    "github_signature",
    "stripe_signature",
    "hmac_sha256",
    "standard_webhooks",
];

impl Checker<'_> {
    /// Phase 6: parameter and result types of actions, events and workflows.
    pub(super) fn signatures(&mut self) {
        for i in 0..self.integrations.len() {
            let m = self.integrations[i].module;
            let ast = self.integrations[i].ast.clone();
            let mut actions: Vec<ActionSig> = Vec::new();
            let mut events: Vec<EventSig> = Vec::new();
            for member in &ast.members {
                match member {
                    IntegrationMember::Action(a) => {
                        if let Some(prev) = actions.iter().find(|x| x.name == a.name.name) {
                            let prev = prev.span;
                            self.report(super::names::duplicate(&a.name, prev));
                            continue;
                        }
                        let params = self.params(m, Some(i), &a.params);
                        let result = match &a.result {
                            Some(t) => self.type_of(m, Some(i), t),
                            None => Type::Dyn,
                        };
                        let native = self.integrations[i].builtin && a.clauses.is_empty();
                        let hover = format!(
                            "{}action {}.{}({}) -> {result}",
                            if a.idempotent { "idempotent " } else { "" },
                            ast.name.name,
                            a.name.name,
                            params
                                .iter()
                                .map(|p| format!("{}: {}", p.name, p.ty))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        actions.push(ActionSig {
                            name: a.name.name.clone(),
                            doc: a.doc.clone(),
                            span: a.name.span,
                            idempotent: a.idempotent,
                            native,
                            params,
                            result,
                            ast: Arc::new(a.clone()),
                            hover,
                        });
                    }
                    IntegrationMember::Event(e) => {
                        if let Some(prev) = events.iter().find(|x| x.name == e.name.name) {
                            let prev = prev.span;
                            self.report(super::names::duplicate(&e.name, prev));
                            continue;
                        }
                        let params = self.params(m, Some(i), &e.params);
                        let result = self.type_of(m, Some(i), &e.result);
                        events.push(EventSig {
                            name: e.name.name.clone(),
                            doc: e.doc.clone(),
                            span: e.name.span,
                            params,
                            result,
                            ast: Arc::new(e.clone()),
                        });
                    }
                    IntegrationMember::Type(_)
                    | IntegrationMember::Setting(_)
                    | IntegrationMember::Error(_) => {}
                }
            }
            let notify = ast.members.iter().find_map(|member| match member {
                IntegrationMember::Setting(s) if s.name.name == "notify" => match &s.value {
                    SettingValue::Expr(ast::Expr {
                        kind:
                            ExprKind::Call {
                                target: None,
                                function,
                                ..
                            },
                        ..
                    }) => actions.iter().position(|a| a.name == function.name),
                    _ => None,
                },
                _ => None,
            });
            let integ = &mut self.integrations[i];
            integ.actions = actions;
            integ.events = events;
            integ.notify = notify;
        }
        for w in 0..self.workflows.len() {
            let m = self.workflows[w].module;
            let holder = Arc::clone(&self.workflows[w].module_ast);
            let Some(ast) = super::workflow_item(&holder, self.workflows[w].item) else {
                continue;
            };
            let params = self.params(m, None, &ast.params);
            let result = ast.result.as_ref().map(|t| self.type_of(m, None, t));
            self.workflows[w].params = params;
            self.workflows[w].result = result;
        }
    }

    fn params(
        &mut self,
        m: ModIdx,
        integ: Option<IntegIdx>,
        params: &[ast::Param],
    ) -> Arc<[ParamSig]> {
        let mut out: Vec<ParamSig> = Vec::with_capacity(params.len());
        for p in params {
            if let Some(prev) = out.iter().find(|x| x.name == p.name.name) {
                let prev = prev.span;
                self.report(super::names::duplicate(&p.name, prev));
                continue;
            }
            let ty = self.type_of(m, integ, &p.ty);
            self.analysis.reference_with(
                p.name.span,
                p.name.span,
                SymbolKind::Param,
                &p.name.name,
                format!("{}: {ty}", p.name.name),
                p.doc.clone(),
            );
            out.push(ParamSig {
                name: p.name.name.clone(),
                ty,
                default: p.default.clone(),
                span: p.name.span,
                doc: p.doc.clone(),
            });
        }
        Arc::from(out)
    }

    /// Checks parameter defaults into `arena` and binds each parameter as a local.
    pub(crate) fn lower_params(
        &mut self,
        params: &[ParamSig],
        arena: &mut ExprArena,
        bindings: &mut Bindings,
        kind: SymbolKind,
    ) -> Vec<ir::Param> {
        let mut out = Vec::with_capacity(params.len());
        for p in params {
            let default = p.default.as_ref().map(|d| {
                let before = self.diagnostics.len();
                let id = check_in(
                    d,
                    bindings,
                    arena,
                    None,
                    &mut self.diagnostics,
                    &mut self.analysis,
                );
                self.convert(arena, id, &p.ty, before, |from, to| {
                    Diagnostic::new(
                        codes::DEFAULT_TYPE,
                        d.span,
                        format!("default value of `{}` is `{from}`, not `{to}`", p.name),
                    )
                    .with_label(format!("this is `{from}`"))
                    .with_secondary(p.span, format!("`{}` is declared `{to}` here", p.name))
                })
            });
            let local = arena.new_local(p.name.clone(), p.ty.clone());
            out.push(ir::Param {
                name: p.name.clone(),
                ty: p.ty.clone(),
                local,
                default,
            });
            bindings.push(Binding {
                name: p.name.clone(),
                local,
                ty: p.ty.clone(),
                def: p.span,
                kind,
                doc: p.doc.clone(),
            });
        }
        out
    }

    /// Converts a checked expression to `to`, reporting a mismatch with `mismatch`
    /// (unless checking the expression already failed).
    pub(crate) fn convert(
        &mut self,
        arena: &mut ExprArena,
        id: ExprId,
        to: &Type,
        errors_before: usize,
        mismatch: impl FnOnce(&Type, &Type) -> Diagnostic,
    ) -> ExprId {
        let from = arena.ty(id).cloned().unwrap_or(Type::Error);
        if !is_assignable(&from, to) {
            if self.diagnostics[errors_before..]
                .iter()
                .all(|d| !d.is_error())
            {
                let mut d = mismatch(&from, to);
                if let Type::Optional(inner) = &from
                    && !to.is_optional()
                    && is_assignable(inner, to)
                {
                    d = d.with_help("this value may be null: give a default with `??`");
                }
                if from.contains_secret() && !to.contains_secret() {
                    d = d.with_note("a secret can only go where a credential is expected");
                }
                self.report(d);
            }
            return id;
        }
        let mut sink = Vec::new();
        coerce(arena, id, to, &mut sink)
    }

    /// Phase 7: lower every integration.
    pub(super) fn check_integrations(&mut self) {
        for i in 0..self.integrations.len() {
            let lowered = self.lower_integration(i);
            self.integrations[i].ir = Some(lowered);
        }
    }

    fn lower_integration(&mut self, i: IntegIdx) -> ir::Integration {
        let m = self.integrations[i].module;
        let ast = self.integrations[i].ast.clone();
        let name = self.integrations[i].name.clone();
        self.analysis.reference_with(
            ast.name.span,
            ast.name.span,
            SymbolKind::Integration,
            &name,
            format!("integration {name}"),
            ast.doc.clone(),
        );
        let mut out = ir::Integration {
            name: name.clone(),
            module: self.modules[m].key.clone(),
            doc: ast.doc.clone(),
            builtin: self.integrations[i].builtin,
            exprs: Default::default(),
            base_url: None,
            auth: None,
            rate_limit: None,
            health: None,
            health_call: None,
            headers: None,
            settings: Vec::new(),
            notify: None,
            actions: Vec::new(),
            events: Vec::new(),
            spans: ir::IntegrationSpans {
                decl: ast.span,
                ..Default::default()
            },
        };
        let bindings = Bindings {
            list: Vec::new(),
            credentials: true,
        };
        let mut seen: Vec<(String, Span)> = Vec::new();
        let mut arena = ExprArena::new();
        for member in &ast.members {
            let IntegrationMember::Setting(s) = member else {
                continue;
            };
            let key = s.name.name.as_str();
            if let Some((_, first)) = seen.iter().find(|(n, _)| n == key) {
                let first = *first;
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE_SETTING,
                        s.name.span,
                        format!("setting `{key}` is given twice"),
                    )
                    .with_label("given again here")
                    .with_secondary(first, "first given here"),
                );
                continue;
            }
            seen.push((key.to_owned(), s.name.span));
            match (key, &s.value) {
                ("base_url", SettingValue::Expr(e)) => {
                    out.base_url = Some(self.check_string(e, &bindings, &mut arena));
                }
                ("headers", SettingValue::Expr(e)) => {
                    let before = self.diagnostics.len();
                    let id = check_in(e, &bindings, &mut arena, None, &mut self.diagnostics, &mut self.analysis);
                    let to = Type::map(Type::String, Type::Secret);
                    out.headers = Some(self.convert(&mut arena, id, &to, before, |from, _| {
                        Diagnostic::new(codes::INVALID_INTEGRATION_SETTING, e.span, format!("`headers` must be a map of strings, found `{from}`"))
                            .with_label("expected `map<string, string>`")
                    }));
                }
                ("auth", SettingValue::Expr(e)) => out.auth = self.lower_auth(e, &bindings, &mut arena),
                ("rate_limit", SettingValue::RateLimit { count, per }) => {
                    let count_v = self.fold(m, count);
                    let per_v = self.fold(m, per);
                    let count = match count_v {
                        Some(v) => self.int_in_range(&v, count.span, "the rate limit's count", 1, i64::from(u32::MAX)),
                        None => None,
                    };
                    let per = match per_v {
                        Some(v) => self.positive_duration(&v, per.span, "the rate limit's period"),
                        None => {
                            self.report(
                                Diagnostic::new(codes::INVALID_RATE_LIMIT, per.span, "the rate limit's period must be a duration literal")
                                    .with_label("not a constant duration"),
                            );
                            None
                        }
                    };
                    if let (Some(count), Some(per)) = (count, per) {
                        out.rate_limit = Some(ir::RateLimit { count: count as u32, per });
                    }
                }
                ("rate_limit", _) => self.report(
                    Diagnostic::new(codes::INVALID_RATE_LIMIT, s.span, "a rate limit is written `COUNT per DURATION`")
                        .with_label("not a rate limit")
                        .with_help("for example `rate_limit = 50 per 1m`"),
                ),
                ("health", SettingValue::Endpoint { method, path }) => {
                    let path = self.check_string(path, &bindings, &mut arena);
                    if let Some(method) = Method::parse(&method.name) {
                        out.health = Some(ir::Endpoint { method, path });
                    }
                }
                ("health", SettingValue::Expr(e)) if matches!(e.kind, ExprKind::Call { target: None, .. }) => {
                    out.health_call = self.lower_health_call(i, e);
                }
                ("health", _) => self.report(
                    Diagnostic::new(codes::INVALID_INTEGRATION_SETTING, s.span, "`health` is written `METHOD \"/path\"`")
                        .with_label("not an endpoint")
                        .with_help("for example `health = GET \"/status\"`, or an action call such as `health = whoami()`"),
                ),
                ("notify", SettingValue::Expr(e)) => out.notify = self.lower_notify_mapping(i, e),
                (_, SettingValue::Expr(e)) => {
                    let id = check_in(e, &bindings, &mut arena, None, &mut self.diagnostics, &mut self.analysis);
                    out.settings.push(ir::NamedExpr { name: key.to_owned(), value: id });
                }
                (_, _) => self.report(
                    Diagnostic::new(codes::INVALID_INTEGRATION_SETTING, s.span, format!("`{key}` cannot take this form"))
                        .with_label("only `rate_limit` and `health` use this form"),
                ),
            }
        }
        out.exprs = std::sync::Arc::new(arena);
        for a in 0..self.integrations[i].actions.len() {
            let action = self.lower_action(i, a);
            out.spans
                .actions
                .push(self.integrations[i].actions[a].ast.span);
            out.actions.push(action);
        }
        for e in 0..self.integrations[i].events.len() {
            let event = self.lower_event(i, e);
            out.spans
                .events
                .push(self.integrations[i].events[e].ast.span);
            out.events.push(event);
        }
        out
    }

    fn check_string(
        &mut self,
        e: &ast::Expr,
        bindings: &Bindings,
        arena: &mut ExprArena,
    ) -> ExprId {
        check_in(
            e,
            bindings,
            arena,
            Some(&Type::String),
            &mut self.diagnostics,
            &mut self.analysis,
        )
    }

    fn form_args(
        &mut self,
        args: &[ast::Arg],
        bindings: &Bindings,
        arena: &mut ExprArena,
    ) -> Vec<FormArg> {
        args.iter()
            .map(|a| FormArg {
                name: a.name.as_ref().map(|n| n.name.clone()),
                value: check_in(
                    &a.value,
                    bindings,
                    arena,
                    None,
                    &mut self.diagnostics,
                    &mut self.analysis,
                ),
            })
            .collect()
    }

    /// Checks a built-in form's arguments: `positional` unnamed ones, then `required`
    /// and `optional` named ones.
    fn form_shape(
        &mut self,
        form: &str,
        span: Span,
        args: &[ast::Arg],
        positional: usize,
        required: &[&str],
        optional: &[&str],
    ) {
        let unnamed = args.iter().filter(|a| a.name.is_none()).count();
        let mut parts = Vec::new();
        if positional > 0 {
            parts.push(format!(
                "{positional} value{}",
                if positional == 1 { "" } else { "s" }
            ));
        }
        if !required.is_empty() {
            parts.push(
                required
                    .iter()
                    .map(|n| format!("`{n}:`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        if !optional.is_empty() {
            parts.push(format!(
                "optionally {}",
                optional
                    .iter()
                    .map(|n| format!("`{n}:`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let expected = if parts.is_empty() {
            "no arguments".to_owned()
        } else {
            parts.join(", then ")
        };
        let mut problem: Option<String> = None;
        if unnamed != positional {
            problem = Some(format!("`{form}` takes {expected}"));
        }
        for a in args {
            if let Some(n) = &a.name
                && !required.contains(&n.name.as_str())
                && !optional.contains(&n.name.as_str())
            {
                problem = Some(format!("`{form}` has no argument `{}`", n.name));
            }
        }
        for r in required {
            if !args
                .iter()
                .any(|a| a.name.as_ref().is_some_and(|n| n.name == *r))
            {
                problem = Some(format!("`{form}` needs `{r}:`"));
            }
        }
        if let Some(message) = problem {
            self.report(
                Diagnostic::new(codes::INVALID_FORM_ARGUMENTS, span, message)
                    .with_label("wrong arguments")
                    .with_note(format!("`{form}` takes {expected}")),
            );
        }
    }

    fn lower_auth(
        &mut self,
        e: &ast::Expr,
        bindings: &Bindings,
        arena: &mut ExprArena,
    ) -> Option<ir::Auth> {
        let ExprKind::Call {
            target: None,
            function,
            args,
            ..
        } = &e.kind
        else {
            self.report(
                Diagnostic::new(
                    codes::UNKNOWN_AUTH,
                    e.span,
                    "`auth` must be an auth form such as `bearer(secret(\"token\"))`",
                )
                .with_label("not an auth form")
                .with_note("auth forms: bearer, basic, api_key, oauth2, aws_sigv4"),
            );
            return None;
        };
        let kind = match function.name.as_str() {
            "bearer" => {
                self.form_shape("bearer", e.span, args, 1, &[], &[]);
                AuthKind::Bearer
            }
            "basic" => {
                self.form_shape("basic", e.span, args, 2, &[], &[]);
                AuthKind::Basic
            }
            "api_key" => {
                let has_header = args
                    .iter()
                    .any(|a| a.name.as_ref().is_some_and(|n| n.name == "header"));
                let place = if has_header { "header" } else { "query" };
                self.form_shape("api_key", e.span, args, 0, &[place, "value"], &[]);
                AuthKind::ApiKey
            }
            "oauth2" => {
                self.form_shape(
                    "oauth2",
                    e.span,
                    args,
                    0,
                    &["token_url", "client_id", "client_secret"],
                    &["refresh", "scope", "refresh_token"],
                );
                AuthKind::OAuth2
            }
            "aws_sigv4" => {
                self.form_shape(
                    "aws_sigv4",
                    e.span,
                    args,
                    0,
                    &["service", "region"],
                    &["access_key_id", "secret_access_key"],
                );
                AuthKind::AwsSigV4
            }
            "session" => {
                self.form_shape(
                    "session",
                    e.span,
                    args,
                    0,
                    &["url", "token", "header"],
                    &["body", "ttl", "method", "prefix"],
                );
                let mut inner = bindings.clone();
                let response = arena.new_local("response", ir::response_type());
                inner.push(Binding {
                    name: "response".into(),
                    local: response,
                    ty: ir::response_type(),
                    def: e.span,
                    kind: SymbolKind::Variable,
                    doc: Some("The sign-in response.".into()),
                });
                let args = self.form_args(args, &inner, arena);
                return Some(ir::Auth {
                    kind: AuthKind::Session,
                    args,
                    response: Some(response),
                });
            }
            other => {
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_AUTH,
                        function.span,
                        format!("unknown auth kind `{other}`"),
                    )
                    .with_label("not an auth form")
                    .with_suggestion(other, AUTH_KINDS.iter().copied())
                    .with_note("auth forms: bearer, basic, api_key, oauth2, aws_sigv4, session"),
                );
                return None;
            }
        };
        let args = self.form_args(args, bindings, arena);
        Some(ir::Auth {
            kind,
            args,
            response: None,
        })
    }

    fn lower_notify_mapping(&mut self, i: IntegIdx, e: &ast::Expr) -> Option<ir::Notify> {
        let ExprKind::Call {
            target: None,
            function,
            args,
            ..
        } = &e.kind
        else {
            self.report(
                Diagnostic::new(
                    codes::INVALID_INTEGRATION_SETTING,
                    e.span,
                    "`notify` maps to one of the integration's actions",
                )
                .with_label("not an action call")
                .with_help("for example `notify = post_message(channel: target, text: message)`"),
            );
            return None;
        };
        let Some(a) = self.integrations[i].notify else {
            self.report_unknown_member(i, Member::Action, &function.name, function.span);
            return None;
        };
        let mut arena = ExprArena::new();
        let mut bindings = Bindings {
            list: Vec::new(),
            credentials: true,
        };
        let target = arena.new_local("target", Type::String);
        let message = arena.new_local("message", Type::String);
        for (name, local) in [("target", target), ("message", message)] {
            bindings.push(Binding {
                name: name.into(),
                local,
                ty: Type::String,
                def: e.span,
                kind: SymbolKind::Variable,
                doc: None,
            });
        }
        let params = Arc::clone(&self.integrations[i].actions[a].params);
        let call_span = e.span;
        let args = self.call_args(
            &params,
            args,
            &bindings,
            &mut arena,
            call_span,
            &format!("action `{}`", function.name),
        );
        Some(ir::Notify {
            action: a as u32,
            exprs: std::sync::Arc::new(arena),
            target,
            message,
            args,
        })
    }

    fn lower_health_call(&mut self, i: IntegIdx, e: &ast::Expr) -> Option<ir::ActionCall> {
        let ExprKind::Call { function, args, .. } = &e.kind else {
            return None;
        };
        let a = self.find_member(i, Member::Action, &function.name, function.span)?;
        let mut arena = ExprArena::new();
        let bindings = Bindings {
            list: Vec::new(),
            credentials: true,
        };
        let params = Arc::clone(&self.integrations[i].actions[a].params);
        let args = self.call_args(
            &params,
            args,
            &bindings,
            &mut arena,
            e.span,
            &format!("action `{}`", function.name),
        );
        Some(ir::ActionCall {
            action: a as u32,
            exprs: std::sync::Arc::new(arena),
            args,
        })
    }

    /// Checks named arguments against parameters (name, type, required), in `arena`.
    /// Returns one entry per parameter.
    pub(crate) fn call_args(
        &mut self,
        params: &[ParamSig],
        args: &[ast::Arg],
        bindings: &Bindings,
        arena: &mut ExprArena,
        call_span: Span,
        callee: &str,
    ) -> Vec<Option<ExprId>> {
        let mut out: Vec<Option<ExprId>> = vec![None; params.len()];
        let mut given: Vec<Option<Span>> = vec![None; params.len()];
        let mut misspelt: Vec<usize> = Vec::new();
        for arg in args {
            let Some(name) = &arg.name else {
                let d = Diagnostic::new(
                    codes::POSITIONAL_ARGUMENT,
                    arg.span,
                    format!("arguments of {callee} are named"),
                )
                .with_label("no name");
                // The parameter it most likely stands for: the first one no argument names.
                let meant = params.iter().enumerate().find(|(k, p)| {
                    !misspelt.contains(k)
                        && !args
                            .iter()
                            .any(|a| a.name.as_ref().is_some_and(|n| n.name == p.name))
                });
                let d = match meant {
                    Some((k, p)) => {
                        misspelt.push(k);
                        d.with_help(format!("write `{}: ...`", p.name))
                    }
                    None => d,
                };
                self.report(d);
                check_in(
                    &arg.value,
                    bindings,
                    arena,
                    None,
                    &mut self.diagnostics,
                    &mut self.analysis,
                );
                continue;
            };
            let Some(index) = params.iter().position(|p| p.name == name.name) else {
                let d = Diagnostic::new(
                    codes::UNKNOWN_ARGUMENT,
                    name.span,
                    format!("{callee} has no parameter `{}`", name.name),
                )
                .with_label("unknown argument")
                .with_suggestion(&name.name, params.iter().map(|p| p.name.as_str()));
                // A misspelt argument is reported once: not also as a missing one.
                if let Some(meant) = flow_grammar::suggest::did_you_mean(
                    &name.name,
                    params.iter().map(|p| p.name.as_str()),
                ) && let Some(k) = params.iter().position(|p| p.name == meant)
                {
                    misspelt.push(k);
                }
                let d = if d.help.is_none() && !params.is_empty() {
                    d.with_note(format!(
                        "parameters: {}",
                        params
                            .iter()
                            .map(|p| format!("{}: {}", p.name, p.ty))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                } else {
                    d
                };
                self.report(d);
                check_in(
                    &arg.value,
                    bindings,
                    arena,
                    None,
                    &mut self.diagnostics,
                    &mut self.analysis,
                );
                continue;
            };
            if let Some(first) = given[index] {
                self.report(
                    Diagnostic::new(
                        codes::DUPLICATE_ARGUMENT,
                        name.span,
                        format!("argument `{}` is given twice", name.name),
                    )
                    .with_label("given again here")
                    .with_secondary(first, "first given here"),
                );
                continue;
            }
            given[index] = Some(name.span);
            let param = &params[index];
            let (pname, pty, pspan) = (&param.name, &param.ty, &param.span);
            let before = self.diagnostics.len();
            let id = check_in(
                &arg.value,
                bindings,
                arena,
                None,
                &mut self.diagnostics,
                &mut self.analysis,
            );
            let value_span = arg.value.span;
            let id = self.convert(arena, id, pty, before, |from, to| {
                Diagnostic::new(
                    codes::ARGUMENT_TYPE,
                    value_span,
                    format!("argument `{pname}` expects `{to}`, found `{from}`"),
                )
                .with_label(format!("this is `{from}`"))
                .with_secondary(*pspan, format!("`{pname}` is declared `{to}` here"))
            });
            out[index] = Some(id);
        }
        let missing: Vec<&ParamSig> = params
            .iter()
            .enumerate()
            .filter(|(k, p)| given[*k].is_none() && !p.optional() && !misspelt.contains(k))
            .map(|(_, p)| p)
            .collect();
        if !missing.is_empty() {
            let names: Vec<String> = missing
                .iter()
                .map(|p| format!("`{}: {}`", p.name, p.ty))
                .collect();
            let message = if missing.len() == 1 {
                format!("missing required argument {} of {callee}", names.join(""))
            } else {
                format!(
                    "missing required arguments of {callee}: {}",
                    names.join(", ")
                )
            };
            let mut d = Diagnostic::new(codes::MISSING_ARGUMENT, call_span, message)
                .with_label("in this call");
            for p in &missing {
                d = d.with_secondary(p.span, format!("`{}` is declared here", p.name));
            }
            self.report(d.with_help(format!(
                    "add {}",
                    missing
                        .iter()
                        .map(|p| format!("`{}: ...`", p.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
        }
        out
    }
}
