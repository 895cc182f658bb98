//! Checking an answer against the declared result type: fields the type does not declare
//! are dropped, a missing field is null (an error unless the type admits null), and a
//! mismatch names the field path (`result.items[3].id: expected string, found int`).
//! XML answers, which cannot tell one item from a list of one or a number from text,
//! are read leniently: a single value where a list is declared is a list of one, null
//! an empty list, and text where a number or a boolean is declared is parsed.

use std::fmt;
use std::sync::Arc;

use flow_expr::json::Path;
use flow_expr::{Map, Record, Value};
use flow_ir::types::Type;

/// A value that does not fit the declared type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Converts `v` to `ty`; `path` names `v` in errors.
pub fn conform(v: &Value, ty: &Type, xml: bool, path: &str) -> Result<Value, Mismatch> {
    conform_at(v, ty, xml, Path::Root(path))
}

fn conform_at(v: &Value, ty: &Type, xml: bool, at: Path<'_>) -> Result<Value, Mismatch> {
    let mismatch = || Mismatch {
        path: at.render(),
        message: format!("expected {ty}, found {}", describe(v)),
    };
    Ok(match (ty, v) {
        (Type::Dyn | Type::Error, _) => v.clone(),
        (_, Value::Optional(Some(inner))) => return conform_at(inner, ty, xml, at),
        (Type::Optional(_) | Type::Null, Value::Null | Value::Optional(None)) => Value::Null,
        (Type::Optional(inner), _) => conform_at(v, inner, xml, at)?,
        (Type::List(_), Value::Null) if xml => Value::list(Vec::new()),
        (Type::List(elem), Value::List(items)) => {
            if matches!(**elem, Type::Dyn) {
                v.clone()
            } else {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(conform_at(item, elem, xml, Path::Index(&at, i))?);
                }
                Value::list(out)
            }
        }
        (Type::List(elem), _) if xml => {
            Value::list(vec![conform_at(v, elem, xml, Path::Index(&at, 0))?])
        }
        (Type::Record(r), Value::Map(_) | Value::Record(_)) => {
            let mut out = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let field_at = Path::Field(&at, &f.name);
                let value = match v.get_field(&f.name) {
                    Some(x) => conform_at(x, &f.ty, xml, field_at)?,
                    None => {
                        conform_at(&Value::Null, &f.ty, xml, field_at).map_err(|_| Mismatch {
                            path: field_at.render(),
                            message: format!("missing field (expected {})", f.ty),
                        })?
                    }
                };
                out.push((Arc::from(f.name.as_str()), value));
            }
            Value::Record(Arc::new(Record { fields: out }))
        }
        (Type::Map(k, val), Value::Map(_) | Value::Record(_)) => {
            let entries: Vec<(Value, Value)> = match v {
                Value::Map(m) => m.entries.clone(),
                Value::Record(r) => r
                    .fields
                    .iter()
                    .map(|(n, x)| (Value::String(n.clone()), x.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            let mut out = Vec::with_capacity(entries.len());
            for (key, item) in entries {
                let name = crate::eval::text(&key);
                let key = conform_at(&key, k, xml, at)?;
                out.push((key, conform_at(&item, val, xml, Path::Field(&at, &name))?));
            }
            Value::Map(Arc::new(Map::new(out).map_err(|e| Mismatch {
                path: at.render(),
                message: e.message,
            })?))
        }
        (Type::Map(..), Value::Null) if xml => Value::Map(Arc::new(Map::default())),
        (Type::Int | Type::UInt | Type::Double | Type::Bool, Value::String(s)) if xml => {
            let parsed = match ty {
                Type::Int => s.trim().parse().ok().map(Value::Int),
                Type::UInt => s.trim().parse().ok().map(Value::UInt),
                Type::Double => s.trim().parse().ok().map(Value::Double),
                _ => match s.trim() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
            };
            parsed.ok_or_else(|| Mismatch {
                path: at.render(),
                message: format!("expected {ty}, found the text {s:?}"),
            })?
        }
        (Type::String, Value::Null) if xml => Value::String(Arc::from("")),
        (Type::String | Type::Secret, Value::String(_) | Value::Secret(_))
        | (Type::Bool, Value::Bool(_))
        | (Type::Int, Value::Int(_))
        | (Type::UInt, Value::UInt(_))
        | (Type::Double, Value::Double(_))
        | (Type::Bytes, Value::Bytes(_))
        | (Type::Timestamp, Value::Timestamp(_))
        | (Type::Duration, Value::Duration(_)) => v.clone(),
        _ => flow_expr::convert(v, ty).map_err(|_| mismatch())?,
    })
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Map(_) | Value::Record(_) => "an object",
        Value::List(_) => "a list",
        other => other.kind(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record type named `T` with these fields (also used by `shape`'s tests).
    pub(crate) fn rec(fields: &[(&str, Type)]) -> Type {
        Type::record(
            Some("T".into()),
            fields
                .iter()
                .map(|(n, t)| ((*n).to_owned(), t.clone()))
                .collect(),
        )
    }

    fn json(s: &str) -> Value {
        Value::from_json_dyn(&serde_json::from_str(s).unwrap())
    }

    #[test]
    fn a_mismatch_names_the_field_path() {
        let ty = Type::list(rec(&[("id", Type::String), ("n", Type::Int.clone())]));
        let v = json(r#"[{"id":"a","n":1},{"id":2,"n":1}]"#);
        let e = conform(&v, &ty, false, "result").unwrap_err();
        assert_eq!(e.to_string(), "result[1].id: expected string, found int");
        let v = json(r#"[{"n":1}]"#);
        let e = conform(&v, &ty, false, "result").unwrap_err();
        assert_eq!(
            e.to_string(),
            "result[0].id: missing field (expected string)"
        );
    }

    #[test]
    fn paths_name_fields_items_and_map_entries() {
        let ty = rec(&[("tags", Type::map(Type::String, Type::list(Type::Int)))]);
        let v = json(r#"{"tags":{"a":[1,"x"]}}"#);
        let e = conform(&v, &ty, false, "").unwrap_err();
        assert_eq!(e.path, "tags.a[1]");
        let e = conform(&v, &ty, false, "page").unwrap_err();
        assert_eq!(e.path, "page.tags.a[1]");
    }

    #[test]
    fn undeclared_fields_are_dropped_and_missing_optionals_are_null() {
        let ty = rec(&[("a", Type::optional(Type::Int)), ("b", Type::String)]);
        let v = conform(&json(r#"{"b":"x","extra":1}"#), &ty, false, "").unwrap();
        assert_eq!(v.to_json(), serde_json::json!({"a": null, "b": "x"}));
    }

    #[test]
    fn xml_reads_one_item_as_a_list_and_parses_numbers() {
        let ty = Type::list(rec(&[("Size", Type::Int), ("Ok", Type::Bool)]));
        let one = json(r#"{"Size":"12","Ok":"true"}"#);
        let v = conform(&one, &ty, true, "").unwrap();
        assert_eq!(v.to_json(), serde_json::json!([{"Size": 12, "Ok": true}]));
        assert_eq!(
            conform(&Value::Null, &ty, true, "").unwrap().to_json(),
            serde_json::json!([])
        );
        assert!(conform(&one, &ty, false, "").is_err());
    }
}
