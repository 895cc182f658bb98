//! The builtin function catalogue: every function and operator with its signatures,
//! its documentation and runnable examples, in one place. The checker resolves calls
//! against these signatures; `flow-expr` runs every example as a test; the function
//! reference in `docs/expressions.md` is written from this table.

use std::collections::HashMap;
use std::sync::OnceLock;

use flow_ir::expr::Overload;
use flow_ir::types::Type;

/// One builtin function (or operator) and all its overloads.
#[derive(Debug)]
pub struct Function {
    pub overload: Overload,
    /// Signatures in the form `string.startsWith(string) -> bool` (receiver style) or
    /// `size(list<T>) -> int` (global style). Upper-case single letters are type
    /// parameters, and `O` is one that only an orderable type binds (a number, a string,
    /// bytes, a bool, a timestamp, a duration, or `dyn`); `num` is any of `int`, `uint`,
    /// `double`; `dyn` is a value whose type is known only when it runs (`list<dyn>` takes
    /// a `list<dyn>`, not a `list<string>`); a trailing `...` makes the last parameter
    /// variadic. Operators are named as in CEL (`_+_`, `-_`, `!_`).
    pub signatures: &'static [&'static str],
    pub doc: &'static str,
    pub examples: &'static [Example],
}

/// A runnable example: `expr` evaluates to the same value as `result`, or, when
/// `result` starts with `error:`, fails with a message containing the rest.
#[derive(Debug)]
pub struct Example {
    pub expr: &'static str,
    pub result: &'static str,
}

const fn ex(expr: &'static str, result: &'static str) -> Example {
    Example { expr, result }
}

/// A type in a signature: a [`Type`] pattern with type parameters.
#[derive(Clone, Debug, PartialEq)]
pub enum Sig {
    Exact(Type),
    /// `int`, `uint` or `double`.
    Num,
    Param(char),
    List(Box<Sig>),
    Map(Box<Sig>, Box<Sig>),
    CelOptional(Box<Sig>),
    TypeOf(Box<Sig>),
}

/// A parsed signature.
#[derive(Clone, Debug, PartialEq)]
pub struct Signature {
    pub name: String,
    pub receiver: bool,
    /// For receiver-style signatures the receiver is `params[0]`.
    pub params: Vec<Sig>,
    pub variadic: bool,
    pub result: Sig,
    pub overload: Overload,
}

/// The catalogue's functions, in reference order.
pub fn functions() -> &'static [Function] {
    FUNCTIONS
}

/// All signatures with a given name and call style, in catalogue order.
pub fn signatures(name: &str, receiver: bool) -> &'static [Signature] {
    let index = index();
    index
        .get(&(name.to_string(), receiver))
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Whether any function has this name (in either call style).
pub fn is_function_name(name: &str) -> bool {
    let index = index();
    index.contains_key(&(name.to_string(), true)) || index.contains_key(&(name.to_string(), false))
}

/// Every callable function name, for suggestions.
pub fn function_names() -> Vec<&'static str> {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            let mut names: Vec<&'static str> = Vec::new();
            for f in FUNCTIONS {
                for s in f.signatures {
                    if let Some(name) = signature_name(s)
                        && !name.starts_with('_')
                        && !name.starts_with('@')
                        && !names.contains(&name)
                    {
                        names.push(name);
                    }
                }
            }
            names.extend(MACRO_NAMES);
            names
        })
        .clone()
}

/// The macros (expanded by the checker rather than called).
pub const MACRO_NAMES: &[&str] = &[
    "has",
    "all",
    "exists",
    "exists_one",
    "existsOne",
    "map",
    "filter",
    "transformList",
    "transformMap",
    "optMap",
    "optFlatMap",
    "sort_by",
    "group_by",
];

