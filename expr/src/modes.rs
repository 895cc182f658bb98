//! Evaluation modes: how an integration's clauses read the same expressions differently
//! from a workflow. A request clause leaves null fields out of the literals it sends; a
//! `result` clause reads an answer, where a missing field is null and a conversion to the
//! declared type is lenient. The mode applies to the literals, field reads and
//! conversions at the top of an expression; whatever is below them is evaluated by the
//! program's tier (interpreter or JIT) with the language's own meaning, so the two tiers
//! agree in every mode (`tests/modes.rs`).

use std::sync::Arc;

use flow_ir::expr::{ExprId, NodeKind};

use crate::Program;
use crate::error::EvalError;
use crate::interp::Context;
use crate::json::{Leniency, convert_with};
use crate::value::{Map, Record, Value};

/// How [`Program::eval_in`] reads an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The language's meaning: the same as [`Program::eval`].
    Standard,
    /// A `query`, `headers` or `body` clause: null fields and entries of literals are left
    /// out, and a conversion keeps its value (the wire encodings do not depend on static
    /// types).
    Request,
    /// A `result` clause reading an answer: a missing field reads as null, and a
    /// conversion to a declared type goes through [`convert_with`] with this leniency,
    /// its errors naming the path from `result`.
    Answer(Leniency),
}

impl Program {
    /// Evaluates `root` in `mode` (see [`Mode`]).
    pub fn eval_in(
        &self,
        mode: Mode,
        root: ExprId,
        locals: &mut [Value],
        ctx: &dyn Context,
    ) -> Result<Value, EvalError> {
        if mode == Mode::Standard {
            return self.eval(root, locals, ctx);
        }
        let Some(node) = self.arena().node(root) else {
            return Err(EvalError::invalid_argument(
                "internal error: unknown expression",
            ));
        };
        let request = mode == Mode::Request;
        match &node.kind {
            NodeKind::Record { fields } => {
                let mut out = Vec::with_capacity(fields.len());
                for (name, id) in fields {
                    let v = self.eval_in(mode, *id, locals, ctx)?;
                    if request && v.is_null() {
                        continue;
                    }
                    out.push((Arc::from(name.as_str()), v));
                }
                Ok(Value::Record(Arc::new(Record::new(out))))
            }
            NodeKind::Map { entries } => {
                let mut out = Vec::with_capacity(entries.len());
                for e in entries {
                    let k = self.eval_in(mode, e.key, locals, ctx)?;
                    let v = self.eval_in(mode, e.value, locals, ctx)?;
                    if request && v.is_null() {
                        continue;
                    }
                    out.push((k, v));
                }
                Ok(Value::Map(Arc::new(Map::new(out)?)))
            }
            NodeKind::List { items, optional } if !optional.iter().any(|o| *o) => {
                let mut out = Vec::with_capacity(items.len());
                for id in items {
                    out.push(self.eval_in(mode, *id, locals, ctx)?);
                }
                Ok(Value::list(out))
            }
            NodeKind::Convert { value, to } => {
                let v = self.eval_in(mode, *value, locals, ctx)?;
                match mode {
                    Mode::Answer(leniency) => Ok(convert_with(&v, to, "result", leniency)?),
                    Mode::Request | Mode::Standard => Ok(v),
                }
            }
            NodeKind::Field {
                target,
                field,
                null_safe,
                ..
            } if matches!(mode, Mode::Answer(_)) => {
                let t = self.eval_in(mode, *target, locals, ctx)?;
                match &t {
                    Value::Map(m) => Ok(m.get_str(field).cloned().unwrap_or(Value::Null)),
                    Value::Record(r) => Ok(r.get(field).cloned().unwrap_or(Value::Null)),
                    Value::Null => Ok(Value::Null),
                    _ if *null_safe => Ok(Value::Null),
                    _ => self.eval(root, locals, ctx),
                }
            }
            _ => self.eval(root, locals, ctx),
        }
    }
}
