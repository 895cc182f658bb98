//! Fast JSON decoding straight from bytes into values (no intermediate JSON tree, no
//! serde visitor): objects become records with their keys interned (a million records
//! with the same five keys share five key strings) and their fields put in name order by
//! a permutation computed once per shape; a type is inferred from the decoded values.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use flow_ir::types::Type;

use crate::value::{Record, Value};

/// Nesting deeper than this is an error, not a stack overflow.
const MAX_DEPTH: usize = 128;

/// Why a document could not be decoded, and where (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a JSON document (RFC 8259). Objects become records (fields sorted by name; a
/// repeated key keeps its last value), integers `int` (or `uint` above the int range;
/// beyond that, and `-0`, `double`), other numbers `double`. Nesting deeper than 128
/// levels is an error, not a crash.
pub fn decode_json(bytes: &[u8]) -> Result<Value, DecodeError> {
    // JSON text is UTF-8 throughout: validating it once lets every string be sliced
    // from the input without checking it again.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = Decoder {
                pos: e.valid_up_to(),
                ..Decoder::new(bytes, "")
            };
            return Err(at.error("invalid UTF-8"));
        }
    };
    let mut d = Decoder::new(bytes, text);
    let v = d.value()?;
    d.skip_ws();
    if d.pos < bytes.len() {
        return Err(d.error("trailing characters"));
    }
    Ok(v)
}

impl<'a> Decoder<'a> {
    fn new(bytes: &'a [u8], text: &'a str) -> Decoder<'a> {
        Decoder {
            bytes,
            text,
            pos: 0,
            depth: 0,
            strings: Strings {
                recent: vec![None; RECENT_SLOTS],
                ..Strings::default()
            },
            shapes: Vec::new(),
            scratch: String::new(),
            stack: Vec::new(),
        }
    }
}

/// FxHash: the interning table hashes short keys millions of times; SipHash's
/// protection against chosen collisions buys nothing for a document decoded once.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Shared strings: object keys, and short string values (codes, tags, statuses) that
/// repeat across records.
#[derive(Default)]
struct Strings {
    map: HashMap<Box<str>, Arc<str>, BuildHasherDefault<FxHasher>>,
    /// The key last seen at each position of an object: records of one shape hit it
    /// without hashing.
    by_position: Vec<Option<Arc<str>>>,
    /// Recently shared values, by [`recent_slot`].
    recent: Vec<Option<Arc<str>>>,
    values: usize,
}

const RECENT_SLOTS: usize = 256;

fn recent_slot(s: &str) -> usize {
    let b = s.as_bytes();
    let first = b.first().copied().unwrap_or(0) as usize;
    let last = b.last().copied().unwrap_or(0) as usize;
    (b.len() * 31 + first * 7 + last * 131) % RECENT_SLOTS
}

