//! Translating calls: builtins the JIT computes in registers (arithmetic, comparisons of
//! numbers) and those it hands to the interpreter's functions through `extern "C"`
//! helpers, with their failure flags tested as the interpreter's errors would be.

use super::*;

impl Translator<'_> {
    pub(super) fn call_node(
        &mut self,
        overload: &Overload,
        args: &[ExprId],
        want: JTy,
    ) -> Result<(ir::Value, JTy), JitError> {
        use Overload as O;
        if matches!(overload, O::Or | O::OrValue) {
            return unsupported("optional `or`/`orValue`");
        }
        let kinds: Vec<JTy> = args
            .iter()
            .map(|a| self.node_ty(*a))
            .collect::<Result<_, _>>()?;
        // Native arithmetic and comparisons on numbers and bools.
        let native = match (overload, kinds.as_slice()) {
            (O::Not, [JTy::Bool]) | (O::Neg, [JTy::Int | JTy::Double]) => true,
            (O::Add | O::Sub | O::Mul | O::Div, [x, y])
                if x == y && matches!(x, JTy::Int | JTy::UInt | JTy::Double) =>
            {
                true
            }
            (O::Rem, [x, y]) if x == y && matches!(x, JTy::Int | JTy::UInt) => true,
            (O::Eq | O::Ne | O::Lt | O::Le | O::Gt | O::Ge, [x, y]) => {
                let num = |k: &JTy| matches!(k, JTy::Int | JTy::UInt | JTy::Double);
                (num(x) && num(y)) || (*x == JTy::Bool && *y == JTy::Bool)
            }
            _ => false,
        };
        if native {
            let mut vals = Vec::with_capacity(args.len());
            for a in args {
                vals.push(self.expr(*a)?);
            }
            let (v, ty) = self.native(*overload, &vals)?;
            return self.coerce_kind(v, ty, want);
        }
        // Equality and ordering on boxed values.
        if matches!(overload, O::Eq | O::Ne | O::Lt | O::Le | O::Gt | O::Ge) && args.len() == 2 {
            let (a, at) = self.expr(args[0])?;
            let a = self.boxed(a, at)?;
            let (b, bt) = self.expr(args[1])?;
            let b = self.boxed(b, bt)?;
            let ctx = self.ctx_ptr;
            let v = match overload {
                O::Eq => self.call1("jit_equals", &[a, b])?,
                O::Ne => {
                    let e = self.call1("jit_equals", &[a, b])?;
                    self.b.ins().bxor_imm_s(e, 1)
                }
                _ => {
                    let c = self.call1("jit_compare", &[ctx, a, b])?;
                    self.check();
                    let (cc, k) = match overload {
                        O::Lt => (IntCC::Equal, -1),
                        O::Gt => (IntCC::Equal, 1),
                        O::Le => (IntCC::SignedLessThanOrEqual, 0),
                        _ => (IntCC::Equal, 1),
                    };
                    if *overload == O::Ge {
                        // 0 or 1.
                        let ge0 = self
                            .b
                            .ins()
                            .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, c, 0);
                        let le1 = self.b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, c, 1);
                        self.b.ins().band(ge0, le1)
                    } else {
                        self.b.ins().icmp_imm_s(cc, c, k)
                    }
                }
            };
            return self.coerce_kind(v, JTy::Bool, want);
        }
        // `s.startsWith(a + b)` on strings: no concatenation.
        if *overload == O::StartsWith
            && args.len() == 2
            && self.arena.ty(args[0]) == Some(&Type::String)
            && let Some((a, b)) = string_concat(self.arena, args[1])
        {
            let (s, st) = self.expr(args[0])?;
            let s = self.boxed(s, st)?;
            let (a, at) = self.expr(a)?;
            let a = self.boxed(a, at)?;
            let (b, bt) = self.expr(b)?;
            let b = self.boxed(b, bt)?;
            let v = self.call1("jit_starts_with_concat", &[s, a, b])?;
            return self.coerce_kind(v, JTy::Bool, want);
        }
        // One argument, or two with a bool result: borrowed arguments, no array.
        if args.len() == 1 || (args.len() == 2 && want == JTy::Bool) {
            let mut ptrs = Vec::with_capacity(2);
            for a in args {
                let (v, ty) = self.expr(*a)?;
                ptrs.push(self.boxed(v, ty)?);
            }
            let o = self.ptr_const(overload as *const Overload);
            let ctx = self.ctx_ptr;
            if let [a, b] = ptrs.as_slice() {
                let v = self.call1("jit_call2_bool", &[ctx, o, *a, *b])?;
                self.check();
                return Ok((v, JTy::Bool));
            }
            let r = self.call1("jit_call1", &[ctx, o, ptrs[0]])?;
            self.check();
            return Ok((self.unbox(r, want)?, want));
        }
        // Everything else: the interpreter's function through a helper.
        let mut ptrs = Vec::with_capacity(args.len());
        for a in args {
            let (v, ty) = self.expr(*a)?;
            ptrs.push(self.boxed(v, ty)?);
        }
        let n = ptrs.len().max(1) as u32;
        let slot = self.b.create_sized_stack_slot(StackSlotData::new(
            StackSlotKind::ExplicitSlot,
            n * 8,
            3,
        ));
        for (i, p) in ptrs.iter().enumerate() {
            self.b
                .ins()
                .stack_store(types::I64, *p, slot, (i * 8) as i32);
        }
        let args_ptr = self.b.ins().stack_addr(types::I64, slot, 0);
        let o = self.ptr_const(overload as *const Overload);
        let count = self.iconst(ptrs.len() as i64);
        let ctx = self.ctx_ptr;
        let r = self.call1("jit_call", &[ctx, o, args_ptr, count])?;
        self.check();
        Ok((self.unbox(r, want)?, want))
    }

    /// Native code for numeric and boolean operators (the checker guarantees the kinds).
    pub(super) fn native(
        &mut self,
        o: Overload,
        vals: &[(ir::Value, JTy)],
    ) -> Result<(ir::Value, JTy), JitError> {
        use Overload as O;
        match (o, vals) {
            (O::Not, [(v, _)]) => Ok((self.b.ins().bxor_imm_s(*v, 1), JTy::Bool)),
            (O::Neg, [(v, JTy::Int)]) => {
                let is_min = self.b.ins().icmp_imm_s(IntCC::Equal, *v, i64::MIN);
                self.fail_if(is_min, code::OVERFLOW_NEG)?;
                Ok((self.b.ins().ineg(*v), JTy::Int))
            }
            (O::Neg, [(v, JTy::Double)]) => Ok((self.b.ins().fneg(*v), JTy::Double)),
            (O::Add | O::Sub | O::Mul, [(x, JTy::Double), (y, _)]) => Ok((
                match o {
                    O::Add => self.b.ins().fadd(*x, *y),
                    O::Sub => self.b.ins().fsub(*x, *y),
                    _ => self.b.ins().fmul(*x, *y),
                },
                JTy::Double,
            )),
            (O::Div, [(x, JTy::Double), (y, _)]) => Ok((self.b.ins().fdiv(*x, *y), JTy::Double)),
            (O::Add | O::Sub | O::Mul, [(x, k), (y, _)]) => {
                let signed = *k == JTy::Int;
                let (r, of) = match (o, signed) {
                    (O::Add, true) => self.b.ins().sadd_overflow(*x, *y),
                    (O::Add, false) => self.b.ins().uadd_overflow(*x, *y),
                    (O::Sub, true) => self.b.ins().ssub_overflow(*x, *y),
                    (O::Sub, false) => self.b.ins().usub_overflow(*x, *y),
                    (_, true) => self.b.ins().smul_overflow(*x, *y),
                    (_, false) => self.b.ins().umul_overflow(*x, *y),
                };
                let c = match o {
                    O::Add => code::OVERFLOW_ADD,
                    O::Sub => code::OVERFLOW_SUB,
                    _ => code::OVERFLOW_MUL,
                };
                self.fail_if(of, c)?;
                Ok((r, *k))
            }
            (O::Div | O::Rem, [(x, k), (y, _)]) => {
                let div = o == O::Div;
                let is_zero = self.b.ins().icmp_imm_s(IntCC::Equal, *y, 0);
                self.fail_if(is_zero, if div { code::DIV_ZERO } else { code::REM_ZERO })?;
                if *k == JTy::Int {
                    let min = self.b.ins().icmp_imm_s(IntCC::Equal, *x, i64::MIN);
                    let neg1 = self.b.ins().icmp_imm_s(IntCC::Equal, *y, -1);
                    let both = self.b.ins().band(min, neg1);
                    self.fail_if(
                        both,
                        if div {
                            code::OVERFLOW_DIV
                        } else {
                            code::OVERFLOW_REM
                        },
                    )?;
                    Ok((
                        if div {
                            self.b.ins().sdiv(*x, *y)
                        } else {
                            self.b.ins().srem(*x, *y)
                        },
                        JTy::Int,
                    ))
                } else {
                    Ok((
                        if div {
                            self.b.ins().udiv(*x, *y)
                        } else {
                            self.b.ins().urem(*x, *y)
                        },
                        JTy::UInt,
                    ))
                }
            }
            (O::Eq | O::Ne | O::Lt | O::Le | O::Gt | O::Ge, [(x, xk), (y, yk)]) => {
                Ok((self.compare_numbers(o, *x, *xk, *y, *yk), JTy::Bool))
            }
            _ => Err(JitError::Codegen(format!("no native code for {o:?}"))),
        }
    }

    /// Compares two numbers (or two bools) exactly as `value::compare_numbers` does.
    pub(super) fn compare_numbers(
        &mut self,
        o: Overload,
        x: ir::Value,
        xk: JTy,
        y: ir::Value,
        yk: JTy,
    ) -> ir::Value {
        use Overload as O;
        let (icc_s, icc_u, fcc) = match o {
            O::Eq => (IntCC::Equal, IntCC::Equal, FloatCC::Equal),
            O::Ne => (IntCC::NotEqual, IntCC::NotEqual, FloatCC::NotEqual),
            O::Lt => (
                IntCC::SignedLessThan,
                IntCC::UnsignedLessThan,
                FloatCC::LessThan,
            ),
            O::Le => (
                IntCC::SignedLessThanOrEqual,
                IntCC::UnsignedLessThanOrEqual,
                FloatCC::LessThanOrEqual,
            ),
            O::Gt => (
                IntCC::SignedGreaterThan,
                IntCC::UnsignedGreaterThan,
                FloatCC::GreaterThan,
            ),
            _ => (
                IntCC::SignedGreaterThanOrEqual,
                IntCC::UnsignedGreaterThanOrEqual,
                FloatCC::GreaterThanOrEqual,
            ),
        };
        let to_f = |t: &mut Self, v: ir::Value, k: JTy| match k {
            JTy::Int => t.b.ins().fcvt_from_sint(types::F64, v),
            JTy::UInt => t.b.ins().fcvt_from_uint(types::F64, v),
            _ => v,
        };
        match (xk, yk) {
            (JTy::Int, JTy::Int) | (JTy::Bool, JTy::Bool) => {
                self.b.ins().icmp(icc_s_or_u(icc_s, icc_u, xk), x, y)
            }
            (JTy::UInt, JTy::UInt) => self.b.ins().icmp(icc_u, x, y),
            (JTy::Double, _) | (_, JTy::Double) => {
                let fx = to_f(self, x, xk);
                let fy = to_f(self, y, yk);
                self.b.ins().fcmp(fcc, fx, fy)
            }
            // int vs uint: a negative int is less than every uint; otherwise compare unsigned.
            (JTy::Int, JTy::UInt) => {
                let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, x, 0);
                let cmp = self.b.ins().icmp(icc_u, x, y);
                let when_neg = self
                    .b
                    .ins()
                    .iconst(types::I8, i64::from(matches!(o, O::Ne | O::Lt | O::Le)));
                self.b.ins().select(neg, when_neg, cmp)
            }
            _ => {
                // uint vs int: a negative int is less than every uint.
                let neg = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, y, 0);
                let cmp = self.b.ins().icmp(icc_u, x, y);
                let when_neg = self
                    .b
                    .ins()
                    .iconst(types::I8, i64::from(matches!(o, O::Ne | O::Gt | O::Ge)));
                self.b.ins().select(neg, when_neg, cmp)
            }
        }
    }
}
