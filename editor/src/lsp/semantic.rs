//! Semantic highlighting from the lossless lexer, sharpened by the compiler's index: a
//! word the index knows is coloured by what it names (step, type, action, parameter...),
//! other words by where they stand (a keyword, a field after `.`, a named argument).

use std::collections::HashMap;

use flow_compiler::analysis::SymbolKind;
use flow_grammar::tokens::{Token, TokenKind, is_keyword, lex};
use tower_lsp_server::ls_types::{
    SemanticToken, SemanticTokenModifier, SemanticTokenType, SemanticTokens, SemanticTokensLegend,
};

use super::world::Snapshot;

const TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::NAMESPACE,
    SemanticTokenType::TYPE,
    SemanticTokenType::FUNCTION,
    SemanticTokenType::METHOD,
    SemanticTokenType::PARAMETER,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::PROPERTY,
    SemanticTokenType::KEYWORD,
    SemanticTokenType::COMMENT,
    SemanticTokenType::STRING,
    SemanticTokenType::NUMBER,
    SemanticTokenType::OPERATOR,
    SemanticTokenType::EVENT,
];

const MODIFIERS: &[SemanticTokenModifier] = &[
    SemanticTokenModifier::DECLARATION,
    SemanticTokenModifier::DOCUMENTATION,
    SemanticTokenModifier::READONLY,
    SemanticTokenModifier::DEFAULT_LIBRARY,
];

#[derive(Clone, Copy)]
enum Ty {
    Namespace,
    Type,
    Function,
    Method,
    Parameter,
    Variable,
    Property,
    Keyword,
    Comment,
    String,
    Number,
    Operator,
    Event,
}

const DECLARATION: u32 = 1;
const DOCUMENTATION: u32 = 2;
const READONLY: u32 = 4;
const DEFAULT_LIBRARY: u32 = 8;

pub fn legend() -> SemanticTokensLegend {
    SemanticTokensLegend {
        token_types: TYPES.to_vec(),
        token_modifiers: MODIFIERS.to_vec(),
    }
}

pub fn tokens(snapshot: &Snapshot) -> SemanticTokens {
    let Some(file) = snapshot.file() else {
        return SemanticTokens::default();
    };
    let text = file.text.as_str();
    let mut names: HashMap<u32, (SymbolKind, bool, bool)> = HashMap::new();
    for r in &snapshot.compilation.analysis.references {
        if r.span.file == snapshot.root {
            let from_stdlib = snapshot
                .sources
                .get(r.definition.file)
                .is_some_and(|f| f.name.starts_with("<stdlib>/"));
            names.insert(r.span.start, (r.kind, r.span == r.definition, from_stdlib));
        }
    }
    let all = lex(text);
    let significant: Vec<&Token> = all.iter().filter(|t| !t.kind.is_trivia()).collect();
    let mut out = Encoder {
        data: Vec::new(),
        line: 0,
        column: 0,
        file,
    };
    let mut sig = 0usize;
    for token in &all {
        let classified = match token.kind {
            TokenKind::Whitespace | TokenKind::Unknown => None,
            TokenKind::LineComment
            | TokenKind::BlockComment
            | TokenKind::UnterminatedBlockComment => Some((Ty::Comment, 0)),
            TokenKind::DocComment => Some((Ty::Comment, DOCUMENTATION)),
            TokenKind::String | TokenKind::UnterminatedString => Some((Ty::String, 0)),
            TokenKind::Int | TokenKind::UInt | TokenKind::Double | TokenKind::Duration => {
                Some((Ty::Number, 0))
            }
            TokenKind::Ident => {
                let prev = sig
                    .checked_sub(1)
                    .and_then(|i| significant.get(i))
                    .map(|t| t.kind);
                let next = significant.get(sig + 1).map(|t| t.kind);
                Some(match names.get(&(token.start as u32)) {
                    Some(&(kind, declaration, stdlib)) => {
                        let mut mods = if declaration { DECLARATION } else { 0 };
                        if stdlib {
                            mods |= DEFAULT_LIBRARY;
                        }
                        (of_kind(kind, &mut mods), mods)
                    }
                    None => {
                        let prev_word = sig
                            .checked_sub(1)
                            .and_then(|i| significant.get(i))
                            .map(|t| t.text(text));
                        classify_word(token.text(text), prev, prev_word, next)
                    }
                })
            }
            kind if is_operator(kind) => Some((Ty::Operator, 0)),
            _ => None,
        };
        if !token.kind.is_trivia() && token.kind != TokenKind::Whitespace {
            sig += 1;
        }
        if let Some((ty, mods)) = classified {
            out.push(token.start, token.end, ty as u32, mods);
        }
    }
    SemanticTokens {
        result_id: None,
        data: out.data,
    }
}

