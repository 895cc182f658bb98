//! The builtin functions and operators, dispatched on the resolved function and the
//! argument values' kinds (the catalogue in `flow_ir::expr::catalogue` holds
//! their signatures and documentation).

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use flow_ir::expr::Overload;

use crate::error::{ErrorKind, EvalError};
use crate::format;
use crate::time::{Duration, TimeField, Timestamp};
use crate::value::{Key, Map, Value, compare, compare_numbers, equals, sort_order};

type R = Result<Value, EvalError>;

fn name_of(o: Overload) -> String {
    format!("{o:?}")
}

fn no(o: Overload, args: &[Value]) -> EvalError {
    let refs: Vec<&Value> = args.iter().collect();
    EvalError::no_overload(&name_of(o), &refs)
}

/// Calls a builtin; text computed from a secret stays a secret.
pub fn call_tainted(o: Overload, args: &[Value]) -> R {
    let secret = args.iter().any(Value::is_secret);
    Ok(match call(o, args)? {
        Value::String(s) if secret => Value::Secret(s),
        other => other,
    })
}

/// A comparison operator's result on borrowed values.
#[inline]
pub fn compare_bool(o: Overload, a: &Value, b: &Value) -> Result<bool, EvalError> {
    use Overload as O;
    Ok(match o {
        O::Eq => equals(a, b),
        O::Ne => !equals(a, b),
        O::Lt => compare(a, b)? == Some(Ordering::Less),
        O::Le => matches!(compare(a, b)?, Some(Ordering::Less | Ordering::Equal)),
        O::Gt => compare(a, b)? == Some(Ordering::Greater),
        O::Ge => matches!(compare(a, b)?, Some(Ordering::Greater | Ordering::Equal)),
        _ => {
            return Err(EvalError::invalid_argument(
                "internal error: not a comparison",
            ));
        }
    })
}

/// The common two-argument operators on borrowed values, or `None` for the general
/// path. Same results as [`call_tainted`].
#[inline]
pub fn call2(o: Overload, a: &Value, b: &Value) -> Option<R> {
    use Overload as O;
    use Value as V;
    Some(match (o, a, b) {
        (O::Eq, _, _) => Ok(V::Bool(equals(a, b))),
        (O::Ne, _, _) => Ok(V::Bool(!equals(a, b))),
        (O::Lt, _, _) => compare(a, b).map(|c| V::Bool(c == Some(Ordering::Less))),
        (O::Le, _, _) => {
            compare(a, b).map(|c| V::Bool(matches!(c, Some(Ordering::Less | Ordering::Equal))))
        }
        (O::Gt, _, _) => compare(a, b).map(|c| V::Bool(c == Some(Ordering::Greater))),
        (O::Ge, _, _) => {
            compare(a, b).map(|c| V::Bool(matches!(c, Some(Ordering::Greater | Ordering::Equal))))
        }
        (O::Add, _, _) => add(a, b),
        (O::Sub, _, _) => sub(a, b),
        (O::StartsWith, V::String(x), V::String(y)) => Ok(V::Bool(x.starts_with(&**y))),
        (O::EndsWith, V::String(x), V::String(y)) => Ok(V::Bool(x.ends_with(&**y))),
        (O::Contains, V::String(x), V::String(y)) => Ok(V::Bool(x.contains(&**y))),
        (O::In, x, V::List(items)) => Ok(V::Bool(items.iter().any(|i| equals(x, i)))),
        _ => return None,
    })
}

