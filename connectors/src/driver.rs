//! The declarative HTTP driver: executes an action of an `integration` declaration as
//! one attempt (the executor owns timeouts, retries and journaling). It evaluates the
//! request clauses against the connection, authenticates, honours the rate limit, the
//! circuit breaker and `Retry-After`, decodes each answer, applies `error_when`, follows
//! pagination, and checks the result against the declared type.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use flow_expr::{Map, Record, Value};
use flow_ir::expr::ExprId;
use flow_ir::program::{
    Action, AuthKind, ConstOr, FormArg, Integration, Method, PaginateKind, Program,
};
use flow_ir::types::Type;
use flow_runtime::error::kind_for_status;
use flow_runtime::{ActionCall, CallContext, Connector, ErrorKind, InvokeFuture, StepError};
use secrecy::{ExposeSecret, SecretString};

use crate::conform::conform;
use crate::eval::{self, ConnContext, Mode, text};
use crate::policy::{BreakerConfig, Breakers, Key, Limits, ResultCache, State};
use crate::request::{self, FormStyle};
use crate::response::{self, Format};
use crate::shape::{self, Shape};
use crate::sigv4;
use crate::source::Connections;
use crate::vault::{AuditEntry, BreakerRecord, Connection, VaultError, now_ms};

/// Tunables of the driver.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Most pages one paginated call fetches before failing.
    pub page_cap: usize,
    pub breaker: BreakerConfig,
    /// The longest `Retry-After` waited out inside one attempt; a longer one is handed
    /// to the executor's retry policy.
    pub max_retry_after: Duration,
    /// Most `Retry-After` waits inside one attempt.
    pub max_retry_after_waits: u32,
    /// One request's timeout when neither the action nor the step gives one.
    pub request_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            page_cap: 1000,
            breaker: BreakerConfig::default(),
            max_retry_after: Duration::from_secs(60),
            max_retry_after_waits: 3,
            request_timeout: Duration::from_secs(100),
        }
    }
}

/// An integration's arenas, prepared once per compiled program.
struct Prepared {
    program: Weak<Program>,
    integration: flow_expr::Program,
    actions: Vec<flow_expr::Program>,
    /// Per action, whether its clauses read `response.headers` (otherwise the answer's
    /// headers are not copied into the `response` value).
    reads_headers: Vec<bool>,
    /// The integration's name, shared by the audit entries.
    name: Arc<str>,
    /// Per action, `integration.action`: the purpose its audit entries give.
    purposes: Vec<Arc<str>>,
    /// Distinguishes this preparation from every other in the process (connections key
    /// the credentials derived for it by this).
    id: u64,
    /// Whether the integration's expressions are functions of the connection alone (none
    /// reads the clock), so derived credentials may be kept.
    auth_from_connection: bool,
    /// Per action whose result is the answer's body (and that has no `error_when` and
    /// no pagination): its declared type, ready to decode a JSON answer into directly.
    body_shapes: Vec<Option<Shape>>,
}

#[derive(Clone)]
struct Token {
    value: Arc<SecretString>,
    until: Option<Instant>,
}

/// The connector for declared integrations.
pub struct Driver {
    client: reqwest::Client,
    connections: Arc<dyn Connections>,
    prepared: RwLock<HashMap<(usize, u32), Arc<Prepared>>>,
    limits: Limits,
    breakers: Breakers,
    cache: ResultCache,
    tokens: Mutex<HashMap<Key, Token>>,
    /// Serialises token refreshes per connection, so concurrent calls refresh once.
    refreshing: tokio::sync::Mutex<()>,
    config: DriverConfig,
}

/// One HTTP answer.
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: bytes::Bytes,
    pub url: String,
    pub elapsed: Duration,
}

