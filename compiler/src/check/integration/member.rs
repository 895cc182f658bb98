//! An integration's actions and events lowered: request clauses, pagination, error
//! mapping, result extraction and timeouts of an action; webhook, verification, filter
//! and result of an event.

use super::*;

impl Checker<'_> {
    pub(super) fn lower_action(&mut self, i: IntegIdx, a: usize) -> ir::Action {
        let sig = &self.integrations[i].actions[a];
        let ast = sig.ast.clone();
        let (idempotent, native, result) = (sig.idempotent, sig.native, sig.result.clone());
        let params_sig = Arc::clone(&sig.params);
        let integ_name = self.integrations[i].name.clone();
        let signature = format!(
            "{}action {integ_name}.{}({}) -> {result}",
            if idempotent { "idempotent " } else { "" },
            ast.name.name,
            params_sig
                .iter()
                .map(|p| format!("{}: {}", p.name, p.ty))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.analysis.reference_with(
            ast.name.span,
            ast.name.span,
            SymbolKind::Action,
            &ast.name.name,
            signature,
            ast.doc.clone(),
        );
        let mut arena = ExprArena::new();
        let mut bindings = Bindings {
            list: Vec::new(),
            credentials: true,
        };
        let params = self.lower_params(&params_sig, &mut arena, &mut bindings, SymbolKind::Param);
        let response = arena.new_local("response", ir::response_type());
        bindings.push(Binding {
            name: "response".into(),
            local: response,
            ty: ir::response_type(),
            def: ast.name.span,
            kind: SymbolKind::Variable,
            doc: Some("The HTTP response: `status`, `headers` and the decoded `body`.".into()),
        });
        let mut out = ir::Action {
            name: ast.name.name.clone(),
            doc: ast.doc.clone(),
            idempotent,
            native,
            params,
            result: result.clone(),
            exprs: Default::default(),
            response,
            request: None,
            query: None,
            headers: None,
            body: None,
            paginate: None,
            error_when: Vec::new(),
            result_expr: None,
            timeout: None,
        };
        let mut seen: Vec<(&'static str, Span)> = Vec::new();
        for clause in &ast.clauses {
            let keyword = match &clause.kind {
                // A clause that did not parse: its syntax error is reported.
                ActionClauseKind::Error => continue,
                ActionClauseKind::Request { .. } => "request",
                ActionClauseKind::Query(_) => "query",
                ActionClauseKind::Headers(_) => "headers",
                ActionClauseKind::Body { .. } => "body",
                ActionClauseKind::Paginate { .. } => "paginate",
                ActionClauseKind::ErrorWhen { .. } => "error_when",
                ActionClauseKind::Result(_) => "result",
                ActionClauseKind::Timeout(_) => "timeout",
            };
            if keyword != "error_when" {
                if let Some((_, first)) = seen.iter().find(|(k, _)| *k == keyword) {
                    let first = *first;
                    self.report(
                        Diagnostic::new(
                            codes::DUPLICATE_CLAUSE,
                            clause.span,
                            format!("`{keyword}` is given twice in this action"),
                        )
                        .with_label("given again here")
                        .with_secondary(first, "first given here"),
                    );
                    continue;
                }
                seen.push((keyword, clause.span));
            }
            match &clause.kind {
                ActionClauseKind::Error => {}
                ActionClauseKind::Request { method, path } => {
                    let path = self.check_string(path, &bindings, &mut arena);
                    if let Some(method) = Method::parse(&method.name) {
                        out.request = Some(ir::Endpoint { method, path });
                    }
                }
                ActionClauseKind::Query(e) => {
                    out.query = Some(check_in(
                        e,
                        &bindings,
                        &mut arena,
                        None,
                        &mut self.diagnostics,
                        &mut self.analysis,
                    ));
                }
                ActionClauseKind::Headers(e) => {
                    out.headers = Some(check_in(
                        e,
                        &bindings,
                        &mut arena,
                        None,
                        &mut self.diagnostics,
                        &mut self.analysis,
                    ));
                }
                ActionClauseKind::Body { kind, value } => {
                    let kind = match kind.name.as_str() {
                        "form" => BodyKind::Form,
                        "xml" => BodyKind::Xml,
                        "text" => BodyKind::Text,
                        "multipart" => BodyKind::Multipart,
                        _ => BodyKind::Json,
                    };
                    let expected = if kind == BodyKind::Text {
                        Some(Type::String)
                    } else {
                        None
                    };
                    let value = check_in(
                        value,
                        &bindings,
                        &mut arena,
                        expected.as_ref(),
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                    out.body = Some(ir::Body { kind, value });
                }
                ActionClauseKind::Paginate { kind, args } => {
                    let k = match kind.name.as_str() {
                        "cursor" => Some(PaginateKind::Cursor),
                        "link" => Some(PaginateKind::Link),
                        "offset" => Some(PaginateKind::Offset),
                        "page" => Some(PaginateKind::Page),
                        other => {
                            self.report(
                                Diagnostic::new(
                                    codes::UNKNOWN_PAGINATION,
                                    kind.span,
                                    format!("unknown pagination `{other}`"),
                                )
                                .with_label("not a pagination kind")
                                .with_suggestion(other, PAGINATION_KINDS.iter().copied())
                                .with_note("pagination kinds: cursor, link, offset, page"),
                            );
                            None
                        }
                    };
                    if let Some(k) = k {
                        match k {
                            PaginateKind::Cursor => {
                                let place = if args.iter().any(|a| {
                                    a.name.as_ref().is_some_and(|n| n.name == "body_param")
                                }) {
                                    "body_param"
                                } else {
                                    "param"
                                };
                                self.form_shape("cursor", clause.span, args, 1, &[place], &[])
                            }
                            PaginateKind::Link => {
                                let positional =
                                    args.iter().filter(|a| a.name.is_none()).count().min(1);
                                self.form_shape("link", clause.span, args, positional, &[], &[])
                            }
                            PaginateKind::Offset => self.form_shape(
                                "offset",
                                clause.span,
                                args,
                                0,
                                &["param"],
                                &["limit_param", "size", "more", "start"],
                            ),
                            PaginateKind::Page => self.form_shape(
                                "page",
                                clause.span,
                                args,
                                0,
                                &["param"],
                                &["size_param", "size", "start", "more"],
                            ),
                        }
                        let args = self.form_args(args, &bindings, &mut arena);
                        out.paginate = Some(ir::Paginate { kind: k, args });
                    }
                }
                ActionClauseKind::ErrorWhen { condition, message } => {
                    let condition = check_in(
                        condition,
                        &bindings,
                        &mut arena,
                        Some(&Type::Bool),
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                    let message = check_in(
                        message,
                        &bindings,
                        &mut arena,
                        Some(&Type::Dyn),
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                    out.error_when.push(ir::ErrorWhen { condition, message });
                }
                ActionClauseKind::Result(e) => {
                    let before = self.diagnostics.len();
                    let id = check_in(
                        e,
                        &bindings,
                        &mut arena,
                        None,
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                    let span = e.span;
                    out.result_expr =
                        Some(self.convert(&mut arena, id, &result, before, |from, to| {
                            Diagnostic::new(
                                codes::RETURN_TYPE,
                                span,
                                format!("the action's result is `{to}`, but this is `{from}`"),
                            )
                            .with_label(format!("this is `{from}`"))
                        }));
                }
                ActionClauseKind::Timeout(e) => {
                    out.timeout = match self.fold(self.integrations[i].module, e) {
                        Some(v) => self
                            .positive_duration(&v, e.span, "`timeout`")
                            .map(ConstOr::Const),
                        None => Some(ConstOr::Expr(check_in(
                            e,
                            &bindings,
                            &mut arena,
                            Some(&Type::Duration),
                            &mut self.diagnostics,
                            &mut self.analysis,
                        ))),
                    };
                }
            }
        }
        if out.request.is_none() && !native {
            let d = Diagnostic::new(
                codes::MISSING_REQUEST,
                ast.name.span,
                format!("action `{}` sends no request", ast.name.name),
            )
            .with_label("no `METHOD \"/path\"` line")
            .with_help("add a request line such as `GET \"/items\"`");
            self.report(if self.integrations[i].builtin {
                d.with_note("only the clause-less actions of `http`, `file` and `console` are implemented by the runtime")
            } else {
                d
            });
        }
        out.exprs = std::sync::Arc::new(arena);
        out
    }

    pub(super) fn lower_event(&mut self, i: IntegIdx, e: usize) -> ir::Event {
        let sig = &self.integrations[i].events[e];
        let ast = sig.ast.clone();
        let result = sig.result.clone();
        let params_sig = Arc::clone(&sig.params);
        let integ_name = self.integrations[i].name.clone();
        let signature = format!(
            "event {integ_name}.{}({}) -> {result}",
            ast.name.name,
            params_sig
                .iter()
                .map(|p| format!("{}: {}", p.name, p.ty))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.analysis.reference_with(
            ast.name.span,
            ast.name.span,
            SymbolKind::Event,
            &ast.name.name,
            signature,
            ast.doc.clone(),
        );
        let mut arena = ExprArena::new();
        let mut bindings = Bindings {
            list: Vec::new(),
            credentials: true,
        };
        let params = self.lower_params(&params_sig, &mut arena, &mut bindings, SymbolKind::Param);
        let payload = arena.new_local("payload", Type::Dyn);
        let headers = arena.new_local("headers", Type::map(Type::String, Type::String));
        for (name, local, ty) in [
            ("payload", payload, Type::Dyn),
            ("headers", headers, Type::map(Type::String, Type::String)),
        ] {
            bindings.push(Binding {
                name: name.into(),
                local,
                ty,
                def: ast.name.span,
                kind: SymbolKind::Variable,
                doc: None,
            });
        }
        let mut out = ir::Event {
            name: ast.name.name.clone(),
            doc: ast.doc.clone(),
            params,
            result: result.clone(),
            exprs: Default::default(),
            payload,
            headers,
            webhook: None,
            verify: None,
            when: None,
            result_expr: None,
        };
        for clause in &ast.clauses {
            match &clause.kind {
                EventClauseKind::Error => {}
                EventClauseKind::Webhook(p) => {
                    out.webhook = Some(self.check_string(p, &bindings, &mut arena));
                    if let Some(ConstVal::String(s)) = self.fold(self.integrations[i].module, p)
                        && !s.starts_with('/')
                    {
                        self.report(
                            Diagnostic::new(
                                codes::INVALID_WEBHOOK_PATH,
                                p.span,
                                format!("webhook path `{s}` must start with `/`"),
                            )
                            .with_label("not an absolute path"),
                        );
                    }
                }
                EventClauseKind::Verify { scheme, args } => {
                    let s = match scheme.name.as_str() {
                        "slack_signature" => Some(VerifyScheme::SlackSignature),
                        "github_signature" => Some(VerifyScheme::GithubSignature),
                        "stripe_signature" => Some(VerifyScheme::StripeSignature),
                        "hmac_sha256" => Some(VerifyScheme::HmacSha256),
                        "standard_webhooks" => Some(VerifyScheme::StandardWebhooks),
                        other => {
                            self.report(
                                Diagnostic::new(codes::UNKNOWN_VERIFY, scheme.span, format!("unknown webhook verification `{other}`"))
                                    .with_label("not a verification scheme")
                                    .with_suggestion(other, VERIFY_SCHEMES.iter().copied())
                                    .with_note("schemes: slack_signature, github_signature, stripe_signature, hmac_sha256, standard_webhooks"),
                            );
                            None
                        }
                    };
                    if let Some(s) = s {
                        if s == VerifyScheme::HmacSha256 {
                            self.form_shape(
                                "hmac_sha256",
                                clause.span,
                                args,
                                1,
                                &["header"],
                                &["prefix", "encoding"],
                            );
                        } else {
                            self.form_shape(&scheme.name, clause.span, args, 1, &[], &[]);
                        }
                        let args = self.form_args(args, &bindings, &mut arena);
                        out.verify = Some(ir::Verify { scheme: s, args });
                    }
                }
                EventClauseKind::When(c) => {
                    out.when = Some(check_in(
                        c,
                        &bindings,
                        &mut arena,
                        Some(&Type::Bool),
                        &mut self.diagnostics,
                        &mut self.analysis,
                    ));
                }
                EventClauseKind::Result(r) => {
                    let before = self.diagnostics.len();
                    let id = check_in(
                        r,
                        &bindings,
                        &mut arena,
                        None,
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                    let span = r.span;
                    out.result_expr =
                        Some(self.convert(&mut arena, id, &result, before, |from, to| {
                            Diagnostic::new(
                                codes::RETURN_TYPE,
                                span,
                                format!("the event's type is `{to}`, but this is `{from}`"),
                            )
                            .with_label(format!("this is `{from}`"))
                        }));
                }
            }
        }
        if out.webhook.is_none() {
            self.report(
                Diagnostic::new(
                    codes::EVENT_WITHOUT_WEBHOOK,
                    ast.name.span,
                    format!("event `{}` has no webhook", ast.name.name),
                )
                .with_label("nothing delivers this event")
                .with_help("add `webhook \"/path\"`"),
            );
        }
        out.exprs = std::sync::Arc::new(arena);
        out
    }
}
