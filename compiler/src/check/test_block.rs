//! `test` blocks: mocks checked against the actions they replace, runs checked like
//! child workflow calls, and `expect`ations over `status`, `output`, `error` and
//! `calls(integration.action)`.

use flow_grammar::ast::{self, ExprKind, TestStatementKind};
use flow_grammar::{Diagnostic, codes};

use super::members::Member;
use super::scope::{Binding, Bindings, check_in};
use super::settings::ConstVal;
use super::{Checker, Symbol};
use crate::analysis::SymbolKind;
use crate::expr::ExprArena;
use flow_ir::program::{self as ir, ErrorKind};
use flow_ir::types::Type;

impl Checker<'_> {
    /// Phase 9: lower every test block.
    pub(super) fn check_tests(&mut self) {
        for t in 0..self.tests.len() {
            let lowered = self.lower_test(t);
            self.tests[t].ir = Some(lowered);
        }
    }

    /// `signal.NAME` in a `mock`, when no integration is called `signal`: the signal's
    /// name and the type the workflows wait for it as; or `INTEGRATION.EVENT`: the
    /// deliveries the steps waiting for it take (mocked as the signal `event:NAME`).
    /// `None`: not a signal or event mock; `Some(Err)`: a signal no workflow waits for
    /// (reported).
    fn mocked_signal(&mut self, m: usize, path: &ast::Path) -> Option<Result<(String, Type), ()>> {
        let [head, name] = path.segments.as_slice() else {
            return None;
        };
        // `INTEGRATION.EVENT`: what the steps waiting for that event take.
        if let Some(Symbol::Integration(i)) = self.lookup(m, &head.name).map(|e| e.sym) {
            let integ = &self.integrations[i];
            let event = integ.events.iter().find(|e| e.name == name.name)?;
            return Some(Ok((
                format!("event:{}.{}", integ.name, event.name),
                event.result.clone(),
            )));
        }
        if head.name != "signal" || self.lookup(m, "signal").is_some() {
            return None;
        }
        let waited = self
            .workflows
            .iter()
            .filter_map(|w| w.ir.as_ref())
            .find_map(|w| w.signal_type(&name.name).cloned());
        match waited {
            Some(ty) => Some(Ok((name.name.clone(), ty))),
            None => {
                let mut known: Vec<String> = self
                    .workflows
                    .iter()
                    .filter_map(|w| w.ir.as_ref())
                    .flat_map(|w| w.signals().into_iter().map(str::to_owned))
                    .collect();
                known.sort();
                known.dedup();
                self.report(
                    Diagnostic::new(
                        codes::UNKNOWN_NAME,
                        name.span,
                        format!("no workflow waits for a signal `{}`", name.name),
                    )
                    .with_label("not waited for")
                    .with_suggestion(&name.name, known.iter().map(String::as_str))
                    .with_note("`mock signal.NAME` gives the `wait signal(\"NAME\")` steps of the runs in this test their signal"),
                );
                Some(Err(()))
            }
        }
    }

    fn resolve_action(&mut self, m: usize, path: &ast::Path) -> Option<(ir::ActionRef, Type)> {
        if path.segments.len() < 2 {
            self.report(
                Diagnostic::new(
                    codes::UNKNOWN_ACTION,
                    path.span,
                    format!("`{}` is not an action", path.dotted()),
                )
                .with_label("expected `integration.action`"),
            );
            return None;
        }
        let (head, last) = path.segments.split_at(path.segments.len() - 1);
        let integ = self.find_integration(m, head, path.span, "expected `integration.action`")?;
        let name = &last[0];
        match self.find_member(integ, Member::Action, &name.name, name.span) {
            Some(a) => {
                let sig = &self.integrations[integ].actions[a];
                let (def, doc, result) = (sig.span, sig.doc.clone(), sig.result.clone());
                self.analysis
                    .reference(name.span, def, SymbolKind::Action, &name.name, doc);
                Some((
                    ir::ActionRef {
                        integration: ir::IntegrationId::from_index(integ),
                        action: a as u32,
                    },
                    result,
                ))
            }
            None => None,
        }
    }

    fn lower_test(&mut self, t: usize) -> ir::Test {
        let m = self.tests[t].module;
        let ast = self.tests[t].ast.clone();
        let mut arena = ExprArena::new();
        let mut bindings = Bindings::default();
        // The type of `output`: the result of the workflow the test runs.
        let output_ty = ast
            .statements
            .iter()
            .find_map(|s| match &s.kind {
                TestStatementKind::Run { target, .. } => {
                    match self.resolve_path(m, None, &target.segments) {
                        Ok((Symbol::Workflow(w), _)) => Some(
                            self.workflows[w]
                                .ir
                                .as_ref()
                                .and_then(|i| i.result.clone())
                                .unwrap_or(Type::Dyn),
                        ),
                        _ => None,
                    }
                }
                _ => None,
            })
            .unwrap_or(Type::Dyn);
        let status = arena.new_local("status", Type::String);
        let output = arena.new_local("output", output_ty.clone());
        let error = arena.new_local("error", Type::optional(Type::String));
        for (name, local, ty, doc) in [
            (
                "status",
                status,
                Type::String,
                "How the last run ended: `completed` or `failed`.",
            ),
            ("output", output, output_ty, "The last run's output."),
            (
                "error",
                error,
                Type::optional(Type::String),
                "The last run's failure message, or null.",
            ),
        ] {
            bindings.push(Binding {
                name: name.into(),
                local,
                ty,
                def: ast.name_span,
                kind: SymbolKind::Variable,
                doc: Some(doc.into()),
            });
        }
        let mut calls: Vec<ir::CallCount> = Vec::new();
        let mut stmts = Vec::new();
        let mut stmt_spans = Vec::new();
        let mut previous = ast.span;
        for s in &ast.statements {
            // What the previous statement lowered to takes its span (a rejected one
            // lowers to nothing, and a `continue` below may skip the resize at the end).
            stmt_spans.resize(stmts.len(), previous);
            previous = s.span;
            match &s.kind {
                // A statement that did not parse: its syntax error is reported.
                TestStatementKind::Error { .. } => {}
                TestStatementKind::Mock { target, behaviours } => {
                    let signal = self.mocked_signal(m, target);
                    let resolved = match &signal {
                        Some(Ok((_, ty))) => Some((None, ty.clone())),
                        Some(Err(())) => None,
                        None => self
                            .resolve_action(m, target)
                            .map(|(a, result)| (Some(a), result)),
                    };
                    let Some((action, result)) = resolved else {
                        continue;
                    };
                    let mut out = Vec::new();
                    for b in behaviours {
                        let outcome = match &b.outcome {
                            ast::MockOutcome::Returns(value) => {
                                let before = self.diagnostics.len();
                                let id = check_in(
                                    value,
                                    &bindings,
                                    &mut arena,
                                    None,
                                    &mut self.diagnostics,
                                    &mut self.analysis,
                                );
                                let span = value.span;
                                let shown = target.dotted();
                                let id = self.convert(&mut arena, id, &result, before, |from, to| {
                                    Diagnostic::new(codes::MOCK_TYPE, span, format!("`{shown}` returns `{to}`, but the mock returns `{from}`"))
                                        .with_label(format!("this is `{from}`"))
                                });
                                ir::MockOutcome::Returns(id)
                            }
                            ast::MockOutcome::Fails { kind, message } => {
                                let k = match ErrorKind::parse(&kind.name) {
                                    Some(k) => k,
                                    None => {
                                        self.report(
                                            Diagnostic::new(codes::UNKNOWN_ERROR_KIND, kind.span, format!("unknown error kind `{}`", kind.name))
                                                .with_label("not an error kind")
                                                .with_suggestion(&kind.name, ErrorKind::ALL.iter().map(|k| k.as_str()))
                                                .with_note("error kinds: timeout, communication, authentication, authorization, validation, expression, runtime"),
                                        );
                                        ErrorKind::Runtime
                                    }
                                };
                                let message = message.as_ref().map(|msg| {
                                    check_in(
                                        msg,
                                        &bindings,
                                        &mut arena,
                                        Some(&Type::String),
                                        &mut self.diagnostics,
                                        &mut self.analysis,
                                    )
                                });
                                ir::MockOutcome::Fails { kind: k, message }
                            }
                        };
                        let times = b.times.as_ref().and_then(|e| match self.fold(m, e) {
                            Some(v) => self
                                .int_in_range(&v, e.span, "`times`", 1, i64::from(u32::MAX))
                                .map(|n| n as u32),
                            None => {
                                self.report(
                                    Diagnostic::new(
                                        codes::NOT_CONSTANT,
                                        e.span,
                                        "`times` must be an integer literal",
                                    )
                                    .with_label("not a constant"),
                                );
                                None
                            }
                        });
                        out.push(ir::MockBehaviour { outcome, times });
                    }
                    match (action, signal) {
                        (Some(action), _) => stmts.push(ir::TestStmt::Mock {
                            action,
                            behaviours: out,
                        }),
                        (None, Some(Ok((name, _)))) => stmts.push(ir::TestStmt::MockSignal {
                            name,
                            behaviours: out,
                        }),
                        _ => {}
                    }
                }
                TestStatementKind::Run { target, args } => {
                    match self.resolve_path(m, None, &target.segments) {
                        Ok((Symbol::Workflow(w), def)) => {
                            self.analysis.reference(
                                target.span,
                                def,
                                SymbolKind::Workflow,
                                &target.dotted(),
                                self.workflows[w].doc.clone(),
                            );
                            let params = std::sync::Arc::clone(&self.workflows[w].params);
                            let callee = format!("workflow `{}`", self.workflows[w].name);
                            let args = self
                                .call_args(&params, args, &bindings, &mut arena, s.span, &callee);
                            stmts.push(ir::TestStmt::Run {
                                workflow: ir::WorkflowId::from_index(w),
                                args,
                            });
                        }
                        Ok((other, _)) => self.report(
                            Diagnostic::new(
                                codes::UNKNOWN_WORKFLOW,
                                target.span,
                                format!(
                                    "`{}` is {}, not a workflow",
                                    target.dotted(),
                                    other.describe()
                                ),
                            )
                            .with_label("`run` needs a workflow"),
                        ),
                        Err(e) => self.unknown_path(
                            codes::UNKNOWN_WORKFLOW,
                            "workflow",
                            &target.segments,
                            e,
                        ),
                    }
                }
                TestStatementKind::Expect(condition) => {
                    let rewritten =
                        self.bind_calls(m, condition, &mut arena, &mut bindings, &mut calls);
                    let condition = check_in(
                        &rewritten,
                        &bindings,
                        &mut arena,
                        Some(&Type::Bool),
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                    stmts.push(ir::TestStmt::Expect { condition });
                }
                TestStatementKind::Let { name, ty, value } => {
                    let declared = ty.as_ref().map(|t| self.type_of(m, None, t));
                    let rewritten =
                        self.bind_calls(m, value, &mut arena, &mut bindings, &mut calls);
                    let id = check_in(
                        &rewritten,
                        &bindings,
                        &mut arena,
                        declared.as_ref(),
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                    let ty =
                        declared.unwrap_or_else(|| arena.ty(id).cloned().unwrap_or(Type::Error));
                    let local = arena.new_local(name.name.clone(), ty.clone());
                    bindings.push(Binding {
                        name: name.name.clone(),
                        local,
                        ty,
                        def: name.span,
                        kind: SymbolKind::Let,
                        doc: None,
                    });
                    stmts.push(ir::TestStmt::Let { local, value: id });
                }
            }
            stmt_spans.resize(stmts.len(), s.span);
        }
        let _ = ConstVal::Null;
        ir::Test {
            name: ast.name.clone(),
            doc: ast.doc.clone(),
            exprs: std::sync::Arc::new(arena),
            status,
            output,
            error,
            calls,
            stmts,
            spans: ir::TestSpans {
                decl: ast.span,
                stmts: stmt_spans,
            },
        }
    }

    /// Replaces each `calls(integration.action)` with a name bound to an `int` local the
    /// runner fills with that action's call count.
    fn bind_calls(
        &mut self,
        m: usize,
        expr: &ast::Expr,
        arena: &mut ExprArena,
        bindings: &mut Bindings,
        calls: &mut Vec<ir::CallCount>,
    ) -> ast::Expr {
        let mut expr = expr.clone();
        let mut found: Vec<(String, ast::Path)> = Vec::new();
        rewrite_calls(&mut expr, &mut found);
        for (name, path) in found {
            if bindings.find(&name).is_some() {
                continue;
            }
            let Some((action, _)) = self.resolve_action(m, &path) else {
                continue;
            };
            let local = arena.new_local(name.clone(), Type::Int);
            calls.push(ir::CallCount { action, local });
            bindings.push(Binding {
                name,
                local,
                ty: Type::Int,
                def: path.span,
                kind: SymbolKind::Variable,
                doc: None,
            });
        }
        expr
    }
}

fn rewrite_calls(expr: &mut ast::Expr, found: &mut Vec<(String, ast::Path)>) {
    if let ExprKind::Call {
        target: None,
        function,
        args,
        ..
    } = &expr.kind
        && function.name == "calls"
        && args.len() == 1
        && let Some(path) = dotted_path(&args[0].value)
    {
        let name = format!("calls({})", path.dotted());
        found.push((name.clone(), path));
        expr.kind = ExprKind::Ident { name, root: false };
        return;
    }
    match &mut expr.kind {
        ExprKind::Interpolated(parts) => {
            for p in parts {
                if let ast::StringPart::Expr(e) = p {
                    rewrite_calls(e, found);
                }
            }
        }
        ExprKind::Member { target, .. } => rewrite_calls(target, found),
        ExprKind::Index { target, index, .. } => {
            rewrite_calls(target, found);
            rewrite_calls(index, found);
        }
        ExprKind::Call { target, args, .. } => {
            if let Some(t) = target {
                rewrite_calls(t, found);
            }
            for a in args {
                rewrite_calls(&mut a.value, found);
            }
        }
        ExprKind::Unary { operand, .. } => rewrite_calls(operand, found),
        ExprKind::Binary { lhs, rhs, .. } => {
            rewrite_calls(lhs, found);
            rewrite_calls(rhs, found);
        }
        ExprKind::Conditional {
            condition,
            then,
            otherwise,
        } => {
            rewrite_calls(condition, found);
            rewrite_calls(then, found);
            rewrite_calls(otherwise, found);
        }
        ExprKind::List(items) => {
            for i in items {
                rewrite_calls(&mut i.value, found);
            }
        }
        ExprKind::Map(entries) => {
            for e in entries {
                rewrite_calls(&mut e.key, found);
                rewrite_calls(&mut e.value, found);
            }
        }
        ExprKind::Record(fields) => {
            for f in fields {
                rewrite_calls(&mut f.value, found);
            }
        }
        _ => {}
    }
}

fn dotted_path(expr: &ast::Expr) -> Option<ast::Path> {
    let mut segments = Vec::new();
    let mut cur = expr;
    loop {
        match &cur.kind {
            ExprKind::Member {
                target,
                field,
                access: ast::Access::Plain,
            } => {
                segments.push(field.clone());
                cur = target;
            }
            ExprKind::Ident { name, root: false } => {
                segments.push(ast::Ident {
                    name: name.clone(),
                    span: cur.span,
                });
                break;
            }
            _ => return None,
        }
    }
    segments.reverse();
    Some(ast::Path {
        segments,
        span: expr.span,
    })
}
