//! The abstract syntax tree. Every node carries a [`Span`]; doc comments (`///`) are kept
//! on the items, fields, params, steps, actions and events they document.

use std::fmt;

use crate::span::{FileId, Span};

/// A name as written, with where it was written.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

impl fmt::Debug for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{:?}", self.name, self.span)
    }
}

/// A dotted name such as `slack.post_message` or `common.Customer`.
#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    pub segments: Vec<Ident>,
    pub span: Span,
}

impl Path {
    /// The segments joined with dots.
    pub fn dotted(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// One parsed `.flow` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Module {
    pub file: FileId,
    pub items: Vec<Item>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Import(Import),
    Type(TypeDecl),
    Const(ConstDecl),
    Integration(Integration),
    Workflow(Workflow),
    Test(TestDecl),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Import(i) => i.span,
            Item::Type(i) => i.span,
            Item::Const(i) => i.span,
            Item::Integration(i) => i.span,
            Item::Workflow(i) => i.span,
            Item::Test(i) => i.span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ImportTarget {
    /// `import slack`: a standard-library module.
    Module(Ident),
    /// `import "./common.flow"`: a file relative to the importing file.
    File { path: String, span: Span },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Import {
    pub target: ImportTarget,
    pub alias: Option<Ident>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypeDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConstDecl {
    pub doc: Option<String>,
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub value: Expr,
    pub span: Span,
}

// ------------------------------------------------------------------ types

#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    pub kind: TypeExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TypeExprKind {
    /// `int`, `string`, `Customer`, `slack.Message`.
    Named(Path),
    List(Box<TypeExpr>),
    Map(Box<TypeExpr>, Box<TypeExpr>),
    Record(Vec<FieldType>),
    /// `T?`
    Optional(Box<TypeExpr>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldType {
    pub doc: Option<String>,
    pub name: Ident,
    pub ty: TypeExpr,
    pub span: Span,
}

/// A workflow, action or event parameter: `name: Type = default`.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub doc: Option<String>,
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub span: Span,
}

// ------------------------------------------------------------------ integrations

#[derive(Clone, Debug, PartialEq)]
pub struct Integration {
    pub doc: Option<String>,
    pub name: Ident,
    pub members: Vec<IntegrationMember>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum IntegrationMember {
    Setting(IntegrationSetting),
    Type(TypeDecl),
    Action(Action),
    Event(Event),
    /// A member that did not parse (the item's syntax error says why), at this span.
    Error(Span),
}

/// `base_url = "..."`, `auth = bearer(...)`, `rate_limit = 50 per 1m`, `health = GET "/x"`.
#[derive(Clone, Debug, PartialEq)]
pub struct IntegrationSetting {
    pub doc: Option<String>,
    pub name: Ident,
    pub value: SettingValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SettingValue {
    Expr(Expr),
    /// `50 per 1m`
    RateLimit {
        count: Expr,
        per: Expr,
    },
    /// `GET "/api.test"`
    Endpoint {
        method: Ident,
        path: Expr,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    pub doc: Option<String>,
    pub idempotent: bool,
    pub name: Ident,
    pub params: Vec<Param>,
    pub result: Option<TypeExpr>,
    pub clauses: Vec<ActionClause>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ActionClause {
    pub kind: ActionClauseKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ActionClauseKind {
    /// A clause that did not parse (the item's syntax error says why).
    Error,
    /// `POST "/chat.postMessage"`
    Request {
        method: Ident,
        path: Expr,
    },
    Query(Expr),
    Headers(Expr),
    /// `body json { ... }`; the kind is `json`, `form`, `xml`, `text` or `multipart`.
    Body {
        kind: Ident,
        value: Expr,
    },
    /// `paginate cursor(next, param: "cursor")`
    Paginate {
        kind: Ident,
        args: Vec<Arg>,
    },
    /// `error_when COND => MESSAGE`
    ErrorWhen {
        condition: Expr,
        message: Expr,
    },
    Result(Expr),
    Timeout(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub doc: Option<String>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub result: TypeExpr,
    pub clauses: Vec<EventClause>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventClause {
    pub kind: EventClauseKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum EventClauseKind {
    /// A clause that did not parse (the item's syntax error says why).
    Error,
    Webhook(Expr),
    /// `verify slack_signature(secret("signing_secret"))`
    Verify {
        scheme: Ident,
        args: Vec<Arg>,
    },
    When(Expr),
    Result(Expr),
}

// ------------------------------------------------------------------ workflows

#[derive(Clone, Debug, PartialEq)]
pub struct Workflow {
    pub doc: Option<String>,
    pub name: Ident,
    pub params: Vec<Param>,
    pub result: Option<TypeExpr>,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub statements: Vec<Statement>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub doc: Option<String>,
    pub kind: StatementKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StatementKind {
    On(Trigger),
    Settings(Vec<SettingEntry>),
    Let {
        name: Ident,
        ty: Option<TypeExpr>,
        value: Expr,
    },
    Step(Step),
    Wait(Wait),
    Notify {
        integration: Ident,
        target: Expr,
        message: Expr,
    },
    If {
        branches: Vec<IfBranch>,
        otherwise: Option<Block>,
    },
    For {
        var: Ident,
        iterable: Expr,
        parallel: Option<Expr>,
        body: Block,
    },
    Try {
        body: Block,
        error: Option<Ident>,
        handler: Block,
    },
    Fail(Expr),
    Return(Option<Expr>),
    Log(Expr),
    /// A statement that did not parse (the item's syntax error says why); the rest of the
    /// item was kept around it. `declares`: the name it was declaring, when its text starts
    /// `step NAME` or `let NAME`, so reads of the name elsewhere are not reported too.
    Error {
        declares: Option<Ident>,
    },
}

/// `on schedule("0 6 * * *", tz: "UTC")`, `on webhook("/x") as T`, `on slack.message(...) when C`.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    pub source: Path,
    pub args: Vec<Arg>,
    pub as_type: Option<TypeExpr>,
    pub when: Option<Expr>,
    pub span: Span,
}

/// `name = value` inside `settings { ... }`.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingEntry {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IfBranch {
    pub condition: Expr,
    pub body: Block,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Wait {
    /// `wait 10m`
    For(Expr),
    /// `wait until EXPR`
    Until(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: Ident,
    pub call: StepCall,
    pub modifiers: Vec<Modifier>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StepCall {
    /// `integration.action(args)`
    Action {
        target: Path,
        args: Vec<Arg>,
        span: Span,
    },
    /// `run workflow(args)`
    Workflow {
        target: Path,
        args: Vec<Arg>,
        span: Span,
    },
    /// `wait signal("name") as T` (a signal sent to the run) or
    /// `wait integration.event(args) when COND` (a delivery of an integration's event).
    Wait {
        target: Path,
        args: Vec<Arg>,
        /// The payload's type (`as T`); without it, `dyn`.
        as_type: Option<TypeExpr>,
        /// Which delivery the run takes (event waits).
        when: Option<Expr>,
        span: Span,
    },
}

impl StepCall {
    pub fn target(&self) -> &Path {
        match self {
            StepCall::Action { target, .. }
            | StepCall::Workflow { target, .. }
            | StepCall::Wait { target, .. } => target,
        }
    }

    pub fn args(&self) -> &[Arg] {
        match self {
            StepCall::Action { args, .. }
            | StepCall::Workflow { args, .. }
            | StepCall::Wait { args, .. } => args,
        }
    }

    pub fn span(&self) -> Span {
        match self {
            StepCall::Action { span, .. }
            | StepCall::Workflow { span, .. }
            | StepCall::Wait { span, .. } => *span,
        }
    }

    /// Whether this is `wait signal(...)`: a wait whose target is the single name `signal`.
    pub fn is_signal_wait(&self) -> bool {
        matches!(self, StepCall::Wait { target, .. }
            if target.segments.len() == 1 && target.segments[0].name == "signal")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Modifier {
    pub kind: ModifierKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ModifierKind {
    After(Vec<Ident>),
    Retry(Retry),
    Timeout(Expr),
    Cache(Expr),
    IdempotencyKey(Expr),
}

impl ModifierKind {
    /// The keyword that introduces the modifier.
    pub fn keyword(&self) -> &'static str {
        match self {
            ModifierKind::After(_) => "after",
            ModifierKind::Retry(_) => "retry",
            ModifierKind::Timeout(_) => "timeout",
            ModifierKind::Cache(_) => "cache",
            ModifierKind::IdempotencyKey(_) => "idempotency_key",
        }
    }
}

/// `retry N delay D backoff F max_delay D jitter`
#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    pub attempts: Expr,
    pub delay: Option<Expr>,
    pub backoff: Option<Expr>,
    pub max_delay: Option<Expr>,
    pub jitter: bool,
}

// ------------------------------------------------------------------ tests

#[derive(Clone, Debug, PartialEq)]
pub struct TestDecl {
    pub doc: Option<String>,
    pub name: String,
    pub name_span: Span,
    pub statements: Vec<TestStatement>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TestStatement {
    pub kind: TestStatementKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TestStatementKind {
    /// `mock jira.create_issue fails communication("x") times 1 then returns {...}`
    Mock {
        target: Path,
        behaviours: Vec<MockBehaviour>,
    },
    /// `run workflow(args)`
    Run {
        target: Path,
        args: Vec<Arg>,
    },
    Expect(Expr),
    Let {
        name: Ident,
        ty: Option<TypeExpr>,
        value: Expr,
    },
    /// A statement that did not parse (the item's syntax error says why); `declares` as
    /// for [`StatementKind::Error`].
    Error {
        declares: Option<Ident>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct MockBehaviour {
    pub outcome: MockOutcome,
    pub times: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum MockOutcome {
    Returns(Expr),
    /// `fails KIND("message")`
    Fails {
        kind: Ident,
        message: Option<Expr>,
    },
}

// ------------------------------------------------------------------ expressions

/// A call argument, positional or named (`channel: "#general"`).
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Coalesce,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::Coalesce => "??",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }
}

/// How a field or index is selected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `a.b`, `a[i]`
    Plain,
    /// `a?.b`: null when `a` is null (Flow's optional chaining).
    NullSafe,
    /// `a.?b`, `a[?i]`: CEL's optional selection, yielding an optional value.
    CelOptional,
}

/// One piece of an interpolated string.
#[derive(Clone, Debug, PartialEq)]
pub enum StringPart {
    Text(String),
    Expr(Expr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ListElement {
    /// `?x` in a list literal: the element is included only when the optional has a value.
    pub optional: bool,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MapEntry {
    pub optional: bool,
    pub key: Expr,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FieldInit {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    String(String),
    Bytes(Vec<u8>),
    /// A duration literal in nanoseconds.
    Duration(i64),
    /// `"Hello ${name}"`
    Interpolated(Vec<StringPart>),
    /// A name; `root` when written with CEL's leading dot (`.a`).
    Ident {
        name: String,
        root: bool,
    },
    Member {
        target: Box<Expr>,
        field: Ident,
        access: Access,
    },
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
        access: Access,
    },
    /// `f(args)` (no target) or `target.f(args)` (receiver style, `?.` when null-safe).
    Call {
        target: Option<Box<Expr>>,
        function: Ident,
        args: Vec<Arg>,
        access: Access,
        root: bool,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Conditional {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    List(Vec<ListElement>),
    Map(Vec<MapEntry>),
    Record(Vec<FieldInit>),
}

impl Expr {
    /// The direct sub-expressions, in source order.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Int(_)
            | ExprKind::UInt(_)
            | ExprKind::Double(_)
            | ExprKind::String(_)
            | ExprKind::Bytes(_)
            | ExprKind::Duration(_)
            | ExprKind::Ident { .. } => Vec::new(),
            ExprKind::Interpolated(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    StringPart::Expr(e) => Some(e),
                    StringPart::Text(_) => None,
                })
                .collect(),
            ExprKind::Member { target, .. } => vec![target],
            ExprKind::Index { target, index, .. } => vec![target, index],
            ExprKind::Call { target, args, .. } => target
                .iter()
                .map(|t| &**t)
                .chain(args.iter().map(|a| &a.value))
                .collect(),
            ExprKind::Unary { operand, .. } => vec![operand],
            ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => vec![condition, then, otherwise],
            ExprKind::List(items) => items.iter().map(|e| &e.value).collect(),
            ExprKind::Map(entries) => entries.iter().flat_map(|e| [&e.key, &e.value]).collect(),
            ExprKind::Record(fields) => fields.iter().map(|f| &f.value).collect(),
        }
    }
}
