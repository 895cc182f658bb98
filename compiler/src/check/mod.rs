//! Checking a program: load its modules, resolve every name across them, type the
//! declarations, then check and lower each integration, workflow and test to the IR.
//!
//! The [`Checker`] owns every table; the phases run in order (load → declare →
//! namespaces → types → constants → signatures → integrations → workflows → tests) and
//! each reports what it finds and carries on with `Type::Error` in place of what failed.

mod assemble;
mod consts;
mod integration;
mod load;
mod names;
mod scope;
mod settings;
mod test_block;
mod workflow;

use std::collections::HashMap;
use std::rc::Rc;

use flow_grammar::ast;
use flow_grammar::{Diagnostic, FileId, SourceMap, Span};

use crate::analysis::Analysis;
use crate::ir;
use crate::loader::Loader;
use crate::types::Type;

pub(crate) use names::Symbol;

pub(crate) type ModIdx = usize;
pub(crate) type TypeIdx = usize;
pub(crate) type ConstIdx = usize;
pub(crate) type IntegIdx = usize;
pub(crate) type WfIdx = usize;

/// One loaded module (a `.flow` file or an embedded stdlib module).
pub(crate) struct Module {
    /// The loader's name for a file, `std:NAME` for a stdlib module.
    pub key: String,
    pub ast: Rc<ast::Module>,
    /// The stdlib module name, for embedded modules.
    pub stdlib: Option<String>,
    /// What this module declares (what `import "./x.flow"` brings in).
    pub own: HashMap<String, Entry>,
    /// Everything visible by name: own items, imports, the prelude.
    pub names: HashMap<String, Entry>,
    pub imports: Vec<ImportRec>,
}

/// A name bound in a module's namespace.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub sym: Symbol,
    /// Where the name is defined.
    pub span: Span,
    /// The import that brought the name in, as an index into [`Module::imports`].
    pub via_import: Option<usize>,
}

pub(crate) struct ImportRec {
    pub target: Option<ModIdx>,
    /// The name it binds (`None` for an unqualified file import).
    pub alias: Option<String>,
    pub span: Span,
    pub used: std::cell::Cell<bool>,
    pub prelude: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum State {
    Todo,
    InProgress,
    Done,
}

pub(crate) struct TypeDef {
    pub module: ModIdx,
    pub integration: Option<IntegIdx>,
    /// `Customer`, `slack.Message`.
    pub display: String,
    pub doc: Option<String>,
    pub span: Span,
    pub expr: ast::TypeExpr,
    pub ty: Type,
    pub state: State,
}

pub(crate) struct ConstDef {
    pub module: ModIdx,
    pub name: String,
    pub doc: Option<String>,
    pub span: Span,
    pub decl: ast::ConstDecl,
    pub ty: Type,
    pub state: State,
    /// Position in the order constants finished typing: a constant comes after those it reads.
    pub order: usize,
}

pub(crate) struct ParamSig {
    pub name: String,
    pub ty: Type,
    pub default: Option<ast::Expr>,
    pub span: Span,
    pub doc: Option<String>,
}

impl ParamSig {
    /// Whether a call may leave this parameter out.
    pub fn optional(&self) -> bool {
        self.default.is_some() || self.ty.is_optional() || self.ty == Type::Dyn
    }
}

pub(crate) struct ActionSig {
    pub name: String,
    pub doc: Option<String>,
    pub span: Span,
    pub idempotent: bool,
    pub native: bool,
    pub params: Rc<[ParamSig]>,
    pub result: Type,
    pub ast: Rc<ast::Action>,
    /// The signature as hover shows it.
    pub hover: String,
}

pub(crate) struct EventSig {
    pub name: String,
    pub doc: Option<String>,
    pub span: Span,
    pub params: Rc<[ParamSig]>,
    pub result: Type,
    pub ast: Rc<ast::Event>,
}

pub(crate) struct IntegDef {
    pub module: ModIdx,
    pub name: String,
    pub doc: Option<String>,
    pub span: Span,
    pub ast: Rc<ast::Integration>,
    pub types: HashMap<String, TypeIdx>,
    pub actions: Vec<ActionSig>,
    pub events: Vec<EventSig>,
    /// Index of the action `notify = ...` maps to.
    pub notify: Option<usize>,
    pub builtin: bool,
    pub ir: Option<ir::Integration>,
}

pub(crate) struct WfDef {
    pub module: ModIdx,
    pub name: String,
    pub doc: Option<String>,
    /// The declaring module's tree and the workflow's index in its items.
    pub module_ast: Rc<ast::Module>,
    pub item: usize,
    pub params: Rc<[ParamSig]>,
    /// The declared result type.
    pub result: Option<Type>,
    pub ir: Option<ir::Workflow>,
    /// Webhook path of its trigger, for the program-wide uniqueness check.
    pub webhook: Option<(String, Span)>,
}

pub(crate) struct TestDef {
    pub module: ModIdx,
    pub ast: ast::TestDecl,
    pub ir: Option<ir::Test>,
}

/// Everything the checker knows; see the module docs for the phases.
pub(crate) struct Checker<'a> {
    pub sources: &'a mut SourceMap,
    /// Items parsed by earlier compilations, reused when their text is unchanged.
    pub parse_cache: Option<&'a mut flow_grammar::ParseCache>,
    pub modules: Vec<Module>,
    pub types: Vec<TypeDef>,
    pub consts: Vec<ConstDef>,
    pub integrations: Vec<IntegDef>,
    pub workflows: Vec<WfDef>,
    pub tests: Vec<TestDef>,
    pub diagnostics: Vec<Diagnostic>,
    pub analysis: Analysis,
    pub root: ModIdx,
    const_order: usize,
}

/// The result of checking: the lowered program (complete only when there are no
/// errors), diagnostics, and the editor index of the root file.
pub(crate) struct Checked {
    pub program: ir::Program,
    pub diagnostics: Vec<Diagnostic>,
    pub analysis: Analysis,
}

pub(crate) fn check_program<'a>(
    sources: &'a mut SourceMap,
    root: FileId,
    loader: &mut dyn Loader,
    parse_cache: Option<&'a mut flow_grammar::ParseCache>,
) -> Checked {
    let mut checker = Checker {
        sources,
        parse_cache,
        modules: Vec::new(),
        types: Vec::new(),
        consts: Vec::new(),
        integrations: Vec::new(),
        workflows: Vec::new(),
        tests: Vec::new(),
        diagnostics: Vec::new(),
        analysis: Analysis::default(),
        root: 0,
        const_order: 0,
    };
    checker.load(root, loader);
    checker.declare();
    checker.build_namespaces();
    checker.resolve_types();
    checker.resolve_consts();
    checker.signatures();
    checker.check_integrations();
    checker.check_workflows();
    checker.check_tests();
    checker.check_webhook_paths();
    checker.report_unused_imports();
    checker.document_symbols();
    let program = checker.assemble();
    let mut diagnostics = std::mem::take(&mut checker.diagnostics);
    dedup(&mut diagnostics);
    Checked {
        program,
        diagnostics,
        analysis: std::mem::take(&mut checker.analysis),
    }
}

/// Drops exact repeats (the same code at the same place with the same message).
fn dedup(diagnostics: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diagnostics.retain(|d| seen.insert((d.code.id, d.span, d.message.clone())));
}

impl Checker<'_> {
    pub(crate) fn report(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }
}

/// The workflow at `item` of a module's items.
pub(crate) fn workflow_item(module: &ast::Module, item: usize) -> Option<&ast::Workflow> {
    match module.items.get(item) {
        Some(ast::Item::Workflow(w)) => Some(w),
        _ => None,
    }
}
