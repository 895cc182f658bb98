//! Building the HTTP request of an action: the path with each interpolation encoded as
//! one segment, the query string, and the body encodings (`json`, `form` in the
//! `brackets` or `aws_query` style, `xml`, `text`, `multipart`).

use flow_expr::{Context, EvalError, Value};
use flow_ir::expr::{ExprId, NodeKind};
use flow_ir::program::BodyKind;

use crate::eval::{self, fields, text, wire_json};

/// Everything but RFC 3986's unreserved characters is escaped.
pub fn encode_component(s: &str) -> String {
    crate::sigv4::uri_encode(s, false)
}

/// Evaluates a path expression: literal text as written, each `${...}` encoded as one
/// path segment.
pub fn path(
    program: &flow_expr::Program,
    root: ExprId,
    locals: &mut [Value],
    ctx: &dyn Context,
) -> Result<String, EvalError> {
    let parts = match program.arena().node(root).map(|n| &n.kind) {
        Some(NodeKind::Interpolate(parts)) => parts,
        _ => return program.eval(root, locals, ctx).map(|v| text(&v)),
    };
    let mut out = String::new();
    for &part in parts {
        let literal = matches!(
            program.arena().node(part).map(|n| &n.kind),
            Some(NodeKind::Const(_))
        );
        let v = program.eval(part, locals, ctx)?;
        if literal {
            eval::with_text(&v, |t| out.push_str(t));
        } else {
            eval::with_text(&v, |t| out.push_str(&encode_component(t)));
        }
    }
    Ok(out)
}

/// Query parameters of a record or map: lists repeat the parameter; nested records are
/// sent as JSON text.
pub fn query_pairs(v: &Value, out: &mut Vec<(String, String)>) {
    let Some(fs) = fields(v) else {
        return;
    };
    for (name, value) in fs {
        match &value {
            Value::Null | Value::Optional(None) => {}
            Value::List(items) => {
                for item in items.iter() {
                    out.push((name.clone(), text(item)));
                }
            }
            _ => out.push((name, text(&value))),
        }
    }
}

/// Appends encoded query pairs to a URL.
pub fn append_query(url: &mut String, pairs: &[(String, String)]) {
    for (i, (k, v)) in pairs.iter().enumerate() {
        let sep = if i == 0 && !url.contains('?') {
            '?'
        } else if url.ends_with('?') || url.ends_with('&') {
            '\0'
        } else {
            '&'
        };
        if sep != '\0' {
            url.push(sep);
        }
        url.push_str(&encode_component(k));
        url.push('=');
        url.push_str(&encode_component(v));
    }
}

/// How nested values are flattened in a form body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FormStyle {
    /// `a[b]=v`, `a[0]=v` (Stripe, Rails).
    #[default]
    Brackets,
    /// `A.B=v`, `A.member.1=v`, `A.entry.1.key=k` (AWS Query APIs).
    AwsQuery,
}

/// The `(name, value)` pairs of a form body.
pub fn form_pairs(v: &Value, style: FormStyle) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(fs) = fields(v) {
        for (name, value) in fs {
            flatten(&name, &value, style, &mut out);
        }
    }
    out
}

fn flatten(prefix: &str, v: &Value, style: FormStyle, out: &mut Vec<(String, String)>) {
    match v {
        Value::Null | Value::Optional(None) => {}
        Value::Optional(Some(inner)) => flatten(prefix, inner, style, out),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                let name = match style {
                    FormStyle::Brackets => format!("{prefix}[{i}]"),
                    FormStyle::AwsQuery => format!("{prefix}.member.{}", i + 1),
                };
                flatten(&name, item, style, out);
            }
        }
        Value::Map(m) if style == FormStyle::AwsQuery => {
            for (i, (k, val)) in m.entries.iter().enumerate() {
                out.push((format!("{prefix}.entry.{}.key", i + 1), text(k)));
                flatten(&format!("{prefix}.entry.{}.value", i + 1), val, style, out);
            }
        }
        Value::Map(_) | Value::Record(_) => {
            for (k, val) in fields(v).unwrap_or_default() {
                let name = match style {
                    FormStyle::Brackets => format!("{prefix}[{k}]"),
                    FormStyle::AwsQuery => format!("{prefix}.{k}"),
                };
                flatten(&name, &val, style, out);
            }
        }
        other => out.push((prefix.to_owned(), text(other))),
    }
}

/// Encodes form pairs (`application/x-www-form-urlencoded`).
pub fn form_encode(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn xml_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

fn xml_element(name: &str, v: &Value, out: &mut String) {
    match v {
        Value::Null | Value::Optional(None) => {}
        Value::Optional(Some(inner)) => xml_element(name, inner, out),
        Value::List(items) => {
            for item in items.iter() {
                xml_element(name, item, out);
            }
        }
        Value::Map(_) | Value::Record(_) => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            for (k, val) in fields(v).unwrap_or_default() {
                xml_element(&k, &val, out);
            }
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
        other => {
            out.push('<');
            out.push_str(name);
            out.push('>');
            xml_escape(&text(other), out);
            out.push_str("</");
            out.push_str(name);
            out.push('>');
        }
    }
}

/// An XML body: a string is the document; a record with one field is the root element.
pub fn xml(v: &Value) -> Option<String> {
    match v {
        Value::Null | Value::Optional(None) => None,
        Value::String(s) | Value::Secret(s) => Some(s.to_string()),
        _ => {
            // The root is the record's one non-null field; a null root sends no body.
            let roots: Vec<(String, Value)> = fields(v)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, val)| !val.is_null())
                .collect();
            if roots.is_empty() {
                return None;
            }
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            for (k, val) in roots {
                xml_element(&k, &val, &mut out);
            }
            Some(out)
        }
    }
}

