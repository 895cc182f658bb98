//! Parsing: split the source into items with the lossless lexer, check each item's
//! delimiters and characters, parse it with the pest grammar and build the AST.
//!
//! Parsing never stops at the first error: each top-level item is parsed on its own,
//! so a syntax error in one workflow does not hide an error in the next. Parsing never
//! panics and never overflows the stack: bracket depth is limited before pest runs,
//! expression depth while the AST is built, and the work runs on a thread with a large
//! stack so that pathological inputs within the limits are still handled.

mod build;
mod literal;
mod recover;
mod syntax_error;

use pest::Parser;
use pest_derive::Parser;

use std::borrow::Cow;
use std::collections::HashMap;

use crate::ast::{Expr, Item, Module, TypeExpr};
use crate::ast_spans::SpansMut;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};
use crate::tokens::{self, ITEM_KEYWORDS, Token, TokenKind};

use build::Builder;

#[derive(Parser)]
#[grammar = "flow.pest"]
pub(crate) struct FlowParser;

/// Deepest bracket nesting (`(`, `[`, `{`) accepted in one item.
pub const MAX_NESTING: usize = 128;
/// Deepest expression tree accepted (operators chained without brackets count too).
pub const MAX_EXPRESSION_DEPTH: u32 = 512;

/// Runs of unexpected characters reported in full per item; the rest are counted.
const MAX_UNKNOWN_REPORTS: usize = 10;

/// Stack size for the parsing thread: enough for [`MAX_NESTING`] levels of pest recursion
/// with a wide margin.
const PARSER_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Largest source file accepted. Real programs are far smaller; the limit keeps a stray
/// data file from tying up the checker or the language server.
pub const MAX_SOURCE_BYTES: usize = 8 * 1024 * 1024;

/// Parses a whole `.flow` file. Returns every item that parsed, plus diagnostics for
/// the ones that did not.
pub fn parse(file: FileId, source: &str) -> (Module, Vec<Diagnostic>) {
    parse_with(file, source, None)
}

/// Parses a file again after an edit: items whose text the cache remembers are taken
/// from it (moved to where they now sit in this file), only the others are parsed. The
/// result is exactly what [`parse`] returns.
pub fn parse_incremental(
    file: FileId,
    source: &str,
    cache: &mut ParseCache,
) -> (Module, Vec<Diagnostic>) {
    parse_with(file, source, Some(cache))
}

fn parse_with(
    file: FileId,
    source: &str,
    cache: Option<&mut ParseCache>,
) -> (Module, Vec<Diagnostic>) {
    let span = Span::new(file, 0, source.len());
    if source.len() > MAX_SOURCE_BYTES {
        let mib = |n: usize| n as f64 / (1024.0 * 1024.0);
        let d = Diagnostic::new(
            codes::FILE_TOO_LARGE,
            Span::new(file, 0, 0),
            format!("this file is {:.1} MiB; Flow reads source files of up to {:.0} MiB", mib(source.len()), mib(MAX_SOURCE_BYTES)),
        )
        .with_help("split the program into modules and `import` them, or check that this is the file you meant");
        return (
            Module {
                file,
                items: Vec::new(),
                span,
            },
            vec![d],
        );
    }
    on_large_stack(span, || parse_module(file, source, cache)).unwrap_or_else(|d| {
        (
            Module {
                file,
                items: Vec::new(),
                span,
            },
            vec![d],
        )
    })
}

/// Parsed items remembered by their text (see [`parse_incremental`]), for any number of
/// files: an item's text is its key, wherever it appears. Only items that parsed without
/// any diagnostic are kept. A caller that re-parses a set of files (a compilation, an
/// editor session) calls [`ParseCache::end_round`] after each pass over them, which
/// drops what that pass did not use, so the cache holds about one program's worth.
#[derive(Default)]
pub struct ParseCache {
    entries: HashMap<Box<str>, CachedChunk>,
    generation: u64,
}

