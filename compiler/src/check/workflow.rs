//! Workflows: triggers and settings, the statement tree, steps and their calls,
//! modifiers, the views of steps seen from other blocks, and dependencies.
//!
//! Two passes over the body. The first gives every statement, block and step its id and
//! resolves each step's call (so a step's type is known before any expression reads
//! it: steps may be read before they are declared). The second checks expressions,
//! lowers statements and records every dependency edge with the span that caused it.

use std::collections::HashMap;
use std::sync::Arc;

use flow_grammar::ast::{self, ModifierKind, StatementKind, StepCall};
use flow_grammar::{Diagnostic, SourceMap, Span, codes};

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
            result: self.workflows[w].result.clone(),
            returned: Vec::new(),
            settings_retry: None,
            notify_count: 0,
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
            if let Some(stmt) = wf.stmts.get_mut(edge.from.index()) {
                if edge.to != edge.from && !stmt.deps.contains(&edge.to) {
                    stmt.deps.push(edge.to);
                }
            }
        }
        for stmt in &mut wf.stmts {
            stmt.deps.sort();
        }
        let diagnostics = check_dependencies(&wf.shapes, &wf.edges, &wf.labels);
        self.diagnostics.extend(diagnostics);
        self.unused(&wf);
        if let Some(result) = &wf.result {
            if !ast.result.is_none() && !terminates(&ast.body) {
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
        }
        let result = wf.result.clone().or_else(|| {
            let mut it = wf.returned.iter();
            let first = it.next()?.clone();
            Some(it.fold(first, |acc, t| flow_ir::types::join(&acc, t)))
        });

        // Constants the workflow reads, in dependency order.
        let mut used_locals: Vec<bool> = vec![false; wf.arena.locals.len()];
        for node in &wf.arena.nodes {
            if let crate::expr::NodeKind::Local(l) = node.kind {
                if let Some(u) = used_locals.get_mut(l.0 as usize) {
                    *u = true;
                }
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
            exprs: wf.arena,
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

    fn lower_trigger(
        &mut self,
        wf: &mut Wf,
        t: &ast::Trigger,
        event: &mut Option<LocalId>,
    ) -> Option<ir::Trigger> {
        let m = wf.m;
        let segments = &t.source.segments;
        let single = if segments.len() == 1 {
            Some(segments[0].name.as_str())
        } else {
            None
        };
        let (kind, event_ty) = match single {
            Some("schedule") => {
                let mut cron: Option<(String, Span)> = None;
                let mut zone: Option<String> = None;
                for arg in &t.args {
                    match arg.name.as_ref().map(|n| n.name.as_str()) {
                        None if cron.is_none() => match self.fold(m, &arg.value) {
                            Some(ConstVal::String(s)) => cron = Some((s, arg.value.span)),
                            _ => self.report(
                                Diagnostic::new(
                                    codes::NOT_CONSTANT,
                                    arg.value.span,
                                    "the cron expression must be a string literal",
                                )
                                .with_label("not a constant string"),
                            ),
                        },
                        Some("tz") => match self.fold(m, &arg.value) {
                            Some(ConstVal::String(s)) => {
                                if self.validate_time_zone(&s, arg.value.span) {
                                    zone = Some(s);
                                }
                            }
                            _ => self.report(
                                Diagnostic::new(
                                    codes::NOT_CONSTANT,
                                    arg.value.span,
                                    "the time zone must be a string literal",
                                )
                                .with_label("not a constant string"),
                            ),
                        },
                        Some(other) => self.report(
                            Diagnostic::new(
                                codes::UNKNOWN_ARGUMENT,
                                arg.span,
                                format!("`schedule` has no parameter `{other}`"),
                            )
                            .with_label("unknown argument")
                            .with_suggestion(other, ["tz"])
                            .with_note("`schedule(\"CRON\", tz: \"Zone\")`"),
                        ),
                        None => self.report(
                            Diagnostic::new(
                                codes::UNKNOWN_ARGUMENT,
                                arg.span,
                                "`schedule` takes one cron expression",
                            )
                            .with_label("extra argument"),
                        ),
                    }
                }
                let Some((cron, span)) = cron else {
                    self.report(
                        Diagnostic::new(
                            codes::MISSING_ARGUMENT,
                            t.span,
                            "`schedule` needs a cron expression",
                        )
                        .with_label("no cron expression")
                        .with_help("for example `on schedule(\"0 6 * * *\", tz: \"UTC\")`"),
                    );
                    return None;
                };
                let with_seconds = self.validate_cron(&cron, span)?;
                (
                    ir::TriggerKind::Schedule {
                        cron,
                        with_seconds,
                        time_zone: zone,
                    },
                    ir::schedule_event_type(),
                )
            }
            Some("webhook") => {
                let path = match t.args.as_slice() {
                    [arg] if arg.name.is_none() => match self.fold(m, &arg.value) {
                        Some(ConstVal::String(s)) => {
                            if !s.starts_with('/') {
                                self.report(
                                    Diagnostic::new(
                                        codes::INVALID_WEBHOOK_PATH,
                                        arg.value.span,
                                        format!("webhook path `{s}` must start with `/`"),
                                    )
                                    .with_label("not an absolute path")
                                    .with_help(format!("write `\"/{s}\"`")),
                                );
                            }
                            self.workflows[wf.w].webhook = Some((s.clone(), arg.value.span));
                            s
                        }
                        _ => {
                            self.report(
                                Diagnostic::new(
                                    codes::NOT_CONSTANT,
                                    arg.value.span,
                                    "the webhook path must be a string literal",
                                )
                                .with_label("not a constant string"),
                            );
                            return None;
                        }
                    },
                    _ => {
                        self.report(
                            Diagnostic::new(
                                codes::INVALID_WEBHOOK_PATH,
                                t.span,
                                "`webhook` takes one path",
                            )
                            .with_label("expected `webhook(\"/path\")`"),
                        );
                        return None;
                    }
                };
                let ty = match &t.as_type {
                    Some(ty) => self.type_of(m, None, ty),
                    None => Type::Dyn,
                };
                (
                    ir::TriggerKind::Webhook {
                        path,
                        body_type: ty.clone(),
                    },
                    ty,
                )
            }
            _ => {
                let (integ_path, event_name) = segments.split_at(segments.len().saturating_sub(1));
                let resolved = if integ_path.is_empty() {
                    None
                } else {
                    Some(self.resolve_path(m, None, integ_path))
                };
                let integ = match resolved {
                    Some(Ok((Symbol::Integration(i), def))) => {
                        self.analysis.reference(
                            integ_path[integ_path.len() - 1].span,
                            def,
                            SymbolKind::Integration,
                            &self.integrations[i].name.clone(),
                            self.integrations[i].doc.clone(),
                        );
                        i
                    }
                    Some(Err(e)) => {
                        self.unknown_path(codes::UNKNOWN_TRIGGER, "trigger", segments, e);
                        return None;
                    }
                    _ => {
                        let shown = t.source.dotted();
                        let mut candidates: Vec<String> = vec!["schedule".into(), "webhook".into()];
                        candidates.extend(
                            self.modules[m]
                                .names
                                .iter()
                                .filter(|(_, e)| matches!(e.sym, Symbol::Integration(_)))
                                .map(|(n, _)| n.clone()),
                        );
                        self.report(
                            Diagnostic::new(codes::UNKNOWN_TRIGGER, t.source.span, format!("unknown trigger `{shown}`"))
                                .with_label("not a trigger")
                                .with_suggestion(&shown, candidates.iter().map(String::as_str))
                                .with_note("triggers: `schedule(\"CRON\")`, `webhook(\"/path\")`, or an integration's event such as `slack.message(...)`"),
                        );
                        return None;
                    }
                };
                let Some(event_ident) = event_name.first() else {
                    return None;
                };
                let Some(e) = self.integrations[integ]
                    .events
                    .iter()
                    .position(|e| e.name == event_ident.name)
                else {
                    let names: Vec<String> = self.integrations[integ]
                        .events
                        .iter()
                        .map(|e| e.name.clone())
                        .collect();
                    let d = Diagnostic::new(
                        codes::UNKNOWN_EVENT,
                        event_ident.span,
                        format!(
                            "integration `{}` has no event `{}`",
                            self.integrations[integ].name, event_ident.name
                        ),
                    )
                    .with_label("unknown event")
                    .with_suggestion(&event_ident.name, names.iter().map(String::as_str));
                    let d = if d.help.is_none() && !names.is_empty() {
                        d.with_note(format!("its events: {}", names.join(", ")))
                    } else {
                        d
                    };
                    self.report(d);
                    return None;
                };
                let sig = &self.integrations[integ].events[e];
                let def = sig.span;
                let doc = sig.doc.clone();
                let result = sig.result.clone();
                let params = Arc::clone(&sig.params);
                self.analysis.reference(
                    event_ident.span,
                    def,
                    SymbolKind::Event,
                    &event_ident.name,
                    doc,
                );
                if let Some(ty) = &t.as_type {
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_TRIGGER,
                            ty.span,
                            "`as TYPE` applies only to `webhook` triggers",
                        )
                        .with_label("the event's type is declared by the integration")
                        .with_note(format!("`event` has type `{result}` here")),
                    );
                }
                let callee = format!("event `{}`", t.source.dotted());
                let args = self.call_args(
                    &params,
                    &t.args,
                    &wf.bindings,
                    &mut wf.arena,
                    t.span,
                    &callee,
                );
                let event_ref = ir::EventRef {
                    integration: ir::IntegrationId::from_index(integ),
                    event: e as u32,
                };
                (
                    ir::TriggerKind::Event {
                        event: event_ref,
                        args,
                    },
                    result,
                )
            }
        };
        let local = wf.arena.new_local("event", event_ty.clone());
        *event = Some(local);
        wf.bindings.push(Binding {
            name: "event".into(),
            local,
            ty: event_ty,
            def: t.span,
            kind: SymbolKind::Variable,
            doc: Some("The event that started this run.".into()),
        });
        let when = t.when.as_ref().map(|c| {
            check_in(
                c,
                &wf.bindings,
                &mut wf.arena,
                Some(&Type::Bool),
                &mut self.diagnostics,
                &mut self.analysis,
            )
        });
        Some(ir::Trigger { kind, when })
    }

    // ------------------------------------------------------------------ pass 1

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

    fn resolve_step_target(&mut self, m: ModIdx, w: WfIdx, step: &ast::Step) -> (Target, Type) {
        let path = step.call.target();
        match &step.call {
            StepCall::Workflow { .. } => match self.resolve_path(m, None, &path.segments) {
                Ok((Symbol::Workflow(target), def)) => {
                    let result = self.workflows[target].result.clone().unwrap_or(Type::Dyn);
                    let _ = w;
                    self.analysis.reference_with(
                        path.span,
                        def,
                        SymbolKind::Workflow,
                        &path.dotted(),
                        format!("workflow {} -> {result}", path.dotted()),
                        self.workflows[target].doc.clone(),
                    );
                    (Target::Workflow(target), result)
                }
                Ok((other, _)) => {
                    self.report(
                        Diagnostic::new(
                            codes::UNKNOWN_WORKFLOW,
                            path.span,
                            format!(
                                "`{}` is {}, not a workflow",
                                path.dotted(),
                                other.describe()
                            ),
                        )
                        .with_label("`run` needs a workflow"),
                    );
                    (Target::Unresolved, Type::Error)
                }
                Err(e) => {
                    self.unknown_path(codes::UNKNOWN_WORKFLOW, "workflow", &path.segments, e);
                    (Target::Unresolved, Type::Error)
                }
            },
            StepCall::Action { .. } => {
                if path.segments.len() < 2 {
                    let name = path.dotted();
                    let d = Diagnostic::new(
                        codes::UNKNOWN_ACTION,
                        path.span,
                        format!("`{name}` is not an action"),
                    )
                    .with_label("expected `integration.action`");
                    let d = match self.lookup(m, &name).map(|e| e.sym) {
                        Some(Symbol::Workflow(_)) => d.with_help(format!(
                            "to start a child workflow, write `run {name}(...)`"
                        )),
                        _ => d,
                    };
                    self.report(d);
                    return (Target::Unresolved, Type::Error);
                }
                let (head, last) = path.segments.split_at(path.segments.len() - 1);
                let integ = match self.resolve_path(m, None, head) {
                    Ok((Symbol::Integration(i), def)) => {
                        let name = self.integrations[i].name.clone();
                        let doc = self.integrations[i].doc.clone();
                        self.analysis.reference_with(
                            head[head.len() - 1].span,
                            def,
                            SymbolKind::Integration,
                            &name,
                            format!("integration {name}"),
                            doc,
                        );
                        i
                    }
                    Ok((Symbol::Workflow(_), _)) | Ok((Symbol::Module(_), _))
                        if head.len() == 1 =>
                    {
                        self.report(
                            Diagnostic::new(
                                codes::NOT_AN_INTEGRATION,
                                head[0].span,
                                format!("`{}` is not an integration", head[0].name),
                            )
                            .with_label("a step calls `integration.action(...)`"),
                        );
                        return (Target::Unresolved, Type::Error);
                    }
                    Ok((other, _)) => {
                        self.report(
                            Diagnostic::new(
                                codes::NOT_AN_INTEGRATION,
                                path.span,
                                format!(
                                    "`{}` is {}, not an integration",
                                    head.iter()
                                        .map(|s| s.name.as_str())
                                        .collect::<Vec<_>>()
                                        .join("."),
                                    other.describe()
                                ),
                            )
                            .with_label("a step calls `integration.action(...)`"),
                        );
                        return (Target::Unresolved, Type::Error);
                    }
                    Err(e) => {
                        self.unknown_path(codes::UNKNOWN_NAME, "integration", head, e);
                        return (Target::Unresolved, Type::Error);
                    }
                };
                let action = &last[0];
                match self.integrations[integ]
                    .actions
                    .iter()
                    .position(|a| a.name == action.name)
                {
                    Some(a) => {
                        let sig = &self.integrations[integ].actions[a];
                        let hover = sig.hover.clone();
                        let (def, doc, result) = (sig.span, sig.doc.clone(), sig.result.clone());
                        self.analysis.reference_with(
                            action.span,
                            def,
                            SymbolKind::Action,
                            &action.name,
                            hover,
                            doc,
                        );
                        (Target::Action(integ, a), result)
                    }
                    None => {
                        let names: Vec<String> = self.integrations[integ]
                            .actions
                            .iter()
                            .map(|a| a.name.clone())
                            .collect();
                        let d = Diagnostic::new(
                            codes::UNKNOWN_ACTION,
                            action.span,
                            format!(
                                "integration `{}` has no action `{}`",
                                self.integrations[integ].name, action.name
                            ),
                        )
                        .with_label("unknown action")
                        .with_suggestion(&action.name, names.iter().map(String::as_str));
                        let d = if d.help.is_none() && !names.is_empty() && names.len() <= 12 {
                            d.with_note(format!("its actions: {}", names.join(", ")))
                        } else {
                            d
                        };
                        self.report(d);
                        (Target::Unresolved, Type::Error)
                    }
                }
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

    fn lower_block(&mut self, wf: &mut Wf, block: &ast::Block, id: BlockId) {
        let mark = wf.bindings.mark();
        self.bind_steps(wf);
        let mut previous: Vec<StmtId> = Vec::new();
        let mut last_wait: Option<StmtId> = None;
        let mut ended: Option<Span> = None;
        let mut warned_unreachable = false;
        for s in &block.statements {
            if is_declaration(s) {
                continue;
            }
            let sid = StmtId::from_index(wf.next_stmt);
            wf.next_stmt += 1;
            if let Some(end) = ended {
                if !warned_unreachable {
                    warned_unreachable = true;
                    self.report(
                        Diagnostic::new(codes::UNREACHABLE, s.span, "this statement can never run")
                            .with_label("unreachable")
                            .with_secondary(end, "the run ends here"),
                    );
                }
            }
            wf.current = sid;
            if let Some(wait) = last_wait {
                wf.edges.push(Edge {
                    from: sid,
                    to: wait,
                    span: s.span,
                    kind: EdgeKind::Barrier,
                    name: String::new(),
                });
            }
            let barrier = matches!(
                s.kind,
                StatementKind::Wait(_) | StatementKind::Fail(_) | StatementKind::Return(_)
            );
            if barrier {
                for &p in &previous {
                    wf.edges.push(Edge {
                        from: sid,
                        to: p,
                        span: s.span,
                        kind: EdgeKind::Barrier,
                        name: String::new(),
                    });
                }
            }
            let kind = self.lower_stmt(wf, s, sid);
            if let Some(stmt) = wf.stmts.get_mut(sid.index()) {
                stmt.kind = kind;
                stmt.block = id;
            }
            if matches!(s.kind, StatementKind::Wait(_)) {
                last_wait = Some(sid);
            }
            if matches!(s.kind, StatementKind::Fail(_) | StatementKind::Return(_))
                && ended.is_none()
            {
                ended = Some(s.span);
            }
            previous.push(sid);
        }
        wf.bindings.truncate(mark);
    }

    fn sub_block(&mut self, wf: &mut Wf, block: &ast::Block, parent: StmtId) -> BlockId {
        // Pass 1 numbered the blocks of `parent` in the order pass 2 visits them.
        let id = wf
            .children
            .get_mut(&parent)
            .and_then(|c| c.pop_front())
            .unwrap_or(BlockId(0));
        wf.path.push(id);
        wf.ancestors.push(parent);
        self.lower_block(wf, block, id);
        wf.ancestors.pop();
        wf.path.pop();
        wf.current = parent;
        id
    }

    /// Checks an expression as part of the current statement, recording what it reads.
    fn expr(&mut self, wf: &mut Wf, e: &ast::Expr, expected: Option<&Type>) -> ExprId {
        let before = wf.arena.nodes.len();
        let id = check_in(
            e,
            &wf.bindings,
            &mut wf.arena,
            expected,
            &mut self.diagnostics,
            &mut self.analysis,
        );
        self.record_reads(wf, before);
        id
    }

    fn record_reads(&mut self, wf: &mut Wf, before: usize) {
        for (local, span) in locals_read(&wf.arena, before) {
            let owner = wf
                .owners
                .get(local.0 as usize)
                .copied()
                .unwrap_or(Owner::None);
            match owner {
                Owner::None => {}
                Owner::StepView { step, depth } => {
                    wf.steps[step].used = true;
                    if let Some(current) = current_step(wf) {
                        if !wf.steps[current].reads.contains(&step) {
                            wf.steps[current].reads.push(step);
                        }
                    }
                    let info = &wf.steps[step];
                    let target = if depth < info.ancestors.len() {
                        info.ancestors[depth]
                    } else {
                        info.stmt
                    };
                    if wf.ancestors.contains(&target) {
                        continue;
                    }
                    let name = format!("`{}`", wf.steps[step].name.clone().unwrap_or_default());
                    wf.edges.push(Edge {
                        from: wf.current,
                        to: target,
                        span,
                        kind: EdgeKind::Data,
                        name,
                    });
                }
                Owner::Unavailable { step } => {
                    let name = wf.steps[step].name.clone().unwrap_or_default();
                    let def = wf.steps[step].name_span;
                    self.report(
                        Diagnostic::new(codes::NO_VALUE_HERE, span, format!("step `{name}` never has a value here"))
                            .with_label("read here")
                            .with_secondary(def, "declared in another branch of the same statement")
                            .with_note("only one branch of an `if` runs, and a `catch` runs after its `try` body, never before"),
                    );
                }
                Owner::Let { index } => {
                    wf.lets[index].used = true;
                    let target = wf.lets[index].stmt;
                    if target != wf.current {
                        let name = format!("`{}`", wf.lets[index].name);
                        wf.edges.push(Edge {
                            from: wf.current,
                            to: target,
                            span,
                            kind: EdgeKind::Data,
                            name,
                        });
                    }
                }
            }
        }
    }

    fn lower_stmt(&mut self, wf: &mut Wf, s: &ast::Statement, sid: StmtId) -> ir::StmtKind {
        match &s.kind {
            StatementKind::On(_) | StatementKind::Settings(_) => ir::StmtKind::Return(None),
            StatementKind::Let { name, ty, value } => {
                let declared = ty.as_ref().map(|t| self.type_of(wf.m, None, t));
                let value_id = self.expr(wf, value, declared.as_ref());
                let ty = declared
                    .unwrap_or_else(|| wf.arena.ty(value_id).cloned().unwrap_or(Type::Error));
                if let Some(b) = wf.bindings.find(&name.name) {
                    let def = b.def;
                    self.report(
                        Diagnostic::new(
                            codes::DUPLICATE_NAME,
                            name.span,
                            format!("`{}` is already declared", name.name),
                        )
                        .with_label("declared again here")
                        .with_secondary(def, "first declared here")
                        .with_help("choose another name"),
                    );
                }
                let local = wf.arena.new_local(name.name.clone(), ty.clone());
                let index = wf.lets.len();
                wf.lets.push(LetInfo {
                    name: name.name.clone(),
                    span: name.span,
                    stmt: sid,
                    used: false,
                });
                wf.owner(local, Owner::Let { index });
                self.analysis.reference_with(
                    name.span,
                    name.span,
                    SymbolKind::Let,
                    &name.name,
                    format!("let {}: {ty}", name.name),
                    s.doc.clone(),
                );
                wf.bindings.push(Binding {
                    name: name.name.clone(),
                    local,
                    ty,
                    def: name.span,
                    kind: SymbolKind::Let,
                    doc: s.doc.clone(),
                });
                ir::StmtKind::Let {
                    local,
                    value: value_id,
                }
            }
            StatementKind::Step(step) => {
                let index = wf.steps.iter().position(|x| x.stmt == sid).unwrap_or(0);
                self.lower_step(wf, index, step, s);
                ir::StmtKind::Step(StepId::from_index(index))
            }
            StatementKind::Notify {
                integration,
                target,
                message,
            } => {
                let index = wf.steps.iter().position(|x| x.stmt == sid).unwrap_or(0);
                self.lower_notify(wf, index, integration, target, message, s.span);
                ir::StmtKind::Step(StepId::from_index(index))
            }
            StatementKind::Wait(w) => match w {
                ast::Wait::For(d) => {
                    ir::StmtKind::Wait(ir::Wait::For(self.duration(wf, d, "`wait`")))
                }
                ast::Wait::Until(t) => {
                    ir::StmtKind::Wait(ir::Wait::Until(self.expr(wf, t, Some(&Type::Timestamp))))
                }
            },
            StatementKind::If {
                branches,
                otherwise,
            } => {
                let mut out = Vec::with_capacity(branches.len());
                for b in branches {
                    wf.current = sid;
                    let condition = self.expr(wf, &b.condition, Some(&Type::Bool));
                    let body = self.sub_block(wf, &b.body, sid);
                    out.push(ir::Branch { condition, body });
                }
                let otherwise = otherwise.as_ref().map(|o| self.sub_block(wf, o, sid));
                ir::StmtKind::If {
                    branches: out,
                    otherwise,
                    exports: Vec::new(),
                }
            }
            StatementKind::For {
                var,
                iterable,
                parallel,
                body,
            } => {
                let iter_id = self.expr(wf, iterable, None);
                let ity = wf.arena.ty(iter_id).cloned().unwrap_or(Type::Error);
                let elem = match &ity {
                    Type::List(t) => (**t).clone(),
                    Type::Map(k, _) => (**k).clone(),
                    Type::Dyn => Type::Dyn,
                    Type::Error => Type::Error,
                    other => {
                        let d = Diagnostic::new(
                            codes::NOT_ITERABLE,
                            iterable.span,
                            format!("`for` needs a list or a map, found `{other}`"),
                        )
                        .with_label(format!("this is `{other}`"));
                        self.report(match other {
                            Type::Optional(inner)
                                if matches!(**inner, Type::List(_) | Type::Map(..)) =>
                            {
                                d.with_help("this may be null: iterate over `value ?? []`")
                            }
                            _ => d,
                        });
                        Type::Error
                    }
                };
                let parallel = parallel.as_ref().map(|p| match self.fold(wf.m, p) {
                    Some(v) => match self.int_in_range(&v, p.span, "`parallel`", 1, 10_000) {
                        Some(n) => ConstOr::Const(n as u32),
                        None => ConstOr::Const(1),
                    },
                    None => ConstOr::Expr(self.expr(wf, p, Some(&Type::Int))),
                });
                let local = wf.arena.new_local(var.name.clone(), elem.clone());
                self.analysis.reference_with(
                    var.span,
                    var.span,
                    SymbolKind::Variable,
                    &var.name,
                    format!("{}: {elem}", var.name),
                    None,
                );
                let mark = wf.bindings.mark();
                wf.bindings.push(Binding {
                    name: var.name.clone(),
                    local,
                    ty: elem,
                    def: var.span,
                    kind: SymbolKind::Variable,
                    doc: None,
                });
                let body = self.sub_block(wf, body, sid);
                wf.bindings.truncate(mark);
                ir::StmtKind::For {
                    var: local,
                    iterable: iter_id,
                    parallel,
                    body,
                    exports: Vec::new(),
                }
            }
            StatementKind::Try {
                body,
                error,
                handler,
            } => {
                let body_id = self.sub_block(wf, body, sid);
                let mark = wf.bindings.mark();
                let err = error.as_ref().map(|e| {
                    let ty = ir::error_record_type();
                    let local = wf.arena.new_local(e.name.clone(), ty.clone());
                    self.analysis.reference_with(e.span, e.span, SymbolKind::Variable, &e.name, format!("{}: {{ kind: string, message: string, step: string, attempts: int, status: int?, details: dyn }}", e.name), None);
                    wf.bindings.push(Binding { name: e.name.clone(), local, ty, def: e.span, kind: SymbolKind::Variable, doc: Some("The error that ended the `try` body.".into()) });
                    local
                });
                let handler_id = self.sub_block(wf, handler, sid);
                wf.bindings.truncate(mark);
                ir::StmtKind::Try {
                    body: body_id,
                    error: err,
                    handler: handler_id,
                    exports: Vec::new(),
                }
            }
            StatementKind::Fail(message) => {
                let id = self.expr(wf, message, Some(&Type::String));
                self.no_secret(wf, id, "a failure message");
                ir::StmtKind::Fail(id)
            }
            StatementKind::Return(value) => {
                let Some(value) = value else {
                    if let Some(result) = &wf.result {
                        self.report(
                            Diagnostic::new(
                                codes::RETURN_TYPE,
                                s.span,
                                format!("this workflow returns `{result}`; `return` needs a value"),
                            )
                            .with_label("no value"),
                        );
                    }
                    return ir::StmtKind::Return(None);
                };
                let before = self.diagnostics.len();
                let id = self.expr(wf, value, None);
                let id = match wf.result.clone() {
                    Some(result) => {
                        let span = value.span;
                        let decl = wf.result_span.unwrap_or(span);
                        self.convert(&mut wf.arena, id, &result, before, |from, to| {
                            Diagnostic::new(
                                codes::RETURN_TYPE,
                                span,
                                format!("the workflow returns `{to}`, but this is `{from}`"),
                            )
                            .with_label(format!("this is `{from}`"))
                            .with_secondary(decl, "the result type is declared here")
                        })
                    }
                    None => {
                        if let Some(t) = wf.arena.ty(id) {
                            wf.returned.push(t.clone());
                        }
                        id
                    }
                };
                self.no_secret(wf, id, "the workflow's output");
                ir::StmtKind::Return(Some(id))
            }
            StatementKind::Log(value) => {
                let id = self.expr(wf, value, None);
                self.no_secret(wf, id, "a log line");
                ir::StmtKind::Log(id)
            }
        }
    }

    fn no_secret(&mut self, wf: &Wf, id: ExprId, place: &str) {
        if wf.arena.ty(id).is_some_and(Type::contains_secret) {
            self.report(
                Diagnostic::new(
                    codes::SECRET_LEAK,
                    wf.arena.span(id),
                    format!("a secret cannot reach {place}"),
                )
                .with_label("this value holds a secret")
                .with_note("secrets are only usable where an integration expects a credential")
                .with_help("remove the secret from this value"),
            );
        }
    }

    fn duration(&mut self, wf: &mut Wf, e: &ast::Expr, what: &str) -> ConstOr<i64> {
        match self.fold(wf.m, e) {
            Some(v) => ConstOr::Const(self.positive_duration(&v, e.span, what).unwrap_or(1)),
            None => ConstOr::Expr(self.expr(wf, e, Some(&Type::Duration))),
        }
    }

    fn lower_notify(
        &mut self,
        wf: &mut Wf,
        index: usize,
        integration: &ast::Ident,
        target: &ast::Expr,
        message: &ast::Expr,
        span: Span,
    ) {
        wf.notify_count += 1;
        let name = format!("notify#{}", wf.notify_count);
        let integ = match self
            .lookup(wf.m, &integration.name)
            .map(|e| (e.sym, e.span))
        {
            Some((Symbol::Integration(i), def)) => {
                let iname = self.integrations[i].name.clone();
                self.analysis.reference_with(
                    integration.span,
                    def,
                    SymbolKind::Integration,
                    &iname,
                    format!("integration {iname}"),
                    self.integrations[i].doc.clone(),
                );
                if self.integrations[i].notify.is_none() {
                    self.report(
                        Diagnostic::new(codes::NO_NOTIFY, integration.span, format!("integration `{}` declares no `notify`", iname))
                            .with_label("cannot notify through this integration")
                            .with_help("call one of its actions in a `step`, or declare `notify = action(...)` in the integration"),
                    );
                }
                Some(i)
            }
            Some((other, _)) => {
                self.report(
                    Diagnostic::new(
                        codes::NOT_AN_INTEGRATION,
                        integration.span,
                        format!(
                            "`{}` is {}, not an integration",
                            integration.name,
                            other.describe()
                        ),
                    )
                    .with_label("`notify` needs an integration"),
                );
                None
            }
            None => {
                let candidates: Vec<String> = self.modules[wf.m]
                    .names
                    .iter()
                    .filter(|(_, e)| matches!(e.sym, Symbol::Integration(_)))
                    .map(|(n, _)| n.clone())
                    .collect();
                let d = Diagnostic::new(
                    codes::UNKNOWN_NAME,
                    integration.span,
                    format!("unknown integration `{}`", integration.name),
                )
                .with_label("not declared or imported here")
                .with_suggestion(&integration.name, candidates.iter().map(String::as_str));
                let d = match (&d.help, self.import_hint(&integration.name)) {
                    (None, Some(h)) => d.with_help(h),
                    _ => d,
                };
                self.report(d);
                None
            }
        };
        let t = self.expr(wf, target, Some(&Type::String));
        self.no_secret(wf, t, "a notification");
        let msg = self.expr(wf, message, Some(&Type::String));
        self.no_secret(wf, msg, "a notification");
        let info = &wf.steps[index];
        let idempotent = match integ.and_then(|i| self.integrations[i].notify.map(|a| (i, a))) {
            Some((i, a)) => self.integrations[i]
                .actions
                .get(a)
                .is_some_and(|a| a.idempotent),
            None => false,
        };
        let _ = span;
        wf.lowered[index] = Some(ir::Step {
            name,
            doc: None,
            stmt: info.stmt,
            local: info.views.last().copied().unwrap_or(LocalId(0)),
            call: ir::StepCall::Notify {
                integration: integ
                    .map_or(ir::IntegrationId(u32::MAX), ir::IntegrationId::from_index),
                target: t,
                message: msg,
            },
            result: info.ty.clone(),
            idempotent,
            retry: if idempotent {
                wf.settings_retry.clone()
            } else {
                None
            },
            timeout: None,
            cache: None,
            idempotency_key: None,
            reads: Vec::new(),
            after: Vec::new(),
        });
    }

    fn lower_step(&mut self, wf: &mut Wf, index: usize, step: &ast::Step, s: &ast::Statement) {
        let target = wf.steps[index].target.clone();
        let ty = wf.steps[index].ty.clone();
        self.analysis.reference_with(
            step.name.span,
            step.name.span,
            SymbolKind::Step,
            &step.name.name,
            format!("step {}: {ty}", step.name.name),
            s.doc.clone(),
        );
        let call_span = step.call.span();
        let args = step.call.args();
        let before = wf.arena.nodes.len();
        let (call, action_idempotent) = match &target {
            Target::Action(i, a) => {
                let sig = &self.integrations[*i].actions[*a];
                let params = Arc::clone(&sig.params);
                let idempotent = sig.idempotent;
                let callee = format!("`{}.{}`", self.integrations[*i].name, sig.name);
                let args = self.call_args(
                    &params,
                    args,
                    &wf.bindings,
                    &mut wf.arena,
                    call_span,
                    &callee,
                );
                (
                    ir::StepCall::Action {
                        action: ir::ActionRef {
                            integration: ir::IntegrationId::from_index(*i),
                            action: *a as u32,
                        },
                        args,
                    },
                    idempotent,
                )
            }
            Target::Workflow(w) => {
                let params = Arc::clone(&self.workflows[*w].params);
                let callee = format!("workflow `{}`", self.workflows[*w].name);
                let args = self.call_args(
                    &params,
                    args,
                    &wf.bindings,
                    &mut wf.arena,
                    call_span,
                    &callee,
                );
                (
                    ir::StepCall::Workflow {
                        workflow: ir::WorkflowId::from_index(*w),
                        args,
                    },
                    false,
                )
            }
            _ => {
                for a in args {
                    check_in(
                        &a.value,
                        &wf.bindings,
                        &mut wf.arena,
                        None,
                        &mut self.diagnostics,
                        &mut self.analysis,
                    );
                }
                (
                    ir::StepCall::Workflow {
                        workflow: ir::WorkflowId(u32::MAX),
                        args: Vec::new(),
                    },
                    false,
                )
            }
        };
        self.record_reads(wf, before);

        let mut retry: Option<(ir::Retry, Span)> = None;
        let mut timeout = None;
        let mut cache = None;
        let mut key = None;
        for modifier in &step.modifiers {
            match &modifier.kind {
                ModifierKind::After(names) => {
                    for n in names {
                        self.after(wf, index, n);
                    }
                }
                ModifierKind::Retry(r) => retry = Some((self.step_retry(wf, r), modifier.span)),
                ModifierKind::Timeout(e) => timeout = Some(self.duration(wf, e, "`timeout`")),
                ModifierKind::Cache(e) => {
                    if matches!(target, Target::Action(..)) && !action_idempotent {
                        self.report(
                            Diagnostic::new(codes::CACHE_NOT_IDEMPOTENT, modifier.span, "`cache` needs an action declared `idempotent`")
                                .with_label("this action may change something each time it is called")
                                .with_note("reusing the result of a call with side effects would skip those effects"),
                        );
                    }
                    cache = Some(self.duration(wf, e, "`cache`"));
                }
                ModifierKind::IdempotencyKey(e) => {
                    let id = self.expr(wf, e, Some(&Type::String));
                    key = Some(id);
                }
            }
        }
        let idempotent = action_idempotent || key.is_some();
        if let (Some((_, span)), Target::Action(i, a)) = (&retry, &target) {
            if !action_idempotent && key.is_none() {
                let name = format!(
                    "{}.{}",
                    self.integrations[*i].name, self.integrations[*i].actions[*a].name
                );
                self.report(
                    Diagnostic::new(codes::RETRY_NOT_IDEMPOTENT, *span, format!("`retry` on `{name}`, which is not idempotent"))
                        .with_label("a retry may repeat the side effect")
                        .with_note("if a call fails after the service acted, the retry acts again")
                        .with_help("add `idempotency_key EXPR` (a key the service deduplicates on), or remove `retry`"),
                );
            }
        }
        let effective = match retry {
            Some((r, _)) => Some(r),
            None if idempotent && !matches!(target, Target::Workflow(_)) => {
                wf.settings_retry.clone()
            }
            None => None,
        };
        let info = &wf.steps[index];
        wf.lowered[index] = Some(ir::Step {
            name: step.name.name.clone(),
            doc: s.doc.clone(),
            stmt: info.stmt,
            local: info.views.last().copied().unwrap_or(LocalId(0)),
            call,
            result: ty,
            idempotent,
            retry: effective,
            timeout,
            cache,
            idempotency_key: key,
            reads: Vec::new(),
            after: Vec::new(),
        });
    }

    fn after(&mut self, wf: &mut Wf, index: usize, name: &ast::Ident) {
        let Some(&target) = wf.step_by_name.get(&name.name) else {
            let names: Vec<&str> = wf.step_by_name.keys().map(String::as_str).collect();
            self.report(
                Diagnostic::new(
                    codes::UNKNOWN_STEP,
                    name.span,
                    format!("no step `{}` in this workflow", name.name),
                )
                .with_label("unknown step")
                .with_suggestion(&name.name, names),
            );
            return;
        };
        let def = wf.steps[target].name_span;
        let hover = format!("step {}: {}", name.name, wf.steps[target].ty);
        self.analysis.reference_with(
            name.span,
            def,
            SymbolKind::Step,
            &name.name,
            hover,
            wf.steps[target].doc.clone(),
        );
        wf.steps[target].used = true;
        wf.steps[index].after.push(target);
        // The statement to wait for is the target's ancestor in the deepest block
        // shared with this step.
        let tb = &wf.steps[target].blocks;
        let k = tb.iter().zip(&wf.path).take_while(|(a, b)| a == b).count();
        let info = &wf.steps[target];
        let stmt = if k >= tb.len() || k == 0 {
            info.stmt
        } else {
            info.ancestors.get(k - 1).copied().unwrap_or(info.stmt)
        };
        if wf.ancestors.contains(&stmt) {
            return;
        }
        wf.edges.push(Edge {
            from: wf.current,
            to: stmt,
            span: name.span,
            kind: EdgeKind::After,
            name: format!("`{}`", name.name),
        });
    }

    fn step_retry(&mut self, wf: &mut Wf, r: &ast::Retry) -> ir::Retry {
        let retries = match self.fold(wf.m, &r.attempts) {
            Some(v) => ConstOr::Const(
                self.int_in_range(&v, r.attempts.span, "the number of retries", 0, MAX_RETRIES)
                    .unwrap_or(0) as u32,
            ),
            None => ConstOr::Expr(self.expr(wf, &r.attempts, Some(&Type::Int))),
        };
        let delay = match &r.delay {
            Some(d) => self.duration(wf, d, "`delay`"),
            None => ConstOr::Const(DEFAULT_RETRY_DELAY),
        };
        let backoff = match &r.backoff {
            Some(b) => match self.fold(wf.m, b) {
                Some(v) => ConstOr::Const(self.backoff_factor(&v, b.span).unwrap_or(1.0)),
                None => ConstOr::Expr(self.expr(wf, b, Some(&Type::Double))),
            },
            None => ConstOr::Const(1.0),
        };
        let max_delay = r
            .max_delay
            .as_ref()
            .map(|d| self.duration(wf, d, "`max_delay`"));
        ir::Retry {
            retries,
            delay,
            backoff,
            max_delay,
            jitter: r.jitter,
            from_settings: false,
        }
    }

    fn unused(&mut self, wf: &Wf) {
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

    /// Webhook paths must be unique across the program.
    pub(super) fn check_webhook_paths(&mut self) {
        let mut seen: HashMap<String, Span> = HashMap::new();
        let mut found = Vec::new();
        for w in &self.workflows {
            if let Some((path, span)) = &w.webhook {
                match seen.get(path) {
                    Some(first) => found.push((path.clone(), *span, *first)),
                    None => {
                        seen.insert(path.clone(), *span);
                    }
                }
            }
        }
        for (path, span, first) in found {
            self.report(
                Diagnostic::new(
                    codes::DUPLICATE_WEBHOOK_PATH,
                    span,
                    format!("webhook path `{path}` is already used"),
                )
                .with_label("used again here")
                .with_secondary(first, "first used here")
                .with_help("give each webhook trigger its own path"),
            );
        }
        // A workflow's webhook may not take the path of an integration event another
        // workflow of the program listens to.
        let mut clashes = Vec::new();
        for w in &self.workflows {
            let Some((
                ir::Trigger {
                    kind: ir::TriggerKind::Event { event, .. },
                    ..
                },
                Some(trigger),
            )) = w
                .ir
                .as_ref()
                .and_then(|i| Some((i.trigger.as_ref()?, i.spans.trigger.as_ref())))
            else {
                continue;
            };
            let Some(sig) = self
                .integrations
                .get(event.integration.index())
                .and_then(|i| i.events.get(event.event as usize))
            else {
                continue;
            };
            let module = self.integrations[event.integration.index()].module;
            let path = sig.ast.clauses.iter().find_map(|c| match &c.kind {
                ast::EventClauseKind::Webhook(p) => match self.fold(module, p) {
                    Some(ConstVal::String(s)) => Some(s),
                    _ => None,
                },
                _ => None,
            });
            if let Some(path) = path {
                if let Some(span) = seen.get(&path) {
                    let name = format!(
                        "{}.{}",
                        self.integrations[event.integration.index()].name,
                        sig.name
                    );
                    clashes.push((path, *span, *trigger, name));
                }
            }
        }
        for (path, span, trigger, name) in clashes {
            self.report(
                Diagnostic::new(
                    codes::DUPLICATE_WEBHOOK_PATH,
                    span,
                    format!("webhook path `{path}` is the path of the `{name}` event"),
                )
                .with_label("this webhook would receive that event's deliveries")
                .with_secondary(trigger, format!("`{name}` is a trigger here"))
                .with_help("give the webhook trigger another path"),
            );
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
        StatementKind::On(_) | StatementKind::Settings(_) => String::new(),
    }
}

/// Whether every path through the block ends in `return` or `fail`.
fn terminates(block: &ast::Block) -> bool {
    block.statements.iter().any(|s| match &s.kind {
        StatementKind::Return(_) | StatementKind::Fail(_) => true,
        StatementKind::If {
            branches,
            otherwise: Some(o),
        } => branches.iter().all(|b| terminates(&b.body)) && terminates(o),
        StatementKind::Try { body, handler, .. } => terminates(body) && terminates(handler),
        _ => false,
    })
}