/// A `multipart/form-data` body: one part per field; bytes are sent as a file part.
pub fn multipart(v: &Value, boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields(v).unwrap_or_default() {
        if value.is_null() {
            continue;
        }
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let name = name.replace('"', "%22");
        match &value {
            Value::Bytes(b) => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                );
                out.extend_from_slice(b);
            }
            Value::Map(_) | Value::Record(_) | Value::List(_) => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\nContent-Type: application/json\r\n\r\n").as_bytes(),
                );
                out.extend_from_slice(wire_json(&value).to_string().as_bytes());
            }
            other => {
                out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                );
                out.extend_from_slice(text(other).as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

/// An encoded body and its default content type.
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

pub fn encode_body(kind: BodyKind, v: &Value, style: FormStyle) -> Option<Encoded> {
    match kind {
        BodyKind::Json => Some(Encoded {
            bytes: serde_json::to_vec(&wire_json(v)).unwrap_or_default(),
            content_type: "application/json".into(),
        }),
        BodyKind::Form => Some(Encoded {
            bytes: form_encode(&form_pairs(v, style)).into_bytes(),
            content_type: "application/x-www-form-urlencoded".into(),
        }),
        BodyKind::Xml => xml(v).map(|s| Encoded {
            bytes: s.into_bytes(),
            content_type: "application/xml".into(),
        }),
        BodyKind::Text => Some(Encoded {
            bytes: text(v).into_bytes(),
            content_type: "text/plain; charset=utf-8".into(),
        }),
        BodyKind::Multipart => {
            let boundary = format!("flow-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
            Some(Encoded {
                bytes: multipart(v, &boundary),
                content_type: format!("multipart/form-data; boundary={boundary}"),
            })
        }
    }
}

/// Sets a dotted field (`variables.after`) in a JSON body.
pub fn set_json_path(body: &mut serde_json::Value, dotted: &str, value: serde_json::Value) {
    let mut cur = body;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        if !cur.is_object() {
            *cur = serde_json::Value::Object(serde_json::Map::new());
        }
        let serde_json::Value::Object(map) = cur else {
            return;
        };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        cur = map
            .entry(part.to_owned())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Value {
        Value::from_json_dyn(&serde_json::from_str(s).unwrap())
    }

    #[test]
    fn forms_flatten_in_both_styles() {
        let v = json(r#"{"email":"a@b.c","metadata":{"plan":"pro"},"items":[{"price":"p1"}]}"#);
        let brackets = form_encode(&form_pairs(&v, FormStyle::Brackets));
        assert_eq!(
            brackets,
            "email=a%40b.c&items%5B0%5D%5Bprice%5D=p1&metadata%5Bplan%5D=pro"
        );
        // Records (what `{ Name: k, Value: v }` builds) are dotted; maps become entries.
        let dimension = Value::Record(std::sync::Arc::new(flow_expr::Record::new(vec![
            ("Name".into(), Value::string("a")),
            ("Value".into(), Value::string("b")),
        ])));
        let v = Value::Record(std::sync::Arc::new(flow_expr::Record::new(vec![
            ("Action".into(), Value::string("SetAlarmState")),
            ("Dimensions".into(), Value::list(vec![dimension])),
            ("Attributes".into(), json(r#"{"k":"v"}"#)),
        ])));
        let pairs = form_pairs(&v, FormStyle::AwsQuery);
        assert_eq!(
            pairs,
            vec![
                ("Action".into(), "SetAlarmState".into()),
                ("Attributes.entry.1.key".into(), "k".into()),
                ("Attributes.entry.1.value".into(), "v".into()),
                ("Dimensions.member.1.Name".into(), "a".into()),
                ("Dimensions.member.1.Value".into(), "b".into()),
            ]
        );
    }

    #[test]
    fn xml_bodies_have_one_root_and_escape_text() {
        let v = json(
            r#"{"Tagging":{"TagSet":{"Tag":[{"Key":"a&b","Value":"1"},{"Key":"c","Value":null}]}}}"#,
        );
        assert_eq!(
            xml(&v).unwrap(),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Tagging><TagSet><Tag><Key>a&amp;b</Key><Value>1</Value></Tag><Tag><Key>c</Key></Tag></TagSet></Tagging>"
        );
        assert_eq!(xml(&Value::Null), None);
        assert_eq!(xml(&json(r#"{"CreateBucketConfiguration":null}"#)), None);
    }

    #[test]
    fn queries_repeat_lists_and_encode_strictly() {
        let mut pairs = Vec::new();
        query_pairs(
            &json(r#"{"statuses[]":["a","b c"],"n":3,"x":null}"#),
            &mut pairs,
        );
        let mut url = "https://h/p?fixed=1".to_owned();
        append_query(&mut url, &pairs);
        assert_eq!(
            url,
            "https://h/p?fixed=1&n=3&statuses%5B%5D=a&statuses%5B%5D=b%20c"
        );
        let mut body = serde_json::json!({"query": "q"});
        set_json_path(&mut body, "variables.after", serde_json::json!("c1"));
        assert_eq!(
            body,
            serde_json::json!({"query": "q", "variables": {"after": "c1"}})
        );
    }
}
