//! Workflows: triggers and settings, the statement tree, steps and their calls,
//! modifiers, the views of steps seen from other blocks, and dependencies.
//!
//! Two passes over the body. The first gives every statement, block and step its id and
//! resolves each step's call (so a step's type is known before any expression reads
//! it: steps may be read before they are declared). The second checks expressions,
//! lowers statements and records every dependency edge with the span that caused it.
//!
//! This file holds the per-workflow state and the two passes' drivers; `trigger.rs`
//! lowers the `on ...` clause, `statement.rs` the statement tree, `step.rs` steps and
//! their calls and modifiers.

mod statement;
mod step;
mod trigger;

use std::collections::HashMap;
use std::sync::Arc;

use flow_grammar::ast::{self, ModifierKind, StatementKind, StepCall};
use flow_grammar::{Diagnostic, SourceMap, Span, codes};

use super::members::Member;
use super::scope::{Binding, Bindings, check_in, locals_read};
use super::settings::{ConstVal, DEFAULT_RETRY_DELAY, MAX_RETRIES};
use super::{Checker, IntegIdx, ModIdx, ParamSig, Symbol, WfIdx};
use crate::analysis::SymbolKind;
use crate::expr::{ExprArena, ExprId, LocalId};
use crate::graph::{Edge, EdgeKind, StmtShape, check_dependencies};
use flow_ir::program::{self as ir, BlockId, ConstOr, StepId, StmtId};
use flow_ir::types::Type;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockRole {
    Body,
    Then,
    Else,
    Loop,
    TryBody,
    Catch,
}

#[derive(Clone, Debug)]
enum Target {
    Action(IntegIdx, usize),
    Workflow(WfIdx),
    Notify(IntegIdx),
    /// `wait signal("name")`.
    Signal(String),
    /// `wait integration.event(...)`: the integration and the event's index.
    Event(IntegIdx, usize),
    Unresolved,
}

struct StepInfo {
    /// `None` for a `notify`.
    name: Option<String>,
    name_span: Span,
    doc: Option<String>,
    stmt: StmtId,
    /// Blocks from the body down to the step's own block.
    blocks: Vec<BlockId>,
    /// The compound statements around the step, outermost first.
    ancestors: Vec<StmtId>,
    /// The step's value as seen in `blocks[k]`.
    views: Vec<LocalId>,
    ty: Type,
    target: Target,
    used: bool,
    reads: Vec<usize>,
    after: Vec<usize>,
}

#[derive(Clone, Copy, Debug)]
enum Owner {
    None,
    StepView { step: usize, depth: usize },
    Unavailable { step: usize },
    Let { index: usize },
}

struct LetInfo {
    name: String,
    span: Span,
    stmt: StmtId,
    used: bool,
}

struct Wf {
    m: ModIdx,
    w: WfIdx,
    arena: ExprArena,
    blocks: Vec<ir::Block>,
    roles: Vec<BlockRole>,
    stmts: Vec<ir::Stmt>,
    stmt_spans: Vec<Span>,
    shapes: Vec<StmtShape>,
    /// Display names of statements, for cycle messages.
    labels: Vec<String>,
    steps: Vec<StepInfo>,
    lowered: Vec<Option<ir::Step>>,
    exports: HashMap<StmtId, Vec<ir::Export>>,
    step_by_name: HashMap<String, usize>,
    owners: Vec<Owner>,
    bindings: Bindings,
    lets: Vec<LetInfo>,
    edges: Vec<Edge>,
    /// The statement being lowered and its compound ancestors.
    current: StmtId,
    ancestors: Vec<StmtId>,
    path: Vec<BlockId>,
    next_stmt: usize,
    result: Option<Type>,
    returned: Vec<Type>,
    settings_retry: Option<ir::Retry>,
    notify_count: usize,
    /// Each signal's payload type and where it was first waited for.
    signal_types: HashMap<String, (Type, Span)>,
    /// The body holds a statement that did not parse (an error node): what it read or
    /// returned is unknown, so warnings about unused names and a missing `return` are
    /// not given.
    recovered: bool,
    /// Where the result type is written.
    result_span: Option<Span>,
    /// The blocks of each compound statement, in order, consumed by pass 2.
    children: HashMap<StmtId, std::collections::VecDeque<BlockId>>,
}

