//! The registry of diagnostic codes: every code Flow can report, defined once, never reused.
//!
//! Ranges: E0xxx syntax, E1xxx names and dependencies, E2xxx types, E3xxx
//! integrations and policies, E4xxx compiled artefacts, W0xxx–W3xxx the
//! matching warnings. `docs/diagnostics.md` documents each code; a test checks
//! that every code here has an entry there and a fixture that triggers it.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::diagnostic::Severity;

/// A stable diagnostic code with a one-line title.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code {
    pub id: &'static str,
    pub title: &'static str,
}

impl Code {
    pub fn severity(self) -> Severity {
        if self.id.starts_with('W') { Severity::Warning } else { Severity::Error }
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id)
    }
}

macro_rules! registry {
    ($( $(#[$doc:meta])* $name:ident = $id:literal, $title:literal; )*) => {
        $( $(#[$doc])* pub const $name: Code = Code { id: $id, title: $title }; )*
        /// Every registered code, in registry order.
        pub const ALL: &[Code] = &[ $( $name ),* ];
    };
}

registry! {
    // ---- E0xxx: syntax
    INVALID_UTF8 = "E0001", "source is not valid UTF-8";
    SYNTAX = "E0002", "syntax error";
    UNEXPECTED_CHARACTER = "E0003", "unexpected character";
    UNTERMINATED_STRING = "E0004", "unterminated string";
    UNTERMINATED_COMMENT = "E0005", "unterminated block comment";
    NESTING_TOO_DEEP = "E0006", "nesting too deep";
    INVALID_ESCAPE = "E0007", "invalid escape sequence";
    INTEGER_OUT_OF_RANGE = "E0008", "integer literal out of range";
    INVALID_DURATION = "E0009", "invalid duration literal";
    UNMATCHED_DELIMITER = "E0010", "unmatched closing delimiter";
    UNCLOSED_DELIMITER = "E0011", "unclosed delimiter";
    DUPLICATE_MODIFIER = "E0012", "step modifier given twice";
    // ---- E20xx: expression types
    UNKNOWN_VARIABLE = "E2000", "unknown name in an expression";
    TYPE_MISMATCH = "E2001", "type mismatch";
    NO_MATCHING_OVERLOAD = "E2002", "no overload of this function or operator takes these types";
    UNKNOWN_FUNCTION = "E2003", "unknown function";
    UNKNOWN_FIELD = "E2004", "no such field";
    WRONG_ARGUMENT_COUNT = "E2005", "wrong number of arguments";
    INVALID_MACRO = "E2006", "invalid use of a macro";
    CREDENTIALS_NOT_ALLOWED = "E2007", "`secret()` or `setting()` outside an integration";
    NAMED_ARGUMENT = "E2008", "named argument in a function call";
    DUPLICATE_FIELD = "E2009", "field given twice";
    UNKNOWN_TYPE = "E2010", "unknown type";
    INVALID_MAP_KEY = "E2011", "invalid map key type";
    INVALID_REGEX = "E2012", "invalid regular expression";
    MAYBE_NULL = "E2013", "value may be null";
    NOT_SUPPORTED_EXPR = "E2014", "expression form not supported";
    // ---- E20xx: expression types
    UNKNOWN_VARIABLE = "E2000", "unknown name in an expression";
    TYPE_MISMATCH = "E2001", "type mismatch";
    NO_MATCHING_OVERLOAD = "E2002", "no overload of this function or operator takes these types";
    UNKNOWN_FUNCTION = "E2003", "unknown function";
    UNKNOWN_FIELD = "E2004", "no such field";
    WRONG_ARGUMENT_COUNT = "E2005", "wrong number of arguments";
    INVALID_MACRO = "E2006", "invalid use of a macro";
    CREDENTIALS_NOT_ALLOWED = "E2007", "`secret()` or `setting()` outside an integration";
    NAMED_ARGUMENT = "E2008", "named argument in a function call";
    DUPLICATE_FIELD = "E2009", "field given twice";
    UNKNOWN_TYPE = "E2010", "unknown type";
    INVALID_MAP_KEY = "E2011", "invalid map key type";
    INVALID_REGEX = "E2012", "invalid regular expression";
    MAYBE_NULL = "E2013", "value may be null";
    NOT_SUPPORTED_EXPR = "E2014", "expression form not supported";
    // ---- W0xxx: syntax warnings
    EMPTY_FILE = "W0001", "file has no items";
    // ---- W20xx: expression warnings
    NULL_SAFE_ON_NON_NULL = "W2000", "`?.` or `??` on a value that is never null";
    // ---- W20xx: expression warnings
    NULL_SAFE_ON_NON_NULL = "W2000", "`?.` or `??` on a value that is never null";
}

/// Looks a code up by its id (`"E0002"`).
pub fn lookup(id: &str) -> Option<Code> {
    ALL.iter().copied().find(|c| c.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for code in ALL {
            assert!(seen.insert(code.id), "code {} registered twice", code.id);
            assert_eq!(code.id.len(), 5, "{}", code.id);
            assert!(code.id.starts_with('E') || code.id.starts_with('W'), "{}", code.id);
            assert!(code.id[1..].chars().all(|c| c.is_ascii_digit()), "{}", code.id);
        }
    }
}
