//! JSON and values: decoding JSON guided by a static type (records get their fields at
//! the type's positions; a mismatch names the path, `body.items[3].id: expected string,
//! found number`), encoding values as JSON, the checked conversions the checker
//! inserts (`dyn` to a concrete type), and inferring a type from JSON data.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use flow_ir::types::{RecordType, Type};
use serde_json::Value as Json;

use crate::error::EvalError;
use crate::time::{Duration, Timestamp};
use crate::value::{Map, Record, Value};

/// A JSON document (or a value) that does not fit the static type expected of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConversionError {
    /// Where: `body.items[3].id`; empty for the root.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConversionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl From<ConversionError> for EvalError {
    fn from(e: ConversionError) -> EvalError {
        EvalError::conversion(e.to_string())
    }
}

/// Where a value sits in a document being walked (`body.items[3].id`), kept as borrowed
/// links to its parents and written out only when an error is reported.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root(&'a str),
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    pub fn render(&self) -> String {
        match self {
            Path::Root(r) => (*r).to_string(),
            Path::Field(parent, name) => {
                let p = parent.render();
                if p.is_empty() {
                    (*name).to_string()
                } else {
                    format!("{p}.{name}")
                }
            }
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }

    fn error(&self, message: impl Into<String>) -> ConversionError {
        ConversionError {
            path: self.render(),
            message: message.into(),
        }
    }
}

fn json_kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

impl Value {
    /// Decodes JSON as a value of type `ty`.
    pub fn from_json(json: &Json, ty: &Type) -> Result<Value, ConversionError> {
        from_json_at(json, ty, Path::Root(""))
    }

    /// Like [`Value::from_json`], naming the root in error paths (`body`, `input`).
    pub fn from_json_named(json: &Json, ty: &Type, root: &str) -> Result<Value, ConversionError> {
        from_json_at(json, ty, Path::Root(root))
    }

    /// Decodes JSON without a type: objects become maps with string keys, integers
    /// `int` (or `uint` above the int range), other numbers `double`.
    pub fn from_json_dyn(json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => number_dyn(n),
            Json::String(s) => Value::String(s.as_str().into()),
            Json::Array(items) => Value::list(items.iter().map(Value::from_json_dyn).collect()),
            Json::Object(fields) => Value::Map(Arc::new(Map::from_string_entries(
                fields
                    .iter()
                    .map(|(k, v)| (Arc::from(k.as_str()), Value::from_json_dyn(v)))
                    .collect(),
            ))),
        }
    }

    /// Encodes the value as JSON: bytes as base64, timestamps as RFC 3339, durations
    /// as seconds (`"1.5s"`), NaN and infinities as strings, CEL optionals as their
    /// value or null, secrets redacted.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::UInt(u) => Json::from(*u),
            Value::Double(d) => match serde_json::Number::from_f64(*d) {
                Some(n) => Json::Number(n),
                None if d.is_nan() => Json::String("NaN".into()),
                None if *d > 0.0 => Json::String("Infinity".into()),
                None => Json::String("-Infinity".into()),
            },
            Value::String(s) => Json::String(s.to_string()),
            Value::Secret(_) => Json::String("<redacted>".into()),
            Value::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Timestamp(t) => Json::String(t.to_rfc3339()),
            Value::Duration(d) => Json::String(d.to_string()),
            Value::List(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(m) => Json::Object(
                m.entries
                    .iter()
                    .map(|(k, v)| (key_text(k), v.to_json()))
                    .collect(),
            ),
            Value::Record(r) => Json::Object(
                r.fields
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
            Value::Optional(None) => Json::Null,
            Value::Optional(Some(v)) => v.to_json(),
            Value::Type(t) => Json::String(t.to_string()),
        }
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.to_string(),
        Value::Secret(_) => "<redacted>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        other => format!("{other:?}"),
    }
}