impl Wf {
    fn owner(&mut self, local: LocalId, owner: Owner) {
        let i = local.0 as usize;
        if self.owners.len() <= i {
            self.owners.resize(i + 1, Owner::None);
        }
        self.owners[i] = owner;
    }

    fn new_stmt(
        &mut self,
        block: BlockId,
        span: Span,
        ancestors: &[StmtId],
        label: String,
    ) -> StmtId {
        let id = StmtId::from_index(self.stmts.len());
        self.stmts.push(ir::Stmt {
            kind: ir::StmtKind::Return(None),
            block,
            deps: Vec::new(),
        });
        self.stmt_spans.push(span);
        self.shapes.push(StmtShape {
            block,
            ancestors: ancestors.to_vec(),
        });
        self.labels.push(label);
        if let Some(b) = self.blocks.get_mut(block.index()) {
            b.stmts.push(id);
        }
        id
    }

    fn new_block(&mut self, parent: Option<StmtId>, role: BlockRole) -> BlockId {
        let id = BlockId::from_index(self.blocks.len());
        self.blocks.push(ir::Block {
            stmts: Vec::new(),
            parent,
        });
        self.roles.push(role);
        if let Some(p) = parent {
            self.children.entry(p).or_default().push_back(id);
        }
        id
    }
}

fn is_declaration(s: &ast::Statement) -> bool {
    matches!(s.kind, StatementKind::On(_) | StatementKind::Settings(_))
}

/// Statements that lower to nothing: declarations, and error nodes of statements that
/// did not parse.
fn lowers_to_nothing(s: &ast::Statement) -> bool {
    is_declaration(s) || matches!(s.kind, StatementKind::Error { .. })
}

/// Fewer workflows than this are checked on one thread: a second costs more than it saves.
pub(super) const PARALLEL_WORKFLOWS: usize = 64;

/// Stack for the second checking thread, as deep as the main thread's usually is: checking
/// recurses over expressions up to the parser's depth limit.
const CHECKER_STACK_BYTES: usize = 64 * 1024 * 1024;