fn signature_name(sig: &'static str) -> Option<&'static str> {
    let open = sig.find('(')?;
    let head = &sig[..open];
    Some(match head.rfind('.') {
        Some(dot) if parse_type(&head[..dot]).is_some_and(|(_, rest)| rest.is_empty()) => {
            &head[dot + 1..]
        }
        _ => head,
    })
}

type Index = HashMap<(String, bool), Vec<Signature>>;

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map: Index = HashMap::new();
        for f in FUNCTIONS {
            for text in f.signatures {
                if let Some(sig) = parse_signature(text, f.overload) {
                    map.entry((sig.name.clone(), sig.receiver))
                        .or_default()
                        .push(sig);
                }
            }
        }
        map
    })
}

/// Parses a signature string; `None` when it is malformed (a test checks that every
/// catalogue signature parses).
pub fn parse_signature(text: &str, overload: Overload) -> Option<Signature> {
    let text = text.trim();
    let open = text.find('(')?;
    let head = &text[..open];
    let mut params = Vec::new();
    let (name, receiver) = match head.rfind('.') {
        Some(dot) => match parse_type(&head[..dot]) {
            Some((recv, rest)) if rest.is_empty() => {
                params.push(recv);
                (head[dot + 1..].to_string(), true)
            }
            _ => (head.to_string(), false),
        },
        None => (head.to_string(), false),
    };
    let mut rest = text[open + 1..].trim_start();
    let mut variadic = false;
    if let Some(r) = rest.strip_prefix(')') {
        rest = r;
    } else {
        loop {
            let (ty, r) = parse_type(rest)?;
            params.push(ty);
            let mut r = r.trim_start();
            if let Some(after) = r.strip_prefix("...") {
                variadic = true;
                r = after.trim_start();
            }
            if let Some(after) = r.strip_prefix(',') {
                rest = after.trim_start();
            } else if let Some(after) = r.strip_prefix(')') {
                rest = after;
                break;
            } else {
                return None;
            }
        }
    }
    let rest = rest.trim_start().strip_prefix("->")?;
    let (result, tail) = parse_type(rest.trim_start())?;
    if !tail.trim().is_empty() {
        return None;
    }
    Some(Signature {
        name,
        receiver,
        params,
        variadic,
        result,
        overload,
    })
}

fn parse_type(text: &str) -> Option<(Sig, &str)> {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (word, rest) = text.split_at(end);
    fn generic(rest: &str, n: usize) -> Option<(Vec<Sig>, &str)> {
        let mut rest = rest.trim_start().strip_prefix('<')?;
        let mut args = Vec::new();
        for i in 0..n {
            let (t, r) = parse_type(rest)?;
            args.push(t);
            let r = r.trim_start();
            rest = if i + 1 < n {
                r.strip_prefix(',')?
            } else {
                r.strip_prefix('>')?
            };
        }
        Some((args, rest))
    }
    fn one(rest: &str, f: fn(Box<Sig>) -> Sig) -> Option<(Sig, &str)> {
        let (mut args, rest) = generic(rest, 1)?;
        Some((f(Box::new(args.pop()?)), rest))
    }
    match word {
        "list" => one(rest, Sig::List),
        "optional" => one(rest, Sig::CelOptional),
        "type" if rest.trim_start().starts_with('<') => one(rest, Sig::TypeOf),
        "map" => {
            let (mut args, rest) = generic(rest, 2)?;
            let v = args.pop()?;
            let k = args.pop()?;
            Some((Sig::Map(Box::new(k), Box::new(v)), rest))
        }
        "num" => Some((Sig::Num, rest)),
        "type" => Some((Sig::TypeOf(Box::new(Sig::Exact(Type::Dyn))), rest)),
        w if w.len() == 1 && w.chars().all(|c| c.is_ascii_uppercase()) => {
            Some((Sig::Param(w.chars().next()?), rest))
        }
        w => flow_ir::types::builtin_type(w).map(|t| (Sig::Exact(t), rest)),
    }
}

macro_rules! functions {
    ($( $overload:ident [$($sig:literal),* $(,)?] $doc:literal { $($e:literal => $r:literal),* $(,)? } )*) => {
        const FUNCTIONS: &[Function] = &[
            $( Function {
                overload: Overload::$overload,
                signatures: &[$($sig),*],
                doc: $doc,
                examples: &[$(ex($e, $r)),*],
            } ),*
        ];
    };
}

