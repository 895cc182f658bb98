//! Building expressions: the flat runs of operands and operators folded by precedence
//! with explicit stacks, primaries, literals, strings and their interpolations, and call
//! arguments.

use super::*;

impl<'s> Builder<'s> {
    pub(crate) fn expression_input(&self, p: P<'_>) -> R<Expr> {
        self.expr(first(p))
    }

    pub(super) fn expr(&self, p: P<'_>) -> R<Expr> {
        self.expr_built(p).map(|(e, _)| e)
    }

    pub(super) fn check_depth(&self, depth: u32, span: Span) -> R<()> {
        if depth > MAX_EXPRESSION_DEPTH {
            Err(self
                .error(
                    codes::NESTING_TOO_DEEP,
                    span,
                    format!(
                        "expression nested too deeply (more than {MAX_EXPRESSION_DEPTH} levels)"
                    ),
                )
                .with_help("give parts of the expression names with `let`"))
        } else {
            Ok(())
        }
    }

    /// Folds an expression's flat sequence of operands and operators by precedence
    /// (shunting-yard with explicit stacks, so long chains cost no recursion), then
    /// applies a trailing `? then : else`.
    pub(super) fn expr_built(&self, p: P<'_>) -> R<Built> {
        let mut children = p.into_children().peekable();
        let mut operands: Vec<Built> = Vec::new();
        let mut operators: Vec<BinaryOp> = Vec::new();
        let mut ternary = None;
        loop {
            operands.push(self.operand(&mut children)?);
            match children.peek().map(Pair::as_rule) {
                Some(Rule::ternary) => {
                    ternary = children.next();
                    break;
                }
                Some(rule) if is_infix(rule) => {
                    let op = binary_op(rule);
                    children.next();
                    while let Some(&top) = operators.last() {
                        if precedence(top) < precedence(op) {
                            break;
                        }
                        operators.pop();
                        self.reduce(&mut operands, top)?;
                    }
                    operators.push(op);
                }
                _ => break,
            }
        }
        while let Some(op) = operators.pop() {
            self.reduce(&mut operands, op)?;
        }
        let (condition, dc) = operands.pop().ok_or_else(missing_node)?;
        let Some(ternary) = ternary else {
            return Ok((condition, dc));
        };
        let mut parts = ternary.into_children();
        let (then, dt) = self.expr_built(next(&mut parts)?)?;
        let (otherwise, de) = self.expr_built(next(&mut parts)?)?;
        let depth = dc.max(dt).max(de) + 1;
        let span = condition.span.to(otherwise.span);
        self.check_depth(depth, span)?;
        let kind = ExprKind::Conditional {
            condition: Box::new(condition),
            then: Box::new(then),
            otherwise: Box::new(otherwise),
        };
        Ok((Expr { kind, span }, depth))
    }

    /// Replaces the top two operands by their combination with `op`.
    pub(super) fn reduce(&self, operands: &mut Vec<Built>, op: BinaryOp) -> R<()> {
        let (rhs, dr) = operands.pop().ok_or_else(missing_node)?;
        let (lhs, dl) = operands.pop().ok_or_else(missing_node)?;
        let depth = dl.max(dr) + 1;
        let span = lhs.span.to(rhs.span);
        self.check_depth(depth, span)?;
        operands.push((
            Expr {
                kind: ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            },
            depth,
        ));
        Ok(())
    }

