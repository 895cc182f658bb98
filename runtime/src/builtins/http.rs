//! The built-in `http` integration: `get`, `post`, `put`, `patch`, `delete` and
//! `request`, over one pooled reqwest client (rustls).

use std::time::Duration;

use serde_json::{Map, Value as Json};
use tracing::Instrument;

use crate::error::{StepError, kind_for_status};

/// One client for the whole process: connections are pooled and reused across runs.
pub fn client() -> Result<reqwest::Client, StepError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("flow/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| StepError::runtime(format!("cannot build the HTTP client: {e}")))
}

/// Calls `http.ACTION(args)`; `args` holds the call's named arguments.
pub async fn call(
    client: &reqwest::Client,
    action: &str,
    args: &Map<String, Json>,
) -> Result<Json, StepError> {
    let method = match action {
        "get" => reqwest::Method::GET,
        "post" => reqwest::Method::POST,
        "put" => reqwest::Method::PUT,
        "patch" => reqwest::Method::PATCH,
        "delete" => reqwest::Method::DELETE,
        "head" => reqwest::Method::HEAD,
        "request" => {
            let name = str_arg(args, "method")?
                .unwrap_or("GET")
                .to_ascii_uppercase();
            reqwest::Method::from_bytes(name.as_bytes())
                .map_err(|_| StepError::validation(format!("`{name}` is not an HTTP method")))?
        }
        other => return Err(StepError::runtime(format!("http has no action `{other}`"))),
    };
    let url =
        str_arg(args, "url")?.ok_or_else(|| StepError::validation("http call without `url`"))?;
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| StepError::validation(format!("invalid URL `{url}`: {e}")))?;
    let span = crate::trace::client_span(method.as_str(), url);
    let mut req = client.request(method, parsed);
    if let Some(parent) = crate::trace::traceparent(&span) {
        req = req.header("traceparent", parent);
    }
    if let Some(query) = map_arg(args, "query")? {
        let pairs: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.clone(), scalar_text(v)))
            .collect();
        if !pairs.is_empty() {
            req = req.query(&pairs);
        }
    }
    if let Some(headers) = map_arg(args, "headers")? {
        for (k, v) in headers {
            req = req.header(k.as_str(), scalar_text(v));
        }
    }
    if let Some(json) = args.get("json").filter(|v| !v.is_null()) {
        req = req.json(json);
    } else if let Some(form) = map_arg(args, "form")? {
        let pairs: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.clone(), scalar_text(v)))
            .collect();
        req = req.form(&pairs);
    } else if let Some(text) = str_arg(args, "text")? {
        req = req
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(text.to_owned());
    }
    if let Some(ms) = args.get("timeout_ms").and_then(Json::as_u64) {
        req = req.timeout(Duration::from_millis(ms));
    }
    let accept: Vec<u16> = match args.get("accept_status") {
        Some(Json::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_u64())
            .filter_map(|v| u16::try_from(v).ok())
            .collect(),
        _ => Vec::new(),
    };

    let response = req.send().instrument(span.clone()).await.map_err(|e| {
        crate::trace::record_error(&span);
        transport_error(url, &e)
    })?;
    let status = response.status().as_u16();
    crate::trace::record_status(&span, status);
    let final_url = response.url().to_string();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        if let Ok(v) = value.to_str() {
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|old| {
                    if let Json::String(s) = old {
                        s.push_str(", ");
                        s.push_str(v);
                    }
                })
                .or_insert_with(|| Json::String(v.to_owned()));
        }
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let is_json = headers
        .get("content-type")
        .and_then(Json::as_str)
        .is_some_and(|ct| ct.contains("json"));
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_error(url, &e))?;
    let body = if bytes.is_empty() {
        Json::Null
    } else if is_json {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned()))
    } else {
        Json::String(String::from_utf8_lossy(&bytes).into_owned())
    };
    if status >= 400 && !accept.contains(&status) {
        let mut err = StepError::new(kind_for_status(status), format!("{url} answered {status}"))
            .with_status(status)
            .with_details(serde_json::json!({ "body": body.clone() }));
        if let Some(after) = retry_after.filter(|_| status == 429 || status == 503) {
            err = err.with_retry_after(after);
        }
        return Err(err);
    }
    Ok(serde_json::json!({ "status": status, "headers": headers, "body": body, "url": final_url }))
}

fn transport_error(url: &str, e: &reqwest::Error) -> StepError {
    // reqwest's Display includes the URL; keep only the cause chain after it.
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let detail = if cause.is_empty() {
        e.to_string()
    } else {
        cause
    };
    if e.is_timeout() {
        StepError::timeout(format!("{url}: timed out"))
    } else {
        StepError::communication(format!("{url}: {detail}"))
    }
}

fn str_arg<'a>(args: &'a Map<String, Json>, name: &str) -> Result<Option<&'a str>, StepError> {
    match args.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s)),
        Some(other) => Err(StepError::validation(format!(
            "`{name}` must be a string, not {other}"
        ))),
    }
}

fn map_arg<'a>(
    args: &'a Map<String, Json>,
    name: &str,
) -> Result<Option<&'a Map<String, Json>>, StepError> {
    match args.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Object(m)) => Ok(Some(m)),
        Some(other) => Err(StepError::validation(format!(
            "`{name}` must be a map, not {other}"
        ))),
    }
}

fn scalar_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}