/// Calls a builtin on evaluated arguments.
pub fn call(o: Overload, args: &[Value]) -> R {
    use Overload as O;
    use Value as V;
    match (o, args) {
        (O::Not, [V::Bool(b)]) => Ok(V::Bool(!b)),
        (O::Neg, [V::Int(i)]) => i
            .checked_neg()
            .map(V::Int)
            .ok_or_else(|| EvalError::overflow("negation")),
        (O::Neg, [V::Double(d)]) => Ok(V::Double(-d)),
        (O::Add, [a, b]) => add(a, b),
        (O::Sub, [a, b]) => sub(a, b),
        (O::Mul, [V::Int(a), V::Int(b)]) => a
            .checked_mul(*b)
            .map(V::Int)
            .ok_or_else(|| EvalError::overflow("multiplication")),
        (O::Mul, [V::UInt(a), V::UInt(b)]) => a
            .checked_mul(*b)
            .map(V::UInt)
            .ok_or_else(|| EvalError::overflow("multiplication")),
        (O::Mul, [V::Double(a), V::Double(b)]) => Ok(V::Double(a * b)),
        (O::Div, [V::Int(a), V::Int(b)]) => div_int(*a, *b).map(V::Int),
        (O::Div, [V::UInt(a), V::UInt(b)]) => a
            .checked_div(*b)
            .map(V::UInt)
            .ok_or_else(EvalError::division_by_zero),
        (O::Div, [V::Double(a), V::Double(b)]) => Ok(V::Double(a / b)),
        (O::Rem, [V::Int(a), V::Int(b)]) => rem_int(*a, *b).map(V::Int),
        (O::Rem, [V::UInt(a), V::UInt(b)]) => a
            .checked_rem(*b)
            .map(V::UInt)
            .ok_or_else(EvalError::modulus_by_zero),
        (O::Eq, [a, b]) => Ok(V::Bool(equals(a, b))),
        (O::Ne, [a, b]) => Ok(V::Bool(!equals(a, b))),
        (O::Lt, [a, b]) => Ok(V::Bool(compare(a, b)? == Some(Ordering::Less))),
        (O::Le, [a, b]) => Ok(V::Bool(matches!(
            compare(a, b)?,
            Some(Ordering::Less | Ordering::Equal)
        ))),
        (O::Gt, [a, b]) => Ok(V::Bool(compare(a, b)? == Some(Ordering::Greater))),
        (O::Ge, [a, b]) => Ok(V::Bool(matches!(
            compare(a, b)?,
            Some(Ordering::Greater | Ordering::Equal)
        ))),
        (O::In, [x, V::List(items)]) => Ok(V::Bool(items.iter().any(|i| equals(x, i)))),
        (O::In, [x, V::Map(m)]) => Ok(V::Bool(m.get(x).is_some())),
        (O::In, [x, V::Record(r)]) => Ok(V::Bool(x.as_str().is_some_and(|k| r.get(k).is_some()))),

        (O::ToInt, [v]) => to_int(v),
        (O::ToUInt, [v]) => to_uint(v),
        (O::ToDouble, [v]) => to_double(v),
        (O::ToString, [v]) => to_string(v),
        (O::ToBytes, [V::Bytes(b)]) => Ok(V::Bytes(b.clone())),
        (O::ToBytes, [V::String(s)]) => Ok(V::Bytes(Arc::from(s.as_bytes()))),
        (O::ToBool, [V::Bool(b)]) => Ok(V::Bool(*b)),
        (O::ToBool, [V::String(s)]) => match &**s {
            "1" | "t" | "true" | "TRUE" | "True" => Ok(V::Bool(true)),
            "0" | "f" | "false" | "FALSE" | "False" => Ok(V::Bool(false)),
            other => Err(EvalError::conversion(format!(
                "type conversion error: {other:?} is not a bool"
            ))),
        },
        (O::ToTimestamp, [V::Timestamp(t)]) => Ok(V::Timestamp(*t)),
        (O::ToTimestamp, [V::String(s)]) => Timestamp::parse(s).map(V::Timestamp),
        (O::ToTimestamp, [V::Int(i)]) => Timestamp::from_unix_seconds(*i).map(V::Timestamp),
        (O::ToDuration, [V::Duration(d)]) => Ok(V::Duration(*d)),
        (O::ToDuration, [V::String(s)]) => Duration::parse(s).map(V::Duration),
        (O::ToDuration, [V::Int(i)]) => Duration::from_nanos(i128::from(*i)).map(V::Duration),
        (O::ToDyn, [v]) => Ok(v.clone()),
        (O::TypeOf, [v]) => Ok(V::Type(Arc::from(v.type_name()))),
        (O::Stringify, [v]) => Ok(V::String(Arc::from(stringify(v)?))),
        (O::Size, [v]) => size(v),

        (O::Contains, [a, b]) => str2(o, args, a, b, |a, b| V::Bool(a.contains(b))),
        (O::StartsWith, [a, b]) => str2(o, args, a, b, |a, b| V::Bool(a.starts_with(b))),
        (O::EndsWith, [a, b]) => str2(o, args, a, b, |a, b| V::Bool(a.ends_with(b))),
        (O::Matches, [a, b]) => match (a.as_str(), b.as_str()) {
            (Some(text), Some(pattern)) => matches(text, pattern).map(V::Bool),
            _ => Err(no(o, args)),
        },
        (O::CharAt, [s, V::Int(i)]) if s.as_str().is_some() => {
            char_at(s.as_str().unwrap_or(""), *i)
        }
        (O::IndexOf, [s, sub]) => index_of(o, args, s, sub, None, false),
        (O::IndexOf, [s, sub, V::Int(i)]) => index_of(o, args, s, sub, Some(*i), false),
        (O::LastIndexOf, [s, sub]) => index_of(o, args, s, sub, None, true),
        (O::LastIndexOf, [s, sub, V::Int(i)]) => index_of(o, args, s, sub, Some(*i), true),
        (O::ParseJson, [s]) if s.as_str().is_some() => {
            match serde_json::from_str::<serde_json::Value>(s.as_str().unwrap_or("")) {
                Ok(json) => Ok(V::from_json_dyn(&json)),
                Err(e) => Err(EvalError::invalid_argument(format!("not JSON: {e}"))),
            }
        }
        (O::LowerAscii, [s]) if s.as_str().is_some() => {
            Ok(V::string(s.as_str().unwrap_or("").to_ascii_lowercase()))
        }
        (O::UpperAscii, [s]) if s.as_str().is_some() => {
            Ok(V::string(s.as_str().unwrap_or("").to_ascii_uppercase()))
        }
        (O::Replace, [s, from, to]) => replace(o, args, s, from, to, -1),
        (O::Replace, [s, from, to, V::Int(n)]) => replace(o, args, s, from, to, *n),
        (O::Split, [s, sep]) => split(o, args, s, sep, -1),
        (O::Split, [s, sep, V::Int(n)]) => split(o, args, s, sep, *n),
        (O::Substring, [s, V::Int(start)]) if s.as_str().is_some() => {
            substring(s.as_str().unwrap_or(""), *start, None)
        }
        (O::Substring, [s, V::Int(start), V::Int(end)]) if s.as_str().is_some() => {
            substring(s.as_str().unwrap_or(""), *start, Some(*end))
        }
        (O::Trim, [s]) if s.as_str().is_some() => Ok(V::string(
            s.as_str().unwrap_or("").trim_matches(is_cel_space),
        )),
        (O::Join, [V::List(items)]) => join(o, args, items, ""),
        (O::Join, [V::List(items), sep]) if sep.as_str().is_some() => {
            join(o, args, items, sep.as_str().unwrap_or(""))
        }
        (O::Format, [f, V::List(items)]) if f.as_str().is_some() => {
            format::format(f.as_str().unwrap_or(""), items).map(V::string)
        }
        (O::Quote, [s]) if s.as_str().is_some() => {
            Ok(V::string(format::quote(s.as_str().unwrap_or(""))))
        }
        (O::Reverse, [V::String(s)]) => Ok(V::string(s.chars().rev().collect::<String>())),
        (O::Reverse, [V::List(items)]) => Ok(V::list(items.iter().rev().cloned().collect())),

        (O::GetFullYear, _) => time_field(o, args, TimeField::FullYear),
        (O::GetMonth, _) => time_field(o, args, TimeField::Month),
        (O::GetDayOfYear, _) => time_field(o, args, TimeField::DayOfYear),
        (O::GetDayOfMonth, _) => time_field(o, args, TimeField::DayOfMonth),
        (O::GetDate, _) => time_field(o, args, TimeField::Date),
        (O::GetDayOfWeek, _) => time_field(o, args, TimeField::DayOfWeek),
        (O::GetHours, _) => time_field(o, args, TimeField::Hours),
        (O::GetMinutes, _) => time_field(o, args, TimeField::Minutes),
        (O::GetSeconds, _) => time_field(o, args, TimeField::Seconds),
        (O::GetMilliseconds, _) => time_field(o, args, TimeField::Milliseconds),

        (O::Greatest, _) => extreme(o, args, Ordering::Greater),
        (O::Least, _) => extreme(o, args, Ordering::Less),
        (O::Ceil, [V::Double(d)]) => Ok(V::Double(d.ceil())),
        (O::Floor, [V::Double(d)]) => Ok(V::Double(d.floor())),
        (O::Round, [V::Double(d)]) => Ok(V::Double(d.round())),
        (O::Trunc, [V::Double(d)]) => Ok(V::Double(d.trunc())),
        (O::Abs, [V::Int(i)]) => i
            .checked_abs()
            .map(V::Int)
            .ok_or_else(|| EvalError::overflow("math.abs")),
        (O::Abs, [V::UInt(u)]) => Ok(V::UInt(*u)),
        (O::Abs, [V::Double(d)]) => Ok(V::Double(d.abs())),
        (O::Sign, [V::Int(i)]) => Ok(V::Int(i.signum())),
        (O::Sign, [V::UInt(u)]) => Ok(V::UInt(u64::from(*u > 0))),
        (O::Sign, [V::Double(d)]) => Ok(V::Double(if d.is_nan() || *d == 0.0 {
            *d
        } else {
            d.signum()
        })),
        (O::IsNaN, [V::Double(d)]) => Ok(V::Bool(d.is_nan())),
        (O::IsInf, [V::Double(d)]) => Ok(V::Bool(d.is_infinite())),
        (O::IsFinite, [V::Double(d)]) => Ok(V::Bool(d.is_finite())),
        (O::BitAnd, [V::Int(a), V::Int(b)]) => Ok(V::Int(a & b)),
        (O::BitAnd, [V::UInt(a), V::UInt(b)]) => Ok(V::UInt(a & b)),
        (O::BitOr, [V::Int(a), V::Int(b)]) => Ok(V::Int(a | b)),
        (O::BitOr, [V::UInt(a), V::UInt(b)]) => Ok(V::UInt(a | b)),
        (O::BitXor, [V::Int(a), V::Int(b)]) => Ok(V::Int(a ^ b)),
        (O::BitXor, [V::UInt(a), V::UInt(b)]) => Ok(V::UInt(a ^ b)),
        (O::BitNot, [V::Int(a)]) => Ok(V::Int(!a)),
        (O::BitNot, [V::UInt(a)]) => Ok(V::UInt(!a)),
        (O::BitShiftLeft | O::BitShiftRight, [_, V::Int(n)]) if *n < 0 => Err(
            EvalError::invalid_argument(format!("math.bitShift: negative offset {n}")),
        ),
        (O::BitShiftLeft, [V::Int(a), V::Int(n)]) => Ok(V::Int(if *n >= 64 { 0 } else { a << n })),
        (O::BitShiftLeft, [V::UInt(a), V::Int(n)]) => {
            Ok(V::UInt(if *n >= 64 { 0 } else { a << n }))
        }
        (O::BitShiftRight, [V::Int(a), V::Int(n)]) => Ok(V::Int(if *n >= 64 {
            0
        } else {
            ((*a as u64) >> n) as i64
        })),
        (O::BitShiftRight, [V::UInt(a), V::Int(n)]) => {
            Ok(V::UInt(if *n >= 64 { 0 } else { a >> n }))
        }

        (O::OptionalOf, [v]) => Ok(V::some(v.clone())),
        (O::OptionalNone, []) => Ok(V::none()),
        (O::OptionalOfNonZeroValue, [v]) => Ok(if v.is_zero() {
            V::none()
        } else {
            V::some(v.clone())
        }),
        (O::HasValue, [V::Optional(o)]) => Ok(V::Bool(o.is_some())),
        (O::OptionalValue, [V::Optional(Some(v))]) => Ok((**v).clone()),
        (O::OptionalValue, [V::Optional(None)]) => Err(EvalError::new(
            ErrorKind::NoSuchKey,
            "optional.none() has no value",
        )),
        (O::OrValue, [V::Optional(opt), default]) => {
            Ok(opt.as_deref().cloned().unwrap_or_else(|| default.clone()))
        }
        (O::Or, [V::Optional(opt), other @ V::Optional(_)]) => Ok(if opt.is_some() {
            args[0].clone()
        } else {
            other.clone()
        }),

        (O::Sum, [V::List(items)]) => sum(items),
        (O::Avg, [V::List(items)]) => avg(items),
        (O::Min, [V::List(items)]) => min_max(items, Ordering::Less),
        (O::Max, [V::List(items)]) => min_max(items, Ordering::Greater),
        (O::Count, [V::List(items)]) => Ok(V::Int(items.len() as i64)),
        (O::Count, [V::Map(m)]) => Ok(V::Int(m.len() as i64)),
        (O::Distinct, [V::List(items)]) => distinct(items),
        (O::Flatten, [V::List(items)]) => {
            let mut out = Vec::new();
            for item in items.iter() {
                match item {
                    V::List(inner) => out.extend(inner.iter().cloned()),
                    other => return Err(EvalError::no_overload("flatten", &[other])),
                }
            }
            Ok(V::list(out))
        }
        _ => Err(no(o, args)),
    }
}

