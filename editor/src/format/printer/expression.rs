//! Laying out expressions: call arguments, operators, and chains of selections and calls
//! broken one link a line when they do not fit.

use super::*;

impl<'s> Printer<'s> {
    pub(super) fn args(&mut self, args: &[Arg]) -> R<Doc> {
        self.delimited("(", ")", false, args, |p, arg| {
            let mut docs = Vec::new();
            if let Some(name) = &arg.name {
                docs.extend([p.ident(name)?, p.token(":")?, sp()]);
            }
            docs.push(p.expr(&arg.value)?);
            Ok(Doc::Seq(docs))
        })
    }

    pub(super) fn expr(&mut self, e: &Expr) -> R<Doc> {
        self.parenthesized(e.span, |p| p.expr_inner(e))
    }

    pub(super) fn expr_inner(&mut self, e: &Expr) -> R<Doc> {
        match &e.kind {
            ExprKind::Null
            | ExprKind::Bool(_)
            | ExprKind::Int(_)
            | ExprKind::UInt(_)
            | ExprKind::Double(_)
            | ExprKind::String(_)
            | ExprKind::Bytes(_)
            | ExprKind::Duration(_)
            | ExprKind::Interpolated(_)
            | ExprKind::Ident { .. } => self.span_text(e.span),
            ExprKind::Member { .. }
            | ExprKind::Index { .. }
            | ExprKind::Call {
                target: Some(_), ..
            } => self.chain(e),
            ExprKind::Call {
                target: None,
                function,
                args,
                root,
                ..
            } => {
                let mut docs = Vec::new();
                if *root {
                    docs.push(self.token(".")?);
                }
                docs.extend([self.ident(function)?, self.args(args)?]);
                Ok(Doc::Seq(docs))
            }
            ExprKind::Unary { op, operand } => {
                let symbol = match op {
                    UnaryOp::Not => "!",
                    UnaryOp::Neg => "-",
                };
                Ok(Doc::Seq(vec![self.token(symbol)?, self.expr(operand)?]))
            }
            ExprKind::Binary { op, lhs, rhs } => Ok(Doc::Seq(vec![
                self.expr(lhs)?,
                sp(),
                self.token(op.symbol())?,
                sp(),
                self.expr(rhs)?,
            ])),
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                // Too long for one line, a conditional breaks before `?` and `:`, each
                // branch on a line of its own one level deeper.
                let condition = self.expr(condition)?;
                let question = self.token("?")?;
                let then = self.expr(then)?;
                let colon = self.token(":")?;
                let otherwise = self.expr(otherwise)?;
                Ok(Doc::group(vec![
                    condition,
                    Doc::Indent(vec![
                        SPACE,
                        question,
                        sp(),
                        then,
                        SPACE,
                        colon,
                        sp(),
                        otherwise,
                    ]),
                ]))
            }
            ExprKind::List(items) => self.delimited("[", "]", false, items, |p, item| {
                let mut docs = Vec::new();
                if item.optional {
                    docs.push(p.token("?")?);
                }
                docs.push(p.expr(&item.value)?);
                Ok(Doc::Seq(docs))
            }),
            ExprKind::Map(entries) => self.delimited("{", "}", true, entries, |p, entry| {
                let mut docs = Vec::new();
                if entry.optional {
                    docs.push(p.token("?")?);
                }
                docs.extend([
                    p.expr(&entry.key)?,
                    p.token(":")?,
                    sp(),
                    p.expr(&entry.value)?,
                ]);
                Ok(Doc::Seq(docs))
            }),
            ExprKind::Record(fields) => self.delimited("{", "}", true, fields, |p, field| {
                Ok(Doc::Seq(vec![
                    p.ident(&field.name)?,
                    p.token(":")?,
                    sp(),
                    p.expr(&field.value)?,
                ]))
            }),
        }
    }

    /// A postfix chain (`a.b(x).c[0].d(y)`). With two calls or more it may break before
    /// each call, one per line, indented under its start.
    pub(super) fn chain(&mut self, e: &Expr) -> R<Doc> {
        let mut links = Vec::new();
        let mut base = e;
        while let Some(target) = postfix_target(base) {
            links.push(base);
            base = target;
            if self.parens_around(target.span) > 0 {
                break;
            }
        }
        let base_doc = self.expr(base)?;
        let calls = links
            .iter()
            .filter(|l| matches!(l.kind, ExprKind::Call { .. }))
            .count();
        let mut link_docs = Vec::new();
        for link in links.iter().rev() {
            let is_call = matches!(link.kind, ExprKind::Call { .. });
            if calls >= 2 && is_call {
                link_docs.push(SOFT);
            }
            link_docs.push(self.link(link)?);
        }
        if calls >= 2 {
            // A comment after the chain's last token belongs after the chain, not inside it.
            let after = link_docs
                .last_mut()
                .map(take_trailing_comments)
                .unwrap_or_default();
            let mut docs = vec![Doc::group(vec![base_doc, Doc::Indent(link_docs)])];
            docs.extend(after);
            Ok(Doc::Seq(docs))
        } else {
            let mut docs = vec![base_doc];
            docs.extend(link_docs);
            Ok(Doc::Seq(docs))
        }
    }

    /// One link of a chain, without its target.
    pub(super) fn link(&mut self, link: &Expr) -> R<Doc> {
        match &link.kind {
            ExprKind::Member { field, access, .. } => {
                Ok(Doc::Seq(vec![self.access(*access)?, self.ident(field)?]))
            }
            ExprKind::Index { index, access, .. } => {
                let mut docs = vec![self.token("[")?];
                if *access == Access::CelOptional {
                    docs.push(self.token("?")?);
                }
                docs.extend([self.expr(index)?, self.token("]")?]);
                Ok(Doc::Seq(docs))
            }
            ExprKind::Call {
                function,
                args,
                access,
                ..
            } => Ok(Doc::Seq(vec![
                self.access(*access)?,
                self.ident(function)?,
                self.args(args)?,
            ])),
            _ => Err(self.mismatch("a member, index or call")),
        }
    }

    pub(super) fn access(&mut self, access: Access) -> R<Doc> {
        self.token(match access {
            Access::Plain => ".",
            Access::NullSafe => "?.",
            Access::CelOptional => ".?",
        })
    }
}