impl Answer {
    /// A header's value; a header sent several times gives its values joined with `, `
    /// (RFC 9110, section 5.3). Bytes that are not UTF-8 are replaced.
    pub fn header(&self, name: &str) -> Option<Cow<'_, str>> {
        header_text(&self.headers, name)
    }

    /// Every header once, by lower-case name, in the order they first came.
    fn header_pairs(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        self.headers
            .keys()
            .filter_map(|k| Some((k.as_str(), header_text(&self.headers, k.as_str())?)))
    }
}

fn header_text<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<Cow<'a, str>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    // Visible ASCII, the usual case, is read in place; anything else leniently.
    let first = match first.to_str() {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(first.as_bytes()),
    };
    let mut rest = values.peekable();
    if rest.peek().is_none() {
        return Some(first);
    }
    let mut joined = first.into_owned();
    for v in rest {
        joined.push_str(", ");
        joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
    }
    Some(Cow::Owned(joined))
}

/// A request before authentication.
struct Outgoing {
    method: Method,
    url: String,
    headers: Vec<(String, Header)>,
    body: Option<Vec<u8>>,
    /// Whether the URL is on `base_url`'s origin (auth and integration headers go only there).
    same_origin: bool,
    timeout: Duration,
}

#[derive(Clone)]
enum Header {
    Plain(String),
    Secret(Arc<str>),
}

impl Header {
    fn of(v: &Value) -> Header {
        match v {
            Value::Secret(s) => Header::Secret(Arc::clone(s)),
            other => Header::Plain(text(other)),
        }
    }

    fn text(&self) -> &str {
        match self {
            Header::Plain(s) => s,
            Header::Secret(s) => s,
        }
    }
}

fn set_header(headers: &mut Vec<(String, Header)>, name: &str, value: Header) {
    let lower = name.to_ascii_lowercase();
    headers.retain(|(k, _)| *k != lower);
    headers.push((lower, value));
}

/// `integration.action`, formatted only when a message needs it.
struct QualifiedName<'a>(&'a str, &'a str);

impl fmt::Display for QualifiedName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// The origin of an absolute URL (`scheme://host:port`), read without a full parse or
/// an allocation, as it is checked on every request. Two origins are equal when their
/// schemes and hosts are equal ignoring ASCII case and their ports are equal, the
/// scheme's default port standing in for a missing one.
#[derive(Debug, Clone, Copy)]
struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: &'a str,
}

impl PartialEq for Origin<'_> {
    fn eq(&self, other: &Origin<'_>) -> bool {
        self.scheme.eq_ignore_ascii_case(other.scheme)
            && self.host.eq_ignore_ascii_case(other.host)
            && self.port == other.port
    }
}

/// The origin of an absolute URL; `None` for a relative one. A byte scan: it runs for
/// every call.
fn origin(url: &str) -> Option<Origin<'_>> {
    let bytes = url.as_bytes();
    // A scheme is a letter, then letters, digits, `+`, `-` and `.` (RFC 3986).
    let scheme_end = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))?;
    if scheme_end == 0 || !bytes[0].is_ascii_alphabetic() || !url[scheme_end..].starts_with("://") {
        return None;
    }
    let scheme = &url[..scheme_end];
    let rest = &url[scheme_end + 3..];
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = match authority.bytes().rposition(|b| b == b'@') {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    if host_port.is_empty() {
        return None;
    }
    let explicit = host_port
        .bytes()
        .rposition(|b| b == b':')
        .map(|colon| (&host_port[..colon], &host_port[colon + 1..]))
        .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let (host, port) = match explicit {
        Some((host, port)) => (host, port),
        None if scheme.eq_ignore_ascii_case("https") => (host_port, "443"),
        None if scheme.eq_ignore_ascii_case("http") => (host_port, "80"),
        None => (host_port, ""),
    };
    Some(Origin { scheme, host, port })
}

fn nanos(d: i64) -> Duration {
    Duration::from_nanos(u64::try_from(d).unwrap_or(0))
}

