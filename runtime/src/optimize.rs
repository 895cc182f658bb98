//! `flow optimize`: deterministic recommendations for a workflow from its IR and the
//! statistics of its past runs: the critical path, `after` edges that carry no data but
//! lengthen it, steps that usually need retries, idempotent calls worth caching.

use std::collections::HashMap;

use flow_ir::program::{BlockId, ConstOr, StepCall, StmtId, StmtKind, Workflow};
use serde::Serialize;

use crate::report::Stats;

#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    /// `after-edge`, `retries`, `cache`.
    pub kind: &'static str,
    pub step: String,
    pub message: String,
    /// How much of the score this costs.
    pub penalty: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Optimization {
    pub workflow: String,
    /// 100 means nothing to improve.
    pub score: u32,
    pub runs_analysed: usize,
    /// Steps on the longest chain of dependencies, with the estimated time.
    pub critical_path: Vec<String>,
    pub critical_path_ms: f64,
    pub recommendations: Vec<Recommendation>,
}

struct Graph<'a> {
    wf: &'a Workflow,
    mean: HashMap<&'a str, f64>,
    /// Average loop iterations per run, by `for` statement.
    iterations: HashMap<StmtId, f64>,
}

impl Graph<'_> {
    /// Estimated duration of a statement.
    fn cost(&self, id: StmtId, skip: Option<(StmtId, StmtId)>) -> f64 {
        let Some(stmt) = self.wf.stmt(id) else {
            return 0.0;
        };
        match &stmt.kind {
            StmtKind::Step(s) => self
                .wf
                .step(*s)
                .and_then(|s| self.mean.get(s.name.as_str()))
                .copied()
                .unwrap_or(0.0),
            StmtKind::If {
                branches,
                otherwise,
                ..
            } => branches
                .iter()
                .map(|b| b.body)
                .chain(*otherwise)
                .map(|b| self.block_path(b, skip).0)
                .fold(0.0, f64::max),
            StmtKind::For { body, parallel, .. } => {
                let per = self.block_path(*body, skip).0;
                let n = self.iterations.get(&id).copied().unwrap_or(1.0);
                let width = match parallel {
                    Some(ConstOr::Const(p)) => f64::from((*p).max(1)),
                    Some(ConstOr::Expr(_)) => 1.0,
                    None => 1.0,
                };
                per * (n / width).ceil().max(1.0)
            }
            StmtKind::Try { body, .. } => self.block_path(*body, skip).0,
            _ => 0.0,
        }
    }

    /// The longest path through a block: its length and the statements on it. `skip`
    /// removes one dependency edge (to measure what it costs).
    fn block_path(&self, block: BlockId, skip: Option<(StmtId, StmtId)>) -> (f64, Vec<StmtId>) {
        let Some(b) = self.wf.block(block) else {
            return (0.0, Vec::new());
        };
        let mut finish: HashMap<StmtId, (f64, Vec<StmtId>)> = HashMap::new();
        // Statements are listed after what they depend on within a block.
        for &id in &b.stmts {
            let Some(stmt) = self.wf.stmt(id) else {
                continue;
            };
            let mut best = (0.0, Vec::new());
            for d in &stmt.deps {
                if skip == Some((id, *d)) {
                    continue;
                }
                if let Some(f) = finish.get(d)
                    && (f.0 > best.0 || (f.0 == best.0 && f.1.len() > best.1.len()))
                {
                    best = f.clone();
                }
            }
            let mut path = best.1;
            path.push(id);
            finish.insert(id, (best.0 + self.cost(id, skip), path));
        }
        finish
            .into_values()
            // On equal time the longer chain wins, so zero-cost steps still show.
            .fold((0.0, Vec::new()), |a, b| {
                if b.0 > a.0 || (b.0 == a.0 && b.1.len() > a.1.len()) {
                    b
                } else {
                    a
                }
            })
    }
}

