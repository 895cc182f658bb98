//! Authentication of a request: bearer, basic, API keys, AWS SigV4, OAuth2 refresh and
//! session logins, with their tokens cached per connection and forgotten on a 401.

use super::*;

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn authenticate(
        &self,
        prepared: &Prepared,
        integ: &Integration,
        conn: &Connection,
        kind: AuthKind,
        args: &[FormArg],
        method: Method,
        url: &mut Cow<'_, str>,
        headers: &mut Vec<(String, Header)>,
        body: &[u8],
    ) -> Result<(), StepError> {
        // Bearer and basic credentials depend only on the connection: derived once per
        // connection (a rotation makes a new one) unless the integration reads the clock.
        let cacheable =
            prepared.auth_from_connection && matches!(kind, AuthKind::Bearer | AuthKind::Basic);
        if cacheable && let Some(value) = conn.derived_credential(prepared.id) {
            set_header(headers, "authorization", Header::Secret(value));
            return Ok(());
        }
        let cctx = ConnContext { connection: conn };
        let p = &prepared.integration;
        let mut locals = p.new_locals();
        let auth_err = |what: &str, e: flow_expr::EvalError| {
            StepError::new(
                ErrorKind::Authentication,
                format!(
                    "{}: cannot build the {what} credentials: {} (connect with the secrets it reads)",
                    integ.name,
                    conn.mask(&e.message)
                ),
            )
        };
        let mut eval_arg = |e: Option<ExprId>, what: &str| -> Result<Value, StepError> {
            match e {
                Some(e) => p.eval(e, &mut locals, &cctx).map_err(|x| auth_err(what, x)),
                None => Ok(Value::Null),
            }
        };
        match kind {
            AuthKind::Bearer | AuthKind::Basic => {
                let value = if kind == AuthKind::Bearer {
                    let token = eval_arg(positional(args, 0), "bearer")?;
                    zeroize::Zeroizing::new(format!("Bearer {}", text(&token)))
                } else {
                    use base64::Engine as _;
                    let user = eval_arg(positional(args, 0), "basic")?;
                    let pass = eval_arg(positional(args, 1), "basic")?;
                    let pair = zeroize::Zeroizing::new(format!("{}:{}", text(&user), text(&pass)));
                    let encoded = zeroize::Zeroizing::new(
                        base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()),
                    );
                    zeroize::Zeroizing::new(format!("Basic {}", encoded.as_str()))
                };
                let value: Arc<str> = Arc::from(value.as_str());
                if cacheable {
                    conn.remember_derived_credential(prepared.id, Arc::clone(&value));
                }
                set_header(headers, "authorization", Header::Secret(value));
            }
            AuthKind::ApiKey => {
                let value = eval_arg(named(args, "value"), "api_key")?;
                if let Some(h) = named(args, "header") {
                    let h = text(&eval_arg(Some(h), "api_key")?);
                    set_header(
                        headers,
                        &h,
                        Header::Secret(Arc::from(text(&value).as_str())),
                    );
                } else if let Some(q) = named(args, "query") {
                    let q = text(&eval_arg(Some(q), "api_key")?);
                    request::append_query(url.to_mut(), &[(q, text(&value))]);
                }
            }
            AuthKind::OAuth2 => {
                let token = self.oauth_token(prepared, integ, conn, args).await?;
                set_header(
                    headers,
                    "authorization",
                    Header::Secret(Arc::from(
                        format!("Bearer {}", token.expose_secret()).as_str(),
                    )),
                );
            }
            AuthKind::Session => {
                let token = self.session_token(prepared, integ, conn, args).await?;
                let header = named(args, "header")
                    .and_then(|e| p.eval(e, &mut p.new_locals(), &cctx).ok())
                    .map(|v| text(&v))
                    .unwrap_or_else(|| "Authorization".to_owned());
                set_header(
                    headers,
                    &header,
                    Header::Secret(Arc::from(token.expose_secret())),
                );
            }
            AuthKind::AwsSigV4 => {
                let service = text(&eval_arg(named(args, "service"), "aws_sigv4")?);
                let region = text(&eval_arg(named(args, "region"), "aws_sigv4")?);
                let key_id = text(&eval_arg(named(args, "access_key_id"), "aws_sigv4")?);
                let secret = zeroize::Zeroizing::new(text(&eval_arg(
                    named(args, "secret_access_key"),
                    "aws_sigv4",
                )?));
                let session = conn.secret_text("session_token");
                let parsed = url::Url::parse(url.as_ref()).map_err(|_| {
                    StepError::validation(format!("{}: {url} is not a URL", integ.name))
                })?;
                let host = match parsed.port() {
                    Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
                    None => parsed.host_str().unwrap_or_default().to_owned(),
                };
                let query: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                let mut to_sign: Vec<(String, String)> = headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.text().to_owned()))
                    .collect();
                to_sign.push(("host".into(), host));
                let signed = sigv4::sign(
                    &sigv4::Request {
                        method: method.as_str(),
                        path: parsed.path(),
                        query: &query,
                        headers: &to_sign,
                        body,
                    },
                    &sigv4::Credentials {
                        access_key_id: &key_id,
                        secret_access_key: &secret,
                        session_token: session.as_deref(),
                        region: &region,
                        service: &service,
                    },
                    &sigv4::amz_now(),
                );
                let mut rebuilt = format!(
                    "{}://{}{}",
                    parsed.scheme(),
                    parsed[url::Position::BeforeHost..url::Position::AfterPort].to_owned(),
                    parsed.path()
                );
                if !signed.canonical_query.is_empty() {
                    rebuilt.push('?');
                    rebuilt.push_str(&signed.canonical_query);
                }
                *url = Cow::Owned(rebuilt);
                for (k, v) in signed.headers {
                    let h = if k == "authorization" || k == "x-amz-security-token" {
                        Header::Secret(Arc::from(v.as_str()))
                    } else {
                        Header::Plain(v)
                    };
                    set_header(headers, &k, h);
                }
            }
        }
        Ok(())
    }

    pub(super) fn forget_token(&self, key: &Key) {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    pub(super) fn cached_token(&self, key: &Key) -> Option<Arc<SecretString>> {
        let map = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key)
            .filter(|t| t.until.is_none_or(|u| Instant::now() < u))
            .map(|t| Arc::clone(&t.value))
    }

    pub(super) fn store_token(
        &self,
        key: &Key,
        value: String,
        ttl: Option<Duration>,
    ) -> Arc<SecretString> {
        let value = Arc::new(SecretString::from(value));
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                key.clone(),
                Token {
                    value: Arc::clone(&value),
                    until: ttl.map(|t| Instant::now() + t),
                },
            );
        value
    }

    /// The access token of an OAuth2 connection: the cached one, else a refresh with
    /// the stored refresh token (storing a rotated one), else a stored access token.
    pub(super) async fn oauth_token(
        &self,
        prepared: &Prepared,
        integ: &Integration,
        conn: &Connection,
        args: &[FormArg],
    ) -> Result<Arc<SecretString>, StepError> {
        let key: Key = (integ.name.clone(), conn.owner.clone());
        if let Some(t) = self.cached_token(&key) {
            return Ok(t);
        }
        let _guard = self.refreshing.lock().await;
        if let Some(t) = self.cached_token(&key) {
            return Ok(t);
        }
        let current = self
            .connections
            .load(&integ.name, Some(&conn.owner))
            .map_err(vault_error)?;
        let Some(refresh) = current.secret_text("refresh_token") else {
            return match current.secret_text("access_token") {
                Some(t) => Ok(self.store_token(&key, t.to_string(), None)),
                None => Err(StepError::new(
                    ErrorKind::Authentication,
                    format!(
                        "{}: the connection has no `refresh_token` (nor `access_token`) secret: connect again with `--secret refresh_token`",
                        integ.name
                    ),
                )),
            };
        };
        let cctx = ConnContext {
            connection: &current,
        };
        let p = &prepared.integration;
        let mut locals = p.new_locals();
        let mut arg = |n: &str| {
            named(args, n)
                .and_then(|e| p.eval(e, &mut locals, &cctx).ok())
                .map(|v| text(&v))
        };
        let token_url = arg("token_url").ok_or_else(|| {
            StepError::runtime(format!("{}: oauth2 needs `token_url`", integ.name))
        })?;
        let mut form = vec![
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), refresh.to_string()),
        ];
        for n in ["client_id", "client_secret", "scope"] {
            if let Some(v) = arg(n) {
                form.push((n.to_owned(), v));
            }
        }
        let token_url = match &current.settings.get("token_url") {
            Some(over) => (*over).clone(),
            None => token_url,
        };
        let body = zeroize::Zeroizing::new(request::form_encode(&form));
        for (_, v) in form.iter_mut() {
            zeroize::Zeroize::zeroize(v);
        }
        let resp = self
            .client
            .post(&token_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body.as_bytes().to_vec())
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|e| transport_error(&format!("{} token refresh", integ.name), e, &current))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&format!("{} token refresh", integ.name), e, &current))?;
        let json: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        let outcome = if status < 400 { "ok" } else { "authentication" };
        self.connections.audit(AuditEntry {
            integration: integ.name.as_str().into(),
            owner: conn.owner.clone(),
            run_id: None,
            workflow: None,
            step: None,
            purpose: "oauth2 refresh".into(),
            outcome,
        });
        let access = json.get("access_token").and_then(|v| v.as_str());
        let (Some(access), true) = (access, status < 400) else {
            let detail = response::error_message(&Value::from_json_dyn(&json))
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(StepError::new(
                ErrorKind::Authentication,
                format!(
                    "{}: refreshing the OAuth token failed: {}",
                    integ.name,
                    current.mask(&detail)
                ),
            )
            .with_status(status));
        };
        let ttl = json
            .get("expires_in")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .map(|s| Duration::from_secs(s.saturating_sub(60).max(1)));
        let mut changes = vec![("access_token".to_owned(), access.to_owned())];
        if let Some(rotated) = json.get("refresh_token").and_then(|v| v.as_str()) {
            changes.push(("refresh_token".to_owned(), rotated.to_owned()));
        }
        self.connections
            .update_secrets(&integ.name, &conn.owner, changes)
            .map_err(vault_error)?;
        Ok(self.store_token(&key, access.to_owned(), ttl))
    }

    /// The session token of a `session(...)` connection: the cached one, else a sign-in.
    pub(super) async fn session_token(
        &self,
        prepared: &Prepared,
        integ: &Integration,
        conn: &Connection,
        args: &[FormArg],
    ) -> Result<Arc<SecretString>, StepError> {
        let key: Key = (integ.name.clone(), conn.owner.clone());
        if let Some(t) = self.cached_token(&key) {
            return Ok(t);
        }
        let _guard = self.refreshing.lock().await;
        if let Some(t) = self.cached_token(&key) {
            return Ok(t);
        }
        let cctx = ConnContext { connection: conn };
        let p = &prepared.integration;
        let mut locals = p.new_locals();
        let fail = |what: &str, m: String| {
            StepError::new(
                ErrorKind::Authentication,
                format!(
                    "{}: signing in failed: {what}: {}",
                    integ.name,
                    conn.mask(&m)
                ),
            )
        };
        let mut sign_in_url = named(args, "url")
            .map(|e| p.eval(e, &mut locals, &cctx).map(|v| text(&v)))
            .transpose()
            .map_err(|e| fail("url", e.message))?
            .unwrap_or_default();
        // With a base URL override (a test server, a proxy), sign in on the same host.
        if let (Some(over), Some(base)) = (&conn.base_url, integ.base_url)
            && let Ok(Value::String(declared)) = p.eval(base, &mut locals, &cctx)
            && let (Ok(d), Ok(o), Ok(s)) = (
                url::Url::parse(&declared),
                url::Url::parse(over),
                url::Url::parse(&sign_in_url),
            )
            && s.origin() == d.origin()
        {
            let mut moved = o.clone();
            moved.set_path(s.path());
            sign_in_url = moved.to_string();
        }
        let body = match named(args, "body") {
            Some(e) => p
                .eval_in(Mode::Request, e, &mut locals, &cctx)
                .map_err(|e| fail("body", e.message))?,
            None => Value::Null,
        };
        let bytes = serde_json::to_vec(&eval::wire_json(&body)).unwrap_or_default();
        let resp = self
            .client
            .post(&sign_in_url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(bytes)
            .timeout(self.config.request_timeout)
            .send()
            .await
            .map_err(|e| transport_error(&format!("{} sign-in", integ.name), e, conn))?;
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let raw = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&format!("{} sign-in", integ.name), e, conn))?;
        let (decoded, _) = response::decode(response::format_of(ct.as_deref(), &raw), &raw);
        self.connections.audit(AuditEntry {
            integration: integ.name.as_str().into(),
            owner: conn.owner.clone(),
            run_id: None,
            workflow: None,
            step: None,
            purpose: "session sign-in".into(),
            outcome: if status < 400 { "ok" } else { "authentication" },
        });
        if status >= 400 {
            let m = response::error_message(&decoded).unwrap_or_else(|| format!("HTTP {status}"));
            return Err(fail("the server answered", m).with_status(status));
        }
        let answer = Answer {
            status,
            headers: ct
                .and_then(|c| reqwest::header::HeaderValue::from_str(&c).ok())
                .map(|c| {
                    let mut h = reqwest::header::HeaderMap::new();
                    h.insert(reqwest::header::CONTENT_TYPE, c);
                    h
                })
                .unwrap_or_default(),
            body: bytes::Bytes::new(),
            url: sign_in_url,
            elapsed: Duration::ZERO,
        };
        let auth = integ.auth.as_ref();
        if let Some(slot) = auth
            .and_then(|a| a.response)
            .and_then(|l| locals.get_mut(l.0 as usize))
        {
            *slot = response_record(&answer, decoded);
        }
        let token = named(args, "token")
            .map(|e| p.eval(e, &mut locals, &cctx))
            .transpose()
            .map_err(|e| fail("token", e.message))?
            .map(|v| text(&v))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("token", "the sign-in answer has no token".into()))?;
        let ttl = named(args, "ttl")
            .and_then(|e| p.eval(e, &mut locals, &cctx).ok())
            .and_then(|v| match v {
                Value::Duration(d) => Some(nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))),
                _ => None,
            });
        Ok(self.store_token(&key, token, ttl))
    }
}
