//! Building workflows and test blocks: blocks, statements, steps and their modifiers, mocks.

use super::*;

impl<'s> Builder<'s> {
    pub(super) fn workflow(&self, p: P<'_>) -> R<Workflow> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut name = None;
        let mut params = Vec::new();
        let mut result = None;
        let mut body = None;
        for part in p.into_children() {
            match part.as_rule() {
                Rule::ident => name = Some(self.ident(part)),
                Rule::param_list => params = self.params(part)?,
                Rule::result_type => result = Some(self.type_expr(first(part))?),
                _ => body = Some(self.block(part)?),
            }
        }
        let name =
            name.ok_or_else(|| self.error(codes::SYNTAX, span, "a workflow needs a name"))?;
        let body =
            body.ok_or_else(|| self.error(codes::SYNTAX, span, "a workflow needs a body"))?;
        Ok(Workflow {
            doc,
            name,
            params,
            result,
            body,
            span,
        })
    }

    pub(super) fn block(&self, p: P<'_>) -> R<Block> {
        let span = self.span(&p);
        let statements = p
            .into_children()
            .map(|s| self.statement(s))
            .collect::<R<Vec<_>>>()?;
        Ok(Block { statements, span })
    }

    pub(super) fn statement(&self, p: P<'_>) -> R<Statement> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let s = first(p);
        let rule = s.as_rule();
        let stmt_span = self.span(&s);
        let mut inner = s.into_children();
        let kind = match rule {
            Rule::on_stmt => {
                let source = self.path(next(&mut inner)?);
                let args = self.args(next(&mut inner)?)?;
                let mut as_type = None;
                let mut when = None;
                for part in inner {
                    match part.as_rule() {
                        Rule::type_expr => as_type = Some(self.type_expr(part)?),
                        _ => when = Some(self.expr(part)?),
                    }
                }
                StatementKind::On(Trigger {
                    source,
                    args,
                    as_type,
                    when,
                    span: stmt_span,
                })
            }
            Rule::settings_stmt => StatementKind::Settings(
                inner
                    .map(|entry| {
                        let span = self.span(&entry);
                        let mut parts = entry.into_children();
                        let name = self.ident(next(&mut parts)?);
                        Ok(SettingEntry {
                            name,
                            value: self.expr(next(&mut parts)?)?,
                            span,
                        })
                    })
                    .collect::<R<Vec<_>>>()?,
            ),
            Rule::let_stmt => {
                let (name, ty, value) = self.let_parts(inner)?;
                StatementKind::Let { name, ty, value }
            }
            Rule::step_stmt => StatementKind::Step(self.step(inner)?),
            Rule::error_stmt => StatementKind::Error { declares: None },
            Rule::wait_stmt => {
                let w = next(&mut inner)?;
                if w.as_rule() == Rule::wait_until {
                    StatementKind::Wait(Wait::Until(self.expr(first(w))?))
                } else {
                    StatementKind::Wait(Wait::For(self.expr(w)?))
                }
            }
            Rule::notify_stmt => {
                let integration = self.ident(next(&mut inner)?);
                let target = self
                    .operand(&mut next(&mut inner)?.into_children().peekable())?
                    .0;
                let message = self.expr(next(&mut inner)?)?;
                StatementKind::Notify {
                    integration,
                    target,
                    message,
                }
            }
            Rule::if_stmt => {
                let condition = self.expr(next(&mut inner)?)?;
                let body = self.block(next(&mut inner)?)?;
                let mut branches = vec![IfBranch {
                    span: condition.span.to(body.span),
                    condition,
                    body,
                }];
                let mut otherwise = None;
                for part in inner {
                    let part_span = self.span(&part);
                    if part.as_rule() == Rule::else_if {
                        let mut parts = part.into_children();
                        let condition = self.expr(next(&mut parts)?)?;
                        let body = self.block(next(&mut parts)?)?;
                        branches.push(IfBranch {
                            condition,
                            body,
                            span: part_span,
                        });
                    } else {
                        otherwise = Some(self.block(first(part))?);
                    }
                }
                StatementKind::If {
                    branches,
                    otherwise,
                }
            }
            Rule::for_stmt => {
                let var = self.ident(next(&mut inner)?);
                let iterable = self.expr(next(&mut inner)?)?;
                let mut parallel = None;
                let mut body = None;
                for part in inner {
                    if part.as_rule() == Rule::parallel {
                        parallel = Some(self.expr(first(part))?);
                    } else {
                        body = Some(self.block(part)?);
                    }
                }
                let body = body.ok_or_else(|| {
                    self.error(codes::SYNTAX, stmt_span, "a `for` loop needs a body")
                })?;
                StatementKind::For {
                    var,
                    iterable,
                    parallel,
                    body,
                }
            }
            Rule::try_stmt => {
                let body = self.block(next(&mut inner)?)?;
                let mut error = None;
                let mut handler = None;
                for part in inner {
                    if part.as_rule() == Rule::ident {
                        error = Some(self.ident(part));
                    } else {
                        handler = Some(self.block(part)?);
                    }
                }
                let handler = handler.ok_or_else(|| {
                    self.error(codes::SYNTAX, stmt_span, "`try` needs a `catch` block")
                })?;
                StatementKind::Try {
                    body,
                    error,
                    handler,
                }
            }
            Rule::fail_stmt => StatementKind::Fail(self.expr(next(&mut inner)?)?),
            Rule::return_stmt => {
                StatementKind::Return(inner.next().map(|e| self.expr(e)).transpose()?)
            }
            _ => StatementKind::Log(self.expr(next(&mut inner)?)?),
        };
        Ok(Statement { doc, kind, span })
    }

