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
mod members;
mod names;
mod scope;
mod settings;
mod test_block;
mod workflow;

use std::collections::HashMap;
use std::sync::Arc;

use flow_grammar::ast;
use flow_grammar::{Diagnostic, FileId, SourceMap, Span};

use crate::analysis::Analysis;
use crate::loader::Loader;
use flow_ir::program as ir;
use flow_ir::types::Type;

pub(crate) use names::Symbol;

pub(crate) type ModIdx = usize;
pub(crate) type TypeIdx = usize;
pub(crate) type ConstIdx = usize;
pub(crate) type IntegIdx = usize;
pub(crate) type WfIdx = usize;

/// One loaded module (a `.flow` file or an embedded stdlib module).
#[derive(Clone)]
pub(crate) struct Module {
    /// The loader's name for a file, `std:NAME` for a stdlib module.
    pub key: String,
    pub ast: Arc<ast::Module>,
    /// The stdlib module name, for embedded modules.
    pub stdlib: Option<String>,
    /// What this module declares (what `import "./x.flow"` brings in).
    pub own: HashMap<String, Entry>,
    /// Everything visible by name: own items, imports, the prelude.
    pub names: HashMap<String, Entry>,
    pub imports: Vec<ImportRec>,
    /// Parsing found syntax errors: what a broken statement used is unknown, so its
    /// imports are not reported unused.
    pub syntax_errors: bool,
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

#[derive(Clone)]
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

#[derive(Clone)]
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

#[derive(Clone)]
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

#[derive(Clone)]
pub(crate) struct ActionSig {
    pub name: String,
    pub doc: Option<String>,
    pub span: Span,
    pub idempotent: bool,
    pub native: bool,
    pub params: Arc<[ParamSig]>,
    pub result: Type,
    pub ast: Arc<ast::Action>,
    /// The signature as hover shows it.
    pub hover: String,
}

#[derive(Clone)]
pub(crate) struct EventSig {
    pub name: String,
    pub doc: Option<String>,
    pub span: Span,
    pub params: Arc<[ParamSig]>,
    pub result: Type,
    pub ast: Arc<ast::Event>,
}

pub(crate) struct IntegDef {
    pub module: ModIdx,
    pub name: String,
    pub doc: Option<String>,
    pub span: Span,
    pub ast: Arc<ast::Integration>,
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
    pub module_ast: Arc<ast::Module>,
    pub item: usize,
    pub params: Arc<[ParamSig]>,
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
    /// Threads the workflow phase may use.
    workers: usize,
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
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    check_program_with(sources, root, loader, parse_cache, workers)
}

/// [`check_program`] with at most `workers` threads for the workflow phase.
fn check_program_with<'a>(
    sources: &'a mut SourceMap,
    root: FileId,
    loader: &mut dyn Loader,
    parse_cache: Option<&'a mut flow_grammar::ParseCache>,
    workers: usize,
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
        workers,
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
    let analysis = std::mem::take(&mut checker.analysis);
    let source_bytes: usize = checker.sources.files().map(|f| f.text.len()).sum();
    // The tables, without the borrowed source map and cache.
    let tables = (
        checker.modules,
        checker.types,
        checker.consts,
        checker.integrations,
        checker.workflows,
        checker.tests,
    );
    if source_bytes >= BACKGROUND_FREE_BYTES {
        drop_in_background(tables);
    }
    Checked {
        program,
        diagnostics,
        analysis,
    }
}

/// Programs with at least this much source have their tables freed in the background;
/// freeing a small program's takes less time than starting a thread.
const BACKGROUND_FREE_BYTES: usize = 256 * 1024;

/// Frees on another thread what the caller no longer needs (a large program's syntax
/// trees and tables take milliseconds to free), so the compilation returns without
/// waiting for it. Frees in place when no thread can be started.
fn drop_in_background<T: Send + 'static>(value: T) {
    // When the thread cannot be started, the closure, and the value with it, is dropped here.
    let _ = std::thread::Builder::new()
        .name("flow-free".into())
        .spawn(move || drop(value));
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

    /// A checker with the same modules and declarations, no lowered IR and nothing found
    /// yet, for checking some workflows on another thread. It cannot load files.
    pub(crate) fn fork<'s>(&self, sources: &'s mut SourceMap) -> Checker<'s> {
        Checker {
            sources,
            parse_cache: None,
            modules: self.modules.clone(),
            types: self.types.clone(),
            consts: self.consts.clone(),
            integrations: self.integrations.iter().map(IntegDef::without_ir).collect(),
            workflows: self.workflows.iter().map(WfDef::without_ir).collect(),
            tests: Vec::new(),
            diagnostics: Vec::new(),
            analysis: Analysis::default(),
            root: self.root,
            const_order: self.const_order,
            workers: 1,
        }
    }
}