impl Checker<'_> {
    /// Phase 8: check and lower every workflow. A large program's workflows are split in
    /// two runs of about the same amount of source, the second checked on another thread
    /// by a fork of the checker (see [`Checker::fork`]); what the fork finds is then
    /// appended in order, so the result is exactly what checking them one by one gives.
    pub(super) fn check_workflows(&mut self) {
        let n = self.workflows.len();
        if n < PARALLEL_WORKFLOWS || self.workers < 2 {
            self.lower_workflows(0..n);
            return;
        }
        let split = self.halfway_workflow();
        let mut fork_sources = SourceMap::new();
        let mut fork = self.fork(&mut fork_sources);
        let forked = std::thread::scope(|scope| {
            let second = std::thread::Builder::new()
                .name("flow-checker".into())
                .stack_size(CHECKER_STACK_BYTES)
                .spawn_scoped(scope, move || {
                    fork.lower_workflows(split..n);
                    fork
                });
            self.lower_workflows(0..split);
            match second {
                Ok(handle) => match handle.join() {
                    Ok(fork) => Some(fork),
                    Err(panic) => std::panic::resume_unwind(panic),
                },
                Err(_) => None,
            }
        });
        match forked {
            Some(fork) => self.absorb(fork, split..n),
            // No thread to be had: check the second run here.
            None => self.lower_workflows(split..n),
        }
    }

    fn lower_workflows(&mut self, range: std::ops::Range<WfIdx>) {
        for w in range {
            self.workflows[w].ir = self.lower_workflow(w);
        }
    }

    /// The index that splits the workflows into two runs of about the same source size.
    fn halfway_workflow(&self) -> WfIdx {
        let size = |w: &super::WfDef| {
            super::workflow_item(&w.module_ast, w.item)
                .map_or(0, |a| (a.span.end - a.span.start) as usize)
        };
        let total: usize = self.workflows.iter().map(size).sum();
        let mut seen = 0;
        for (w, def) in self.workflows.iter().enumerate() {
            seen += size(def);
            if seen * 2 >= total {
                return w + 1;
            }
        }
        self.workflows.len()
    }

    /// Takes what a fork found while it checked the workflows `range`: their IR and
    /// webhook paths, its diagnostics and editor references (after this checker's own,
    /// as checking in order would have put them) and the imports it saw used.
    fn absorb(&mut self, mut fork: Checker<'_>, range: std::ops::Range<WfIdx>) {
        for w in range {
            self.workflows[w].ir = fork.workflows[w].ir.take();
            self.workflows[w].webhook = fork.workflows[w].webhook.take();
        }
        self.diagnostics.append(&mut fork.diagnostics);
        self.analysis
            .references
            .append(&mut fork.analysis.references);
        self.analysis.scope.append(&mut fork.analysis.scope);
        for (mine, theirs) in self.modules.iter().zip(&fork.modules) {
            for (a, b) in mine.imports.iter().zip(&theirs.imports) {
                if b.used.get() {
                    a.used.set(true);
                }
            }
        }
    }

    fn lower_workflow(&mut self, w: WfIdx) -> Option<ir::Workflow> {
        let m = self.workflows[w].module;
        let holder = Arc::clone(&self.workflows[w].module_ast);
        let Some(ast) = super::workflow_item(&holder, self.workflows[w].item) else {
            return None;
        };
        let mut wf = Wf {
            m,
            w,
            arena: ExprArena::new(),
            blocks: Vec::new(),
            roles: Vec::new(),
            stmts: Vec::new(),
            stmt_spans: Vec::new(),
            shapes: Vec::new(),
            labels: Vec::new(),
            steps: Vec::new(),
            lowered: Vec::new(),
            exports: HashMap::new(),
            step_by_name: HashMap::new(),
            owners: Vec::new(),
            bindings: Bindings::default(),
            lets: Vec::new(),
            edges: Vec::new(),
            current: StmtId(0),
            ancestors: Vec::new(),
            path: Vec::new(),
            next_stmt: 0,
            recovered: false,
            result: self.workflows[w].result.clone(),
            returned: Vec::new(),
            settings_retry: None,
            notify_count: 0,
            signal_types: HashMap::new(),
            result_span: ast.result.as_ref().map(|t| t.span),
            children: HashMap::new(),
        };

        let signature = format!(
            "workflow {}({}){}",
            ast.name.name,
            self.workflows[w]
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.ty))
                .collect::<Vec<_>>()
                .join(", "),
            self.workflows[w]
                .result
                .as_ref()
                .map(|t| format!(" -> {t}"))
                .unwrap_or_default()
        );
        self.analysis.reference_with(
            ast.name.span,
            ast.name.span,
            SymbolKind::Workflow,
            &ast.name.name,
            signature,
            ast.doc.clone(),
        );
        // Constants first (evaluated at run start), then parameters.
        let consts = self.visible_consts(m);
        let mut const_locals: Vec<(usize, LocalId, String)> = Vec::new();
        for (name, c) in &consts {
            let ty = self.consts[*c].ty.clone();
            let local = wf.arena.new_local(name.clone(), ty.clone());
            const_locals.push((*c, local, name.clone()));
            wf.bindings.push(Binding {
                name: name.clone(),
                local,
                ty,
                def: self.consts[*c].span,
                kind: SymbolKind::Const,
                doc: self.consts[*c].doc.clone(),
            });
        }
        let param_sigs: Vec<ParamSig> = self.workflows[w]
            .params
            .iter()
            .map(|p| ParamSig {
                name: p.name.clone(),
                ty: p.ty.clone(),
                default: p.default.clone(),
                span: p.span,
                doc: p.doc.clone(),
            })
            .collect();
        let params = self.lower_params(
            &param_sigs,
            &mut wf.arena,
            &mut wf.bindings,
            SymbolKind::Param,
        );

        // Declarations: trigger and settings, at the top level only.
        let mut trigger_ast: Option<&ast::Trigger> = None;
        let mut settings_entries: Vec<&ast::SettingEntry> = Vec::new();
        for s in &ast.body.statements {
            match &s.kind {
                StatementKind::On(t) => match trigger_ast {
                    Some(first) => self.report(
                        Diagnostic::new(codes::MULTIPLE_TRIGGERS, t.span, "a workflow has at most one trigger")
                            .with_label("second trigger")
                            .with_secondary(first.span, "first trigger")
                            .with_help("split the workflow, or move the shared steps into a workflow both `run`"),
                    ),
                    None => trigger_ast = Some(t),
                },
                StatementKind::Settings(entries) => settings_entries.extend(entries.iter()),
                _ => {}
            }
        }
        let settings = self.workflow_settings(m, &settings_entries);
        wf.settings_retry = settings.retry.clone();
        let mut event = None;
        let trigger = trigger_ast.and_then(|t| self.lower_trigger(&mut wf, t, &mut event));
        let scheduled = matches!(
            trigger.as_ref().map(|t| &t.kind),
            Some(flow_ir::program::TriggerKind::Schedule { .. })
        );
        if !scheduled && trigger_ast.is_none_or(|_| trigger.is_some()) {
            for e in settings_entries
                .iter()
                .filter(|e| super::settings::SCHEDULE_SETTINGS.contains(&e.name.name.as_str()))
            {
                self.report(
                    Diagnostic::new(
                        codes::SCHEDULE_SETTING_UNUSED,
                        e.name.span,
                        format!(
                            "`{}` has no effect: this workflow has no schedule",
                            e.name.name
                        ),
                    )
                    .with_label("applies to `on schedule(...)` only")
                    .with_help("remove the setting, or give the workflow a schedule"),
                );
            }
        }
        if let (Some(t), None) = (trigger_ast, &event) {
            // The trigger was reported; `event` still names something, so its uses
            // are not reported again.
            let local = wf.arena.new_local("event", Type::Error);
            wf.bindings.push(Binding {
                name: "event".into(),
                local,
                ty: Type::Error,
                def: t.span,
                kind: SymbolKind::Variable,
                doc: None,
            });
        }

        // Pass 1: ids, shapes, step targets.
        let body = wf.new_block(None, BlockRole::Body);
        let mut path = vec![body];
        let mut ancestors = Vec::new();
        self.shape_block(&mut wf, &ast.body, body, &mut path, &mut ancestors, true);
        self.make_views(&mut wf);

        // Pass 2: lower.
        wf.path = vec![body];
        self.lower_block(&mut wf, &ast.body, body);
        // Parameters, `event` and constants read in the whole body.
        self.record_scope(&wf, 0, ast.body.span);

        // Results of steps.
        let mut steps = Vec::with_capacity(wf.steps.len());
        let mut step_spans = Vec::with_capacity(wf.steps.len());
        for (i, lowered) in std::mem::take(&mut wf.lowered).into_iter().enumerate() {
            let info = &wf.steps[i];
            step_spans.push(info.name_span);
            steps.push(lowered.unwrap_or_else(|| ir::Step {
                name: info.name.clone().unwrap_or_default(),
                doc: None,
                stmt: info.stmt,
                local: info.views.last().copied().unwrap_or(LocalId(0)),
                call: ir::StepCall::Workflow {
                    workflow: ir::WorkflowId(u32::MAX),
                    args: Vec::new(),
                },
                result: Type::Error,
                idempotent: false,
                retry: None,
                timeout: None,
                cache: None,
                idempotency_key: None,
                reads: Vec::new(),
                after: Vec::new(),
            }));
        }
        for (i, info) in wf.steps.iter().enumerate() {
            if let Some(step) = steps.get_mut(i) {
                step.reads = dedup_ids(info.reads.iter().map(|&s| StepId::from_index(s)));
                step.after = dedup_ids(info.after.iter().map(|&s| StepId::from_index(s)));
            }
        }
        for (stmt, exports) in std::mem::take(&mut wf.exports) {
            match wf.stmts.get_mut(stmt.index()).map(|s| &mut s.kind) {
                Some(ir::StmtKind::If { exports: e, .. })
                | Some(ir::StmtKind::For { exports: e, .. })
                | Some(ir::StmtKind::Try { exports: e, .. }) => *e = exports,
                _ => {}
            }
        }

        // Dependencies: statement deps, cycles, redundant `after`s.
        for edge in &wf.edges {
            if let Some(stmt) = wf.stmts.get_mut(edge.from.index())
                && edge.to != edge.from
                && !stmt.deps.contains(&edge.to)
            {
                stmt.deps.push(edge.to);
            }
        }
        for stmt in &mut wf.stmts {
            stmt.deps.sort();
        }
        let diagnostics = check_dependencies(&wf.shapes, &wf.edges, &wf.labels);
        self.diagnostics.extend(diagnostics);
        self.unused(&wf);
        if let Some(result) = &wf.result
            && ast.result.is_some()
            && !terminates(&ast.body)
        {
            self.report(
                Diagnostic::new(
                    codes::MISSING_RETURN,
                    ast.name.span,
                    format!(
                        "workflow `{}` can finish without returning its `{result}`",
                        ast.name.name
                    ),
                )
                .with_label("declares a result")
                .with_help("end every path with `return ...` (or `fail ...`)"),
            );
        }
        let result = wf.result.clone().or_else(|| {
            let mut it = wf.returned.iter();
            let first = it.next()?.clone();
            Some(it.fold(first, |acc, t| flow_ir::types::join(&acc, t)))
        });

        // Constants the workflow reads, in dependency order.
        let mut used_locals: Vec<bool> = vec![false; wf.arena.locals.len()];
        for node in &wf.arena.nodes {
            if let crate::expr::NodeKind::Local(l) = node.kind
                && let Some(u) = used_locals.get_mut(l.0 as usize)
            {
                *u = true;
            }
        }
        let mut inits: Vec<(usize, ir::ConstInit)> = Vec::new();
        let mut done: Vec<bool> = vec![false; const_locals.len()];
        loop {
            let mut added = false;
            for (k, (c, local, name)) in const_locals.iter().enumerate() {
                if done[k] || !used_locals.get(local.0 as usize).copied().unwrap_or(false) {
                    continue;
                }
                done[k] = true;
                added = true;
                self.touch_const_name(m, name);
                let before = wf.arena.nodes.len();
                let decl = self.consts[*c].decl.clone();
                let ty = self.consts[*c].ty.clone();
                let mut sink = Vec::new();
                let mut no_index = crate::analysis::Analysis::default();
                let value = check_in(
                    &decl.value,
                    &wf.bindings,
                    &mut wf.arena,
                    Some(&ty),
                    &mut sink,
                    &mut no_index,
                );
                for (l, _) in locals_read(&wf.arena, before) {
                    if let Some(u) = used_locals.get_mut(l.0 as usize) {
                        *u = true;
                    }
                }
                inits.push((
                    self.consts[*c].order,
                    ir::ConstInit {
                        name: name.clone(),
                        local: *local,
                        value,
                    },
                ));
            }
            if !added {
                break;
            }
        }
        inits.sort_by_key(|(order, _)| *order);

        Some(ir::Workflow {
            name: self.workflows[w].name.clone(),
            doc: ast.doc.clone(),
            params,
            result,
            trigger,
            settings,
            exprs: std::sync::Arc::new(wf.arena),
            consts: inits.into_iter().map(|(_, c)| c).collect(),
            event,
            body,
            blocks: wf.blocks,
            stmts: wf.stmts,
            steps,
            spans: ir::WorkflowSpans {
                name: ast.name.span,
                stmts: wf.stmt_spans,
                steps: step_spans,
                trigger: trigger_ast.map(|t| t.span),
            },
        })
    }

    fn shape_block(
        &mut self,
        wf: &mut Wf,
        block: &ast::Block,
        id: BlockId,
        path: &mut Vec<BlockId>,
        ancestors: &mut Vec<StmtId>,
        top: bool,
    ) {
        for s in &block.statements {
            if matches!(s.kind, StatementKind::Error { .. }) {
                wf.recovered = true;
                continue;
            }
            if is_declaration(s) {
                if !top {
                    let what = if matches!(s.kind, StatementKind::On(_)) {
                        "`on`"
                    } else {
                        "`settings`"
                    };
                    self.report(
                        Diagnostic::new(
                            codes::MISPLACED_DECLARATION,
                            s.span,
                            format!("{what} belongs at the top level of the workflow"),
                        )
                        .with_label("inside a block")
                        .with_help(
                            "move it to the workflow's body, outside any `if`, `for` or `try`",
                        ),
                    );
                }
                continue;
            }
            let label = stmt_label(s);
            let sid = wf.new_stmt(id, s.span, ancestors, label);
            match &s.kind {
                StatementKind::Step(step) => {
                    let (target, ty) = self.resolve_step_target(wf.m, wf.w, step);
                    let idx = wf.steps.len();
                    if let Some(&prev) = wf.step_by_name.get(&step.name.name) {
                        let prev = wf.steps[prev].name_span;
                        self.report(super::names::duplicate(&step.name, prev));
                    } else if let Some(b) = wf.bindings.find(&step.name.name) {
                        let def = b.def;
                        self.report(
                            Diagnostic::new(
                                codes::DUPLICATE_NAME,
                                step.name.span,
                                format!("step `{}` hides a name already in scope", step.name.name),
                            )
                            .with_label("declared here")
                            .with_secondary(def, "the name is declared here")
                            .with_help("rename the step"),
                        );
                    } else {
                        wf.step_by_name.insert(step.name.name.clone(), idx);
                    }
                    wf.steps.push(StepInfo {
                        name: Some(step.name.name.clone()),
                        name_span: step.name.span,
                        doc: s.doc.clone(),
                        stmt: sid,
                        blocks: path.clone(),
                        ancestors: ancestors.clone(),
                        views: Vec::new(),
                        ty,
                        target,
                        used: false,
                        reads: Vec::new(),
                        after: Vec::new(),
                    });
                    wf.lowered.push(None);
                }
                StatementKind::Notify { integration, .. } => {
                    let target = match self
                        .lookup(wf.m, &integration.name)
                        .map(|e| (e.sym, e.span))
                    {
                        Some((Symbol::Integration(i), _)) => Target::Notify(i),
                        _ => Target::Unresolved,
                    };
                    let ty = match &target {
                        Target::Notify(i) => self.integrations[*i]
                            .notify
                            .and_then(|a| self.integrations[*i].actions.get(a))
                            .map(|a| a.result.clone())
                            .unwrap_or(Type::Error),
                        _ => Type::Error,
                    };
                    wf.steps.push(StepInfo {
                        name: None,
                        name_span: s.span,
                        doc: None,
                        stmt: sid,
                        blocks: path.clone(),
                        ancestors: ancestors.clone(),
                        views: Vec::new(),
                        ty,
                        target,
                        used: true,
                        reads: Vec::new(),
                        after: Vec::new(),
                    });
                    wf.lowered.push(None);
                }
                StatementKind::If {
                    branches,
                    otherwise,
                } => {
                    ancestors.push(sid);
                    for b in branches {
                        let bid = wf.new_block(Some(sid), BlockRole::Then);
                        path.push(bid);
                        self.shape_block(wf, &b.body, bid, path, ancestors, false);
                        path.pop();
                    }
                    if let Some(o) = otherwise {
                        let bid = wf.new_block(Some(sid), BlockRole::Else);
                        path.push(bid);
                        self.shape_block(wf, o, bid, path, ancestors, false);
                        path.pop();
                    }
                    ancestors.pop();
                }
                StatementKind::For { body, .. } => {
                    ancestors.push(sid);
                    let bid = wf.new_block(Some(sid), BlockRole::Loop);
                    path.push(bid);
                    self.shape_block(wf, body, bid, path, ancestors, false);
                    path.pop();
                    ancestors.pop();
                }
                StatementKind::Try { body, handler, .. } => {
                    ancestors.push(sid);
                    for (b, role) in [(body, BlockRole::TryBody), (handler, BlockRole::Catch)] {
                        let bid = wf.new_block(Some(sid), role);
                        path.push(bid);
                        self.shape_block(wf, b, bid, path, ancestors, false);
                        path.pop();
                    }
                    ancestors.pop();
                }
                _ => {}
            }
        }
    }

    /// Gives each step a local per block level and records how compound statements
    /// export them.
    fn make_views(&mut self, wf: &mut Wf) {
        for s in 0..wf.steps.len() {
            let depth = wf.steps[s].blocks.len().saturating_sub(1);
            let name = wf.steps[s].name.clone().unwrap_or_else(|| "notify".into());
            let mut views = vec![LocalId(0); depth + 1];
            let mut ty = wf.steps[s].ty.clone();
            let inner = wf.arena.new_local(name.clone(), ty.clone());
            wf.owner(inner, Owner::StepView { step: s, depth });
            views[depth] = inner;
            for k in (0..depth).rev() {
                let block = wf.steps[s].blocks[k + 1];
                ty = match wf.roles.get(block.index()) {
                    Some(BlockRole::Loop) => Type::list(ty),
                    _ => Type::optional(ty),
                };
                let outer = wf.arena.new_local(name.clone(), ty.clone());
                wf.owner(outer, Owner::StepView { step: s, depth: k });
                views[k] = outer;
                let compound = wf.steps[s].ancestors[k];
                wf.exports.entry(compound).or_default().push(ir::Export {
                    step: StepId::from_index(s),
                    inner: views[k + 1],
                    outer,
                });
            }
            wf.steps[s].views = views;
        }
    }

    // ------------------------------------------------------------------ pass 2

    /// Binds every named step as seen from the current block.
    fn bind_steps(&mut self, wf: &mut Wf) {
        for s in 0..wf.steps.len() {
            let Some(name) = wf.steps[s].name.clone() else {
                continue;
            };
            if wf.step_by_name.get(&name) != Some(&s) {
                continue;
            }
            let sb = &wf.steps[s].blocks;
            let k = sb.iter().zip(&wf.path).take_while(|(a, b)| a == b).count();
            let (local, ty) = if k >= sb.len() {
                let l = wf.steps[s].views[sb.len() - 1];
                (
                    l,
                    wf.arena
                        .local(l)
                        .map(|x| x.ty.clone())
                        .unwrap_or(Type::Error),
                )
            } else {
                let diverge_here = k < wf.path.len();
                let same_compound = diverge_here
                    && wf.blocks.get(sb[k].index()).and_then(|b| b.parent)
                        == wf.blocks.get(wf.path[k].index()).and_then(|b| b.parent);
                let allowed = !same_compound
                    || (wf.roles.get(sb[k].index()) == Some(&BlockRole::TryBody)
                        && wf.roles.get(wf.path[k].index()) == Some(&BlockRole::Catch));
                if allowed {
                    let l = wf.steps[s].views[k - 1];
                    (
                        l,
                        wf.arena
                            .local(l)
                            .map(|x| x.ty.clone())
                            .unwrap_or(Type::Error),
                    )
                } else {
                    let ty = Type::Error;
                    let l = wf.arena.new_local(name.clone(), ty.clone());
                    wf.owner(l, Owner::Unavailable { step: s });
                    (l, ty)
                }
            };
            let hover_doc = wf.steps[s].doc.clone();
            wf.bindings.push(Binding {
                name,
                local,
                ty,
                def: wf.steps[s].name_span,
                kind: SymbolKind::Step,
                doc: hover_doc,
            });
        }
    }

    fn unused(&mut self, wf: &Wf) {
        if wf.recovered {
            return;
        }
        for info in &wf.steps {
            let Some(name) = &info.name else { continue };
            if info.used || name.starts_with('_') {
                continue;
            }
            if let Target::Action(i, a) = info.target {
                let sig = &self.integrations[i].actions[a];
                if sig.idempotent {
                    let what = format!("{}.{}", self.integrations[i].name, sig.name);
                    self.report(
                        Diagnostic::new(
                            codes::UNUSED_STEP,
                            info.name_span,
                            format!("the result of step `{name}` is never used"),
                        )
                        .with_label(format!("`{what}` only reads, and nothing reads its result"))
                        .with_help(format!(
                            "use `{name}`, remove the step, or name it `_{name}`"
                        )),
                    );
                }
            }
        }
        for l in &wf.lets {
            if !l.used && !l.name.starts_with('_') {
                self.report(
                    Diagnostic::new(
                        codes::UNUSED_LET,
                        l.span,
                        format!("`{}` is never used", l.name),
                    )
                    .with_label("computed but never read")
                    .with_help(format!("remove it, or name it `_{}`", l.name)),
                );
            }
        }
    }
}

