//! The names an expression sees, as the expression checker's [`Scope`], and helpers
//! around checking one expression: which locals it read, and the editor index.

use flow_grammar::ast::{self, Access, ExprKind};
use flow_grammar::{Diagnostic, Span};

use super::{Checker, ConstIdx, ModIdx, Symbol};
use crate::analysis::{Analysis, SymbolKind};
use crate::expr::{ExprArena, ExprId, LocalId, NodeKind, Scope, check_expression};
use flow_ir::types::Type;

/// A name bound to a local.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub name: String,
    pub local: LocalId,
    pub ty: Type,
    pub def: Span,
    pub kind: SymbolKind,
    pub doc: Option<String>,
}

/// A stack of bindings; later ones hide earlier ones.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bindings {
    pub list: Vec<Binding>,
    /// Integration declarations may read `secret()` and `setting()`.
    pub credentials: bool,
}

impl Bindings {
    pub fn push(&mut self, binding: Binding) {
        self.list.push(binding);
    }

    pub fn find(&self, name: &str) -> Option<&Binding> {
        self.list.iter().rev().find(|b| b.name == name)
    }

    pub fn mark(&self) -> usize {
        self.list.len()
    }

    pub fn truncate(&mut self, mark: usize) {
        self.list.truncate(mark);
    }
}

impl Scope for Bindings {
    fn lookup(&self, name: &str) -> Option<(LocalId, Type)> {
        self.find(name).map(|b| (b.local, b.ty.clone()))
    }

    fn names(&self) -> Vec<String> {
        self.list
            .iter()
            .filter(|b| !b.name.contains(['#', '(']))
            .map(|b| b.name.clone())
            .collect()
    }

    fn allows_credentials(&self) -> bool {
        self.credentials
    }
}

/// Checks one expression and records, for the editor, what each name in it refers to.
pub(crate) fn check_in(
    expr: &ast::Expr,
    bindings: &Bindings,
    arena: &mut ExprArena,
    expected: Option<&Type>,
    diagnostics: &mut Vec<Diagnostic>,
    analysis: &mut Analysis,
) -> ExprId {
    let id = check_expression(expr, bindings, arena, expected, diagnostics);
    index_names(expr, bindings, analysis);
    id
}

/// The locals read by the nodes pushed since `from` (an arena length taken before
/// checking), with the span of each read.
pub(crate) fn locals_read(arena: &ExprArena, from: usize) -> Vec<(LocalId, Span)> {
    let mut out = Vec::new();
    for (i, node) in arena.nodes.iter().enumerate().skip(from) {
        if let NodeKind::Local(l) = node.kind {
            out.push((l, arena.spans.get(i).copied().unwrap_or_default()));
        }
    }
    out
}

fn index_names(expr: &ast::Expr, bindings: &Bindings, analysis: &mut Analysis) {
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Ident { name, root: false } => {
                if let Some(b) = bindings.find(name) {
                    analysis.reference_with(
                        e.span,
                        b.def,
                        b.kind,
                        name,
                        format!("{name}: {}", b.ty),
                        b.doc.clone(),
                    );
                }
            }
            ExprKind::Member {
                target,
                field,
                access: Access::Plain,
            } => {
                if let ExprKind::Ident { name, root: false } = &target.kind {
                    let dotted = format!("{name}.{}", field.name);
                    if bindings.find(name).is_none()
                        && let Some(b) = bindings.find(&dotted)
                    {
                        analysis.reference_with(
                            e.span,
                            b.def,
                            b.kind,
                            &dotted,
                            format!("{dotted}: {}", b.ty),
                            b.doc.clone(),
                        );
                        continue;
                    }
                }
                stack.push(target);
            }
            _ => stack.extend(e.children()),
        }
    }
}

impl Checker<'_> {
    /// The constants a module's expressions can name: `NAME` for its own and
    /// unqualified-imported ones, `alias.NAME` for those of aliased imports.
    pub(crate) fn visible_consts(&self, m: ModIdx) -> Vec<(String, ConstIdx)> {
        let mut out = Vec::new();
        let Some(module) = self.modules.get(m) else {
            return out;
        };
        for (name, entry) in &module.names {
            match entry.sym {
                Symbol::Const(c) => out.push((name.clone(), c)),
                Symbol::Module(mm) => {
                    for (inner, e) in &self.modules[mm].own {
                        if let Symbol::Const(c) = e.sym {
                            out.push((format!("{name}.{inner}"), c));
                        }
                    }
                }
                Symbol::Integration(i) if entry.via_import.is_some() => {
                    let mm = self.integrations[i].module;
                    for (inner, e) in &self.modules[mm].own {
                        if let Symbol::Const(c) = e.sym {
                            out.push((format!("{name}.{inner}"), c));
                        }
                    }
                }
                _ => {}
            }
        }
        out.sort();
        out
    }

    /// Marks the import a dotted or plain constant name came through as used.
    pub(crate) fn touch_const_name(&self, m: ModIdx, name: &str) {
        let head = name.split('.').next().unwrap_or(name);
        let _ = self.lookup(m, head);
    }
}
