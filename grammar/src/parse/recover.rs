//! Recovery inside an item: when a workflow or a test block does not parse, the
//! statements that break it become error nodes and every other statement is kept, so the
//! checker and the language server still see the rest of the item while a line is being
//! typed.
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

use crate::ast::{Block, Ident, Item, StatementKind, TestStatementKind};
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};
use crate::tokens::{self, Token, TokenKind};

use super::build::Builder;
use super::{Chunk, FlowParser, Rule, without_trivia};

/// The byte that marks a replaced statement; the grammar reads it as `error_stmt`.
pub(super) const ERROR_MARKER: u8 = 0x01;

/// Most statements replaced in one item; an item needing more is given up.
const MAX_REPLACED: usize = 16;

const WORKFLOW_STATEMENTS: &[&str] = &[
    "step", "let", "if", "for", "try", "on", "settings", "wait", "notify", "fail", "return", "log",
];
const TEST_STATEMENTS: &[&str] = &["mock", "run", "expect", "let"];

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
    let keywords = statement_keywords(source, chunk_tokens)?;
    let segments = segments(source, chunk_tokens, keywords, chunk.end);
    if segments.is_empty() {
        return None;
    }
    let mut replaced: Vec<Range<usize>> = Vec::new();
    loop {
        let blame = match attempt(file, source, chunk, &replaced) {
            Attempt::Parsed(_) => break,
            Attempt::Failed(blame) => blame,
        };
        if replaced.len() >= MAX_REPLACED {
            return None;
        }
        let range = match blame {
            Blame::Token(range) => range,
            Blame::At(position) => {
                let index = segment_to_replace(&segments, position, &replaced)?;
                extend_over_block(chunk_tokens, segments[index].range.clone())
            }
        };
        if replaced.iter().any(|r| r.start == range.start) {
            return None;
        }
        replaced.push(range);
    }
    // Put back each statement that was replaced only because of where the problem
    // showed, most recent first (the earlier ones are likelier to be the real cause).
    let mut i = replaced.len();
    while i > 0 {
        i -= 1;
        let mut without = replaced.clone();
        without.remove(i);
        if matches!(attempt(file, source, chunk, &without), Attempt::Parsed(_)) {
            replaced = without;
        }
    }
    match attempt(file, source, chunk, &replaced) {
        Attempt::Parsed((mut items, diagnostics)) => {
            for item in &mut items {
                widen_error_nodes(item, source, &replaced);
            }
            Some((items, diagnostics))
        }
        Attempt::Failed(_) => None,
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
        _ => {}
    }
}

/// `NAME` of a statement whose text starts `step NAME` or `let NAME`.
fn declared_name(source: &str, file: FileId, range: Range<usize>) -> Option<Ident> {
    let text = source.get(range.clone())?;
    let rest = text
        .strip_prefix("step")
        .or_else(|| text.strip_prefix("let"))?;
    let trimmed = rest.trim_start_matches([' ', '\t']);
    if trimmed.len() == rest.len() {
        return None;
    }
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
            let position = match error.location {
                InputLocation::Pos(p) => p,
                InputLocation::Span((s, _)) => s,
            };
            Attempt::Failed(Blame::At(chunk.start + position))
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
fn statement_keywords(source: &str, tokens: &[Token]) -> Option<&'static [&'static str]> {
    let first = tokens.iter().find(|t| !t.kind.is_trivia())?;
    match first.text(source) {
        "workflow" => Some(WORKFLOW_STATEMENTS),
        "test" => Some(TEST_STATEMENTS),
        _ => None,
    }
}

/// Cuts the item into statements (see the module's comment).
fn segments(source: &str, tokens: &[Token], keywords: &[&str], end: usize) -> Vec<Segment> {
    let significant: Vec<&Token> = tokens.iter().filter(|t| !t.kind.is_trivia()).collect();
    let mut starts: Vec<(usize, bool)> = Vec::new();
    for (i, token) in significant.iter().enumerate().skip(1) {
        if !first_on_line(source, token.start) {
            continue;
        }
        let starts_statement = token.kind == TokenKind::Ident
            && keywords.contains(&token.text(source))
            && significant
                .get(i + 1)
                .is_none_or(|next| next.kind != TokenKind::Colon);
        if starts_statement {
            starts.push((token.start, false));
        } else if token.kind == TokenKind::RBrace {
            starts.push((token.start, true));
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
) -> Option<usize> {
    let holding = segments.iter().rposition(|s| s.range.start <= position)?;
    let at_start = segments[holding].range.start == position || segments[holding].closer;
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
fn extend_over_block(tokens: &[Token], range: Range<usize>) -> Range<usize> {
    let mut open: Vec<TokenKind> = Vec::new();
    for token in tokens.iter().filter(|t| range.contains(&t.start)) {
        match token.kind {
            TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket => open.push(token.kind),
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                open.pop();
            }
            _ => {}
        }
    }
    if open.is_empty() || open.iter().any(|k| *k != TokenKind::LBrace) {
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