fn add(a: &Value, b: &Value) -> R {
    use Value as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => x
            .checked_add(*y)
            .map(V::Int)
            .ok_or_else(|| EvalError::overflow("addition")),
        (V::UInt(x), V::UInt(y)) => x
            .checked_add(*y)
            .map(V::UInt)
            .ok_or_else(|| EvalError::overflow("addition")),
        (V::Double(x), V::Double(y)) => Ok(V::Double(x + y)),
        (V::String(x), V::String(y)) => {
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            Ok(V::String(s.into()))
        }
        (V::String(_) | V::Secret(_), V::String(_) | V::Secret(_)) => Ok(V::Secret(
            format!("{}{}", a.as_str().unwrap_or(""), b.as_str().unwrap_or("")).into(),
        )),
        (V::Bytes(x), V::Bytes(y)) => Ok(V::Bytes([&x[..], &y[..]].concat().into())),
        (V::List(x), V::List(y)) => {
            if x.is_empty() {
                return Ok(b.clone());
            }
            if y.is_empty() {
                return Ok(a.clone());
            }
            let mut out = Vec::with_capacity(x.len() + y.len());
            out.extend(x.iter().cloned());
            out.extend(y.iter().cloned());
            Ok(V::list(out))
        }
        (V::Timestamp(t), V::Duration(d)) | (V::Duration(d), V::Timestamp(t)) => {
            Timestamp::from_nanos(t.as_nanos() + d.as_nanos()).map(V::Timestamp)
        }
        (V::Duration(x), V::Duration(y)) => {
            Duration::from_nanos(x.as_nanos() + y.as_nanos()).map(V::Duration)
        }
        _ => Err(EvalError::no_overload("_+_", &[a, b])),
    }
}

