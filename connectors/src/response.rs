//! Decoding answers: JSON, XML (into records and lists the way `result` expressions read
//! them) or text by content type; the API's own error message from an error body; and
//! `Retry-After`.

use std::sync::Arc;
use std::time::Duration;

use flow_expr::{Map, Value};

/// What the body was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
    Text,
    Empty,
}

pub fn format_of(content_type: Option<&str>, body: &[u8]) -> Format {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Format::Empty;
    }
    let ct = content_type.unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    // Media types compare without regard to case (RFC 9110), here without a copy.
    let is = |m: &str| mime.eq_ignore_ascii_case(m);
    let ends = |suffix: &str| {
        mime.len() >= suffix.len()
            && mime.as_bytes()[mime.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    let starts = |prefix: &str| {
        mime.len() >= prefix.len()
            && mime.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
    };
    if is("application/json") || ends("+json") || starts("application/x-amz-json") {
        Format::Json
    } else if is("application/xml") || is("text/xml") || ends("+xml") {
        Format::Xml
    } else if mime.is_empty() {
        // No content type: sniff, as several APIs omit it on small answers.
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') | Some(b'[') => Format::Json,
            Some(b'<') => Format::Xml,
            _ => Format::Text,
        }
    } else {
        Format::Text
    }
}

/// Decodes a body; a body that does not parse as its declared format is kept as text.
pub fn decode(format: Format, body: &[u8]) -> (Value, Format) {
    match format {
        Format::Empty => (Value::Null, Format::Empty),
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(body);
            match serde::de::DeserializeSeed::deserialize(DynSeed, &mut de)
                .and_then(|v| de.end().map(|()| v))
            {
                Ok(v) => (v, Format::Json),
                Err(_) => (text_value(body), Format::Text),
            }
        }
        Format::Xml => match xml(body) {
            Some(v) => (v, Format::Xml),
            None => (text_value(body), Format::Text),
        },
        Format::Text => (text_value(body), Format::Text),
    }
}

/// Decodes JSON straight into a `dyn` value (what `Value::from_json_dyn` builds from a
/// `serde_json::Value`), without the intermediate tree.
pub(crate) struct DynSeed;

impl<'de> serde::de::DeserializeSeed<'de> for DynSeed {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(DynVisitor)
    }
}

struct DynVisitor;

impl<'de> serde::de::Visitor<'de> for DynVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
        Ok(Value::Int(i))
    }

    fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
        Ok(i64::try_from(u).map_or(Value::UInt(u), Value::Int))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Double(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(Arc::from(s)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(v) = seq.next_element_seed(DynSeed)? {
            items.push(v);
        }
        Ok(Value::list(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries: Vec<(Arc<str>, Value)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let v = map.next_value_seed(DynSeed)?;
            entries.push((Arc::from(k.as_ref()), v));
        }
        Ok(Value::Map(Arc::new(Map::from_string_entries(entries))))
    }
}

fn text_value(body: &[u8]) -> Value {
    Value::String(Arc::from(String::from_utf8_lossy(body).as_ref()))
}

/// XML as a value: a record with one field, the root element; an element with children
/// is a map of them (a repeated name becomes a list), an element with only text is the
/// text, and an empty element is null. Namespaces and attributes are dropped.
pub fn xml(body: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    let doc = roxmltree::Document::parse(text).ok()?;
    let root = doc.root_element();
    let entries = vec![(Arc::from(root.tag_name().name()), element(root))];
    Some(Value::Map(Arc::new(Map::from_string_entries(entries))))
}

fn element(node: roxmltree::Node<'_, '_>) -> Value {
    let children: Vec<_> = node.children().filter(|c| c.is_element()).collect();
    if children.is_empty() {
        let t: String = node
            .children()
            .filter(|c| c.is_text())
            .filter_map(|c| c.text())
            .collect();
        return if t.is_empty() {
            Value::Null
        } else {
            Value::String(Arc::from(t.as_str()))
        };
    }
    let mut names: Vec<&str> = Vec::new();
    let mut values: Vec<Vec<Value>> = Vec::new();
    for c in children {
        let name = c.tag_name().name();
        let v = element(c);
        match names.iter().position(|n| *n == name) {
            Some(i) => {
                if let Some(list) = values.get_mut(i) {
                    list.push(v);
                }
            }
            None => {
                names.push(name);
                values.push(vec![v]);
            }
        }
    }
    let entries: Vec<(Arc<str>, Value)> = names
        .into_iter()
        .zip(values)
        .map(|(n, mut vs)| {
            let v = if vs.len() == 1 {
                vs.pop().unwrap_or(Value::Null)
            } else {
                Value::list(vs)
            };
            (Arc::from(n), v)
        })
        .collect();
    Value::Map(Arc::new(Map::from_string_entries(entries)))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get_field(p)?;
    }
    Some(cur)
}

