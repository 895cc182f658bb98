//! What `flow` reports about itself: its log on standard error and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, traces
//! exported over OTLP (HTTP, protobuf): a span per API request or webhook delivery, per
//! run, per step attempt and per outgoing HTTP call, with the W3C `traceparent` taken
//! from callers and sent on calls ([`flow_runtime::trace`] opens the spans).

use std::collections::HashMap;

use super::output::ColorChoice;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use super::{Command, serve};

/// Flushes the spans not yet exported when the command ends.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: traces not all exported: {e}");
        }
    }
}

/// The log goes to standard error: warnings and errors by default (`flow serve`: from
/// `info`), `FLOW_LOG=info|debug|trace|error|off` to change that; coloured only on a
/// terminal; JSON with `flow serve --log-format json`. Traces are set up when the OTLP
/// environment asks for them.
pub fn init(color: ColorChoice, command: &Command) -> Telemetry {
    let (default, json) = match command {
        Command::Serve(s) => (LevelFilter::INFO, s.log_format == serve::LogFormat::Json),
        _ => (LevelFilter::WARN, false),
    };
    let level = match std::env::var("FLOW_LOG").as_deref().map(str::trim) {
        Ok("off") => LevelFilter::OFF,
        Ok("error") => LevelFilter::ERROR,
        Ok("info") => LevelFilter::INFO,
        Ok("debug") => LevelFilter::DEBUG,
        Ok("trace") => LevelFilter::TRACE,
        Ok("warn") => LevelFilter::WARN,
        _ => default,
    };
    // The trace spans are for the exporter; the log leaves them out.
    let logged = Targets::new()
        .with_target(flow_runtime::trace::TARGET, LevelFilter::OFF)
        .with_default(level);
    let ansi = color.enabled(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let log = if json {
        fmt::layer().json().with_writer(std::io::stderr).boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
            .without_time()
            .boxed()
    }
    .with_filter(logged);
    let provider = match tracer_provider() {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            eprintln!("warning: traces are not exported: {e}");
            None
        }
        None => None,
    };
    let traces = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("flow"))
            .with_filter(Targets::new().with_target(flow_runtime::trace::TARGET, LevelFilter::INFO))
    });
    // A second call (there is none) would fail harmlessly: the first subscriber stays.
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(traces)
        .try_init();
    if provider.is_some() {
        flow_runtime::trace::install(flow_runtime::trace::Propagation { outgoing, adopt });
    }
    Telemetry { provider }
}

/// The OTLP exporter the environment asks for, if any: the standard variables
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_BSP_*`) are read by the
/// exporter itself; `OTEL_TRACES_EXPORTER=none` turns it off.
fn tracer_provider() -> Option<Result<SdkTracerProvider, String>> {
    let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return None;
    }
    if std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim() == "none") {
        return None;
    }
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    if !matches!(protocol.trim(), "" | "http/protobuf") {
        return Some(Err(format!(
            "OTLP protocol `{protocol}` is not supported; flow exports http/protobuf"
        )));
    }
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
    {
        Ok(e) => e,
        Err(e) => return Some(Err(e.to_string())),
    };
    let mut resource = Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("flow");
    }
    Some(Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build()))
}

/// The `traceparent` of a call made inside `span`.
fn outgoing(span: &Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Makes a caller's `traceparent` the parent of `span`.
fn adopt(span: &Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}
