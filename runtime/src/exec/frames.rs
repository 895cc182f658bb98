//! Frames: a block instance (the body, a branch, one loop iteration, a `try` body or
//! handler) with its copy of the locals; starting statements whose dependencies are
//! done, finishing frames, exporting their values and failing them.

use super::*;

impl Exec {
    /// Starts every statement whose dependencies are done, until nothing more can start.
    pub(super) fn pump(&mut self, wf: &Workflow) {
        loop {
            let mut progressed = false;
            for fi in 0..self.frames.len() {
                if self.outcome.is_some() {
                    return;
                }
                let Some(Some(frame)) = self.frames.get(fi) else {
                    continue;
                };
                if frame.remaining == 0 && frame.children.is_empty() {
                    self.frame_complete(fi);
                    progressed = true;
                    continue;
                }
                let Some(block) = wf.block(frame.block) else {
                    continue;
                };
                let pending: Vec<(usize, StmtId)> = block
                    .stmts
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| frame.states.get(*p) == Some(&St::Pending))
                    .map(|(p, s)| (p, *s))
                    .collect();
                for (p, sid) in pending {
                    let Some(stmt) = wf.stmt(sid) else { continue };
                    if !matches!(self.frames.get(fi), Some(Some(_))) {
                        break;
                    }
                    if self.deps_done(fi, &stmt.deps) {
                        if let Some(Some(f)) = self.frames.get_mut(fi) {
                            if let Some(s) = f.states.get_mut(p) {
                                *s = St::Running;
                            }
                        }
                        self.start(wf, fi, p, sid);
                        progressed = true;
                        if self.outcome.is_some() {
                            return;
                        }
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }

    pub(super) fn complete(&mut self, frame: usize, pos: usize) {
        if let Some(Some(f)) = self.frames.get_mut(frame) {
            if let Some(s) = f.states.get_mut(pos) {
                if *s != St::Done {
                    *s = St::Done;
                    f.remaining = f.remaining.saturating_sub(1);
                }
            }
        }
    }

    pub(super) fn clock_key(&self, frame: usize, sid: StmtId) -> String {
        let indices = match self.frames.get(frame) {
            Some(Some(f)) => f.indices.clone(),
            _ => Vec::new(),
        };
        step_key(&format!("now@{}", sid.0), &indices)
    }

    pub(super) fn start(&mut self, wf: &Workflow, fi: usize, p: usize, sid: StmtId) {
        let Some(stmt) = wf.stmt(sid) else { return };
        let ckey = self.clock_key(fi, sid);
        match &stmt.kind {
            StmtKind::Let { local, value } => {
                let name = wf
                    .exprs
                    .local(*local)
                    .map(|l| l.name.clone())
                    .unwrap_or_default();
                match self.eval_in(fi, *value, &ckey, &name) {
                    Ok(v) => {
                        self.set_local(fi, *local, v);
                        self.complete(fi, p);
                    }
                    Err(e) => self.fail_at(fi, e),
                }
            }
            StmtKind::Step(step) => self.start_step(wf, fi, p, *step, &ckey),
            StmtKind::Wait(wait) => self.start_wait(fi, p, sid, wait, &ckey),
            StmtKind::If {
                branches,
                otherwise,
                exports,
            } => {
                let mut chosen = None;
                for b in branches {
                    match self.eval_in(fi, b.condition, &ckey, "if condition") {
                        Ok(Value::Bool(true)) => {
                            chosen = Some(b.body);
                            break;
                        }
                        Ok(Value::Bool(false)) | Ok(Value::Null) => {}
                        Ok(other) => {
                            self.fail_at(
                                fi,
                                StepError::expression(format!(
                                    "an `if` condition must be a bool, not {}",
                                    other.kind()
                                )),
                            );
                            return;
                        }
                        Err(e) => {
                            self.fail_at(fi, e);
                            return;
                        }
                    }
                }
                match chosen.or(*otherwise) {
                    Some(block) => {
                        self.child_frame(fi, block, FrameKind::Branch { stmt: p }, None);
                    }
                    None => {
                        for e in exports {
                            self.set_local(fi, e.outer, Value::Null);
                        }
                        self.complete(fi, p);
                    }
                }
            }
            StmtKind::For {
                var,
                iterable,
                parallel,
                body,
                exports,
            } => {
                let items = match self.eval_in(fi, *iterable, &ckey, "for") {
                    Ok(Value::List(items)) => items.as_ref().clone(),
                    Ok(Value::Map(m)) => m.entries.iter().map(|(k, _)| k.clone()).collect(),
                    Ok(Value::Null) => Vec::new(),
                    Ok(other) => {
                        self.fail_at(
                            fi,
                            StepError::expression(format!(
                                "`for` needs a list, not {}",
                                other.kind()
                            )),
                        );
                        return;
                    }
                    Err(e) => {
                        self.fail_at(fi, e);
                        return;
                    }
                };
                let limit = match parallel {
                    None => 1,
                    Some(ConstOr::Const(n)) => *n as usize,
                    Some(ConstOr::Expr(e)) => match self.eval_in(fi, *e, &ckey, "parallel") {
                        Ok(Value::Int(n)) if n > 0 => n as usize,
                        Ok(Value::UInt(n)) if n > 0 => n as usize,
                        Ok(_) => 1,
                        Err(e) => {
                            self.fail_at(fi, e);
                            return;
                        }
                    },
                }
                .max(1);
                if items.is_empty() {
                    for e in exports {
                        self.set_local(fi, e.outer, Value::list(Vec::new()));
                    }
                    self.complete(fi, p);
                    return;
                }
                let n = items.len();
                if let Some(Some(f)) = self.frames.get_mut(fi) {
                    f.loops.insert(
                        p,
                        LoopState {
                            items,
                            next: 0,
                            running: 0,
                            limit,
                            done: 0,
                            results: vec![Vec::new(); n],
                        },
                    );
                }
                self.launch_iterations(fi, p, *var, *body);
            }
            StmtKind::Try { body, .. } => {
                self.child_frame(fi, *body, FrameKind::TryBody { stmt: p }, None);
            }
            StmtKind::Fail(message) => {
                let text = match self.eval_in(fi, *message, &ckey, "fail") {
                    Ok(v) => v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_json().to_string()),
                    Err(e) => e.message,
                };
                // `fail` ends the run; a `try` around it does not catch it.
                self.outcome = Some(Err(StepError::runtime(text)));
            }
            StmtKind::Return(value) => {
                let out = match value {
                    Some(e) => self.eval_in(fi, *e, &ckey, "return").map(|v| v.to_json()),
                    None => Ok(Json::Null),
                };
                match out {
                    Ok(v) => self.outcome = Some(Ok(v)),
                    Err(e) => self.fail_at(fi, e),
                }
            }
            StmtKind::Log(expr) => match self.eval_in(fi, *expr, &ckey, "log") {
                Ok(v) => {
                    let text = v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_json().to_string());
                    let e = self.shared.record(
                        EventKind::Log,
                        None,
                        None,
                        Some(Json::String(text.clone()).to_string()),
                    );
                    let _ = self.shared.inner.store.append_nowait(vec![e]);
                    self.shared.progress(&Progress::Log { message: text });
                    self.complete(fi, p);
                }
                Err(e) => self.fail_at(fi, e),
            },
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
        if let Some(p) = parent {
            if let Some(Some(pf)) = self.frames.get_mut(p) {
                pf.children.retain(|c| *c != fi);
            }
        }
    }

    /// Drops a frame and everything nested in it, cancelling their tasks.
    pub(super) fn kill(&mut self, fi: usize) {
        let mut stack = vec![fi];
        while let Some(f) = stack.pop() {
            if let Some(slot) = self.frames.get_mut(f) {
                if let Some(frame) = slot.take() {
                    for t in &frame.tasks {
                        t.abort();
                    }
                    stack.extend(frame.children);
                }
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
