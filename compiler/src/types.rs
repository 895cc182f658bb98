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
        Type::Record(Arc::new(RecordType::new(name, fields.into_iter().map(|(name, ty)| Field { name, ty }).collect())))
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
            Type::List(t) | Type::Optional(t) | Type::CelOptional(t) | Type::TypeOf(t) => t.contains_secret(),
            Type::Map(k, v) => k.contains_secret() || v.contains_secret(),
            Type::Record(r) => r.fields.iter().any(|f| f.ty.contains_secret()),
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
