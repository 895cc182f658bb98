//! Evaluation errors: what went wrong while evaluating an expression, as a value the
//! workflow runtime turns into a step failure of kind `expression`.

use std::fmt;

/// The class of an evaluation error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// int or uint arithmetic that does not fit in 64 bits.
    Overflow,
    DivisionByZero,
    /// An operator or function applied to values of kinds it does not take (a `dyn`
    /// value of the wrong kind, in checked expressions).
    NoSuchOverload,
    /// A map key or record field that is absent.
    NoSuchKey,
    /// A list index or string position out of range.
    IndexOutOfRange,
    /// A conversion out of the target type's range (`int(1e20)`, timestamps past 9999).
    Range,
    /// A value that does not have the type a checked conversion requires.
    Conversion,
    /// Any other bad argument (invalid regex, duplicate map key, malformed text).
    InvalidArgument,
    /// A name or function that does not exist (unchecked expressions only).
    Unbound,
    /// A resource limit (list size, nesting) was exceeded.
    Limit,
    /// Not built yet: the message says what.
    Unsupported,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Overflow => "overflow",
            ErrorKind::DivisionByZero => "division_by_zero",
            ErrorKind::NoSuchOverload => "no_such_overload",
            ErrorKind::NoSuchKey => "no_such_key",
            ErrorKind::IndexOutOfRange => "index_out_of_range",
            ErrorKind::Range => "range",
            ErrorKind::Conversion => "conversion",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unbound => "unbound",
            ErrorKind::Limit => "limit",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

/// An expression failed. The message is for people; it never contains a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub struct EvalError {
    pub kind: ErrorKind,
    pub message: String,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl EvalError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> EvalError {
        EvalError {
            kind,
            message: message.into(),
        }
    }

    pub fn overflow(what: &str) -> EvalError {
        EvalError::new(ErrorKind::Overflow, format!("integer overflow in {what}"))
    }

    pub fn division_by_zero() -> EvalError {
        EvalError::new(ErrorKind::DivisionByZero, "division by zero")
    }

    pub fn modulus_by_zero() -> EvalError {
        EvalError::new(ErrorKind::DivisionByZero, "modulus by zero")
    }

    /// `what` applied to values of the given kinds has no overload.
    pub fn no_overload(what: &str, args: &[&crate::Value]) -> EvalError {
        let kinds: Vec<&str> = args.iter().map(|v| v.kind()).collect();
        EvalError::new(
            ErrorKind::NoSuchOverload,
            format!("no such overload: {what} of ({})", kinds.join(", ")),
        )
    }

    pub fn no_such_key(key: &str) -> EvalError {
        EvalError::new(ErrorKind::NoSuchKey, format!("no such key: {key}"))
    }

    pub fn index_out_of_range(index: impl fmt::Display, len: usize) -> EvalError {
        EvalError::new(
            ErrorKind::IndexOutOfRange,
            format!("index out of range: {index} (length {len})"),
        )
    }

    pub fn range(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::Range, message)
    }

    pub fn conversion(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::Conversion, message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::InvalidArgument, message)
    }

    pub fn limit(message: impl Into<String>) -> EvalError {
        EvalError::new(ErrorKind::Limit, message)
    }
}
