//! Run-time values: CEL's value kinds plus Flow's records (fields at known positions)
//! and secrets, with CEL's equality and ordering.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::EvalError;
use crate::time::{Duration, Timestamp};

/// A value. Cheap to clone: strings, bytes and containers are shared.
#[derive(Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(Arc<str>),
    Bytes(Arc<[u8]>),
    Timestamp(Timestamp),
    Duration(Duration),
    List(Arc<Vec<Value>>),
    Map(Arc<Map>),
    /// A record: fields sorted by name, as in its static type.
    Record(Arc<Record>),
    /// CEL's optional value (`optional.of(x)`, `a.?b`).
    Optional(Option<Arc<Value>>),
    /// A type as a value (`int`, `type(x)`), by CEL name.
    Type(Arc<str>),
    /// A credential. Behaves as a string inside integration declarations; its text is
    /// never shown by `Debug`, `to_json` or an error message.
    Secret(Arc<str>),
}

impl Value {
    /// Whether this is `null` or an empty optional (what a request leaves out).
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null | Value::Optional(None))
    }

    pub fn string(s: impl Into<Arc<str>>) -> Value {
        Value::String(s.into())
    }

    pub fn list(items: Vec<Value>) -> Value {
        Value::List(Arc::new(items))
    }

    pub fn none() -> Value {
        Value::Optional(None)
    }

    pub fn some(v: Value) -> Value {
        Value::Optional(Some(Arc::new(v)))
    }

    /// The CEL name of this value's type (`int`, `list`, `map`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null_type",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) | Value::Secret(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Timestamp(_) => "google.protobuf.Timestamp",
            Value::Duration(_) => "google.protobuf.Duration",
            Value::List(_) => "list",
            Value::Map(_) | Value::Record(_) => "map",
            Value::Optional(_) => "optional_type",
            Value::Type(_) => "type",
        }
    }

    /// The kind of value, as named in error messages (JSON words where they exist).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::UInt(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Secret(_) => "secret",
            Value::Bytes(_) => "bytes",
            Value::Timestamp(_) => "timestamp",
            Value::Duration(_) => "duration",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Record(_) => "record",
            Value::Optional(_) => "optional",
            Value::Type(_) => "type",
        }
    }

    /// The kind of value in JSON words (`number`, `object`, `array`), for conversion
    /// errors about data that came from JSON.
    pub fn json_kind(&self) -> &'static str {
        match self {
            Value::Int(_) | Value::UInt(_) | Value::Double(_) => "number",
            Value::Map(_) | Value::Record(_) => "object",
            Value::List(_) => "array",
            other => other.kind(),
        }
    }

    /// The text of a string or a secret.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Secret(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, Value::Secret(_))
    }

    /// Whether this is its type's zero value (`optional.ofNonZeroValue`).
    pub fn is_zero(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::UInt(u) => *u == 0,
            Value::Double(d) => *d == 0.0,
            Value::String(s) | Value::Secret(s) => s.is_empty(),
            Value::Bytes(b) => b.is_empty(),
            Value::Timestamp(t) => t.secs == 0 && t.nanos == 0,
            Value::Duration(d) => d.is_zero(),
            Value::List(l) => l.is_empty(),
            Value::Map(m) => m.is_empty(),
            Value::Record(r) => r.fields.is_empty(),
            Value::Optional(o) => o.is_none(),
            Value::Type(_) => false,
        }
    }

    /// Looks a field up by name: a record's field or a map's string key.
    pub fn get_field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Record(r) => r.get(name),
            Value::Map(m) => m.get_str(name),
            _ => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}u"),
            Value::Double(d) => write!(f, "{d:?}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Secret(_) => f.write_str("<secret>"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::Timestamp(t) => write!(f, "timestamp({:?})", t.to_rfc3339()),
            Value::Duration(d) => write!(f, "duration({:?})", d.to_string()),
            Value::List(l) => f.debug_list().entries(l.iter()).finish(),
            Value::Map(m) => f
                .debug_map()
                .entries(m.entries.iter().map(|(k, v)| (k, v)))
                .finish(),
            Value::Record(r) => {
                let mut s = f.debug_struct("");
                for (name, v) in &r.fields {
                    s.field(name, v);
                }
                s.finish()
            }
            Value::Optional(None) => f.write_str("optional.none()"),
            Value::Optional(Some(v)) => write!(f, "optional.of({v:?})"),
            Value::Type(t) => write!(f, "{t}"),
        }
    }
}

/// A record value: `(name, value)` pairs sorted by name.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub fields: Vec<(Arc<str>, Value)>,
}

impl Record {
    /// Builds a record, sorting the fields by name.
    pub fn new(mut fields: Vec<(Arc<str>, Value)>) -> Record {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Record { fields }
    }