fn sub(a: &Value, b: &Value) -> R {
    use Value as V;
    match (a, b) {
        (V::Int(x), V::Int(y)) => x
            .checked_sub(*y)
            .map(V::Int)
            .ok_or_else(|| EvalError::overflow("subtraction")),
        (V::UInt(x), V::UInt(y)) => x
            .checked_sub(*y)
            .map(V::UInt)
            .ok_or_else(|| EvalError::overflow("subtraction")),
        (V::Double(x), V::Double(y)) => Ok(V::Double(x - y)),
        // The difference of two timestamps must fit in 64-bit nanoseconds (about 292
        // years), as in CEL's reference implementation.
        (V::Timestamp(x), V::Timestamp(y)) => {
            let n = x.as_nanos() - y.as_nanos();
            if i64::try_from(n).is_err() {
                return Err(EvalError::range(
                    "timestamp difference out of range (about ±292 years)",
                ));
            }
            Duration::from_nanos(n).map(V::Duration)
        }
        (V::Timestamp(t), V::Duration(d)) => {
            Timestamp::from_nanos(t.as_nanos() - d.as_nanos()).map(V::Timestamp)
        }
        (V::Duration(x), V::Duration(y)) => {
            Duration::from_nanos(x.as_nanos() - y.as_nanos()).map(V::Duration)
        }
        _ => Err(EvalError::no_overload("_-_", &[a, b])),
    }
}

