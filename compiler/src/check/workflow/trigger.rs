//! A workflow's trigger (`on schedule`, `on webhook`, `on integration.event`) and the
//! program-wide check that no two workflows listen on one webhook path.

use super::*;

impl Checker<'_> {
    pub(super) fn lower_trigger(
        &mut self,
        wf: &mut Wf,
        t: &ast::Trigger,
        event: &mut Option<LocalId>,
    ) -> Option<ir::Trigger> {
        let m = wf.m;
        let segments = &t.source.segments;
        let single = if segments.len() == 1 {
            Some(segments[0].name.as_str())
        } else {
            None
        };
        let (kind, event_ty) = match single {
            Some("schedule") => {
                let mut cron: Option<(String, Span)> = None;
                let mut zone: Option<String> = None;
                for arg in &t.args {
                    match arg.name.as_ref().map(|n| n.name.as_str()) {
                        None if cron.is_none() => match self.fold(m, &arg.value) {
                            Some(ConstVal::String(s)) => cron = Some((s, arg.value.span)),
                            _ => self.report(
                                Diagnostic::new(
                                    codes::NOT_CONSTANT,
                                    arg.value.span,
                                    "the cron expression must be a string literal",
                                )
                                .with_label("not a constant string"),
                            ),
                        },
                        Some("tz") => match self.fold(m, &arg.value) {
                            Some(ConstVal::String(s)) => {
                                if self.validate_time_zone(&s, arg.value.span) {
                                    zone = Some(s);
                                }
                            }
                            _ => self.report(
                                Diagnostic::new(
                                    codes::NOT_CONSTANT,
                                    arg.value.span,
                                    "the time zone must be a string literal",
                                )
                                .with_label("not a constant string"),
                            ),
                        },
                        Some(other) => self.report(
                            Diagnostic::new(
                                codes::UNKNOWN_ARGUMENT,
                                arg.span,
                                format!("`schedule` has no parameter `{other}`"),
                            )
                            .with_label("unknown argument")
                            .with_suggestion(other, ["tz"])
                            .with_note("`schedule(\"CRON\", tz: \"Zone\")`"),
                        ),
                        None => self.report(
                            Diagnostic::new(
                                codes::UNKNOWN_ARGUMENT,
                                arg.span,
                                "`schedule` takes one cron expression",
                            )
                            .with_label("extra argument"),
                        ),
                    }
                }
                let Some((cron, span)) = cron else {
                    self.report(
                        Diagnostic::new(
                            codes::MISSING_ARGUMENT,
                            t.span,
                            "`schedule` needs a cron expression",
                        )
                        .with_label("no cron expression")
                        .with_help("for example `on schedule(\"0 6 * * *\", tz: \"UTC\")`"),
                    );
                    return None;
                };
                let with_seconds = self.validate_cron(&cron, span)?;
                (
                    ir::TriggerKind::Schedule {
                        cron,
                        with_seconds,
                        time_zone: zone,
                    },
                    ir::schedule_event_type(),
                )
            }
            Some("webhook") => {
                let path = match t.args.as_slice() {
                    [arg] if arg.name.is_none() => match self.fold(m, &arg.value) {
                        Some(ConstVal::String(s)) => {
                            if !s.starts_with('/') {
                                self.report(
                                    Diagnostic::new(
                                        codes::INVALID_WEBHOOK_PATH,
                                        arg.value.span,
                                        format!("webhook path `{s}` must start with `/`"),
                                    )
                                    .with_label("not an absolute path")
                                    .with_help(format!("write `\"/{s}\"`")),
                                );
                            }
                            self.workflows[wf.w].webhook = Some((s.clone(), arg.value.span));
                            s
                        }
                        _ => {
                            self.report(
                                Diagnostic::new(
                                    codes::NOT_CONSTANT,
                                    arg.value.span,
                                    "the webhook path must be a string literal",
                                )
                                .with_label("not a constant string"),
                            );
                            return None;
                        }
                    },
                    _ => {
                        self.report(
                            Diagnostic::new(
                                codes::INVALID_WEBHOOK_PATH,
                                t.span,
                                "`webhook` takes one path",
                            )
                            .with_label("expected `webhook(\"/path\")`"),
                        );
                        return None;
                    }
                };
                let ty = match &t.as_type {
                    Some(ty) => self.type_of(m, None, ty),
                    None => Type::Dyn,
                };
                (
                    ir::TriggerKind::Webhook {
                        path,
                        body_type: ty.clone(),
                    },
                    ty,
                )
            }
            _ => {
                let (integ_path, event_name) = segments.split_at(segments.len().saturating_sub(1));
                let resolved = if integ_path.is_empty() {
                    None
                } else {
                    Some(self.resolve_path(m, None, integ_path))
                };
                let integ = match resolved {
                    Some(Ok((Symbol::Integration(i), def))) => {
                        self.analysis.reference(
                            integ_path[integ_path.len() - 1].span,
                            def,
                            SymbolKind::Integration,
                            &self.integrations[i].name.clone(),
                            self.integrations[i].doc.clone(),
                        );
                        i
                    }
                    Some(Err(e)) => {
                        self.unknown_path(codes::UNKNOWN_TRIGGER, "trigger", segments, e);
                        return None;
                    }
                    _ => {
                        let shown = t.source.dotted();
                        let mut candidates: Vec<String> = vec!["schedule".into(), "webhook".into()];
                        candidates.extend(
                            self.modules[m]
                                .names
                                .iter()
                                .filter(|(_, e)| matches!(e.sym, Symbol::Integration(_)))
                                .map(|(n, _)| n.clone()),
                        );
                        self.report(
                            Diagnostic::new(codes::UNKNOWN_TRIGGER, t.source.span, format!("unknown trigger `{shown}`"))
                                .with_label("not a trigger")
                                .with_suggestion(&shown, candidates.iter().map(String::as_str))
                                .with_note("triggers: `schedule(\"CRON\")`, `webhook(\"/path\")`, or an integration's event such as `slack.message(...)`"),
                        );
                        return None;
                    }
                };
                let Some(event_ident) = event_name.first() else {
                    return None;
                };
                let e =
                    self.find_member(integ, Member::Event, &event_ident.name, event_ident.span)?;
                let sig = &self.integrations[integ].events[e];
                let def = sig.span;
                let doc = sig.doc.clone();
                let result = sig.result.clone();
                let params = Arc::clone(&sig.params);
                self.analysis.reference(
                    event_ident.span,
                    def,
                    SymbolKind::Event,
                    &event_ident.name,
                    doc,
                );
                if let Some(ty) = &t.as_type {
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_TRIGGER,
                            ty.span,
                            "`as TYPE` applies only to `webhook` triggers",
                        )
                        .with_label("the event's type is declared by the integration")
                        .with_note(format!("`event` has type `{result}` here")),
                    );
                }
                let callee = format!("event `{}`", t.source.dotted());
                let args = self.call_args(
                    &params,
                    &t.args,
                    &wf.bindings,
                    &mut wf.arena,
                    t.span,
                    &callee,
                );
                let event_ref = ir::EventRef {
                    integration: ir::IntegrationId::from_index(integ),
                    event: e as u32,
                };
                (
                    ir::TriggerKind::Event {
                        event: event_ref,
                        args,
                    },
                    result,
                )
            }
        };
        let local = wf.arena.new_local("event", event_ty.clone());
        *event = Some(local);
        wf.bindings.push(Binding {
            name: "event".into(),
            local,
            ty: event_ty,
            def: t.span,
            kind: SymbolKind::Variable,
            doc: Some("The event that started this run.".into()),
        });
        let when = t.when.as_ref().map(|c| {
            check_in(
                c,
                &wf.bindings,
                &mut wf.arena,
                Some(&Type::Bool),
                &mut self.diagnostics,
                &mut self.analysis,
            )
        });
        Some(ir::Trigger { kind, when })
    }

    // ------------------------------------------------------------------ pass 1

    /// Webhook paths must be unique across the program.
    pub(in crate::check) fn check_webhook_paths(&mut self) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        let mut found = Vec::new();
        for w in &self.workflows {
            if let Some((path, span)) = &w.webhook {
                match seen.get(path) {
                    Some(first) => found.push((path.clone(), *span, *first)),
                    None => {
                        seen.insert(path.clone(), *span);
                    }
                }
            }
        }
        for (path, span, first) in found {
            self.report(
                Diagnostic::new(
                    codes::DUPLICATE_WEBHOOK_PATH,
                    span,
                    format!("webhook path `{path}` is already used"),
                )
                .with_label("used again here")
                .with_secondary(first, "first used here")
                .with_help("give each webhook trigger its own path"),
            );
        }
        // A workflow's webhook may not take the path of an integration event another
        // workflow of the program listens to.
        let mut clashes = Vec::new();
        for w in &self.workflows {
            let Some((
                ir::Trigger {
                    kind: ir::TriggerKind::Event { event, .. },
                    ..
                },
                Some(trigger),
            )) =
                w.ir.as_ref()
                    .and_then(|i| Some((i.trigger.as_ref()?, i.spans.trigger.as_ref())))
            else {
                continue;
            };
            let Some(sig) = self
                .integrations
                .get(event.integration.index())
                .and_then(|i| i.events.get(event.event as usize))
            else {
                continue;
            };
            let module = self.integrations[event.integration.index()].module;
            let path = sig.ast.clauses.iter().find_map(|c| match &c.kind {
                ast::EventClauseKind::Webhook(p) => match self.fold(module, p) {
                    Some(ConstVal::String(s)) => Some(s),
                    _ => None,
                },
                _ => None,
            });
            if let Some(path) = path
                && let Some(span) = seen.get(&path)
            {
                let name = format!(
                    "{}.{}",
                    self.integrations[event.integration.index()].name,
                    sig.name
                );
                clashes.push((path, *span, *trigger, name));
            }
        }
        for (path, span, trigger, name) in clashes {
            self.report(
                Diagnostic::new(
                    codes::DUPLICATE_WEBHOOK_PATH,
                    span,
                    format!("webhook path `{path}` is the path of the `{name}` event"),
                )
                .with_label("this webhook would receive that event's deliveries")
                .with_secondary(trigger, format!("`{name}` is a trigger here"))
                .with_help("give the webhook trigger another path"),
            );
        }
    }
}