struct CachedChunk {
    items: Vec<Item>,
    /// Where the text started when it was parsed, to move the spans to its new place.
    start: usize,
    used: u64,
}

impl ParseCache {
    pub fn new() -> ParseCache {
        ParseCache::default()
    }

    /// Number of items' texts remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Ends a pass over the caller's files: forgets every item not used since the
    /// previous call.
    pub fn end_round(&mut self) {
        let generation = self.generation;
        self.entries.retain(|_, entry| entry.used == generation);
        self.generation += 1;
    }
}

/// Parses one expression (for `flow eval`, the conformance harness and the language server).
pub fn parse_expression(file: FileId, source: &str) -> Result<Expr, Vec<Diagnostic>> {
    let span = Span::new(file, 0, source.len());
    on_large_stack(span, || {
        parse_fragment(file, source, Rule::expression_input, |b, p| {
            b.expression_input(p)
        })
    })
    .unwrap_or_else(|d| Err(vec![d]))
}

/// Parses one type (for `flow eval --type`).
pub fn parse_type(file: FileId, source: &str) -> Result<TypeExpr, Vec<Diagnostic>> {
    let span = Span::new(file, 0, source.len());
    on_large_stack(span, || {
        parse_fragment(file, source, Rule::type_input, |b, p| b.type_input(p))
    })
    .unwrap_or_else(|d| Err(vec![d]))
}

fn on_large_stack<T: Send>(span: Span, work: impl FnOnce() -> T + Send) -> Result<T, Diagnostic> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("flow-parser".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, work);
        match handle {
            Ok(handle) => handle.join().map_err(|_| {
                Diagnostic::new(
                    codes::SYNTAX,
                    span,
                    "internal error: the parser stopped unexpectedly",
                )
                .with_note("this is a bug in Flow; please report it with the input that caused it")
            }),
            Err(_) => Err(Diagnostic::new(
                codes::SYNTAX,
                span,
                "could not start the parser: out of resources",
            )),
        }
    })
}

fn parse_fragment<T>(
    file: FileId,
    source: &str,
    rule: Rule,
    build: impl FnOnce(&Builder<'_>, pest::iterators::Pair<'_, Rule>) -> Result<T, Diagnostic>,
) -> Result<T, Vec<Diagnostic>> {
    let tokens = tokens::lex(source);
    let chunk = Chunk {
        start: 0,
        end: source.len(),
        tokens: 0..tokens.len(),
    };
    let problems = precheck(file, source, &tokens, &chunk);
    if !problems.is_empty() {
        return Err(problems);
    }
    let builder = Builder::new(file, 0, source, &tokens);
    let text = without_trivia(source, &tokens, 0, source.len());
    match FlowParser::parse(rule, &text) {
        Ok(mut pairs) => match pairs.next() {
            Some(pair) => build(&builder, pair).map_err(|d| vec![d]),
            None => Err(vec![Diagnostic::new(
                codes::SYNTAX,
                Span::new(file, 0, 0),
                "expected an expression",
            )]),
        },
        Err(error) => {
            let detailed = reparse_with_detail(rule, &text);
            Err(vec![syntax_error::convert(
                &error,
                detailed.as_ref(),
                file,
                0,
                source,
                &tokens,
            )])
        }
    }
}

