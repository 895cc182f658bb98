//! Turning pest's errors into diagnostics in the user's words: what was expected (named
//! as the user knows it, never by grammar rule), what was found, and a did-you-mean
//! when the word found is a typo of a word that would fit.

use std::borrow::Cow;

use pest::error::{Error, ErrorVariant, InputLocation};

use super::Rule;
use crate::codes;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};
use crate::suggest::did_you_mean;
use crate::tokens::{Token, TokenKind};

/// How one grammar rule is described to users, how strongly it is preferred in the
/// message (lower first), and the words that would start it (for suggestions).
struct Expectation {
    text: Cow<'static, str>,
    rank: u8,
    words: &'static [&'static str],
}

const STATEMENT_WORDS: &[&str] = &[
    "on", "settings", "let", "step", "wait", "notify", "if", "for", "try", "fail", "return", "log",
];
const MODIFIER_WORDS: &[&str] = &["after", "retry", "timeout", "cache", "idempotency_key"];
const ITEM_WORDS: &[&str] = &["import", "type", "const", "integration", "workflow", "test"];

fn describe(rule: Rule) -> Option<Expectation> {
    let e = |text: &'static str, rank, words| {
        Some(Expectation {
            text: Cow::Borrowed(text),
            rank,
            words,
        })
    };
    match rule {
        Rule::step_modifier => e(
            "a step modifier such as `retry`, `timeout` or `after`",
            0,
            MODIFIER_WORDS,
        ),
        Rule::retry_option => e(
            "a retry option (`delay`, `backoff`, `max_delay` or `jitter`)",
            0,
            &["delay", "backoff", "max_delay", "jitter"],
        ),
        Rule::item => e(
            "an item (`import`, `type`, `const`, `integration`, `workflow` or `test`)",
            1,
            ITEM_WORDS,
        ),
        Rule::statement => e(
            "a statement such as `step`, `let`, `if` or `return`",
            1,
            STATEMENT_WORDS,
        ),
        Rule::integration_member => e(
            "an integration member (a setting such as `base_url = ...`, `type`, `action` or `event`)",
            1,
            &["type", "action", "idempotent", "event"],
        ),
        Rule::action_clause => e(
            "an action clause (`GET \"/path\"`, `query`, `headers`, `body`, `paginate`, `error_when`, `result` or `timeout`)",
            1,
            &[
                "GET",
                "POST",
                "PUT",
                "PATCH",
                "DELETE",
                "query",
                "headers",
                "body",
                "paginate",
                "error_when",
                "result",
                "timeout",
            ],
        ),
        Rule::event_clause => e(
            "an event clause (`webhook`, `verify`, `when` or `result`)",
            1,
            &["webhook", "verify", "when", "result"],
        ),
        Rule::test_statement => e(
            "a test statement (`mock`, `run`, `expect` or `let`)",
            1,
            &["mock", "run", "expect", "let"],
        ),
        Rule::mock_behaviour | Rule::mock_returns | Rule::mock_fails => {
            e("`returns` or `fails`", 1, &["returns", "fails"])
        }
        Rule::mock_times => e("`times`", 3, &["times"]),
        Rule::setting_entry => e(
            "a setting `name = value`",
            2,
            &[
                "timeout",
                "priority",
                "concurrency",
                "retry",
                "catch_up",
                "catch_up_within",
                "overlap",
            ],
        ),
        Rule::integration_setting => e("a setting `name = value`", 2, &[]),
        Rule::else_if | Rule::else_block => e("`else`", 3, &["else"]),
        Rule::parallel => e("`parallel`", 3, &["parallel"]),
        Rule::wait_until => e("`until`", 3, &["until"]),
        Rule::idempotent => e("`idempotent`", 3, &["idempotent"]),
        Rule::http_method => e(
            "an HTTP method such as `GET` or `POST`",
            1,
            &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        ),
        Rule::body_kind => e(
            "a body kind (`json`, `form`, `xml`, `text` or `multipart`)",
            1,
            &["json", "form", "xml", "text", "multipart"],
        ),
        Rule::block => e("a block `{ ... }`", 2, &[]),
        Rule::param_list => e("a parameter list `(name: type, ...)`", 2, &[]),
        Rule::param => e("a parameter `name: type`", 2, &[]),
        Rule::result_type => e("a result type `-> type`", 3, &[]),
        Rule::call_args => e("arguments `(...)`", 2, &[]),
        Rule::arg | Rule::arg_name => e("an argument", 2, &[]),
        Rule::type_expr
        | Rule::named_type
        | Rule::list_type
        | Rule::map_type
        | Rule::record_type => e("a type", 2, &[]),
        Rule::optional_mark => e("`?`", 4, &[]),
        Rule::field_type | Rule::field_init => e("a field `name: ...`", 2, &[]),
        Rule::field_name | Rule::field_ident => e("a field name", 2, &[]),
        Rule::ident | Rule::qualified_name => e("a name", 2, &[]),
        Rule::raw_string | Rule::bytes_string | Rule::interpolated_string | Rule::plain_string => {
            e("a string", 2, &[])
        }
        Rule::int => e("an integer", 2, &[]),
        Rule::duration => e("a duration such as `30s`", 2, &[]),
        Rule::expr
        | Rule::notify_target
        | Rule::paren
        | Rule::list_literal
        | Rule::record_literal
        | Rule::map_literal
        | Rule::identifier
        | Rule::double
        | Rule::uint
        | Rule::bool_true
        | Rule::bool_false
        | Rule::null
        | Rule::op_not
        | Rule::op_neg
        | Rule::list_element
        | Rule::map_entry => e("an expression", 2, &[]),
        Rule::op_or
        | Rule::op_and
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_in
        | Rule::op_coalesce
        | Rule::op_add
        | Rule::op_sub
        | Rule::op_mul
        | Rule::op_div
        | Rule::op_rem => e("an operator", 5, &[]),
        Rule::member
        | Rule::optional_member
        | Rule::cel_optional_member
        | Rule::index
        | Rule::optional_index => e("`.field`, `[index]` or an operator", 5, &[]),
        Rule::EOI => e("the end of the file", 6, &[]),
        _ => None,
    }
}

