//! Dependency graphs: the cycle and redundant-`after` checks on a workflow's statement
//! edges (petgraph), and the `flow graph` renderings (Graphviz DOT and Mermaid) of a
//! lowered workflow.

use std::collections::HashMap;
use std::fmt::Write;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};

use flow_grammar::{Diagnostic, SourceMap, Span, codes};

use flow_ir::program::{self as ir, BlockId, Program, StmtId, StmtKind, Workflow};

/// Where a statement sits: its block and the compound statements around it
/// (outermost first).
#[derive(Clone, Debug)]
pub(crate) struct StmtShape {
    pub block: BlockId,
    pub ancestors: Vec<StmtId>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EdgeKind {
    /// The statement reads the target's value.
    Data,
    /// `after target`.
    After,
    /// A `wait`, `fail` or `return` orders the block around it.
    Barrier,
}

/// `from` must wait for `to`; `span` is what caused it.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    pub from: StmtId,
    pub to: StmtId,
    pub span: Span,
    pub kind: EdgeKind,
    /// What is read or waited for, as shown (`` `b` ``); empty: the target statement.
    pub name: String,
}

/// The statement of `block` that contains `stmt` (itself or a compound ancestor).
fn lift(shapes: &[StmtShape], stmt: StmtId, block: BlockId) -> Option<StmtId> {
    let shape = shapes.get(stmt.index())?;
    if shape.block == block {
        return Some(stmt);
    }
    shape
        .ancestors
        .iter()
        .copied()
        .find(|a| shapes.get(a.index()).is_some_and(|s| s.block == block))
}