/// int division: truncating; by zero and `MIN / -1` are errors.
pub fn div_int(a: i64, b: i64) -> Result<i64, EvalError> {
    if b == 0 {
        return Err(EvalError::division_by_zero());
    }
    a.checked_div(b)
        .ok_or_else(|| EvalError::overflow("division"))
}

/// int remainder with the dividend's sign; by zero and `MIN % -1` are errors.
pub fn rem_int(a: i64, b: i64) -> Result<i64, EvalError> {
    if b == 0 {
        return Err(EvalError::modulus_by_zero());
    }
    a.checked_rem(b)
        .ok_or_else(|| EvalError::overflow("modulus"))
}

fn to_int(v: &Value) -> R {
    use Value as V;
    match v {
        V::Int(i) => Ok(V::Int(*i)),
        V::UInt(u) => i64::try_from(*u)
            .map(V::Int)
            .map_err(|_| EvalError::range(format!("int({u}u): out of range"))),
        V::Double(d) => {
            // Both ends exclusive: 2^63 - 1 is not representable as a double.
            if d.is_finite() && *d > -9.223_372_036_854_776e18 && *d < 9.223_372_036_854_776e18 {
                Ok(V::Int(d.trunc() as i64))
            } else {
                Err(EvalError::range(format!("int({d}): out of range")))
            }
        }
        V::String(s) => s
            .parse()
            .map(V::Int)
            .map_err(|_| EvalError::conversion(format!("int({s:?}): not an integer"))),
        V::Timestamp(t) => Ok(V::Int(t.secs)),
        V::Duration(d) => i64::try_from(d.as_nanos())
            .map(V::Int)
            .map_err(|_| EvalError::range("int(duration): out of range")),
        other => Err(EvalError::no_overload("int", &[other])),
    }
}

fn to_uint(v: &Value) -> R {
    use Value as V;
    match v {
        V::UInt(u) => Ok(V::UInt(*u)),
        V::Int(i) => u64::try_from(*i)
            .map(V::UInt)
            .map_err(|_| EvalError::range(format!("uint({i}): out of range"))),
        V::Double(d) => {
            if d.is_finite() && *d > -1.0 && *d < 1.844_674_407_370_955_2e19 {
                Ok(V::UInt(d.trunc() as u64))
            } else {
                Err(EvalError::range(format!("uint({d}): out of range")))
            }
        }
        V::String(s) => s
            .parse()
            .map(V::UInt)
            .map_err(|_| EvalError::conversion(format!("uint({s:?}): not an unsigned integer"))),
        other => Err(EvalError::no_overload("uint", &[other])),
    }
}

