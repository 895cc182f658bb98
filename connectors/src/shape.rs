//! Decoding a JSON answer straight into an action's declared result type, for the common
//! action whose `result` is the answer's body: one pass over the bytes, undeclared fields
//! skipped unread, the declared field names shared, instead of building the whole body as
//! a `dyn` value and converting it (`response::decode`, then `conform`).
//!
//! The fast path takes only what the conversion would pass through unchanged; anything
//! else (a mismatch, a number of another kind, a timestamp or a map to convert) gives
//! `None`, and the driver takes the general path, which yields the same value or the
//! error message with the field path. So the two paths cannot disagree, and a test holds
//! them to it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use flow_expr::{Record, Value};
use flow_ir::types::Type;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::response::DynSeed;

/// A declared result type, prepared for decoding: record field names are built once.
#[derive(Debug)]
pub enum Shape {
    /// `dyn` (or a type that failed to check): decoded as is.
    Dyn,
    /// `list<dyn>`: decoded as is, and it must be a list.
    DynList,
    Null,
    Bool,
    Int,
    UInt,
    Double,
    /// `string`, and `secret` (an answer's text stays a string).
    String,
    Optional(Box<Shape>),
    List(Box<Shape>),
    /// Fields in the declared order (by name).
    Record {
        names: Vec<Arc<str>>,
        fields: Vec<Shape>,
    },
    /// A type this path does not decode (maps, timestamps, bytes, durations, ...).
    Other,
}

impl Shape {
    pub fn of(ty: &Type) -> Shape {
        match ty {
            Type::Dyn | Type::Error => Shape::Dyn,
            Type::Null => Shape::Null,
            Type::Bool => Shape::Bool,
            Type::Int => Shape::Int,
            Type::UInt => Shape::UInt,
            Type::Double => Shape::Double,
            Type::String | Type::Secret => Shape::String,
            // `dyn` already holds null.
            Type::Optional(inner) => match Shape::of(inner) {
                Shape::Dyn => Shape::Dyn,
                shape => Shape::Optional(Box::new(shape)),
            },
            Type::List(elem) if matches!(**elem, Type::Dyn) => Shape::DynList,
            Type::List(elem) => Shape::List(Box::new(Shape::of(elem))),
            Type::Record(r) => Shape::Record {
                names: r
                    .fields
                    .iter()
                    .map(|f| Arc::from(f.name.as_str()))
                    .collect(),
                fields: r.fields.iter().map(|f| Shape::of(&f.ty)).collect(),
            },
            _ => Shape::Other,
        }
    }

    /// Whether a missing field of this shape is null rather than an error.
    fn admits_missing(&self) -> bool {
        matches!(self, Shape::Dyn | Shape::Null | Shape::Optional(_))
    }

    /// The shape a present, non-null value must have.
    fn present(&self) -> &Shape {
        match self {
            Shape::Optional(inner) => inner.present(),
            other => other,
        }
    }
}

/// The body decoded as `shape`, or `None` when the general path must decide.
pub fn decode(shape: &Shape, body: &[u8]) -> Option<Value> {
    if matches!(shape, Shape::Other) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = ShapeSeed(shape).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// Not an error the user sees: it only sends the answer down the general path.
fn elsewhere<E: serde::de::Error>() -> E {
    E::custom("taken by the general path")
}

struct ShapeSeed<'s>(&'s Shape);

impl<'de> DeserializeSeed<'de> for ShapeSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Shape::Dyn => DynSeed.deserialize(d),
            Shape::DynList => match DynSeed.deserialize(d)? {
                list @ Value::List(_) => Ok(list),
                _ => Err(elsewhere()),
            },
            Shape::Other => Err(elsewhere()),
            shape => d.deserialize_any(ShapeVisitor(shape)),
        }
    }
}

struct ShapeVisitor<'s>(&'s Shape);

