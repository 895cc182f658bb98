//! The strings extension's `format` (printf-style clauses) and `strings.quote`.

use crate::error::EvalError;
use crate::functions::double_text;
use crate::value::Value;

fn fmt_error(message: String) -> EvalError {
    EvalError::invalid_argument(format!("error during formatting: {message}"))
}

/// Formats `items` into the clauses of `template`.
pub fn format(template: &str, items: &[Value]) -> Result<String, EvalError> {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    let mut next = 0usize;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            precision = Some(digits.parse().map_err(|_| {
                EvalError::invalid_argument("could not parse formatting clause: missing precision")
            })?);
        }
        let Some(verb) = chars.next() else {
            return Err(EvalError::invalid_argument(
                "could not parse formatting clause: unterminated clause",
            ));
        };
        if !matches!(verb, 's' | 'd' | 'f' | 'e' | 'x' | 'X' | 'o' | 'b') {
            return Err(EvalError::invalid_argument(format!(
                "could not parse formatting clause: unrecognized formatting clause \"{verb}\""
            )));
        }
        let item = items
            .get(next)
            .ok_or_else(|| EvalError::invalid_argument(format!("index {next} out of range")))?;
        next += 1;
        out.push_str(&clause(verb, precision, item)?);
    }
    Ok(out)
}

