//! From a parsed module to a layout document. The AST decides the layout (where lines
//! break, what is indented, where a trailing comma goes); the lossless token stream
//! supplies the text. Every token is taken from the source in order through a cursor,
//! so literals keep their written form, parentheses are kept where they were, and every
//! comment is met on the way and placed where it was: at the end of its line (a
//! trailing comment) or on a line of its own.

mod expression;
mod integration;
mod workflow;

use flow_grammar::ast::*;
use flow_grammar::span::Span;
use flow_grammar::tokens::{Token, TokenKind};

use super::doc::{Doc, LineKind};

/// The printer met a token the AST did not lead it to expect: a bug in the printer, never
/// a property of the input (which parsed). The formatter then leaves the file untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub expected: String,
    pub found: String,
    pub offset: usize,
}

type R<T> = Result<T, Mismatch>;

const HARD: Doc = Doc::Line(LineKind::Hard);
const SOFT: Doc = Doc::Line(LineKind::Soft);
const SPACE: Doc = Doc::Line(LineKind::Space);

fn sp() -> Doc {
    Doc::text(" ")
}

pub(crate) struct Printer<'s> {
    source: &'s str,
    tokens: Vec<Token>,
    /// For each opening bracket, the index of its closing bracket.
    matching: Vec<Option<usize>>,
    /// The next token not yet consumed.
    next: usize,
    /// The kind of the last significant token consumed.
    previous: Option<TokenKind>,
}

impl<'s> Printer<'s> {
    pub(crate) fn new(source: &'s str, tokens: Vec<Token>) -> Printer<'s> {
        let tokens = split_compound(source, tokens);
        let matching = match_brackets(&tokens);
        Printer {
            source,
            tokens,
            matching,
            next: 0,
            previous: None,
        }
    }

    // ------------------------------------------------------------ the token cursor

    fn text_of(&self, t: &Token) -> &'s str {
        self.source.get(t.start..t.end).unwrap_or("")
    }

    /// Index of the next significant token at or after `from`.
    fn significant_from(&self, from: usize) -> Option<usize> {
        (from..self.tokens.len()).find(|&i| self.tokens.get(i).is_some_and(|t| !t.kind.is_trivia()))
    }

    fn peek(&self) -> Option<Token> {
        self.significant_from(self.next)
            .and_then(|i| self.tokens.get(i).copied())
    }

    fn peek_is(&self, text: &str) -> bool {
        self.peek().is_some_and(|t| self.text_of(&t) == text)
    }

    fn mismatch(&self, expected: impl Into<String>) -> Mismatch {
        let (found, offset) = match self.peek() {
            Some(t) => (self.text_of(&t).to_owned(), t.start),
            None => ("end of file".to_owned(), self.source.len()),
        };
        Mismatch {
            expected: expected.into(),
            found,
            offset,
        }
    }

    /// The comments between the cursor and the next significant token, each on a line of
    /// its own or inline as it was, with at most one blank line kept before each and
    /// before the token. No blank line is kept right after an opening bracket or right
    /// before a closing one.
    fn leading(&mut self) -> Vec<Doc> {
        let mut docs = Vec::new();
        let mut newlines = 0usize;
        let after_open = matches!(
            self.previous,
            Some(TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket) | None
        );
        let mut first = true;
        while let Some(&t) = self.tokens.get(self.next) {
            match t.kind {
                TokenKind::Whitespace => newlines += self.text_of(&t).matches('\n').count(),
                TokenKind::LineComment | TokenKind::DocComment | TokenKind::BlockComment => {
                    let text = self.text_of(&t).trim_end().to_owned();
                    if newlines >= 2 && !(first && after_open) {
                        docs.push(Doc::BlankLine);
                    }
                    let inline_block =
                        t.kind == TokenKind::BlockComment && !self.line_ends_after(self.next + 1);
                    if inline_block {
                        docs.push(sp());
                        docs.push(Doc::Text(text));
                        docs.push(sp());
                    } else if newlines == 0 && self.previous.is_some() {
                        docs.push(Doc::LineSuffix(text));
                    } else {
                        docs.push(Doc::OwnLine(text));
                    }
                    newlines = 0;
                    first = false;
                }
                _ => break,
            }
            self.next += 1;
        }
        let before_close = self.peek().is_none_or(|t| {
            matches!(
                t.kind,
                TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket
            )
        });
        if newlines >= 2 && !before_close && !(first && after_open) {
            docs.push(Doc::BlankLine);
        }
        docs
    }

