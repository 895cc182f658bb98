//! The lossless lexer: every byte of a source, comments and whitespace included, becomes
//! a token, so concatenating the token texts gives back the input exactly. It feeds
//! error recovery (item boundaries), syntax highlighting and the formatter; the parser
//! proper is the pest grammar.

use logos::Logos;

/// What a token is. Keywords are `Ident`s; see [`is_keyword`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Whitespace,
    LineComment,
    DocComment,
    BlockComment,
    UnterminatedBlockComment,
    Ident,
    Int,
    UInt,
    Double,
    Duration,
    String,
    UnterminatedString,
    LBrace,
    RBrace,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Semicolon,
    Dot,
    QuestionDot,
    DotQuestion,
    QuestionQuestion,
    Question,
    Arrow,
    FatArrow,
    EqEq,
    NotEq,
    Le,
    Ge,
    Lt,
    Gt,
    Eq,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    AndAnd,
    OrOr,
    /// A character that starts no token (`#`, `@`, a NUL byte, ...).
    Unknown,
}

impl TokenKind {
    /// Whitespace and comments: tokens the parser skips.
    pub fn is_trivia(self) -> bool {
        matches!(
            self,
            TokenKind::Whitespace
                | TokenKind::LineComment
                | TokenKind::DocComment
                | TokenKind::BlockComment
        )
    }
}

/// One token: its kind and byte range in the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'s>(&self, source: &'s str) -> &'s str {
        &source[self.start..self.end]
    }
}

/// Words with a meaning somewhere in the grammar; used for highlighting and suggestions.
pub const KEYWORDS: &[&str] = &[
    "import",
    "as",
    "type",
    "const",
    "integration",
    "action",
    "idempotent",
    "event",
    "workflow",
    "test",
    "on",
    "when",
    "settings",
    "let",
    "step",
    "run",
    "wait",
    "until",
    "notify",
    "if",
    "else",
    "for",
    "in",
    "parallel",
    "try",
    "catch",
    "fail",
    "return",
    "log",
    "after",
    "retry",
    "delay",
    "backoff",
    "max_delay",
    "jitter",
    "timeout",
    "cache",
    "idempotency_key",
    "query",
    "headers",
    "body",
    "paginate",
    "error_when",
    "result",
    "webhook",
    "verify",
    "per",
    "mock",
    "returns",
    "fails",
    "times",
    "then",
    "expect",
    "true",
    "false",
    "null",
];

/// Words that start a top-level item.
pub const ITEM_KEYWORDS: &[&str] = &["import", "type", "const", "integration", "workflow", "test"];

pub fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}

#[derive(Logos, Debug, Clone, Copy, PartialEq)]
enum Raw {
    #[regex(r"[ \t\r\n\u{FEFF}]+")]
    Whitespace,
    #[regex(r"//[^\n]*", allow_greedy = true, callback = |lex| if lex.slice().starts_with("///") && !lex.slice().starts_with("////") { Comment::Doc } else { Comment::Line })]
    LineComment(Comment),
    #[token("/*", block_comment)]
    BlockComment(bool),
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    #[regex(r"`[^`\n]+`")]
    Ident,
    #[regex(r"(?:0[xX][0-9a-fA-F]+|[0-9]+)")]
    Int,
    #[regex(r"(?:0[xX][0-9a-fA-F]+|[0-9]+)[uU]")]
    UInt,
    #[regex(
        r"[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+(?:[eE][+-]?[0-9]+)?"
    )]
    Double,
    #[regex(r"(?:[0-9]+(?:ns|us|ms|s|m|h|d))+")]
    Duration,
    #[regex(r#"(?:[rR][bB]?|[bB][rR]?)?(?:"""|'''|"|')"#, string)]
    String(bool),
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(";")]
    Semicolon,
    #[token(".")]
    Dot,
    #[token("?.")]
    QuestionDot,
    #[token(".?")]
    DotQuestion,
    #[token("??")]
    QuestionQuestion,
    #[token("?")]
    Question,
    #[token("->")]
    Arrow,
    #[token("=>")]
    FatArrow,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("=")]
    Eq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("%")]
    Percent,
    #[token("!")]
    Bang,
    #[token("&&")]
    AndAnd,
    #[token("||")]
    OrOr,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comment {
    Line,
    Doc,
}

