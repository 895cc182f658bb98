//! Spans for distributed traces: a run, each step attempt and each outgoing HTTP call,
//! with the W3C `traceparent` carried across process boundaries.
//!
//! The spans are `tracing` spans under the target [`TARGET`]; nothing in the libraries
//! depends on an OpenTelemetry SDK. The `flow` binary installs an exporter (OTLP, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set) and the two conversions below with [`install`].
//! Without it the spans are disabled at their call sites and cost next to nothing, and no
//! `traceparent` is sent.

use std::sync::OnceLock;

use tracing::Span;

/// The target of every span Flow opens for traces; logs filter it out, the trace
/// exporter keeps only it.
pub const TARGET: &str = "flow::trace";

/// How spans meet the W3C trace context: `outgoing` gives the `traceparent` a call made
/// inside a span carries; `adopt` makes a remote caller's `traceparent` a span's parent.
#[derive(Clone, Copy)]
pub struct Propagation {
    pub outgoing: fn(&Span) -> Option<String>,
    pub adopt: fn(&Span, &str),
}

static PROPAGATION: OnceLock<Propagation> = OnceLock::new();

/// Installs the conversions, once per process (a second call changes nothing).
pub fn install(propagation: Propagation) {
    let _ = PROPAGATION.set(propagation);
}

/// Whether traces are exported: callers skip building spans' names when not.
pub fn enabled() -> bool {
    PROPAGATION.get().is_some()
}

/// The `traceparent` header value for a call made inside `span`, when traces are on.
pub fn traceparent(span: &Span) -> Option<String> {
    let p = PROPAGATION.get()?;
    if span.is_disabled() {
        return None;
    }
    (p.outgoing)(span)
}

/// Makes the remote parent in a `traceparent` header `span`'s parent (before the span is
/// first entered). A malformed value is ignored: the span stays a root.
pub fn adopt(span: &Span, traceparent: &str) {
    if let Some(p) = PROPAGATION.get()
        && !span.is_disabled()
    {
        (p.adopt)(span, traceparent);
    }
}

/// The span of one outgoing HTTP request. The URL is recorded without its query (a
/// credential may travel there).
pub fn client_span(method: &str, url: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    let without_query = url.split(['?', '#']).next().unwrap_or(url);
    tracing::info_span!(
        target: "flow::trace",
        "http",
        otel.name = %method,
        otel.kind = "client",
        otel.status_code = tracing::field::Empty,
        http.request.method = %method,
        url.full = %without_query,
        http.response.status_code = tracing::field::Empty,
    )
}

/// Records the answer's status on a client span (`ERROR` from 400 on, as OpenTelemetry's
/// HTTP conventions have it).
pub fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 400 {
        span.record("otel.status_code", "ERROR");
    }
}

/// Marks a span failed.
pub fn record_error(span: &Span) {
    span.record("otel.status_code", "ERROR");
}
