//! The JSON decoder of `flow eval` against serde_json as the reference: every document
//! serde_json writes decodes to the same data, and arbitrary text is accepted or
//! rejected exactly as serde_json accepts or rejects it.

use flow_expr::Value;
use flow_expr::decode::decode_json;
use proptest::prelude::*;
use serde_json::Value as Json;

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Json::from),
        // Escapes, controls, non-ASCII and astral characters.
        "(\\PC|[\"\\\\\u{1}\u{1f}\u{7f}é漢😀])*".prop_map(Json::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Json::Array),
            prop::collection::vec(("[a-e]{1,3}", inner), 0..8)
                .prop_map(|fields| Json::Object(fields.into_iter().collect())),
        ]
    })
}

/// What serde_json makes of a document, in the decoder's terms: objects are records,
/// so they compare as objects whatever the key order.
fn reference(text: &str) -> Option<Json> {
    serde_json::from_str::<Json>(text).ok()
}

/// Equal data; doubles may differ in the last two bits: serde_json's default float
/// parser can be one unit off, while the decoder rounds correctly (Rust's `f64` parser).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x.to_bits().abs_diff(y.to_bits()) <= 2 && x.signum() == y.signum())
                }
                _ => false,
            }
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decodes_what_serde_json_writes(v in json_value(), pretty in any::<bool>()) {
        let text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        };
        let decoded = decode_json(text.as_bytes()).map(|d| d.to_json());
        let decoded = decoded.map_err(|e| e.to_string());
        prop_assert!(decoded.is_ok(), "{}: {:?}", text, decoded);
        let (Ok(ours), Some(theirs)) = (decoded, reference(&text)) else {
            return Err(TestCaseError::fail("serde_json rejects its own output"));
        };
        prop_assert!(same(&ours, &theirs), "{} decoded as {}, serde_json: {}", text, ours, theirs);
        prop_assert!(same(&ours, &v), "{} decoded as {}, written from {}", text, ours, v);
    }

    #[test]
    fn accepts_and_rejects_as_serde_json(text in "[ \\[\\]{}:,\"\\\\0-9eE.+\\-tfrunlsa\n\u{1}é]{0,24}") {
        let ours = decode_json(text.as_bytes());
        let theirs = reference(&text);
        prop_assert_eq!(ours.is_ok(), theirs.is_some(), "{:?}: {:?}", text, ours);
        if let (Ok(v), Some(j)) = (ours, theirs) {
            prop_assert!(same(&v.to_json(), &j), "{:?}: {} against {}", text, v.to_json(), j);
        }
    }
}

#[test]
fn numbers_take_the_narrowest_kind() {
    let v =
        decode_json(b"[1, -1, 9223372036854775808, 18446744073709551616, -0, 1.5, 2e3]").unwrap();
    let Value::List(items) = v else {
        panic!("a list")
    };
    assert!(matches!(items[0], Value::Int(1)));
    assert!(matches!(items[1], Value::Int(-1)));
    assert!(matches!(items[2], Value::UInt(9223372036854775808)));
    assert!(matches!(items[3], Value::Double(d) if d == 18446744073709551616.0));
    assert!(matches!(items[4], Value::Double(d) if d == 0.0 && d.is_sign_negative()));
    assert!(matches!(items[5], Value::Double(d) if d == 1.5));
    assert!(matches!(items[6], Value::Double(d) if d == 2000.0));
}

#[test]
fn records_of_one_shape_sort_their_fields_and_the_last_repeated_key_wins() {
    let v =
        decode_json(br#"[{"b": 1, "a": 2}, {"b": 3, "a": 4}, {"a": 5, "a": 6, "b": 7}]"#).unwrap();
    assert_eq!(
        v.to_json(),
        serde_json::json!([{ "a": 2, "b": 1 }, { "a": 4, "b": 3 }, { "a": 6, "b": 7 }])
    );
    let Value::List(items) = v else {
        panic!("a list")
    };
    let Value::Record(r) = &items[1] else {
        panic!("a record")
    };
    let names: Vec<&str> = r.fields.iter().map(|(n, _)| &**n).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn errors_say_what_and_where() {
    let e = decode_json(b"{\n  \"a\": [1, 2,]\n}").unwrap_err();
    assert_eq!((e.line, e.column), (2, 14));
    assert_eq!(e.to_string(), "expected value at line 2 column 14");
    let e = decode_json(b"\"\\ud800\"").unwrap_err();
    assert!(e.message.contains("surrogate"), "{e}");
    let e = decode_json(b"[\"\xff\"]").unwrap_err();
    assert_eq!(e.message, "invalid UTF-8");
    assert_eq!(e.column, 3);
    assert!(decode_json(b"1e400").is_err());
    assert!(decode_json(b"[1] x").is_err());
}
