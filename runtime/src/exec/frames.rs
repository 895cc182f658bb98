//! Frames: the instances of blocks (the body, a branch, one loop iteration, a `try` body
//! or handler), each with its own locals; how a finished frame hands its exports to the
//! statement that opened it, and how a failure finds the nearest `try`.

use std::collections::HashMap;

use flow_expr::Value;
use flow_ir::expr::LocalId;
use flow_ir::program::{BlockId, Export, StmtId, StmtKind};
use serde_json::Value as Json;
use tokio::task::AbortHandle;

use super::Exec;
use crate::error::StepError;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum St {
    Pending,
    Running,
    Done,
}

#[derive(Clone, Copy)]
pub(super) enum FrameKind {
    Root,
    Branch { stmt: usize },
    Iter { stmt: usize, index: usize },
    TryBody { stmt: usize },
    Handler { stmt: usize },
}

pub(super) struct LoopState {
    pub(super) items: Vec<Value>,
    pub(super) next: usize,
    pub(super) running: usize,
    pub(super) limit: usize,
    pub(super) done: usize,
    pub(super) results: Vec<Vec<Value>>,
}

pub(super) struct Frame {
    pub(super) parent: Option<usize>,
    pub(super) block: BlockId,
    pub(super) kind: FrameKind,
    pub(super) indices: Vec<u32>,
    pub(super) locals: Vec<Value>,
    pub(super) states: Vec<St>,
    pub(super) remaining: usize,
    pub(super) children: Vec<usize>,
    pub(super) tasks: Vec<AbortHandle>,
    pub(super) loops: HashMap<usize, LoopState>,
}

impl Exec {
    pub(super) fn new_frame(
        &mut self,
        parent: Option<usize>,
        block: BlockId,
        kind: FrameKind,
        indices: Vec<u32>,
        locals: Vec<Value>,
    ) -> usize {
        let n = self
            .wf()
            .blocks
            .get(block.index())
            .map(|b| b.stmts.len())
            .unwrap_or(0);
        let id = self.frames.len();
        self.frames.push(Some(Frame {
            parent,
            block,
            kind,
            indices,
            locals,
            states: vec![St::Pending; n],
            remaining: n,
            children: Vec::new(),
            tasks: Vec::new(),
            loops: HashMap::new(),
        }));
        if let Some(p) = parent
            && let Some(Some(pf)) = self.frames.get_mut(p)
        {
            pf.children.push(id);
        }
        id
    }

    pub(super) fn child_frame(
        &mut self,
        parent: usize,
        block: BlockId,
        kind: FrameKind,
        extra_index: Option<u32>,
    ) -> usize {
        let (locals, mut indices) = match self.frames.get(parent) {
            Some(Some(f)) => (f.locals.clone(), f.indices.clone()),
            _ => (Vec::new(), Vec::new()),
        };
        if let Some(i) = extra_index {
            indices.push(i);
        }
        let id = self.new_frame(Some(parent), block, kind, indices, locals);
        if let Some(Some(f)) = self.frames.get(id)
            && f.remaining == 0
        {
            // An empty block completes at once; handled by the next pump.
        }
        id
    }

    /// Writes a local in a frame and every frame nested in it.
    pub(super) fn set_local(&mut self, frame: usize, local: LocalId, value: Value) {
        let mut stack = vec![frame];
        while let Some(f) = stack.pop() {
            if let Some(Some(fr)) = self.frames.get_mut(f) {
                if let Some(slot) = fr.locals.get_mut(local.0 as usize) {
                    *slot = value.clone();
                }
                stack.extend(fr.children.iter().copied());
            }
        }
    }