    /// Whether only spaces stand between token `i` and the end of its line (or file).
    fn line_ends_after(&self, i: usize) -> bool {
        match self.tokens.get(i) {
            None => true,
            Some(t) if t.kind == TokenKind::Whitespace => {
                self.text_of(t).contains('\n') || self.tokens.get(i + 1).is_none()
            }
            Some(t) => matches!(t.kind, TokenKind::LineComment | TokenKind::DocComment),
        }
    }

    /// Comments on the same line right after the token just consumed.
    fn trailing(&mut self) -> Vec<Doc> {
        let mut docs = Vec::new();
        let mut i = self.next;
        while let Some(&t) = self.tokens.get(i) {
            match t.kind {
                TokenKind::Whitespace if !self.text_of(&t).contains('\n') => i += 1,
                TokenKind::LineComment | TokenKind::DocComment => {
                    docs.push(Doc::LineSuffix(self.text_of(&t).trim_end().to_owned()));
                    self.next = i + 1;
                    break;
                }
                TokenKind::BlockComment => {
                    let text = self.text_of(&t).to_owned();
                    if self.line_ends_after(i + 1) {
                        docs.push(Doc::LineSuffix(text));
                    } else {
                        docs.push(sp());
                        docs.push(Doc::Text(text));
                        docs.push(sp());
                    }
                    i += 1;
                    self.next = i;
                }
                _ => break,
            }
        }
        docs
    }

    /// Consumes the next significant token, which must read `expected`.
    fn token(&mut self, expected: &str) -> R<Doc> {
        let (mut docs, trailing) = self.token_split(expected)?;
        docs.extend(trailing);
        Ok(Doc::Seq(docs))
    }

    /// Like [`Printer::token`], with the comments that trail the token kept apart, so a
    /// closing bracket's trailing comment can sit outside the group it closes.
    fn token_split(&mut self, expected: &str) -> R<(Vec<Doc>, Vec<Doc>)> {
        let mut docs = self.leading();
        // An operator such as `?.` may stand for two tokens of the grammar (`[?` then
        // `.root`); the lexer's compound tokens are split, and joined here when needed.
        let mut end = self.next;
        let mut text = String::new();
        let mut last = None;
        while text.len() < expected.len()
            && let Some(t) = self.tokens.get(end).copied()
            && !t.kind.is_trivia()
            && last.is_none_or(|l: Token| l.end == t.start)
        {
            text.push_str(self.text_of(&t));
            last = Some(t);
            end += 1;
        }
        match last {
            Some(t) if text == expected => {
                self.next = end;
                self.previous = Some(t.kind);
                docs.push(Doc::text(expected));
                Ok((docs, self.trailing()))
            }
            _ => Err(self.mismatch(format!("`{expected}`"))),
        }
    }

    /// Consumes the next token when it reads `text`, printing only its comments.
    fn skip(&mut self, text: &str) -> Doc {
        if !self.peek_is(text) {
            return Doc::Seq(Vec::new());
        }
        let mut docs = self.leading();
        if let Some(t) = self.tokens.get(self.next).copied() {
            self.next += 1;
            self.previous = Some(t.kind);
        }
        docs.extend(self.trailing());
        Doc::Seq(docs)
    }

