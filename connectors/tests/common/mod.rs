//! Shared helpers: compile declarations, call actions through the driver, record what a
//! local HTTP server received, and find the emulators `scripts/test.sh` starts.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flow_connectors::{Connection, Driver, DriverConfig, MemoryConnections};
use flow_expr::Value;
use flow_ir::program::{ActionRef, IntegrationId, Program};
use flow_runtime::{ActionCall, CallContext, Prepared, StepError};

/// Compiles a file's text; panics with the diagnostics when it has errors.
pub fn compile(src: &str) -> Arc<Program> {
    let (_, compilation) = flow_compiler::compile_source("test.flow", src);
    let errors: Vec<String> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert!(
        errors.is_empty(),
        "does not compile:\n{}",
        errors.join("\n")
    );
    Arc::new(compilation.program)
}

/// The standard library's module `name`, compiled on its own.
pub fn stdlib(name: &str) -> Arc<Program> {
    let compilation = flow_compiler::compile_stdlib_module(name)
        .unwrap_or_else(|| panic!("no stdlib module {name}"));
    Arc::new(compilation.program)
}

/// Every connected (non-built-in) standard-library integration, each compiled on its own.
pub fn connected_stdlib() -> Vec<flow_connectors::catalog::Compiled> {
    flow_stdlib::names()
        .filter_map(|name| {
            let compilation = flow_compiler::compile_stdlib_module(name)?;
            flow_connectors::catalog::Compiled::find(compilation.program, name)
        })
        .filter(|c| c.integration().is_some_and(|i| !i.builtin))
        .collect()
}

pub fn driver(connections: Vec<Connection>) -> (Driver, Arc<MemoryConnections>) {
    driver_with(connections, DriverConfig::default())
}

pub fn driver_with(
    connections: Vec<Connection>,
    config: DriverConfig,
) -> (Driver, Arc<MemoryConnections>) {
    let source = Arc::new(MemoryConnections::new(connections));
    (Driver::new(source.clone(), config), source)
}

pub fn ctx() -> CallContext {
    CallContext {
        run_id: Arc::from("run-1"),
        workflow: Arc::from("test"),
        step: "step".into(),
        attempt: 1,
        owner: None,
        idempotency_key: None,
        cache: None,
        timeout: Some(Duration::from_secs(20)),
    }
}

/// Calls `integration.action` with JSON arguments (by parameter name; defaults applied
/// as the executor would).
pub async fn call_with(
    driver: &Driver,
    program: &Arc<Program>,
    qualified: &str,
    args: serde_json::Value,
    ctx: &CallContext,
) -> Result<Value, StepError> {
    let (iname, aname) = qualified.split_once('.').unwrap();
    let (iid, integ) = program
        .integration_by_name(iname)
        .unwrap_or_else(|| panic!("no integration {iname}"));
    let index = integ
        .actions
        .iter()
        .position(|a| a.name == aname)
        .unwrap_or_else(|| panic!("no action {qualified}"));
    let action = &integ.actions[index];
    let p = flow_expr::Program::new(action.exprs.clone());
    let mut locals = p.new_locals();
    let obj = args.as_object().cloned().unwrap_or_default();
    for k in obj.keys() {
        assert!(
            action.params.iter().any(|p| &p.name == k),
            "{qualified} has no parameter {k}"
        );
    }
    let values: Vec<Value> = action
        .params
        .iter()
        .map(|param| match obj.get(&param.name) {
            Some(j) => {
                Value::from_json(j, &param.ty).unwrap_or_else(|e| panic!("{}: {e}", param.name))
            }
            None => match param.default {
                Some(d) => p.eval(d, &mut locals, &flow_expr::SystemContext).unwrap(),
                None => Value::Null,
            },
        })
        .collect();
    let loaded = prepared(program);
    let call = ActionCall {
        program,
        prepared: loaded.integration(IntegrationId(iid.0)).unwrap(),
        action_ref: ActionRef {
            integration: IntegrationId(iid.0),
            action: index as u32,
        },
        integration: integ,
        action,
        args: &values,
    };
    driver.call(&call, ctx).await
}

/// The program's prepared expressions: one set per compiled program, as an executor
/// keeps them, so what the driver derives from an integration (a session's token, say)
/// lasts from one call to the next.
pub fn prepared(program: &Arc<Program>) -> Arc<Prepared> {
    static LOADED: Mutex<Vec<(Arc<Program>, Arc<Prepared>)>> = Mutex::new(Vec::new());
    let mut loaded = LOADED.lock().unwrap();
    if let Some((_, p)) = loaded.iter().find(|(q, _)| Arc::ptr_eq(q, program)) {
        return Arc::clone(p);
    }
    let p = Arc::new(Prepared::new(Arc::clone(program), String::new()));
    loaded.push((Arc::clone(program), Arc::clone(&p)));
    p
}

pub async fn call(
    driver: &Driver,
    program: &Arc<Program>,
    qualified: &str,
    args: serde_json::Value,
) -> Result<Value, StepError> {
    call_with(driver, program, qualified, args, &ctx()).await
}

/// A request as the local server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub type Reply = (u16, Vec<(&'static str, String)>, String);
pub type Responder = Arc<dyn Fn(&Seen, usize) -> Reply + Send + Sync>;

/// A local HTTP server answering with `respond` (given the request and how many
/// requests came before it) and recording every request.
pub async fn server(respond: Responder) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let record = Arc::clone(&record);
        let respond = Arc::clone(&respond);
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 16 << 20)
                .await
                .unwrap_or_default();
            let s = Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            };
            let n = {
                let mut r = record.lock().unwrap();
                r.push(s.clone());
                r.len() - 1
            };
            let (status, headers, body) = respond(&s, n);
            let mut resp = axum::response::Response::builder().status(status);
            for (k, v) in headers {
                resp = resp.header(k, v);
            }
            resp.body(axum::body::Body::from(body)).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

pub fn json_reply(status: u16, body: serde_json::Value) -> Reply {
    (
        status,
        vec![("content-type", "application/json".into())],
        body.to_string(),
    )
}

/// The URL of an emulator started by `scripts/test.sh`, or `None` after printing why the
/// test is skipped.
pub fn service(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: {test} needs {var} (set by scripts/test.sh, which starts the emulator)"
            );
            None
        }
    }
}