fn positional(args: &[FormArg], i: usize) -> Option<ExprId> {
    args.iter()
        .filter(|a| a.name.is_none())
        .nth(i)
        .map(|a| a.value)
}

fn named(args: &[FormArg], name: &str) -> Option<ExprId> {
    args.iter()
        .find(|a| a.name.as_deref() == Some(name))
        .map(|a| a.value)
}

fn vault_error(e: VaultError) -> StepError {
    match e {
        VaultError::NoConnection { .. }
        | VaultError::Inactive { .. }
        | VaultError::Ambiguous { .. } => StepError::new(ErrorKind::Authentication, e.to_string()),
        other => StepError::runtime(other.to_string()),
    }
}

/// Whether a failure says something about the service's health (and so counts for the
/// circuit breaker): no answer, a timeout, a 5xx or a 429.
fn counts_against_service(e: &StepError) -> bool {
    match e.status {
        Some(s) => s >= 500 || s == 429,
        None => matches!(e.kind, ErrorKind::Communication | ErrorKind::Timeout),
    }
}

impl Driver {
    pub fn new(connections: Arc<dyn Connections>, config: DriverConfig) -> Driver {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .user_agent(concat!("flow/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Driver {
            client,
            connections,
            prepared: RwLock::new(HashMap::new()),
            limits: Limits::default(),
            breakers: Breakers::new(config.breaker),
            cache: ResultCache::default(),
            tokens: Mutex::new(HashMap::new()),
            refreshing: tokio::sync::Mutex::new(()),
            config,
        }
    }

    pub fn connections(&self) -> &Arc<dyn Connections> {
        &self.connections
    }

    /// The circuit state of a connection, as this process sees it.
    pub fn circuit(&self, integration: &str, owner: &str) -> State {
        self.breakers
            .state(&(integration.to_owned(), owner.to_owned()))
    }

    fn prepare(&self, program: &Arc<Program>, integration: u32) -> Option<Arc<Prepared>> {
        let key = (Arc::as_ptr(program) as usize, integration);
        if let Ok(map) = self.prepared.read() {
            if let Some(p) = map.get(&key) {
                if p.program
                    .upgrade()
                    .is_some_and(|q| Arc::ptr_eq(&q, program))
                {
                    return Some(Arc::clone(p));
                }
            }
        }
        let integ = program.integrations.get(integration as usize)?;
        let prepared = Arc::new(prepare_integration(integ, Arc::downgrade(program)));
        if let Ok(mut map) = self.prepared.write() {
            map.retain(|_, p| p.program.strong_count() > 0);
            map.insert(key, Arc::clone(&prepared));
        }
        Some(prepared)
    }

    /// Performs one attempt of an action call.
    pub async fn call(&self, call: &ActionCall<'_>, ctx: &CallContext) -> Result<Value, StepError> {
        let integ = call.integration;
        let conn = self
            .connections
            .load(&integ.name, ctx.owner.as_deref())
            .map_err(vault_error)?;
        // The breaker's key and thresholds, needed only once a breaker exists.
        let key = || -> Key { (integ.name.clone(), conn.owner.clone()) };
        let prepared = self
            .prepare(call.program, call.action_ref.integration.0)
            .ok_or_else(|| {
                StepError::runtime("internal error: the action is not in the program")
            })?;
        let cache_key = (ctx.cache.is_some() && call.action.idempotent).then(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&integ.name, &conn.owner, &call.action.name).hash(&mut h);
            for a in call.args {
                a.to_json().to_string().hash(&mut h);
            }
            h.finish()
        });
        if let Some(k) = cache_key {
            if let Some(v) = self.cache.get(k) {
                return Ok(v);
            }
        }
        let breaker = || self.breaker_config(&conn);
        // While no connection has a breaker, every call is admitted.
        let admitted = if self.breakers.is_idle() {
            Ok(None)
        } else {
            self.breakers.admit_with(&key(), breaker())
        };
        match admitted {
            Ok(Some(t)) => self.record_transition(&key(), t.to.as_str(), t.failures),
            Ok(None) => {}
            Err(refused) => {
                return Err(StepError::communication(format!(
                    "the circuit for {} ({}) is open after repeated failures; the next trial call is in {}",
                    integ.name,
                    conn.owner,
                    flow_runtime::format_duration(refused.retry_in)
                ))
                .with_retry_after(refused.retry_in));
            }
        }
        let action_index = call.action_ref.action as usize;
        let result = self
            .execute(
                &prepared,
                integ,
                action_index,
                call.action,
                call.args,
                &conn,
                ctx,
                false,
            )
            .await;
        let failed = result.as_ref().err().is_some_and(counts_against_service);
        // A success changes nothing while no connection has a breaker.
        if (failed || !self.breakers.is_idle())
            && let Some(t) = self.breakers.report_with(&key(), failed, breaker())
        {
            self.record_transition(&key(), t.to.as_str(), t.failures);
        }
        let purpose = match prepared.purposes.get(action_index) {
            Some(p) => Arc::clone(p),
            None => Arc::from(call.qualified_name()),
        };
        self.connections.audit(AuditEntry {
            integration: Arc::clone(&prepared.name),
            owner: conn.owner.clone(),
            run_id: Some(Arc::clone(&ctx.run_id)),
            workflow: Some(Arc::clone(&ctx.workflow)),
            step: Some(ctx.step.clone()),
            purpose,
            outcome: match &result {
                Ok(_) => "ok",
                Err(e) => e.kind.as_str(),
            },
        });
        if let (Some(k), Some(ttl), Ok(v)) = (cache_key, ctx.cache, &result) {
            self.cache.put(k, v.clone(), ttl);
        }
        result
    }

    /// The circuit breaker's thresholds for a connection: the driver's, unless the
    /// connection sets `breaker_failures` (consecutive failures that open the circuit)
    /// or `breaker_open_for` (how long it stays open, a duration such as `30s`).
    fn breaker_config(&self, conn: &Connection) -> BreakerConfig {
        let mut config = self.config.breaker;
        if let Some(n) = conn
            .settings
            .get("breaker_failures")
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            config.failure_threshold = n.max(1);
        }
        if let Some(d) = conn
            .settings
            .get("breaker_open_for")
            .and_then(|v| flow_expr::Duration::parse(v.trim()).ok())
        {
            config.open_for = nanos(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        }
        config
    }

    fn record_transition(&self, key: &Key, state: &str, failures: u32) {
        self.connections.record_breaker(
            &key.0,
            &key.1,
            BreakerRecord {
                state: state.to_owned(),
                since: now_ms(),
                failures,
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
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
            let v = eval::walk(program, q, &mut locals, &cctx, Mode::Request)
                .map_err(|e| fail_expr("query", e))?;
            request::query_pairs(&v, &mut query);
        }
        let mut headers: Vec<(String, Header)> = Vec::new();
        if same_origin {
            if let Some(h) = integ.headers {
                let mut ilocals = prepared.integration.new_locals();
                let v = eval::walk(&prepared.integration, h, &mut ilocals, &cctx, Mode::Request)
                    .map_err(|e| fail_expr("headers", e))?;
                for (k, v) in eval::fields(&v).unwrap_or_default() {
                    set_header(&mut headers, &k, Header::of(&v));
                }
            }
        }
        if let Some(h) = action.headers {
            let v = eval::walk(program, h, &mut locals, &cctx, Mode::Request)
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
                eval::walk(program, b.value, &mut locals, &cctx, Mode::Request)
                    .map_err(|e| fail_expr("body", e))?,
            )),
            None => None,
        };
        if request.method == Method::Post {
            if let Some(h) = self.integration_setting(prepared, integ, "idempotency_header", conn) {
                let key = ctx
                    .idempotency_key
                    .clone()
                    .unwrap_or_else(|| format!("flow-{}-{}", ctx.run_id, ctx.step));
                set_header(&mut headers, &h, Header::Plain(key));
            }
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
                    let v = eval::walk(program, h, &mut locals, &cctx, Mode::Request)
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
            if answer.status < 400 && format == Format::Json {
                if let Some(Some(shape)) = prepared.body_shapes.get(action_index) {
                    // The answer as the declared type in one pass; anything the direct
                    // decoding does not take goes the general way below.
                    if let Some(v) = shape::decode(shape, &answer.body) {
                        return Ok(v);
                    }
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
                Some(r) => eval::walk(program, r, &mut locals, &cctx, Mode::Result { xml })
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
                        .map(|e| eval::walk(program, e, &mut locals, &cctx, Mode::Result { xml }))
                        .transpose()
                        .map_err(|e| fail_expr("paginate", e))?
                        .unwrap_or(Value::Null);
                    let cursor = text(&next);
                    if eval::is_null(&next) || cursor.is_empty() || !more {
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
                            let v =
                                eval::walk(program, e, &mut locals, &cctx, Mode::Result { xml })
                                    .map_err(|e| fail_expr("paginate", e))?;
                            (!eval::is_null(&v))
                                .then(|| text(&v))
                                .filter(|s| !s.is_empty())
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

    fn text_arg(
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

    fn base_url<'c>(
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

    fn integration_setting(
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
    async fn send(
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
            if matches!(answer.status, 429 | 503) {
                if let Some(wait) = answer
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
            }
            return Ok(answer);
        }
    }

    async fn exchange(
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
        if out.same_origin {
            if let Some(auth) = &integ.auth {
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
        }
        let method = reqwest::Method::from_bytes(out.method.as_str().as_bytes())
            .unwrap_or(reqwest::Method::GET);
        let mut rb = self
            .client
            .request(method, url.as_ref())
            .timeout(out.timeout);
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
        let mut resp = rb
            .send()
            .await
            .map_err(|e| transport_error(name, e, conn))?;
        let status = resp.status().as_u16();
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

    #[allow(clippy::too_many_arguments)]
    async fn authenticate(
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

    fn forget_token(&self, key: &Key) {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    fn cached_token(&self, key: &Key) -> Option<Arc<SecretString>> {
        let map = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key)
            .filter(|t| t.until.is_none_or(|u| Instant::now() < u))
            .map(|t| Arc::clone(&t.value))
    }

    fn store_token(&self, key: &Key, value: String, ttl: Option<Duration>) -> Arc<SecretString> {
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
    async fn oauth_token(
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
    async fn session_token(
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
        if let (Some(over), Some(base)) = (&conn.base_url, integ.base_url) {
            if let Ok(Value::String(declared)) = p.eval(base, &mut locals, &cctx) {
                if let (Ok(d), Ok(o), Ok(s)) = (
                    url::Url::parse(&declared),
                    url::Url::parse(over),
                    url::Url::parse(&sign_in_url),
                ) {
                    if s.origin() == d.origin() {
                        let mut moved = o.clone();
                        moved.set_path(s.path());
                        sign_in_url = moved.to_string();
                    }
                }
            }
        }
        let body = match named(args, "body") {
            Some(e) => eval::walk(p, e, &mut locals, &cctx, Mode::Request)
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
        let prepared = self
            .prepare(program, integration)
            .ok_or_else(|| StepError::runtime("internal error: unknown integration"))?;
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
                if let Ok(v) = eval::walk(
                    &prepared.integration,
                    hs,
                    &mut ilocals,
                    &ConnContext { connection: conn },
                    Mode::Request,
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

fn prepare_integration(integ: &Integration, program: Weak<Program>) -> Prepared {
    Prepared {
        program,
        integration: flow_expr::Program::new(integ.exprs.clone()),
        actions: integ
            .actions
            .iter()
            .map(|a| flow_expr::Program::new(a.exprs.clone()))
            .collect(),
        reads_headers: integ
            .actions
            .iter()
            .map(|a| reads_headers(&a.exprs))
            .collect(),
        body_shapes: integ.actions.iter().map(body_shape).collect(),
        id: {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        },
        auth_from_connection: !integ
            .exprs
            .nodes
            .iter()
            .any(|n| matches!(n.kind, flow_ir::expr::NodeKind::Now)),
        name: Arc::from(integ.name.as_str()),
        purposes: integ
            .actions
            .iter()
            .map(|a| Arc::from(format!("{}.{}", integ.name, a.name)))
            .collect(),
    }
}

/// A dotted field set in a record or map body (a cursor sent in the body).
fn with_body_field(body: &Value, dotted: &str, value: Value) -> Value {
    let (head, rest) = match dotted.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (dotted, None),
    };
    let mut fields = eval::fields(body).unwrap_or_default();
    let inner = match rest {
        Some(r) => {
            let existing = fields
                .iter()
                .find(|(k, _)| k == head)
                .map(|(_, v)| v.clone())
                .unwrap_or(Value::Null);
            with_body_field(&existing, r, value)
        }
        None => value,
    };
    fields.retain(|(k, _)| k != head);
    fields.push((head.to_owned(), inner));
    Value::Record(Arc::new(Record::new(
        fields
            .into_iter()
            .map(|(k, v)| (Arc::from(k.as_str()), v))
            .collect(),
    )))
}

/// The shape to decode an action's JSON answers into directly, when its result is the
/// answer's body converted to the declared type (`result response.body`, or no `result`)
/// and no other clause reads the answer.
fn body_shape(action: &Action) -> Option<Shape> {
    use flow_ir::expr::NodeKind;
    if action.paginate.is_some() || !action.error_when.is_empty() {
        return None;
    }
    if let Some(result) = action.result_expr {
        let node = |id: ExprId| action.exprs.nodes.get(id.0 as usize).map(|n| &n.kind);
        let Some(NodeKind::Convert { value, to }) = node(result) else {
            return None;
        };
        let Some(NodeKind::Field {
            target,
            field,
            null_safe: false,
            ..
        }) = node(*value)
        else {
            return None;
        };
        if *to != action.result
            || field != "body"
            || !matches!(node(*target), Some(NodeKind::Local(l)) if *l == action.response)
        {
            return None;
        }
    }
    Some(Shape::of(&action.result))
}

/// Whether an action's clauses read `response.headers` (building the map costs an
/// allocation per header, on every call).
fn reads_headers(arena: &flow_ir::expr::ExprArena) -> bool {
    arena.nodes.iter().any(|n| {
        matches!(&n.kind, flow_ir::expr::NodeKind::Field { field, .. } if field == "headers")
            || matches!(&n.kind, flow_ir::expr::NodeKind::OptionalField { field, .. } if field == "headers")
            || matches!(&n.kind, flow_ir::expr::NodeKind::Has { field, .. } if field == "headers")
    })
}

/// The field names of the `response` record, shared by every answer.
fn response_fields() -> &'static (Arc<str>, Arc<str>, Arc<str>) {
    static FIELDS: std::sync::OnceLock<(Arc<str>, Arc<str>, Arc<str>)> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| (Arc::from("body"), Arc::from("headers"), Arc::from("status")))
}

/// `{ body, headers: {}, status }`, for actions that never read the headers.
fn response_record_without_headers(answer: &Answer, body: Value) -> Value {
    static NO_HEADERS: std::sync::OnceLock<Arc<Map>> = std::sync::OnceLock::new();
    let no_headers = NO_HEADERS.get_or_init(|| Arc::new(Map::default()));
    let (b, h, s) = response_fields();
    Value::Record(Arc::new(Record {
        fields: vec![
            (Arc::clone(b), body),
            (Arc::clone(h), Value::Map(Arc::clone(no_headers))),
            (Arc::clone(s), Value::Int(i64::from(answer.status))),
        ],
    }))
}

/// The `response` value: `{ body, headers, status }`.
fn response_record(answer: &Answer, body: Value) -> Value {
    let headers: Vec<(Arc<str>, Value)> = answer
        .header_pairs()
        .map(|(k, v)| (Arc::from(k), Value::String(Arc::from(v.as_ref()))))
        .collect();
    let (b, h, s) = response_fields();
    Value::Record(Arc::new(Record {
        fields: vec![
            (Arc::clone(b), body),
            (
                Arc::clone(h),
                Value::Map(Arc::new(Map::from_string_entries(headers))),
            ),
            (Arc::clone(s), Value::Int(i64::from(answer.status))),
        ],
    }))
}

fn http_error(
    name: &(dyn fmt::Display + Sync),
    answer: &Answer,
    body: &Value,
    conn: &Connection,
) -> StepError {
    let api = response::error_message(body)
        .map(|m| format!(": {}", conn.mask(&m)))
        .unwrap_or_default();
    let mut e = StepError::new(
        kind_for_status(answer.status),
        format!("{name}: HTTP {}{api}", answer.status),
    )
    .with_status(answer.status);
    let details = body.to_json();
    let text = details.to_string();
    if text.len() <= 4096 {
        let masked = conn.mask(&text);
        e = e.with_details(serde_json::json!({
            "body": serde_json::from_str::<serde_json::Value>(&masked).unwrap_or(serde_json::Value::String(masked)),
        }));
    }
    if matches!(answer.status, 429 | 503) {
        if let Some(wait) = answer
            .header("retry-after")
            .and_then(|r| response::retry_after(&r))
        {
            e = e.with_retry_after(wait);
        }
    }
    e
}

fn transport_error(
    name: &(dyn fmt::Display + Sync),
    e: reqwest::Error,
    conn: &Connection,
) -> StepError {
    let timed_out = e.is_timeout();
    // Without the URL: a query-string API key must not reach a message.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    let message = conn.mask(&message);
    if timed_out {
        StepError::timeout(format!("{name}: no answer in time: {message}"))
    } else {
        StepError::communication(format!("{name}: {message}"))
    }
}

impl Connector for Driver {
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, ctx: &'a CallContext) -> InvokeFuture<'a> {
        Box::pin(self.call(call, ctx))
    }
}

/// The declared result type's element, for paginated actions.
pub fn page_item(ty: &Type) -> &Type {
    match ty {
        Type::List(inner) => inner,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin("https://API.example.com/v2?x=1"),
            origin("HTTPS://api.example.com:443")
        );
        assert_eq!(
            origin("https://api.example.com:443"),
            origin("https://api.example.com/other")
        );
        assert_ne!(
            origin("http://api.example.com/"),
            origin("https://api.example.com/")
        );
        assert_ne!(
            origin("https://api.example.com.evil.net/"),
            origin("https://api.example.com/")
        );
        let local = origin("http://127.0.0.1:8080/x").expect("an origin");
        assert_eq!(
            (local.scheme, local.host, local.port),
            ("http", "127.0.0.1", "8080")
        );
        assert_ne!(
            origin("http://127.0.0.1:8080/x"),
            origin("http://127.0.0.1/x")
        );
        let with_user = origin("https://user:pw@h.example/").expect("an origin");
        assert_eq!((with_user.host, with_user.port), ("h.example", "443"));
        assert_eq!(origin("/relative"), None);
        assert_eq!(origin("/relative?next=https://api.example.com/"), None);
        assert_eq!(origin("://api.example.com/"), None);
        let ipv6 = origin("http://[::1]:8080/x").expect("an origin");
        assert_eq!((ipv6.host, ipv6.port), ("[::1]", "8080"));
        let ipv6 = origin("https://[::1]/x").expect("an origin");
        assert_eq!((ipv6.host, ipv6.port), ("[::1]", "443"));
    }
}