fn to_double(v: &Value) -> R {
    use Value as V;
    match v {
        V::Double(d) => Ok(V::Double(*d)),
        V::Int(i) => Ok(V::Double(*i as f64)),
        V::UInt(u) => Ok(V::Double(*u as f64)),
        V::String(s) => parse_double(s).map(V::Double),
        other => Err(EvalError::no_overload("double", &[other])),
    }
}

fn parse_double(s: &str) -> Result<f64, EvalError> {
    match s {
        "NaN" => Ok(f64::NAN),
        "Infinity" | "+Infinity" | "inf" => Ok(f64::INFINITY),
        "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
        _ => s
            .parse()
            .map_err(|_| EvalError::conversion(format!("double({s:?}): not a number"))),
    }
}

/// Formats a double as CEL's `string()` does: shortest round-trip text, with an
/// exponent for very large or small magnitudes.
pub fn double_text(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = d.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{d:e}");
        // Rust writes `1e21`; CEL `1e+21`.
        return match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            _ => s,
        };
    }
    let s = format!("{d}");
    s
}

fn to_string(v: &Value) -> R {
    use Value as V;
    Ok(match v {
        V::String(_) | V::Secret(_) => v.clone(),
        V::Int(i) => V::string(i.to_string()),
        V::UInt(u) => V::string(u.to_string()),
        V::Double(d) => V::string(double_text(*d)),
        V::Bool(b) => V::string(b.to_string()),
        V::Bytes(b) => V::string(
            std::str::from_utf8(b)
                .map_err(|_| EvalError::conversion("string(bytes): invalid UTF-8"))?
                .to_string(),
        ),
        V::Timestamp(t) => V::string(t.to_rfc3339()),
        V::Duration(d) => V::string(d.to_string()),
        other => return Err(EvalError::no_overload("string", &[other])),
    })
}

/// Text of any value for interpolation: strings as they are, other scalars as
/// `string()` gives them, `null` as `null`, lists and maps as JSON.
pub fn stringify(v: &Value) -> Result<String, EvalError> {
    match v {
        Value::String(s) | Value::Secret(s) => Ok(s.to_string()),
        Value::Null => Ok("null".into()),
        Value::List(_) | Value::Map(_) | Value::Record(_) => Ok(v.to_json().to_string()),
        Value::Optional(None) => Ok("null".into()),
        Value::Optional(Some(inner)) => stringify(inner),
        Value::Type(t) => Ok(t.to_string()),
        Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
        other => match to_string(other)? {
            Value::String(s) => Ok(s.to_string()),
            _ => Ok(String::new()),
        },
    }
}

fn size(v: &Value) -> R {
    use Value as V;
    Ok(V::Int(match v {
        V::String(s) | V::Secret(s) => s.chars().count() as i64,
        V::Bytes(b) => b.len() as i64,
        V::List(l) => l.len() as i64,
        V::Map(m) => m.len() as i64,
        V::Record(r) => r.fields.len() as i64,
        other => return Err(EvalError::no_overload("size", &[other])),
    }))
}

fn str2(o: Overload, args: &[Value], a: &Value, b: &Value, f: impl Fn(&str, &str) -> Value) -> R {
    match (a.as_str(), b.as_str()) {
        (Some(a), Some(b)) => Ok(f(a, b)),
        _ => Err(no(o, args)),
    }
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<String, Arc<regex::Regex>>> = RefCell::new(HashMap::new());
}

/// Compiles (once per thread, up to a bound) and runs a regular expression.
fn matches(text: &str, pattern: &str) -> Result<bool, EvalError> {
    let re = REGEX_CACHE.with(|cache| -> Result<Arc<regex::Regex>, EvalError> {
        if let Some(re) = cache.borrow().get(pattern) {
            return Ok(re.clone());
        }
        let re = Arc::new(regex::Regex::new(pattern).map_err(|e| {
            EvalError::invalid_argument(format!("invalid regular expression {pattern:?}: {e}"))
        })?);
        let mut cache = cache.borrow_mut();
        if cache.len() >= 256 {
            cache.clear();
        }
        cache.insert(pattern.to_string(), re.clone());
        Ok(re)
    })?;
    Ok(re.is_match(text))
}

