//! The typed expression IR: plain serde data, independent of the AST.

use serde::{Deserialize, Serialize};

use crate::span::Span;

use crate::types::Type;

/// Index of a node in an [`ExprArena`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExprId(pub u32);

/// Index of a variable slot in an [`ExprArena`]'s local table. Workflow parameters,
/// step results, `let` bindings, loop and comprehension variables, `event` and `err`
/// are all locals; the runtime keeps one value slot per local.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LocalId(pub u32);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalInfo {
    pub name: String,
    pub ty: Type,
}

/// All expressions of one workflow (or one integration, or one `flow eval` input), their
/// locals, and the span of every node (a side table, read only when reporting).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExprArena {
    pub nodes: Vec<Node>,
    pub spans: Vec<Span>,
    pub locals: Vec<LocalInfo>,
}

impl ExprArena {
    pub fn new() -> ExprArena {
        ExprArena::default()
    }

    pub fn push(&mut self, node: Node, span: Span) -> ExprId {
        let id = ExprId(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        self.nodes.push(node);
        self.spans.push(span);
        id
    }

    pub fn node(&self, id: ExprId) -> Option<&Node> {
        self.nodes.get(id.0 as usize)
    }

    pub fn ty(&self, id: ExprId) -> Option<&Type> {
        self.node(id).map(|n| &n.ty)
    }

    pub fn span(&self, id: ExprId) -> Span {
        self.spans.get(id.0 as usize).copied().unwrap_or_default()
    }

    pub fn new_local(&mut self, name: impl Into<String>, ty: Type) -> LocalId {
        let id = LocalId(u32::try_from(self.locals.len()).unwrap_or(u32::MAX));
        self.locals.push(LocalInfo {
            name: name.into(),
            ty,
        });
        id
    }

    pub fn local(&self, id: LocalId) -> Option<&LocalInfo> {
        self.locals.get(id.0 as usize)
    }
}

/// One typed node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub kind: NodeKind,
    pub ty: Type,
}