    /// Consumes the tokens a span covers and prints them as written (whitespace between
    /// them dropped, as in `- 5`, unless a comment sits inside).
    fn span_text(&mut self, span: Span) -> R<Doc> {
        let mut docs = self.leading();
        let start = span.start as usize;
        let end = span.end as usize;
        match self.tokens.get(self.next) {
            Some(t) if t.start == start => {}
            _ => return Err(self.mismatch(format!("the text at byte {start}"))),
        }
        let mut parts = String::new();
        let mut has_comment = false;
        while let Some(&t) = self.tokens.get(self.next) {
            if t.start >= end {
                break;
            }
            match t.kind {
                TokenKind::Whitespace => {}
                k if k.is_trivia() => has_comment = true,
                k => {
                    parts.push_str(self.text_of(&t));
                    self.previous = Some(k);
                }
            }
            self.next += 1;
        }
        let text = if has_comment {
            self.source.get(start..end).unwrap_or("").to_owned()
        } else {
            parts
        };
        docs.push(Doc::Text(text));
        docs.extend(self.trailing());
        Ok(Doc::Seq(docs))
    }

    fn ident(&mut self, ident: &Ident) -> R<Doc> {
        self.span_text(ident.span)
    }

    /// How many unconsumed `(` before `span` wrap all of it.
    fn parens_around(&self, span: Span) -> usize {
        let mut count = 0;
        let mut i = self.next;
        while let Some(j) = self.significant_from(i) {
            let Some(t) = self.tokens.get(j) else { break };
            if t.start >= span.start as usize || t.kind != TokenKind::LParen {
                break;
            }
            match self
                .matching
                .get(j)
                .copied()
                .flatten()
                .and_then(|k| self.tokens.get(k))
            {
                Some(close) if close.start >= span.end as usize => count += 1,
                _ => break,
            }
            i = j + 1;
        }
        count
    }

    fn parenthesized(&mut self, span: Span, inner: impl FnOnce(&mut Self) -> R<Doc>) -> R<Doc> {
        let parens = self.parens_around(span);
        if parens == 0 {
            return inner(self);
        }
        let mut docs = Vec::new();
        for _ in 0..parens {
            docs.push(self.token("(")?);
        }
        docs.push(inner(self)?);
        for _ in 0..parens {
            docs.push(self.token(")")?);
        }
        Ok(Doc::Seq(docs))
    }

    /// Prints what remains after the last item: comments at the end of the file.
    fn rest(&mut self) -> R<Vec<Doc>> {
        let docs = self.leading();
        match self.peek() {
            None => Ok(docs),
            Some(_) => Err(self.mismatch("the end of the file")),
        }
    }

    // ------------------------------------------------------------ lists and blocks

    /// `open item, item close`: on one line when it fits, else one item per line with a
    /// trailing comma. `spaced` puts spaces inside the brackets on one line (`{ a: 1 }`).
    fn delimited<T>(
        &mut self,
        open: &str,
        close: &str,
        spaced: bool,
        items: &[T],
        mut item: impl FnMut(&mut Self, &T) -> R<Doc>,
    ) -> R<Doc> {
        let open_doc = self.token(open)?;
        let mut inner = Vec::new();
        for (i, it) in items.iter().enumerate() {
            inner.push(item(self, it)?);
            if i + 1 < items.len() {
                // Record type fields may be separated by line breaks alone; the canonical
                // layout writes the comma.
                if self.peek_is(",") {
                    inner.push(self.token(",")?);
                } else {
                    inner.push(Doc::text(","));
                }
                inner.push(SPACE);
            } else {
                inner.push(Doc::IfBreak {
                    broken: vec![Doc::text(",")],
                    flat: Vec::new(),
                });
                inner.push(self.skip(","));
            }
        }
        inner.extend(self.leading());
        let (close_docs, after_close) = self.token_split(close)?;
        let close_doc = Doc::Seq(close_docs);
        let mut docs = if inner.iter().all(Doc::is_empty) {
            vec![open_doc, close_doc]
        } else {
            let line = if spaced && !items.is_empty() {
                SPACE
            } else {
                SOFT
            };
            let mut body = vec![line.clone()];
            body.extend(inner);
            vec![Doc::group(vec![
                open_doc,
                Doc::Indent(body),
                line,
                close_doc,
            ])]
        };
        docs.extend(after_close);
        Ok(Doc::Seq(docs))
    }