impl<'de> Visitor<'de> for ShapeVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a value of shape {:?}", self.0)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        match self.0 {
            Shape::Null | Shape::Optional(_) => Ok(Value::Null),
            _ => Err(elsewhere()),
        }
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Value, E> {
        match self.0.present() {
            Shape::Bool => Ok(Value::Bool(b)),
            _ => Err(elsewhere()),
        }
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Value, E> {
        match self.0.present() {
            Shape::Int => Ok(Value::Int(i)),
            _ => Err(elsewhere()),
        }
    }

    // A `dyn` value holds an unsigned JSON number as an int when it fits, as a uint only
    // beyond; the conversion passes each through unchanged only to its own type.
    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Value, E> {
        match (self.0.present(), i64::try_from(u)) {
            (Shape::Int, Ok(i)) => Ok(Value::Int(i)),
            (Shape::UInt, Err(_)) => Ok(Value::UInt(u)),
            _ => Err(elsewhere()),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Value, E> {
        match self.0.present() {
            Shape::Double => Ok(Value::Double(f)),
            _ => Err(elsewhere()),
        }
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Value, E> {
        match self.0.present() {
            Shape::String => Ok(Value::String(Arc::from(s))),
            _ => Err(elsewhere()),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Shape::List(elem) = self.0.present() else {
            return Err(elsewhere());
        };
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(ShapeSeed(elem))? {
            items.push(v);
        }
        Ok(Value::list(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Shape::Record { names, fields } = self.0.present() else {
            return Err(elsewhere());
        };
        let mut slots: Vec<Option<Value>> = Vec::with_capacity(names.len());
        slots.resize_with(names.len(), || None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match names.iter().position(|n| **n == *key) {
                // A repeated key: the last one counts, as in a decoded object.
                Some(i) => slots[i] = Some(map.next_value_seed(ShapeSeed(&fields[i]))?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let mut out = Vec::with_capacity(names.len());
        for ((name, shape), slot) in names.iter().zip(fields).zip(slots) {
            let value = match slot {
                Some(v) => v,
                None if shape.admits_missing() => Value::Null,
                None => return Err(elsewhere()),
            };
            out.push((Arc::clone(name), value));
        }
        Ok(Value::Record(Arc::new(Record { fields: out })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conform::conform;
    use crate::conform::tests::rec;
    use crate::response::{self, Format};

    /// Values compared by their debug form, which tells every kind of value apart (an
    /// int from a uint or a double, a record from a map).
    fn shown(v: Option<&Value>) -> Option<String> {
        v.map(|v| format!("{v:?}"))
    }

    /// What the general path makes of `body` as `ty`: the value, or `None` on a mismatch.
    fn general(ty: &Type, body: &str) -> Option<Value> {
        let (v, format) = response::decode(Format::Json, body.as_bytes());
        if format != Format::Json {
            return None;
        }
        conform(&v, ty, false, "result").ok()
    }

    fn types() -> Vec<Type> {
        let ticket = rec(&[
            ("id", Type::String),
            ("n", Type::Int),
            ("score", Type::optional(Type::Double)),
            ("tags", Type::list(Type::String)),
            ("meta", Type::Dyn),
            ("open", Type::Bool),
        ]);
        vec![
            ticket.clone(),
            Type::list(ticket.clone()),
            Type::optional(ticket),
            rec(&[("big", Type::UInt), ("when", Type::Timestamp)]),
            rec(&[("m", Type::map(Type::String, Type::Int))]),
            Type::list(Type::Dyn),
            Type::optional(Type::list(Type::Dyn)),
            Type::optional(Type::Dyn),
            Type::list(Type::Int),
            Type::Double,
            Type::Dyn,
        ]
    }

    const BODIES: &[&str] = &[
        r#"{"id":"a","n":1,"score":0.5,"tags":["x"],"meta":{"k":[1,null]},"open":true}"#,
        r#"{"id":"a","n":1,"tags":[],"meta":null,"open":false,"extra":{"deep":[1,2,{"x":3}]}}"#,
        r#"{"id":"a","n":1,"score":null,"tags":[],"open":true,"id":"b"}"#,
        r#"{"id":"a","n":1.5,"tags":[],"open":true}"#,
        r#"{"id":"a","n":-3,"score":2,"tags":[],"open":true}"#,
        r#"{"id":7,"n":1,"tags":[],"open":true}"#,
        r#"{"n":1,"tags":[],"open":true}"#,
        r#"[{"id":"a","n":1,"tags":["t"],"open":true},{"id":"b","n":2,"tags":[],"open":false}]"#,
        r#"[{"id":"a","n":1,"tags":["t"],"open":true},null]"#,
        r#"{"big":18446744073709551615,"when":"2024-01-02T03:04:05Z"}"#,
        r#"{"big":5}"#,
        r#"{"m":{"a":1,"b":2}}"#,
        r#"[1,2,3]"#,
        r#"[1,"two",null,{"x":[]}]"#,
        r#"3"#,
        r#"3.25"#,
        r#"null"#,
        r#"{"id":"a","n":1,"tags":[],"open":true} trailing"#,
    ];

    #[test]
    fn the_fast_path_gives_what_the_general_path_gives_or_steps_aside() {
        for ty in types() {
            let shape = Shape::of(&ty);
            for body in BODIES {
                if let Some(fast) = decode(&shape, body.as_bytes()) {
                    assert_eq!(
                        shown(Some(&fast)),
                        shown(general(&ty, body).as_ref()),
                        "{ty} from {body}: the fast path decoded what the general path does not"
                    );
                }
            }
        }
    }

    /// A JSON document built from `seed`, leaning towards the fields and kinds of the
    /// test types so that many documents match them, or nearly.
    fn document(seed: &mut u64, depth: u32) -> serde_json::Value {
        use serde_json::{Value as J, json};
        fn next(seed: &mut u64, n: u64) -> u64 {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (*seed >> 33) % n
        }
        match next(seed, if depth == 0 { 7 } else { 9 }) {
            0 => J::Null,
            1 => J::Bool(next(seed, 2) == 0),
            2 => json!(next(seed, 2000) as i64 - 1000),
            3 => json!((next(seed, 1000) as f64) / 8.0),
            4 => json!(["a", "b", "x"][next(seed, 3) as usize]),
            5 => json!(u64::MAX - next(seed, 3)),
            6 => json!("2024-01-02T03:04:05Z"),
            7 => {
                let n = next(seed, 4);
                J::Array((0..n).map(|_| document(seed, depth - 1)).collect())
            }
            _ => {
                let keys = [
                    "id", "n", "score", "tags", "meta", "open", "big", "m", "extra",
                ];
                let n = next(seed, 8);
                let mut object = serde_json::Map::new();
                // Often a whole ticket, which the keys below then change or add to.
                if next(seed, 2) == 0 {
                    let ticket = json!({"id": "t", "n": 1, "tags": ["a"], "open": true});
                    if let J::Object(fields) = ticket {
                        object = fields;
                    }
                }
                for _ in 0..n {
                    let key = keys[next(seed, keys.len() as u64) as usize];
                    object.insert(key.to_owned(), document(seed, depth - 1));
                }
                J::Object(object)
            }
        }
    }

    #[test]
    fn on_generated_documents_the_two_paths_agree() {
        let types = types();
        let shapes: Vec<Shape> = types.iter().map(Shape::of).collect();
        let mut seed = 7;
        let mut records_taken = 0;
        for _ in 0..3000 {
            let body = document(&mut seed, 3).to_string();
            for (ty, shape) in types.iter().zip(&shapes) {
                if let Some(fast) = decode(shape, body.as_bytes()) {
                    if matches!(shape.present(), Shape::Record { .. }) {
                        records_taken += 1;
                    }
                    assert_eq!(
                        shown(Some(&fast)),
                        shown(general(ty, &body).as_ref()),
                        "{ty} from {body}"
                    );
                }
            }
        }
        // The generator makes records that take the fast path often enough to test it.
        assert!(
            records_taken > 200,
            "only {records_taken} records took the fast path"
        );
    }

    #[test]
    fn the_common_answers_take_the_fast_path() {
        let ty = types().remove(0);
        let shape = Shape::of(&ty);
        for body in &BODIES[..3] {
            let fast = decode(&shape, body.as_bytes());
            assert!(fast.is_some(), "{body} should decode on the fast path");
            assert_eq!(shown(fast.as_ref()), shown(general(&ty, body).as_ref()));
        }
        let list = Shape::of(&Type::list(ty.clone()));
        assert!(decode(&list, BODIES[7].as_bytes()).is_some());
        // A mismatch, a missing required field, trailing text: the general path decides.
        for body in [BODIES[3], BODIES[5], BODIES[6], BODIES[17]] {
            assert!(decode(&shape, body.as_bytes()).is_none(), "{body}");
        }
    }
}
