//! Constants: typed once per program in dependency order (a cycle is an error); each
//! workflow that reads one evaluates it into a local at run start.

use flow_grammar::ast::{self, Access, ExprKind};
use flow_grammar::{Diagnostic, codes};

use super::scope::{Binding, Bindings, check_in};
use super::{Checker, ConstIdx, State};
use crate::analysis::SymbolKind;
use crate::expr::ExprArena;
use flow_ir::types::Type;

impl Checker<'_> {
    /// Phase 5: the type of every constant.
    pub(super) fn resolve_consts(&mut self) {
        for c in 0..self.consts.len() {
            self.const_type(c);
        }
    }

    pub(crate) fn const_type(&mut self, c: ConstIdx) -> Type {
        match self.consts[c].state {
            State::Done => return self.consts[c].ty.clone(),
            State::InProgress => {
                let name = self.consts[c].name.clone();
                self.report(
                    Diagnostic::new(
                        codes::CONST_CYCLE,
                        self.consts[c].span,
                        format!("constant `{name}` depends on itself"),
                    )
                    .with_label("its value reads itself, directly or through other constants")
                    .with_help("give one of the constants a literal value"),
                );
                return Type::Error;
            }
            State::Todo => {}
        }
        self.consts[c].state = State::InProgress;
        let m = self.consts[c].module;
        let decl = self.consts[c].decl.clone();
        let visible = self.visible_consts(m);
        let mut names = Vec::new();
        free_names(&decl.value, &mut names);
        let mut bindings = Bindings::default();
        let mut arena = ExprArena::new();
        for (name, dep) in &visible {
            if names.iter().any(|n| n == name) {
                let ty = self.const_type(*dep);
                let local = arena.new_local(name.clone(), ty.clone());
                bindings.push(Binding {
                    name: name.clone(),
                    local,
                    ty,
                    def: self.consts[*dep].span,
                    kind: SymbolKind::Const,
                    doc: self.consts[*dep].doc.clone(),
                });
            }
        }
        let declared = decl.ty.as_ref().map(|t| self.type_of(m, None, t));
        let mut diagnostics = Vec::new();
        let id = check_in(
            &decl.value,
            &bindings,
            &mut arena,
            declared.as_ref(),
            &mut diagnostics,
            &mut self.analysis,
        );
        self.diagnostics.extend(diagnostics);
        let ty = declared.unwrap_or_else(|| arena.ty(id).cloned().unwrap_or(Type::Error));
        let hover = format!("const {}: {ty}", decl.name.name);
        self.analysis.reference_with(
            decl.name.span,
            decl.name.span,
            SymbolKind::Const,
            &decl.name.name,
            hover,
            decl.doc.clone(),
        );
        self.consts[c].ty = ty.clone();
        self.consts[c].state = State::Done;
        self.consts[c].order = self.next_const_order();
        ty
    }

    fn next_const_order(&mut self) -> usize {
        self.const_order += 1;
        self.const_order
    }
}

/// Every name an expression may read: plain identifiers and `a.b` prefixes of member
/// chains (for aliased constants). Over-approximates (comprehension variables are
/// included), which only adds candidates the checker then ignores.
pub(crate) fn free_names(expr: &ast::Expr, out: &mut Vec<String>) {
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Ident { name, root: false } => out.push(name.clone()),
            ExprKind::Member {
                target,
                field,
                access: Access::Plain,
            } => {
                if let ExprKind::Ident { name, root: false } = &target.kind {
                    out.push(format!("{name}.{}", field.name));
                }
                stack.push(target);
            }
            _ => stack.extend(e.children()),
        }
    }
}