fn parse_module(
    file: FileId,
    source: &str,
    mut cache: Option<&mut ParseCache>,
) -> (Module, Vec<Diagnostic>) {
    let tokens = tokens::lex(source);
    let chunks = split_items(source, &tokens);

    // Items found in the cache are moved into place; the rest are parsed below.
    let mut results: Vec<Option<ChunkResult>> = Vec::with_capacity(chunks.len());
    let mut misses: Vec<usize> = Vec::new();
    if let Some(cache) = cache.as_deref_mut() {
        let generation = cache.generation;
        for (i, chunk) in chunks.iter().enumerate() {
            match cache.entries.get_mut(&source[chunk.start..chunk.end]) {
                Some(hit) => {
                    hit.used = generation;
                    let mut items = hit.items.clone();
                    let delta = chunk.start as i64 - hit.start as i64;
                    if delta != 0 || items.first().is_some_and(|item| item.span().file != file) {
                        items.relocate(file, delta);
                    }
                    results.push(Some(ChunkResult {
                        items,
                        diagnostics: Vec::new(),
                    }));
                }
                None => {
                    results.push(None);
                    misses.push(i);
                }
            }
        }
    } else {
        results.resize_with(chunks.len(), || None);
        misses.extend(0..chunks.len());
    }

    let to_parse: Vec<&Chunk> = misses.iter().map(|&i| &chunks[i]).collect();
    let bytes: usize = to_parse.iter().map(|c| c.end - c.start).sum();
    let parsed = parse_chunks_maybe_parallel(file, source, &tokens, &to_parse, bytes);
    for (&i, result) in misses.iter().zip(parsed) {
        if let Some(cache) = cache.as_deref_mut()
            && result.diagnostics.is_empty()
        {
            let chunk = &chunks[i];
            let entry = CachedChunk {
                items: result.items.clone(),
                start: chunk.start,
                used: cache.generation,
            };
            cache
                .entries
                .insert(source[chunk.start..chunk.end].into(), entry);
        }
        results[i] = Some(result);
    }

    let mut items = Vec::new();
    let mut diagnostics = Vec::new();
    for mut result in results.into_iter().flatten() {
        items.append(&mut result.items);
        diagnostics.append(&mut result.diagnostics);
    }
    if items.is_empty() && diagnostics.is_empty() && tokens.iter().all(|t| t.kind.is_trivia()) {
        diagnostics.push(
            Diagnostic::new(codes::EMPTY_FILE, Span::new(file, 0, 0), "this file has no items")
                .with_help("a `.flow` file holds `import`, `type`, `const`, `integration`, `workflow` and `test` items"),
        );
    }
    (
        Module {
            file,
            items,
            span: Span::new(file, 0, source.len()),
        },
        diagnostics,
    )
}

/// What parsing one chunk produced.
struct ChunkResult {
    items: Vec<Item>,
    diagnostics: Vec<Diagnostic>,
}

/// Parses chunks, on several threads when there is enough text to be worth it. Items
/// are independent, so each thread takes a contiguous run of chunks of about the same
/// size; results come back in the order of `chunks`.
fn parse_chunks_maybe_parallel(
    file: FileId,
    source: &str,
    tokens: &[Token],
    chunks: &[&Chunk],
    bytes: usize,
) -> Vec<ChunkResult> {
    let workers = worker_count(bytes, chunks.len());
    if workers <= 1 {
        return parse_chunks(file, source, tokens, chunks);
    }
    let ranges = balanced_ranges(chunks, workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|range| {
                let run = &chunks[range.clone()];
                std::thread::Builder::new()
                    .name("flow-parser".into())
                    .stack_size(PARSER_STACK_BYTES)
                    .spawn_scoped(scope, move || parse_chunks(file, source, tokens, run))
            })
            .collect();
        handles
            .into_iter()
            .zip(&ranges)
            .flat_map(|(handle, range)| match handle {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| internal_failure(file, &chunks[range.clone()])),
                Err(_) => parse_chunks(file, source, tokens, &chunks[range.clone()]),
            })
            .collect()
    })
}

/// Below this size a file is parsed by one thread: starting others costs more than it saves.
const PARALLEL_PARSE_BYTES: usize = 64 * 1024;