/// A constant value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Const {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(String),
    Bytes(Vec<u8>),
    /// Nanoseconds.
    Duration(i64),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum NodeKind {
    Const(Const),
    Local(LocalId),
    /// `target.field`. `index` is the field's position when the target's static type is a
    /// record (the runtime uses it when the value has that record's shape, and looks the
    /// name up otherwise); `None` for maps and `dyn`. `null_safe` is `?.`.
    Field {
        target: ExprId,
        field: String,
        index: Option<u32>,
        null_safe: bool,
    },
    /// CEL's `target.?field`: an optional that is empty when the field is absent.
    OptionalField {
        target: ExprId,
        field: String,
    },
    /// `target[index]`; `optional` for CEL's `[?i]` (an optional, empty when absent).
    Index {
        target: ExprId,
        index: ExprId,
        optional: bool,
    },
    /// A resolved function or operator; for receiver-style calls the receiver is `args[0]`.
    Call {
        overload: Overload,
        args: Vec<ExprId>,
    },
    /// `&&` / `||` with CEL's error-absorbing, commutative semantics.
    And(ExprId, ExprId),
    Or(ExprId, ExprId),
    Conditional {
        condition: ExprId,
        then: ExprId,
        otherwise: ExprId,
    },
    /// `value ?? default`
    Coalesce {
        value: ExprId,
        default: ExprId,
    },
    /// `[a, ?b]`: `optional[i]` marks CEL optional elements.
    List {
        items: Vec<ExprId>,
        optional: Vec<bool>,
    },
    Map {
        entries: Vec<MapEntry>,
    },
    /// A record literal; fields sorted by name, as in the record type.
    Record {
        fields: Vec<(String, ExprId)>,
    },
    /// The macros and aggregates that take a lambda (`all`, `map`, `sort_by`, ...).
    Comprehension(Box<Comprehension>),
    /// A checked conversion inserted where a `dyn` (or wider) value must have type `to`;
    /// fails at run time with a clear error when the value does not fit.
    Convert {
        value: ExprId,
        to: Type,
    },
    /// `"a ${x} b"`: the parts, each already a string.
    Interpolate(Vec<ExprId>),
    /// `has(target.field)`
    Has {
        target: ExprId,
        field: String,
    },
    /// A type used as a value (`int`, `type(x)` results compare against these).
    TypeValue(Type),
    /// `now()`: journaled by the runtime so a resumed run sees the same instant.
    Now,
    /// `secret("name")`: a credential of the connection (integration declarations only).
    Secret(String),
    /// `setting("name")`: a connection setting (integration declarations only).
    Setting(String),
    /// An expression that fails when evaluated, with this message. Produced only when
    /// checking is relaxed (the conformance harness's unchecked cases): an unknown name
    /// or function is then a run-time error, as in unchecked CEL.
    Fail(String),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapEntry {
    pub key: ExprId,
    pub value: ExprId,
    pub optional: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comprehension {
    pub kind: ComprehensionKind,
    pub range: ExprId,
    /// The element variable (for maps: the key).
    pub var: LocalId,
    /// The second variable of two-variable forms (index or value), when used.
    pub var2: Option<LocalId>,
    /// The predicate, transform or key expression.
    pub body: ExprId,
    /// `map(x, filter, transform)`'s filter.
    pub filter: Option<ExprId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ComprehensionKind {
    All,
    Exists,
    ExistsOne,
    /// `map(x, t)`, `map(x, f, t)`; over a map the variable is the key.
    Map,
    Filter,
    /// `transformList(i, v, [f,] t)`: a list from a list's (index, value) or a map's (key, value) pairs.
    TransformList,
    /// `transformMap(k, v, [f,] t)`: a map with the same keys and transformed values.
    TransformMap,
    /// `opt.optMap(x, t)`: applies `t` to the optional's value.
    OptMap,
    /// `opt.optFlatMap(x, t)`: like `optMap`, where `t` is itself optional.
    OptFlatMap,
    /// `sort_by(x, key)`: a stable sort by the key.
    SortBy,
    /// `group_by(x, key)`: a map from each key to the elements with that key, in order.
    GroupBy,
    /// `count(x, pred)`: how many elements satisfy the predicate.
    CountIf,
}

/// A resolved function or operator. The checker picks the function (and checks the
/// argument types against its signatures in the catalogue); the runtime dispatches on
/// the function and the argument values' kinds, and the JIT on the function and the
/// arguments' static types (read from the argument nodes). Receiver-style calls pass
/// the receiver as `args[0]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Overload {
    // operators
    Not,
    Neg,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    // conversions and types
    ToInt,
    ToUInt,
    ToDouble,
    ToString,
    ToBytes,
    ToBool,
    ToTimestamp,
    ToDuration,
    ToDyn,
    TypeOf,
    /// `string()` of any value, as used by string interpolation (lists and maps as JSON).
    Stringify,
    Size,
    // strings
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    CharAt,
    IndexOf,
    LastIndexOf,
    LowerAscii,
    UpperAscii,
    Replace,
    Split,
    Substring,
    Trim,
    Join,
    Format,
    Quote,
    ParseJson,
    Reverse,
    // timestamps and durations
    GetFullYear,
    GetMonth,
    GetDayOfYear,
    GetDayOfMonth,
    GetDate,
    GetDayOfWeek,
    GetHours,
    GetMinutes,
    GetSeconds,
    GetMilliseconds,
    // math extension
    Greatest,
    Least,
    Ceil,
    Floor,
    Round,
    Trunc,
    Abs,
    Sign,
    IsNaN,
    IsInf,
    IsFinite,
    BitAnd,
    BitOr,
    BitXor,
    BitNot,
    BitShiftLeft,
    BitShiftRight,
    // CEL optionals
    OptionalOf,
    OptionalNone,
    OptionalOfNonZeroValue,
    HasValue,
    OptionalValue,
    OrValue,
    Or,
    // list aggregates
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Distinct,
    Flatten,
}
