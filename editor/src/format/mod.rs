//! The formatter: one canonical layout for `.flow` files, shared by `flow fmt` and the
//! language server.
//!
//! The layout: two-space indentation; one item, statement, clause or modifier per line;
//! step modifiers on the lines after the step, one level deeper; argument, parameter,
//! list and record lists on one line when they fit in 100 columns, else one element
//! per line with a trailing comma; method chains with two calls or more break before
//! each call when they do not fit; blank lines kept, at most one in a row, none right
//! inside brackets. Comments stay where they were, at the end of their line or on a
//! line of their own. Literals, identifiers and parentheses are printed as written.
//!
//! Formatting never changes what a file means: the result is parsed again and its AST,
//! spans aside, must equal the original's; when it would not, the file is left as it
//! was and [`FormatError::Internal`] says so.

mod doc;
mod printer;

use flow_grammar::ast::Module;
use flow_grammar::{Diagnostic, FileId, has_errors, parse, tokens};

pub use doc::WIDTH;

/// Why a source was not formatted.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The source does not parse; formatting a broken file could lose text.
    #[error("the file has syntax errors; fix them before formatting")]
    Syntax(Vec<Diagnostic>),
    /// The formatter could not lay the file out faithfully. This is a bug in the
    /// formatter; the file is left untouched.
    #[error(
        "internal formatter error: {0}; the file was left unchanged (please report this with the file)"
    )]
    Internal(String),
}

/// Formats a whole `.flow` source.
pub fn format_source(source: &str) -> Result<String, FormatError> {
    let file = FileId(0);
    let (module, diagnostics) = parse(file, source);
    if has_errors(&diagnostics) {
        return Err(FormatError::Syntax(diagnostics));
    }
    let (mut formatted, mut unstable) = format_parsed(source, &module)?;
    let mut reparsed = reparse(&formatted)?;
    // Trailing comments moved off a crowded line settle in at most a pass or two more.
    let mut passes = 1;
    while unstable && passes < MAX_PASSES {
        let (again, still) = format_parsed(&formatted, &reparsed)?;
        if again == formatted {
            break;
        }
        reparsed = reparse(&again)?;
        (formatted, unstable) = (again, still);
        passes += 1;
    }
    if !same_meaning(&module, &reparsed) {
        return Err(FormatError::Internal(
            "the formatted text would mean something else".into(),
        ));
    }
    Ok(formatted)
}

/// The most layout passes one call makes (see [`doc::render_checked`]).
const MAX_PASSES: usize = 4;

fn reparse(formatted: &str) -> Result<Module, FormatError> {
    let (module, problems) = parse(FileId(0), formatted);
    if has_errors(&problems) {
        return Err(FormatError::Internal(
            "the formatted text no longer parses".into(),
        ));
    }
    Ok(module)
}

/// Stack for laying out a file: the printer recurses along the AST, whose expressions
/// may be nested up to the parser's limits.
const FORMATTER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Lays out a module that parsed without errors from `source`, without re-checking it.
fn format_parsed(source: &str, module: &Module) -> Result<(String, bool), FormatError> {
    let work = || {
        let mut printer = printer::Printer::new(source, tokens::lex(source));
        printer
            .module(module)
            .map(|d| doc::render_checked(&d))
            .map_err(|m| {
                FormatError::Internal(format!(
                    "expected {} at byte {}, found `{}`",
                    m.expected, m.offset, m.found
                ))
            })
    };
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("flow-fmt".into())
            .stack_size(FORMATTER_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(|e| FormatError::Internal(format!("cannot start the formatter: {e}")))?
            .join()
            .unwrap_or_else(|_| {
                Err(FormatError::Internal(
                    "the formatter stopped unexpectedly".into(),
                ))
            })
    })
}

/// Whether two modules are the same program: equal ASTs, spans aside.
pub fn same_meaning(a: &Module, b: &Module) -> bool {
    without_spans(&format!("{a:?}")) == without_spans(&format!("{b:?}"))
}

/// Removes spans (`12..40`) from an AST's debug text. Spans are the only `N..M` outside
/// string literals, and string literals are skipped whole, so no content is touched.
fn without_spans(debug: &str) -> String {
    let bytes = debug.as_bytes();
    let mut out = String::with_capacity(debug.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            if c == b'\\' {
                out.push_str(&debug[i..(i + 2).min(debug.len())]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if c.is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let digits = |from: usize| {
                bytes[from..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count()
            };
            let first = digits(i);
            let dots = i + first;
            if bytes.get(dots..dots + 2) == Some(b"..".as_slice()) {
                let second = digits(dots + 2);
                if second > 0 {
                    out.push('_');
                    i = dots + 2 + second;
                    continue;
                }
            }
        }
        // Copy one whole character so multi-byte text stays intact.
        let len = debug[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&debug[i..i + len]);
        i += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_ignored_but_string_contents_are_not() {
        assert_eq!(
            without_spans(r#"Ident { name: "x", span: 3..40 } x@1..2"#),
            r#"Ident { name: "x", span: _ } x@_"#
        );
        assert_eq!(without_spans(r#"String("1..2")"#), r#"String("1..2")"#);
        assert_eq!(
            without_spans(r#"String("a\"1..2")"#),
            r#"String("a\"1..2")"#
        );
    }

    #[test]
    fn a_file_with_syntax_errors_is_refused() {
        assert!(matches!(
            format_source("workflow {"),
            Err(FormatError::Syntax(_))
        ));
    }
}
