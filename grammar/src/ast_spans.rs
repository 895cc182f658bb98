//! Visiting every span of an AST mutably: relocating a cached item to where it now sits
//! in an edited file, or erasing spans to compare two trees for meaning only.

use crate::ast::*;
use crate::span::{FileId, Span};

/// A tree whose spans can be visited in place.
pub trait SpansMut {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span));

    /// Moves every span to `file`, shifted by `delta` bytes.
    fn relocate(&mut self, file: FileId, delta: i64) {
        self.for_each_span(&mut |s| {
            s.file = file;
            s.start = shift(s.start, delta);
            s.end = shift(s.end, delta);
        });
    }

    /// Sets every span to the empty span, so that trees compare by meaning alone.
    fn erase_spans(&mut self) {
        self.for_each_span(&mut |s| *s = Span::default());
    }
}

fn shift(offset: u32, delta: i64) -> u32 {
    u32::try_from((i64::from(offset) + delta).max(0)).unwrap_or(u32::MAX)
}

impl<T: SpansMut> SpansMut for Vec<T> {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        for item in self {
            item.for_each_span(f);
        }
    }
}

impl<T: SpansMut> SpansMut for Option<T> {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        if let Some(item) = self {
            item.for_each_span(f);
        }
    }
}

impl<T: SpansMut> SpansMut for Box<T> {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        (**self).for_each_span(f);
    }
}

impl SpansMut for Span {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        f(self);
    }
}

/// Implements [`SpansMut`] for a struct by visiting the listed fields.
macro_rules! spans_of_struct {
    ($($ty:ty => [$($field:ident),*];)*) => {
        $(impl SpansMut for $ty {
            fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
                $(self.$field.for_each_span(f);)*
            }
        })*
    };
}

spans_of_struct! {
    Ident => [span];
    Path => [segments, span];
    Module => [items, span];
    Import => [target, alias, span];
    TypeDecl => [name, ty, span];
    ConstDecl => [name, ty, value, span];
    TypeExpr => [kind, span];
    FieldType => [name, ty, span];
    Param => [name, ty, default, span];
    Integration => [name, members, span];
    IntegrationSetting => [name, value, span];
    Action => [name, params, result, clauses, span];
    ActionClause => [kind, span];
    Event => [name, params, result, clauses, span];
    EventClause => [kind, span];
    Workflow => [name, params, result, body, span];
    Block => [statements, span];
    Statement => [kind, span];
    Trigger => [source, args, as_type, when, span];
    SettingEntry => [name, value, span];
    IfBranch => [condition, body, span];
    Step => [name, call, modifiers];
    Modifier => [kind, span];
    Retry => [attempts, delay, backoff, max_delay];
    TestDecl => [name_span, statements, span];
    TestStatement => [kind, span];
    MockBehaviour => [outcome, times, span];
    Arg => [name, value, span];
    Expr => [kind, span];
    ListElement => [value];
    MapEntry => [key, value, span];
    FieldInit => [name, value, span];
}

impl SpansMut for Item {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            Item::Import(i) => i.for_each_span(f),
            Item::Type(i) => i.for_each_span(f),
            Item::Const(i) => i.for_each_span(f),
            Item::Integration(i) => i.for_each_span(f),
            Item::Workflow(i) => i.for_each_span(f),
            Item::Test(i) => i.for_each_span(f),
        }
    }
}

impl SpansMut for ImportTarget {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            ImportTarget::Module(name) => name.for_each_span(f),
            ImportTarget::File { span, .. } => f(span),
        }
    }
}

impl SpansMut for TypeExprKind {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            TypeExprKind::Named(path) => path.for_each_span(f),
            TypeExprKind::List(t) | TypeExprKind::Optional(t) => t.for_each_span(f),
            TypeExprKind::Map(k, v) => {
                k.for_each_span(f);
                v.for_each_span(f);
            }
            TypeExprKind::Record(fields) => fields.for_each_span(f),
        }
    }
}

impl SpansMut for IntegrationMember {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            IntegrationMember::Setting(s) => s.for_each_span(f),
            IntegrationMember::Type(t) => t.for_each_span(f),
            IntegrationMember::Action(a) => a.for_each_span(f),
            IntegrationMember::Event(e) => e.for_each_span(f),
            IntegrationMember::Error(span) => f(span),
        }
    }
}

impl SpansMut for SettingValue {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            SettingValue::Expr(e) => e.for_each_span(f),
            SettingValue::RateLimit { count, per } => {
                count.for_each_span(f);
                per.for_each_span(f);
            }
            SettingValue::Endpoint { method, path } => {
                method.for_each_span(f);
                path.for_each_span(f);
            }
        }
    }
}

impl SpansMut for ActionClauseKind {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            ActionClauseKind::Error => {}
            ActionClauseKind::Request { method, path } => {
                method.for_each_span(f);
                path.for_each_span(f);
            }
            ActionClauseKind::Query(e)
            | ActionClauseKind::Headers(e)
            | ActionClauseKind::Result(e)
            | ActionClauseKind::Timeout(e) => e.for_each_span(f),
            ActionClauseKind::Body { kind, value } => {
                kind.for_each_span(f);
                value.for_each_span(f);
            }
            ActionClauseKind::Paginate { kind, args } => {
                kind.for_each_span(f);
                args.for_each_span(f);
            }
            ActionClauseKind::ErrorWhen { condition, message } => {
                condition.for_each_span(f);
                message.for_each_span(f);
            }
        }
    }
}