fn current_step(wf: &Wf) -> Option<usize> {
    wf.steps.iter().position(|s| s.stmt == wf.current)
}

fn dedup_ids(ids: impl Iterator<Item = StepId>) -> Vec<StepId> {
    let mut v: Vec<StepId> = ids.collect();
    v.sort();
    v.dedup();
    v
}

fn stmt_label(s: &ast::Statement) -> String {
    match &s.kind {
        StatementKind::Let { name, .. } => format!("`{}`", name.name),
        StatementKind::Step(step) => format!("`{}`", step.name.name),
        StatementKind::Wait(_) => "`wait`".into(),
        StatementKind::Notify { .. } => "`notify`".into(),
        StatementKind::If { .. } => "the `if`".into(),
        StatementKind::For { var, .. } => format!("the `for {}` loop", var.name),
        StatementKind::Try { .. } => "the `try`".into(),
        StatementKind::Fail(_) => "`fail`".into(),
        StatementKind::Return(_) => "`return`".into(),
        StatementKind::Log(_) => "`log`".into(),
        StatementKind::On(_) | StatementKind::Settings(_) | StatementKind::Error { .. } => {
            String::new()
        }
    }
}

/// Whether every path through the block ends in `return` or `fail`.
fn terminates(block: &ast::Block) -> bool {
    block.statements.iter().any(|s| match &s.kind {
        // What a statement that did not parse would have done is unknown.
        StatementKind::Return(_) | StatementKind::Fail(_) | StatementKind::Error { .. } => true,
        StatementKind::If {
            branches,
            otherwise: Some(o),
        } => branches.iter().all(|b| terminates(&b.body)) && terminates(o),
        StatementKind::Try { body, handler, .. } => terminates(body) && terminates(handler),
        _ => false,
    })
}
