//! Recovery inside an item: when a workflow, a test block or an integration does not
//! parse, the statements (an integration's members and clauses) that break it become
//! error nodes and every other one is kept, so the checker and the language server still
//! see the rest of the item while a line is being typed.
//!
//! The item is cut into statements with the lexer: a statement starts at a statement
//! keyword (`step`, `let`, `if`, ... in a workflow; `mock`, `run`, `expect`, `let` in a
//! test) that is the first token on its line and is not a record field (`let:`), and
//! runs to the next such start or to a `}` first on its line. The item is parsed again
//! with the statement that holds the first problem replaced by an error marker (a
//! `\x01` byte, which no source token can hold, then spaces, so every offset stays where
//! it was), until it parses. A problem found at the first token of a statement belongs
//! to the statement before it (the parser was still reading that one); a statement
//! holding an unclosed `{` is replaced up to its matching `}`. Once the item parses,
//! each replaced statement is put back on its own and kept if the item still parses, so
//! a statement replaced only because of where the parser noticed the problem returns.
//! The limits: a problem in the item's header (its name, parameters or result type) or
//! in an integration's declarations still costs the item, and at most
//! [`MAX_REPLACED`] statements of one item are replaced.

use std::ops::Range;

use pest::Parser;
use pest::error::InputLocation;

use crate::ast::{
    ActionClauseKind, Block, EventClauseKind, Ident, IntegrationMember, Item, StatementKind,
    TestStatementKind,
};
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};
use crate::tokens::{self, Token, TokenKind};

use super::build::Builder;
use super::{Chunk, FlowParser, Rule, reparse_with_detail, without_trivia};

/// The byte that marks a replaced statement; the grammar reads it as `error_stmt`.
pub(super) const ERROR_MARKER: u8 = 0x01;

/// Most statements replaced in one item; an item needing more is given up.
const MAX_REPLACED: usize = 16;
/// Most parses of the whole item one recovery runs.
const MAX_ATTEMPTS: usize = 48;

const WORKFLOW_STATEMENTS: &[&str] = &[
    "step", "let", "if", "for", "try", "on", "settings", "wait", "notify", "fail", "return", "log",
];
const TEST_STATEMENTS: &[&str] = &["mock", "run", "expect", "let"];
/// An integration's members and its actions' and events' clauses; a setting
/// (`base_url = ...`) starts with a name and `=`.
const INTEGRATION_PARTS: &[&str] = &[
    "type",
    "action",
    "idempotent",
    "event",
    "GET",
    "POST",
    "PUT",
    "PATCH",
    "DELETE",
    "HEAD",
    "OPTIONS",
    "query",
    "headers",
    "body",
    "paginate",
    "error_when",
    "result",
    "timeout",
    "webhook",
    "verify",
    "when",
];

/// One statement's place in the item, as the lexer cut it.
#[derive(Clone)]
struct Segment {
    /// Byte range in the whole source.
    range: Range<usize>,
    /// Whether it starts with a `}` (closes a block): never replaced.
    closer: bool,
}

/// Parses the item of `chunk` with its broken statements replaced by error nodes.
/// `None` when the chunk is not a workflow or test, or no replacement makes it parse.
pub(super) fn recover(
    file: FileId,
    source: &str,
    tokens: &[Token],
    chunk: &Chunk,
) -> Option<(Vec<Item>, Vec<Diagnostic>)> {
    let chunk_tokens = &tokens[chunk.tokens.clone()];
    let (keywords, statement_rule) = statement_keywords(source, chunk_tokens)?;
    let fine = segments(source, chunk_tokens, keywords, chunk.end);
    recover_with(file, source, chunk, chunk_tokens, &fine, statement_rule).or_else(|| {
        // The brackets of the broken text can mislead the cut (a missing `,` makes a
        // record literal look like a block); the indentation of the body's statements
        // rarely does.
        let coarse = segments_by_indentation(source, chunk_tokens, chunk.end);
        recover_with(file, source, chunk, chunk_tokens, &coarse, statement_rule)
    })
}