fn worker_count(bytes: usize, chunks: usize) -> usize {
    if bytes < PARALLEL_PARSE_BYTES || chunks < 4 {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(chunks)
}

/// Splits the chunks into `parts` contiguous ranges of roughly equal byte size.
fn balanced_ranges(chunks: &[&Chunk], parts: usize) -> Vec<std::ops::Range<usize>> {
    let total: usize = chunks.iter().map(|c| c.end - c.start).sum();
    let target = total.div_ceil(parts.max(1));
    let mut ranges = Vec::with_capacity(parts);
    let (mut start, mut size) = (0, 0);
    for (i, chunk) in chunks.iter().enumerate() {
        size += chunk.end - chunk.start;
        if size >= target && ranges.len() + 1 < parts {
            ranges.push(start..i + 1);
            start = i + 1;
            size = 0;
        }
    }
    if start < chunks.len() {
        ranges.push(start..chunks.len());
    }
    ranges
}

/// What a parsing thread that stopped unexpectedly contributes: one internal error, and
/// nothing for the other chunks of its run.
fn internal_failure(file: FileId, chunks: &[&Chunk]) -> Vec<ChunkResult> {
    let start = chunks.first().map_or(0, |c| c.start);
    let d = Diagnostic::new(
        codes::SYNTAX,
        Span::new(file, start, start),
        "internal error: the parser stopped unexpectedly",
    )
    .with_note("this is a bug in Flow; please report it with the input that caused it");
    let mut results: Vec<ChunkResult> = chunks
        .iter()
        .map(|_| ChunkResult {
            items: Vec::new(),
            diagnostics: Vec::new(),
        })
        .collect();
    if let Some(first) = results.first_mut() {
        first.diagnostics.push(d);
    }
    results
}

/// Parses a run of chunks: pre-check each, run pest, build the items.
fn parse_chunks(
    file: FileId,
    source: &str,
    tokens: &[Token],
    chunks: &[&Chunk],
) -> Vec<ChunkResult> {
    chunks
        .iter()
        .map(|chunk| parse_chunk(file, source, tokens, chunk))
        .collect()
}

fn parse_chunk(file: FileId, source: &str, tokens: &[Token], chunk: &Chunk) -> ChunkResult {
    let problems = precheck(file, source, tokens, chunk);
    if !problems.is_empty() {
        return recovered(file, source, tokens, chunk, problems);
    }
    let text = without_trivia(
        source,
        &tokens[chunk.tokens.clone()],
        chunk.start,
        chunk.end,
    );
    let text = text.as_ref();
    match FlowParser::parse(Rule::module, text) {
        Ok(mut pairs) => match pairs.next() {
            Some(module) => {
                let (items, diagnostics) =
                    Builder::new(file, chunk.start, source, tokens).module_items(module);
                ChunkResult { items, diagnostics }
            }
            None => ChunkResult {
                items: Vec::new(),
                diagnostics: Vec::new(),
            },
        },
        Err(error) => {
            let detailed = reparse_with_detail(Rule::module, text);
            let d =
                syntax_error::convert(&error, detailed.as_ref(), file, chunk.start, source, tokens);
            recovered(file, source, tokens, chunk, vec![d])
        }
    }
}

/// What a chunk that does not parse gives: its syntax errors, and the items recovery
/// could keep with the broken statements replaced by error nodes (see `recover.rs`).
fn recovered(
    file: FileId,
    source: &str,
    tokens: &[Token],
    chunk: &Chunk,
    mut diagnostics: Vec<Diagnostic>,
) -> ChunkResult {
    let items = match recover::recover(file, source, tokens, chunk) {
        Some((items, mut more)) => {
            diagnostics.append(&mut more);
            items
        }
        None => Vec::new(),
    };
    ChunkResult { items, diagnostics }
}

/// The text pest parses: `source[start..end]` with its comments and byte-order marks
/// replaced by as many spaces, so every offset stays where it was. The grammar then
/// skips only plain whitespace between tokens, which is a large part of parsing time;
/// the lexer has already found the comments, and doc comments are read from the source.
/// Borrowed unchanged when `tokens` (those of the range) hold neither.
fn without_trivia<'s>(source: &'s str, tokens: &[Token], start: usize, end: usize) -> Cow<'s, str> {
    let blanked = |t: &&Token| match t.kind {
        TokenKind::LineComment | TokenKind::DocComment | TokenKind::BlockComment => true,
        // Whitespace is ASCII except for the byte-order mark.
        TokenKind::Whitespace => !source.as_bytes()[t.start..t.end].is_ascii(),
        _ => false,
    };
    let text = &source[start..end];
    if !tokens.iter().any(|t| blanked(&t)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = start;
    for token in tokens.iter().filter(blanked) {
        let (from, to) = (token.start.max(start), token.end.min(end));
        if from < copied || to < from {
            continue;
        }
        out.push_str(&source[copied..from]);
        out.extend(std::iter::repeat_n(' ', to - from));
        copied = to;
    }
    out.push_str(&source[copied..end]);
    Cow::Owned(out)
}