/// Converts a pest error for the text starting at `base` into a diagnostic. `detailed`
/// is the same parse re-run with pest's attempt tracking on, when available: it usually
/// knows a later position and the literal tokens (`>`, `=`, `)`) expected there. When it
/// has nothing to say (a lookahead ran ahead), the plain error is used.
pub(crate) fn convert(
    error: &Error<Rule>,
    detailed: Option<&Error<Rule>>,
    file: FileId,
    base: usize,
    source: &str,
    tokens: &[Token],
) -> Diagnostic {
    let position = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let positives = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { message } => {
            let span = token_span(tokens, file, base + position, source.len());
            if message.contains("limit") {
                return Diagnostic::new(
                    codes::NESTING_TOO_DEEP,
                    span,
                    "nesting too deep for the parser",
                )
                .with_help("give parts of the expression names with `let`");
            }
            return Diagnostic::new(codes::SYNTAX, span, message.clone());
        }
    };
    if let Some(attempts) = detailed.and_then(Error::parse_attempts)
        && attempts.max_position >= position
    {
        let mut rules: Vec<Rule> = if attempts.max_position == position {
            positives.clone()
        } else {
            Vec::new()
        };
        for stack in attempts.call_stacks() {
            match stack.deepest.get_rule() {
                Some(r) => rules.push(*r),
                None => rules.extend(stack.parent),
            }
        }
        let literals: Vec<String> = attempts
            .expected_tokens()
            .into_iter()
            .map(|t| t.to_string())
            .filter(|t| is_punctuation(t))
            .map(|t| format!("`{t}`"))
            .collect();
        if let Some(d) = diagnose(
            &rules,
            &literals,
            file,
            base + attempts.max_position,
            source,
            tokens,
        ) {
            return d;
        }
    }
    diagnose(&positives, &[], file, base + position, source, tokens).unwrap_or_else(|| {
        let found = token_at(tokens, base + position);
        let found_text = found.map_or("end of file".to_owned(), |t| {
            format!("`{}`", shorten(t.text(source)))
        });
        Diagnostic::new(
            codes::SYNTAX,
            token_span(tokens, file, base + position, source.len()),
            format!("unexpected {found_text}"),
        )
        .with_label("unexpected here")
    })
}

