//! Laying out workflows and test blocks: blocks, statements, steps and their modifiers.

use super::*;

impl<'s> Printer<'s> {
    pub(super) fn workflow(&mut self, workflow: &Workflow) -> R<Doc> {
        let mut docs = vec![self.token("workflow")?, sp(), self.ident(&workflow.name)?];
        if self.peek_is("(") {
            docs.push(self.params(&workflow.params)?);
        }
        if let Some(result) = &workflow.result {
            docs.push(self.result_type(result)?);
        }
        docs.push(sp());
        docs.push(self.block(&workflow.body)?);
        Ok(Doc::Seq(docs))
    }

    pub(super) fn test_decl(&mut self, test: &TestDecl) -> R<Doc> {
        let mut docs = vec![
            self.token("test")?,
            sp(),
            self.span_text(test.name_span)?,
            sp(),
        ];
        docs.push(self.block_of(&test.statements, |p, statement| {
            Ok(Doc::Seq(vec![
                p.test_statement(statement)?,
                p.skip_separators(&[";"]),
            ]))
        })?);
        Ok(Doc::Seq(docs))
    }

    pub(super) fn test_statement(&mut self, statement: &TestStatement) -> R<Doc> {
        match &statement.kind {
            // Only a file without syntax errors is formatted.
            TestStatementKind::Error { .. } => Err(self.mismatch("a statement")),
            TestStatementKind::Mock { target, behaviours } => {
                let mut docs = vec![self.token("mock")?, sp(), self.path(target)?];
                for (i, behaviour) in behaviours.iter().enumerate() {
                    if i > 0 {
                        docs.extend([sp(), self.token("then")?]);
                    }
                    docs.push(sp());
                    match &behaviour.outcome {
                        MockOutcome::Returns(e) => docs.push(self.keyword_expr("returns", e)?),
                        MockOutcome::Fails { kind, message } => {
                            docs.extend([
                                self.token("fails")?,
                                sp(),
                                self.ident(kind)?,
                                self.token("(")?,
                            ]);
                            if let Some(message) = message {
                                docs.push(self.expr(message)?);
                            }
                            docs.push(self.token(")")?);
                        }
                    }
                    if let Some(times) = &behaviour.times {
                        docs.extend([sp(), self.keyword_expr("times", times)?]);
                    }
                }
                Ok(Doc::Seq(docs))
            }
            TestStatementKind::Run { target, args } => Ok(Doc::Seq(vec![
                self.token("run")?,
                sp(),
                self.path(target)?,
                self.args(args)?,
            ])),
            TestStatementKind::Expect(e) => self.keyword_expr("expect", e),
            TestStatementKind::Let { name, ty, value } => {
                self.let_binding(name, ty.as_ref(), value)
            }
        }
    }

    pub(super) fn block(&mut self, block: &Block) -> R<Doc> {
        self.block_of(&block.statements, |p, statement| {
            Ok(Doc::Seq(vec![
                p.statement(statement)?,
                p.skip_separators(&[";"]),
            ]))
        })
    }

    pub(super) fn let_binding(
        &mut self,
        name: &Ident,
        ty: Option<&TypeExpr>,
        value: &Expr,
    ) -> R<Doc> {
        let mut docs = vec![self.token("let")?, sp(), self.ident(name)?];
        if let Some(ty) = ty {
            docs.extend([self.token(":")?, sp(), self.type_expr(ty)?]);
        }
        docs.extend([sp(), self.token("=")?, sp(), self.expr(value)?]);
        Ok(Doc::Seq(docs))
    }

