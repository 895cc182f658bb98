//! Flow's static types: primitives, lists, maps, structural records, optionals, `dyn`,
//! `secret`, and CEL's optional and type-value types.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A static type. Records are structural: two record types with the same fields are the
/// same type, whatever they are named; the name is kept only for messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Type {
    /// The type of the `null` literal; assignable to `T?` and `dyn`.
    Null,
    Bool,
    Int,
    UInt,
    Double,
    String,
    Bytes,
    Timestamp,
    Duration,
    /// A JSON-like value known only at run time.
    Dyn,
    /// A credential read with `secret()`: usable where the connector needs it (auth,
    /// headers), never in an output, a return, a notification or a log.
    Secret,
    List(Box<Type>),
    Map(Box<Type>, Box<Type>),
    Record(Arc<RecordType>),
    /// `T?`: a `T` or `null`.
    Optional(Box<Type>),
    /// CEL's `optional_type(T)`, produced by `a.?b`, `a[?k]` and `optional.of(x)`.
    CelOptional(Box<Type>),
    /// The type of a type value (`int`, `type(x)`): `Type(T)` is the type of the value `T`.
    TypeOf(Box<Type>),
    /// The type of an expression that already failed to check; it is compatible with
    /// everything, so one mistake is reported once.
    Error,
}

/// A record type: fields sorted by name, so a field's position is known statically.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordType {
    /// The declared name (`Customer`, `slack.Message`), for messages only.
    pub name: Option<String>,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub ty: Type,
}

impl RecordType {
    /// Builds a record type, sorting its fields by name.
    pub fn new(name: Option<String>, mut fields: Vec<Field>) -> RecordType {
        fields.sort_by(|a, b| a.name.cmp(&b.name));
        RecordType { name, fields }
    }

    /// The position and type of a field.
    pub fn field(&self, name: &str) -> Option<(usize, &Type)> {
        self.fields
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| (i, &self.fields[i].ty))
    }

    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }
}

impl Type {
    pub fn list(elem: Type) -> Type {
        Type::List(Box::new(elem))
    }

    pub fn map(key: Type, value: Type) -> Type {
        Type::Map(Box::new(key), Box::new(value))
    }

    pub fn record(name: Option<String>, fields: Vec<(String, Type)>) -> Type {
        Type::Record(Arc::new(RecordType::new(
            name,
            fields
                .into_iter()
                .map(|(name, ty)| Field { name, ty })
                .collect(),
        )))
    }

    /// `T?`; optional of an optional, of `dyn` or of `null` is the type itself.
    pub fn optional(inner: Type) -> Type {
        match inner {
            Type::Optional(_) | Type::Dyn | Type::Null | Type::Error => inner,
            other => Type::Optional(Box::new(other)),
        }
    }

    /// The type without its `?`.
    pub fn non_optional(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    pub fn is_optional(&self) -> bool {
        matches!(self, Type::Optional(_))
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::UInt | Type::Double)
    }

    /// Whether a value of this type, or anything inside it, is a secret.
    pub fn contains_secret(&self) -> bool {
        match self {
            Type::Secret => true,
            Type::List(t) | Type::Optional(t) | Type::CelOptional(t) | Type::TypeOf(t) => {
                t.contains_secret()
            }
            Type::Map(k, v) => k.contains_secret() || v.contains_secret(),
            Type::Record(r) => r.fields.iter().any(|f| f.ty.contains_secret()),
            _ => false,
        }
    }

    /// Whether this type, or a type inside it (an element, a field, an optional's value),
    /// is `dyn`: a value of it is checked only when it runs.
    pub fn contains_dyn(&self) -> bool {
        match self {
            Type::Dyn => true,
            Type::List(t) | Type::Optional(t) | Type::CelOptional(t) => t.contains_dyn(),
            Type::Map(k, v) => k.contains_dyn() || v.contains_dyn(),
            Type::Record(r) => r.fields.iter().any(|f| f.ty.contains_dyn()),
            _ => false,
        }
    }

    /// The name CEL's `type()` gives values of this type (`int`, `list`, `map`, ...).
    pub fn cel_type_name(&self) -> &'static str {
        match self {
            Type::Null => "null_type",
            Type::Bool => "bool",
            Type::Int => "int",
            Type::UInt => "uint",
            Type::Double => "double",
            Type::String | Type::Secret => "string",
            Type::Bytes => "bytes",
            Type::Timestamp => "google.protobuf.Timestamp",
            Type::Duration => "google.protobuf.Duration",
            Type::Dyn | Type::Error => "dyn",
            Type::List(_) => "list",
            Type::Map(..) | Type::Record(_) => "map",
            Type::Optional(t) => t.cel_type_name(),
            Type::CelOptional(_) => "optional_type",
            Type::TypeOf(_) => "type",
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Null => f.write_str("null"),
            Type::Bool => f.write_str("bool"),
            Type::Int => f.write_str("int"),
            Type::UInt => f.write_str("uint"),
            Type::Double => f.write_str("double"),
            Type::String => f.write_str("string"),
            Type::Bytes => f.write_str("bytes"),
            Type::Timestamp => f.write_str("timestamp"),
            Type::Duration => f.write_str("duration"),
            Type::Dyn => f.write_str("dyn"),
            Type::Secret => f.write_str("secret"),
            Type::List(t) => write!(f, "list<{t}>"),
            Type::Map(k, v) => write!(f, "map<{k}, {v}>"),
            Type::Record(r) => match &r.name {
                Some(name) => f.write_str(name),
                None => {
                    f.write_str("{ ")?;
                    for (i, field) in r.fields.iter().enumerate() {
                        if i > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{}: {}", field.name, field.ty)?;
                    }
                    f.write_str(" }")
                }
            },
            Type::Optional(t) => write!(f, "{t}?"),
            Type::CelOptional(t) => write!(f, "optional<{t}>"),
            Type::TypeOf(t) => write!(f, "type<{t}>"),
            Type::Error => f.write_str("<error>"),
        }
    }
}

