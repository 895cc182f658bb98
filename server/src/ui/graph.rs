//! A workflow's dependency graph as inline SVG, drawn from the compiled IR: steps in
//! layers (a step sits one layer below the deepest step it reads or runs after), data
//! edges solid, `after` edges dashed, each node coloured by its status in a run when one
//! is given. No Graphviz and no script: the layout is computed here.

use std::collections::HashMap;
use std::fmt::Write as _;

use flow_ir::program::{Program, Workflow};

use super::html::{clip, esc};

const NODE_W: usize = 190;
const NODE_H: usize = 44;
const GAP_X: usize = 22;
const GAP_Y: usize = 38;
const PAD: usize = 8;

/// The SVG of `wf`'s graph; `status` gives a step's status by name (absent: not started).
pub fn svg(program: &Program, wf: &Workflow, status: &HashMap<String, &'static str>) -> String {
    let n = wf.steps.len();
    if n == 0 {
        return "<p class=\"muted\">This workflow has no steps.</p>".to_owned();
    }
    let deps: Vec<Vec<(usize, bool)>> = wf
        .steps
        .iter()
        .map(|s| {
            let mut d: Vec<(usize, bool)> = s.reads.iter().map(|r| (r.index(), false)).collect();
            d.extend(
                s.after
                    .iter()
                    .filter(|a| !s.reads.contains(a))
                    .map(|a| (a.index(), true)),
            );
            d.retain(|(i, _)| *i < n);
            d
        })
        .collect();
    let layer = layers(&deps);
    let layers = layer.iter().max().map_or(1, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (i, l) in layer.iter().enumerate() {
        rows[*l].push(i);
    }
    let widest = rows.iter().map(Vec::len).max().unwrap_or(1);
    let width = PAD * 2 + widest * NODE_W + (widest - 1) * GAP_X;
    let height = PAD * 2 + layers * NODE_H + (layers - 1) * GAP_Y;
    let mut pos = vec![(0usize, 0usize); n];
    for (l, row) in rows.iter().enumerate() {
        let row_w = row.len() * NODE_W + row.len().saturating_sub(1) * GAP_X;
        let x0 = (width - row_w) / 2;
        for (k, &i) in row.iter().enumerate() {
            pos[i] = (x0 + k * (NODE_W + GAP_X), PAD + l * (NODE_H + GAP_Y));
        }
    }
    let mut out = format!(
        "<svg role=\"img\" aria-label=\"dependency graph of {}\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <defs><marker id=\"arrow\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path class=\"arrow\" d=\"M0,0 L8,4 L0,8 z\"/></marker></defs>",
        esc(&wf.name)
    );
    for (i, d) in deps.iter().enumerate() {
        for &(j, after) in d {
            let (x1, y1) = (pos[j].0 + NODE_W / 2, pos[j].1 + NODE_H);
            let (x2, y2) = (pos[i].0 + NODE_W / 2, pos[i].1);
            let mid = (y1 + y2) / 2;
            let _ = write!(
                out,
                "<path class=\"edge{}\" d=\"M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2}\" marker-end=\"url(#arrow)\"/>",
                if after { " after" } else { "" }
            );
        }
    }
    for (i, step) in wf.steps.iter().enumerate() {
        let (x, y) = pos[i];
        let state = status.get(&step.name).copied().unwrap_or("not-started");
        let call = program.call_label(&step.call);
        let name = if step.name.starts_with("notify#") {
            "notify"
        } else {
            step.name.as_str()
        };
        let _ = write!(
            out,
            "<g class=\"node {state}\" data-step=\"{}\"><title>{}: {} ({state})</title>\
             <rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\"/>\
             <text x=\"{}\" y=\"{}\" font-weight=\"600\">{}</text>\
             <text class=\"call\" x=\"{}\" y=\"{}\">{}</text></g>",
            esc(&step.name),
            esc(name),
            esc(&call),
            x + 8,
            y + 18,
            esc(&clip(name, 26)),
            x + 8,
            y + 35,
            esc(&clip(&call, 28)),
        );
    }
    out.push_str("</svg>");
    out
}

/// Each step's layer: one below the deepest step it depends on (`deps[i]` lists the
/// steps `i` reads or runs after), roots in layer 0. The checker rejected cycles, so `n`
/// rounds settle any order of declaration; a cycle would only stop growing after them.
fn layers(deps: &[Vec<(usize, bool)>]) -> Vec<usize> {
    let n = deps.len();
    let mut layer = vec![0usize; n];
    for _ in 0..n {
        let mut changed = false;
        for (i, d) in deps.iter().enumerate() {
            let want = d.iter().map(|(j, _)| layer[*j] + 1).max().unwrap_or(0);
            if want > layer[i] {
                layer[i] = want;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A random acyclic graph over `n` steps declared in any order: edges go from a
    /// step to one earlier in a random permutation.
    fn dags() -> impl Strategy<Value = Vec<Vec<(usize, bool)>>> {
        (1usize..24).prop_flat_map(|n| {
            (
                Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
                proptest::collection::vec((0usize..n, 0usize..n, any::<bool>()), 0..(n * 3)),
            )
                .prop_map(move |(order, edges)| {
                    let rank: Vec<usize> = {
                        let mut r = vec![0; n];
                        for (pos, &step) in order.iter().enumerate() {
                            r[step] = pos;
                        }
                        r
                    };
                    let mut deps = vec![Vec::new(); n];
                    for (a, b, after) in edges {
                        if rank[a] > rank[b] {
                            deps[a].push((b, after));
                        }
                    }
                    deps
                })
        })
    }

    proptest! {
        /// Every edge points down, and every step sits exactly one below its deepest
        /// dependency (roots at the top): the drawing never hides an edge behind a node
        /// of the same row, and is no taller than it must be.
        #[test]
        fn layers_are_the_longest_paths(deps in dags()) {
            let layer = layers(&deps);
            for (i, d) in deps.iter().enumerate() {
                for (j, _) in d {
                    prop_assert!(layer[*j] < layer[i]);
                }
                let want = d.iter().map(|(j, _)| layer[*j] + 1).max().unwrap_or(0);
                prop_assert_eq!(layer[i], want);
            }
        }
    }
}
