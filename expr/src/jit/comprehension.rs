//! Translating comprehensions (`all`, `exists`, `map`, `filter`, ...): a native loop over
//! the list or map, its accumulator and bound variable in locals, with errors absorbed
//! exactly where the interpreter absorbs them.

use super::*;

impl Translator<'_> {
    pub(super) fn comprehension(
        &mut self,
        c: &Comprehension,
        want: JTy,
    ) -> Result<(ir::Value, JTy), JitError> {
        use ComprehensionKind as K;
        let name_index = match c.kind {
            K::All => 0,
            K::Exists => 1,
            K::ExistsOne => 2,
            K::Map => 3,
            K::Filter => 4,
            K::CountIf => 2,
            _ => return unsupported(format!("comprehension {:?}", c.kind)),
        };
        if c.var2.is_some() {
            return unsupported("two-variable comprehensions");
        }
        if !matches!(self.arena.ty(c.range), Some(Type::List(_))) {
            return unsupported("comprehension over a value that is not statically a list");
        }
        let (range, rty) = self.expr(c.range)?;
        let range = self.boxed(range, rty)?;
        let ctx = self.ctx_ptr;
        let what = self.ptr_const(&LIST_NAMES[name_index] as *const ComprehensionName);
        let n = self.call1("jit_list_len", &[ctx, range, what])?;
        self.check();
        let var_ty = self
            .arena
            .local(c.var)
            .map(|l| JTy::of(&l.ty))
            .ok_or_else(|| JitError::Codegen("unknown local".into()))?;
        let var = self.b.declare_var(var_ty.clif());
        let zero_v = self.zero(var_ty);
        self.b.def_var(var, zero_v);
        self.bound.insert(c.var, (var, var_ty));

        let i = self.b.declare_var(types::I64);
        let zero = self.iconst(0);
        self.b.def_var(i, zero);
        // Accumulators.
        let acc = self.b.declare_var(types::I64);
        self.b.def_var(acc, zero);
        let token = self.b.declare_var(types::I64);
        let minus1 = self.iconst(-1);
        self.b.def_var(token, minus1);
        let builder = if matches!(c.kind, K::Map | K::Filter) {
            Some(self.call1("jit_list_new", &[ctx, n])?)
        } else {
            None
        };

        let head = self.b.create_block();
        let body = self.b.create_block();
        let next = self.b.create_block();
        let exit = self.b.create_block();
        let result = self.b.append_block_param(exit, want.clif());
        let finish = self.b.create_block();
        self.b.ins().jump(head, &[]);

        self.b.switch_to_block(head);
        let iv = self.b.use_var(i);
        let more = self.b.ins().icmp(IntCC::SignedLessThan, iv, n);
        self.b.ins().brif(more, body, &[], finish, &[]);

        self.b.switch_to_block(body);
        let iv = self.b.use_var(i);
        let elem = self.call1("jit_list_get", &[range, iv])?;
        let ev = self.unbox(elem, var_ty)?;
        self.b.def_var(var, ev);
        if let Some(f) = c.filter {
            let fv = self.bool_of(f)?;
            let keep = self.b.create_block();
            self.b.ins().brif(fv, keep, &[], next, &[]);
            self.b.switch_to_block(keep);
        }
        match c.kind {
            K::All | K::Exists => {
                let stop_on = i64::from(c.kind == K::Exists);
                let outer = self.err_block;
                let body_err = self.b.create_block();
                self.err_block = body_err;
                let pv = self.bool_of(c.body)?;
                self.err_block = outer;
                let decided = self.b.create_block();
                let hit = self.b.ins().icmp_imm_s(IntCC::Equal, pv, stop_on);
                self.b.ins().brif(hit, decided, &[], next, &[]);
                // Decided: drop any pending error and return the deciding value.
                self.b.switch_to_block(decided);
                let tv = self.b.use_var(token);
                let has = self
                    .b
                    .ins()
                    .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, tv, 0);
                let drop_block = self.b.create_block();
                let out = self.b.create_block();
                self.b.ins().brif(has, drop_block, &[], out, &[]);
                self.b.switch_to_block(drop_block);
                self.call("jit_drop_stash", &[ctx, tv])?;
                self.b.ins().jump(out, &[]);
                self.b.switch_to_block(out);
                let k = self.b.ins().iconst(types::I8, stop_on);
                self.b.ins().jump(exit, &[ir::BlockArg::Value(k)]);
                // The predicate failed: keep the first error, go on.
                self.b.switch_to_block(body_err);
                let tv = self.b.use_var(token);
                let first = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, tv, 0);
                let stash_block = self.b.create_block();
                let clear_block = self.b.create_block();
                self.b.ins().brif(first, stash_block, &[], clear_block, &[]);
                self.b.switch_to_block(stash_block);
                let t = self.call1("jit_stash", &[ctx])?;
                self.b.def_var(token, t);
                self.b.ins().jump(next, &[]);
                self.b.switch_to_block(clear_block);
                self.call("jit_clear_error", &[ctx])?;
                self.b.ins().jump(next, &[]);
            }
            K::ExistsOne | K::CountIf => {
                let pv = self.bool_of(c.body)?;
                let inc = self.b.ins().uextend(types::I64, pv);
                let a = self.b.use_var(acc);
                let a2 = self.b.ins().iadd(a, inc);
                self.b.def_var(acc, a2);
                self.b.ins().jump(next, &[]);
            }
            K::Map => {
                let (v, ty) = self.expr(c.body)?;
                let bl = builder.ok_or_else(|| JitError::Codegen("no builder".into()))?;
                self.push_item(bl, v, ty)?;
                self.b.ins().jump(next, &[]);
            }
            _ => {
                let pv = self.bool_of(c.body)?;
                let keep = self.b.create_block();
                self.b.ins().brif(pv, keep, &[], next, &[]);
                self.b.switch_to_block(keep);
                let bl = builder.ok_or_else(|| JitError::Codegen("no builder".into()))?;
                self.push_item(bl, ev, var_ty)?;
                self.b.ins().jump(next, &[]);
            }
        }

        self.b.switch_to_block(next);
        let iv = self.b.use_var(i);
        let i2 = self.b.ins().iadd_imm_s(iv, 1);
        self.b.def_var(i, i2);
        self.b.ins().jump(head, &[]);

        // The loop ran to the end.
        self.b.switch_to_block(finish);
        let r = match c.kind {
            K::All | K::Exists => {
                let tv = self.b.use_var(token);
                let has = self
                    .b
                    .ins()
                    .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, tv, 0);
                let fail_block = self.b.create_block();
                let ok_block = self.b.create_block();
                self.b.ins().brif(has, fail_block, &[], ok_block, &[]);
                self.b.switch_to_block(fail_block);
                self.call("jit_unstash", &[ctx, tv])?;
                let err = self.err_block;
                self.b.ins().jump(err, &[]);
                self.b.switch_to_block(ok_block);
                self.b.ins().iconst(types::I8, i64::from(c.kind == K::All))
            }
            K::ExistsOne => {
                let a = self.b.use_var(acc);
                self.b.ins().icmp_imm_s(IntCC::Equal, a, 1)
            }
            K::CountIf => self.b.use_var(acc),
            _ => {
                let bl = builder.ok_or_else(|| JitError::Codegen("no builder".into()))?;
                self.call1("jit_list_finish", &[ctx, bl])?
            }
        };
        let produced = match c.kind {
            K::All | K::Exists | K::ExistsOne => JTy::Bool,
            K::CountIf => JTy::Int,
            _ => JTy::Boxed,
        };
        let (r, _) = self.coerce_kind(r, produced, want)?;
        self.b.ins().jump(exit, &[ir::BlockArg::Value(r)]);
        self.b.switch_to_block(exit);
        self.bound.remove(&c.var);
        Ok((result, want))
    }
}