    /// The field at `index` when it has that name (the static shape), else by name.
    #[inline]
    pub fn get_at(&self, index: usize, name: &str) -> Option<&Value> {
        match self.fields.get(index) {
            Some((n, v)) if &**n == name => Some(v),
            _ => self.get(name),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields
            .binary_search_by(|(n, _)| (**n).cmp(name))
            .ok()
            .and_then(|i| self.fields.get(i))
            .map(|(_, v)| v)
    }
}

/// A map key normalised so that numerically equal keys (`1`, `1u`, `1.0`) find each other.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Bool(bool),
    Int(i64),
    /// Only for values above `i64::MAX`.
    UInt(u64),
    String(Arc<str>),
}

impl Key {
    /// The key for a value used to look up or build a map; `None` for values that
    /// cannot be keys (a double that is not a whole number finds nothing).
    pub fn of(v: &Value) -> Option<Key> {
        Some(match v {
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::UInt(u) => match i64::try_from(*u) {
                Ok(i) => Key::Int(i),
                Err(_) => Key::UInt(*u),
            },
            Value::Double(d) => {
                if d.fract() != 0.0 || !d.is_finite() {
                    return None;
                }
                if *d >= -9.223_372_036_854_776e18 && *d < 9.223_372_036_854_776e18 {
                    Key::Int(*d as i64)
                } else if *d >= 0.0 && *d < 1.844_674_407_370_955_2e19 {
                    Key::UInt(*d as u64)
                } else {
                    return None;
                }
            }
            Value::String(s) | Value::Secret(s) => Key::String(s.clone()),
            _ => return None,
        })
    }

    /// Whether `v` is this key: `Key::of(v) == Some(self)`, without building a key (a
    /// string key would cost a reference-count round trip per comparison).
    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Key::String(a), Value::String(b) | Value::Secret(b)) => **a == **b,
            (Key::String(_), _) | (_, Value::String(_) | Value::Secret(_)) => false,
            _ => Key::of(v).as_ref() == Some(self),
        }
    }
}

/// Maps at or below this size are searched linearly; larger ones get a hash index.
const INDEX_THRESHOLD: usize = 8;

/// A map value: entries in insertion order, with a hash index when large.
#[derive(Clone, Debug, Default)]
pub struct Map {
    pub entries: Vec<(Value, Value)>,
    index: Option<HashMap<Key, usize>>,
}

impl Map {
    /// Builds a map; a repeated key is an error (CEL's "Failed with repeated key").
    pub fn new(entries: Vec<(Value, Value)>) -> Result<Map, EvalError> {
        let mut map = Map {
            entries: Vec::with_capacity(entries.len()),
            index: None,
        };
        for (k, v) in entries {
            if map.insert(k, v)? {
                return Err(EvalError::invalid_argument("Failed with repeated key"));
            }
        }
        Ok(map)
    }

    /// Builds a map from string keys known to be distinct (JSON objects keep the last).
    pub fn from_string_entries(entries: Vec<(Arc<str>, Value)>) -> Map {
        let mut map = Map {
            entries: Vec::with_capacity(entries.len()),
            index: None,
        };
        for (k, v) in entries {
            let key = Key::String(k.clone());
            match map.position(&key) {
                Some(i) => {
                    if let Some(e) = map.entries.get_mut(i) {
                        e.1 = v;
                    }
                }
                None => map.push(key, Value::String(k), v),
            }
        }
        map
    }

    /// Inserts an entry; returns whether the key was already present (then nothing changes).
    pub fn insert(&mut self, k: Value, v: Value) -> Result<bool, EvalError> {
        let key = Key::of(&k).ok_or_else(|| {
            EvalError::invalid_argument(format!("a {} cannot be a map key", k.kind()))
        })?;
        if self.position(&key).is_some() {
            return Ok(true);
        }
        self.push(key, k, v);
        Ok(false)
    }

    fn push(&mut self, key: Key, k: Value, v: Value) {
        let i = self.entries.len();
        self.entries.push((k, v));
        if let Some(index) = &mut self.index {
            index.insert(key, i);
        } else if self.entries.len() > INDEX_THRESHOLD {
            let mut index = HashMap::with_capacity(self.entries.len() * 2);
            for (j, (k, _)) in self.entries.iter().enumerate() {
                if let Some(key) = Key::of(k) {
                    index.insert(key, j);
                }
            }
            self.index = Some(index);
        }
    }