fn number_dyn(n: &serde_json::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Int(i)
    } else if let Some(u) = n.as_u64() {
        Value::UInt(u)
    } else {
        Value::Double(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn from_json_at(json: &Json, ty: &Type, path: Path<'_>) -> Result<Value, ConversionError> {
    let mismatch = || {
        path.error(format!(
            "expected {}, found {}",
            describe(ty),
            json_kind(json)
        ))
    };
    match (ty, json) {
        (Type::Dyn | Type::Error, _) => Ok(Value::from_json_dyn(json)),
        (Type::Optional(_), Json::Null) | (Type::Null, Json::Null) => Ok(Value::Null),
        (Type::Optional(inner), _) => from_json_at(json, inner, path),
        (Type::CelOptional(_), Json::Null) => Ok(Value::none()),
        (Type::CelOptional(inner), _) => Ok(Value::some(from_json_at(json, inner, path)?)),
        (Type::Bool, Json::Bool(b)) => Ok(Value::Bool(*b)),
        (Type::Int, Json::Number(n)) => match n.as_i64() {
            Some(i) => Ok(Value::Int(i)),
            None => match n.as_f64() {
                Some(f)
                    if f.fract() == 0.0
                        && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f) =>
                {
                    Ok(Value::Int(f as i64))
                }
                _ => Err(path.error(format!("expected int, found {n} (not a 64-bit integer)"))),
            },
        },
        (Type::UInt, Json::Number(n)) => match n.as_u64() {
            Some(u) => Ok(Value::UInt(u)),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && (0.0..1.844_674_407_370_955_2e19).contains(&f) => {
                    Ok(Value::UInt(f as u64))
                }
                _ => Err(path.error(format!("expected uint, found {n}"))),
            },
        },
        (Type::Double, Json::Number(n)) => Ok(Value::Double(n.as_f64().unwrap_or(f64::NAN))),
        (Type::Double, Json::String(s))
            if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") =>
        {
            Ok(Value::Double(s.parse().unwrap_or(f64::NAN)))
        }
        (Type::String, Json::String(s)) => Ok(Value::String(s.as_str().into())),
        (Type::Secret, Json::String(s)) => Ok(Value::Secret(s.as_str().into())),
        (Type::Bytes, Json::String(s)) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(|b| Value::Bytes(b.into()))
            .map_err(|_| {
                path.error("expected bytes (base64 text), found a string that is not base64")
            }),
        (Type::Timestamp, Json::String(s)) => Timestamp::parse(s)
            .map(Value::Timestamp)
            .map_err(|e| path.error(e.message)),
        (Type::Duration, Json::String(s)) => Duration::parse(s)
            .map(Value::Duration)
            .map_err(|e| path.error(e.message)),
        (Type::List(elem), Json::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(from_json_at(item, elem, Path::Index(&path, i))?);
            }
            Ok(Value::list(out))
        }
        (Type::Map(k, v), Json::Object(fields)) => {
            let mut entries = Vec::with_capacity(fields.len());
            for (name, item) in fields {
                let key = key_from_text(name, k).ok_or_else(|| {
                    Path::Field(&path, name)
                        .error(format!("expected a key of type {k}, found {name:?}"))
                })?;
                entries.push((key, from_json_at(item, v, Path::Field(&path, name))?));
            }
            Map::new(entries)
                .map(|m| Value::Map(Arc::new(m)))
                .map_err(|e| path.error(e.message))
        }
        (Type::Record(r), Json::Object(fields)) => {
            let mut out = Vec::with_capacity(r.fields.len());
            for field in &r.fields {
                let at = Path::Field(&path, &field.name);
                let value = match fields.get(&field.name) {
                    Some(j) => from_json_at(j, &field.ty, at)?,
                    None if accepts_missing(&field.ty) => missing_value(&field.ty),
                    None => {
                        return Err(
                            at.error(format!("missing field (expected {})", describe(&field.ty)))
                        );
                    }
                };
                out.push((Arc::from(field.name.as_str()), value));
            }
            Ok(Value::Record(Arc::new(Record { fields: out })))
        }
        (Type::TypeOf(_), Json::String(s)) => Ok(Value::Type(s.as_str().into())),
        _ => Err(mismatch()),
    }
}

fn accepts_missing(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Optional(_) | Type::Dyn | Type::Null | Type::CelOptional(_) | Type::Error
    )
}

fn missing_value(ty: &Type) -> Value {
    match ty {
        Type::CelOptional(_) => Value::none(),
        _ => Value::Null,
    }
}

fn key_from_text(text: &str, ty: &Type) -> Option<Value> {
    match ty {
        Type::String | Type::Dyn | Type::Error => Some(Value::String(text.into())),
        Type::Int => text.parse().ok().map(Value::Int),
        Type::UInt => text.parse().ok().map(Value::UInt),
        Type::Bool => text.parse().ok().map(Value::Bool),
        _ => None,
    }
}

