//! Evaluating declaration clauses: the connection as an expression context (settings and
//! secrets), the modes clauses are read in (flow-expr's [`Mode`]: a request leaves out
//! null fields, a `result` reads an answer leniently), and the wire encodings of values
//! (JSON and text), which, unlike `Value::to_json`, reveal secrets because they are what
//! goes to the API.

use std::sync::Arc;

use base64::Engine as _;
use flow_expr::{Context, Leniency, Timestamp, Value};
use flow_ir::types::Type;
use serde_json::Value as Json;

use crate::vault::Connection;

/// The expression context of one call: the connection's settings and secrets.
pub struct ConnContext<'a> {
    pub connection: &'a Connection,
}

impl Context for ConnContext<'_> {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn secret(&self, name: &str) -> Option<Arc<str>> {
        self.connection.secret_text(name)
    }

    fn setting(&self, name: &str) -> Option<Value> {
        self.connection
            .settings
            .get(name)
            .map(|s| Value::String(Arc::from(s.as_str())))
    }
}

pub use flow_expr::Mode;

/// The mode of a `result` clause: an answer, read leniently when it was XML.
pub fn answer_mode(xml: bool) -> Mode {
    Mode::Answer(if xml { Leniency::Xml } else { Leniency::Answer })
}

/// The value as JSON for the wire: like `Value::to_json`, but secrets are their text.
pub fn wire_json(v: &Value) -> Json {
    match v {
        Value::Secret(s) => Json::String(String::from(&**s)),
        Value::List(items) => Json::Array(items.iter().map(wire_json).collect()),
        Value::Map(m) => Json::Object(
            m.entries
                .iter()
                .map(|(k, v)| (text(k), wire_json(v)))
                .collect(),
        ),
        Value::Record(r) => Json::Object(
            r.fields
                .iter()
                .map(|(k, v)| (String::from(&**k), wire_json(v)))
                .collect(),
        ),
        Value::Optional(Some(inner)) => wire_json(inner),
        other => other.to_json(),
    }
}

/// Calls `f` with a scalar's text on the wire, without a copy when it is a string.
pub fn with_text<T>(v: &Value, f: impl FnOnce(&str) -> T) -> T {
    match v {
        Value::String(s) | Value::Secret(s) => f(s),
        Value::Optional(Some(inner)) => with_text(inner, f),
        other => f(&text(other)),
    }
}

/// A scalar as text on the wire (a query parameter, a header, a form field).
pub fn text(v: &Value) -> String {
    match v {
        // `String::from`, not `to_string`: the latter goes through `Display`.
        Value::String(s) | Value::Secret(s) => String::from(&**s),
        Value::Null | Value::Optional(None) => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Double(d) => match serde_json::Number::from_f64(*d) {
            Some(n) => n.to_string(),
            None => d.to_string(),
        },
        Value::Bytes(b) => base64::engine::general_purpose::STANDARD.encode(b),
        Value::Timestamp(t) => t.to_rfc3339(),
        Value::Duration(d) => d.to_string(),
        Value::Optional(Some(inner)) => text(inner),
        Value::Type(t) => t.to_string(),
        other => wire_json(other).to_string(),
    }
}

/// `(name, value)` pairs of a record or map, in order.
pub fn fields(v: &Value) -> Option<Vec<(String, Value)>> {
    match v {
        Value::Record(r) => Some(
            r.fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        ),
        Value::Map(m) => Some(
            m.entries
                .iter()
                .map(|(k, v)| (text(k), v.clone()))
                .collect(),
        ),
        Value::Optional(Some(inner)) => fields(inner),
        _ => None,
    }
}

/// Whether a type admits the literal `null`.
pub fn admits_null(ty: &Type) -> bool {
    matches!(ty, Type::Optional(_) | Type::Dyn | Type::Null | Type::Error)
}