impl IntegDef {
    fn without_ir(&self) -> IntegDef {
        IntegDef {
            module: self.module,
            name: self.name.clone(),
            doc: self.doc.clone(),
            span: self.span,
            ast: Arc::clone(&self.ast),
            types: self.types.clone(),
            actions: self.actions.clone(),
            events: self.events.clone(),
            notify: self.notify,
            builtin: self.builtin,
            ir: None,
        }
    }
}

impl WfDef {
    fn without_ir(&self) -> WfDef {
        WfDef {
            module: self.module,
            name: self.name.clone(),
            doc: self.doc.clone(),
            module_ast: Arc::clone(&self.module_ast),
            item: self.item,
            params: Arc::clone(&self.params),
            result: self.result.clone(),
            ir: None,
            webhook: self.webhook.clone(),
        }
    }
}

/// The workflow at `item` of a module's items.
pub(crate) fn workflow_item(module: &ast::Module, item: usize) -> Option<&ast::Workflow> {
    match module.items.get(item) {
        Some(ast::Item::Workflow(w)) => Some(w),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough workflows to be checked on two threads, with mistakes in both halves, calls
    /// of workflows across the halves, webhook paths that clash across them and an import
    /// used only in the second half.
    fn program() -> String {
        let mut src = String::from("import slack\nimport jira\nimport github\n\n");
        let n = 2 * super::workflow::PARALLEL_WORKFLOWS;
        for w in 0..n {
            src.push_str(&format!("workflow w{w}(n: int) -> int {{\n"));
            if w % 40 == 7 {
                src.push_str(&format!("  on webhook(\"/hook/{}\")\n", w % 3));
            }
            src.push_str(&format!(
                "  step a = http.get(url: \"https://example.com/{w}?n=${{n}}\")\n"
            ));
            match w % 25 {
                3 => src.push_str("  step b = http.get(url: missing.url)\n"),
                11 => src.push_str("  let t: string = a.status + 1\n"),
                17 => src.push_str(&format!("  step c = run w{}(n: a.status)\n", n - 1 - w)),
                _ => {}
            }
            if w == n - 5 {
                src.push_str("  step j = jira.create_issue(project: \"OPS\", issue_type: \"Task\", summary: \"s\")\n");
            }
            src.push_str("  return a.status + n\n}\n\n");
        }
        src
    }

    fn check(src: &str, workers: usize) -> Checked {
        let mut sources = SourceMap::new();
        let root = sources.add("big.flow", src.to_owned());
        let mut loader = crate::loader::MemoryLoader::new();
        check_program_with(&mut sources, root, &mut loader, None, workers)
    }

    #[test]
    fn checking_on_two_threads_finds_exactly_what_one_thread_finds() {
        let src = program();
        let one = check(&src, 1);
        let two = check(&src, 2);
        // The program's mistakes are found (and `github` is reported unused, `jira`, used
        // only in the second half, not).
        let unknown = one
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("missing"))
            .count();
        assert!(unknown >= 4, "{:#?}", one.diagnostics);
        let unused_imports: Vec<Span> = one
            .diagnostics
            .iter()
            .filter(|d| d.message.contains("import is never used"))
            .map(|d| d.span)
            .collect();
        let text = |span: Span| &src[span.start as usize..span.end as usize];
        assert!(unused_imports.iter().any(|s| text(*s).contains("github")));
        assert!(!unused_imports.iter().any(|s| text(*s).contains("jira")));
        let render = |c: &Checked| format!("{:#?}", c.diagnostics);
        assert_eq!(render(&one), render(&two));
        assert_eq!(one.program, two.program);
        assert_eq!(one.analysis, two.analysis);
        assert_eq!(one.program.workflows.len(), two.program.workflows.len());
    }
}