/// Consumes a block comment body; `false` when it runs to the end of input.
fn block_comment(lex: &mut logos::Lexer<Raw>) -> bool {
    match lex.remainder().find("*/") {
        Some(i) => {
            lex.bump(i + 2);
            true
        }
        None => {
            lex.bump(lex.remainder().len());
            false
        }
    }
}

/// How a string literal opens: its prefix (`r`, `b`, `rb`, ...) and its quote.
struct Opening<'a> {
    /// Bytes of prefix and quote.
    len: usize,
    quote: &'a str,
    raw: bool,
    /// Only plain double-quoted strings interpolate `${...}`.
    interpolating: bool,
}

/// The opening of the string literal `text` starts with.
fn opening(text: &str) -> Option<Opening<'_>> {
    let prefix_len = text.find(['"', '\''])?;
    let (prefix, rest) = text.split_at(prefix_len);
    let triple = if rest.starts_with('"') {
        "\"\"\""
    } else {
        "'''"
    };
    let quote = if rest.starts_with(triple) {
        triple
    } else {
        &rest[..1]
    };
    let raw = prefix.contains(['r', 'R']);
    let bytes = prefix.contains(['b', 'B']);
    Some(Opening {
        len: prefix_len + quote.len(),
        quote,
        raw,
        interpolating: !raw && !bytes && quote.starts_with('"'),
    })
}

/// Consumes a string literal body after its opening quote; `false` when unterminated.
fn string(lex: &mut logos::Lexer<Raw>) -> bool {
    let Some(open) = opening(lex.slice()) else {
        return false;
    };
    let (len, terminated) = scan_string_body(
        lex.remainder(),
        open.quote,
        open.raw,
        open.interpolating,
        &mut CodeScan::default(),
    );
    lex.bump(len);
    terminated
}

/// What a string scan notes about the code inside its interpolations (`${...}`).
#[derive(Default)]
pub(crate) struct CodeScan {
    /// Offset of the scanned text where interpolation code starts being scanned.
    base: usize,
    /// Offset of the first control character (other than tab, newline and carriage
    /// return) in interpolation code, outside any nested string.
    control: Option<usize>,
}

/// Where, in a string token's text, its interpolation code holds a control character
/// other than tab, newline or carriage return: such a character separates no tokens and
/// is content only inside quotes.
pub fn control_char_in_interpolation(token_text: &str) -> Option<usize> {
    let has_control = token_text
        .bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'));
    if !has_control || !token_text.contains("${") {
        return None;
    }
    let open = opening(token_text).filter(|o| o.interpolating)?;
    let mut scan = CodeScan {
        base: open.len,
        control: None,
    };
    scan_string_body(&token_text[open.len..], open.quote, false, true, &mut scan);
    scan.control
}

