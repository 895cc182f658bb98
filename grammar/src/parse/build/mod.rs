//! Building the AST from pest's parse tree: one method per grammar rule, spans made
//! absolute, literals decoded, binary operators folded by precedence, depth limited.

mod expression;
mod integration;
mod workflow;

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