impl SpansMut for EventClauseKind {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            EventClauseKind::Error => {}
            EventClauseKind::Webhook(e) | EventClauseKind::When(e) | EventClauseKind::Result(e) => {
                e.for_each_span(f)
            }
            EventClauseKind::Verify { scheme, args } => {
                scheme.for_each_span(f);
                args.for_each_span(f);
            }
        }
    }
}

impl SpansMut for StatementKind {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            StatementKind::On(trigger) => trigger.for_each_span(f),
            StatementKind::Settings(entries) => entries.for_each_span(f),
            StatementKind::Let { name, ty, value } => {
                name.for_each_span(f);
                ty.for_each_span(f);
                value.for_each_span(f);
            }
            StatementKind::Step(step) => step.for_each_span(f),
            StatementKind::Wait(Wait::For(e) | Wait::Until(e)) => e.for_each_span(f),
            StatementKind::Notify {
                integration,
                target,
                message,
            } => {
                integration.for_each_span(f);
                target.for_each_span(f);
                message.for_each_span(f);
            }
            StatementKind::If {
                branches,
                otherwise,
            } => {
                branches.for_each_span(f);
                otherwise.for_each_span(f);
            }
            StatementKind::For {
                var,
                iterable,
                parallel,
                body,
            } => {
                var.for_each_span(f);
                iterable.for_each_span(f);
                parallel.for_each_span(f);
                body.for_each_span(f);
            }
            StatementKind::Try {
                body,
                error,
                handler,
            } => {
                body.for_each_span(f);
                error.for_each_span(f);
                handler.for_each_span(f);
            }
            StatementKind::Fail(e) | StatementKind::Log(e) => e.for_each_span(f),
            StatementKind::Return(e) => e.for_each_span(f),
            StatementKind::Error { declares } => declares.for_each_span(f),
        }
    }
}

impl SpansMut for StepCall {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            StepCall::Action { target, args, span } | StepCall::Workflow { target, args, span } => {
                target.for_each_span(f);
                args.for_each_span(f);
                f(span);
            }
            StepCall::Wait {
                target,
                args,
                as_type,
                when,
                span,
            } => {
                target.for_each_span(f);
                args.for_each_span(f);
                as_type.for_each_span(f);
                when.for_each_span(f);
                f(span);
            }
        }
    }
}

impl SpansMut for ModifierKind {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            ModifierKind::After(names) => names.for_each_span(f),
            ModifierKind::Retry(retry) => retry.for_each_span(f),
            ModifierKind::Timeout(e) | ModifierKind::Cache(e) | ModifierKind::IdempotencyKey(e) => {
                e.for_each_span(f)
            }
        }
    }
}

impl SpansMut for TestStatementKind {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            TestStatementKind::Mock { target, behaviours } => {
                target.for_each_span(f);
                behaviours.for_each_span(f);
            }
            TestStatementKind::Run { target, args } => {
                target.for_each_span(f);
                args.for_each_span(f);
            }
            TestStatementKind::Expect(e) => e.for_each_span(f),
            TestStatementKind::Error { declares } => declares.for_each_span(f),
            TestStatementKind::Let { name, ty, value } => {
                name.for_each_span(f);
                ty.for_each_span(f);
                value.for_each_span(f);
            }
        }
    }
}

impl SpansMut for MockOutcome {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            MockOutcome::Returns(e) => e.for_each_span(f),
            MockOutcome::Fails { kind, message } => {
                kind.for_each_span(f);
                message.for_each_span(f);
            }
        }
    }
}

impl SpansMut for StringPart {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        if let StringPart::Expr(e) = self {
            e.for_each_span(f);
        }
    }
}

impl SpansMut for ExprKind {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        match self {
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Int(_)
            | ExprKind::UInt(_)
            | ExprKind::Double(_)
            | ExprKind::String(_)
            | ExprKind::Bytes(_)
            | ExprKind::Duration(_)
            | ExprKind::Ident { .. } => {}
            ExprKind::Interpolated(parts) => parts.for_each_span(f),
            ExprKind::Member { target, field, .. } => {
                target.for_each_span(f);
                field.for_each_span(f);
            }
            ExprKind::Index { target, index, .. } => {
                target.for_each_span(f);
                index.for_each_span(f);
            }
            ExprKind::Call {
                target,
                function,
                args,
                ..
            } => {
                target.for_each_span(f);
                function.for_each_span(f);
                args.for_each_span(f);
            }
            ExprKind::Unary { operand, .. } => operand.for_each_span(f),
            ExprKind::Binary { lhs, rhs, .. } => {
                lhs.for_each_span(f);
                rhs.for_each_span(f);
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                condition.for_each_span(f);
                then.for_each_span(f);
                otherwise.for_each_span(f);
            }
            ExprKind::List(items) => items.for_each_span(f),
            ExprKind::Map(entries) => entries.for_each_span(f),
            ExprKind::Record(fields) => fields.for_each_span(f),
        }
    }
}

impl SpansMut for crate::diagnostic::Diagnostic {
    fn for_each_span(&mut self, f: &mut dyn FnMut(&mut Span)) {
        f(&mut self.span);
        for label in &mut self.labels {
            f(&mut label.span);
        }
    }
}
