//! The declarative HTTP driver: executes an action of an `integration` declaration as
//! one attempt (the executor owns timeouts, retries and journaling). It evaluates the
//! request clauses against the connection, authenticates, honours the rate limit, the
//! circuit breaker and `Retry-After`, decodes each answer, applies `error_when`, follows
//! pagination, and checks the result against the declared type.

mod auth;
mod execute;
mod probe;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flow_expr::{Map, Record, Value};
use flow_ir::expr::ExprId;
use flow_ir::program::{
    Action, AuthKind, ConstOr, FormArg, Integration, Method, PaginateKind, Program,
};
use flow_ir::types::Type;
use flow_runtime::PreparedIntegration;
use flow_runtime::error::kind_for_status;
use flow_runtime::{ActionCall, CallContext, Connector, ErrorKind, InvokeFuture, StepError};
use secrecy::{ExposeSecret, SecretString};

use crate::conform::conform;
use crate::eval::{self, ConnContext, Mode, answer_mode, text};
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

/// What the driver derives from an integration, once per loaded program (kept in the
/// runtime's [`PreparedIntegration::derived`] slot, beside the prepared arenas it shares).
struct Prepared {
    integration: Arc<flow_expr::Program>,
    actions: Vec<Arc<flow_expr::Program>>,
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

    /// Performs one attempt of an action call.
    pub async fn call(&self, call: &ActionCall<'_>, ctx: &CallContext) -> Result<Value, StepError> {
        let integ = call.integration;
        let conn = self
            .connections
            .load(&integ.name, ctx.owner.as_deref())
            .map_err(vault_error)?;
        // The breaker's key and thresholds, needed only once a breaker exists.
        let key = || -> Key { (integ.name.clone(), conn.owner.clone()) };
        let fresh;
        let prepared = match call
            .prepared
            .derived(|| prepare_integration(integ, call.prepared))
        {
            Some(p) => p,
            None => {
                fresh = prepare_integration(integ, call.prepared);
                &fresh
            }
        };
        let cache_key = (ctx.cache.is_some() && call.action.idempotent).then(|| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&integ.name, &conn.owner, &call.action.name).hash(&mut h);
            for a in call.args {
                a.to_json().to_string().hash(&mut h);
            }
            h.finish()
        });
        if let Some(k) = cache_key
            && let Some(v) = self.cache.get(k)
        {
            return Ok(v);
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
                prepared,
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
}

fn prepare_integration(integ: &Integration, exprs: &PreparedIntegration) -> Prepared {
    Prepared {
        integration: Arc::clone(&exprs.exprs),
        actions: exprs.actions.clone(),
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
    if matches!(answer.status, 429 | 503)
        && let Some(wait) = answer
            .header("retry-after")
            .and_then(|r| response::retry_after(&r))
    {
        e = e.with_retry_after(wait);
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
    let message = conn.mask(&flow_runtime::error::with_causes(&e));
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