/// Analyses `wf` with the statistics of its runs.
pub fn optimize(wf: &Workflow, stats: &Stats, program: &flow_ir::program::Program) -> Optimization {
    let mean: HashMap<&str, f64> = stats
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.mean_ms))
        .collect();
    let mut iterations = HashMap::new();
    for (i, stmt) in wf.stmts.iter().enumerate() {
        if let StmtKind::For { body, .. } = &stmt.kind {
            let inner: Vec<&str> = wf
                .block(*body)
                .map(|b| {
                    b.stmts
                        .iter()
                        .filter_map(|s| match wf.stmt(*s).map(|s| &s.kind) {
                            Some(StmtKind::Step(id)) => wf.step(*id).map(|s| s.name.as_str()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            let per_run = inner
                .iter()
                .filter_map(|n| stats.steps.iter().find(|s| s.step == *n))
                .map(|s| {
                    if stats.runs > 0 {
                        s.runs as f64 / stats.runs as f64
                    } else {
                        1.0
                    }
                })
                .fold(1.0, f64::max);
            iterations.insert(StmtId::from_index(i), per_run);
        }
    }
    let graph = Graph {
        wf,
        mean,
        iterations,
    };
    let (length, path) = graph.block_path(wf.body, None);
    let name_of = |id: StmtId| -> Option<String> {
        match wf.stmt(id).map(|s| &s.kind) {
            Some(StmtKind::Step(s)) => wf.step(*s).map(|s| s.name.clone()),
            Some(StmtKind::For { .. }) => Some("for".into()),
            Some(StmtKind::If { .. }) => Some("if".into()),
            Some(StmtKind::Try { .. }) => Some("try".into()),
            Some(StmtKind::Wait(_)) => Some("wait".into()),
            _ => None,
        }
    };
    let critical_path: Vec<String> = path.iter().filter_map(|id| name_of(*id)).collect();
    let mut recs = Vec::new();

    for step in &wf.steps {
        for after in &step.after {
            if step.reads.contains(after) {
                continue;
            }
            let Some(target) = wf.step(*after) else {
                continue;
            };
            let (with_edge, _) = (length, ());
            let (without, _) = graph.block_path(wf.body, Some((step.stmt, target.stmt)));
            let saved = with_edge - without;
            if saved > 0.0 {
                let share = if length > 0.0 { saved / length } else { 0.0 };
                recs.push(Recommendation {
                    kind: "after-edge",
                    step: step.name.clone(),
                    message: format!(
                        "`{}` waits for `{}` (after) without reading its result; dropping the edge would shorten the critical path by {:.0} ms ({:.0}%)",
                        step.name,
                        target.name,
                        saved,
                        share * 100.0
                    ),
                    penalty: (share * 60.0).round().clamp(5.0, 30.0) as u32,
                });
            } else if !graph.mean.is_empty() {
                recs.push(Recommendation {
                    kind: "after-edge",
                    step: step.name.clone(),
                    message: format!(
                        "`{}` waits for `{}` (after) without reading its result; it costs nothing today because `{}` is not on the critical path",
                        step.name, target.name, step.name
                    ),
                    penalty: 0,
                });
            }
        }
    }

    for s in &stats.steps {
        if s.runs == 0 {
            continue;
        }
        let share = s.runs_with_retries as f64 / s.runs as f64;
        if share >= 0.2 {
            recs.push(Recommendation {
                kind: "retries",
                step: s.step.clone(),
                message: format!(
                    "`{}` needed retries in {:.0}% of its runs ({} retries in all); check its timeout and the service's health, or raise its delay",
                    s.step,
                    share * 100.0,
                    s.retries
                ),
                penalty: (share * 30.0).round().clamp(5.0, 20.0) as u32,
            });
        }
    }

    for step in &wf.steps {
        let StepCall::Action { action, .. } = &step.call else {
            continue;
        };
        let Some(decl) = program.action(*action) else {
            continue;
        };
        if !decl.idempotent || step.cache.is_some() {
            continue;
        }
        let Some(st) = stats.steps.iter().find(|s| s.step == step.name) else {
            continue;
        };
        if st.mean_ms >= 50.0 && st.runs >= 2 {
            recs.push(Recommendation {
                kind: "cache",
                step: step.name.clone(),
                message: format!(
                    "`{}` calls an idempotent action ({:.0} ms on average over {} calls); `cache 5m` would reuse a recent result of the same call",
                    step.name, st.mean_ms, st.runs
                ),
                penalty: 5,
            });
        }
    }

    recs.sort_by(|a, b| b.penalty.cmp(&a.penalty).then_with(|| a.step.cmp(&b.step)));
    let penalty: u32 = recs.iter().map(|r| r.penalty).sum();
    Optimization {
        workflow: wf.name.clone(),
        score: 100u32.saturating_sub(penalty),
        runs_analysed: stats.runs,
        critical_path,
        critical_path_ms: length,
        recommendations: recs,
    }
}