/// Whether a value of type `from` may be used where `to` is expected: the same rule
/// the checker's coercion applies. A `dyn` value is accepted anywhere (a checked
/// conversion is inserted); `T` fits `T?`; `null` fits only `T?` and `dyn`; records
/// are structural with width subtyping (extra fields are allowed, missing fields
/// must be optional in `to`); a secret fits only where a secret is expected.
pub fn is_assignable(from: &Type, to: &Type) -> bool {
    if from.contains_secret() && !to.contains_secret() && !matches!(to, Type::Error) {
        return matches!(from, Type::Error);
    }
    assignable(from, to)
}

fn assignable(from: &Type, to: &Type) -> bool {
    match (from, to) {
        (Type::Error, _) | (_, Type::Error) => true,
        (_, Type::Dyn) | (Type::Dyn, _) => true,
        _ if from == to => true,
        (Type::Null, Type::Optional(_)) => true,
        (Type::Optional(f), Type::Optional(t)) => assignable(f, t),
        (f, Type::Optional(t)) => assignable(f, t),
        (Type::String, Type::Secret) => true,
        (Type::List(f), Type::List(t)) => assignable(f, t),
        (Type::Map(fk, fv), Type::Map(tk, tv)) => assignable(fk, tk) && assignable(fv, tv),
        (Type::CelOptional(f), Type::CelOptional(t)) => assignable(f, t),
        (Type::TypeOf(_), Type::TypeOf(_)) => true,
        (Type::Record(f), Type::Record(t)) => {
            t.fields.iter().all(|field| match f.field(&field.name) {
                Some((_, fty)) => assignable(fty, &field.ty),
                None => field.ty.is_optional() || field.ty == Type::Dyn,
            })
        }
        (Type::Record(f), Type::Map(k, v)) => {
            assignable(&Type::String, k) && f.fields.iter().all(|field| assignable(&field.ty, v))
        }
        _ => false,
    }
}

/// The most precise type both `a` and `b` fit, if any: equal types unify to
/// themselves, `dyn` absorbs everything, `null` and `T` unify to `T?`, a secret and
/// a string to a secret, and containers unify element-wise.
pub fn unify(a: &Type, b: &Type) -> Option<Type> {
    match (a, b) {
        _ if a == b => Some(a.clone()),
        (Type::Error, t) | (t, Type::Error) => Some(t.clone()),
        (Type::Dyn, _) | (_, Type::Dyn) => Some(Type::Dyn),
        (Type::Null, t) | (t, Type::Null) => Some(Type::optional(t.clone())),
        (Type::Optional(x), Type::Optional(y)) => unify(x, y).map(Type::optional),
        (Type::Optional(x), t) | (t, Type::Optional(x)) => unify(x, t).map(Type::optional),
        (Type::Secret, Type::String) | (Type::String, Type::Secret) => Some(Type::Secret),
        (Type::List(x), Type::List(y)) => unify(x, y).map(Type::list),
        (Type::Map(xk, xv), Type::Map(yk, yv)) => Some(Type::map(unify(xk, yk)?, unify(xv, yv)?)),
        (Type::CelOptional(x), Type::CelOptional(y)) => {
            unify(x, y).map(|t| Type::CelOptional(Box::new(t)))
        }
        (Type::TypeOf(_), Type::TypeOf(_)) => Some(Type::TypeOf(Box::new(Type::Dyn))),
        (Type::Record(x), Type::Record(y)) => {
            if x.fields.len() != y.fields.len() {
                return None;
            }
            let mut fields = Vec::with_capacity(x.fields.len());
            for (fx, fy) in x.fields.iter().zip(&y.fields) {
                if fx.name != fy.name {
                    return None;
                }
                fields.push((fx.name.clone(), unify(&fx.ty, &fy.ty)?));
            }
            let name = if x.name == y.name {
                x.name.clone()
            } else {
                None
            };
            Some(Type::record(name, fields))
        }
        _ => None,
    }
}

/// Like [`unify`], but two types with no common type join to `dyn` (the type of
/// CEL's heterogeneous list and map literals).
pub fn join(a: &Type, b: &Type) -> Type {
    unify(a, b).unwrap_or(Type::Dyn)
}

/// The builtin type names, as written in a type expression.
pub const BUILTIN_TYPE_NAMES: &[&str] = &[
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "timestamp",
    "duration",
    "dyn",
    "secret",
    "null",
];

/// The builtin type a single name denotes (`int`, `string`, ...).
pub fn builtin_type(name: &str) -> Option<Type> {
    Some(match name {
        "int" => Type::Int,
        "uint" => Type::UInt,
        "double" => Type::Double,
        "bool" => Type::Bool,
        "string" => Type::String,
        "bytes" => Type::Bytes,
        "timestamp" => Type::Timestamp,
        "duration" => Type::Duration,
        "dyn" | "any" => Type::Dyn,
        "secret" => Type::Secret,
        "null" => Type::Null,
        _ => return None,
    })
}
