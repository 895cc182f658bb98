//! The last phase: pick what the program holds (the root file's workflows, the
//! workflows they run, every integration any of them uses, the root file's tests),
//! renumber the ids, and build each user file's outline.

use std::collections::{BTreeSet, HashMap};

use flow_grammar::ast::{IntegrationMember, Item, StatementKind};

use super::Checker;
use crate::analysis::{DocumentSymbol, SymbolKind};
use flow_ir::program::{
    self as ir, IntegrationId, Program, StepCall, TestStmt, TriggerKind, WorkflowId,
};

impl Checker<'_> {
    pub(super) fn assemble(&mut self) -> Program {
        let root = self.root;
        // Workflows: the root's, then whatever they (and the root's tests) run.
        let mut wanted: Vec<usize> = (0..self.workflows.len())
            .filter(|&w| self.workflows[w].module == root)
            .collect();
        let tests: Vec<usize> = (0..self.tests.len())
            .filter(|&t| self.tests[t].module == root)
            .collect();
        for &t in &tests {
            if let Some(test) = &self.tests[t].ir {
                for s in &test.stmts {
                    if let TestStmt::Run { workflow, .. } = s
                        && workflow.index() < self.workflows.len()
                        && !wanted.contains(&workflow.index())
                    {
                        wanted.push(workflow.index());
                    }
                }
            }
        }
        let mut k = 0;
        while k < wanted.len() {
            if let Some(w) = &self.workflows[wanted[k]].ir {
                for step in &w.steps {
                    if let StepCall::Workflow { workflow, .. } = step.call
                        && workflow.index() < self.workflows.len()
                        && !wanted.contains(&workflow.index())
                    {
                        wanted.push(workflow.index());
                    }
                }
            }
            k += 1;
        }
        // Integrations: declared in the root, or used by a kept workflow or test.
        let mut integs: BTreeSet<usize> = (0..self.integrations.len())
            .filter(|&i| self.integrations[i].module == root)
            .collect();
        let mut note = |id: IntegrationId| {
            if id.index() < self.integrations.len() {
                integs.insert(id.index());
            }
        };
        for &w in &wanted {
            if let Some(w) = &self.workflows[w].ir {
                for step in &w.steps {
                    match &step.call {
                        StepCall::Action { action, .. } => note(action.integration),
                        StepCall::Notify { integration, .. } => note(*integration),
                        StepCall::Event { event, .. } => note(event.integration),
                        StepCall::Workflow { .. } | StepCall::Signal { .. } => {}
                    }
                }
                if let Some(ir::Trigger {
                    kind: TriggerKind::Event { event, .. },
                    ..
                }) = &w.trigger
                {
                    note(event.integration);
                }
            }
        }
        for &t in &tests {
            if let Some(test) = &self.tests[t].ir {
                for s in &test.stmts {
                    if let TestStmt::Mock { action, .. } = s {
                        note(action.integration);
                    }
                }
                for c in &test.calls {
                    note(c.action.integration);
                }
            }
        }
        let integ_map: HashMap<usize, IntegrationId> = integs
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, IntegrationId::from_index(new)))
            .collect();
        let wf_map: HashMap<usize, WorkflowId> = wanted
            .iter()
            .enumerate()
            .map(|(new, &old)| (old, WorkflowId::from_index(new)))
            .collect();
        let map_integ = |id: IntegrationId| {
            integ_map
                .get(&id.index())
                .copied()
                .unwrap_or(IntegrationId(u32::MAX))
        };
        let map_wf = |id: WorkflowId| {
            wf_map
                .get(&id.index())
                .copied()
                .unwrap_or(WorkflowId(u32::MAX))
        };

        let mut program = Program::default();
        program.files = self
            .sources
            .files()
            .map(|f| ir::SourceInfo {
                name: f.name.clone(),
                line_starts: std::iter::once(0)
                    .chain(
                        f.text
                            .bytes()
                            .enumerate()
                            .filter(|&(_, b)| b == b'\n')
                            .map(|(i, _)| u32::try_from(i + 1).unwrap_or(u32::MAX)),
                    )
                    .collect(),
            })
            .collect();
        for &w in &wanted {
            let Some(mut lowered) = self.workflows[w].ir.take() else {
                continue;
            };
            if self.workflows[w].module != root {
                let alias = self.modules[root]
                    .imports
                    .iter()
                    .find(|i| i.target == Some(self.workflows[w].module))
                    .and_then(|i| i.alias.clone());
                if let Some(alias) = alias {
                    lowered.name = format!("{alias}.{}", lowered.name);
                }
            }
            for step in &mut lowered.steps {
                match &mut step.call {
                    StepCall::Action { action, .. } => {
                        action.integration = map_integ(action.integration)
                    }
                    StepCall::Notify { integration, .. } => *integration = map_integ(*integration),
                    StepCall::Workflow { workflow, .. } => *workflow = map_wf(*workflow),
                    StepCall::Event { event, .. } => {
                        event.integration = map_integ(event.integration)
                    }
                    StepCall::Signal { .. } => {}
                }
            }
            if let Some(ir::Trigger {
                kind: TriggerKind::Event { event, .. },
                ..
            }) = &mut lowered.trigger
            {
                event.integration = map_integ(event.integration);
            }
            program.workflows.push(lowered);
        }
        for &i in &integs {
            if let Some(lowered) = self.integrations[i].ir.take() {
                program.integrations.push(lowered);
            }
        }
        for &t in &tests {
            let Some(mut lowered) = self.tests[t].ir.take() else {
                continue;
            };
            for s in &mut lowered.stmts {
                match s {
                    TestStmt::Mock { action, .. } => {
                        action.integration = map_integ(action.integration)
                    }
                    TestStmt::Run { workflow, .. } => *workflow = map_wf(*workflow),
                    _ => {}
                }
            }
            for c in &mut lowered.calls {
                c.action.integration = map_integ(c.action.integration);
            }
            program.tests.push(lowered);
        }
        program
    }

    /// The outline of every user file.
    pub(super) fn document_symbols(&mut self) {
        let mut symbols = Vec::new();
        for module in &self.modules {
            if module.stdlib.is_some() {
                continue;
            }
            for item in &module.ast.items {
                let sym = match item {
                    Item::Import(_) => continue,
                    Item::Type(t) => leaf(
                        &t.name.name,
                        SymbolKind::Type,
                        t.span,
                        t.name.span,
                        String::new(),
                    ),
                    Item::Const(c) => leaf(
                        &c.name.name,
                        SymbolKind::Const,
                        c.span,
                        c.name.span,
                        String::new(),
                    ),
                    Item::Integration(i) => {
                        let mut s = leaf(
                            &i.name.name,
                            SymbolKind::Integration,
                            i.span,
                            i.name.span,
                            String::new(),
                        );
                        for m in &i.members {
                            match m {
                                IntegrationMember::Action(a) => s.children.push(leaf(
                                    &a.name.name,
                                    SymbolKind::Action,
                                    a.span,
                                    a.name.span,
                                    String::new(),
                                )),
                                IntegrationMember::Event(e) => s.children.push(leaf(
                                    &e.name.name,
                                    SymbolKind::Event,
                                    e.span,
                                    e.name.span,
                                    String::new(),
                                )),
                                IntegrationMember::Type(t) => s.children.push(leaf(
                                    &t.name.name,
                                    SymbolKind::Type,
                                    t.span,
                                    t.name.span,
                                    String::new(),
                                )),
                                IntegrationMember::Setting(_) | IntegrationMember::Error(_) => {}
                            }
                        }
                        s
                    }
                    Item::Workflow(w) => {
                        let mut s = leaf(
                            &w.name.name,
                            SymbolKind::Workflow,
                            w.span,
                            w.name.span,
                            String::new(),
                        );
                        let mut stack = vec![&w.body];
                        while let Some(block) = stack.pop() {
                            for st in &block.statements {
                                match &st.kind {
                                    StatementKind::Step(step) => s.children.push(leaf(
                                        &step.name.name,
                                        SymbolKind::Step,
                                        st.span,
                                        step.name.span,
                                        step.call.target().dotted(),
                                    )),
                                    StatementKind::If {
                                        branches,
                                        otherwise,
                                    } => {
                                        stack.extend(branches.iter().map(|b| &b.body));
                                        stack.extend(otherwise.iter());
                                    }
                                    StatementKind::For { body, .. } => stack.push(body),
                                    StatementKind::Try { body, handler, .. } => {
                                        stack.push(body);
                                        stack.push(handler);
                                    }
                                    _ => {}
                                }
                            }
                        }
                        s.children.sort_by_key(|c| c.span.start);
                        s
                    }
                    Item::Test(t) => leaf(
                        &t.name,
                        SymbolKind::Test,
                        t.span,
                        t.name_span,
                        String::new(),
                    ),
                };
                symbols.push(sym);
            }
        }
        self.analysis.symbols = symbols;
    }
}

fn leaf(
    name: &str,
    kind: SymbolKind,
    span: flow_grammar::Span,
    name_span: flow_grammar::Span,
    detail: String,
) -> DocumentSymbol {
    DocumentSymbol {
        name: name.to_owned(),
        kind,
        span,
        name_span,
        detail,
        children: Vec::new(),
    }
}
