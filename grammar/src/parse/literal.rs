//! Decoding literal text: integers, durations and string/bytes escapes (CEL's rules, plus
//! `\$` for a literal dollar sign in interpolating strings).

/// Why a literal could not be decoded, with the byte range (relative to the literal) at fault.
#[derive(Debug, PartialEq)]
pub(crate) struct LiteralError {
    pub message: String,
    pub start: usize,
    pub end: usize,
}

fn error(message: impl Into<String>, start: usize, end: usize) -> LiteralError {
    LiteralError {
        message: message.into(),
        start,
        end,
    }
}

/// Parses an int literal (decimal or `0x` hex), negated when `negative`.
pub(crate) fn int(text: &str, negative: bool) -> Option<i64> {
    let magnitude = unsigned_magnitude(text)?;
    if negative {
        if magnitude == 1u128 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(magnitude).ok().map(|v| -v)
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Parses a uint literal (`42u`, `0xFFu`).
pub(crate) fn uint(text: &str) -> Option<u64> {
    u64::try_from(unsigned_magnitude(text.trim_end_matches(['u', 'U']))?).ok()
}

fn unsigned_magnitude(text: &str) -> Option<u128> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u128::from_str_radix(hex, 16).ok()
    } else {
        text.parse::<u128>().ok()
    }
}

/// Parses a duration literal such as `1h30m` into nanoseconds.
pub(crate) fn duration(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let value: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit_nanos, unit_len) = if rest.starts_with("ms") {
            (1_000_000, 2)
        } else if rest.starts_with("us") {
            (1_000, 2)
        } else if rest.starts_with("ns") {
            (1, 2)
        } else if rest.starts_with('s') {
            (1_000_000_000, 1)
        } else if rest.starts_with('m') {
            (60_000_000_000, 1)
        } else if rest.starts_with('h') {
            (3_600_000_000_000, 1)
        } else if rest.starts_with('d') {
            (86_400_000_000_000, 1)
        } else {
            return None;
        };
        rest = &rest[unit_len..];
        total = total.checked_add(value.checked_mul(unit_nanos)?)?;
    }
    Some(total)
}

/// The decoded value of a string or bytes literal.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded {
    String(String),
    Bytes(Vec<u8>),
}

/// Decodes a complete non-interpolated literal (`'x'`, `r"x"`, `b'''x'''`, ...).
pub(crate) fn string_literal(text: &str) -> Result<Decoded, LiteralError> {
    let prefix_len = text.find(['"', '\'']).unwrap_or(0);
    let prefix = &text[..prefix_len];
    let raw = prefix.contains(['r', 'R']);
    let bytes = prefix.contains(['b', 'B']);
    let quoted = &text[prefix_len..];
    let quote_len = if quoted.starts_with("\"\"\"") || quoted.starts_with("'''") {
        3
    } else {
        1
    };
    let body_start = prefix_len + quote_len;
    let body_end = text.len().saturating_sub(quote_len).max(body_start);
    let body = &text[body_start..body_end];
    let mut out = Vec::with_capacity(body.len());
    if raw {
        out.extend_from_slice(body.as_bytes());
    } else {
        unescape_into(body, bytes, &mut out).map_err(|e| LiteralError {
            start: e.start + body_start,
            end: e.end + body_start,
            ..e
        })?;
    }
    if bytes {
        Ok(Decoded::Bytes(out))
    } else {
        // Escapes in strings only produce whole code points, so this cannot fail.
        String::from_utf8(out)
            .map(Decoded::String)
            .map_err(|_| error("string is not valid UTF-8", 0, text.len()))
    }
}

/// Decodes the escapes of one text segment of an interpolated string.
pub(crate) fn string_segment(text: &str) -> Result<String, LiteralError> {
    let mut out = Vec::with_capacity(text.len());
    unescape_into(text, false, &mut out)?;
    String::from_utf8(out).map_err(|_| error("string is not valid UTF-8", 0, text.len()))
}

/// Applies CEL's escapes. In bytes literals `\x`/octal escapes are raw bytes; in strings
/// they are code points.
fn unescape_into(body: &str, bytes: bool, out: &mut Vec<u8>) -> Result<(), LiteralError> {
    let mut chars = body.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((_, e)) = chars.next() else {
            return Err(error("a string cannot end with a lone `\\`", at, at + 1));
        };
        let simple = match e {
            'a' => Some(0x07u8),
            'b' => Some(0x08),
            'f' => Some(0x0C),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0B),
            '\\' => Some(b'\\'),
            '?' => Some(b'?'),
            '"' => Some(b'"'),
            '\'' => Some(b'\''),
            '`' => Some(b'`'),
            '$' => Some(b'$'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (digits, radix, width) = match e {
            'x' | 'X' => (2, 16, 2),
            'u' => (4, 16, 4),
            // The language definition allows `\U` in string literals only.
            'U' if bytes => {
                return Err(error(
                    "`\\U` escapes are for strings; in bytes write the octets with `\\x`",
                    at,
                    at + 2,
                ));
            }
            'U' => (8, 16, 8),
            '0'..='3' => (2, 8, 3),
            _ => {
                let end = at + 1 + e.len_utf8();
                return Err(error(format!("unknown escape sequence `\\{e}`"), at, end));
            }
        };
        let mut value: u32 = if radix == 8 {
            e.to_digit(8).unwrap_or(0)
        } else {
            0
        };
        let mut end = at + 2;
        for _ in 0..digits {
            match chars.peek() {
                Some(&(i, d)) if d.is_digit(radix) => {
                    value = value * radix + d.to_digit(radix).unwrap_or(0);
                    end = i + 1;
                    chars.next();
                }
                _ => {
                    return Err(error(
                        format!("escape `\\{e}` needs {width} digits"),
                        at,
                        end,
                    ));
                }
            }
        }
        let byte_escape = matches!(e, 'x' | 'X' | '0'..='3');
        if bytes && byte_escape {
            out.push(u8::try_from(value).unwrap_or(u8::MAX));
        } else {
            match char::from_u32(value) {
                Some(ch) => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                None => {
                    return Err(error(
                        format!("escape `{}` is not a valid code point", &body[at..end]),
                        at,
                        end,
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints() {
        assert_eq!(int("9223372036854775808", true), Some(i64::MIN));
        assert_eq!(int("9223372036854775808", false), None);
        assert_eq!(int("0x1F", false), Some(31));
        assert_eq!(uint("18446744073709551615u"), Some(u64::MAX));
        assert_eq!(uint("18446744073709551616u"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(duration("250ms"), Some(250_000_000));
        assert_eq!(duration("99999999999999d"), None);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            string_literal(r"'a\nb'"),
            Ok(Decoded::String("a\nb".into()))
        );
        assert_eq!(
            string_literal(r"r'a\nb'"),
            Ok(Decoded::String(r"a\nb".into()))
        );
        assert_eq!(
            string_literal(r"b'\xff\377'"),
            Ok(Decoded::Bytes(vec![0xff, 0xff]))
        );
        assert!(string_literal(r"b'\U0001F600'").is_err());
        assert_eq!(
            string_literal(r"'\U0001F600'"),
            Ok(Decoded::String("\u{1F600}".into()))
        );
        assert_eq!(
            string_literal(r"'\xff'"),
            Ok(Decoded::String("\u{ff}".into()))
        );
        assert_eq!(
            string_literal(r#"'''a'b'''"#),
            Ok(Decoded::String("a'b".into()))
        );
        assert!(string_literal(r"'\q'").is_err());
        assert!(string_literal(r"'\uD800'").is_err());
    }
}