/// String equality written out for the short strings of keys and codes, where calling
/// `memcmp` costs more than the comparison.
#[inline]
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if a.len() > 16 {
        return a == b;
    }
    a.iter().zip(b).all(|(x, y)| x == y)
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
        // A direct-mapped cache of recent values answers most lookups without hashing.
        let slot = recent_slot(s);
        if let Some(Some(k)) = self.recent.get(slot)
            && same_text(k, s)
        {
            return k.clone();
        }
        if let Some(k) = self.map.get(s) {
            let k = k.clone();
            if let Some(r) = self.recent.get_mut(slot) {
                *r = Some(k.clone());
            }
            return k;
        }
        let k: Arc<str> = Arc::from(s);
        if self.values < MAX_SHARED_VALUES {
            self.values += 1;
            self.map.insert(Box::from(s), k.clone());
        }
        k
    }

    fn key(&mut self, position: usize, s: &str) -> Arc<str> {
        if let Some(Some(k)) = self.by_position.get(position)
            && same_text(k, s)
        {
            return k.clone();
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

/// The keys of the last object decoded at one nesting depth, in arrival order, and the
/// order that sorts them: objects of one shape (rows of a table) reuse it.
#[derive(Default)]
struct Shape {
    keys: Vec<Arc<str>>,
    /// `rank[i]` is where the i-th field to arrive goes in name order.
    rank: Vec<usize>,
    /// Whether the keys arrive in name order already.
    in_order: bool,
}

struct Decoder<'a> {
    bytes: &'a [u8],
    /// The same input, known to be valid UTF-8.
    text: &'a str,
    pos: usize,
    depth: usize,
    strings: Strings,
    shapes: Vec<Shape>,
    scratch: String,
    /// Items of the lists being decoded, innermost last.
    stack: Vec<Value>,
}

/// Where a string's text is: borrowed from the input, or unescaped into the scratch
/// buffer.
enum Text {
    Input(usize, usize),
    Scratch,
}

impl<'a> Decoder<'a> {
    fn error(&self, message: &str) -> DecodeError {
        let upto = &self.bytes[..self.pos.min(self.bytes.len())];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = upto.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        DecodeError {
            message: message.to_owned(),
            line,
            column: self.pos.saturating_sub(line_start) + 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => match self.string()? {
                Text::Input(a, b) => {
                    let s = self.utf8(a, b)?;
                    Ok(Value::String(self.shared_value(s)))
                }
                Text::Scratch => {
                    let s = std::mem::take(&mut self.scratch);
                    let v = self.shared_value(&s);
                    self.scratch = s;
                    Ok(Value::String(v))
                }
            },
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected value")),
        }
    }

    fn literal(&mut self, word: &[u8], v: Value) -> Result<Value, DecodeError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(v)
        } else {
            Err(self.error("expected value"))
        }
    }

    fn enter(&mut self) -> Result<(), DecodeError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        Ok(())
    }

    fn array(&mut self) -> Result<Value, DecodeError> {
        self.enter()?;
        self.pos += 1;
        // Items gather on a stack shared by all levels, then move into a list of
        // exactly their number (no growth, no spare capacity per list).
        let base = self.stack.len();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                let item = self.value()?;
                self.stack.push(item);
                if self.separator(b']', "a list")? {
                    break;
                }
            }
        }
        self.depth -= 1;
        let items: Vec<Value> = self.stack.drain(base..).collect();
        Ok(Value::list(items))
    }

    /// After an item of a list or object: consumes `,` (returns false: more items
    /// follow) or the closing bracket (returns true).
    fn separator(&mut self, close: u8, what: &str) -> Result<bool, DecodeError> {
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(false)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(true)
            }
            None => Err(self.error(&format!("EOF while parsing {what}"))),
            Some(_) => Err(self.error(&format!("expected `,` or `{}`", close as char))),
        }
    }

    fn object(&mut self) -> Result<Value, DecodeError> {
        let mut fields: Vec<(Arc<str>, Value)> = Vec::with_capacity(self.expected_fields());
        self.enter()?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.skip_ws();
                if self.peek() != Some(b'"') {
                    return Err(self.error(if self.peek().is_none() {
                        "EOF while parsing an object"
                    } else {
                        "key must be a string"
                    }));
                }
                let text = self.string()?;
                let key = {
                    let position = fields.len();
                    match text {
                        Text::Input(a, b) => {
                            let s = self.utf8(a, b)?;
                            self.strings.key(position, s)
                        }
                        Text::Scratch => {
                            let s = std::mem::take(&mut self.scratch);
                            let k = self.strings.key(position, &s);
                            self.scratch = s;
                            k
                        }
                    }
                };
                self.skip_ws();
                if self.peek() != Some(b':') {
                    return Err(self.error("expected `:`"));
                }
                self.pos += 1;
                let value = self.value()?;
                fields.push((key, value));
                if self.separator(b'}', "an object")? {
                    break;
                }
            }
        }
        self.depth -= 1;
        let fields = self.in_name_order(fields);
        Ok(Value::Record(Arc::new(Record { fields })))
    }

    /// Puts an object's fields in name order (the last of a repeated key wins), reusing
    /// the order computed for the previous object of the same keys at this depth.
    fn in_name_order(&mut self, mut fields: Vec<(Arc<str>, Value)>) -> Vec<(Arc<str>, Value)> {
        if self.shapes.len() <= self.depth {
            self.shapes.resize_with(self.depth + 1, Shape::default);
        }
        let Some(shape) = self.shapes.get_mut(self.depth) else {
            return sort_fields(fields);
        };
        let same = shape.keys.len() == fields.len()
            && shape
                .keys
                .iter()
                .zip(&fields)
                .all(|(k, (f, _))| Arc::ptr_eq(k, f));
        if !same {
            let mut order: Vec<usize> = (0..fields.len()).collect();
            order.sort_by(|&a, &b| fields[a].0.cmp(&fields[b].0));
            let unique = order.windows(2).all(|w| fields[w[0]].0 != fields[w[1]].0);
            if !unique {
                shape.keys.clear();
                shape.rank.clear();
                return sort_fields(fields);
            }
            shape.keys = fields.iter().map(|(k, _)| k.clone()).collect();
            shape.rank = vec![0; order.len()];
            for (position, &arrival) in order.iter().enumerate() {
                if let Some(r) = shape.rank.get_mut(arrival) {
                    *r = position;
                }
            }
            shape.in_order = shape.rank.iter().enumerate().all(|(i, &r)| i == r);
        }
        if !shape.in_order {
            let n = shape.rank.len();
            let mut small = [0usize; 16];
            match small.get_mut(..n) {
                Some(rank) => {
                    rank.copy_from_slice(&shape.rank);
                    permute(&mut fields, rank);
                }
                None => permute(&mut fields, &mut shape.rank.clone()),
            }
        }
        fields
    }

    /// How many fields the next object at this depth likely has.
    fn expected_fields(&self) -> usize {
        self.shapes
            .get(self.depth)
            .map_or(8, |s| if s.keys.is_empty() { 8 } else { s.keys.len() })
    }

    /// Reads a string literal starting at the opening quote; the text stays in the input
    /// when it has no escapes.
    fn string(&mut self) -> Result<Text, DecodeError> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error("EOF while parsing a string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Text::Input(start, self.pos - 1));
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => {
                    return Err(self.error("control character in a string"));
                }
                Some(_) => self.pos += 1,
            }
        }
        // Escapes: unescape into the scratch buffer.
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        out.push_str(self.utf8(start, self.pos)?);
        loop {
            let run = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(self.utf8(run, self.pos)?);
            match self.peek() {
                None => return Err(self.error("EOF while parsing a string")),
                Some(b'"') => {
                    self.pos += 1;
                    self.scratch = out;
                    return Ok(Text::Scratch);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let Some(e) = self.peek() else {
                        return Err(self.error("EOF while parsing a string"));
                    };
                    self.pos += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            out.push(c);
                        }
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("invalid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.error("control character in a string")),
            }
        }
    }

    /// The four hex digits after `\u` (and, for a high surrogate, the `\uXXXX` of its
    /// low surrogate).
    fn unicode_escape(&mut self) -> Result<char, DecodeError> {
        let first = self.hex4()?;
        match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                let c = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                char::from_u32(c).ok_or_else(|| self.error("invalid unicode code point"))
            }
            0xDC00..=0xDFFF => Err(self.error("lone trailing surrogate in hex escape")),
            c => char::from_u32(c).ok_or_else(|| self.error("invalid unicode code point")),
        }
    }

    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let mut n = 0u32;
        for _ in 0..4 {
            let Some(d) = self.peek().and_then(|b| (b as char).to_digit(16)) else {
                return Err(self.error("invalid escape"));
            };
            n = n * 16 + d;
            self.pos += 1;
        }
        Ok(n)
    }

    /// The input between two string boundaries (quotes and escapes are ASCII, so they
    /// fall on character boundaries).
    fn utf8(&self, start: usize, end: usize) -> Result<&'a str, DecodeError> {
        let text: &'a str = self.text;
        text.get(start..end)
            .ok_or_else(|| self.error("invalid UTF-8 in a string"))
    }

    /// A string value: short ones (codes, tags, statuses) are shared.
    fn shared_value(&mut self, s: &str) -> Arc<str> {
        if s.len() <= SHORT_VALUE {
            self.strings.value(s)
        } else {
            Arc::from(s)
        }
    }

    fn number(&mut self) -> Result<Value, DecodeError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
            }
            _ => return Err(self.error("invalid number")),
        }
        let int_end = self.pos;
        let mut float = false;
        if self.peek() == Some(b'.') {
            float = true;
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            float = true;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        if !float {
            // Integers: `int`, `uint` above the int range, `double` beyond (and `-0`).
            let mut n: u64 = 0;
            let mut overflow = false;
            for &b in &self.bytes[int_start..int_end] {
                match n
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u64::from(b - b'0')))
                {
                    Some(m) => n = m,
                    None => {
                        overflow = true;
                        break;
                    }
                }
            }
            if !overflow {
                if !negative {
                    return Ok(match i64::try_from(n) {
                        Ok(i) => Value::Int(i),
                        Err(_) => Value::UInt(n),
                    });
                }
                if n != 0 && n <= i64::MIN.unsigned_abs() {
                    return Ok(Value::Int((n as i64).wrapping_neg()));
                }
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or_default();
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Double(f)),
            _ => {
                self.pos = start;
                Err(self.error("number out of range"))
            }
        }
    }
}

/// Moves each field to its rank (a permutation of the indices), in place, cycle by cycle.
fn permute(fields: &mut [(Arc<str>, Value)], rank: &mut [usize]) {
    for i in 0..rank.len() {
        while rank[i] != i {
            let r = rank[i];
            fields.swap(i, r);
            rank.swap(i, r);
        }
    }
}

/// Sorts fields by name; the last of a repeated key wins.
fn sort_fields(mut fields: Vec<(Arc<str>, Value)>) -> Vec<(Arc<str>, Value)> {
    // A stable sort keeps repeated keys in arrival order; keep the last of each run.
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Arc<str>, Value)> = Vec::with_capacity(fields.len());
    for f in fields {
        match out.last_mut() {
            Some(last) if last.0 == f.0 => *last = f,
            _ => out.push(f),
        }
    }
    out
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