    /// `{` one entry per line `}`; `{}` when empty.
    fn block_of<T>(
        &mut self,
        items: &[T],
        mut item: impl FnMut(&mut Self, &T) -> R<Doc>,
    ) -> R<Doc> {
        let open = self.token("{")?;
        let mut inner = Vec::new();
        for it in items {
            inner.push(HARD);
            inner.push(item(self, it)?);
        }
        let tail = self.leading();
        if !tail.is_empty() {
            inner.push(HARD);
            inner.extend(tail);
        }
        let close = self.token("}")?;
        if inner.is_empty() {
            return Ok(Doc::Seq(vec![open, close]));
        }
        Ok(Doc::Seq(vec![open, Doc::Indent(inner), HARD, close]))
    }

    fn skip_separators(&mut self, separators: &[&str]) -> Doc {
        let mut docs = Vec::new();
        while let Some(s) = separators.iter().find(|s| self.peek_is(s)) {
            docs.push(self.skip(s));
        }
        Doc::Seq(docs)
    }

    // ------------------------------------------------------------ items

    pub(crate) fn module(&mut self, module: &Module) -> R<Doc> {
        let mut docs = Vec::new();
        for (i, item) in module.items.iter().enumerate() {
            if i > 0 {
                docs.push(HARD);
            }
            docs.push(self.item(item)?);
            docs.push(self.skip_separators(&[";"]));
        }
        let rest = self.rest()?;
        if !rest.is_empty() {
            if !docs.is_empty() {
                docs.push(HARD);
            }
            docs.extend(rest);
        }
        Ok(Doc::Seq(docs))
    }

    fn item(&mut self, item: &Item) -> R<Doc> {
        match item {
            Item::Import(i) => self.import(i),
            Item::Type(t) => self.type_decl(t),
            Item::Const(c) => self.const_decl(c),
            Item::Integration(i) => self.integration(i),
            Item::Workflow(w) => self.workflow(w),
            Item::Test(t) => self.test_decl(t),
        }
    }

    fn import(&mut self, import: &Import) -> R<Doc> {
        let mut docs = vec![self.token("import")?, sp()];
        docs.push(match &import.target {
            ImportTarget::Module(name) => self.ident(name)?,
            ImportTarget::File { span, .. } => self.span_text(*span)?,
        });
        if let Some(alias) = &import.alias {
            docs.extend([sp(), self.token("as")?, sp(), self.ident(alias)?]);
        }
        Ok(Doc::Seq(docs))
    }

    fn type_decl(&mut self, decl: &TypeDecl) -> R<Doc> {
        let docs = vec![
            self.token("type")?,
            sp(),
            self.ident(&decl.name)?,
            sp(),
            self.token("=")?,
            sp(),
            self.type_expr(&decl.ty)?,
            self.skip_separators(&[";"]),
        ];
        Ok(Doc::Seq(docs))
    }

    fn const_decl(&mut self, decl: &ConstDecl) -> R<Doc> {
        let mut docs = vec![self.token("const")?, sp(), self.ident(&decl.name)?];
        if let Some(ty) = &decl.ty {
            docs.extend([self.token(":")?, sp(), self.type_expr(ty)?]);
        }
        docs.extend([sp(), self.token("=")?, sp(), self.expr(&decl.value)?]);
        Ok(Doc::Seq(docs))
    }

    fn params(&mut self, params: &[Param]) -> R<Doc> {
        self.delimited("(", ")", false, params, |p, param| {
            let mut docs = vec![
                p.ident(&param.name)?,
                p.token(":")?,
                sp(),
                p.type_expr(&param.ty)?,
            ];
            if let Some(default) = &param.default {
                docs.extend([sp(), p.token("=")?, sp(), p.expr(default)?]);
            }
            Ok(Doc::Seq(docs))
        })
    }

    /// `-> T`; when the header is too long, the parameters break before `T` does.
    fn result_type(&mut self, ty: &TypeExpr) -> R<Doc> {
        Ok(Doc::Seq(vec![
            sp(),
            self.token("->")?,
            sp(),
            Doc::FlatInRest(vec![self.type_expr(ty)?]),
        ]))
    }

