//! Checking an answer against the declared result type, through flow-expr's one
//! conversion: fields the type does not declare are dropped, a missing field is null
//! (an error unless the type admits null), and a mismatch names the field path
//! (`result.items[3].id: expected string, found number`). XML answers, which cannot tell
//! one item from a list of one or a number from text, are read leniently (a single value
//! where a list is declared is a list of one, null an empty list, and text where a number
//! or a boolean is declared is parsed): `flow_expr::json::Leniency`.

use std::fmt;

use flow_expr::Value;
use flow_expr::json::{Leniency, convert_with};
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

/// Converts `v` to `ty`; `path` names `v` in errors. This is flow-expr's one conversion
/// to a declared type (`flow_expr::json::convert_with`) read as an answer is read.
pub fn conform(v: &Value, ty: &Type, xml: bool, path: &str) -> Result<Value, Mismatch> {
    let leniency = if xml { Leniency::Xml } else { Leniency::Answer };
    convert_with(v, ty, path, leniency).map_err(|e| Mismatch {
        path: e.path,
        message: e.message,
    })
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
        assert_eq!(e.to_string(), "result[1].id: expected string, found number");
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