/// [`recover`] with the item cut into `segments`.
fn recover_with(
    file: FileId,
    source: &str,
    chunk: &Chunk,
    chunk_tokens: &[Token],
    segments: &[Segment],
    statement_rule: Rule,
) -> Option<(Vec<Item>, Vec<Diagnostic>)> {
    if segments.is_empty() {
        return None;
    }
    // First the statements that do not parse even on their own; then, one at a time,
    // whatever still stops the item (a broken header of an `if`, a `for`, a `try`).
    let mut replaced: Vec<Range<usize>> = segments
        .iter()
        .filter(|s| !s.closer)
        .filter(|s| {
            parses_alone(source, chunk_tokens, s.range.clone(), statement_rule) == Some(false)
        })
        .map(|s| s.range.clone())
        .collect();
    let mut parses = Parses {
        file,
        source,
        chunk,
        budget: MAX_ATTEMPTS,
    };
    let mut last_position = None;
    // The parse of the item with `replaced` as it stands, once one succeeded.
    let mut parsed = loop {
        let blame = match parses.attempt(&replaced)? {
            Attempt::Parsed(result) => break result,
            Attempt::Failed(blame) => blame,
        };
        if replaced.len() >= MAX_REPLACED {
            return None;
        }
        let range = match blame {
            Blame::Token(range) => range,
            Blame::At(position) => {
                // When replacing the statement before did not move the problem, the
                // statement at the problem is the broken one (it lost its keyword).
                let again = last_position == Some(position);
                last_position = Some(position);
                let index = segment_to_replace(segments, position, &replaced, again)?;
                extend_over_block(source, chunk_tokens, segments[index].range.clone())
            }
        };
        if replaced.iter().any(|r| r.start == range.start) {
            return None;
        }
        replaced.push(range);
    };
    // Put back each statement that was replaced only because of where the problem
    // showed, most recent first (the earlier ones are likelier to be the real cause).
    // When the budget runs out, what parsed last stands.
    for i in (0..replaced.len()).rev() {
        let mut without = replaced.clone();
        without.remove(i);
        match parses.attempt(&without) {
            Some(Attempt::Parsed(result)) => {
                replaced = without;
                parsed = result;
            }
            Some(Attempt::Failed(_)) => {}
            None => break,
        }
    }
    // A statement that lost its keyword reads as the tail of the one before it: keep
    // the leading lines of a replaced range when the item parses without them.
    'ranges: for i in 0..replaced.len() {
        for line in line_starts(source, chunk_tokens, replaced[i].clone())
            .into_iter()
            .rev()
        {
            let mut narrower = replaced.clone();
            narrower[i] = line..replaced[i].end;
            match parses.attempt(&narrower) {
                Some(Attempt::Parsed(result)) => {
                    replaced = narrower;
                    parsed = result;
                    break;
                }
                Some(Attempt::Failed(_)) => {}
                None => break 'ranges,
            }
        }
    }
    let (mut items, diagnostics) = parsed;
    for item in &mut items {
        widen_error_nodes(item, source, &replaced);
    }
    Some((items, diagnostics))
}

/// The parses of one item a recovery runs, counted against its budget: it runs on every
/// keystroke that leaves the item broken, so a large item must not cost hundreds.
struct Parses<'a> {
    file: FileId,
    source: &'a str,
    chunk: &'a Chunk,
    budget: usize,
}

impl Parses<'_> {
    /// Parses the item with `replaced` turned into error markers; `None` once the budget
    /// is spent.
    fn attempt(&mut self, replaced: &[Range<usize>]) -> Option<Attempt> {
        self.budget = self.budget.checked_sub(1)?;
        Some(attempt(self.file, self.source, self.chunk, replaced))
    }
}