    pub(super) fn let_parts(&self, inner: Children<'_>) -> R<(Ident, Option<TypeExpr>, Expr)> {
        let mut name = None;
        let mut ty = None;
        let mut value = None;
        for part in inner {
            match part.as_rule() {
                Rule::ident => name = Some(self.ident(part)),
                Rule::type_expr => ty = Some(self.type_expr(part)?),
                _ => value = Some(self.expr(part)?),
            }
        }
        match (name, value) {
            (Some(name), Some(value)) => Ok((name, ty, value)),
            _ => Err(self.error(
                codes::SYNTAX,
                Span::new(self.file, self.base, self.base),
                "incomplete `let`",
            )),
        }
    }

    pub(super) fn step(&self, mut inner: Children<'_>) -> R<Step> {
        let name = self.ident(next(&mut inner)?);
        let call = next(&mut inner)?;
        let call_span = self.span(&call);
        let rule = call.as_rule();
        let mut parts = call.into_children();
        let target = self.path(next(&mut parts)?);
        let args = self.args(next(&mut parts)?)?;
        let call = match rule {
            Rule::run_call => StepCall::Workflow {
                target,
                args,
                span: call_span,
            },
            Rule::wait_call => {
                let mut as_type = None;
                let mut when = None;
                for part in parts {
                    match part.as_rule() {
                        Rule::type_expr => as_type = Some(self.type_expr(part)?),
                        _ => when = Some(self.expr(part)?),
                    }
                }
                StepCall::Wait {
                    target,
                    args,
                    as_type,
                    when,
                    span: call_span,
                }
            }
            _ => StepCall::Action {
                target,
                args,
                span: call_span,
            },
        };
        let mut modifiers: Vec<Modifier> = Vec::new();
        for m in inner {
            let modifier = self.modifier(m)?;
            if let Some(previous) = modifiers
                .iter()
                .find(|p| p.kind.keyword() == modifier.kind.keyword())
            {
                let keyword = modifier.kind.keyword();
                return Err(self
                    .error(
                        codes::DUPLICATE_MODIFIER,
                        modifier.span,
                        format!("`{keyword}` is given twice for step `{}`", name.name),
                    )
                    .with_label("second one here")
                    .with_secondary(previous.span, "first one here")
                    .with_help(format!("keep one `{keyword}`")));
            }
            modifiers.push(modifier);
        }
        Ok(Step {
            name,
            call,
            modifiers,
        })
    }