/// Parses again with pest's attempt tracking switched on, to learn the furthest position
/// reached and the tokens expected there. Tracking slows parsing, so it is switched on
/// only for text already known to be malformed.
fn reparse_with_detail(rule: Rule, text: &str) -> Option<pest::error::Error<Rule>> {
    pest::set_error_detail(true);
    let result = FlowParser::parse(rule, text).err();
    pest::set_error_detail(false);
    result
}

/// A byte range of the source holding one or more top-level items, with its token range.
struct Chunk {
    start: usize,
    end: usize,
    tokens: std::ops::Range<usize>,
}

/// Cuts the source where a new top-level item starts: an item keyword first on its line
/// outside any brackets, or any word first on its line right after an item's closing `}`
/// (so a misspelt `workfow` is reported on its own). An item keyword in the first column
/// also starts a new item inside unbalanced brackets, so one missing `}` does not swallow
/// the rest of the file.
fn split_items(source: &str, tokens: &[Token]) -> Vec<Chunk> {
    const UNNESTED_ITEMS: &[&str] = &["import", "const", "integration", "workflow", "test"];
    let mut chunks = Vec::new();
    let mut chunk_start = 0usize;
    let mut chunk_first_token = 0usize;
    let mut depth = 0usize;
    let mut at_line_start = true;
    let mut last_significant: Option<TokenKind> = None;
    let mut seen_significant = false;
    for (i, token) in tokens.iter().enumerate() {
        match token.kind {
            TokenKind::Whitespace => {
                if token.text(source).contains('\n') {
                    at_line_start = true;
                }
                continue;
            }
            TokenKind::LineComment | TokenKind::DocComment | TokenKind::BlockComment => continue,
            _ => {}
        }
        if token.kind == TokenKind::Ident && at_line_start && seen_significant {
            let word = token.text(source);
            let column_one = token.start == 0 || source.as_bytes()[token.start - 1] == b'\n';
            let starts_item = (depth == 0
                && (ITEM_KEYWORDS.contains(&word) || last_significant == Some(TokenKind::RBrace)))
                || (depth > 0 && column_one && UNNESTED_ITEMS.contains(&word));
            if starts_item {
                let start = item_start_with_docs(source, token.start);
                chunks.push(Chunk {
                    start: chunk_start,
                    end: start,
                    tokens: chunk_first_token..i,
                });
                chunk_start = start;
                chunk_first_token = tokens[..i].partition_point(|t| t.start < start);
                depth = 0;
            }
        }
        match token.kind {
            TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket => depth += 1,
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket => {
                depth = depth.saturating_sub(1)
            }
            _ => {}
        }
        at_line_start = false;
        seen_significant = true;
        last_significant = Some(token.kind);
    }
    chunks.push(Chunk {
        start: chunk_start,
        end: source.len(),
        tokens: chunk_first_token..tokens.len(),
    });
    chunks
}

/// Moves an item's start back over the doc comment lines right above it.
fn item_start_with_docs(source: &str, keyword_start: usize) -> usize {
    let mut start = source[..keyword_start].rfind('\n').map_or(0, |i| i + 1);
    while start > 0 {
        let prev_start = source[..start - 1].rfind('\n').map_or(0, |i| i + 1);
        if source[prev_start..start - 1]
            .trim_start()
            .starts_with("///")
        {
            start = prev_start;
        } else {
            break;
        }
    }
    start
}