fn char_at(s: &str, i: i64) -> R {
    let len = s.chars().count();
    let idx = usize::try_from(i).map_err(|_| EvalError::index_out_of_range(i, len))?;
    if idx == len {
        return Ok(Value::string(""));
    }
    match s.chars().nth(idx) {
        Some(c) => Ok(Value::string(c.to_string())),
        None => Err(EvalError::index_out_of_range(i, len)),
    }
}

fn index_of(
    o: Overload,
    args: &[Value],
    s: &Value,
    sub: &Value,
    from: Option<i64>,
    last: bool,
) -> R {
    let (Some(s), Some(sub)) = (s.as_str(), sub.as_str()) else {
        return Err(no(o, args));
    };
    let chars: Vec<char> = s.chars().collect();
    let needle: Vec<char> = sub.chars().collect();
    let len = chars.len() as i64;
    let start = match from {
        Some(i) if i < 0 || i > len => return Err(EvalError::index_out_of_range(i, chars.len())),
        Some(i) => i as usize,
        None if last => chars.len(),
        None => 0,
    };
    let n = needle.len();
    let found = if last {
        if n > chars.len() {
            None
        } else {
            let top = start.min(chars.len() - n);
            (0..=top)
                .rev()
                .find(|&i| chars.get(i..i + n) == Some(&needle[..]))
        }
    } else if start + n > chars.len() {
        None
    } else {
        (start..=chars.len() - n).find(|&i| chars.get(i..i + n) == Some(&needle[..]))
    };
    Ok(Value::Int(found.map_or(-1, |i| i as i64)))
}

fn replace(o: Overload, args: &[Value], s: &Value, from: &Value, to: &Value, n: i64) -> R {
    let (Some(s), Some(from), Some(to)) = (s.as_str(), from.as_str(), to.as_str()) else {
        return Err(no(o, args));
    };
    Ok(Value::string(if n < 0 {
        s.replace(from, to)
    } else {
        s.replacen(from, to, n as usize)
    }))
}

fn split(o: Overload, args: &[Value], s: &Value, sep: &Value, n: i64) -> R {
    let (Some(s), Some(sep)) = (s.as_str(), sep.as_str()) else {
        return Err(no(o, args));
    };
    let parts: Vec<Value> = match n {
        0 => Vec::new(),
        n if n < 0 => {
            if sep.is_empty() {
                s.chars().map(|c| Value::string(c.to_string())).collect()
            } else {
                s.split(sep).map(Value::string).collect()
            }
        }
        n => {
            if sep.is_empty() {
                let chars: Vec<char> = s.chars().collect();
                let n = (n as usize).min(chars.len().max(1));
                let mut out: Vec<Value> = chars
                    .iter()
                    .take(n - 1)
                    .map(|c| Value::string(c.to_string()))
                    .collect();
                out.push(Value::string(chars.iter().skip(n - 1).collect::<String>()));
                out
            } else {
                s.splitn(n as usize, sep).map(Value::string).collect()
            }
        }
    };
    Ok(Value::list(parts))
}

fn substring(s: &str, start: i64, end: Option<i64>) -> R {
    let len = s.chars().count() as i64;
    let end_v = end.unwrap_or(len);
    if start < 0 || start > len {
        return Err(EvalError::index_out_of_range(start, len as usize));
    }
    if end_v < 0 || end_v > len {
        return Err(EvalError::index_out_of_range(end_v, len as usize));
    }
    if end_v < start {
        return Err(EvalError::invalid_argument(format!(
            "substring: end index {end_v} is before start index {start}"
        )));
    }
    Ok(Value::string(
        s.chars()
            .skip(start as usize)
            .take((end_v - start) as usize)
            .collect::<String>(),
    ))
}

/// White space as CEL's `trim` defines it (Unicode White_Space).
fn is_cel_space(c: char) -> bool {
    c.is_whitespace()
}

fn join(o: Overload, args: &[Value], items: &[Value], sep: &str) -> R {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        match item.as_str() {
            Some(s) => out.push_str(s),
            None => return Err(no(o, args)),
        }
    }
    Ok(Value::string(out))
}

fn time_field(o: Overload, args: &[Value], field: TimeField) -> R {
    match args {
        [Value::Timestamp(t)] => t.field(field, None).map(Value::Int),
        [Value::Timestamp(t), zone] if zone.as_str().is_some() => {
            t.field(field, zone.as_str()).map(Value::Int)
        }
        [Value::Duration(d)]
            if matches!(
                field,
                TimeField::Hours
                    | TimeField::Minutes
                    | TimeField::Seconds
                    | TimeField::Milliseconds
            ) =>
        {
            Ok(Value::Int(d.field(field)))
        }
        _ => Err(no(o, args)),
    }
}

