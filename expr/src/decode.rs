//! Fast JSON decoding straight from bytes into values (no intermediate JSON tree):
//! objects become records with their keys interned (a million records with the same
//! five keys share five key strings), and a type is inferred from the decoded values.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use flow_compiler::types::Type;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::value::{Record, Value};

/// Decodes a JSON document. Objects become records (fields sorted by name; a repeated
/// key keeps its last value), integers `int` (or `uint` above the int range), other
/// numbers `double`. Nesting deeper than 128 levels is an error, not a crash.
pub fn decode_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let interner = RefCell::new(Strings::default());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = ValueSeed {
        interner: &interner,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// Shared strings: object keys, and short string values (codes, tags, statuses) that
/// repeat across records.
#[derive(Default)]
struct Strings {
    map: HashMap<Box<str>, Arc<str>>,
    /// The key last seen at each position of an object: records of one shape hit it
    /// without hashing.
    by_position: Vec<Option<Arc<str>>>,
    values: usize,
}

/// String values up to this length are shared (codes, tags, statuses).
const SHORT_VALUE: usize = 6;
/// At most this many distinct short values are shared.
const MAX_SHARED_VALUES: usize = 4096;
/// Upper bound on shared strings, so unique values cannot grow the table without end.
const MAX_SHARED: usize = 100_000;

impl Strings {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(k) = self.map.get(s) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(s);
        if self.map.len() < MAX_SHARED {
            self.map.insert(Box::from(s), k.clone());
        }
        k
    }

    fn value(&mut self, s: &str) -> Arc<str> {
        if let Some(k) = self.map.get(s) {
            return k.clone();
        }
        let k: Arc<str> = Arc::from(s);
        if self.values < MAX_SHARED_VALUES {
            self.values += 1;
            self.map.insert(Box::from(s), k.clone());
        }
        k
    }

    fn key(&mut self, position: usize, s: &str) -> Arc<str> {
        if let Some(Some(k)) = self.by_position.get(position) {
            if &**k == s {
                return k.clone();
            }
        }
        let k = self.get(s);
        if position < 64 {
            if self.by_position.len() <= position {
                self.by_position.resize(position + 1, None);
            }
            if let Some(slot) = self.by_position.get_mut(position) {
                *slot = Some(k.clone());
            }
        }
        k
    }
}

type Interner = RefCell<Strings>;

#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    interner: &'a Interner,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(match i64::try_from(v) {
            Ok(i) => Value::Int(i),
            Err(_) => Value::UInt(v),
        })
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        if v.len() <= SHORT_VALUE {
            return Ok(Value::String(self.interner.borrow_mut().value(v)));
        }
        Ok(Value::String(Arc::from(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(Arc::from(v)))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(v) = seq.next_element_seed(self)? {
            items.push(v);
        }
        Ok(Value::list(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields: Vec<(Arc<str>, Value)> = Vec::with_capacity(8);
        while let Some(key) = map.next_key_seed(KeySeed {
            interner: self.interner,
            position: fields.len(),
        })? {
            let value = map.next_value_seed(self)?;
            fields.push((key, value));
        }
        // Objects usually arrive with their keys sorted; otherwise sort (the last of a
        // repeated key wins).
        let sorted = fields.windows(2).all(|w| w[0].0 < w[1].0);
        if !sorted {
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            fields.dedup_by(|later, earlier| {
                if later.0 == earlier.0 {
                    std::mem::swap(later, earlier);
                    true
                } else {
                    false
                }
            });
        }
        Ok(Value::Record(Arc::new(Record { fields })))
    }
}

struct KeySeed<'a> {
    interner: &'a Interner,
    position: usize,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Arc<str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Arc<str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Arc<str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, v: &str) -> Result<Arc<str>, E> {
        Ok(self.interner.borrow_mut().key(self.position, v))
    }
}