/// Problems found from tokens alone: characters that start no token, unterminated strings
/// and comments, unbalanced or too deeply nested brackets. A chunk with any of these is
/// not handed to pest, whose message would only be confusing.
fn precheck(file: FileId, source: &str, tokens: &[Token], chunk: &Chunk) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut open: Vec<&Token> = Vec::new();
    let mut delimiters_ok = true;
    // An opener closed by a delimiter on a differently indented line is the likeliest
    // place for a missing closer (the closer was meant for an outer block).
    let mut suspect: Option<&Token> = None;
    let mut unknown_reported = 0usize;
    let mut unknown_more = 0usize;
    let mut last_unknown = Span::default();
    for token in &tokens[chunk.tokens.clone()] {
        let span = Span::new(file, token.start, token.end);
        match token.kind {
            TokenKind::Unknown if unknown_reported >= MAX_UNKNOWN_REPORTS => {
                unknown_more += 1;
                last_unknown = span;
            }
            TokenKind::Unknown => {
                unknown_reported += 1;
                let text = token.text(source);
                let shown: String = text
                    .chars()
                    .map(describe_char)
                    .collect::<Vec<_>>()
                    .join(", ");
                problems.push(
                    Diagnostic::new(
                        codes::UNEXPECTED_CHARACTER,
                        span,
                        format!("unexpected character {shown}"),
                    )
                    .with_label("Flow has no token starting with this character"),
                );
            }
            TokenKind::String => {
                if let Some(at) = tokens::control_char_in_interpolation(token.text(source)) {
                    let at = token.start + at;
                    let c = source[at..].chars().next().unwrap_or('\0');
                    problems.push(
                        Diagnostic::new(
                            codes::UNEXPECTED_CHARACTER,
                            Span::new(file, at, at + c.len_utf8()),
                            format!(
                                "unexpected character {} inside `${{...}}`",
                                describe_char(c)
                            ),
                        )
                        .with_label("Flow has no token starting with this character")
                        .with_help(
                            "remove it, or put it inside quotes as an escape such as `\\x01`",
                        ),
                    );
                }
            }
            TokenKind::UnterminatedString => {
                let closing = closing_quote(token.text(source));
                problems.push(
                    Diagnostic::new(
                        codes::UNTERMINATED_STRING,
                        Span::new(file, token.start, token.start + 1),
                        "unterminated string",
                    )
                    .with_label("this string is never closed")
                    .with_help(format!("add the closing {closing}")),
                );
            }
            TokenKind::UnterminatedBlockComment => problems.push(
                Diagnostic::new(
                    codes::UNTERMINATED_COMMENT,
                    Span::new(file, token.start, token.start + 2),
                    "unterminated block comment",
                )
                .with_label("this comment is never closed")
                .with_help("add `*/` where the comment ends"),
            ),
            TokenKind::LBrace | TokenKind::LParen | TokenKind::LBracket if delimiters_ok => {
                open.push(token);
                if open.len() > MAX_NESTING {
                    problems.push(
                        Diagnostic::new(
                            codes::NESTING_TOO_DEEP,
                            span,
                            format!("nesting too deep: more than {MAX_NESTING} levels of brackets"),
                        )
                        .with_label("this bracket is one level too deep")
                        .with_help("give parts of the expression names with `let`"),
                    );
                    delimiters_ok = false;
                }
            }
            TokenKind::RBrace | TokenKind::RParen | TokenKind::RBracket if delimiters_ok => {
                let text = token.text(source);
                match open.last() {
                    Some(opener) if matches_delimiter(opener.kind, token.kind) => {
                        if suspect.is_none()
                            && token.kind == TokenKind::RBrace
                            && indentation(source, opener.start) != indentation(source, token.start)
                            && line_start(source, opener.start) != line_start(source, token.start)
                        {
                            suspect = Some(opener);
                        }
                        open.pop();
                    }
                    Some(opener) => {
                        let opener_text = opener.text(source);
                        problems.push(
                            Diagnostic::new(
                                codes::UNMATCHED_DELIMITER,
                                span,
                                format!("mismatched closing delimiter `{text}`"),
                            )
                            .with_label(format!("expected `{}` here", closer_of(opener.kind)))
                            .with_secondary(
                                Span::new(file, opener.start, opener.end),
                                format!("this `{opener_text}` is still open"),
                            ),
                        );
                        delimiters_ok = false;
                    }
                    None => {
                        problems.push(
                            Diagnostic::new(
                                codes::UNMATCHED_DELIMITER,
                                span,
                                format!("unmatched closing delimiter `{text}`"),
                            )
                            .with_label("nothing is open here")
                            .with_help(
                                "remove it, or add the opening delimiter it was meant to close",
                            ),
                        );
                        delimiters_ok = false;
                    }
                }
            }
            _ => {}
        }
    }
    if unknown_more > 0 {
        problems.push(
            Diagnostic::new(
                codes::UNEXPECTED_CHARACTER,
                last_unknown,
                format!("{unknown_more} more runs of unexpected characters"),
            )
            .with_note("only the first ones in each item are shown in full; is this a Flow file?"),
        );
    }
    if delimiters_ok && let Some(opener) = open.last() {
        let text = opener.text(source);
        let mut diagnostic = Diagnostic::new(
            codes::UNCLOSED_DELIMITER,
            Span::new(file, opener.start, opener.end),
            format!("unclosed delimiter `{text}`"),
        )
        .with_label(format!("this `{text}` is never closed"))
        .with_help(format!("add the matching `{}`", closer_of(opener.kind)));
        if let Some(s) = suspect {
            diagnostic = diagnostic.with_secondary(
                Span::new(file, s.start, s.end),
                "judging by the indentation, this `{` may be the one missing its `}`",
            );
        }
        problems.push(diagnostic);
    }
    problems
}