/// How a type is named in a conversion error.
fn describe(ty: &Type) -> String {
    match ty {
        Type::Record(r) => match &r.name {
            Some(n) => format!("{n} (an object)"),
            None => "an object".into(),
        },
        Type::List(_) => format!("{ty} (an array)"),
        Type::Map(..) => format!("{ty} (an object)"),
        Type::Bytes => "bytes (base64 text)".into(),
        Type::Timestamp => "timestamp (RFC 3339 text)".into(),
        Type::Duration => "duration (text such as \"1.5s\")".into(),
        Type::Optional(inner) => format!("{} or null", describe(inner)),
        other => other.to_string(),
    }
}

// ------------------------------------------------------------------ checked conversion

/// Converts a value to the static type `to` (the checker's `Convert` nodes): checks
/// kinds, reshapes maps and records to the record's field order, and accepts numbers
/// of another kind when they represent the value exactly (JSON has one number type).
pub fn convert(value: &Value, to: &Type) -> Result<Value, EvalError> {
    convert_at(value, to, Path::Root(""), Leniency::Strict).map_err(EvalError::from)
}

/// How strictly [`convert_with`] reads a value of another kind than the declared type's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Leniency {
    /// Only the exact conversions of [`convert`] (numbers that represent the value, text
    /// for timestamps and durations).
    #[default]
    Strict,
    /// An integration's answer: an optional's value stands for itself, and a missing
    /// field reads as null.
    Answer,
    /// An XML answer, which cannot tell one item from a list of one, nor a number or a
    /// boolean from text: besides [`Leniency::Answer`], a single value where a list is
    /// declared is a list of one, null is an empty list, map or string, and text where a
    /// number or a boolean is declared is parsed.
    Xml,
}

/// [`convert_named`] with a [`Leniency`]: the one conversion to a declared type, used by
/// the checker's conversions, `flow eval`, the runtime and the connectors' answers.
pub fn convert_with(
    value: &Value,
    to: &Type,
    root: &str,
    leniency: Leniency,
) -> Result<Value, ConversionError> {
    convert_at(value, to, Path::Root(root), leniency)
}

/// Whether a value already has type `to` exactly (no conversion or reshaping needed).
pub fn conforms(value: &Value, to: &Type) -> bool {
    match (to, value) {
        (Type::Dyn | Type::Error, _) => true,
        (Type::Optional(_) | Type::Null, Value::Null) => true,
        (Type::Optional(inner), v) => conforms(v, inner),
        (Type::Bool, Value::Bool(_))
        | (Type::Int, Value::Int(_))
        | (Type::UInt, Value::UInt(_))
        | (Type::Double, Value::Double(_))
        | (Type::String, Value::String(_))
        | (Type::Secret, Value::Secret(_))
        | (Type::Bytes, Value::Bytes(_))
        | (Type::Timestamp, Value::Timestamp(_))
        | (Type::Duration, Value::Duration(_))
        | (Type::TypeOf(_), Value::Type(_)) => true,
        (Type::List(elem), Value::List(items)) => {
            matches!(**elem, Type::Dyn) || items.iter().all(|i| conforms(i, elem))
        }
        (Type::Record(r), Value::Record(rec)) => {
            rec.fields.len() == r.fields.len()
                && rec
                    .fields
                    .iter()
                    .zip(&r.fields)
                    .all(|((n, v), f)| **n == *f.name && conforms(v, &f.ty))
        }
        (Type::Map(k, v), Value::Map(m)) => m
            .entries
            .iter()
            .all(|(key, val)| conforms(key, k) && conforms(val, v)),
        (Type::CelOptional(inner), Value::Optional(o)) => {
            o.as_deref().is_none_or(|v| conforms(v, inner))
        }
        _ => false,
    }
}

/// Like [`convert`], naming the root in error paths (`input.items[3].id: ...`).
pub fn convert_named(value: &Value, to: &Type, root: &str) -> Result<Value, ConversionError> {
    convert_at(value, to, Path::Root(root), Leniency::Strict)
}