/// The API's own message in an error body, when it has a usual shape.
pub fn error_message(body: &Value) -> Option<String> {
    if let Some(s) = body.as_str() {
        let s = s.trim();
        return (!s.is_empty()).then(|| s.chars().take(500).collect());
    }
    const PATHS: &[&[&str]] = &[
        &["error", "message"],
        &["message"],
        &["error_description"],
        &["error"],
        &["Error", "Message"],
        &["ErrorResponse", "Error", "Message"],
        &["Response", "Errors", "Error", "Message"],
        &["errorMessage"],
        &["detail"],
        &["title"],
        &["__type"],
    ];
    for p in PATHS {
        if let Some(Value::String(s)) = str_at(body, p) {
            return Some(s.to_string());
        }
    }
    // Jira's `errorMessages`, GraphQL's and JSON:API's `errors`.
    for list in ["errorMessages", "errors"] {
        if let Some(Value::List(items)) = body.get_field(list) {
            let texts: Vec<String> = items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some(s.to_string()),
                    other => ["message", "detail", "title"].iter().find_map(|k| {
                        other
                            .get_field(k)
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    }),
                })
                .collect();
            if !texts.is_empty() {
                return Some(texts.join("; "));
            }
        }
    }
    None
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// The `rel="next"` target of an RFC 8288 `Link` header.
pub fn link_next(header: &str) -> Option<String> {
    // Links are separated by commas outside `<...>`.
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let after = rest.get(start + 1..)?;
        let end = after.find('>')?;
        let target = after.get(..end)?;
        let params_all = after.get(end + 1..)?;
        let next_link = params_all.find('<').unwrap_or(params_all.len());
        let params = params_all.get(..next_link)?;
        for p in params.split(';') {
            let p = p.trim().trim_end_matches(',').trim();
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
            {
                return Some(target.to_owned());
            }
        }
        rest = params_all.get(next_link..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_becomes_records_and_lists() {
        let body = br#"<?xml version="1.0"?>
<ListTopicsResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">
  <ListTopicsResult><Topics>
    <member><TopicArn>arn:a</TopicArn></member>
    <member><TopicArn>arn:b</TopicArn></member>
  </Topics><NextToken/></ListTopicsResult>
</ListTopicsResponse>"#;
        let (v, f) = decode(format_of(Some("text/xml"), body), body);
        assert_eq!(f, Format::Xml);
        assert_eq!(
            v.to_json(),
            serde_json::json!({"ListTopicsResponse": {"ListTopicsResult": {"Topics": {"member": [{"TopicArn": "arn:a"}, {"TopicArn": "arn:b"}]}, "NextToken": null}}})
        );
    }

    #[test]
    fn json_decodes_like_from_json_dyn() {
        let text = br#"{"a":[1,-2,18446744073709551615,1.5,"x\u00e9",null,true],"b":{"c":{}}}"#;
        let (v, f) = decode(Format::Json, text);
        assert_eq!(f, Format::Json);
        let expected = Value::from_json_dyn(&serde_json::from_slice(text).unwrap());
        assert!(flow_expr::value::equals(&v, &expected));
        assert_eq!(decode(Format::Json, b"{\"a\":1} trailing").1, Format::Text);
    }

    #[test]
    fn error_messages_come_from_usual_shapes() {
        let j = |s: &str| Value::from_json_dyn(&serde_json::from_str(s).unwrap());
        assert_eq!(
            error_message(&j(r#"{"error":{"message":"No such customer"}}"#)).as_deref(),
            Some("No such customer")
        );
        assert_eq!(
            error_message(&j(
                r#"{"errorMessages":["Issue does not exist"],"errors":{}}"#
            ))
            .as_deref(),
            Some("Issue does not exist")
        );
        let (x, _) = decode(Format::Xml, b"<ErrorResponse><Error><Code>NotFound</Code><Message>Topic does not exist</Message></Error></ErrorResponse>");
        assert_eq!(error_message(&x).as_deref(), Some("Topic does not exist"));
    }

    #[test]
    fn link_headers_and_retry_after() {
        let h = r#"<https://api.github.com/repos/a/b/issues?page=2>; rel="next", <https://api.github.com/repos/a/b/issues?page=5>; rel="last""#;
        assert_eq!(
            link_next(h).as_deref(),
            Some("https://api.github.com/repos/a/b/issues?page=2")
        );
        let h = r#"<https://x/?page=1>; rel="prev", <https://x/?page=3>; rel="next""#;
        assert_eq!(link_next(h).as_deref(), Some("https://x/?page=3"));
        assert_eq!(link_next(r#"<https://x/?page=1>; rel="prev""#), None);
        assert_eq!(retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