fn clause(verb: char, precision: Option<usize>, v: &Value) -> Result<String, EvalError> {
    match verb {
        's' => string_clause(v),
        'd' => match v {
            Value::Int(i) => Ok(i.to_string()),
            Value::UInt(u) => Ok(u.to_string()),
            Value::Double(d) => Ok(plain_double(*d)),
            other => Err(fmt_error(format!(
                "decimal clause can only be used on integers and doubles, was given {}",
                other.type_name()
            ))),
        },
        'f' | 'e' => {
            let d = match v {
                Value::Double(d) => *d,
                Value::Int(i) => *i as f64,
                Value::UInt(u) => *u as f64,
                other => {
                    let name = if verb == 'f' {
                        "fixed-point"
                    } else {
                        "scientific"
                    };
                    return Err(fmt_error(format!(
                        "{name} clause can only be used on doubles, was given {}",
                        other.type_name()
                    )));
                }
            };
            if !d.is_finite() {
                return Ok(double_text(d));
            }
            let p = precision.unwrap_or(6);
            Ok(if verb == 'f' {
                format!("{d:.p$}")
            } else {
                scientific(d, p)
            })
        }
        'x' | 'X' => {
            let s = match v {
                Value::Int(i) => {
                    if *i < 0 {
                        format!("-{:x}", i.unsigned_abs())
                    } else {
                        format!("{i:x}")
                    }
                }
                Value::UInt(u) => format!("{u:x}"),
                Value::String(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                Value::Bytes(b) => b.iter().map(|b| format!("{b:02x}")).collect(),
                other => {
                    return Err(fmt_error(format!(
                        "only integers, byte buffers, and strings can be formatted as hex, was given {}",
                        other.type_name()
                    )));
                }
            };
            Ok(if verb == 'X' { s.to_uppercase() } else { s })
        }
        'o' => match v {
            Value::Int(i) => Ok(if *i < 0 {
                format!("-{:o}", i.unsigned_abs())
            } else {
                format!("{i:o}")
            }),
            Value::UInt(u) => Ok(format!("{u:o}")),
            other => Err(fmt_error(format!(
                "octal clause can only be used on integers, was given {}",
                other.type_name()
            ))),
        },
        _ => match v {
            Value::Int(i) => Ok(if *i < 0 {
                format!("-{:b}", i.unsigned_abs())
            } else {
                format!("{i:b}")
            }),
            Value::UInt(u) => Ok(format!("{u:b}")),
            Value::Bool(b) => Ok(if *b { "1".into() } else { "0".into() }),
            other => Err(fmt_error(format!(
                "only integers and bools can be formatted as binary, was given {}",
                other.type_name()
            ))),
        },
    }
}

/// `%e`: mantissa with `p` digits and a signed two-digit exponent (`2.718280e+00`).
fn scientific(d: f64, p: usize) -> String {
    let s = format!("{d:.p$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(rest) => ('-', rest),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// `%s`: every value as text. Inside lists and maps each element is formatted as `%s`
/// formats it alone, so nested strings and bytes are not quoted.
fn string_clause(v: &Value) -> Result<String, EvalError> {
    Ok(match v {
        Value::String(s) => s.to_string(),
        Value::Secret(_) => return Err(fmt_error("a secret cannot be formatted".into())),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Double(d) => plain_double(*d),
        Value::Bytes(b) => lossy_utf8(b),
        Value::Null => "null".into(),
        Value::Timestamp(t) => t.to_rfc3339(),
        Value::Duration(d) => {
            // Decimal seconds of the duration's double value: its exact text, read as a
            // double (correctly rounded), written back without exponent.
            let exact = d.to_string();
            match exact.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()) {
                Some(secs) => format!("{}s", plain_double(secs)),
                None => exact,
            }
        }
        Value::Type(t) => t.to_string(),
        Value::List(items) => {
            let parts: Result<Vec<String>, EvalError> = items.iter().map(string_clause).collect();
            format!("[{}]", parts?.join(", "))
        }
        Value::Map(m) => {
            let mut parts = Vec::with_capacity(m.len());
            for (k, v) in &m.entries {
                parts.push((string_clause(k)?, string_clause(v)?));
            }
            entries_text(parts)
        }
        Value::Record(r) => {
            let mut parts = Vec::with_capacity(r.fields.len());
            for (k, v) in &r.fields {
                parts.push((k.to_string(), string_clause(v)?));
            }
            entries_text(parts)
        }
        Value::Optional(_) => {
            return Err(fmt_error(
                "string clause can only be used on strings, bools, bytes, ints, doubles, maps, lists, types, durations, and timestamps, was given optional_type".into(),
            ));
        }
    })
}

/// Map entries as `{k: v, ...}`, sorted by the formatted key.
fn entries_text(mut parts: Vec<(String, String)>) -> String {
    parts.sort();
    let body: Vec<String> = parts
        .into_iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// A double in base 10 with the fewest digits that read back as the same double, never
/// in exponent form (`1000000000000000000000`, `0.000015`, `1`); `NaN`, `Infinity`.
fn plain_double(d: f64) -> String {
    if d.is_finite() {
        // Rust's `Display` for floats is exactly this: shortest round-trip digits, positional.
        d.to_string()
    } else {
        double_text(d)
    }
}

/// Bytes as UTF-8 text, each run of invalid sequences replaced by one U+FFFD.
fn lossy_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut replaced = false;
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().is_empty() {
            out.push_str(chunk.valid());
            replaced = false;
        }
        if !chunk.invalid().is_empty() && !replaced {
            out.push(char::REPLACEMENT_CHARACTER);
            replaced = true;
        }
    }
    out
}

/// Quotes a string as a CEL double-quoted literal.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;
    use crate::value::Map;
    use std::sync::Arc;

    fn s(template: &str, items: Vec<Value>) -> String {
        format(template, &items).unwrap_or_else(|e| panic!("{template}: {e}"))
    }

    #[test]
    fn nested_strings_and_bytes_are_not_quoted() {
        let list = Value::list(vec![
            Value::string("a b"),
            Value::Bytes(Arc::from(&b"c"[..])),
        ]);
        assert_eq!(s("%s", vec![list]), "[a b, c]");
    }

    #[test]
    fn map_entries_sort_by_formatted_key() {
        let map = Map::new(vec![
            (Value::Int(10), Value::string("x")),
            (Value::Int(9), Value::string("y")),
        ])
        .unwrap();
        assert_eq!(s("%s", vec![Value::Map(Arc::new(map))]), "{10: x, 9: y}");
    }

    #[test]
    fn doubles_have_no_exponent() {
        assert_eq!(
            s("%s %s", vec![Value::Double(1e21), Value::Double(1.5e-5)]),
            "1000000000000000000000 0.000015"
        );
        assert_eq!(s("%d", vec![Value::Double(-7.0)]), "-7");
    }

    #[test]
    fn durations_print_their_double_value() {
        let d = Duration::parse("123456789.123456789s").unwrap();
        assert_eq!(s("%s", vec![Value::Duration(d)]), "123456789.12345679s");
        let d = Duration::parse("-1.5s").unwrap();
        assert_eq!(s("%s", vec![Value::Duration(d)]), "-1.5s");
    }

    #[test]
    fn adjacent_invalid_utf8_becomes_one_replacement() {
        assert_eq!(lossy_utf8(b"x\xff\xfe\xfdy"), "x\u{fffd}y");
        assert_eq!(lossy_utf8(b"\xff\xe2\x82\xac\xff"), "\u{fffd}€\u{fffd}");
        assert_eq!(lossy_utf8(b"\xe2\x82"), "\u{fffd}");
    }
}