/// `math.greatest` / `math.least` over arguments or one list.
fn extreme(o: Overload, args: &[Value], want: Ordering) -> R {
    let items: &[Value] = match args {
        [Value::List(items)] => items,
        _ => args,
    };
    let mut best: Option<&Value> = None;
    for item in items {
        if !matches!(item, Value::Int(_) | Value::UInt(_) | Value::Double(_)) {
            return Err(no(o, args));
        }
        best = match best {
            None => Some(item),
            Some(b) => {
                if compare_numbers(item, b) == Some(want) {
                    Some(item)
                } else {
                    Some(b)
                }
            }
        };
    }
    best.cloned()
        .ok_or_else(|| EvalError::invalid_argument(format!("{}: no arguments", name_of(o))))
}

fn sum(items: &[Value]) -> R {
    use Value as V;
    let Some(first) = items.first() else {
        return Ok(V::Int(0));
    };
    match first {
        V::Int(_) => {
            let mut acc: i64 = 0;
            for item in items {
                match item {
                    V::Int(i) => {
                        acc = acc
                            .checked_add(*i)
                            .ok_or_else(|| EvalError::overflow("sum"))?
                    }
                    other => return sum_generic(items, other),
                }
            }
            Ok(V::Int(acc))
        }
        V::Double(_) => {
            let mut acc = 0.0;
            for item in items {
                match item {
                    V::Double(d) => acc += d,
                    other => return sum_generic(items, other),
                }
            }
            Ok(V::Double(acc))
        }
        other => sum_generic(items, other),
    }
}

fn sum_generic(items: &[Value], _witness: &Value) -> R {
    let mut acc = match items.first() {
        Some(v) => v.clone(),
        None => return Ok(Value::Int(0)),
    };
    for item in &items[1..] {
        acc = add(&acc, item).map_err(|e| match e.kind {
            ErrorKind::NoSuchOverload => EvalError::no_overload("sum", &[&acc, item]),
            _ => e,
        })?;
    }
    match acc {
        Value::Int(_) | Value::UInt(_) | Value::Double(_) | Value::Duration(_) => Ok(acc),
        other => Err(EvalError::no_overload("sum", &[&other])),
    }
}

fn avg(items: &[Value]) -> R {
    if items.is_empty() {
        return Err(EvalError::invalid_argument("avg() of an empty list"));
    }
    let mut acc = 0.0f64;
    for item in items {
        acc += match item {
            Value::Int(i) => *i as f64,
            Value::UInt(u) => *u as f64,
            Value::Double(d) => *d,
            other => return Err(EvalError::no_overload("avg", &[other])),
        };
    }
    Ok(Value::Double(acc / items.len() as f64))
}

fn min_max(items: &[Value], want: Ordering) -> R {
    let mut best: Option<&Value> = None;
    for item in items {
        best = Some(match best {
            None => item,
            Some(b) => {
                if sort_order(item, b)? == want {
                    item
                } else {
                    b
                }
            }
        });
    }
    best.cloned().ok_or_else(|| {
        EvalError::invalid_argument(if want == Ordering::Less {
            "min() of an empty list"
        } else {
            "max() of an empty list"
        })
    })
}

fn distinct(items: &[Value]) -> R {
    let mut seen_keys: HashMap<Key, ()> = HashMap::new();
    let mut others: Vec<&Value> = Vec::new();
    let mut out = Vec::new();
    for item in items {
        match Key::of(item) {
            Some(k) if !matches!(item, Value::Double(_)) => {
                if seen_keys.insert(k, ()).is_none() {
                    out.push(item.clone());
                }
            }
            _ => {
                if !others.iter().any(|o| equals(o, item)) && !out.iter().any(|o| equals(o, item)) {
                    others.push(item);
                    out.push(item.clone());
                }
            }
        }
    }
    Ok(Value::list(out))
}

/// Builds a map value for `group_by`.
pub fn group(keys_values: Vec<(Value, Value)>) -> R {
    let mut order: Vec<(Value, Vec<Value>)> = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    for (k, v) in keys_values {
        let key = Key::of(&k).ok_or_else(|| {
            EvalError::invalid_argument(format!("a {} cannot be a group key", k.kind()))
        })?;
        match index.get(&key) {
            Some(&i) => {
                if let Some(slot) = order.get_mut(i) {
                    slot.1.push(v);
                }
            }
            None => {
                index.insert(key, order.len());
                order.push((k, vec![v]));
            }
        }
    }
    let entries = order
        .into_iter()
        .map(|(k, vs)| (k, Value::list(vs)))
        .collect();
    Ok(Value::Map(Arc::new(Map::new(entries)?)))
}