/// Reports dependency cycles (errors) and `after`s already implied by data (warnings).
pub(crate) fn check_dependencies(
    shapes: &[StmtShape],
    edges: &[Edge],
    labels: &[String],
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut graph: DiGraph<StmtId, usize> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..shapes.len())
        .map(|i| graph.add_node(StmtId::from_index(i)))
        .collect();
    // Edges between siblings of one block, each remembering the edge it came from.
    let mut lifted: Vec<(StmtId, StmtId, usize)> = Vec::new();
    for (k, e) in edges.iter().enumerate() {
        let Some(to_shape) = shapes.get(e.to.index()) else {
            continue;
        };
        let Some(from) = lift(shapes, e.from, to_shape.block) else {
            continue;
        };
        lifted.push((from, e.to, k));
        if let (Some(&a), Some(&b)) = (nodes.get(from.index()), nodes.get(e.to.index())) {
            graph.add_edge(a, b, k);
        }
    }
    let label = |s: StmtId| labels.get(s.index()).cloned().unwrap_or_default();
    for scc in tarjan_scc(&graph) {
        let cyclic = scc.len() > 1
            || scc
                .first()
                .is_some_and(|&n| graph.find_edge(n, n).is_some());
        if !cyclic {
            continue;
        }
        // Walk one cycle inside the component, starting from its earliest statement.
        let members: std::collections::HashSet<NodeIndex> = scc.iter().copied().collect();
        let Some(&start) = scc.iter().min_by_key(|n| graph[**n]) else {
            continue;
        };
        let mut path: Vec<(NodeIndex, usize)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut current = start;
        loop {
            seen.insert(current);
            let mut next = None;
            let mut outgoing: Vec<_> = graph
                .edges(current)
                .filter(|e| members.contains(&petgraph::visit::EdgeRef::target(e)))
                .collect();
            outgoing.sort_by_key(|e| graph[petgraph::visit::EdgeRef::target(e)]);
            // Prefer closing the cycle, then an unseen statement.
            if let Some(e) = outgoing
                .iter()
                .find(|e| petgraph::visit::EdgeRef::target(*e) == start)
            {
                next = Some((start, *e.weight()));
            } else if let Some(e) = outgoing
                .iter()
                .find(|e| !seen.contains(&petgraph::visit::EdgeRef::target(*e)))
            {
                next = Some((petgraph::visit::EdgeRef::target(e), *e.weight()));
            }
            let Some((target, edge)) = next else { break };
            path.push((current, edge));
            if target == start || path.len() > members.len() {
                break;
            }
            current = target;
        }
        let Some(&(_, first_edge)) = path.first() else {
            continue;
        };
        let mut chain: Vec<String> = path.iter().map(|(n, _)| label(graph[*n])).collect();
        chain.push(label(graph[start]));
        let message = if path.len() == 1 {
            format!("{} depends on itself", label(graph[start]))
        } else {
            format!(
                "these statements depend on each other in a cycle: {}",
                chain.join(" → ")
            )
        };
        let shown = |e: &Edge| {
            if e.name.is_empty() {
                label(e.to)
            } else {
                e.name.clone()
            }
        };
        let primary = &edges[first_edge];
        let mut d = Diagnostic::new(codes::DEPENDENCY_CYCLE, primary.span, message).with_label(
            edge_text(&label(primary.from), &shown(primary), primary.kind),
        );
        for &(_, k) in path.iter().skip(1) {
            let e = &edges[k];
            d = d.with_secondary(e.span, edge_text(&label(e.from), &shown(e), e.kind));
        }
        out.push(d.with_help("a step runs after everything it reads; break the cycle by removing one of these references"));
    }

    // Redundant `after`s: the target is reached through data anyway.
    let mut data: HashMap<StmtId, Vec<StmtId>> = HashMap::new();
    for &(from, to, k) in &lifted {
        if edges[k].kind == EdgeKind::Data && from != to {
            data.entry(from).or_default().push(to);
        }
    }
    for &(from, to, k) in &lifted {
        if edges[k].kind != EdgeKind::After || from == to {
            continue;
        }
        if let Some(via) = reaches(&data, from, to) {
            let how = if via.len() <= 2 {
                format!("{} already reads {}", label(from), label(to))
            } else {
                format!(
                    "{} already depends on {} through {}",
                    label(from),
                    label(to),
                    via[1..via.len() - 1]
                        .iter()
                        .map(|s| label(*s))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            out.push(
                Diagnostic::new(
                    codes::REDUNDANT_AFTER,
                    edges[k].span,
                    format!(
                        "`after {}` is already implied by data",
                        label(to).trim_matches('`')
                    ),
                )
                .with_label(how)
                .with_help("remove it from `after`"),
            );
        }
    }
    out
}

fn edge_text(from: &str, to: &str, kind: EdgeKind) -> String {
    match kind {
        EdgeKind::Data => format!("{from} reads {to} here"),
        EdgeKind::After => format!("{from} runs after {to} here"),
        EdgeKind::Barrier => {
            format!("{from} waits for {to} (a `wait`, `fail` or `return` orders its block)")
        }
    }
}

/// A path of data edges from `from` to `to`, if any.
fn reaches(data: &HashMap<StmtId, Vec<StmtId>>, from: StmtId, to: StmtId) -> Option<Vec<StmtId>> {
    let mut prev: HashMap<StmtId, StmtId> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        for &m in data.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
            if prev.contains_key(&m) || m == from {
                continue;
            }
            prev.insert(m, n);
            if m == to {
                let mut path = vec![to];
                let mut cur = to;
                while let Some(&p) = prev.get(&cur) {
                    path.push(p);
                    if p == from {
                        break;
                    }
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(m);
        }
    }
    None
}

// ------------------------------------------------------------------ rendering

/// How to draw a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

/// Renders one workflow's dependency graph: steps (labelled with their action), waits,
/// data edges (solid) and `after` edges (dashed), `if`/`for`/`try` blocks as clusters.
/// With `sources`, cluster titles show the condition or loop as written.
pub fn render(
    program: &Program,
    workflow: &Workflow,
    format: GraphFormat,
    sources: Option<&SourceMap>,
) -> String {
    let mut r = Renderer {
        program,
        wf: workflow,
        sources,
        out: String::new(),
        format,
        cluster: 0,
    };
    r.render();
    r.out
}

struct Renderer<'a> {
    program: &'a Program,
    wf: &'a Workflow,
    sources: Option<&'a SourceMap>,
    out: String,
    format: GraphFormat,
    cluster: usize,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

impl Renderer<'_> {
    fn render(&mut self) {
        let name = self.wf.name.clone();
        match self.format {
            GraphFormat::Dot => {
                let _ = writeln!(self.out, "digraph \"{}\" {{", escape(&name));
                self.out.push_str("  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\"];\n");
            }
            GraphFormat::Mermaid => {
                let _ = writeln!(self.out, "flowchart TD");
            }
        }
        self.block(self.wf.body, 1);
        for (i, step) in self.wf.steps.iter().enumerate() {
            for r in &step.reads {
                self.edge(r.index(), i, false);
            }
            for a in &step.after {
                if !step.reads.contains(a) {
                    self.edge(a.index(), i, true);
                }
            }
        }
        if self.format == GraphFormat::Dot {
            self.out.push_str("}\n");
        }
    }

    fn edge(&mut self, from: usize, to: usize, after: bool) {
        match self.format {
            GraphFormat::Dot => {
                let style = if after {
                    " [style=dashed, label=\"after\"]"
                } else {
                    ""
                };
                let _ = writeln!(self.out, "  s{from} -> s{to}{style};");
            }
            GraphFormat::Mermaid => {
                let arrow = if after { "-. after .->" } else { "-->" };
                let _ = writeln!(self.out, "  s{from} {arrow} s{to}");
            }
        }
    }

    fn step_label(&self, i: usize) -> String {
        let Some(step) = self.wf.steps.get(i) else {
            return String::new();
        };
        let call = self.program.call_label(&step.call);
        if step.name.starts_with("notify#") {
            call
        } else {
            format!("{}\n{call}", step.name)
        }
    }

    fn source_of(&self, id: crate::expr::ExprId) -> Option<String> {
        let span = self.wf.exprs.span(id);
        let file = self.sources?.get(span.file)?;
        let text = file
            .slice(span)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let text: String = if text.chars().count() > 40 {
            text.chars().take(39).chain(['…']).collect()
        } else {
            text
        };
        Some(text)
    }

    fn block(&mut self, block: BlockId, depth: usize) {
        let Some(b) = self.wf.block(block) else {
            return;
        };
        let indent = "  ".repeat(depth);
        for &sid in &b.stmts {
            let Some(stmt) = self.wf.stmt(sid) else {
                continue;
            };
            match &stmt.kind {
                StmtKind::Step(s) => {
                    let label = self.step_label(s.index());
                    // A step that waits for a signal is drawn like the other waits.
                    let waits = matches!(
                        self.wf.step(*s).map(|s| &s.call),
                        Some(ir::StepCall::Signal { .. } | ir::StepCall::Event { .. })
                    );
                    match self.format {
                        GraphFormat::Dot => {
                            let _ = writeln!(
                                self.out,
                                "{indent}s{} [label=\"{}\"{}];",
                                s.index(),
                                escape(&label).replace('\n', "\\n"),
                                if waits { ", shape=hexagon" } else { "" }
                            );
                        }
                        GraphFormat::Mermaid => {
                            let text = mermaid_text(&label).replace('\n', "<br/>");
                            let _ = if waits {
                                writeln!(self.out, "{indent}s{}{{{{\"{text}\"}}}}", s.index())
                            } else {
                                writeln!(self.out, "{indent}s{}[\"{text}\"]", s.index())
                            };
                        }
                    }
                }
                StmtKind::Wait(w) => {
                    let label = match w {
                        ir::Wait::For(ir::ConstOr::Const(ns)) => {
                            format!("wait {}", show_duration(*ns))
                        }
                        ir::Wait::For(ir::ConstOr::Expr(e)) => {
                            format!("wait {}", self.source_of(*e).unwrap_or_default())
                        }
                        ir::Wait::Until(e) => {
                            format!("wait until {}", self.source_of(*e).unwrap_or_default())
                        }
                    };
                    match self.format {
                        GraphFormat::Dot => {
                            let _ = writeln!(
                                self.out,
                                "{indent}w{} [label=\"{}\", shape=hexagon];",
                                sid.index(),
                                escape(&label)
                            );
                        }
                        GraphFormat::Mermaid => {
                            let _ = writeln!(
                                self.out,
                                "{indent}w{}{{{{\"{}\"}}}}",
                                sid.index(),
                                mermaid_text(&label)
                            );
                        }
                    }
                }
                StmtKind::If {
                    branches,
                    otherwise,
                    ..
                } => {
                    for (k, br) in branches.iter().enumerate() {
                        let cond = self.source_of(br.condition).unwrap_or_default();
                        let title = if k == 0 {
                            format!("if {cond}")
                        } else {
                            format!("else if {cond}")
                        };
                        self.cluster(&title, br.body, depth);
                    }
                    if let Some(o) = otherwise {
                        self.cluster("else", *o, depth);
                    }
                }
                StmtKind::For {
                    var,
                    iterable,
                    parallel,
                    body,
                    ..
                } => {
                    let var = self
                        .wf
                        .exprs
                        .local(*var)
                        .map(|l| l.name.clone())
                        .unwrap_or_default();
                    let over = self.source_of(*iterable).unwrap_or_default();
                    let par = match parallel {
                        Some(ir::ConstOr::Const(n)) => format!(" parallel {n}"),
                        Some(ir::ConstOr::Expr(_)) => " parallel".into(),
                        None => String::new(),
                    };
                    self.cluster(&format!("for {var} in {over}{par}"), *body, depth);
                }
                StmtKind::Try {
                    body,
                    handler,
                    error,
                    ..
                } => {
                    self.cluster("try", *body, depth);
                    let err = error
                        .and_then(|e| self.wf.exprs.local(e))
                        .map(|l| format!(" {}", l.name))
                        .unwrap_or_default();
                    self.cluster(&format!("catch{err}"), *handler, depth);
                }
                _ => {}
            }
        }
    }

    fn cluster(&mut self, title: &str, block: BlockId, depth: usize) {
        self.cluster += 1;
        let id = self.cluster;
        let indent = "  ".repeat(depth);
        match self.format {
            GraphFormat::Dot => {
                let _ = writeln!(self.out, "{indent}subgraph cluster_{id} {{");
                let _ = writeln!(
                    self.out,
                    "{indent}  label=\"{}\"; style=dashed;",
                    escape(title)
                );
                // An empty cluster is not drawn; keep the block visible.
                let _ = writeln!(
                    self.out,
                    "{indent}  c{id} [label=\"\", shape=point, style=invis];"
                );
            }
            GraphFormat::Mermaid => {
                let _ = writeln!(
                    self.out,
                    "{indent}subgraph c{id}[\"{}\"]",
                    mermaid_text(title)
                );
            }
        }
        self.block(block, depth + 1);
        match self.format {
            GraphFormat::Dot => {
                let _ = writeln!(self.out, "{indent}}}");
            }
            GraphFormat::Mermaid => {
                let _ = writeln!(self.out, "{indent}end");
            }
        }
    }
}

/// `90000000000` → `1m30s`.
pub fn show_duration(ns: i64) -> String {
    if ns % 1_000_000_000 != 0 {
        return format!("{}ms", ns / 1_000_000);
    }
    let mut s = ns / 1_000_000_000;
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= size {
            let _ = write!(out, "{}{unit}", s / size);
            s %= size;
        }
    }
    if s > 0 || out.is_empty() {
        let _ = write!(out, "{s}s");
    }
    out
}
