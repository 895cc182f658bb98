//! The statement tree of a workflow body: blocks, `let`s, branches, loops, `try`,
//! returns, and the dependency edges each expression's reads create.

use super::*;

impl Checker<'_> {
    pub(super) fn lower_block(&mut self, wf: &mut Wf, block: &ast::Block, id: BlockId) {
        let mark = wf.bindings.mark();
        self.bind_steps(wf);
        let mut previous: Vec<StmtId> = Vec::new();
        let mut last_wait: Option<StmtId> = None;
        let mut ended: Option<Span> = None;
        let mut warned_unreachable = false;
        for s in &block.statements {
            if let StatementKind::Error {
                declares: Some(name),
            } = &s.kind
            {
                // The name a broken `step x = ...` or `let x = ...` declares reads as an
                // error value, so its uses are not reported as unknown names too.
                if wf.bindings.find(&name.name).is_none() {
                    let local = wf.arena.new_local(name.name.clone(), Type::Error);
                    wf.bindings.push(Binding {
                        name: name.name.clone(),
                        local,
                        ty: Type::Error,
                        def: name.span,
                        kind: SymbolKind::Let,
                        doc: None,
                    });
                }
            }
            if lowers_to_nothing(s) {
                continue;
            }
            let sid = StmtId::from_index(wf.next_stmt);
            wf.next_stmt += 1;
            if let Some(end) = ended
                && !warned_unreachable
            {
                warned_unreachable = true;
                self.report(
                    Diagnostic::new(codes::UNREACHABLE, s.span, "this statement can never run")
                        .with_label("unreachable")
                        .with_secondary(end, "the run ends here"),
                );
            }
            wf.current = sid;
            if let Some(wait) = last_wait {
                wf.edges.push(Edge {
                    from: sid,
                    to: wait,
                    span: s.span,
                    kind: EdgeKind::Barrier,
                    name: String::new(),
                });
            }
            let barrier = matches!(
                s.kind,
                StatementKind::Wait(_) | StatementKind::Fail(_) | StatementKind::Return(_)
            );
            if barrier {
                for &p in &previous {
                    wf.edges.push(Edge {
                        from: sid,
                        to: p,
                        span: s.span,
                        kind: EdgeKind::Barrier,
                        name: String::new(),
                    });
                }
            }
            let kind = self.lower_stmt(wf, s, sid);
            if let Some(stmt) = wf.stmts.get_mut(sid.index()) {
                stmt.kind = kind;
                stmt.block = id;
            }
            if matches!(s.kind, StatementKind::Wait(_)) {
                last_wait = Some(sid);
            }
            if matches!(s.kind, StatementKind::Fail(_) | StatementKind::Return(_))
                && ended.is_none()
            {
                ended = Some(s.span);
            }
            previous.push(sid);
        }
        self.record_scope(wf, mark, block.span);
        wf.bindings.truncate(mark);
    }

    /// Records for the editor the names bound since `mark`, as visible in `block`: a
    /// `let` from its declaration on, any other name (a step, a loop variable, `err`,
    /// a parameter) in the whole block.
    pub(super) fn record_scope(&mut self, wf: &Wf, mark: usize, block: Span) {
        for b in wf.bindings.list.get(mark..).unwrap_or_default() {
            let from = if b.kind == SymbolKind::Let && block.contains(b.def.start as usize) {
                b.def.end as usize
            } else {
                block.start as usize
            };
            self.analysis.scope.push(crate::analysis::ScopeName {
                name: b.name.clone(),
                ty: b.ty.clone(),
                kind: b.kind,
                definition: b.def,
                visible: Span::new(block.file, from, block.end as usize),
            });
        }
    }

    pub(super) fn sub_block(&mut self, wf: &mut Wf, block: &ast::Block, parent: StmtId) -> BlockId {
        // Pass 1 numbered the blocks of `parent` in the order pass 2 visits them.
        let id = wf
            .children
            .get_mut(&parent)
            .and_then(|c| c.pop_front())
            .unwrap_or(BlockId(0));
        wf.path.push(id);
        wf.ancestors.push(parent);
        self.lower_block(wf, block, id);
        wf.ancestors.pop();
        wf.path.pop();
        wf.current = parent;
        id
    }

    /// Checks an expression as part of the current statement, recording what it reads.
    pub(super) fn expr(&mut self, wf: &mut Wf, e: &ast::Expr, expected: Option<&Type>) -> ExprId {
        let before = wf.arena.nodes.len();
        let id = check_in(
            e,
            &wf.bindings,
            &mut wf.arena,
            expected,
            &mut self.diagnostics,
            &mut self.analysis,
        );
        self.record_reads(wf, before);
        id
    }

    pub(super) fn record_reads(&mut self, wf: &mut Wf, before: usize) {
        for (local, span) in locals_read(&wf.arena, before) {
            let owner = wf
                .owners
                .get(local.0 as usize)
                .copied()
                .unwrap_or(Owner::None);
            match owner {
                Owner::None => {}
                Owner::StepView { step, depth } => {
                    wf.steps[step].used = true;
                    if let Some(current) = current_step(wf)
                        && !wf.steps[current].reads.contains(&step)
                    {
                        wf.steps[current].reads.push(step);
                    }
                    let info = &wf.steps[step];
                    let target = if depth < info.ancestors.len() {
                        info.ancestors[depth]
                    } else {
                        info.stmt
                    };
                    if wf.ancestors.contains(&target) {
                        continue;
                    }
                    let name = format!("`{}`", wf.steps[step].name.clone().unwrap_or_default());
                    wf.edges.push(Edge {
                        from: wf.current,
                        to: target,
                        span,
                        kind: EdgeKind::Data,
                        name,
                    });
                }
                Owner::Unavailable { step } => {
                    let name = wf.steps[step].name.clone().unwrap_or_default();
                    let def = wf.steps[step].name_span;
                    self.report(
                        Diagnostic::new(codes::NO_VALUE_HERE, span, format!("step `{name}` never has a value here"))
                            .with_label("read here")
                            .with_secondary(def, "declared in another branch of the same statement")
                            .with_note("only one branch of an `if` runs, and a `catch` runs after its `try` body, never before"),
                    );
                }
                Owner::Let { index } => {
                    wf.lets[index].used = true;
                    let target = wf.lets[index].stmt;
                    if target != wf.current {
                        let name = format!("`{}`", wf.lets[index].name);
                        wf.edges.push(Edge {
                            from: wf.current,
                            to: target,
                            span,
                            kind: EdgeKind::Data,
                            name,
                        });
                    }
                }
            }
        }
    }

    pub(super) fn lower_stmt(
        &mut self,
        wf: &mut Wf,
        s: &ast::Statement,
        sid: StmtId,
    ) -> ir::StmtKind {
        match &s.kind {
            StatementKind::On(_) | StatementKind::Settings(_) | StatementKind::Error { .. } => {
                ir::StmtKind::Return(None)
            }
            StatementKind::Let { name, ty, value } => {
                let declared = ty.as_ref().map(|t| self.type_of(wf.m, None, t));
                let value_id = self.expr(wf, value, declared.as_ref());
                let ty = declared
                    .unwrap_or_else(|| wf.arena.ty(value_id).cloned().unwrap_or(Type::Error));
                if let Some(b) = wf.bindings.find(&name.name) {
                    let def = b.def;
                    self.report(
                        Diagnostic::new(
                            codes::DUPLICATE_NAME,
                            name.span,
                            format!("`{}` is already declared", name.name),
                        )
                        .with_label("declared again here")
                        .with_secondary(def, "first declared here")
                        .with_help("choose another name"),
                    );
                }
                let local = wf.arena.new_local(name.name.clone(), ty.clone());
                let index = wf.lets.len();
                wf.lets.push(LetInfo {
                    name: name.name.clone(),
                    span: name.span,
                    stmt: sid,
                    used: false,
                });
                wf.owner(local, Owner::Let { index });
                self.analysis.reference_with(
                    name.span,
                    name.span,
                    SymbolKind::Let,
                    &name.name,
                    format!("let {}: {ty}", name.name),
                    s.doc.clone(),
                );
                wf.bindings.push(Binding {
                    name: name.name.clone(),
                    local,
                    ty,
                    def: name.span,
                    kind: SymbolKind::Let,
                    doc: s.doc.clone(),
                });
                ir::StmtKind::Let {
                    local,
                    value: value_id,
                }
            }
            StatementKind::Step(step) => {
                let index = wf.steps.iter().position(|x| x.stmt == sid).unwrap_or(0);
                self.lower_step(wf, index, step, s);
                ir::StmtKind::Step(StepId::from_index(index))
            }
            StatementKind::Notify {
                integration,
                target,
                message,
            } => {
                let index = wf.steps.iter().position(|x| x.stmt == sid).unwrap_or(0);
                self.lower_notify(wf, index, integration, target, message, s.span);
                ir::StmtKind::Step(StepId::from_index(index))
            }
            StatementKind::Wait(w) => match w {
                ast::Wait::For(d) => {
                    ir::StmtKind::Wait(ir::Wait::For(self.duration(wf, d, "`wait`")))
                }
                ast::Wait::Until(t) => {
                    ir::StmtKind::Wait(ir::Wait::Until(self.expr(wf, t, Some(&Type::Timestamp))))
                }
            },
            StatementKind::If {
                branches,
                otherwise,
            } => {
                let mut out = Vec::with_capacity(branches.len());
                for b in branches {
                    wf.current = sid;
                    let condition = self.expr(wf, &b.condition, Some(&Type::Bool));
                    let body = self.sub_block(wf, &b.body, sid);
                    out.push(ir::Branch { condition, body });
                }
                let otherwise = otherwise.as_ref().map(|o| self.sub_block(wf, o, sid));
                ir::StmtKind::If {
                    branches: out,
                    otherwise,
                    exports: Vec::new(),
                }
            }
            StatementKind::For {
                var,
                iterable,
                parallel,
                body,
            } => {
                let iter_id = self.expr(wf, iterable, None);
                let ity = wf.arena.ty(iter_id).cloned().unwrap_or(Type::Error);
                let elem = match &ity {
                    Type::List(t) => (**t).clone(),
                    Type::Map(k, _) => (**k).clone(),
                    Type::Dyn => Type::Dyn,
                    Type::Error => Type::Error,
                    other => {
                        let d = Diagnostic::new(
                            codes::NOT_ITERABLE,
                            iterable.span,
                            format!("`for` needs a list or a map, found `{other}`"),
                        )
                        .with_label(format!("this is `{other}`"));
                        self.report(match other {
                            Type::Optional(inner)
                                if matches!(**inner, Type::List(_) | Type::Map(..)) =>
                            {
                                d.with_help("this may be null: iterate over `value ?? []`")
                            }
                            _ => d,
                        });
                        Type::Error
                    }
                };
                let parallel = parallel.as_ref().map(|p| match self.fold(wf.m, p) {
                    Some(v) => match self.int_in_range(&v, p.span, "`parallel`", 1, 10_000) {
                        Some(n) => ConstOr::Const(n as u32),
                        None => ConstOr::Const(1),
                    },
                    None => ConstOr::Expr(self.expr(wf, p, Some(&Type::Int))),
                });
                let local = wf.arena.new_local(var.name.clone(), elem.clone());
                self.analysis.reference_with(
                    var.span,
                    var.span,
                    SymbolKind::Variable,
                    &var.name,
                    format!("{}: {elem}", var.name),
                    None,
                );
                let mark = wf.bindings.mark();
                wf.bindings.push(Binding {
                    name: var.name.clone(),
                    local,
                    ty: elem,
                    def: var.span,
                    kind: SymbolKind::Variable,
                    doc: None,
                });
                let body_id = self.sub_block(wf, body, sid);
                self.record_scope(wf, mark, body.span);
                wf.bindings.truncate(mark);
                ir::StmtKind::For {
                    var: local,
                    iterable: iter_id,
                    parallel,
                    body: body_id,
                    exports: Vec::new(),
                }
            }
            StatementKind::Try {
                body,
                error,
                handler,
            } => {
                let body_id = self.sub_block(wf, body, sid);
                let mark = wf.bindings.mark();
                let err = error.as_ref().map(|e| {
                    let ty = ir::error_record_type();
                    let local = wf.arena.new_local(e.name.clone(), ty.clone());
                    self.analysis.reference_with(e.span, e.span, SymbolKind::Variable, &e.name, format!("{}: {{ kind: string, message: string, step: string, attempts: int, status: int?, details: dyn }}", e.name), None);
                    wf.bindings.push(Binding { name: e.name.clone(), local, ty, def: e.span, kind: SymbolKind::Variable, doc: Some("The error that ended the `try` body.".into()) });
                    local
                });
                let handler_id = self.sub_block(wf, handler, sid);
                self.record_scope(wf, mark, handler.span);
                wf.bindings.truncate(mark);
                ir::StmtKind::Try {
                    body: body_id,
                    error: err,
                    handler: handler_id,
                    exports: Vec::new(),
                }
            }
            StatementKind::Fail(message) => {
                let id = self.expr(wf, message, Some(&Type::String));
                self.no_secret(wf, id, "a failure message");
                ir::StmtKind::Fail(id)
            }
            StatementKind::Return(value) => {
                let Some(value) = value else {
                    if let Some(result) = &wf.result {
                        self.report(
                            Diagnostic::new(
                                codes::RETURN_TYPE,
                                s.span,
                                format!("this workflow returns `{result}`; `return` needs a value"),
                            )
                            .with_label("no value"),
                        );
                    }
                    return ir::StmtKind::Return(None);
                };
                let before = self.diagnostics.len();
                let id = self.expr(wf, value, None);
                let id = match wf.result.clone() {
                    Some(result) => {
                        let span = value.span;
                        let decl = wf.result_span.unwrap_or(span);
                        self.convert(&mut wf.arena, id, &result, before, |from, to| {
                            Diagnostic::new(
                                codes::RETURN_TYPE,
                                span,
                                format!("the workflow returns `{to}`, but this is `{from}`"),
                            )
                            .with_label(format!("this is `{from}`"))
                            .with_secondary(decl, "the result type is declared here")
                        })
                    }
                    None => {
                        if let Some(t) = wf.arena.ty(id) {
                            wf.returned.push(t.clone());
                        }
                        id
                    }
                };
                self.no_secret(wf, id, "the workflow's output");
                ir::StmtKind::Return(Some(id))
            }
            StatementKind::Log(value) => {
                let id = self.expr(wf, value, None);
                self.no_secret(wf, id, "a log line");
                ir::StmtKind::Log(id)
            }
        }
    }

    pub(super) fn no_secret(&mut self, wf: &Wf, id: ExprId, place: &str) {
        if wf.arena.ty(id).is_some_and(Type::contains_secret) {
            self.report(
                Diagnostic::new(
                    codes::SECRET_LEAK,
                    wf.arena.span(id),
                    format!("a secret cannot reach {place}"),
                )
                .with_label("this value holds a secret")
                .with_note("secrets are only usable where an integration expects a credential")
                .with_help("remove the secret from this value"),
            );
        }
    }

    pub(super) fn duration(&mut self, wf: &mut Wf, e: &ast::Expr, what: &str) -> ConstOr<i64> {
        match self.fold(wf.m, e) {
            Some(v) => ConstOr::Const(self.positive_duration(&v, e.span, what).unwrap_or(1)),
            None => ConstOr::Expr(self.expr(wf, e, Some(&Type::Duration))),
        }
    }
}