fn line_start(source: &str, offset: usize) -> usize {
    source[..offset].rfind('\n').map_or(0, |i| i + 1)
}

/// The leading whitespace width of the line holding `offset`.
fn indentation(source: &str, offset: usize) -> usize {
    let start = line_start(source, offset);
    source[start..]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .count()
}

fn matches_delimiter(open: TokenKind, close: TokenKind) -> bool {
    matches!(
        (open, close),
        (TokenKind::LBrace, TokenKind::RBrace)
            | (TokenKind::LParen, TokenKind::RParen)
            | (TokenKind::LBracket, TokenKind::RBracket)
    )
}

fn closer_of(open: TokenKind) -> &'static str {
    match open {
        TokenKind::LParen => ")",
        TokenKind::LBracket => "]",
        _ => "}",
    }
}

fn closing_quote(text: &str) -> String {
    let body = text.trim_start_matches(['r', 'R', 'b', 'B']);
    if body.starts_with("\"\"\"") {
        "`\"\"\"`".into()
    } else if body.starts_with("'''") {
        "`'''`".into()
    } else if body.starts_with('\'') {
        "`'`".into()
    } else {
        "`\"`".into()
    }
}

fn describe_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("`{c}`")
    }
}

/// Decodes raw file bytes as UTF-8, or reports where they stop being UTF-8.
pub fn decode_source(file: FileId, bytes: &[u8]) -> Result<String, (String, Diagnostic)> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(error) => {
            let at = error.valid_up_to();
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            let end = (at + error.error_len().unwrap_or(1)).min(bytes.len());
            let bad: Vec<String> = bytes[at..end]
                .iter()
                .map(|b| format!("0x{b:02X}"))
                .collect();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            let diagnostic = Diagnostic::new(
                codes::INVALID_UTF8,
                // The lossy text holds U+FFFD (three bytes) where the bad bytes were.
                Span::new(file, at, at + char::REPLACEMENT_CHARACTER.len_utf8()),
                format!(
                    "this file is not valid UTF-8: byte {} on line {line}",
                    bad.join(" ")
                ),
            )
            .with_label("not UTF-8")
            .with_help("save the file as UTF-8");
            Err((lossy, diagnostic))
        }
    }
}
