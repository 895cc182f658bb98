//! The one conversion to a declared type (`flow_expr::json::convert_with`) obeys its laws:
//! reading an answer leniently never changes what the strict conversion accepts (it
//! only accepts more), the XML reading extends the answer reading the same way, and a
//! value converted to the type inferred from its own JSON converts to itself again.

use flow_expr::Value;
use flow_expr::json::{Leniency, convert_named, convert_with, infer_type};
use proptest::prelude::*;
use serde_json::Value as Json;

fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u32>().prop_map(|u| Json::from(u as f64 + 0.5)),
        "[a-z0-9 ]{0,6}".prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec(("[a-d]{1,2}", inner), 0..5)
                .prop_map(|fields| Json::Object(fields.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn leniency_only_accepts_more(doc in json_value(), other in json_value()) {
        let value = Value::from_json_dyn(&doc);
        // The value against its own inferred type, and against another document's.
        for ty in [infer_type(&doc), infer_type(&other)] {
            let strict = convert_named(&value, &ty, "v").map(|v| v.to_json());
            let answer = convert_with(&value, &ty, "v", Leniency::Answer).map(|v| v.to_json());
            let xml = convert_with(&value, &ty, "v", Leniency::Xml).map(|v| v.to_json());
            if let Ok(strict) = &strict {
                prop_assert_eq!(answer.as_ref().ok(), Some(strict), "type {}", ty);
            }
            if let Ok(answer) = &answer {
                prop_assert_eq!(xml.as_ref().ok(), Some(answer), "type {}", ty);
            }
        }
    }

    #[test]
    fn a_converted_value_converts_to_itself(doc in json_value()) {
        let ty = infer_type(&doc);
        let value = Value::from_json_dyn(&doc);
        if let Ok(once) = convert_named(&value, &ty, "v") {
            let again = convert_named(&once, &ty, "v").map(|v| v.to_json());
            prop_assert_eq!(again.ok(), Some(once.to_json()));
        }
    }
}