    pub(super) fn modifier(&self, p: P<'_>) -> R<Modifier> {
        let span = self.span(&p);
        let m = first(p);
        let rule = m.as_rule();
        let mut inner = m.into_children();
        let kind = match rule {
            Rule::after_modifier => ModifierKind::After(inner.map(|i| self.ident(i)).collect()),
            Rule::retry_modifier => {
                let attempts = self.expr(next(&mut inner)?)?;
                let mut retry = Retry {
                    attempts,
                    delay: None,
                    backoff: None,
                    max_delay: None,
                    jitter: false,
                };
                for option in inner {
                    let option_span = self.span(&option);
                    let o = first(option);
                    let (slot_taken, word) = match o.as_rule() {
                        Rule::retry_delay => (retry.delay.is_some(), "delay"),
                        Rule::retry_backoff => (retry.backoff.is_some(), "backoff"),
                        Rule::retry_max_delay => (retry.max_delay.is_some(), "max_delay"),
                        _ => (retry.jitter, "jitter"),
                    };
                    if slot_taken {
                        return Err(self
                            .error(
                                codes::DUPLICATE_MODIFIER,
                                option_span,
                                format!("`{word}` is given twice in one `retry`"),
                            )
                            .with_help(format!("keep one `{word}`")));
                    }
                    match o.as_rule() {
                        Rule::retry_delay => retry.delay = Some(self.expr(first(o))?),
                        Rule::retry_backoff => retry.backoff = Some(self.expr(first(o))?),
                        Rule::retry_max_delay => retry.max_delay = Some(self.expr(first(o))?),
                        _ => retry.jitter = true,
                    }
                }
                ModifierKind::Retry(retry)
            }
            Rule::timeout_modifier => ModifierKind::Timeout(self.expr(next(&mut inner)?)?),
            Rule::cache_modifier => ModifierKind::Cache(self.expr(next(&mut inner)?)?),
            _ => ModifierKind::IdempotencyKey(self.expr(next(&mut inner)?)?),
        };
        Ok(Modifier { kind, span })
    }

    // ------------------------------------------------------------ tests

    pub(super) fn test_decl(&self, p: P<'_>) -> R<TestDecl> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name_pair = next(&mut inner)?;
        let name_span = self.span(&name_pair);
        let name = self.plain_string(name_pair)?;
        let statements = inner
            .map(|s| self.test_statement(s))
            .collect::<R<Vec<_>>>()?;
        Ok(TestDecl {
            doc,
            name,
            name_span,
            statements,
            span,
        })
    }

    pub(super) fn test_statement(&self, p: P<'_>) -> R<TestStatement> {
        let span = self.span(&p);
        let s = first(p);
        let rule = s.as_rule();
        let mut inner = s.into_children();
        let kind = match rule {
            Rule::mock_stmt => {
                let target = self.path(next(&mut inner)?);
                let behaviours = inner
                    .map(|b| self.mock_behaviour(b))
                    .collect::<R<Vec<_>>>()?;
                TestStatementKind::Mock { target, behaviours }
            }
            Rule::test_run_stmt => {
                let target = self.path(next(&mut inner)?);
                TestStatementKind::Run {
                    target,
                    args: self.args(next(&mut inner)?)?,
                }
            }
            Rule::expect_stmt => TestStatementKind::Expect(self.expr(next(&mut inner)?)?),
            Rule::error_stmt => TestStatementKind::Error { declares: None },
            _ => {
                let (name, ty, value) = self.let_parts(inner)?;
                TestStatementKind::Let { name, ty, value }
            }
        };
        Ok(TestStatement { kind, span })
    }

    pub(super) fn mock_behaviour(&self, p: P<'_>) -> R<MockBehaviour> {
        let span = self.span(&p);
        let mut inner = p.into_children();
        let outcome_pair = next(&mut inner)?;
        let outcome = if outcome_pair.as_rule() == Rule::mock_returns {
            MockOutcome::Returns(self.expr(first(outcome_pair))?)
        } else {
            let mut parts = outcome_pair.into_children();
            let kind = self.ident(next(&mut parts)?);
            let message = parts.next().map(|m| self.expr(m)).transpose()?;
            MockOutcome::Fails { kind, message }
        };
        let times = inner.next().map(|t| self.expr(first(t))).transpose()?;
        Ok(MockBehaviour {
            outcome,
            times,
            span,
        })
    }

    // ------------------------------------------------------------ expressions
}