fn convert_at(
    value: &Value,
    to: &Type,
    path: Path<'_>,
    lenient: Leniency,
) -> Result<Value, ConversionError> {
    if conforms(value, to) {
        return Ok(value.clone());
    }
    let xml = lenient == Leniency::Xml;
    let mismatch = || {
        path.error(format!(
            "expected {}, found {}",
            describe(to),
            value.json_kind()
        ))
    };
    // From here on the value does not conform: `dyn`, null for an optional and every
    // value of its own kind returned above.
    Ok(match (to, value) {
        (_, Value::Optional(Some(inner))) if lenient != Leniency::Strict => {
            convert_at(inner, to, path, lenient)?
        }
        (Type::Optional(_), Value::Optional(None)) if lenient != Leniency::Strict => Value::Null,
        (Type::List(_), Value::Null) if xml => Value::list(Vec::new()),
        (Type::Map(..), Value::Null) if xml => Value::Map(Arc::new(Map::default())),
        (Type::String, Value::Null) if xml => Value::String(Arc::from("")),
        (Type::Int | Type::UInt | Type::Double | Type::Bool, Value::String(s)) if xml => {
            let parsed = match to {
                Type::Int => s.trim().parse().ok().map(Value::Int),
                Type::UInt => s.trim().parse().ok().map(Value::UInt),
                Type::Double => s.trim().parse().ok().map(Value::Double),
                _ => match s.trim() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
            };
            parsed.ok_or_else(|| path.error(format!("expected {to}, found the text {s:?}")))?
        }
        (Type::Optional(inner), v) => convert_at(v, inner, path, lenient)?,
        (Type::Secret, Value::String(s)) => Value::Secret(s.clone()),
        (Type::Int, Value::UInt(u)) => Value::Int(
            i64::try_from(*u).map_err(|_| path.error(format!("{u} does not fit in an int")))?,
        ),
        (Type::Int, Value::Double(d))
            if d.fract() == 0.0
                && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(d) =>
        {
            Value::Int(*d as i64)
        }
        (Type::UInt, Value::Int(i)) => Value::UInt(
            u64::try_from(*i).map_err(|_| path.error(format!("{i} does not fit in a uint")))?,
        ),
        (Type::UInt, Value::Double(d))
            if d.fract() == 0.0 && (0.0..1.844_674_407_370_955_2e19).contains(d) =>
        {
            Value::UInt(*d as u64)
        }
        (Type::Double, Value::Int(i)) if (*i as f64) as i64 == *i => Value::Double(*i as f64),
        (Type::Double, Value::UInt(u)) if (*u as f64) as u64 == *u => Value::Double(*u as f64),
        (Type::Timestamp, Value::String(s)) => {
            Value::Timestamp(Timestamp::parse(s).map_err(|e| path.error(e.message))?)
        }
        (Type::Duration, Value::String(s)) => {
            Value::Duration(Duration::parse(s).map_err(|e| path.error(e.message))?)
        }
        (Type::List(elem), Value::List(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert_at(item, elem, Path::Index(&path, i), lenient)?);
            }
            Value::list(out)
        }
        (Type::List(elem), v) if xml => {
            Value::list(vec![convert_at(v, elem, Path::Index(&path, 0), lenient)?])
        }
        (Type::Map(k, v), Value::Map(m)) => {
            let mut entries = Vec::with_capacity(m.len());
            for (key, item) in &m.entries {
                let name = key.as_str().unwrap_or("?");
                entries.push((
                    convert_at(key, k, path, lenient)?,
                    convert_at(item, v, Path::Field(&path, name), lenient)?,
                ));
            }
            Value::Map(Arc::new(
                Map::new(entries).map_err(|e| path.error(e.message))?,
            ))
        }
        (Type::Map(k, v), Value::Record(r)) => {
            let mut entries = Vec::with_capacity(r.fields.len());
            for (name, item) in &r.fields {
                entries.push((
                    convert_at(&Value::String(name.clone()), k, path, lenient)?,
                    convert_at(item, v, Path::Field(&path, name), lenient)?,
                ));
            }
            Value::Map(Arc::new(
                Map::new(entries).map_err(|e| path.error(e.message))?,
            ))
        }
        (Type::Record(r), Value::Map(_) | Value::Record(_)) => reshape(value, r, path, lenient)?,
        (Type::CelOptional(inner), Value::Optional(o)) => match o {
            None => Value::none(),
            Some(v) => Value::some(convert_at(v, inner, path, lenient)?),
        },
        _ => return Err(mismatch()),
    })
}