/// The most precise type that fits a decoded value, as [`crate::json::infer_type`]
/// does for a JSON tree.
pub fn infer_value_type(v: &Value) -> Type {
    match v {
        Value::Null => Type::Null,
        Value::Bool(_) => Type::Bool,
        Value::Int(_) => Type::Int,
        Value::UInt(_) => Type::UInt,
        Value::Double(_) => Type::Double,
        Value::String(_) | Value::Secret(_) => Type::String,
        Value::Bytes(_) => Type::Bytes,
        Value::Timestamp(_) => Type::Timestamp,
        Value::Duration(_) => Type::Duration,
        Value::List(items) => {
            // Records of one shape are common: infer the first and merge only the
            // elements whose kind or shape differs.
            let mut elem: Option<Type> = None;
            for item in items.iter() {
                if let (Value::Record(r), Some(Type::Record(rt))) = (item, &elem) {
                    let same_shape = r.fields.len() == rt.fields.len()
                        && r.fields
                            .iter()
                            .zip(&rt.fields)
                            .all(|((n, v), f)| **n == *f.name && kind_fits(v, &f.ty));
                    if same_shape {
                        continue;
                    }
                }
                let t = infer_value_type(item);
                elem = Some(match elem {
                    None => t,
                    Some(prev) => crate::json::merge_types(&prev, &t),
                });
            }
            Type::list(match elem {
                None | Some(Type::Null) => Type::Dyn,
                Some(t) => t,
            })
        }
        Value::Map(m) => {
            let mut vt: Option<Type> = None;
            for (_, v) in &m.entries {
                let t = infer_value_type(v);
                vt = Some(match vt {
                    None => t,
                    Some(p) => crate::json::merge_types(&p, &t),
                });
            }
            Type::map(Type::String, vt.unwrap_or(Type::Dyn))
        }
        Value::Record(r) => Type::record(
            None,
            r.fields
                .iter()
                .map(|(n, v)| (n.to_string(), infer_value_type(v)))
                .collect(),
        ),
        Value::Optional(_) | Value::Type(_) => Type::Dyn,
    }
}

/// Whether a scalar value certainly has the (already inferred) type: containers are
/// compared by their own inference, so only scalars short-cut.
fn kind_fits(v: &Value, t: &Type) -> bool {
    match (v, t) {
        (Value::Int(_), Type::Int)
        | (Value::UInt(_), Type::UInt)
        | (Value::Double(_), Type::Double)
        | (Value::Bool(_), Type::Bool)
        | (Value::String(_), Type::String)
        | (Value::Null, Type::Optional(_) | Type::Null) => true,
        (Value::Int(_) | Value::UInt(_), Type::Double) => true,
        (Value::List(items), Type::List(elem)) => {
            !matches!(**elem, Type::Dyn) && items.iter().all(|i| kind_fits(i, elem))
        }
        (Value::List(items), Type::Optional(inner)) if matches!(**inner, Type::List(_)) => {
            items.is_empty() || kind_fits(v, inner)
        }
        (Value::Record(r), Type::Record(rt)) => {
            r.fields.len() == rt.fields.len()
                && r.fields
                    .iter()
                    .zip(&rt.fields)
                    .all(|((n, v), f)| **n == *f.name && kind_fits(v, &f.ty))
        }
        (v, Type::Optional(inner)) => kind_fits(v, inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_records_with_interned_keys_and_infers() {
        let v = decode_json(br#"[{"b": 1, "a": "x"}, {"a": "y", "b": 2.5}, {"a": "z"}]"#).unwrap();
        let t = infer_value_type(&v);
        assert_eq!(t.to_string(), "list<{ a: string, b: double? }>");
        let Value::List(items) = &v else { panic!() };
        let (Value::Record(r0), Value::Record(r1)) = (&items[0], &items[1]) else {
            panic!()
        };
        assert!(Arc::ptr_eq(&r0.fields[0].0, &r1.fields[0].0));
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(decode_json(deep.as_bytes()).is_err());
    }
}
