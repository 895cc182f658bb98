//! Building the AST from pest's parse tree: one method per grammar rule, spans made
//! absolute, literals decoded, binary operators folded by precedence, depth limited.

use std::iter::Peekable;

use pest::iterators::{Pair, Pairs};

use super::literal::{self, Decoded, LiteralError};
use super::{MAX_EXPRESSION_DEPTH, Rule};
use crate::ast::*;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};
use crate::tokens::Token;

type P<'i> = Pair<'i, Rule>;
type R<T> = Result<T, Diagnostic>;

pub(crate) struct Builder<'s> {
    file: FileId,
    /// Offset of the parsed text within `source`.
    base: usize,
    /// The whole file, for doc comments above a node.
    source: &'s str,
    /// The whole file's tokens, to keep trailing comments and whitespace out of spans.
    tokens: &'s [Token],
}

/// An expression and the depth of its tree.
type Built = (Expr, u32);

impl<'s> Builder<'s> {
    pub(crate) fn new(
        file: FileId,
        base: usize,
        source: &'s str,
        tokens: &'s [Token],
    ) -> Builder<'s> {
        Builder {
            file,
            base,
            source,
            tokens,
        }
    }

    /// The span of a pair, without the whitespace and comments pest lets a rule end with.
    fn span(&self, p: &P<'_>) -> Span {
        let s = p.as_span();
        let start = self.base + s.start();
        let mut end = self.base + s.end();
        // Most spans end with a token that is not trivia; they need no search. A trivia
        // token ends with whitespace (the BOM's last byte is 0xBF), with `*/`, or (a line
        // comment) before a newline or at the end of the file.
        let bytes = self.source.as_bytes();
        let may_end_with_trivia = end > start
            && (matches!(
                bytes.get(end - 1),
                Some(b' ' | b'\t' | b'\r' | b'\n' | 0xBF | b'/')
            ) || matches!(bytes.get(end), None | Some(b'\n')));
        if !may_end_with_trivia {
            return Span::new(self.file, start, end);
        }
        let mut i = self.tokens.partition_point(|t| t.end < end);
        while end > start && i < self.tokens.len() {
            let token = self.tokens[i];
            if token.end == end && token.kind.is_trivia() && token.start >= start {
                end = token.start;
                if i == 0 {
                    break;
                }
                i -= 1;
            } else {
                break;
            }
        }
        Span::new(self.file, start, end)
    }

    fn doc(&self, p: &P<'_>) -> Option<String> {
        doc_comment_before(self.source, self.base + p.as_span().start())
    }

    /// A name as written; a backtick-quoted field name (CEL) without its backticks.
    fn ident(&self, p: P<'_>) -> Ident {
        let text = p.as_str();
        let name = text
            .strip_prefix('`')
            .and_then(|t| t.strip_suffix('`'))
            .unwrap_or(text);
        Ident {
            name: name.to_owned(),
            span: self.span(&p),
        }
    }

    fn error(
        &self,
        code: crate::codes::Code,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(code, span, message)
    }

    // ------------------------------------------------------------ items

    /// Builds the items of one parsed chunk; an item whose literals are malformed is
    /// reported and skipped, the others are kept.
    pub(crate) fn module_items(&self, module: P<'_>) -> (Vec<Item>, Vec<Diagnostic>) {
        let mut items = Vec::new();
        let mut diagnostics = Vec::new();
        for p in module.into_children().filter(|p| p.as_rule() == Rule::item) {
            match self.item(p) {
                Ok(item) => items.push(item),
                Err(d) => diagnostics.push(d),
            }
        }
        (items, diagnostics)
    }

    fn item(&self, p: P<'_>) -> R<Item> {
        let inner = first(p);
        Ok(match inner.as_rule() {
            Rule::import_decl => Item::Import(self.import(inner)?),
            Rule::type_decl => Item::Type(self.type_decl(inner)?),
            Rule::const_decl => Item::Const(self.const_decl(inner)?),
            Rule::integration => Item::Integration(self.integration(inner)?),
            Rule::workflow => Item::Workflow(self.workflow(inner)?),
            _ => Item::Test(self.test_decl(inner)?),
        })
    }

    fn import(&self, p: P<'_>) -> R<Import> {
        let span = self.span(&p);
        let mut inner = p.into_children();
        let target = next(&mut inner)?;
        let target = if is_string_rule(target.as_rule()) {
            let target_span = self.span(&target);
            ImportTarget::File {
                path: self.plain_string(target)?,
                span: target_span,
            }
        } else {
            ImportTarget::Module(self.ident(target))
        };
        let alias = inner.next().map(|a| self.ident(a));
        Ok(Import {
            target,
            alias,
            span,
        })
    }

    fn type_decl(&self, p: P<'_>) -> R<TypeDecl> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name = self.ident(next(&mut inner)?);
        let ty = self.type_expr(next(&mut inner)?)?;
        Ok(TypeDecl {
            doc,
            name,
            ty,
            span,
        })
    }

    fn const_decl(&self, p: P<'_>) -> R<ConstDecl> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name = self.ident(next(&mut inner)?);
        let mut ty = None;
        let mut value = None;
        for part in inner {
            match part.as_rule() {
                Rule::type_expr => ty = Some(self.type_expr(part)?),
                _ => value = Some(self.expr(part)?),
            }
        }
        let value =
            value.ok_or_else(|| self.error(codes::SYNTAX, span, "a `const` needs a value"))?;
        Ok(ConstDecl {
            doc,
            name,
            ty,
            value,
            span,
        })
    }

    // ------------------------------------------------------------ types

    pub(crate) fn type_input(&self, p: P<'_>) -> R<TypeExpr> {
        self.type_expr(first(p))
    }

    fn type_expr(&self, p: P<'_>) -> R<TypeExpr> {
        let mut inner = p.into_children();
        let base = next(&mut inner)?;
        let mut ty = match base.as_rule() {
            Rule::type_expr => self.type_expr(base)?,
            _ => {
                let span = self.span(&base);
                let kind = match base.as_rule() {
                    Rule::list_type => TypeExprKind::List(Box::new(self.type_expr(first(base))?)),
                    Rule::map_type => {
                        let mut parts = base.into_children();
                        let key = self.type_expr(next(&mut parts)?)?;
                        let value = self.type_expr(next(&mut parts)?)?;
                        TypeExprKind::Map(Box::new(key), Box::new(value))
                    }
                    Rule::record_type => {
                        let fields = base
                            .into_children()
                            .map(|f| self.field_type(f))
                            .collect::<R<Vec<_>>>()?;
                        TypeExprKind::Record(fields)
                    }
                    _ => TypeExprKind::Named(self.path(base)),
                };
                TypeExpr { kind, span }
            }
        };
        for mark in inner {
            let span = ty.span.to(self.span(&mark));
            ty = TypeExpr {
                kind: TypeExprKind::Optional(Box::new(ty)),
                span,
            };
        }
        Ok(ty)
    }

    fn field_type(&self, p: P<'_>) -> R<FieldType> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name = self.ident(next(&mut inner)?);
        let ty = self.type_expr(next(&mut inner)?)?;
        Ok(FieldType {
            doc,
            name,
            ty,
            span,
        })
    }

    fn path(&self, p: P<'_>) -> Path {
        let span = self.span(&p);
        Path {
            segments: p.into_children().map(|s| self.ident(s)).collect(),
            span,
        }
    }

    fn params(&self, p: P<'_>) -> R<Vec<Param>> {
        p.into_children().map(|param| self.param(param)).collect()
    }

    fn param(&self, p: P<'_>) -> R<Param> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name = self.ident(next(&mut inner)?);
        let ty = self.type_expr(next(&mut inner)?)?;
        let default = inner.next().map(|d| self.expr(d)).transpose()?;
        Ok(Param {
            doc,
            name,
            ty,
            default,
            span,
        })
    }

    // ------------------------------------------------------------ integrations

    fn integration(&self, p: P<'_>) -> R<Integration> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name = self.ident(next(&mut inner)?);
        let mut members = Vec::new();
        for member in inner {
            let m = first(member);
            members.push(match m.as_rule() {
                Rule::type_decl => IntegrationMember::Type(self.type_decl(m)?),
                Rule::action => IntegrationMember::Action(self.action(m)?),
                Rule::event => IntegrationMember::Event(self.event(m)?),
                _ => IntegrationMember::Setting(self.integration_setting(m)?),
            });
        }
        Ok(Integration {
            doc,
            name,
            members,
            span,
        })
    }

    fn integration_setting(&self, p: P<'_>) -> R<IntegrationSetting> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut inner = p.into_children();
        let name = self.ident(next(&mut inner)?);
        let value = next(&mut inner)?;
        let value = match value.as_rule() {
            Rule::rate_limit_value => {
                let mut parts = value.into_children();
                let count = self.expr_from_primary(next(&mut parts)?)?;
                let per = self.expr(next(&mut parts)?)?;
                SettingValue::RateLimit { count, per }
            }
            Rule::endpoint_value => {
                let mut parts = value.into_children();
                let method = self.ident(next(&mut parts)?);
                let path = self.expr(next(&mut parts)?)?;
                SettingValue::Endpoint { method, path }
            }
            _ => SettingValue::Expr(self.expr(value)?),
        };
        Ok(IntegrationSetting {
            doc,
            name,
            value,
            span,
        })
    }

    fn action(&self, p: P<'_>) -> R<Action> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut idempotent = false;
        let mut name = None;
        let mut params = Vec::new();
        let mut result = None;
        let mut clauses = Vec::new();
        for part in p.into_children() {
            match part.as_rule() {
                Rule::idempotent => idempotent = true,
                Rule::ident => name = Some(self.ident(part)),
                Rule::param_list => params = self.params(part)?,
                Rule::result_type => result = Some(self.type_expr(first(part))?),
                _ => clauses.push(self.action_clause(part)?),
            }
        }
        let name = name.ok_or_else(|| self.error(codes::SYNTAX, span, "an action needs a name"))?;
        Ok(Action {
            doc,
            idempotent,
            name,
            params,
            result,
            clauses,
            span,
        })
    }

    fn action_clause(&self, p: P<'_>) -> R<ActionClause> {
        let span = self.span(&p);
        let clause = first(p);
        let rule = clause.as_rule();
        let mut inner = clause.into_children();
        let kind = match rule {
            Rule::request_clause => {
                let method = self.ident(next(&mut inner)?);
                ActionClauseKind::Request {
                    method,
                    path: self.expr(next(&mut inner)?)?,
                }
            }
            Rule::query_clause => ActionClauseKind::Query(self.expr(next(&mut inner)?)?),
            Rule::headers_clause => ActionClauseKind::Headers(self.expr(next(&mut inner)?)?),
            Rule::body_clause => {
                let kind = self.ident(next(&mut inner)?);
                ActionClauseKind::Body {
                    kind,
                    value: self.expr(next(&mut inner)?)?,
                }
            }
            Rule::paginate_clause => {
                let kind = self.ident(next(&mut inner)?);
                let args = inner
                    .next()
                    .map(|a| self.args(a))
                    .transpose()?
                    .unwrap_or_default();
                ActionClauseKind::Paginate { kind, args }
            }
            Rule::error_when_clause => {
                let condition = self.expr(next(&mut inner)?)?;
                ActionClauseKind::ErrorWhen {
                    condition,
                    message: self.expr(next(&mut inner)?)?,
                }
            }
            Rule::result_clause => ActionClauseKind::Result(self.expr(next(&mut inner)?)?),
            _ => ActionClauseKind::Timeout(self.expr(next(&mut inner)?)?),
        };
        Ok(ActionClause { kind, span })
    }

    fn event(&self, p: P<'_>) -> R<Event> {
        let (span, doc) = (self.span(&p), self.doc(&p));
        let mut name = None;
        let mut params = Vec::new();
        let mut result = None;
        let mut clauses = Vec::new();
        for part in p.into_children() {
            match part.as_rule() {
                Rule::ident => name = Some(self.ident(part)),
                Rule::param_list => params = self.params(part)?,
                Rule::result_type => result = Some(self.type_expr(first(part))?),
                _ => clauses.push(self.event_clause(part)?),
            }
        }
        let name = name.ok_or_else(|| self.error(codes::SYNTAX, span, "an event needs a name"))?;
        let result = result
            .ok_or_else(|| self.error(codes::SYNTAX, span, "an event needs a result type"))?;
        Ok(Event {
            doc,
            name,
            params,
            result,
            clauses,
            span,
        })
    }

    fn event_clause(&self, p: P<'_>) -> R<EventClause> {
        let span = self.span(&p);
        let clause = first(p);
        let rule = clause.as_rule();
        let mut inner = clause.into_children();
        let kind = match rule {
            Rule::webhook_clause => EventClauseKind::Webhook(self.expr(next(&mut inner)?)?),
            Rule::verify_clause => {
                let scheme = self.ident(next(&mut inner)?);
                EventClauseKind::Verify {
                    scheme,
                    args: self.args(next(&mut inner)?)?,
                }
            }
            Rule::when_clause => EventClauseKind::When(self.expr(next(&mut inner)?)?),
            _ => EventClauseKind::Result(self.expr(next(&mut inner)?)?),
        };
        Ok(EventClause { kind, span })
    }

    // ------------------------------------------------------------ workflows

    fn workflow(&self, p: P<'_>) -> R<Workflow> {
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

    fn block(&self, p: P<'_>) -> R<Block> {
        let span = self.span(&p);
        let statements = p
            .into_children()
            .map(|s| self.statement(s))
            .collect::<R<Vec<_>>>()?;
        Ok(Block { statements, span })
    }

    fn statement(&self, p: P<'_>) -> R<Statement> {
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

    fn let_parts(&self, inner: Children<'_>) -> R<(Ident, Option<TypeExpr>, Expr)> {
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

    fn step(&self, mut inner: Children<'_>) -> R<Step> {
        let name = self.ident(next(&mut inner)?);
        let call = next(&mut inner)?;
        let call_span = self.span(&call);
        let is_run = call.as_rule() == Rule::run_call;
        let mut parts = call.into_children();
        let target = self.path(next(&mut parts)?);
        let args = self.args(next(&mut parts)?)?;
        let call = if is_run {
            StepCall::Workflow {
                target,
                args,
                span: call_span,
            }
        } else {
            StepCall::Action {
                target,
                args,
                span: call_span,
            }
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

    fn modifier(&self, p: P<'_>) -> R<Modifier> {
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

    fn test_decl(&self, p: P<'_>) -> R<TestDecl> {
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

    fn test_statement(&self, p: P<'_>) -> R<TestStatement> {
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

    fn mock_behaviour(&self, p: P<'_>) -> R<MockBehaviour> {
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

    pub(crate) fn expression_input(&self, p: P<'_>) -> R<Expr> {
        self.expr(first(p))
    }

    fn expr(&self, p: P<'_>) -> R<Expr> {
        self.expr_built(p).map(|(e, _)| e)
    }

    fn check_depth(&self, depth: u32, span: Span) -> R<()> {
        if depth > MAX_EXPRESSION_DEPTH {
            Err(self
                .error(
                    codes::NESTING_TOO_DEEP,
                    span,
                    format!(
                        "expression nested too deeply (more than {MAX_EXPRESSION_DEPTH} levels)"
                    ),
                )
                .with_help("give parts of the expression names with `let`"))
        } else {
            Ok(())
        }
    }

    /// Folds an expression's flat sequence of operands and operators by precedence
    /// (shunting-yard with explicit stacks, so long chains cost no recursion), then
    /// applies a trailing `? then : else`.
    fn expr_built(&self, p: P<'_>) -> R<Built> {
        let mut children = p.into_children().peekable();
        let mut operands: Vec<Built> = Vec::new();
        let mut operators: Vec<BinaryOp> = Vec::new();
        let mut ternary = None;
        loop {
            operands.push(self.operand(&mut children)?);
            match children.peek().map(Pair::as_rule) {
                Some(Rule::ternary) => {
                    ternary = children.next();
                    break;
                }
                Some(rule) if is_infix(rule) => {
                    let op = binary_op(rule);
                    children.next();
                    while let Some(&top) = operators.last() {
                        if precedence(top) < precedence(op) {
                            break;
                        }
                        operators.pop();
                        self.reduce(&mut operands, top)?;
                    }
                    operators.push(op);
                }
                _ => break,
            }
        }
        while let Some(op) = operators.pop() {
            self.reduce(&mut operands, op)?;
        }
        let (condition, dc) = operands.pop().ok_or_else(missing_node)?;
        let Some(ternary) = ternary else {
            return Ok((condition, dc));
        };
        let mut parts = ternary.into_children();
        let (then, dt) = self.expr_built(next(&mut parts)?)?;
        let (otherwise, de) = self.expr_built(next(&mut parts)?)?;
        let depth = dc.max(dt).max(de) + 1;
        let span = condition.span.to(otherwise.span);
        self.check_depth(depth, span)?;
        let kind = ExprKind::Conditional {
            condition: Box::new(condition),
            then: Box::new(then),
            otherwise: Box::new(otherwise),
        };
        Ok((Expr { kind, span }, depth))
    }

    /// Replaces the top two operands by their combination with `op`.
    fn reduce(&self, operands: &mut Vec<Built>, op: BinaryOp) -> R<()> {
        let (rhs, dr) = operands.pop().ok_or_else(missing_node)?;
        let (lhs, dl) = operands.pop().ok_or_else(missing_node)?;
        let depth = dl.max(dr) + 1;
        let span = lhs.span.to(rhs.span);
        self.check_depth(depth, span)?;
        operands.push((
            Expr {
                kind: ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            },
            depth,
        ));
        Ok(())
    }

    /// One operand: prefix operators, a primary, then postfix selections and calls.
    /// Postfix binds tighter than prefix: `-a.b` is `-(a.b)`.
    fn operand<'i>(&self, children: &mut Peekable<Children<'i>>) -> R<Built> {
        let mut prefix: Vec<P<'i>> = Vec::new();
        let primary = loop {
            let part = next(children)?;
            match part.as_rule() {
                Rule::op_not | Rule::op_neg => prefix.push(part),
                _ => break part,
            }
        };
        let has_postfix = children.peek().is_some_and(|c| is_postfix(c.as_rule()));
        // `-` directly before a numeric literal is part of the literal, so that
        // -9223372036854775808 is a valid int.
        let fold = !has_postfix
            && prefix.last().is_some_and(|op| op.as_rule() == Rule::op_neg)
            && matches!(primary.as_rule(), Rule::int | Rule::double | Rule::duration);
        let (mut expr, mut depth) = if fold {
            let minus = prefix.pop().ok_or_else(missing_node)?;
            let span = self.span(&minus).to(self.span(&primary));
            (self.number(primary, true, span)?, 1)
        } else {
            self.primary(primary)?
        };
        while children.peek().is_some_and(|c| is_postfix(c.as_rule())) {
            let post = next(children)?;
            let span = expr.span.to(self.span(&post));
            let rule = post.as_rule();
            let mut parts = post.into_children();
            let (kind, child_depth) = match rule {
                Rule::member | Rule::optional_member | Rule::cel_optional_member => {
                    let access = access_of(rule);
                    let field = self.ident(next(&mut parts)?);
                    match parts.next() {
                        Some(args) => {
                            let (args, d) = self.args_built(args)?;
                            (
                                ExprKind::Call {
                                    target: Some(Box::new(expr)),
                                    function: field,
                                    args,
                                    access,
                                    root: false,
                                },
                                d,
                            )
                        }
                        None => (
                            ExprKind::Member {
                                target: Box::new(expr),
                                field,
                                access,
                            },
                            0,
                        ),
                    }
                }
                _ => {
                    let (index, d) = self.expr_built(next(&mut parts)?)?;
                    (
                        ExprKind::Index {
                            target: Box::new(expr),
                            index: Box::new(index),
                            access: access_of(rule),
                        },
                        d,
                    )
                }
            };
            depth = depth.max(child_depth) + 1;
            self.check_depth(depth, span)?;
            expr = Expr { kind, span };
        }
        for op in prefix.into_iter().rev() {
            depth += 1;
            let span = self.span(&op).to(expr.span);
            self.check_depth(depth, span)?;
            let op = if op.as_rule() == Rule::op_not {
                UnaryOp::Not
            } else {
                UnaryOp::Neg
            };
            expr = Expr {
                kind: ExprKind::Unary {
                    op,
                    operand: Box::new(expr),
                },
                span,
            };
        }
        Ok((expr, depth))
    }

    fn primary(&self, p: P<'_>) -> R<Built> {
        let span = self.span(&p);
        let leaf = |kind| Ok((Expr { kind, span }, 1));
        match p.as_rule() {
            Rule::int | Rule::double | Rule::uint | Rule::duration => {
                Ok((self.number(p, false, span)?, 1))
            }
            Rule::bool_true => leaf(ExprKind::Bool(true)),
            Rule::bool_false => leaf(ExprKind::Bool(false)),
            Rule::null => leaf(ExprKind::Null),
            Rule::raw_string
            | Rule::bytes_string
            | Rule::interpolated_string
            | Rule::plain_string => Ok((self.string(p)?, 1)),
            Rule::paren => self.expr_built(first(p)),
            Rule::list_literal => {
                let mut depth = 0;
                let mut items = Vec::new();
                for element in p.into_children() {
                    let mut parts = element.into_children();
                    let mut part = next(&mut parts)?;
                    let optional = part.as_rule() == Rule::optional_mark;
                    if optional {
                        part = next(&mut parts)?;
                    }
                    let (value, d) = self.expr_built(part)?;
                    depth = depth.max(d);
                    items.push(ListElement { optional, value });
                }
                self.check_depth(depth + 1, span)?;
                Ok((
                    Expr {
                        kind: ExprKind::List(items),
                        span,
                    },
                    depth + 1,
                ))
            }
            Rule::record_literal => {
                let mut depth = 0;
                let mut fields = Vec::new();
                for field in p.into_children() {
                    let field_span = self.span(&field);
                    let mut parts = field.into_children();
                    let name = self.ident(next(&mut parts)?);
                    let (value, d) = self.expr_built(next(&mut parts)?)?;
                    depth = depth.max(d);
                    fields.push(FieldInit {
                        name,
                        value,
                        span: field_span,
                    });
                }
                self.check_depth(depth + 1, span)?;
                Ok((
                    Expr {
                        kind: ExprKind::Record(fields),
                        span,
                    },
                    depth + 1,
                ))
            }
            Rule::map_literal => {
                let mut depth = 0;
                let mut entries = Vec::new();
                for entry in p.into_children() {
                    let entry_span = self.span(&entry);
                    let mut parts = entry.into_children();
                    let mut part = next(&mut parts)?;
                    let optional = part.as_rule() == Rule::optional_mark;
                    if optional {
                        part = next(&mut parts)?;
                    }
                    let (key, dk) = self.expr_built(part)?;
                    let (value, dv) = self.expr_built(next(&mut parts)?)?;
                    depth = depth.max(dk).max(dv);
                    entries.push(MapEntry {
                        optional,
                        key,
                        value,
                        span: entry_span,
                    });
                }
                self.check_depth(depth + 1, span)?;
                Ok((
                    Expr {
                        kind: ExprKind::Map(entries),
                        span,
                    },
                    depth + 1,
                ))
            }
            _ => {
                let mut parts = p.into_children();
                let mut part = next(&mut parts)?;
                let root = part.as_rule() == Rule::leading_dot;
                if root {
                    part = next(&mut parts)?;
                }
                let Some(args) = parts.next() else {
                    return leaf(ExprKind::Ident {
                        name: part.as_str().to_owned(),
                        root,
                    });
                };
                let function = self.ident(part);
                let (args, depth) = self.args_built(args)?;
                self.check_depth(depth + 1, span)?;
                let kind = ExprKind::Call {
                    target: None,
                    function,
                    args,
                    access: Access::Plain,
                    root,
                };
                Ok((Expr { kind, span }, depth + 1))
            }
        }
    }

    /// Builds a numeric literal, applying a leading `-` when `negative`.
    fn number(&self, p: P<'_>, negative: bool, span: Span) -> R<Expr> {
        let text = p.as_str();
        let kind = match p.as_rule() {
            Rule::int => match literal::int(text, negative) {
                Some(v) => ExprKind::Int(v),
                None => {
                    return Err(self
                        .error(codes::INTEGER_OUT_OF_RANGE, span, format!("integer literal `{}{text}` does not fit in an int (64-bit signed)", if negative { "-" } else { "" }))
                        .with_label("out of range")
                        .with_help("use a uint literal such as `18446744073709551615u`, or a double such as `1e19`"));
                }
            },
            Rule::uint => match literal::uint(text) {
                Some(v) if !negative => ExprKind::UInt(v),
                _ => {
                    return Err(self
                        .error(
                            codes::INTEGER_OUT_OF_RANGE,
                            span,
                            format!(
                                "uint literal `{text}` does not fit in a uint (64-bit unsigned)"
                            ),
                        )
                        .with_label("out of range"));
                }
            },
            Rule::double => {
                let v: f64 = text.parse().unwrap_or(f64::NAN);
                ExprKind::Double(if negative { -v } else { v })
            }
            _ => match literal::duration(text) {
                Some(v) => ExprKind::Duration(if negative { -v } else { v }),
                None => {
                    return Err(self
                        .error(codes::INVALID_DURATION, span, format!("duration `{text}` is too long"))
                        .with_label("more than 292 years")
                        .with_help("durations are limited to about 292 years (the int64 range of nanoseconds)"));
                }
            },
        };
        Ok(Expr { kind, span })
    }

    fn expr_from_primary(&self, p: P<'_>) -> R<Expr> {
        let span = self.span(&p);
        self.number(p, false, span)
    }

    fn args(&self, p: P<'_>) -> R<Vec<Arg>> {
        self.args_built(p).map(|(a, _)| a)
    }

    fn args_built(&self, p: P<'_>) -> R<(Vec<Arg>, u32)> {
        let mut depth = 0;
        let mut args = Vec::new();
        for arg in p.into_children() {
            let span = self.span(&arg);
            let mut parts = arg.into_children();
            let mut part = next(&mut parts)?;
            let name = if part.as_rule() == Rule::arg_name {
                let name = self.ident(part);
                part = next(&mut parts)?;
                Some(name)
            } else {
                None
            };
            let (value, d) = self.expr_built(part)?;
            depth = depth.max(d);
            args.push(Arg { name, value, span });
        }
        Ok((args, depth))
    }

    // ------------------------------------------------------------ strings

    fn literal_error(&self, e: LiteralError, literal_start: usize) -> Diagnostic {
        let span = Span::new(self.file, literal_start + e.start, literal_start + e.end);
        let code = if e.message.contains("escape") {
            codes::INVALID_ESCAPE
        } else {
            codes::SYNTAX
        };
        self.error(code, span, e.message).with_label("here")
    }

    /// A string literal that must not interpolate (import paths, test names).
    fn plain_string(&self, p: P<'_>) -> R<String> {
        let span = self.span(&p);
        match self.string(p)?.kind {
            ExprKind::String(s) => Ok(s),
            _ => Err(self
                .error(codes::SYNTAX, span, "expected a plain string here")
                .with_help("interpolation `${...}` is not allowed here")),
        }
    }

    /// Builds a string or bytes literal from one of the string rules.
    fn string(&self, form: P<'_>) -> R<Expr> {
        let span = self.span(&form);
        let start = self.base + form.as_span().start();
        if form.as_rule() != Rule::interpolated_string {
            return match literal::string_literal(form.as_str()) {
                Ok(Decoded::String(s)) => Ok(Expr {
                    kind: ExprKind::String(s),
                    span,
                }),
                Ok(Decoded::Bytes(b)) => Ok(Expr {
                    kind: ExprKind::Bytes(b),
                    span,
                }),
                Err(e) => Err(self.literal_error(e, start)),
            };
        }
        let mut parts: Vec<StringPart> = Vec::new();
        for part in form.into_children() {
            let part_start = self.base + part.as_span().start();
            if part.as_rule() == Rule::interpolation {
                parts.push(StringPart::Expr(self.expr(first(part))?));
            } else {
                let text = literal::string_segment(part.as_str())
                    .map_err(|e| self.literal_error(e, part_start))?;
                match parts.last_mut() {
                    Some(StringPart::Text(previous)) => previous.push_str(&text),
                    _ => parts.push(StringPart::Text(text)),
                }
            }
        }
        let kind = match parts.as_slice() {
            [] => ExprKind::String(String::new()),
            [StringPart::Text(_)] => match parts.pop() {
                Some(StringPart::Text(t)) => ExprKind::String(t),
                _ => ExprKind::String(String::new()),
            },
            _ => ExprKind::Interpolated(parts),
        };
        Ok(Expr { kind, span })
    }
}

/// The children of a pair without the keyword tokens (`kw_*`), which carry no data.
type Children<'i> = std::iter::Filter<Pairs<'i, Rule>, fn(&P<'i>) -> bool>;

trait IntoChildren<'i> {
    fn into_children(self) -> Children<'i>;
}

impl<'i> IntoChildren<'i> for P<'i> {
    fn into_children(self) -> Children<'i> {
        self.into_inner().filter(not_keyword as fn(&P<'i>) -> bool)
    }
}

fn not_keyword(p: &P<'_>) -> bool {
    !matches!(
        p.as_rule(),
        Rule::kw_import
            | Rule::kw_as
            | Rule::kw_type
            | Rule::kw_const
            | Rule::kw_integration
            | Rule::kw_action
            | Rule::kw_event
            | Rule::kw_workflow
            | Rule::kw_test
            | Rule::kw_on
            | Rule::kw_when
            | Rule::kw_settings
            | Rule::kw_let
            | Rule::kw_step
            | Rule::kw_run
            | Rule::kw_wait
            | Rule::kw_until
            | Rule::kw_notify
            | Rule::kw_if
            | Rule::kw_else
            | Rule::kw_for
            | Rule::kw_in
            | Rule::kw_parallel
            | Rule::kw_try
            | Rule::kw_catch
            | Rule::kw_fail
            | Rule::kw_return
            | Rule::kw_log
            | Rule::kw_after
            | Rule::kw_retry
            | Rule::kw_delay
            | Rule::kw_backoff
            | Rule::kw_max_delay
            | Rule::kw_jitter
            | Rule::kw_timeout
            | Rule::kw_cache
            | Rule::kw_idem_key
            | Rule::kw_query
            | Rule::kw_headers
            | Rule::kw_body
            | Rule::kw_paginate
            | Rule::kw_error_when
            | Rule::kw_result
            | Rule::kw_webhook
            | Rule::kw_verify
            | Rule::kw_per
            | Rule::kw_mock
            | Rule::kw_returns
            | Rule::kw_fails
            | Rule::kw_times
            | Rule::kw_then
            | Rule::kw_expect
            | Rule::kw_list
            | Rule::kw_map
    )
}

fn is_string_rule(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::raw_string | Rule::bytes_string | Rule::interpolated_string | Rule::plain_string
    )
}

fn is_postfix(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::member
            | Rule::optional_member
            | Rule::cel_optional_member
            | Rule::index
            | Rule::optional_index
    )
}

fn is_infix(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::op_or
            | Rule::op_and
            | Rule::op_eq
            | Rule::op_ne
            | Rule::op_lt
            | Rule::op_le
            | Rule::op_gt
            | Rule::op_ge
            | Rule::op_in
            | Rule::op_coalesce
            | Rule::op_add
            | Rule::op_sub
            | Rule::op_mul
            | Rule::op_div
            | Rule::op_rem
    )
}

/// Binary operator precedence, higher binds tighter. `??` binds tighter than
/// comparisons and looser than arithmetic, as in Swift and Kotlin: `a ?? 0 > 5` is
/// `(a ?? 0) > 5`.
fn precedence(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 1,
        BinaryOp::And => 2,
        BinaryOp::Eq
        | BinaryOp::Ne
        | BinaryOp::Lt
        | BinaryOp::Le
        | BinaryOp::Gt
        | BinaryOp::Ge
        | BinaryOp::In => 3,
        BinaryOp::Coalesce => 4,
        BinaryOp::Add | BinaryOp::Sub => 5,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 6,
    }
}

fn access_of(rule: Rule) -> Access {
    match rule {
        Rule::optional_member => Access::NullSafe,
        Rule::cel_optional_member | Rule::optional_index => Access::CelOptional,
        _ => Access::Plain,
    }
}

fn binary_op(rule: Rule) -> BinaryOp {
    match rule {
        Rule::op_or => BinaryOp::Or,
        Rule::op_and => BinaryOp::And,
        Rule::op_eq => BinaryOp::Eq,
        Rule::op_ne => BinaryOp::Ne,
        Rule::op_lt => BinaryOp::Lt,
        Rule::op_le => BinaryOp::Le,
        Rule::op_gt => BinaryOp::Gt,
        Rule::op_ge => BinaryOp::Ge,
        Rule::op_in => BinaryOp::In,
        Rule::op_coalesce => BinaryOp::Coalesce,
        Rule::op_add => BinaryOp::Add,
        Rule::op_sub => BinaryOp::Sub,
        Rule::op_mul => BinaryOp::Mul,
        Rule::op_div => BinaryOp::Div,
        _ => BinaryOp::Rem,
    }
}

/// The first child of a pair. The grammar guarantees the children this builder asks for;
/// should that ever be violated, an empty placeholder keeps the build from panicking.
fn first(p: P<'_>) -> P<'_> {
    let fallback = p.clone();
    p.into_children().next().unwrap_or(fallback)
}

fn next<'i>(pairs: &mut impl Iterator<Item = P<'i>>) -> R<P<'i>> {
    pairs.next().ok_or_else(missing_node)
}

/// The grammar guarantees every node the builder asks for; a miss is a bug, reported
/// as an internal error rather than a panic.
fn missing_node() -> Diagnostic {
    Diagnostic::new(
        codes::SYNTAX,
        Span::default(),
        "internal error: the parse tree is missing a node",
    )
    .with_note("this is a bug in Flow; please report it with the input that caused it")
}

/// The `///` lines directly above `offset`, without the markers, joined with newlines.
pub(crate) fn doc_comment_before(source: &str, offset: usize) -> Option<String> {
    let before = source.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    if !before[line_start..].trim().is_empty() {
        return None;
    }
    let mut lines = Vec::new();
    let mut end = line_start;
    while end > 0 {
        let prev = &source[..end - 1];
        let start = prev.rfind('\n').map_or(0, |i| i + 1);
        let line = prev[start..].trim();
        match line.strip_prefix("///") {
            Some(rest) if !rest.starts_with('/') => {
                lines.push(rest.strip_prefix(' ').unwrap_or(rest).trim_end());
                end = start;
            }
            _ => break,
        }
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}