    /// One operand: prefix operators, a primary, then postfix selections and calls.
    /// Postfix binds tighter than prefix: `-a.b` is `-(a.b)`.
    pub(super) fn operand<'i>(&self, children: &mut Peekable<Children<'i>>) -> R<Built> {
        let mut prefix: Vec<P<'i>> = Vec::new();
        let primary = loop {
            let part = next(children)?;
            match part.as_rule() {
                Rule::op_not | Rule::op_neg => prefix.push(part),
                _ => break part,
            }
        };
        let has_postfix = children.peek().is_some_and(|c| is_postfix(c.as_rule()));
        // `-` directly before a numeric literal is part of the literal, so that
        // -9223372036854775808 is a valid int.
        let fold = !has_postfix
            && prefix.last().is_some_and(|op| op.as_rule() == Rule::op_neg)
            && matches!(primary.as_rule(), Rule::int | Rule::double | Rule::duration);
        let (mut expr, mut depth) = if fold {
            let minus = prefix.pop().ok_or_else(missing_node)?;
            let span = self.span(&minus).to(self.span(&primary));
            (self.number(primary, true, span)?, 1)
        } else {
            self.primary(primary)?
        };
        while children.peek().is_some_and(|c| is_postfix(c.as_rule())) {
            let post = next(children)?;
            let span = expr.span.to(self.span(&post));
            let rule = post.as_rule();
            let mut parts = post.into_children();
            let (kind, child_depth) = match rule {
                Rule::member | Rule::optional_member | Rule::cel_optional_member => {
                    let access = access_of(rule);
                    let field = self.ident(next(&mut parts)?);
                    match parts.next() {
                        Some(args) => {
                            let (args, d) = self.args_built(args)?;
                            (
                                ExprKind::Call {
                                    target: Some(Box::new(expr)),
                                    function: field,
                                    args,
                                    access,
                                    root: false,
                                },
                                d,
                            )
                        }
                        None => (
                            ExprKind::Member {
                                target: Box::new(expr),
                                field,
                                access,
                            },
                            0,
                        ),
                    }
                }
                _ => {
                    let (index, d) = self.expr_built(next(&mut parts)?)?;
                    (
                        ExprKind::Index {
                            target: Box::new(expr),
                            index: Box::new(index),
                            access: access_of(rule),
                        },
                        d,
                    )
                }
            };
            depth = depth.max(child_depth) + 1;
            self.check_depth(depth, span)?;
            expr = Expr { kind, span };
        }
        for op in prefix.into_iter().rev() {
            depth += 1;
            let span = self.span(&op).to(expr.span);
            self.check_depth(depth, span)?;
            let op = if op.as_rule() == Rule::op_not {
                UnaryOp::Not
            } else {
                UnaryOp::Neg
            };
            expr = Expr {
                kind: ExprKind::Unary {
                    op,
                    operand: Box::new(expr),
                },
                span,
            };
        }
        Ok((expr, depth))
    }

    pub(super) fn primary(&self, p: P<'_>) -> R<Built> {
        let span = self.span(&p);
        let leaf = |kind| Ok((Expr { kind, span }, 1));
        match p.as_rule() {
            Rule::int | Rule::double | Rule::uint | Rule::duration => {
                Ok((self.number(p, false, span)?, 1))
            }
            Rule::bool_true => leaf(ExprKind::Bool(true)),
            Rule::bool_false => leaf(ExprKind::Bool(false)),
            Rule::null => leaf(ExprKind::Null),
            Rule::raw_string
            | Rule::bytes_string
            | Rule::interpolated_string
            | Rule::plain_string => Ok((self.string(p)?, 1)),
            Rule::paren => self.expr_built(first(p)),
            Rule::list_literal => {
                let mut depth = 0;
                let mut items = Vec::new();
                for element in p.into_children() {
                    let mut parts = element.into_children();
                    let mut part = next(&mut parts)?;
                    let optional = part.as_rule() == Rule::optional_mark;
                    if optional {
                        part = next(&mut parts)?;
                    }
                    let (value, d) = self.expr_built(part)?;
                    depth = depth.max(d);
                    items.push(ListElement { optional, value });
                }
                self.check_depth(depth + 1, span)?;
                Ok((
                    Expr {
                        kind: ExprKind::List(items),
                        span,
                    },
                    depth + 1,
                ))
            }
            Rule::record_literal => {
                let mut depth = 0;
                let mut fields = Vec::new();
                for field in p.into_children() {
                    let field_span = self.span(&field);
                    let mut parts = field.into_children();
                    let name = self.ident(next(&mut parts)?);
                    let (value, d) = self.expr_built(next(&mut parts)?)?;
                    depth = depth.max(d);
                    fields.push(FieldInit {
                        name,
                        value,
                        span: field_span,
                    });
                }
                self.check_depth(depth + 1, span)?;
                Ok((
                    Expr {
                        kind: ExprKind::Record(fields),
                        span,
                    },
                    depth + 1,
                ))
            }
            Rule::map_literal => {
                let mut depth = 0;
                let mut entries = Vec::new();
                for entry in p.into_children() {
                    let entry_span = self.span(&entry);
                    let mut parts = entry.into_children();
                    let mut part = next(&mut parts)?;
                    let optional = part.as_rule() == Rule::optional_mark;
                    if optional {
                        part = next(&mut parts)?;
                    }
                    let (key, dk) = self.expr_built(part)?;
                    let (value, dv) = self.expr_built(next(&mut parts)?)?;
                    depth = depth.max(dk).max(dv);
                    entries.push(MapEntry {
                        optional,
                        key,
                        value,
                        span: entry_span,
                    });
                }
                self.check_depth(depth + 1, span)?;
                Ok((
                    Expr {
                        kind: ExprKind::Map(entries),
                        span,
                    },
                    depth + 1,
                ))
            }
            _ => {
                let mut parts = p.into_children();
                let mut part = next(&mut parts)?;
                let root = part.as_rule() == Rule::leading_dot;
                if root {
                    part = next(&mut parts)?;
                }
                let Some(args) = parts.next() else {
                    return leaf(ExprKind::Ident {
                        name: part.as_str().to_owned(),
                        root,
                    });
                };
                let function = self.ident(part);
                let (args, depth) = self.args_built(args)?;
                self.check_depth(depth + 1, span)?;
                let kind = ExprKind::Call {
                    target: None,
                    function,
                    args,
                    access: Access::Plain,
                    root,
                };
                Ok((Expr { kind, span }, depth + 1))
            }
        }
    }

    /// Builds a numeric literal, applying a leading `-` when `negative`.
    pub(super) fn number(&self, p: P<'_>, negative: bool, span: Span) -> R<Expr> {
        let text = p.as_str();
        let kind = match p.as_rule() {
            Rule::int => match literal::int(text, negative) {
                Some(v) => ExprKind::Int(v),
                None => {
                    return Err(self
                        .error(codes::INTEGER_OUT_OF_RANGE, span, format!("integer literal `{}{text}` does not fit in an int (64-bit signed)", if negative { "-" } else { "" }))
                        .with_label("out of range")
                        .with_help("use a uint literal such as `18446744073709551615u`, or a double such as `1e19`"));
                }
            },
            Rule::uint => match literal::uint(text) {
                Some(v) if !negative => ExprKind::UInt(v),
                _ => {
                    return Err(self
                        .error(
                            codes::INTEGER_OUT_OF_RANGE,
                            span,
                            format!(
                                "uint literal `{text}` does not fit in a uint (64-bit unsigned)"
                            ),
                        )
                        .with_label("out of range"));
                }
            },
            Rule::double => {
                let v: f64 = text.parse().unwrap_or(f64::NAN);
                ExprKind::Double(if negative { -v } else { v })
            }
            _ => match literal::duration(text) {
                Some(v) => ExprKind::Duration(if negative { -v } else { v }),
                None => {
                    return Err(self
                        .error(codes::INVALID_DURATION, span, format!("duration `{text}` is too long"))
                        .with_label("more than 292 years")
                        .with_help("durations are limited to about 292 years (the int64 range of nanoseconds)"));
                }
            },
        };
        Ok(Expr { kind, span })
    }

    pub(super) fn expr_from_primary(&self, p: P<'_>) -> R<Expr> {
        let span = self.span(&p);
        self.number(p, false, span)
    }

    pub(super) fn args(&self, p: P<'_>) -> R<Vec<Arg>> {
        self.args_built(p).map(|(a, _)| a)
    }

    pub(super) fn args_built(&self, p: P<'_>) -> R<(Vec<Arg>, u32)> {
        let mut depth = 0;
        let mut args = Vec::new();
        for arg in p.into_children() {
            let span = self.span(&arg);
            let mut parts = arg.into_children();
            let mut part = next(&mut parts)?;
            let name = if part.as_rule() == Rule::arg_name {
                let name = self.ident(part);
                part = next(&mut parts)?;
                Some(name)
            } else {
                None
            };
            let (value, d) = self.expr_built(part)?;
            depth = depth.max(d);
            args.push(Arg { name, value, span });
        }
        Ok((args, depth))
    }

    // ------------------------------------------------------------ strings

    pub(super) fn literal_error(&self, e: LiteralError, literal_start: usize) -> Diagnostic {
        let span = Span::new(self.file, literal_start + e.start, literal_start + e.end);
        let code = if e.message.contains("escape") {
            codes::INVALID_ESCAPE
        } else {
            codes::SYNTAX
        };
        self.error(code, span, e.message).with_label("here")
    }

    /// A string literal that must not interpolate (import paths, test names).
    pub(super) fn plain_string(&self, p: P<'_>) -> R<String> {
        let span = self.span(&p);
        match self.string(p)?.kind {
            ExprKind::String(s) => Ok(s),
            _ => Err(self
                .error(codes::SYNTAX, span, "expected a plain string here")
                .with_help("interpolation `${...}` is not allowed here")),
        }
    }

    /// Builds a string or bytes literal from one of the string rules.
    pub(super) fn string(&self, form: P<'_>) -> R<Expr> {
        let span = self.span(&form);
        let start = self.base + form.as_span().start();
        if form.as_rule() != Rule::interpolated_string {
            return match literal::string_literal(form.as_str()) {
                Ok(Decoded::String(s)) => Ok(Expr {
                    kind: ExprKind::String(s),
                    span,
                }),
                Ok(Decoded::Bytes(b)) => Ok(Expr {
                    kind: ExprKind::Bytes(b),
                    span,
                }),
                Err(e) => Err(self.literal_error(e, start)),
            };
        }
        let mut parts: Vec<StringPart> = Vec::new();
        for part in form.into_children() {
            let part_start = self.base + part.as_span().start();
            if part.as_rule() == Rule::interpolation {
                parts.push(StringPart::Expr(self.expr(first(part))?));
            } else {
                let text = literal::string_segment(part.as_str())
                    .map_err(|e| self.literal_error(e, part_start))?;
                match parts.last_mut() {
                    Some(StringPart::Text(previous)) => previous.push_str(&text),
                    _ => parts.push(StringPart::Text(text)),
                }
            }
        }
        let kind = match parts.as_slice() {
            [] => ExprKind::String(String::new()),
            [StringPart::Text(_)] => match parts.pop() {
                Some(StringPart::Text(t)) => ExprKind::String(t),
                _ => ExprKind::String(String::new()),
            },
            _ => ExprKind::Interpolated(parts),
        };
        Ok(Expr { kind, span })
    }
}