functions! {
    Not ["!_(bool) -> bool"] "Logical negation." { "!false" => "true" }
    Neg ["-_(int) -> int", "-_(double) -> double"]
        "Arithmetic negation; negating the smallest int overflows."
        { "-(5)" => "-5", "-(2.5)" => "-2.5", "-(-9223372036854775807 - 1)" => "error: overflow" }
    Add [
        "_+_(int, int) -> int", "_+_(uint, uint) -> uint", "_+_(double, double) -> double",
        "_+_(string, string) -> string", "_+_(bytes, bytes) -> bytes", "_+_(list<A>, list<A>) -> list<A>",
        "_+_(timestamp, duration) -> timestamp", "_+_(duration, timestamp) -> timestamp",
        "_+_(duration, duration) -> duration",
    ]
        "Addition, concatenation of strings, bytes and lists, and timestamp/duration arithmetic. Integer overflow is an error."
        { "1 + 2" => "3", "'ab' + 'c'" => "'abc'", "[1] + [2]" => "[1, 2]", "9223372036854775807 + 1" => "error: overflow",
          "timestamp('2024-01-01T00:00:00Z') + duration('1h')" => "timestamp('2024-01-01T01:00:00Z')" }
    Sub [
        "_-_(int, int) -> int", "_-_(uint, uint) -> uint", "_-_(double, double) -> double",
        "_-_(timestamp, timestamp) -> duration", "_-_(timestamp, duration) -> timestamp",
        "_-_(duration, duration) -> duration",
    ]
        "Subtraction; integer overflow (including `0u - 1u`) is an error."
        { "5 - 7" => "-2", "0u - 1u" => "error: overflow", "duration('1h') - duration('30m')" => "duration('30m')" }
    Mul ["_*_(int, int) -> int", "_*_(uint, uint) -> uint", "_*_(double, double) -> double"]
        "Multiplication; integer overflow is an error."
        { "6 * 7" => "42", "5000000000 * 5000000000" => "error: overflow" }
    Div ["_/_(int, int) -> int", "_/_(uint, uint) -> uint", "_/_(double, double) -> double"]
        "Division. Integer division truncates toward zero; integer division by zero is an error; double division follows IEEE 754."
        { "7 / 2" => "3", "-7 / 2" => "-3", "1 / 0" => "error: division by zero", "1.0 / 0.0 > 1e308" => "true" }
    Rem ["_%_(int, int) -> int", "_%_(uint, uint) -> uint"]
        "Remainder, with the sign of the dividend; modulus by zero is an error."
        { "7 % 3" => "1", "-7 % 3" => "-1", "1 % 0" => "error: modulus by zero" }
    Eq ["_==_(A, A) -> bool"]
        "Equality. Numbers compare by value across int, uint and double; lists and maps compare element-wise; NaN is not equal to itself."
        { "1 == 1" => "true", "dyn(1) == 1.0" => "true", "[1, 2] == [1, 2]" => "true" }
    Ne ["_!=_(A, A) -> bool"] "Inequality: the negation of `==`." { "1 != 2" => "true" }
    Lt [
        "_<_(int, int) -> bool", "_<_(uint, uint) -> bool", "_<_(double, double) -> bool",
        "_<_(int, uint) -> bool", "_<_(int, double) -> bool", "_<_(uint, int) -> bool",
        "_<_(uint, double) -> bool", "_<_(double, int) -> bool", "_<_(double, uint) -> bool",
        "_<_(string, string) -> bool", "_<_(bytes, bytes) -> bool", "_<_(bool, bool) -> bool",
        "_<_(timestamp, timestamp) -> bool", "_<_(duration, duration) -> bool",
    ]
        "Ordering. Numbers compare by value across int, uint and double; strings by code point; bytes bytewise; false < true."
        { "1 < 2u" => "true", "'a' < 'b'" => "true", "2.5 < 2" => "false" }
    Le [
        "_<=_(int, int) -> bool", "_<=_(uint, uint) -> bool", "_<=_(double, double) -> bool",
        "_<=_(int, uint) -> bool", "_<=_(int, double) -> bool", "_<=_(uint, int) -> bool",
        "_<=_(uint, double) -> bool", "_<=_(double, int) -> bool", "_<=_(double, uint) -> bool",
        "_<=_(string, string) -> bool", "_<=_(bytes, bytes) -> bool", "_<=_(bool, bool) -> bool",
        "_<=_(timestamp, timestamp) -> bool", "_<=_(duration, duration) -> bool",
    ]
        "Ordering: less than or equal." { "2 <= 2" => "true" }
    Gt [
        "_>_(int, int) -> bool", "_>_(uint, uint) -> bool", "_>_(double, double) -> bool",
        "_>_(int, uint) -> bool", "_>_(int, double) -> bool", "_>_(uint, int) -> bool",
        "_>_(uint, double) -> bool", "_>_(double, int) -> bool", "_>_(double, uint) -> bool",
        "_>_(string, string) -> bool", "_>_(bytes, bytes) -> bool", "_>_(bool, bool) -> bool",
        "_>_(timestamp, timestamp) -> bool", "_>_(duration, duration) -> bool",
    ]
        "Ordering: greater than." { "3 > 2" => "true" }
    Ge [
        "_>=_(int, int) -> bool", "_>=_(uint, uint) -> bool", "_>=_(double, double) -> bool",
        "_>=_(int, uint) -> bool", "_>=_(int, double) -> bool", "_>=_(uint, int) -> bool",
        "_>=_(uint, double) -> bool", "_>=_(double, int) -> bool", "_>=_(double, uint) -> bool",
        "_>=_(string, string) -> bool", "_>=_(bytes, bytes) -> bool", "_>=_(bool, bool) -> bool",
        "_>=_(timestamp, timestamp) -> bool", "_>=_(duration, duration) -> bool",
    ]
        "Ordering: greater than or equal." { "3 >= 3" => "true" }
    In ["@in(A, list<A>) -> bool", "@in(A, map<A, B>) -> bool"]
        "Membership: an element of a list, or a key of a map."
        { "2 in [1, 2, 3]" => "true", "'a' in {'a': 1}" => "true" }

    ToInt ["int(int) -> int", "int(uint) -> int", "int(double) -> int", "int(string) -> int", "int(timestamp) -> int", "int(duration) -> int"]
        "Converts to int: doubles truncate toward zero (out of range is an error), strings are parsed, timestamps give Unix seconds, durations nanoseconds."
        { "int(2.9)" => "2", "int('42')" => "42", "int(1e20)" => "error: range", "int(timestamp('1970-01-01T00:01:00Z'))" => "60" }
    ToUInt ["uint(uint) -> uint", "uint(int) -> uint", "uint(double) -> uint", "uint(string) -> uint"]
        "Converts to uint; negative and out-of-range values are errors."
        { "uint(5)" => "5u", "uint(-1)" => "error: range" }
    ToDouble ["double(double) -> double", "double(int) -> double", "double(uint) -> double", "double(string) -> double"]
        "Converts to double; strings are parsed (`'NaN'`, `'Infinity'` accepted)."
        { "double(3)" => "3.0", "double('2.5')" => "2.5" }
    ToString [
        "string(string) -> string", "string(int) -> string", "string(uint) -> string", "string(double) -> string",
        "string(bool) -> string", "string(bytes) -> string", "string(timestamp) -> string", "string(duration) -> string",
    ]
        "Converts to string. Bytes must be valid UTF-8; timestamps print as RFC 3339, durations as seconds (`90s`)."
        { "string(12)" => "'12'", "string(b'\\xff')" => "error: invalid UTF-8", "string(duration('1m30s'))" => "'90s'" }
    ToBytes ["bytes(bytes) -> bytes", "bytes(string) -> bytes"] "Converts a string to its UTF-8 bytes." { "bytes('ab')" => "b'ab'" }
    ToBool ["bool(bool) -> bool", "bool(string) -> bool"]
        "Converts to bool; accepts `true`, `TRUE`, `True`, `t`, `1` and the false forms."
        { "bool('true')" => "true", "bool('yes')" => "error: conversion" }
    ToTimestamp ["timestamp(timestamp) -> timestamp", "timestamp(string) -> timestamp", "timestamp(int) -> timestamp"]
        "Parses an RFC 3339 timestamp, or converts Unix seconds. The range is years 1 to 9999."
        { "timestamp('2024-05-01T10:00:00Z') < timestamp('2024-05-02T00:00:00Z')" => "true", "timestamp(0)" => "timestamp('1970-01-01T00:00:00Z')" }
    ToDuration ["duration(duration) -> duration", "duration(string) -> duration", "duration(int) -> duration"]
        "Parses a duration (`1h30m`, `1.5s`, `-20ms`), or converts nanoseconds. The range is ±10000 years."
        { "duration('1h30m') == 90m" => "true" }
    ToDyn ["dyn(A) -> dyn"] "Erases the static type: the value is checked only at run time." { "dyn(1) == 1.0" => "true" }
    TypeOf ["type(A) -> type<A>"] "The type of a value, itself a value." { "type(1) == int" => "true", "type('a') == string" => "true" }
    Stringify ["@string(A) -> string"] "Renders any value as text (string interpolation)." { "\"n=${1}\"" => "'n=1'" }
    Size [
        "size(string) -> int", "size(bytes) -> int", "size(list<A>) -> int", "size(map<A, B>) -> int",
        "string.size() -> int", "bytes.size() -> int", "list<A>.size() -> int", "map<A, B>.size() -> int",
    ]
        "The number of code points of a string, bytes of bytes, elements of a list or entries of a map."
        { "size('héllo')" => "5", "[1, 2].size()" => "2" }

    Contains ["string.contains(string) -> bool"] "Whether the string contains the substring." { "'hello'.contains('ell')" => "true" }
    StartsWith ["string.startsWith(string) -> bool"] "Whether the string starts with the prefix." { "'/groups/a'.startsWith('/groups/')" => "true" }
    EndsWith ["string.endsWith(string) -> bool"] "Whether the string ends with the suffix." { "'a.json'.endsWith('.json')" => "true" }
    Matches ["string.matches(string) -> bool", "matches(string, string) -> bool"]
        "Whether the string contains a match of the RE2 regular expression (anchor it with `^...$` to match the whole string)."
        { "'hubba'.matches('ubb')" => "true", "'abc'.matches('^b')" => "false" }
    CharAt ["string.charAt(int) -> string"] "The code point at an index (the empty string at the end)." { "'abc'.charAt(1)" => "'b'", "'abc'.charAt(3)" => "''" }
    IndexOf ["string.indexOf(string) -> int", "string.indexOf(string, int) -> int"]
        "The code-point index of the first occurrence of a substring at or after an index, or -1."
        { "'hello'.indexOf('l')" => "2", "'hello'.indexOf('z')" => "-1" }
    LastIndexOf ["string.lastIndexOf(string) -> int", "string.lastIndexOf(string, int) -> int"]
        "The code-point index of the last occurrence of a substring at or before an index, or -1."
        { "'hello'.lastIndexOf('l')" => "3" }
    LowerAscii ["string.lowerAscii() -> string"] "ASCII letters to lower case; others unchanged." { "'ABC é'.lowerAscii()" => "'abc é'" }
    UpperAscii ["string.upperAscii() -> string"] "ASCII letters to upper case; others unchanged." { "'abc'.upperAscii()" => "'ABC'" }
    Replace ["string.replace(string, string) -> string", "string.replace(string, string, int) -> string"]
        "Replaces occurrences of a substring (at most n when n is given and not negative)."
        { "'aaa'.replace('a', 'b', 2)" => "'bba'" }
    Split ["string.split(string) -> list<string>", "string.split(string, int) -> list<string>"]
        "Splits on a separator into at most n parts when n is given (0 gives an empty list, negative no limit)."
        { "'a,b,c'.split(',')" => "['a', 'b', 'c']", "'a,b,c'.split(',', 2)" => "['a', 'b,c']" }
    Substring ["string.substring(int) -> string", "string.substring(int, int) -> string"]
        "The code points from a start index up to an end index (exclusive); out-of-range indexes are errors."
        { "'tacocat'.substring(4)" => "'cat'", "'abc'.substring(1, 9)" => "error: index out of range" }
    Trim ["string.trim() -> string"] "Removes leading and trailing Unicode white space." { "'  a  '.trim()" => "'a'" }
    Join ["list<string>.join() -> string", "list<string>.join(string) -> string"]
        "Concatenates a list of strings, with a separator when given."
        { "['a', 'b'].join('-')" => "'a-b'" }
    Format ["string.format(list<A>) -> string"]
        "printf-style formatting: `%s`, `%d`, `%f`, `%.Nf`, `%e`, `%x`, `%X`, `%o`, `%b`, `%%`. `%s` writes a list as `[a, b]` and a map as `{k: v}` sorted by key, with the strings inside unquoted; `%s` and `%d` write doubles without an exponent."
        { "'%s has %d items'.format(['cart', 3])" => "'cart has 3 items'",
          "'%s and %s'.format([['a', 1.0], {'k': duration('90s')}])" => "'[a, 1] and {k: 90s}'" }
    ParseJson ["string.parseJson() -> dyn"]
        "Decodes JSON text into a value (an error when the text is not JSON); Slack sends interactive payloads as JSON inside a form field."
        { "'{\"a\": [1, 2]}'.parseJson().a[1]" => "2", "'{'.parseJson()" => "error: not JSON" }
    Quote ["strings.quote(string) -> string"] "Quotes a string as a CEL string literal, escaping as needed." { "strings.quote('a\"b')" => "'\"a\\\\\"b\"'" }
    Reverse ["string.reverse() -> string", "list<A>.reverse() -> list<A>"] "The code points (or elements) in reverse order." { "'abc'.reverse()" => "'cba'", "[1, 2].reverse()" => "[2, 1]" }

    GetFullYear ["timestamp.getFullYear() -> int", "timestamp.getFullYear(string) -> int"]
        "The year, in UTC or the given time zone (an IANA name or an offset like `+05:30`)."
        { "timestamp('2009-02-13T23:31:30Z').getFullYear()" => "2009" }
    GetMonth ["timestamp.getMonth() -> int", "timestamp.getMonth(string) -> int"] "The month, from 0 (January)." { "timestamp('2009-02-13T23:31:30Z').getMonth()" => "1" }
    GetDayOfYear ["timestamp.getDayOfYear() -> int", "timestamp.getDayOfYear(string) -> int"] "The day of the year, from 0." { "timestamp('2009-02-13T23:31:30Z').getDayOfYear()" => "43" }
    GetDayOfMonth ["timestamp.getDayOfMonth() -> int", "timestamp.getDayOfMonth(string) -> int"] "The day of the month, from 0." { "timestamp('2009-02-13T23:31:30Z').getDayOfMonth()" => "12" }
    GetDate ["timestamp.getDate() -> int", "timestamp.getDate(string) -> int"] "The day of the month, from 1." { "timestamp('2009-02-13T23:31:30Z').getDate()" => "13" }
    GetDayOfWeek ["timestamp.getDayOfWeek() -> int", "timestamp.getDayOfWeek(string) -> int"] "The day of the week, from 0 (Sunday)." { "timestamp('2009-02-13T23:31:30Z').getDayOfWeek()" => "5" }
    GetHours ["timestamp.getHours() -> int", "timestamp.getHours(string) -> int", "duration.getHours() -> int"]
        "The hour of a timestamp, or a duration's whole hours." { "timestamp('2009-02-13T23:31:30Z').getHours('+01:00')" => "0", "duration('3h5m').getHours()" => "3" }
    GetMinutes ["timestamp.getMinutes() -> int", "timestamp.getMinutes(string) -> int", "duration.getMinutes() -> int"]
        "The minute of a timestamp, or a duration's whole minutes." { "duration('1h5m').getMinutes()" => "65" }
    GetSeconds ["timestamp.getSeconds() -> int", "timestamp.getSeconds(string) -> int", "duration.getSeconds() -> int"]
        "The second of a timestamp, or a duration's whole seconds." { "timestamp('2009-02-13T23:31:30Z').getSeconds()" => "30" }
    GetMilliseconds ["timestamp.getMilliseconds() -> int", "timestamp.getMilliseconds(string) -> int", "duration.getMilliseconds() -> int"]
        "The millisecond within the second." { "duration('1.5s').getMilliseconds()" => "500" }

    Greatest [
        "math.greatest(int...) -> int", "math.greatest(uint...) -> uint", "math.greatest(double...) -> double",
        "math.greatest(list<int>) -> int", "math.greatest(list<uint>) -> uint", "math.greatest(list<double>) -> double",
        "math.greatest(num...) -> dyn", "math.greatest(list<dyn>) -> dyn",
    ]
        "The greatest of its numeric arguments (or of a list), compared across int, uint and double."
        { "math.greatest(1, 5, 3)" => "5", "math.greatest([1.5, 0.5])" => "1.5" }
    Least [
        "math.least(int...) -> int", "math.least(uint...) -> uint", "math.least(double...) -> double",
        "math.least(list<int>) -> int", "math.least(list<uint>) -> uint", "math.least(list<double>) -> double",
        "math.least(num...) -> dyn", "math.least(list<dyn>) -> dyn",
    ]
        "The least of its numeric arguments (or of a list)." { "math.least(1, -5, 3)" => "-5" }
    Ceil ["math.ceil(double) -> double"] "Rounds up." { "math.ceil(1.2)" => "2.0" }
    Floor ["math.floor(double) -> double"] "Rounds down." { "math.floor(-1.2)" => "-2.0" }
    Round ["math.round(double) -> double"] "Rounds to the nearest integer, halves away from zero." { "math.round(2.5)" => "3.0" }
    Trunc ["math.trunc(double) -> double"] "Rounds toward zero." { "math.trunc(-1.7)" => "-1.0" }
    Abs ["math.abs(int) -> int", "math.abs(uint) -> uint", "math.abs(double) -> double"]
        "The absolute value; the smallest int overflows." { "math.abs(-3)" => "3" }
    Sign ["math.sign(int) -> int", "math.sign(uint) -> uint", "math.sign(double) -> double"] "-1, 0 or 1 by sign." { "math.sign(-4.5)" => "-1.0" }
    IsNaN ["math.isNaN(double) -> bool"] "Whether the double is NaN." { "math.isNaN(0.0 / 0.0)" => "true" }
    IsInf ["math.isInf(double) -> bool"] "Whether the double is infinite." { "math.isInf(1.0 / 0.0)" => "true" }
    IsFinite ["math.isFinite(double) -> bool"] "Whether the double is neither NaN nor infinite." { "math.isFinite(1.0)" => "true" }
    BitAnd ["math.bitAnd(int, int) -> int", "math.bitAnd(uint, uint) -> uint"] "Bitwise and." { "math.bitAnd(3, 5)" => "1" }
    BitOr ["math.bitOr(int, int) -> int", "math.bitOr(uint, uint) -> uint"] "Bitwise or." { "math.bitOr(3, 5)" => "7" }
    BitXor ["math.bitXor(int, int) -> int", "math.bitXor(uint, uint) -> uint"] "Bitwise exclusive or." { "math.bitXor(3, 5)" => "6" }
    BitNot ["math.bitNot(int) -> int", "math.bitNot(uint) -> uint"] "Bitwise complement." { "math.bitNot(0)" => "-1" }
    BitShiftLeft ["math.bitShiftLeft(int, int) -> int", "math.bitShiftLeft(uint, int) -> uint"]
        "Shifts left; shifts of 64 or more give 0; a negative shift is an error." { "math.bitShiftLeft(1, 4)" => "16" }
    BitShiftRight ["math.bitShiftRight(int, int) -> int", "math.bitShiftRight(uint, int) -> uint"]
        "Logical shift right (zero-filling, also for ints)." { "math.bitShiftRight(16, 2)" => "4" }

    OptionalOf ["optional.of(A) -> optional<A>"] "An optional holding the value." { "optional.of(1).value()" => "1" }
    OptionalNone ["optional.none() -> optional<A>"] "The empty optional." { "optional.none().hasValue()" => "false" }
    OptionalOfNonZeroValue ["optional.ofNonZeroValue(A) -> optional<A>"]
        "An optional that is empty when the value is its type's zero value (0, '', [], {}, false, null)."
        { "optional.ofNonZeroValue('').hasValue()" => "false" }
    HasValue ["optional<A>.hasValue() -> bool"] "Whether the optional holds a value." { "optional.of(0).hasValue()" => "true" }
    OptionalValue ["optional<A>.value() -> A"] "The optional's value; an error when it is empty." { "optional.none().value()" => "error: optional.none" }
    OrValue ["optional<A>.orValue(A) -> A"] "The optional's value, or the default." { "optional.none().orValue(5)" => "5" }
    Or ["optional<A>.or(optional<A>) -> optional<A>"] "The optional if it holds a value, else the other." { "optional.none().or(optional.of(2)).value()" => "2" }

    Sum ["list<int>.sum() -> int", "list<uint>.sum() -> uint", "list<double>.sum() -> double", "list<duration>.sum() -> duration", "list<dyn>.sum() -> dyn"]
        "The sum of a list (0 for an empty list); integer overflow is an error." { "[1, 2, 3].sum()" => "6", "[].sum()" => "0" }
    Avg ["list<int>.avg() -> double", "list<uint>.avg() -> double", "list<double>.avg() -> double", "list<dyn>.avg() -> double"]
        "The arithmetic mean; an error for an empty list." { "[1, 2].avg()" => "1.5", "[].avg()" => "error: empty list" }
    Min ["list<O>.min() -> O"] "The least element (numbers across types, strings, timestamps, ...); an error for an empty list." { "[3, 1, 2].min()" => "1" }
    Max ["list<O>.max() -> O"] "The greatest element; an error for an empty list." { "['b', 'a'].max()" => "'b'" }
    Count ["list<A>.count() -> int", "map<A, B>.count() -> int"] "The number of elements (see also `count(x, predicate)`)." { "[1, 2].count()" => "2" }
    Distinct ["list<A>.distinct() -> list<A>"] "The elements without repeats, first occurrences kept in order." { "[1, 2, 1, 3].distinct()" => "[1, 2, 3]" }
    Flatten ["list<list<A>>.flatten() -> list<A>"] "Concatenates a list of lists." { "[[1], [2, 3]].flatten()" => "[1, 2, 3]" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_signature_parses() {
        for f in FUNCTIONS {
            for s in f.signatures {
                let sig = parse_signature(s, f.overload);
                assert!(sig.is_some(), "cannot parse signature {s:?}");
            }
            assert!(!f.doc.is_empty(), "{:?} has no doc", f.overload);
            assert!(!f.examples.is_empty(), "{:?} has no example", f.overload);
        }
    }

    #[test]
    fn receiver_and_global_styles_are_told_apart() {
        let sig = parse_signature("list<A>.size() -> int", Overload::Size).unwrap();
        assert!(sig.receiver);
        assert_eq!(sig.name, "size");
        let sig = parse_signature("math.greatest(int...) -> int", Overload::Greatest).unwrap();
        assert!(!sig.receiver && sig.variadic);
        assert_eq!(sig.name, "math.greatest");
        let sig = parse_signature("optional.of(A) -> optional<A>", Overload::OptionalOf).unwrap();
        assert_eq!(sig.name, "optional.of");
    }
}