/// Scans a string body up to and including its closing `quote`. Returns the bytes
/// consumed and whether the closing quote was found. A single-quoted form stops at a
/// line break (LF or CR, neither of which it may hold) when unterminated, so one bad
/// line does not swallow the file. `scan.base` is the offset of `rest` in the text
/// `scan` reports offsets of.
pub(crate) fn scan_string_body(
    rest: &str,
    quote: &str,
    raw: bool,
    interpolating: bool,
    scan: &mut CodeScan,
) -> (usize, bool) {
    let bytes = rest.as_bytes();
    let single_line = quote.len() == 1;
    let mut i = 0;
    while i < bytes.len() {
        if rest[i..].starts_with(quote) {
            return (i + quote.len(), true);
        }
        match bytes[i] {
            b'\n' | b'\r' if single_line => return (i, false),
            b'\\' if !raw => {
                i += 1;
                // Skip the escaped character whole, even when it is multi-byte.
                if let Some(c) = rest[i..].chars().next() {
                    i += c.len_utf8();
                }
                continue;
            }
            b'$' if interpolating && bytes.get(i + 1) == Some(&b'{') => {
                let base = scan.base;
                scan.base = base + i + 2;
                let scanned = scan_interpolation(&rest[i + 2..], scan);
                scan.base = base;
                match scanned {
                    Some(n) => i += 2 + n,
                    None => return (rest.len(), false),
                }
                continue;
            }
            _ => {}
        }
        i += rest[i..].chars().next().map_or(1, char::len_utf8);
    }
    (rest.len(), false)
}

/// Scans an interpolation body after `${` up to and including the matching `}`.
fn scan_interpolation(rest: &str, scan: &mut CodeScan) -> Option<usize> {
    let bytes = rest.as_bytes();
    let mut depth = 1usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b if b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r') => {
                scan.control.get_or_insert(scan.base + i);
            }
            q @ (b'"' | b'\'') => {
                let triple = if q == b'"' { "\"\"\"" } else { "'''" };
                let quote = if rest[i..].starts_with(triple) {
                    triple
                } else {
                    &rest[i..i + 1]
                };
                let raw = i > 0 && matches!(bytes[i - 1], b'r' | b'R');
                let base = scan.base;
                scan.base = base + i + quote.len();
                let (n, ok) = scan_string_body(
                    &rest[i + quote.len()..],
                    quote,
                    raw,
                    q == b'"' && !raw,
                    scan,
                );
                scan.base = base;
                if !ok {
                    return None;
                }
                i += quote.len() + n;
                continue;
            }
            _ => {}
        }
        i += rest[i..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// Splits `source` into tokens covering every byte.
pub fn lex(source: &str) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(source.len() / 4);
    let mut lexer = Raw::lexer(source);
    while let Some(result) = lexer.next() {
        let span = lexer.span();
        let kind = match result {
            Ok(raw) => kind_of(raw),
            Err(()) => TokenKind::Unknown,
        };
        // Merge runs of unknown characters into one token.
        if kind == TokenKind::Unknown
            && let Some(last) = tokens.last_mut()
            && matches!(last, Token { kind: TokenKind::Unknown, end, .. } if *end == span.start)
        {
            last.end = span.end;
            continue;
        }
        tokens.push(Token {
            kind,
            start: span.start,
            end: span.end,
        });
    }
    tokens
}

