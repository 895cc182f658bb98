//! Steps: what a step calls (an action, a child workflow, a signal it waits for), its
//! arguments and modifiers (`retry`, `after`, timeouts), and `notify` statements.

use super::*;

impl Checker<'_> {
    pub(super) fn resolve_step_target(
        &mut self,
        m: ModIdx,
        w: WfIdx,
        step: &ast::Step,
    ) -> (Target, Type) {
        let path = step.call.target();
        match &step.call {
            StepCall::Wait { .. } => self.resolve_wait(m, step),
            StepCall::Workflow { .. } => match self.resolve_path(m, None, &path.segments) {
                Ok((Symbol::Workflow(target), def)) => {
                    let result = self.workflows[target].result.clone().unwrap_or(Type::Dyn);
                    let _ = w;
                    self.analysis.reference_with(
                        path.span,
                        def,
                        SymbolKind::Workflow,
                        &path.dotted(),
                        format!("workflow {} -> {result}", path.dotted()),
                        self.workflows[target].doc.clone(),
                    );
                    (Target::Workflow(target), result)
                }
                Ok((other, _)) => {
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_WORKFLOW,
                            path.span,
                            format!(
                                "`{}` is {}, not a workflow",
                                path.dotted(),
                                other.describe()
                            ),
                        )
                        .with_label("`run` needs a workflow"),
                    );
                    (Target::Unresolved, Type::Error)
                }
                Err(e) => {
                    self.unknown_path(codes::UNKNOWN_WORKFLOW, "workflow", &path.segments, e);
                    (Target::Unresolved, Type::Error)
                }
            },
            StepCall::Action { .. } => {
                if path.segments.len() < 2 {
                    let name = path.dotted();
                    let d = Diagnostic::new(
                        codes::UNKNOWN_ACTION,
                        path.span,
                        format!("`{name}` is not an action"),
                    )
                    .with_label("expected `integration.action`");
                    let d = match self.lookup(m, &name).map(|e| e.sym) {
                        Some(Symbol::Workflow(_)) => d.with_help(format!(
                            "to start a child workflow, write `run {name}(...)`"
                        )),
                        _ => d,
                    };
                    self.report(d);
                    return (Target::Unresolved, Type::Error);
                }
                let action = &path.segments[path.segments.len() - 1];
                match self.integration_member(
                    m,
                    path,
                    Member::Action,
                    "a step calls `integration.action(...)`",
                ) {
                    Some((integ, a)) => {
                        let sig = &self.integrations[integ].actions[a];
                        let hover = sig.hover.clone();
                        let (def, doc, result) = (sig.span, sig.doc.clone(), sig.result.clone());
                        self.analysis.reference_with(
                            action.span,
                            def,
                            SymbolKind::Action,
                            &action.name,
                            hover,
                            doc,
                        );
                        (Target::Action(integ, a), result)
                    }
                    None => (Target::Unresolved, Type::Error),
                }
            }
        }
    }

    /// `wait signal("name") as T`: the name a string literal, the type `T` (`dyn`
    /// without `as`), no `when`; every wait for one name has the same type.
    fn resolve_wait(&mut self, m: ModIdx, step: &ast::Step) -> (Target, Type) {
        let StepCall::Wait {
            target,
            args,
            as_type,
            when,
            span,
        } = &step.call
        else {
            return (Target::Unresolved, Type::Error);
        };
        if !step.call.is_signal_wait() {
            return self.resolve_event_wait(m, target, as_type.as_ref());
        }
        if let Some(w) = when {
            self.report(
                Diagnostic::new(codes::INVALID_WAIT, w.span, "a signal wait takes no `when`")
                    .with_label("signals are sent to one run by its id")
                    .with_help("remove `when ...`; check the payload in the steps that follow"),
            );
        }
        let name = match args.as_slice() {
            [a] if a.name.is_none() => match &a.value.kind {
                ast::ExprKind::String(s) if valid_signal_name(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(name) = name else {
            let at = args.first().map_or(*span, |a| a.value.span);
            self.report(
                Diagnostic::new(
                    codes::INVALID_WAIT,
                    at,
                    "`wait signal(...)` takes one name, a string literal",
                )
                .with_label("expected a name such as \"approve\"")
                .with_note("a signal name is 1 to 64 letters, digits, `_`, `-` or `.`; it is part of the run API's address"),
            );
            return (Target::Unresolved, Type::Error);
        };
        let ty = match as_type {
            Some(t) => self.type_of(m, None, t),
            None => Type::Dyn,
        };
        (Target::Signal(name), ty)
    }

    /// The integration and the index of the action or event `path` (at least two
    /// segments) names; what is unknown is reported.
    fn integration_member(
        &mut self,
        m: ModIdx,
        path: &ast::Path,
        member: Member,
        context: &str,
    ) -> Option<(IntegIdx, usize)> {
        let (head, last) = path.segments.split_at(path.segments.len() - 1);
        let integ = self.find_integration(m, head, path.span, context)?;
        let name = &last[0];
        let index = self.find_member(integ, member, &name.name, name.span)?;
        Some((integ, index))
    }

    /// `wait integration.event(args) when COND`: the event, whose declared result is the
    /// step's type (an `as T` is refused: the integration declares it).
    fn resolve_event_wait(
        &mut self,
        m: ModIdx,
        target: &ast::Path,
        as_type: Option<&ast::TypeExpr>,
    ) -> (Target, Type) {
        if target.segments.len() < 2 {
            self.report(
                Diagnostic::new(
                    codes::INVALID_WAIT,
                    target.span,
                    format!("`wait {}(...)` waits for nothing", target.dotted()),
                )
                .with_label("expected `signal(\"name\")` or `integration.event(...)`"),
            );
            return (Target::Unresolved, Type::Error);
        }
        let name = &target.segments[target.segments.len() - 1];
        let Some((integ, e)) = self.integration_member(
            m,
            target,
            Member::Event,
            "a wait names `integration.event(...)`",
        ) else {
            return (Target::Unresolved, Type::Error);
        };
        let sig = &self.integrations[integ].events[e];
        let (def, doc, result) = (sig.span, sig.doc.clone(), sig.result.clone());
        self.analysis
            .reference(name.span, def, SymbolKind::Event, &name.name, doc);
        if let Some(ty) = as_type {
            self.report(
                Diagnostic::new(
                    codes::INVALID_WAIT,
                    ty.span,
                    "`as TYPE` on an event wait: the integration declares the event's type",
                )
                .with_label("remove this")
                .with_note(format!("the step's value has type `{result}`")),
            );
        }
        (Target::Event(integ, e), result)
    }

    pub(super) fn lower_notify(
        &mut self,
        wf: &mut Wf,
        index: usize,
        integration: &ast::Ident,
        target: &ast::Expr,
        message: &ast::Expr,
        span: Span,
    ) {
        wf.notify_count += 1;
        let name = format!("notify#{}", wf.notify_count);
        let integ = match self
            .lookup(wf.m, &integration.name)
            .map(|e| (e.sym, e.span))
        {
            Some((Symbol::Integration(i), def)) => {
                let iname = self.integrations[i].name.clone();
                self.analysis.reference_with(
                    integration.span,
                    def,
                    SymbolKind::Integration,
                    &iname,
                    format!("integration {iname}"),
                    self.integrations[i].doc.clone(),
                );
                if self.integrations[i].notify.is_none() {
                    self.report(
                        Diagnostic::new(codes::NO_NOTIFY, integration.span, format!("integration `{}` declares no `notify`", iname))
                            .with_label("cannot notify through this integration")
                            .with_help("call one of its actions in a `step`, or declare `notify = action(...)` in the integration"),
                    );
                }
                Some(i)
            }
            Some((other, _)) => {
                self.report(
                    Diagnostic::new(
                        codes::NOT_AN_INTEGRATION,
                        integration.span,
                        format!(
                            "`{}` is {}, not an integration",
                            integration.name,
                            other.describe()
                        ),
                    )
                    .with_label("`notify` needs an integration"),
                );
                None
            }
            None => {
                let candidates: Vec<String> = self.modules[wf.m]
                    .names
                    .iter()
                    .filter(|(_, e)| matches!(e.sym, Symbol::Integration(_)))
                    .map(|(n, _)| n.clone())
                    .collect();
                let d = Diagnostic::new(
                    codes::UNKNOWN_NAME,
                    integration.span,
                    format!("unknown integration `{}`", integration.name),
                )
                .with_label("not declared or imported here")
                .with_suggestion(&integration.name, candidates.iter().map(String::as_str));
                let d = match (&d.help, self.import_hint(&integration.name)) {
                    (None, Some(h)) => d.with_help(h),
                    _ => d,
                };
                self.report(d);
                None
            }
        };
        let t = self.expr(wf, target, Some(&Type::String));
        self.no_secret(wf, t, "a notification");
        let msg = self.expr(wf, message, Some(&Type::String));
        self.no_secret(wf, msg, "a notification");
        let info = &wf.steps[index];
        let idempotent = match integ.and_then(|i| self.integrations[i].notify.map(|a| (i, a))) {
            Some((i, a)) => self.integrations[i]
                .actions
                .get(a)
                .is_some_and(|a| a.idempotent),
            None => false,
        };
        let _ = span;
        wf.lowered[index] = Some(ir::Step {
            name,
            doc: None,
            stmt: info.stmt,
            local: info.views.last().copied().unwrap_or(LocalId(0)),
            call: ir::StepCall::Notify {
                integration: integ
                    .map_or(ir::IntegrationId(u32::MAX), ir::IntegrationId::from_index),
                target: t,
                message: msg,
            },
            result: info.ty.clone(),
            idempotent,
            retry: if idempotent {
                wf.settings_retry.clone()
            } else {
                None
            },
            timeout: None,
            cache: None,
            idempotency_key: None,
            reads: Vec::new(),
            after: Vec::new(),
        });
    }

    pub(super) fn lower_step(
        &mut self,
        wf: &mut Wf,
        index: usize,
        step: &ast::Step,
        s: &ast::Statement,
    ) {
        let target = wf.steps[index].target.clone();
        let ty = wf.steps[index].ty.clone();
        self.analysis.reference_with(
            step.name.span,
            step.name.span,
            SymbolKind::Step,
            &step.name.name,
            format!("step {}: {ty}", step.name.name),
            s.doc.clone(),
        );
        let call_span = step.call.span();
        let args = step.call.args();
        let before = wf.arena.nodes.len();
        let (call, action_idempotent) = match &target {
            Target::Action(i, a) => {
                let sig = &self.integrations[*i].actions[*a];
                let params = Arc::clone(&sig.params);
                let idempotent = sig.idempotent;
                let callee = format!("`{}.{}`", self.integrations[*i].name, sig.name);
                let args = self.call_args(
                    &params,
                    args,
                    &wf.bindings,
                    &mut wf.arena,
                    call_span,
                    &callee,
                );
                (
                    ir::StepCall::Action {
                        action: ir::ActionRef {
                            integration: ir::IntegrationId::from_index(*i),
                            action: *a as u32,
                        },
                        args,
                    },
                    idempotent,
                )
            }
            Target::Workflow(w) => {
                let params = Arc::clone(&self.workflows[*w].params);
                let callee = format!("workflow `{}`", self.workflows[*w].name);
                let args = self.call_args(
                    &params,
                    args,
                    &wf.bindings,
                    &mut wf.arena,
                    call_span,
                    &callee,
                );
                (
                    ir::StepCall::Workflow {
                        workflow: ir::WorkflowId::from_index(*w),
                        args,
                    },
                    false,
                )
            }
            Target::Event(i, e) => {
                let sig = &self.integrations[*i].events[*e];
                let params = Arc::clone(&sig.params);
                let callee = format!("event `{}.{}`", self.integrations[*i].name, sig.name);
                let args = self.call_args(
                    &params,
                    args,
                    &wf.bindings,
                    &mut wf.arena,
                    call_span,
                    &callee,
                );
                // `event` in the condition is the delivery, for this condition only.
                let mark = wf.bindings.mark();
                let event_local = wf.arena.new_local("event", ty.clone());
                wf.bindings.push(Binding {
                    name: "event".into(),
                    local: event_local,
                    ty: ty.clone(),
                    def: call_span,
                    kind: SymbolKind::Variable,
                    doc: Some("The delivery this wait takes.".into()),
                });
                let from = wf.arena.nodes.len();
                let when = match &step.call {
                    StepCall::Wait { when: Some(c), .. } => Some(check_in(
                        c,
                        &wf.bindings,
                        &mut wf.arena,
                        Some(&Type::Bool),
                        &mut self.diagnostics,
                        &mut self.analysis,
                    )),
                    _ => None,
                };
                wf.bindings.truncate(mark);
                let mut reads: Vec<LocalId> = locals_read(&wf.arena, from)
                    .into_iter()
                    .map(|(l, _)| l)
                    .filter(|l| *l != event_local)
                    .collect();
                reads.sort_by_key(|l| l.0);
                reads.dedup();
                (
                    ir::StepCall::Event {
                        event: ir::EventRef {
                            integration: ir::IntegrationId::from_index(*i),
                            event: *e as u32,
                        },
                        args,
                        when,
                        event_local,
                        reads,
                    },
                    true,
                )
            }
            Target::Signal(name) => {
                // The name was read from the literal; nothing else to evaluate.
                match wf.signal_types.get(name) {
                    Some((other, first))
                        if *other != Type::Error && ty != Type::Error && *other != ty =>
                    {
                        let (other, first) = (other.clone(), *first);
                        self.report(
                            Diagnostic::new(
                                codes::SIGNAL_TYPE_CONFLICT,
                                call_span,
                                format!("signal `{name}` is waited for as {ty} here and as {other} before"),
                            )
                            .with_label(format!("as {ty}"))
                            .with_secondary(first, format!("as {other}"))
                            .with_note("a sender checks a signal's payload against one type, before any run takes it")
                            .with_help("give every wait for this signal the same type, or use two signal names"),
                        );
                    }
                    Some(_) => {}
                    None => {
                        wf.signal_types
                            .insert(name.clone(), (ty.clone(), call_span));
                    }
                }
                (ir::StepCall::Signal { name: name.clone() }, true)
            }
            _ => {
                for a in args {
                    check_in(
                        &a.value,
                        &wf.bindings,
                        &mut wf.arena,
                        None,
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                }
                (
                    ir::StepCall::Workflow {
                        workflow: ir::WorkflowId(u32::MAX),
                        args: Vec::new(),
                    },
                    false,
                )
            }
        };
        self.record_reads(wf, before);

        let mut retry: Option<(ir::Retry, Span)> = None;
        let mut timeout = None;
        let mut cache = None;
        let mut key = None;
        let is_wait = matches!(target, Target::Signal(_) | Target::Event(..));
        for modifier in &step.modifiers {
            if is_wait
                && !matches!(
                    modifier.kind,
                    ModifierKind::After(_) | ModifierKind::Timeout(_)
                )
            {
                let keyword = modifier.kind.keyword();
                self.report(
                    Diagnostic::new(
                        codes::INVALID_WAIT,
                        modifier.span,
                        format!("a wait takes no `{keyword}`"),
                    )
                    .with_label("nothing is called, so nothing is retried, cached or deduplicated")
                    .with_help("a wait takes `timeout D` (how long to wait) and `after STEP`"),
                );
                continue;
            }
            match &modifier.kind {
                ModifierKind::After(names) => {
                    for n in names {
                        self.after(wf, index, n);
                    }
                }
                ModifierKind::Retry(r) => retry = Some((self.step_retry(wf, r), modifier.span)),
                ModifierKind::Timeout(e) => timeout = Some(self.duration(wf, e, "`timeout`")),
                ModifierKind::Cache(e) => {
                    if matches!(target, Target::Action(..)) && !action_idempotent {
                        self.report(
                            Diagnostic::new(codes::CACHE_NOT_IDEMPOTENT, modifier.span, "`cache` needs an action declared `idempotent`")
                                .with_label("this action may change something each time it is called")
                                .with_note("reusing the result of a call with side effects would skip those effects"),
                        );
                    }
                    cache = Some(self.duration(wf, e, "`cache`"));
                }
                ModifierKind::IdempotencyKey(e) => {
                    let id = self.expr(wf, e, Some(&Type::String));
                    key = Some(id);
                }
            }
        }
        let idempotent = action_idempotent || key.is_some();
        if let (Some((_, span)), Target::Action(i, a)) = (&retry, &target)
            && !action_idempotent
            && key.is_none()
        {
            let name = format!(
                "{}.{}",
                self.integrations[*i].name, self.integrations[*i].actions[*a].name
            );
            self.report(
                    Diagnostic::new(codes::RETRY_NOT_IDEMPOTENT, *span, format!("`retry` on `{name}`, which is not idempotent"))
                        .with_label("a retry may repeat the side effect")
                        .with_note("if a call fails after the service acted, the retry acts again")
                        .with_help("add `idempotency_key EXPR` (a key the service deduplicates on), or remove `retry`"),
                );
        }
        let effective = match retry {
            Some((r, _)) => Some(r),
            None if idempotent
                && !matches!(
                    target,
                    Target::Workflow(_) | Target::Signal(_) | Target::Event(..)
                ) =>
            {
                wf.settings_retry.clone()
            }
            None => None,
        };
        let info = &wf.steps[index];
        wf.lowered[index] = Some(ir::Step {
            name: step.name.name.clone(),
            doc: s.doc.clone(),
            stmt: info.stmt,
            local: info.views.last().copied().unwrap_or(LocalId(0)),
            call,
            result: ty,
            idempotent,
            retry: effective,
            timeout,
            cache,
            idempotency_key: key,
            reads: Vec::new(),
            after: Vec::new(),
        });
    }

    pub(super) fn after(&mut self, wf: &mut Wf, index: usize, name: &ast::Ident) {
        let Some(&target) = wf.step_by_name.get(&name.name) else {
            let names: Vec<&str> = wf.step_by_name.keys().map(String::as_str).collect();
            self.report(
                Diagnostic::new(
                    codes::UNKNOWN_STEP,
                    name.span,
                    format!("no step `{}` in this workflow", name.name),
                )
                .with_label("unknown step")
                .with_suggestion(&name.name, names),
            );
            return;
        };
        let def = wf.steps[target].name_span;
        let hover = format!("step {}: {}", name.name, wf.steps[target].ty);
        self.analysis.reference_with(
            name.span,
            def,
            SymbolKind::Step,
            &name.name,
            hover,
            wf.steps[target].doc.clone(),
        );
        wf.steps[target].used = true;
        wf.steps[index].after.push(target);
        // The statement to wait for is the target's ancestor in the deepest block
        // shared with this step.
        let tb = &wf.steps[target].blocks;
        let k = tb.iter().zip(&wf.path).take_while(|(a, b)| a == b).count();
        let info = &wf.steps[target];
        let stmt = if k >= tb.len() || k == 0 {
            info.stmt
        } else {
            info.ancestors.get(k - 1).copied().unwrap_or(info.stmt)
        };
        if wf.ancestors.contains(&stmt) {
            return;
        }
        wf.edges.push(Edge {
            from: wf.current,
            to: stmt,
            span: name.span,
            kind: EdgeKind::After,
            name: format!("`{}`", name.name),
        });
    }

    pub(super) fn step_retry(&mut self, wf: &mut Wf, r: &ast::Retry) -> ir::Retry {
        let retries = match self.fold(wf.m, &r.attempts) {
            Some(v) => ConstOr::Const(
                self.int_in_range(&v, r.attempts.span, "the number of retries", 0, MAX_RETRIES)
                    .unwrap_or(0) as u32,
            ),
            None => ConstOr::Expr(self.expr(wf, &r.attempts, Some(&Type::Int))),
        };
        let delay = match &r.delay {
            Some(d) => self.duration(wf, d, "`delay`"),
            None => ConstOr::Const(DEFAULT_RETRY_DELAY),
        };
        let backoff = match &r.backoff {
            Some(b) => match self.fold(wf.m, b) {
                Some(v) => ConstOr::Const(self.backoff_factor(&v, b.span).unwrap_or(1.0)),
                None => ConstOr::Expr(self.expr(wf, b, Some(&Type::Double))),
            },
            None => ConstOr::Const(1.0),
        };
        let max_delay = r
            .max_delay
            .as_ref()
            .map(|d| self.duration(wf, d, "`max_delay`"));
        ir::Retry {
            retries,
            delay,
            backoff,
            max_delay,
            jitter: r.jitter,
            from_settings: false,
        }
    }
}

/// A signal name: 1 to 64 of `[A-Za-z0-9_.-]`, so it can stand in a URL path unescaped.
fn valid_signal_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
