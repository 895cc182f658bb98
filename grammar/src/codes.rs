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
        if self.id.starts_with('W') {
            Severity::Warning
        } else {
            Severity::Error
        }
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
    FILE_TOO_LARGE = "E0013", "source file too large";
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
    // ---- E1xxx: names and dependencies
    UNKNOWN_NAME = "E1000", "unknown name";
    DUPLICATE_NAME = "E1001", "name declared twice";
    UNKNOWN_MODULE = "E1002", "unknown standard-library module";
    IMPORT_NOT_FOUND = "E1003", "imported file cannot be read";
    IMPORT_CYCLE = "E1004", "modules import each other in a cycle";
    UNKNOWN_ACTION = "E1005", "unknown action";
    UNKNOWN_EVENT = "E1006", "unknown event";
    UNKNOWN_WORKFLOW = "E1007", "unknown workflow";
    UNKNOWN_STEP = "E1008", "unknown step";
    DEPENDENCY_CYCLE = "E1009", "statements depend on each other in a cycle";
    RECURSIVE_TYPE = "E1010", "type refers to itself";
    CONST_CYCLE = "E1011", "constants refer to each other in a cycle";
    NOT_AN_INTEGRATION = "E1012", "name is not an integration";
    NO_VALUE_HERE = "E1013", "step never has a value here";
    NOT_A_TYPE = "E1015", "name is not a type";
    // ---- E21xx-E29xx: types outside expressions
    MISSING_ARGUMENT = "E2100", "missing required argument";
    UNKNOWN_ARGUMENT = "E2101", "unknown argument";
    ARGUMENT_TYPE = "E2102", "argument has the wrong type";
    DUPLICATE_ARGUMENT = "E2103", "argument given twice";
    POSITIONAL_ARGUMENT = "E2104", "argument without a name";
    RETURN_TYPE = "E2105", "returned value does not match the result type";
    MISSING_RETURN = "E2106", "workflow can end without returning its result";
    INVALID_SETTING = "E2107", "invalid setting value";
    UNKNOWN_SETTING = "E2108", "unknown setting";
    DUPLICATE_SETTING = "E2109", "setting given twice";
    INVALID_CRON = "E2110", "invalid cron expression";
    UNKNOWN_TIME_ZONE = "E2111", "unknown time zone";
    NON_POSITIVE_DURATION = "E2112", "duration must be positive";
    VALUE_OUT_OF_RANGE = "E2113", "value out of range";
    NOT_CONSTANT = "E2114", "value must be known when compiling";
    NOT_ITERABLE = "E2115", "`for` over a value that is not a list or map";
    SECRET_LEAK = "E2116", "secret value reaches an output";
    MOCK_TYPE = "E2117", "mocked value does not match the action's result type";
    DEFAULT_TYPE = "E2118", "default value does not match the parameter type";
    // ---- E3xxx: integrations and policies
    MULTIPLE_TRIGGERS = "E3000", "workflow has more than one trigger";
    UNKNOWN_TRIGGER = "E3001", "unknown trigger";
    DUPLICATE_WEBHOOK_PATH = "E3002", "webhook path used twice";
    INVALID_WEBHOOK_PATH = "E3003", "invalid webhook path";
    NO_NOTIFY = "E3004", "integration declares no `notify`";
    CACHE_NOT_IDEMPOTENT = "E3005", "`cache` on an action that is not idempotent";
    UNKNOWN_AUTH = "E3006", "unknown auth kind";
    INVALID_FORM_ARGUMENTS = "E3007", "invalid arguments for a built-in form";
    UNKNOWN_PAGINATION = "E3008", "unknown pagination kind";
    UNKNOWN_VERIFY = "E3009", "unknown webhook verification";
    MISSING_REQUEST = "E3010", "action has no request";
    DUPLICATE_CLAUSE = "E3011", "clause given twice";
    INVALID_RATE_LIMIT = "E3012", "invalid rate limit";
    INVALID_INTEGRATION_SETTING = "E3013", "invalid integration setting";
    UNKNOWN_ERROR_KIND = "E3014", "unknown error kind";
    MISPLACED_DECLARATION = "E3015", "`on` or `settings` inside a block";
    EVENT_WITHOUT_WEBHOOK = "E3016", "event has no webhook";
    INVALID_WAIT = "E3017", "invalid wait for a signal or an event";
    SIGNAL_TYPE_CONFLICT = "E3018", "one signal waited for with two types";
    // ---- E40xx: compiled artefacts
    ARTEFACT_NOT_FLOWC = "E4000", "not a compiled Flow program";
    ARTEFACT_VERSION = "E4001", "compiled program of another format version";
    ARTEFACT_CORRUPT = "E4002", "compiled program is corrupted";
    ARTEFACT_TRUNCATED = "E4003", "compiled program is truncated";
    ARTEFACT_UNREADABLE = "E4004", "compiled program cannot be decoded";
    // ---- W0xxx: syntax warnings
    EMPTY_FILE = "W0001", "file has no items";
    // ---- W20xx: expression warnings
    NULL_SAFE_ON_NON_NULL = "W2000", "`?.` or `??` on a value that is never null";
    // ---- W1xxx: names and dependencies
    UNUSED_STEP = "W1000", "result of a read-only step is never used";
    UNUSED_LET = "W1001", "`let` is never used";
    REDUNDANT_AFTER = "W1002", "`after` already implied by data";
    UNREACHABLE = "W1003", "statement can never run";
    UNUSED_IMPORT = "W1004", "import is never used";
    // ---- W3xxx: integrations and policies
    RETRY_NOT_IDEMPOTENT = "W3000", "`retry` on an action that is not idempotent";
    SCHEDULE_SETTING_UNUSED = "W3001", "schedule setting on a workflow without a schedule";
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
            assert!(
                code.id.starts_with('E') || code.id.starts_with('W'),
                "{}",
                code.id
            );
            assert!(
                code.id[1..].chars().all(|c| c.is_ascii_digit()),
                "{}",
                code.id
            );
        }
    }
}