/// The diagnostic for an error at `position` where `rules` and `literals` were expected;
/// `None` when none of them can be described.
fn diagnose(
    rules: &[Rule],
    literals: &[String],
    file: FileId,
    position: usize,
    source: &str,
    tokens: &[Token],
) -> Option<Diagnostic> {
    let found = token_at(tokens, position);

    // An error inside a string token is an error inside an interpolation.
    if found.is_some_and(|t| t.kind == TokenKind::String && t.start < position) {
        // Pest reads a comment's `/` as division, so the error may sit on its second
        // character.
        let comment_at = |at: usize| {
            let rest = source.get(at..).unwrap_or("");
            rest.starts_with("//") || rest.starts_with("/*")
        };
        let comment = [position, position.saturating_sub(1)]
            .into_iter()
            .find(|&at| comment_at(at));
        if let Some(at) = comment {
            return Some(
                Diagnostic::new(
                    codes::SYNTAX,
                    Span::new(file, at, at + 2),
                    "a comment cannot stand inside the interpolation `${...}`",
                )
                .with_label("comment starts here")
                .with_help("move the comment out of the string"),
            );
        }
        return Some(
            Diagnostic::new(
                codes::SYNTAX,
                Span::new(file, position, position),
                "expected an expression inside the interpolation `${...}`",
            )
            .with_label("here")
            .with_help(
                "write an expression between `${` and `}`, or escape the dollar sign as `\\$`",
            ),
        );
    }

    let found_text = match found {
        Some(t) => format!("`{}`", shorten(t.text(source))),
        None => "end of file".to_owned(),
    };
    let span = token_span(tokens, file, position, source.len());
    let mut expected: Vec<Expectation> = rules
        .iter()
        .filter_map(|r| describe(*r).or_else(|| keyword(*r)))
        .collect();
    expected.sort_by_key(|e| e.rank);
    // Name only the most specific kind of thing that would fit: a step modifier rather
    // than "a statement or `}`"; punctuation only when nothing structural is expected.
    let best_rank = expected.first().map_or(u8::MAX, |e| e.rank);
    let mut texts: Vec<String> = Vec::new();
    for e in expected.iter().filter(|e| {
        e.rank == best_rank || (best_rank == 1 && e.rank == 1) || (best_rank > 1 && e.rank <= 3)
    }) {
        if !texts.iter().any(|t| *t == e.text) {
            texts.push(e.text.to_string());
        }
    }
    if texts.len() > 1 {
        texts.retain(|t| {
            t != "an operator"
                && t != "`.field`, `[index]` or an operator"
                && t != "the end of the file"
        });
    }
    texts.truncate(if best_rank <= 1 { 2 } else { 3 });
    if best_rank > 1 {
        let expects_expression = texts.iter().any(|t| t == "an expression");
        let expects_type = texts.iter().any(|t| t == "a type");
        // Operator characters are always possible after an operand; they only matter
        // when nothing more telling (`=>`, `)`, `:`) is expected.
        let operator_like = |l: &str| matches!(l, "`<`" | "`>`" | "`=`" | "`[`" | "`(`" | "`{`");
        let has_telling = literals.iter().any(|l| !operator_like(l));
        for literal in literals
            .iter()
            .filter(|l| !(has_telling && operator_like(l)))
        {
            let noise = match literal.as_str() {
                "`{`" | "`[`" | "`(`" | "`<`" => {
                    expects_expression
                        || expects_type
                        || texts
                            .iter()
                            .any(|t| t.contains(&literal[1..literal.len() - 1]))
                }
                "`>`" | "`=`" => expects_expression && !expects_type,
                _ => false,
            };
            if !noise && !texts.contains(literal) && texts.len() < 4 {
                texts.insert(0, literal.clone());
            }
        }
    }
    if texts.is_empty() {
        return None;
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let message = format!("expected {}, found {found_text}", join_or(&refs));
    let mut diagnostic = Diagnostic::new(codes::SYNTAX, span, message).with_label(match found {
        Some(_) => "unexpected here",
        None => "the file ends here",
    });
    if let Some(t) = found.filter(|t| t.kind == TokenKind::Ident) {
        let word = t.text(source);
        let candidates = expected.iter().flat_map(|e| e.words.iter().copied());
        if let Some(best) = did_you_mean(word, candidates) {
            diagnostic = diagnostic.with_help(format!("did you mean `{best}`?"));
        }
    }
    Some(diagnostic)
}

/// A keyword rule (`kw_in`) is expected as its word.
fn keyword(rule: Rule) -> Option<Expectation> {
    let name = format!("{rule:?}");
    let word = name.strip_prefix("kw_")?;
    let word = if word == "idem_key" {
        "idempotency_key"
    } else {
        word
    };
    Some(Expectation {
        text: Cow::Owned(format!("`{word}`")),
        rank: 3,
        words: &[],
    })
}

fn is_punctuation(token: &str) -> bool {
    matches!(
        token,
        "{" | "}" | "(" | ")" | "[" | "]" | "," | ":" | "=" | ">" | "<" | "->" | "=>"
    )
}

fn token_span(tokens: &[Token], file: FileId, position: usize, len: usize) -> Span {
    match token_at(tokens, position) {
        Some(t) => Span::new(file, t.start, t.end),
        None => Span::new(file, len, len),
    }
}

/// The first significant token at or after `position`.
fn token_at(tokens: &[Token], position: usize) -> Option<&Token> {
    let i = tokens.partition_point(|t| t.end <= position);
    tokens[i..].iter().find(|t| !t.kind.is_trivia())
}

fn shorten(text: &str) -> String {
    let first_line = text.lines().next().unwrap_or("");
    if first_line.chars().count() > 40 || first_line.len() < text.len() {
        let cut: String = first_line.chars().take(40).collect();
        format!("{cut}…")
    } else {
        first_line.to_owned()
    }
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