fn reshape(
    value: &Value,
    r: &RecordType,
    path: Path<'_>,
    lenient: Leniency,
) -> Result<Value, ConversionError> {
    if let Value::Record(rec) = value {
        let same_shape = rec.fields.len() == r.fields.len()
            && rec
                .fields
                .iter()
                .zip(&r.fields)
                .all(|((n, _), f)| **n == *f.name);
        if same_shape && r.fields.iter().all(|f| matches!(f.ty, Type::Dyn)) {
            return Ok(value.clone());
        }
    }
    let mut out = Vec::with_capacity(r.fields.len());
    for field in &r.fields {
        let at = Path::Field(&path, &field.name);
        let missing = || at.error(format!("missing field (expected {})", describe(&field.ty)));
        let v = match value.get_field(&field.name) {
            Some(v) => convert_at(v, &field.ty, at, lenient)?,
            None if accepts_missing(&field.ty) => missing_value(&field.ty),
            // An answer's missing field reads as null (an XML answer's null is lenient).
            None if lenient != Leniency::Strict => {
                convert_at(&Value::Null, &field.ty, at, lenient).map_err(|_| missing())?
            }
            None => return Err(missing()),
        };
        out.push((Arc::from(field.name.as_str()), v));
    }
    Ok(Value::Record(Arc::new(Record { fields: out })))
}

// ------------------------------------------------------------------ type inference

/// The most precise type that fits a JSON document: objects become records (a field
/// missing from some objects of a list, or null in some, becomes optional), arrays
/// lists of the joined element type, numbers `int` when every one is an integer and
/// `double` otherwise; shapes that do not join become `dyn`.
pub fn infer_type(json: &Json) -> Type {
    match json {
        Json::Null => Type::Null,
        Json::Bool(_) => Type::Bool,
        Json::Number(n) => {
            if n.is_i64() {
                Type::Int
            } else if n.is_u64() {
                Type::UInt
            } else {
                Type::Double
            }
        }
        Json::String(_) => Type::String,
        Json::Array(items) => {
            let mut elem: Option<Type> = None;
            for item in items {
                let t = infer_type(item);
                elem = Some(match elem {
                    None => t,
                    Some(prev) => merge_types(&prev, &t),
                });
            }
            Type::list(match elem {
                None | Some(Type::Null) => Type::Dyn,
                Some(t) => t,
            })
        }
        Json::Object(fields) => Type::record(
            None,
            fields
                .iter()
                .map(|(k, v)| (k.clone(), infer_type(v)))
                .collect(),
        ),
    }
}

/// Joins two inferred types.
pub fn merge_types(a: &Type, b: &Type) -> Type {
    match (a, b) {
        _ if a == b => a.clone(),
        (Type::Null, t) | (t, Type::Null) => Type::optional(t.clone()),
        (Type::Optional(x), t) | (t, Type::Optional(x)) => {
            Type::optional(merge_types(x, t.non_optional()))
        }
        (Type::Int, Type::Double)
        | (Type::Double, Type::Int)
        | (Type::UInt, Type::Double)
        | (Type::Double, Type::UInt) => Type::Double,
        (Type::Int, Type::UInt) | (Type::UInt, Type::Int) => Type::Double,
        (Type::List(x), Type::List(y)) => Type::list(match (&**x, &**y) {
            (Type::Dyn, t) | (t, Type::Dyn) => t.clone(),
            (x, y) => merge_types(x, y),
        }),
        (Type::Record(x), Type::Record(y)) => {
            let mut fields: Vec<(String, Type)> = Vec::new();
            for f in &x.fields {
                let t = match y.field(&f.name) {
                    Some((_, t)) => merge_types(&f.ty, t),
                    None => Type::optional(f.ty.clone()),
                };
                fields.push((f.name.clone(), t));
            }
            for f in &y.fields {
                if x.field(&f.name).is_none() {
                    fields.push((f.name.clone(), Type::optional(f.ty.clone())));
                }
            }
            Type::record(None, fields)
        }
        _ => Type::Dyn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mismatches_name_the_path() {
        let item = Type::record(None, vec![("id".into(), Type::String)]);
        let body = Type::record(None, vec![("items".into(), Type::list(item))]);
        let doc = json!({"items": [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": 4}]});
        let err = Value::from_json_named(&doc, &body, "body").unwrap_err();
        assert_eq!(
            err.to_string(),
            "body.items[3].id: expected string, found number"
        );
    }

    #[test]
    fn inference_makes_missing_fields_optional() {
        let t = infer_type(&json!([{"a": 1, "b": "x"}, {"a": 2.5}]));
        assert_eq!(t.to_string(), "list<{ a: double, b: string? }>");
        let v = Value::from_json(&json!([{"a": 1, "b": "x"}, {"a": 2.5}]), &t).unwrap();
        assert_eq!(
            v.to_json(),
            json!([{"a": 1.0, "b": "x"}, {"a": 2.5, "b": null}])
        );
    }
}