    pub(super) fn statement(&mut self, statement: &Statement) -> R<Doc> {
        match &statement.kind {
            // Only a file without syntax errors is formatted.
            StatementKind::Error { .. } => Err(self.mismatch("a statement")),
            StatementKind::On(trigger) => {
                let mut docs = vec![
                    self.token("on")?,
                    sp(),
                    self.path(&trigger.source)?,
                    self.args(&trigger.args)?,
                ];
                if let Some(ty) = &trigger.as_type {
                    docs.extend([sp(), self.token("as")?, sp(), self.type_expr(ty)?]);
                }
                if let Some(when) = &trigger.when {
                    docs.extend([sp(), self.keyword_expr("when", when)?]);
                }
                Ok(Doc::Seq(docs))
            }
            StatementKind::Settings(entries) => {
                let mut docs = vec![self.token("settings")?, sp()];
                docs.push(self.block_of(entries, |p, entry| {
                    Ok(Doc::Seq(vec![
                        p.ident(&entry.name)?,
                        sp(),
                        p.token("=")?,
                        sp(),
                        p.expr(&entry.value)?,
                        p.skip_separators(&[";", ","]),
                    ]))
                })?);
                Ok(Doc::Seq(docs))
            }
            StatementKind::Let { name, ty, value } => self.let_binding(name, ty.as_ref(), value),
            StatementKind::Step(step) => self.step(step),
            StatementKind::Wait(Wait::For(e)) => self.keyword_expr("wait", e),
            StatementKind::Wait(Wait::Until(e)) => Ok(Doc::Seq(vec![
                self.token("wait")?,
                sp(),
                self.keyword_expr("until", e)?,
            ])),
            StatementKind::Notify {
                integration,
                target,
                message,
            } => Ok(Doc::Seq(vec![
                self.token("notify")?,
                sp(),
                self.ident(integration)?,
                sp(),
                self.expr(target)?,
                sp(),
                self.expr(message)?,
            ])),
            StatementKind::If {
                branches,
                otherwise,
            } => {
                let mut docs = Vec::new();
                for (i, branch) in branches.iter().enumerate() {
                    if i > 0 {
                        docs.extend([sp(), self.token("else")?, sp()]);
                    }
                    docs.extend([
                        self.token("if")?,
                        sp(),
                        self.expr(&branch.condition)?,
                        sp(),
                        self.block(&branch.body)?,
                    ]);
                }
                if let Some(otherwise) = otherwise {
                    docs.extend([sp(), self.token("else")?, sp(), self.block(otherwise)?]);
                }
                Ok(Doc::Seq(docs))
            }
            StatementKind::For {
                var,
                iterable,
                parallel,
                body,
            } => {
                let mut docs = vec![
                    self.token("for")?,
                    sp(),
                    self.ident(var)?,
                    sp(),
                    self.token("in")?,
                    sp(),
                    self.expr(iterable)?,
                ];
                if let Some(parallel) = parallel {
                    docs.extend([sp(), self.keyword_expr("parallel", parallel)?]);
                }
                docs.extend([sp(), self.block(body)?]);
                Ok(Doc::Seq(docs))
            }
            StatementKind::Try {
                body,
                error,
                handler,
            } => {
                let mut docs = vec![
                    self.token("try")?,
                    sp(),
                    self.block(body)?,
                    sp(),
                    self.token("catch")?,
                    sp(),
                ];
                if let Some(error) = error {
                    docs.extend([self.ident(error)?, sp()]);
                }
                docs.push(self.block(handler)?);
                Ok(Doc::Seq(docs))
            }
            StatementKind::Fail(e) => self.keyword_expr("fail", e),
            StatementKind::Return(None) => self.token("return"),
            StatementKind::Return(Some(e)) => self.keyword_expr("return", e),
            StatementKind::Log(e) => self.keyword_expr("log", e),
        }
    }

    pub(super) fn step(&mut self, step: &Step) -> R<Doc> {
        let mut docs = vec![
            self.token("step")?,
            sp(),
            self.ident(&step.name)?,
            sp(),
            self.token("=")?,
            sp(),
        ];
        match step.call {
            StepCall::Workflow { .. } => docs.extend([self.token("run")?, sp()]),
            StepCall::Wait { .. } => docs.extend([self.token("wait")?, sp()]),
            StepCall::Action { .. } => {}
        }
        docs.push(self.path(step.call.target())?);
        docs.push(self.args(step.call.args())?);
        if let StepCall::Wait { as_type, when, .. } = &step.call {
            if let Some(ty) = as_type {
                docs.extend([sp(), self.token("as")?, sp(), self.type_expr(ty)?]);
            }
            if let Some(when) = when {
                docs.extend([sp(), self.keyword_expr("when", when)?]);
            }
        }
        let mut modifiers = Vec::new();
        for modifier in &step.modifiers {
            modifiers.push(HARD);
            modifiers.push(self.modifier(modifier)?);
        }
        if !modifiers.is_empty() {
            docs.push(Doc::Indent(modifiers));
        }
        Ok(Doc::Seq(docs))
    }

    pub(super) fn modifier(&mut self, modifier: &Modifier) -> R<Doc> {
        match &modifier.kind {
            ModifierKind::After(names) => {
                let mut docs = vec![self.token("after")?, sp()];
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        docs.extend([self.token(",")?, sp()]);
                    }
                    docs.push(self.ident(name)?);
                }
                Ok(Doc::Seq(docs))
            }
            ModifierKind::Retry(retry) => {
                let mut docs = vec![self.keyword_expr("retry", &retry.attempts)?];
                // Options are printed in the order they were written.
                let end = modifier.span.end as usize;
                while let Some(t) = self.peek().filter(|t| t.start < end) {
                    let option = match self.text_of(&t) {
                        "delay" => retry.delay.as_ref().map(|e| ("delay", e)),
                        "backoff" => retry.backoff.as_ref().map(|e| ("backoff", e)),
                        "max_delay" => retry.max_delay.as_ref().map(|e| ("max_delay", e)),
                        "jitter" if retry.jitter => {
                            docs.extend([sp(), self.token("jitter")?]);
                            continue;
                        }
                        _ => return Err(self.mismatch("a `retry` option")),
                    };
                    let Some((keyword, e)) = option else {
                        return Err(self.mismatch("a `retry` option"));
                    };
                    docs.extend([sp(), self.keyword_expr(keyword, e)?]);
                }
                Ok(Doc::Seq(docs))
            }
            ModifierKind::Timeout(e) => self.keyword_expr("timeout", e),
            ModifierKind::Cache(e) => self.keyword_expr("cache", e),
            ModifierKind::IdempotencyKey(e) => self.keyword_expr("idempotency_key", e),
        }
    }

    // ------------------------------------------------------------ expressions
}