    fn position(&self, key: &Key) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| key.matches(k)),
        }
    }

    pub fn get(&self, k: &Value) -> Option<&Value> {
        let key = Key::of(k)?;
        self.position(&key)
            .and_then(|i| self.entries.get(i))
            .map(|(_, v)| v)
    }

    pub fn get_str(&self, k: &str) -> Option<&Value> {
        match &self.index {
            Some(_) => self.get(&Value::String(k.into())),
            None => self
                .entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

// ------------------------------------------------------------------ equality and order

/// CEL equality: numbers by value across int, uint and double; NaN unequal to itself;
/// lists element-wise; maps and records by keys; values of different kinds unequal.
pub fn equals(a: &Value, b: &Value) -> bool {
    use Value as V;
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Int(_) | V::UInt(_) | V::Double(_), V::Int(_) | V::UInt(_) | V::Double(_)) => {
            compare_numbers(a, b) == Some(Ordering::Equal)
        }
        (V::String(x) | V::Secret(x), V::String(y) | V::Secret(y)) => x == y,
        (V::Bytes(x), V::Bytes(y)) => x == y,
        (V::Timestamp(x), V::Timestamp(y)) => x == y,
        (V::Duration(x), V::Duration(y)) => x == y,
        (V::List(x), V::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| equals(a, b))
        }
        (V::Map(_) | V::Record(_), V::Map(_) | V::Record(_)) => map_like_equals(a, b),
        (V::Optional(x), V::Optional(y)) => match (x, y) {
            (None, None) => true,
            (Some(x), Some(y)) => equals(x, y),
            _ => false,
        },
        (V::Type(x), V::Type(y)) => x == y,
        _ => false,
    }
}

fn map_like_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Record(x), Value::Record(y)) => {
            x.fields.len() == y.fields.len()
                && x.fields
                    .iter()
                    .zip(&y.fields)
                    .all(|((n1, v1), (n2, v2))| n1 == n2 && equals(v1, v2))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.entries
                    .iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equals(v, w)))
        }
        (Value::Map(m), Value::Record(r)) | (Value::Record(r), Value::Map(m)) => {
            m.len() == r.fields.len()
                && r.fields
                    .iter()
                    .all(|(n, v)| m.get_str(n).is_some_and(|w| equals(v, w)))
        }
        _ => false,
    }
}

/// Orders two numbers of any numeric kinds; `None` when either is NaN. An int or a
/// uint compared with a double is converted to double, as CEL does.
pub fn compare_numbers(a: &Value, b: &Value) -> Option<Ordering> {
    use Value as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::UInt(x), V::UInt(y)) => Some(x.cmp(y)),
        (V::Double(x), V::Double(y)) => x.partial_cmp(y),
        (V::Int(x), V::UInt(y)) => Some(if *x < 0 {
            Ordering::Less
        } else {
            (*x as u64).cmp(y)
        }),
        (V::UInt(x), V::Int(y)) => Some(if *y < 0 {
            Ordering::Greater
        } else {
            x.cmp(&(*y as u64))
        }),
        (V::Int(x), V::Double(y)) => (*x as f64).partial_cmp(y),
        (V::Double(x), V::Int(y)) => x.partial_cmp(&(*y as f64)),
        (V::UInt(x), V::Double(y)) => (*x as f64).partial_cmp(y),
        (V::Double(x), V::UInt(y)) => x.partial_cmp(&(*y as f64)),
        _ => None,
    }
}

/// CEL ordering for `<`, `<=`, `>`, `>=`: `Ok(None)` for unordered numbers (NaN),
/// an error for kinds that have no order.
pub fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, EvalError> {
    use Value as V;
    Ok(match (a, b) {
        (V::Int(_) | V::UInt(_) | V::Double(_), V::Int(_) | V::UInt(_) | V::Double(_)) => {
            compare_numbers(a, b)
        }
        (V::String(x) | V::Secret(x), V::String(y) | V::Secret(y)) => Some(x.cmp(y)),
        (V::Bytes(x), V::Bytes(y)) => Some(x.cmp(y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Timestamp(x), V::Timestamp(y)) => Some(x.cmp(y)),
        (V::Duration(x), V::Duration(y)) => Some(x.cmp(y)),
        _ => return Err(EvalError::no_overload("ordering", &[a, b])),
    })
}

/// A total order for sorting (`sort_by`, `min`, `max`): like [`compare`], with NaN
/// after every other number.
pub fn sort_order(a: &Value, b: &Value) -> Result<Ordering, EvalError> {
    match compare(a, b)? {
        Some(o) => Ok(o),
        None => {
            let a_nan = matches!(a, Value::Double(d) if d.is_nan());
            let b_nan = matches!(b, Value::Double(d) if d.is_nan());
            Ok(a_nan.cmp(&b_nan))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_matches_exactly_the_values_it_is_the_key_of() {
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(1),
            Value::Int(-3),
            Value::UInt(1),
            Value::UInt(u64::MAX),
            Value::Double(1.0),
            Value::Double(1.5),
            Value::Double(f64::NAN),
            Value::Double(1.8e19),
            Value::String(Arc::from("a")),
            Value::String(Arc::from("1")),
            Value::Secret(Arc::from("a")),
            Value::list(vec![Value::Int(1)]),
        ];
        for key in values.iter().filter_map(Key::of) {
            for v in &values {
                assert_eq!(
                    key.matches(v),
                    Key::of(v).as_ref() == Some(&key),
                    "{key:?} against {v:?}"
                );
            }
        }
    }
}
