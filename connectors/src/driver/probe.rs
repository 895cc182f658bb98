//! Health probes: a connection's declared `health` endpoint or action, called with its
//! credentials, and its latency.

use super::*;

impl Driver {
    /// Sends an integration's `health = GET "/path"` probe (or runs its `health =
    /// action(...)` call, first page only) with the connection's credentials.
    pub async fn probe(
        &self,
        program: &Arc<Program>,
        integration: u32,
        conn: &Connection,
    ) -> Result<Duration, StepError> {
        let integ = program
            .integrations
            .get(integration as usize)
            .ok_or_else(|| StepError::runtime("internal error: unknown integration"))?;
        let prepared = prepare_integration(integ, &PreparedIntegration::new(integ));
        let started = Instant::now();
        let name = format!("{} health", integ.name);
        let result = if let Some(h) = &integ.health {
            let base = self.base_url(&prepared, integ, conn)?;
            let mut locals = prepared.integration.new_locals();
            let path = request::path(
                &prepared.integration,
                h.path,
                &mut locals,
                &ConnContext { connection: conn },
            )
            .map_err(|e| StepError::expression(conn.mask(&e.message)))?;
            let url = if path.starts_with("http") {
                path
            } else {
                format!("{}{}", base.trim_end_matches('/'), path)
            };
            let mut headers = Vec::new();
            if let Some(hs) = integ.headers {
                let mut ilocals = prepared.integration.new_locals();
                if let Ok(v) = prepared.integration.eval_in(
                    Mode::Request,
                    hs,
                    &mut ilocals,
                    &ConnContext { connection: conn },
                ) {
                    for (k, v) in eval::fields(&v).unwrap_or_default() {
                        set_header(&mut headers, &k, Header::of(&v));
                    }
                }
            }
            let out = Outgoing {
                method: h.method,
                same_origin: origin(&url) == origin(&base),
                url,
                headers,
                body: None,
                timeout: Duration::from_secs(30),
            };
            let answer = self.send(&prepared, integ, conn, out, None, &name).await?;
            if answer.status >= 400 {
                let (body, _) = response::decode(
                    response::format_of(answer.header("content-type").as_deref(), &answer.body),
                    &answer.body,
                );
                Err(http_error(&name, &answer, &body, conn))
            } else {
                Ok(())
            }
        } else if let Some(hc) = &integ.health_call {
            let action = integ
                .actions
                .get(hc.action as usize)
                .ok_or_else(|| StepError::runtime("internal error: unknown health action"))?;
            let p = flow_expr::Program::new(hc.exprs.clone());
            let mut locals = p.new_locals();
            let cctx = ConnContext { connection: conn };
            let mut args = Vec::new();
            let ap = prepared.actions.get(hc.action as usize);
            for (i, param) in action.params.iter().enumerate() {
                let v = match hc.args.get(i).copied().flatten() {
                    Some(e) => p
                        .eval(e, &mut locals, &cctx)
                        .map_err(|e| StepError::expression(e.message))?,
                    None => match (param.default, ap) {
                        (Some(d), Some(ap)) => ap
                            .eval(d, &mut ap.new_locals(), &cctx)
                            .unwrap_or(Value::Null),
                        _ => Value::Null,
                    },
                };
                args.push(v);
            }
            let ctx = CallContext {
                run_id: Arc::from("health"),
                workflow: Arc::from("health"),
                step: "health".into(),
                attempt: 1,
                owner: Some(Arc::from(conn.owner.as_str())),
                idempotency_key: None,
                cache: None,
                timeout: Some(Duration::from_secs(30)),
            };
            self.execute(
                &prepared,
                integ,
                hc.action as usize,
                action,
                &args,
                conn,
                &ctx,
                true,
            )
            .await
            .map(|_| ())
        } else {
            Err(StepError::runtime(format!(
                "{} declares no health check",
                integ.name
            )))
        };
        self.connections.audit(AuditEntry {
            integration: integ.name.as_str().into(),
            owner: conn.owner.clone(),
            run_id: None,
            workflow: None,
            step: None,
            purpose: "health".into(),
            outcome: match &result {
                Ok(()) => "ok",
                Err(e) => e.kind.as_str(),
            },
        });
        result.map(|()| started.elapsed())
    }
}