    fn path(&mut self, path: &Path) -> R<Doc> {
        let mut docs = Vec::new();
        for (i, segment) in path.segments.iter().enumerate() {
            if i > 0 {
                docs.push(self.token(".")?);
            }
            docs.push(self.ident(segment)?);
        }
        Ok(Doc::Seq(docs))
    }

    // ------------------------------------------------------------ types

    fn type_expr(&mut self, ty: &TypeExpr) -> R<Doc> {
        self.parenthesized(ty.span, |p| match &ty.kind {
            TypeExprKind::Named(path) => p.path(path),
            TypeExprKind::List(elem) => Ok(Doc::Seq(vec![
                p.token("list")?,
                p.token("<")?,
                p.type_expr(elem)?,
                p.token(">")?,
            ])),
            TypeExprKind::Map(key, value) => Ok(Doc::Seq(vec![
                p.token("map")?,
                p.token("<")?,
                p.type_expr(key)?,
                p.token(",")?,
                sp(),
                p.type_expr(value)?,
                p.token(">")?,
            ])),
            TypeExprKind::Record(fields) => p.delimited("{", "}", true, fields, |p, field| {
                Ok(Doc::Seq(vec![
                    p.ident(&field.name)?,
                    p.token(":")?,
                    sp(),
                    p.type_expr(&field.ty)?,
                ]))
            }),
            TypeExprKind::Optional(inner) => Ok(Doc::Seq(vec![p.type_expr(inner)?, p.token("?")?])),
        })
    }

    // ------------------------------------------------------------ workflows
}

/// Removes the trailing comments that end `doc` and returns them.
fn take_trailing_comments(doc: &mut Doc) -> Vec<Doc> {
    let Doc::Seq(docs) = doc else {
        return Vec::new();
    };
    let mut taken = Vec::new();
    while matches!(docs.last(), Some(Doc::LineSuffix(_))) {
        taken.extend(docs.pop());
    }
    if taken.is_empty() {
        return docs
            .last_mut()
            .map(take_trailing_comments)
            .unwrap_or_default();
    }
    taken.reverse();
    taken
}

/// Splits the lexer's compound operators that the grammar can read as two tokens
/// (`[?.5]` is `[`, `?`, `.5`; `list<int>=` ends with `>` then `=`) into one-character
/// tokens; [`Printer::token_split`] joins them again where one operator is meant.
fn split_compound(source: &str, tokens: Vec<Token>) -> Vec<Token> {
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        let kinds = match t.kind {
            TokenKind::QuestionDot => Some([TokenKind::Question, TokenKind::Dot]),
            TokenKind::DotQuestion => Some([TokenKind::Dot, TokenKind::Question]),
            TokenKind::QuestionQuestion => Some([TokenKind::Question, TokenKind::Question]),
            TokenKind::Ge => Some([TokenKind::Gt, TokenKind::Eq]),
            _ => None,
        };
        match kinds {
            Some([first, second]) if source.get(t.start..t.end).is_some_and(|s| s.len() == 2) => {
                out.push(Token {
                    kind: first,
                    start: t.start,
                    end: t.start + 1,
                });
                out.push(Token {
                    kind: second,
                    start: t.start + 1,
                    end: t.end,
                });
            }
            _ => out.push(t),
        }
    }
    out
}

fn postfix_target(e: &Expr) -> Option<&Expr> {
    match &e.kind {
        ExprKind::Member { target, .. } | ExprKind::Index { target, .. } => Some(target),
        ExprKind::Call {
            target: Some(target),
            ..
        } => Some(target),
        _ => None,
    }
}

/// Pairs each opening bracket with its closing bracket (the parser has already checked
/// that they balance).
fn match_brackets(tokens: &[Token]) -> Vec<Option<usize>> {
    let mut matching = vec![None; tokens.len()];
    let mut open = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t.kind {
            TokenKind::LParen | TokenKind::LBracket | TokenKind::LBrace => open.push(i),
            TokenKind::RParen | TokenKind::RBracket | TokenKind::RBrace => {
                if let Some(o) = open.pop()
                    && let Some(slot) = matching.get_mut(o)
                {
                    *slot = Some(i);
                }
            }
            _ => {}
        }
    }
    matching
}