/// Gives each error node the span of the whole statement it replaced (the parser saw
/// only the marker byte).
/// Also reads the name a replaced `step NAME` or `let NAME` was declaring.
fn widen_error_nodes(item: &mut Item, source: &str, replaced: &[Range<usize>]) {
    let widen = |span: &mut Span, declares: &mut Option<Ident>| {
        if let Some(r) = replaced.iter().find(|r| r.start == span.start as usize) {
            *span = Span::new(span.file, r.start, r.end);
            *declares = declared_name(source, span.file, r.clone());
        }
    };
    match item {
        Item::Workflow(w) => widen_in_block(&mut w.body, &widen),
        Item::Test(t) => {
            for s in &mut t.statements {
                if let TestStatementKind::Error { declares } = &mut s.kind {
                    widen(&mut s.span, declares);
                }
            }
        }
        Item::Integration(i) => {
            let mut none = None;
            for member in &mut i.members {
                match member {
                    IntegrationMember::Error(span) => widen(span, &mut none),
                    IntegrationMember::Action(a) => {
                        for c in &mut a.clauses {
                            if matches!(c.kind, ActionClauseKind::Error) {
                                widen(&mut c.span, &mut none);
                            }
                        }
                    }
                    IntegrationMember::Event(e) => {
                        for c in &mut e.clauses {
                            if matches!(c.kind, EventClauseKind::Error) {
                                widen(&mut c.span, &mut none);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// `NAME` of a statement whose text starts `step NAME` or `let NAME`, or `NAME =` (one
/// that lost its keyword).
fn declared_name(source: &str, file: FileId, range: Range<usize>) -> Option<Ident> {
    let text = source.get(range.clone())?;
    let rest = match text
        .strip_prefix("step")
        .or_else(|| text.strip_prefix("let"))
    {
        Some(rest) => {
            let trimmed = rest.trim_start_matches([' ', '\t']);
            if trimmed.len() == rest.len() {
                return None;
            }
            rest
        }
        None => {
            let name_len = text
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let after = text[name_len..].trim_start_matches([' ', '\t']);
            if !(after.starts_with('=') && !after.starts_with("==")) {
                return None;
            }
            text
        }
    };
    let trimmed = rest.trim_start_matches([' ', '\t']);
    let name_len = trimmed
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    let name = &trimmed[..name_len];
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() || tokens::is_keyword(name) {
        return None;
    }
    let start = range.start + (text.len() - trimmed.len());
    Some(Ident {
        name: name.to_owned(),
        span: Span::new(file, start, start + name_len),
    })
}

type Widen<'a> = &'a dyn Fn(&mut Span, &mut Option<Ident>);

fn widen_in_block(block: &mut Block, widen: Widen<'_>) {
    for s in &mut block.statements {
        match &mut s.kind {
            StatementKind::Error { declares } => widen(&mut s.span, declares),
            StatementKind::If {
                branches,
                otherwise,
            } => {
                for b in branches {
                    widen_in_block(&mut b.body, widen);
                }
                if let Some(o) = otherwise {
                    widen_in_block(o, widen);
                }
            }
            StatementKind::For { body, .. } => widen_in_block(body, widen),
            StatementKind::Try { body, handler, .. } => {
                widen_in_block(body, widen);
                widen_in_block(handler, widen);
            }
            _ => {}
        }
    }
}

enum Attempt {
    Parsed((Vec<Item>, Vec<Diagnostic>)),
    Failed(Blame),
}

/// Where an attempt found its first problem.
enum Blame {
    /// At this offset: the statement holding it (or the one before) is replaced.
    At(usize),
    /// This token alone is in the way (a closing bracket nothing opened).
    Token(Range<usize>),
}

/// Parses the chunk with `replaced` ranges turned into error markers.
fn attempt(file: FileId, source: &str, chunk: &Chunk, replaced: &[Range<usize>]) -> Attempt {
    let mut patched = source.as_bytes()[..chunk.end].to_vec();
    for range in replaced {
        for (i, byte) in patched[range.clone()].iter_mut().enumerate() {
            if i == 0 {
                *byte = ERROR_MARKER;
            } else if *byte != b'\n' {
                *byte = b' ';
            }
        }
    }
    // Only ASCII bytes replaced whole characters' bytes, so the text is still UTF-8.
    let Ok(patched) = String::from_utf8(patched) else {
        return Attempt::Failed(Blame::At(chunk.start));
    };
    let mut chunk_tokens = tokens::lex(&patched[chunk.start..]);
    for token in &mut chunk_tokens {
        token.start += chunk.start;
        token.end += chunk.start;
    }
    if let Some(blame) = lexical_problem(&patched, &chunk_tokens) {
        return Attempt::Failed(blame);
    }
    let text = without_trivia(&patched, &chunk_tokens, chunk.start, chunk.end);
    match FlowParser::parse(Rule::module, &text) {
        Ok(mut pairs) => match pairs.next() {
            Some(module) => {
                // The builder's own diagnostics (expression depth) come back as they are.
                Attempt::Parsed(
                    Builder::new(file, chunk.start, &patched, &chunk_tokens).module_items(module),
                )
            }
            None => Attempt::Failed(Blame::At(chunk.start)),
        },
        Err(error) => {
            // Where pest stopped is where it backtracked to (often the start of the
            // statement it could not finish); the furthest position it reached is where
            // the statement went wrong, which only the detailed run records.
            let stopped = match error.location {
                InputLocation::Pos(p) => p,
                InputLocation::Span((s, _)) => s,
            };
            let furthest = reparse_with_detail(Rule::module, &text)
                .and_then(|e| e.parse_attempts().map(|a| a.max_position))
                .map_or(stopped, |p| p.max(stopped));
            Attempt::Failed(Blame::At(chunk.start + furthest))
        }
    }
}

/// The first problem the lexer's tokens show (what `precheck` would report), markers
/// aside.
fn lexical_problem(source: &str, tokens: &[Token]) -> Option<Blame> {
    let mut open: Vec<&Token> = Vec::new();
    for token in tokens {
        match token.kind {
            TokenKind::Unknown => {
                if token.text(source).bytes().all(|b| b == ERROR_MARKER) {
                    continue;
                }
                return Some(Blame::At(token.start));
            }
            TokenKind::UnterminatedString | TokenKind::UnterminatedBlockComment => {
                return Some(Blame::At(token.start));
            }
            TokenKind::String
                if tokens::control_char_in_interpolation(token.text(source)).is_some() =>
            {
                return Some(Blame::At(token.start));
            }
            TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket => {
                if open.len() >= super::MAX_NESTING {
                    return Some(Blame::At(token.start));
                }
                open.push(token);
            }
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => match open.last() {
                Some(opener) if super::matches_delimiter(opener.kind, token.kind) => {
                    open.pop();
                }
                // The opener is what was left unfinished.
                Some(opener) => return Some(Blame::At(opener.start)),
                None => return Some(Blame::Token(token.start..token.end)),
            },
            _ => {}
        }
    }
    open.last().map(|opener| Blame::At(opener.start))
}

/// The statement keywords of the item the chunk holds, or `None` when it holds no
/// workflow or test.
fn statement_keywords(source: &str, tokens: &[Token]) -> Option<(&'static [&'static str], Rule)> {
    let first = tokens.iter().find(|t| !t.kind.is_trivia())?;
    match first.text(source) {
        "workflow" => Some((WORKFLOW_STATEMENTS, Rule::statement_input)),
        "test" => Some((TEST_STATEMENTS, Rule::test_statement_input)),
        "integration" => Some((INTEGRATION_PARTS, Rule::integration_part_input)),
        _ => None,
    }
}

/// Whether the statement `range` holds parses on its own. `None` when it cannot be
/// judged alone: it opens a block it does not close (a compound statement's header) or
/// closes one it did not open.
fn parses_alone(source: &str, tokens: &[Token], range: Range<usize>, rule: Rule) -> Option<bool> {
    let inside: Vec<Token> = tokens
        .iter()
        .filter(|t| range.contains(&t.start))
        .copied()
        .collect();
    let unclosed = unclosed_openers(source, &inside)?;
    if !unclosed.is_empty() {
        // A statement left open on a block is a compound statement's header; one left
        // open on a call, a list, a record or a map is broken.
        return if unclosed.iter().all(|block| *block) {
            None
        } else {
            Some(false)
        };
    }
    if lexical_problem(source, &inside).is_some() {
        return Some(false);
    }
    let text = without_trivia(source, &inside, range.start, range.end);
    Some(FlowParser::parse(rule, &text).is_ok())
}

/// The brackets `tokens` open and do not close, innermost last, each `true` when it opens
/// a block of statements; `None` when they close one they did not open.
fn unclosed_openers(source: &str, tokens: &[Token]) -> Option<Vec<bool>> {
    let significant: Vec<&Token> = tokens.iter().filter(|t| !t.kind.is_trivia()).collect();
    let mut open = Vec::new();
    for (i, t) in significant.iter().enumerate() {
        match t.kind {
            TokenKind::LBrace => open.push(
                i.checked_sub(1)
                    .and_then(|p| significant.get(p))
                    .is_some_and(|p| opens_block_after(source, p)),
            ),
            TokenKind::LParen | TokenKind::LBracket => open.push(false),
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                open.pop()?;
            }
            _ => {}
        }
    }
    Some(open)
}

/// Cuts the item into statements (see the module's comment).
fn segments(source: &str, tokens: &[Token], keywords: &[&str], end: usize) -> Vec<Segment> {
    let significant: Vec<&Token> = tokens.iter().filter(|t| !t.kind.is_trivia()).collect();
    let mut starts: Vec<(usize, bool)> = Vec::new();
    // The open brackets: whether each opens a block (statements) rather than an
    // expression (a record, a map, a call's arguments), and its line's indentation.
    let mut open: Vec<(TokenKind, bool, usize)> = Vec::new();
    for (i, token) in significant.iter().enumerate() {
        let word = token.text(source);
        let line_start = i > 0 && first_on_line(source, token.start);
        if line_start {
            let indent = indentation(source, token.start);
            // Inside an expression still open on a line indented as deep or deeper, a
            // new line is a continuation; a line indented less starts afresh.
            let in_expression = open
                .last()
                .is_some_and(|&(_, block, opened_at)| !block && indent > opened_at);
            let next = significant.get(i + 1).map(|next| next.kind);
            let setting = keywords == INTEGRATION_PARTS && next == Some(TokenKind::Eq);
            let starts_statement = !in_expression
                && token.kind == TokenKind::Ident
                && (keywords.contains(&word) || setting)
                && next != Some(TokenKind::Colon);
            // A line after a block's `}` that does not go on with it (`else`, `catch`)
            // starts a statement, even one that lost its keyword.
            let after_block = !in_expression
                && significant[i - 1].kind == TokenKind::RBrace
                && starts.last().is_some_and(|&(_, closer)| closer)
                && token.kind != TokenKind::RBrace
                && word != "else"
                && word != "catch";
            // The first line of a block starts a statement, whatever its first word.
            let opens_block = !in_expression
                && significant[i - 1].kind == TokenKind::LBrace
                && open
                    .last()
                    .is_some_and(|&(kind, block, _)| kind == TokenKind::LBrace && block)
                && token.kind != TokenKind::RBrace;
            if starts_statement || after_block || opens_block {
                // Whatever expression was left open belongs to the statement before.
                while open.last().is_some_and(|&(_, block, _)| !block) {
                    open.pop();
                }
                starts.push((token.start, false));
            } else if token.kind == TokenKind::RBrace
                && !open
                    .last()
                    .is_some_and(|&(kind, block, _)| kind == TokenKind::LBrace && !block)
            {
                // A `}` closing a record or map literal goes on with its expression.
                while open.last().is_some_and(|&(_, block, _)| !block) {
                    open.pop();
                }
                starts.push((token.start, true));
            }
        }
        match token.kind {
            TokenKind::LBrace => {
                let block = significant
                    .get(i.wrapping_sub(1))
                    .is_some_and(|p| opens_block_after(source, p));
                open.push((token.kind, block, indentation(source, token.start)));
            }
            TokenKind::LParen | TokenKind::LBracket => {
                open.push((token.kind, false, indentation(source, token.start)));
            }
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                open.pop();
            }
            _ => {}
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(i, &(start, closer))| Segment {
            range: start..starts.get(i + 1).map_or(end, |next| next.0),
            closer,
        })
        .map(|mut s| {
            // A statement ends with its last token, not with the blank lines after it.
            let text = &source[s.range.clone()];
            s.range.end = s.range.start + text.trim_end().len();
            s
        })
        .collect()
}

/// Whether a `{` after `previous` opens a block of statements: after a condition, a
/// loop's list or `parallel` count, `try`, `catch err`, `else`, `settings`, a block's
/// `}` (`} else {` aside, also a result type's), a `>` (a result type's); not after `=`,
/// `(`, `,`, `:`, another operator, `->` or `return` (a record or map literal, or a type).
fn opens_block_after(source: &str, previous: &Token) -> bool {
    match previous.kind {
        TokenKind::Ident => !matches!(
            previous.text(source),
            "return"
                | "log"
                | "fail"
                | "in"
                | "returns"
                | "expect"
                | "headers"
                | "query"
                | "body"
                | "json"
                | "form"
                | "xml"
                | "text"
                | "multipart"
                | "result"
                | "when"
                | "webhook"
                | "timeout"
        ),
        TokenKind::RParen
        | TokenKind::RBracket
        | TokenKind::RBrace
        | TokenKind::Int
        | TokenKind::UInt
        | TokenKind::Double
        | TokenKind::Duration
        | TokenKind::String
        // A result type that ends in `>` (`-> list<T> {`).
        | TokenKind::Gt => true,
        _ => false,
    }
}

/// The indentation (in bytes) of the line holding `offset`.
fn indentation(source: &str, offset: usize) -> usize {
    let line = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    source[line..offset]
        .bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .count()
}

/// Cuts the body into its top-level statements by indentation: a statement starts on
/// each line indented like the body's first statement, except a line starting with a
/// closing bracket (the end of a compound statement's block, `} else {`, a call's `)`)
/// or a `.` (a chained call).
fn segments_by_indentation(source: &str, tokens: &[Token], end: usize) -> Vec<Segment> {
    let significant: Vec<&Token> = tokens.iter().filter(|t| !t.kind.is_trivia()).collect();
    // The body opens at the first `{` that ends its line.
    let Some(body) = significant.iter().position(|t| {
        t.kind == TokenKind::LBrace
            && source[t.end..]
                .split('\n')
                .next()
                .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with("//"))
    }) else {
        return Vec::new();
    };
    let Some(first) = significant.get(body + 1) else {
        return Vec::new();
    };
    let base = indentation(source, first.start);
    let mut starts: Vec<usize> = significant[body + 1..]
        .iter()
        .filter(|t| {
            first_on_line(source, t.start)
                && indentation(source, t.start) == base
                && !matches!(
                    t.kind,
                    TokenKind::RBrace
                        | TokenKind::RParen
                        | TokenKind::RBracket
                        | TokenKind::Dot
                        | TokenKind::QuestionDot
                )
        })
        .map(|t| t.start)
        .collect();
    starts.dedup();
    // The item's own closing `}` (indented less) ends the last statement.
    let last_end = significant
        .iter()
        .rev()
        .find(|t| t.kind == TokenKind::RBrace && indentation(source, t.start) < base)
        .map_or(end, |t| t.start);
    starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let stop = starts.get(i + 1).copied().unwrap_or(last_end).max(start);
            let text = &source[start..stop];
            Segment {
                range: start..start + text.trim_end().len(),
                closer: false,
            }
        })
        .collect()
}

/// The first tokens of the lines of `range` after its first, where no bracket opened in
/// the range is still open.
fn line_starts(source: &str, tokens: &[Token], range: Range<usize>) -> Vec<usize> {
    let mut depth = 0i32;
    let mut starts = Vec::new();
    for token in tokens
        .iter()
        .filter(|t| range.contains(&t.start) && !t.kind.is_trivia())
    {
        if token.start > range.start && depth == 0 && first_on_line(source, token.start) {
            starts.push(token.start);
        }
        match token.kind {
            TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => depth -= 1,
            _ => {}
        }
    }
    starts
}

/// Whether only whitespace stands between the start of the line and `offset`.
fn first_on_line(source: &str, offset: usize) -> bool {
    source[..offset]
        .bytes()
        .rev()
        .take_while(|&b| b != b'\n')
        .all(|b| b == b' ' || b == b'\t' || b == b'\r')
}

/// The statement to replace for a problem at `position`: the statement holding it, or
/// the one before when the problem is at a statement's first token (or at a `}`).
fn segment_to_replace(
    segments: &[Segment],
    position: usize,
    replaced: &[Range<usize>],
    holding_first: bool,
) -> Option<usize> {
    let holding = segments.iter().rposition(|s| s.range.start <= position)?;
    let at_start =
        !holding_first && (segments[holding].range.start == position || segments[holding].closer);
    let mut candidate = if at_start {
        holding.checked_sub(1)?
    } else {
        holding
    };
    loop {
        let segment = &segments[candidate];
        let taken = replaced.iter().any(|r| r.start == segment.range.start);
        if !segment.closer && !taken {
            return Some(candidate);
        }
        candidate = candidate.checked_sub(1)?;
    }
}

/// `range` extended to the `}` that closes a `{` it leaves open, so a compound
/// statement whose header is broken is replaced with its body. A statement that leaves a
/// `(` or `[` open (a call being typed) is replaced alone.
fn extend_over_block(source: &str, tokens: &[Token], range: Range<usize>) -> Range<usize> {
    let inside: Vec<Token> = tokens
        .iter()
        .filter(|t| range.contains(&t.start))
        .copied()
        .collect();
    let open = unclosed_openers(source, &inside).unwrap_or_default();
    if open.is_empty() || open.iter().any(|block| !block) {
        return range;
    }
    let mut depth = open.len();
    for token in tokens.iter().filter(|t| t.start >= range.end) {
        match token.kind {
            TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                depth -= 1;
                if depth == 0 {
                    return range.start..token.end;
                }
            }
            _ => {}
        }
    }
    range
}