    pub(super) fn local_of(&self, frame: usize, local: LocalId) -> Value {
        match self.frames.get(frame) {
            Some(Some(f)) => f
                .locals
                .get(local.0 as usize)
                .cloned()
                .unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    pub(super) fn deps_done(&self, frame: usize, deps: &[StmtId]) -> bool {
        let wf = self.wf();
        deps.iter().all(|d| {
            let Some(stmt) = wf.stmt(*d) else { return true };
            let mut f = Some(frame);
            while let Some(fi) = f {
                let Some(Some(fr)) = self.frames.get(fi) else {
                    return true;
                };
                if fr.block == stmt.block {
                    return fr
                        .states
                        .get(self.pos[d.index()])
                        .is_none_or(|s| *s == St::Done);
                }
                f = fr.parent;
            }
            true
        })
    }

    pub(super) fn stmt_at(&self, frame: usize, pos: usize) -> Option<StmtId> {
        let f = self.frames.get(frame)?.as_ref()?;
        self.wf().block(f.block)?.stmts.get(pos).copied()
    }

    pub(super) fn complete(&mut self, frame: usize, pos: usize) {
        if let Some(Some(f)) = self.frames.get_mut(frame)
            && let Some(s) = f.states.get_mut(pos)
            && *s != St::Done
        {
            *s = St::Done;
            f.remaining = f.remaining.saturating_sub(1);
        }
    }

    pub(super) fn launch_iterations(&mut self, fi: usize, p: usize, var: LocalId, body: BlockId) {
        loop {
            let next = match self.frames.get_mut(fi) {
                Some(Some(f)) => match f.loops.get_mut(&p) {
                    Some(l) if l.running < l.limit && l.next < l.items.len() => {
                        let i = l.next;
                        l.next += 1;
                        l.running += 1;
                        Some((i, l.items[i].clone()))
                    }
                    _ => None,
                },
                _ => None,
            };
            let Some((i, item)) = next else { return };
            let child = self.child_frame(
                fi,
                body,
                FrameKind::Iter { stmt: p, index: i },
                Some(u32::try_from(i).unwrap_or(u32::MAX)),
            );
            self.set_local(child, var, item);
        }
    }

    pub(super) fn exports_of(
        &self,
        sid: StmtId,
    ) -> (Vec<Export>, Option<(LocalId, BlockId, BlockId)>) {
        match self.wf().stmt(sid).map(|s| &s.kind) {
            Some(StmtKind::If { exports, .. }) => (exports.clone(), None),
            Some(StmtKind::For {
                exports, var, body, ..
            }) => (exports.clone(), Some((*var, *body, *body))),
            Some(StmtKind::Try { exports, .. }) => (exports.clone(), None),
            _ => (Vec::new(), None),
        }
    }

    /// A frame has finished every statement: hand its results to the statement that
    /// opened it.
    pub(super) fn frame_complete(&mut self, fi: usize) {
        let Some(Some(frame)) = self.frames.get(fi) else {
            return;
        };
        let kind = frame.kind;
        let parent = frame.parent;
        let block = frame.block;
        match (kind, parent) {
            (FrameKind::Root, _) => {
                if let Some(slot) = self.frames.get_mut(fi) {
                    *slot = None;
                }
                if self.outcome.is_none() {
                    self.outcome = Some(Ok(Json::Null));
                }
            }
            (FrameKind::Branch { stmt } | FrameKind::TryBody { stmt }, Some(pf)) => {
                let Some(sid) = self.stmt_at(pf, stmt) else {
                    return;
                };
                let (exports, _) = self.exports_of(sid);
                for e in &exports {
                    let v = self.local_of(fi, e.inner);
                    self.set_local(pf, e.outer, v);
                }
                self.remove_frame(fi);
                self.complete(pf, stmt);
            }
            (FrameKind::Handler { stmt }, Some(pf)) => {
                self.remove_frame(fi);
                self.complete(pf, stmt);
            }
            (FrameKind::Iter { stmt, index }, Some(pf)) => {
                let Some(sid) = self.stmt_at(pf, stmt) else {
                    return;
                };
                let (exports, looped) = self.exports_of(sid);
                let values: Vec<Value> =
                    exports.iter().map(|e| self.local_of(fi, e.inner)).collect();
                self.remove_frame(fi);
                let finished = match self.frames.get_mut(pf) {
                    Some(Some(f)) => match f.loops.get_mut(&stmt) {
                        Some(l) => {
                            if let Some(slot) = l.results.get_mut(index) {
                                *slot = values;
                            }
                            l.running = l.running.saturating_sub(1);
                            l.done += 1;
                            l.done == l.items.len()
                        }
                        None => false,
                    },
                    _ => false,
                };
                if finished {
                    let results = match self.frames.get_mut(pf) {
                        Some(Some(f)) => {
                            f.loops.remove(&stmt).map(|l| l.results).unwrap_or_default()
                        }
                        _ => Vec::new(),
                    };
                    for (k, e) in exports.iter().enumerate() {
                        let list: Vec<Value> = results
                            .iter()
                            .map(|r| r.get(k).cloned().unwrap_or(Value::Null))
                            .collect();
                        self.set_local(pf, e.outer, Value::list(list));
                    }
                    self.complete(pf, stmt);
                } else if let Some((var, body, _)) = looped {
                    self.launch_iterations(pf, stmt, var, body);
                }
            }
            (_, None) => {
                let _ = block;
                if let Some(slot) = self.frames.get_mut(fi) {
                    *slot = None;
                }
            }
        }
    }

    pub(super) fn remove_frame(&mut self, fi: usize) {
        let parent = match self.frames.get(fi) {
            Some(Some(f)) => f.parent,
            _ => None,
        };
        self.kill(fi);
        if let Some(p) = parent
            && let Some(Some(pf)) = self.frames.get_mut(p)
        {
            pf.children.retain(|c| *c != fi);
        }
    }

    /// Drops a frame and everything nested in it, cancelling their tasks.
    pub(super) fn kill(&mut self, fi: usize) {
        let mut stack = vec![fi];
        while let Some(f) = stack.pop() {
            if let Some(slot) = self.frames.get_mut(f)
                && let Some(frame) = slot.take()
            {
                for t in &frame.tasks {
                    t.abort();
                }
                stack.extend(frame.children);
            }
        }
    }

    /// A statement in frame `fi` failed: the nearest enclosing `try` body handles it,
    /// otherwise the run fails.
    pub(super) fn fail_at(&mut self, fi: usize, error: StepError) {
        let mut f = Some(fi);
        while let Some(cur) = f {
            let Some(Some(frame)) = self.frames.get(cur) else {
                break;
            };
            let (kind, parent) = (frame.kind, frame.parent);
            if let (FrameKind::TryBody { stmt }, Some(pf)) = (kind, parent) {
                let Some(sid) = self.stmt_at(pf, stmt) else {
                    break;
                };
                let Some(StmtKind::Try {
                    error: err_local,
                    handler,
                    exports,
                    ..
                }) = self.wf().stmt(sid).map(|s| s.kind.clone())
                else {
                    break;
                };
                for e in &exports {
                    let v = self.local_of(cur, e.inner);
                    self.set_local(pf, e.outer, v);
                }
                self.remove_frame(cur);
                if let Some(local) = err_local {
                    let record = Value::from_json(
                        &error.to_record(),
                        &flow_ir::program::error_record_type(),
                    )
                    .unwrap_or_else(|_| Value::from_json_dyn(&error.to_record()));
                    self.set_local(pf, local, record);
                }
                self.child_frame(pf, handler, FrameKind::Handler { stmt }, None);
                return;
            }
            f = parent;
        }
        if self.outcome.is_none() {
            self.outcome = Some(Err(error));
        }
    }
}