fn kind_of(raw: Raw) -> TokenKind {
    match raw {
        Raw::Whitespace => TokenKind::Whitespace,
        Raw::LineComment(Comment::Line) => TokenKind::LineComment,
        Raw::LineComment(Comment::Doc) => TokenKind::DocComment,
        Raw::BlockComment(true) => TokenKind::BlockComment,
        Raw::BlockComment(false) => TokenKind::UnterminatedBlockComment,
        Raw::Ident => TokenKind::Ident,
        Raw::Int => TokenKind::Int,
        Raw::UInt => TokenKind::UInt,
        Raw::Double => TokenKind::Double,
        Raw::Duration => TokenKind::Duration,
        Raw::String(true) => TokenKind::String,
        Raw::String(false) => TokenKind::UnterminatedString,
        Raw::LBrace => TokenKind::LBrace,
        Raw::RBrace => TokenKind::RBrace,
        Raw::LParen => TokenKind::LParen,
        Raw::RParen => TokenKind::RParen,
        Raw::LBracket => TokenKind::LBracket,
        Raw::RBracket => TokenKind::RBracket,
        Raw::Comma => TokenKind::Comma,
        Raw::Colon => TokenKind::Colon,
        Raw::Semicolon => TokenKind::Semicolon,
        Raw::Dot => TokenKind::Dot,
        Raw::QuestionDot => TokenKind::QuestionDot,
        Raw::DotQuestion => TokenKind::DotQuestion,
        Raw::QuestionQuestion => TokenKind::QuestionQuestion,
        Raw::Question => TokenKind::Question,
        Raw::Arrow => TokenKind::Arrow,
        Raw::FatArrow => TokenKind::FatArrow,
        Raw::EqEq => TokenKind::EqEq,
        Raw::NotEq => TokenKind::NotEq,
        Raw::Le => TokenKind::Le,
        Raw::Ge => TokenKind::Ge,
        Raw::Lt => TokenKind::Lt,
        Raw::Gt => TokenKind::Gt,
        Raw::Eq => TokenKind::Eq,
        Raw::Plus => TokenKind::Plus,
        Raw::Minus => TokenKind::Minus,
        Raw::Star => TokenKind::Star,
        Raw::Slash => TokenKind::Slash,
        Raw::Percent => TokenKind::Percent,
        Raw::Bang => TokenKind::Bang,
        Raw::AndAnd => TokenKind::AndAnd,
        Raw::OrOr => TokenKind::OrOr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokenKind, &str)> {
        lex(src).iter().map(|t| (t.kind, t.text(src))).collect()
    }

    #[test]
    fn interpolation_with_nested_quotes_is_one_string() {
        let src = r#""a ${m["k"]} b" x"#;
        let toks = kinds(src);
        assert_eq!(toks[0], (TokenKind::String, r#""a ${m["k"]} b""#));
        assert_eq!(toks[2], (TokenKind::Ident, "x"));
    }

    #[test]
    fn unterminated_forms_are_reported_as_such() {
        assert_eq!(kinds("'abc\nx")[0], (TokenKind::UnterminatedString, "'abc"));
        assert_eq!(
            kinds("\"ab\rc\"")[0],
            (TokenKind::UnterminatedString, "\"ab")
        );
        assert_eq!(
            kinds("/* never closed")[0].0,
            TokenKind::UnterminatedBlockComment
        );
        assert_eq!(kinds("\"\"\"open")[0].0, TokenKind::UnterminatedString);
    }

    #[test]
    fn literal_forms() {
        let src = "42 42u 0x1F 3.14 1e9 1h30m 250ms r'x' b\"y\" /// doc\n// plain";
        let ks: Vec<TokenKind> = lex(src)
            .iter()
            .map(|t| t.kind)
            .filter(|k| *k != TokenKind::Whitespace)
            .collect();
        use TokenKind::*;
        assert_eq!(
            ks,
            vec![
                Int,
                UInt,
                Int,
                Double,
                Double,
                Duration,
                Duration,
                String,
                String,
                DocComment,
                LineComment
            ]
        );
    }

    #[test]
    fn control_characters_are_found_in_interpolation_code_only() {
        assert_eq!(control_char_in_interpolation("\"a\u{1}${x}\""), None);
        assert_eq!(control_char_in_interpolation("\"ab${x\u{1}}\""), Some(6));
        assert_eq!(
            control_char_in_interpolation("\"${m[\"\u{1}\"]}${\u{b}y}\""),
            Some(12)
        );
        assert_eq!(
            control_char_in_interpolation("\"\"\"${\u{c}}\"\"\""),
            Some(5)
        );
        assert_eq!(control_char_in_interpolation("r\"${\u{1}}\""), None);
        assert_eq!(control_char_in_interpolation("\"${a}\tb\""), None);
    }

    #[test]
    fn unknown_characters_are_kept() {
        let src = "a # \0 b";
        let toks = lex(src);
        assert!(
            toks.iter()
                .any(|t| t.kind == TokenKind::Unknown && t.text(src) == "#")
        );
        let joined: String = toks.iter().map(|t| t.text(src)).collect();
        assert_eq!(joined, src);
    }
}
