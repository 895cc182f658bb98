//! One action call's requests: the request clauses evaluated against the connection,
//! the URL, query, headers and body built, pagination followed, each answer checked
//! against `error_when` and its declared type, and the `result` extracted.

use super::*;
use tracing::Instrument;

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn execute(
        &self,
        prepared: &Prepared,
        integ: &Integration,
        action_index: usize,
        action: &Action,
        args: &[Value],
        conn: &Connection,
        ctx: &CallContext,
        first_page_only: bool,
    ) -> Result<Value, StepError> {
        let name = QualifiedName(&integ.name, &action.name);
        let program = prepared
            .actions
            .get(action_index)
            .ok_or_else(|| StepError::runtime("internal error: unknown action"))?;
        let cctx = ConnContext { connection: conn };
        let fail_expr = |clause: &str, e: flow_expr::EvalError| {
            let message = conn.mask(&e.message);
            if e.kind == flow_expr::ErrorKind::Conversion && clause == "result" {
                StepError::validation(format!(
                    "{name}: the answer does not match the declared result `{}`: {message}",
                    action.result
                ))
                .with_details(
                    serde_json::json!({ "path": message.split(": ").next().unwrap_or("") }),
                )
            } else {
                StepError::expression(format!("{name}: cannot evaluate `{clause}`: {message}"))
            }
        };
        let mut locals = program.new_locals();
        for (p, v) in action.params.iter().zip(args) {
            if let Some(slot) = locals.get_mut(p.local.0 as usize) {
                *slot = v.clone();
            }
        }
        let base = self.base_url(prepared, integ, conn)?;
        let request = action
            .request
            .as_ref()
            .ok_or_else(|| StepError::runtime(format!("{name} declares no request")))?;
        let path = request::path(program, request.path, &mut locals, &cctx)
            .map_err(|e| fail_expr("path", e))?;
        let absolute = path.starts_with("https://") || path.starts_with("http://");
        // A path that starts with `/` or `?` (or is empty) keeps the base URL's origin;
        // any other URL is compared with it.
        let keeps_origin = !absolute && (path.is_empty() || path.starts_with(['/', '?']));
        let mut url = if absolute {
            path
        } else {
            let base = base.trim_end_matches('/');
            let mut url = String::with_capacity(base.len() + path.len());
            url.push_str(base);
            url.push_str(&path);
            url
        };
        let base_origin = origin(&base);
        let same_origin = base_origin.is_some() && (keeps_origin || origin(&url) == base_origin);
        let mut query = Vec::new();
        if let Some(q) = action.query {
            let v = program
                .eval_in(Mode::Request, q, &mut locals, &cctx)
                .map_err(|e| fail_expr("query", e))?;
            request::query_pairs(&v, &mut query);
        }
        let mut headers: Vec<(String, Header)> = Vec::new();
        if same_origin && let Some(h) = integ.headers {
            let mut ilocals = prepared.integration.new_locals();
            let v = prepared
                .integration
                .eval_in(Mode::Request, h, &mut ilocals, &cctx)
                .map_err(|e| fail_expr("headers", e))?;
            for (k, v) in eval::fields(&v).unwrap_or_default() {
                set_header(&mut headers, &k, Header::of(&v));
            }
        }
        if let Some(h) = action.headers {
            let v = program
                .eval_in(Mode::Request, h, &mut locals, &cctx)
                .map_err(|e| fail_expr("headers", e))?;
            for (k, v) in eval::fields(&v).unwrap_or_default() {
                set_header(&mut headers, &k, Header::of(&v));
            }
        }
        let style = match self
            .integration_setting(prepared, integ, "form_style", conn)
            .as_deref()
        {
            Some("aws_query") => FormStyle::AwsQuery,
            _ => FormStyle::Brackets,
        };
        let body_value = match &action.body {
            Some(b) => Some((
                b.kind,
                program
                    .eval_in(Mode::Request, b.value, &mut locals, &cctx)
                    .map_err(|e| fail_expr("body", e))?,
            )),
            None => None,
        };
        if request.method == Method::Post
            && let Some(h) = self.integration_setting(prepared, integ, "idempotency_header", conn)
        {
            let key = ctx
                .idempotency_key
                .clone()
                .unwrap_or_else(|| format!("flow-{}-{}", ctx.run_id, ctx.step));
            set_header(&mut headers, &h, Header::Plain(key));
        }
        let timeout = match &action.timeout {
            Some(ConstOr::Const(n)) => nanos(*n),
            Some(ConstOr::Expr(e)) => match program.eval(*e, &mut locals, &cctx) {
                Ok(Value::Duration(d)) => nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
                _ => self.config.request_timeout,
            },
            None => self.config.request_timeout,
        };
        let timeout = ctx.timeout.map_or(timeout, |t| t.min(timeout));
        let deadline = ctx.timeout.map(|t| Instant::now() + t);

        let paginate = action.paginate.as_ref().filter(|_| !first_page_only);
        let mut pages: Vec<Value> = Vec::new();
        // The next page's URL when a link gives it; `None`: the action's own URL.
        let mut link_url: Option<String> = None;
        let mut extra_query: Vec<(String, String)> = Vec::new();
        let mut body_cursor: Option<(String, Value)> = None;
        let mut counter: i64 = 0;
        let (mut size, mut start) = (0i64, 0i64);
        if let Some(p) = paginate {
            let mut num = |n: &str, default: i64| -> i64 {
                named(&p.args, n)
                    .and_then(|e| program.eval(e, &mut locals, &cctx).ok())
                    .and_then(|v| match v {
                        Value::Int(i) => Some(i),
                        Value::UInt(u) => i64::try_from(u).ok(),
                        _ => None,
                    })
                    .unwrap_or(default)
            };
            match p.kind {
                PaginateKind::Offset => {
                    size = num("size", 100);
                    start = num("start", 0);
                }
                PaginateKind::Page => {
                    size = num("size", 100);
                    start = num("start", 1);
                }
                _ => {}
            }
            counter = start;
        }
        let mut seen_cursors: Vec<String> = Vec::new();
        loop {
            if pages.len() >= self.config.page_cap {
                return Err(StepError::runtime(format!(
                    "{name}: stopped after {} pages (the driver's page cap); narrow the listing with its filters",
                    self.config.page_cap
                )));
            }
            // A single request takes the query and headers; pages copy them.
            let mut q = if paginate.is_some() {
                query.clone()
            } else {
                std::mem::take(&mut query)
            };
            if let Some(p) = paginate {
                q.retain(|(k, _)| !extra_query.iter().any(|(e, _)| e == k));
                match p.kind {
                    PaginateKind::Offset | PaginateKind::Page => {
                        let param = self.text_arg(program, &p.args, "param", &mut locals, &cctx);
                        let size_param = self.text_arg(
                            program,
                            &p.args,
                            if p.kind == PaginateKind::Offset {
                                "limit_param"
                            } else {
                                "size_param"
                            },
                            &mut locals,
                            &cctx,
                        );
                        extra_query.clear();
                        if let Some(param) = param {
                            extra_query.push((param, counter.to_string()));
                        }
                        if let Some(sp) = size_param {
                            extra_query.push((sp, size.to_string()));
                        }
                    }
                    _ => {}
                }
                q.retain(|(k, _)| !extra_query.iter().any(|(e, _)| e == k));
                q.extend(extra_query.iter().cloned());
            }
            let own_url = link_url.as_deref().is_none_or(|u| u == url);
            let mut full_url = match &link_url {
                Some(link) => link.clone(),
                None if paginate.is_some() => url.clone(),
                // A single request takes the URL.
                None => std::mem::take(&mut url),
            };
            if own_url {
                request::append_query(&mut full_url, &q);
            }
            let mut out_headers = if paginate.is_some() {
                headers.clone()
            } else {
                std::mem::take(&mut headers)
            };
            let body = match &body_value {
                Some((kind, v)) => {
                    let v = match &body_cursor {
                        Some((field, cursor)) => with_body_field(v, field, cursor.clone()),
                        None => v.clone(),
                    };
                    match request::encode_body(*kind, &v, style) {
                        Some(enc) => {
                            if !out_headers.iter().any(|(k, _)| k == "content-type") {
                                out_headers
                                    .push(("content-type".into(), Header::Plain(enc.content_type)));
                            }
                            Some(enc.bytes)
                        }
                        None => None,
                    }
                }
                None => None,
            };
            // A query appended to the action's URL leaves its origin as it was.
            let page_same_origin = if own_url {
                same_origin
            } else {
                base_origin.is_some() && origin(&full_url) == base_origin
            };
            if !page_same_origin && same_origin {
                // A page on another host gets only the action's own headers.
                out_headers.clear();
                if let Some(h) = action.headers {
                    let v = program
                        .eval_in(Mode::Request, h, &mut locals, &cctx)
                        .map_err(|e| fail_expr("headers", e))?;
                    for (k, v) in eval::fields(&v).unwrap_or_default() {
                        set_header(&mut out_headers, &k, Header::of(&v));
                    }
                }
            }
            let out = Outgoing {
                method: request.method,
                url: full_url,
                headers: out_headers,
                body,
                same_origin: page_same_origin,
                timeout,
            };
            let answer = self
                .send(prepared, integ, conn, out, deadline, &name)
                .await?;
            let format =
                response::format_of(answer.header("content-type").as_deref(), &answer.body);
            if answer.status < 400
                && format == Format::Json
                && let Some(Some(shape)) = prepared.body_shapes.get(action_index)
            {
                // The answer as the declared type in one pass; anything the direct
                // decoding does not take goes the general way below.
                if let Some(v) = shape::decode(shape, &answer.body) {
                    return Ok(v);
                }
            }
            let (body, format) = response::decode(format, &answer.body);
            if answer.status >= 400 {
                return Err(http_error(&name, &answer, &body, conn));
            }
            let response_value = if prepared
                .reads_headers
                .get(action_index)
                .copied()
                .unwrap_or(true)
            {
                response_record(&answer, body.clone())
            } else {
                response_record_without_headers(&answer, body.clone())
            };
            if let Some(slot) = locals.get_mut(action.response.0 as usize) {
                *slot = response_value;
            }
            for ew in &action.error_when {
                let hit = program
                    .eval(ew.condition, &mut locals, &cctx)
                    .map_err(|e| fail_expr("error_when", e))?;
                if matches!(hit, Value::Bool(true)) {
                    let message = program
                        .eval(ew.message, &mut locals, &cctx)
                        .map(|m| text(&m))
                        .unwrap_or_else(|e| e.message);
                    return Err(StepError::communication(format!(
                        "{name}: {}",
                        conn.mask(&message)
                    ))
                    .with_status(answer.status)
                    .with_details(serde_json::json!({ "error": conn.mask(&message) })));
                }
            }
            let xml = format == Format::Xml;
            // A `result` the checker converted to the declared type is checked by the walk.
            let conformed = action.result_expr.is_some_and(|r| {
                matches!(
                    program.arena().node(r).map(|n| &n.kind),
                    Some(flow_ir::expr::NodeKind::Convert { to, .. }) if *to == action.result
                )
            });
            let page = match action.result_expr {
                Some(r) => program
                    .eval_in(answer_mode(xml), r, &mut locals, &cctx)
                    .map_err(|e| fail_expr("result", e))?,
                None => body.clone(),
            };
            let Some(p) = paginate else {
                if conformed {
                    return Ok(page);
                }
                return conform(&page, &action.result, xml, "result").map_err(|m| {
                    StepError::validation(format!(
                        "{name}: the answer does not match the declared result `{}`: {}",
                        action.result,
                        conn.mask(&m.to_string())
                    ))
                    .with_details(serde_json::json!({ "path": m.path }))
                });
            };
            let page = conform(&page, &action.result, xml, "result").map_err(|m| {
                StepError::validation(format!(
                    "{name}: page {} does not match the declared result `{}`: {}",
                    pages.len() + 1,
                    action.result,
                    conn.mask(&m.to_string())
                ))
                .with_details(serde_json::json!({ "path": m.path, "page": pages.len() + 1 }))
            })?;
            let count = match &page {
                Value::List(l) => l.len() as i64,
                _ => 0,
            };
            pages.push(page);
            // The next page, if any.
            let more = match named(&p.args, "more") {
                Some(e) => !matches!(program.eval(e, &mut locals, &cctx), Ok(Value::Bool(false))),
                None => true,
            };
            match p.kind {
                PaginateKind::Cursor => {
                    let next = positional(&p.args, 0)
                        .map(|e| program.eval_in(answer_mode(xml), e, &mut locals, &cctx))
                        .transpose()
                        .map_err(|e| fail_expr("paginate", e))?
                        .unwrap_or(Value::Null);
                    let cursor = text(&next);
                    if next.is_null() || cursor.is_empty() || !more {
                        break;
                    }
                    if seen_cursors.contains(&cursor) {
                        return Err(StepError::communication(format!(
                            "{name}: the API returned the same cursor twice; stopped to avoid an endless listing"
                        )));
                    }
                    seen_cursors.push(cursor.clone());
                    if let Some(param) =
                        self.text_arg(program, &p.args, "param", &mut locals, &cctx)
                    {
                        extra_query = vec![(param, cursor)];
                    } else if let Some(field) =
                        self.text_arg(program, &p.args, "body_param", &mut locals, &cctx)
                    {
                        body_cursor = Some((field, next));
                    }
                }
                PaginateKind::Link => {
                    let next = match positional(&p.args, 0) {
                        Some(e) => {
                            let v = program
                                .eval_in(answer_mode(xml), e, &mut locals, &cctx)
                                .map_err(|e| fail_expr("paginate", e))?;
                            (!v.is_null()).then(|| text(&v)).filter(|s| !s.is_empty())
                        }
                        None => answer.header("link").and_then(|l| response::link_next(&l)),
                    };
                    let Some(next) = next.filter(|_| more) else {
                        break;
                    };
                    let resolved = url::Url::parse(&answer.url)
                        .and_then(|b| b.join(&next))
                        .map(|u| u.to_string())
                        .map_err(|_| {
                            StepError::communication(format!(
                                "{name}: the next-page link {next:?} is not a URL"
                            ))
                        })?;
                    if seen_cursors.contains(&resolved) {
                        return Err(StepError::communication(format!(
                            "{name}: the API returned the same next-page link twice; stopped to avoid an endless listing"
                        )));
                    }
                    seen_cursors.push(resolved.clone());
                    link_url = Some(resolved);
                }
                PaginateKind::Offset => {
                    if count < size || !more || count == 0 {
                        break;
                    }
                    counter += size;
                }
                PaginateKind::Page => {
                    if count < size || !more || count == 0 {
                        break;
                    }
                    counter += 1;
                }
            }
        }
        let mut all = Vec::new();
        for p in pages {
            if let Value::List(items) = p {
                all.extend(items.iter().cloned());
            }
        }
        Ok(Value::list(all))
    }

    pub(super) fn text_arg(
        &self,
        program: &flow_expr::Program,
        args: &[FormArg],
        name: &str,
        locals: &mut [Value],
        ctx: &ConnContext<'_>,
    ) -> Option<String> {
        named(args, name)
            .and_then(|e| program.eval(e, locals, ctx).ok())
            .map(|v| text(&v))
    }

    pub(super) fn base_url<'c>(
        &self,
        prepared: &Prepared,
        integ: &Integration,
        conn: &'c Connection,
    ) -> Result<Cow<'c, str>, StepError> {
        if let Some(b) = &conn.base_url {
            return Ok(Cow::Borrowed(b));
        }
        let Some(e) = integ.base_url else {
            return Ok(Cow::Borrowed(""));
        };
        let mut locals = prepared.integration.new_locals();
        prepared
            .integration
            .eval(e, &mut locals, &ConnContext { connection: conn })
            .map(|v| Cow::Owned(text(&v)))
            .map_err(|e| {
                StepError::new(
                    ErrorKind::Authentication,
                    format!(
                        "{}: cannot build the base URL: {} (connect with the settings it reads)",
                        integ.name,
                        conn.mask(&e.message)
                    ),
                )
            })
    }

    pub(super) fn integration_setting(
        &self,
        prepared: &Prepared,
        integ: &Integration,
        name: &str,
        conn: &Connection,
    ) -> Option<String> {
        let s = integ.settings.iter().find(|s| s.name == name)?;
        let mut locals = prepared.integration.new_locals();
        prepared
            .integration
            .eval(s.value, &mut locals, &ConnContext { connection: conn })
            .ok()
            .map(|v| text(&v))
    }

    /// Sends one request with auth, the rate limit and `Retry-After` waits; answers of
    /// any status come back (the caller turns 4xx/5xx into errors).
    pub(super) async fn send(
        &self,
        prepared: &Prepared,
        integ: &Integration,
        conn: &Connection,
        out: Outgoing,
        deadline: Option<Instant>,
        name: &(dyn fmt::Display + Sync),
    ) -> Result<Answer, StepError> {
        // The connection's key, built only for the rate limit and a token to forget.
        let key = || -> Key { (integ.name.clone(), conn.owner.clone()) };
        let mut waits = 0;
        let mut reauthenticated = false;
        loop {
            if let Some(rl) = &integ.rate_limit {
                self.limits.acquire(&key(), rl.count, nanos(rl.per)).await;
            }
            let answer = self.exchange(prepared, integ, conn, &out, name).await?;
            let auth_kind = integ.auth.as_ref().map(|a| a.kind);
            if answer.status == 401
                && !reauthenticated
                && out.same_origin
                && matches!(auth_kind, Some(AuthKind::OAuth2) | Some(AuthKind::Session))
            {
                // An expired token: sign in or refresh again, once.
                self.forget_token(&key());
                reauthenticated = true;
                continue;
            }
            if matches!(answer.status, 429 | 503)
                && let Some(wait) = answer
                    .header("retry-after")
                    .and_then(|r| response::retry_after(&r))
            {
                let within_deadline = deadline.is_none_or(|d| Instant::now() + wait < d);
                if waits < self.config.max_retry_after_waits
                    && wait <= self.config.max_retry_after
                    && within_deadline
                {
                    waits += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Ok(answer);
        }
    }

    pub(super) async fn exchange(
        &self,
        prepared: &Prepared,
        integ: &Integration,
        conn: &Connection,
        out: &Outgoing,
        name: &(dyn fmt::Display + Sync),
    ) -> Result<Answer, StepError> {
        // Copied only when the authentication changes it (a key in the query, SigV4).
        let mut url = Cow::Borrowed(out.url.as_str());
        let mut headers = out.headers.clone();
        let body = out.body.clone().unwrap_or_default();
        if out.same_origin
            && let Some(auth) = &integ.auth
        {
            self.authenticate(
                prepared,
                integ,
                conn,
                auth.kind,
                &auth.args,
                out.method,
                &mut url,
                &mut headers,
                &body,
            )
            .await?;
        }
        let method = reqwest::Method::from_bytes(out.method.as_str().as_bytes())
            .unwrap_or(reqwest::Method::GET);
        let span = flow_runtime::trace::client_span(method.as_str(), url.as_ref());
        let mut rb = self
            .client
            .request(method, url.as_ref())
            .timeout(out.timeout);
        if let Some(parent) = flow_runtime::trace::traceparent(&span) {
            rb = rb.header("traceparent", parent);
        }
        for (k, v) in &headers {
            let Ok(mut value) = reqwest::header::HeaderValue::from_str(v.text()) else {
                return Err(StepError::validation(format!(
                    "{name}: the header `{k}` has a value that cannot be sent"
                )));
            };
            value.set_sensitive(matches!(v, Header::Secret(_)));
            rb = rb.header(k.as_str(), value);
        }
        if out.body.is_some() {
            rb = rb.body(body);
        }
        let started = Instant::now();
        let mut resp = rb.send().instrument(span.clone()).await.map_err(|e| {
            flow_runtime::trace::record_error(&span);
            transport_error(name, e, conn)
        })?;
        let status = resp.status().as_u16();
        flow_runtime::trace::record_status(&span, status);
        let final_url = resp.url().as_str().to_owned();
        // The headers are moved out of the response, not copied.
        let headers = std::mem::take(resp.headers_mut());
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(name, e, conn))?;
        Ok(Answer {
            status,
            headers,
            body: bytes,
            url: final_url,
            elapsed: started.elapsed(),
        })
    }
}