fn of_kind(kind: SymbolKind, mods: &mut u32) -> Ty {
    match kind {
        SymbolKind::Type => Ty::Type,
        SymbolKind::Const => {
            *mods |= READONLY;
            Ty::Variable
        }
        SymbolKind::Integration | SymbolKind::Module => Ty::Namespace,
        SymbolKind::Action => Ty::Method,
        SymbolKind::Event => Ty::Event,
        SymbolKind::Workflow | SymbolKind::Test => Ty::Function,
        SymbolKind::Step | SymbolKind::Let | SymbolKind::Variable => Ty::Variable,
        SymbolKind::Param => Ty::Parameter,
    }
}

/// A word the index does not know, coloured by its neighbours.
fn classify_word(
    word: &str,
    prev: Option<TokenKind>,
    prev_word: Option<&str>,
    next: Option<TokenKind>,
) -> (Ty, u32) {
    let declared = match prev_word {
        Some("import" | "as") => Some((Ty::Namespace, 0)),
        Some("workflow") => Some((Ty::Function, DECLARATION)),
        Some("type") => Some((Ty::Type, DECLARATION)),
        Some("step" | "let") => Some((Ty::Variable, DECLARATION)),
        Some("const") => Some((Ty::Variable, DECLARATION | READONLY)),
        Some("integration") => Some((Ty::Namespace, DECLARATION)),
        Some("action") => Some((Ty::Method, DECLARATION)),
        Some("event") => Some((Ty::Event, DECLARATION)),
        _ => None,
    };
    if let Some(declared) = declared
        && !is_keyword(word)
    {
        return declared;
    }
    let after_dot = matches!(
        prev,
        Some(TokenKind::Dot | TokenKind::QuestionDot | TokenKind::DotQuestion)
    );
    if after_dot {
        return if next == Some(TokenKind::LParen) {
            (Ty::Method, 0)
        } else {
            (Ty::Property, 0)
        };
    }
    if next == Some(TokenKind::Colon) && !matches!(word, "true" | "false" | "null") {
        return (Ty::Property, 0);
    }
    if matches!(word, "true" | "false" | "null") {
        return (Ty::Keyword, 0);
    }
    if is_keyword(word)
        || matches!(
            word,
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS"
        )
    {
        return (Ty::Keyword, 0);
    }
    if matches!(
        word,
        "bool"
            | "int"
            | "uint"
            | "double"
            | "string"
            | "bytes"
            | "timestamp"
            | "duration"
            | "list"
            | "map"
            | "dyn"
    ) {
        return (Ty::Type, DEFAULT_LIBRARY);
    }
    if next == Some(TokenKind::LParen) {
        return (Ty::Function, 0);
    }
    if word.chars().next().is_some_and(char::is_uppercase) {
        return (Ty::Type, 0);
    }
    (Ty::Variable, 0)
}

struct Encoder<'f> {
    data: Vec<SemanticToken>,
    line: u32,
    column: u32,
    file: &'f flow_grammar::span::SourceFile,
}

impl Encoder<'_> {
    /// Adds a token, split at line ends (a protocol token never spans lines).
    fn push(&mut self, start: usize, end: usize, ty: u32, mods: u32) {
        let text = &self.file.text[start..end];
        let mut offset = start;
        for raw in text.split('\n') {
            let piece = raw.strip_suffix('\r').unwrap_or(raw);
            if !piece.is_empty() {
                let (line, column) = self.file.utf16_position(offset);
                let (line, column) = (line as u32, column as u32);
                let length = piece.encode_utf16().count() as u32;
                let delta_line = line - self.line;
                let delta_start = if delta_line == 0 {
                    column - self.column
                } else {
                    column
                };
                self.data.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length,
                    token_type: ty,
                    token_modifiers_bitset: mods,
                });
                self.line = line;
                self.column = column;
            }
            offset += raw.len() + 1;
        }
    }
}

fn is_operator(kind: TokenKind) -> bool {
    matches!(
        kind,
        TokenKind::Arrow
            | TokenKind::FatArrow
            | TokenKind::QuestionQuestion
            | TokenKind::QuestionDot
            | TokenKind::DotQuestion
            | TokenKind::Question
            | TokenKind::AndAnd
            | TokenKind::OrOr
            | TokenKind::EqEq
            | TokenKind::NotEq
            | TokenKind::Le
            | TokenKind::Ge
            | TokenKind::Lt
            | TokenKind::Gt
            | TokenKind::Eq
            | TokenKind::Plus
            | TokenKind::Minus
            | TokenKind::Star
            | TokenKind::Slash
            | TokenKind::Percent
            | TokenKind::Bang
    )
}
