//! The built-in integrations the runtime implements natively: `http`, `file`, `console`,
//! `approval`.

pub mod approval;
pub mod console;
pub mod file;
pub mod http;

use flow_expr::Value;

pub use approval::LinkSigner;
pub use console::ConsoleSink;

use crate::error::StepError;
use crate::invoke::{ActionCall, CallContext, Connector, InvokeFuture};

/// The native actions, sharing one pooled HTTP client.
#[derive(Clone)]
pub struct Builtins {
    client: reqwest::Client,
    console: ConsoleSink,
    links: Option<std::sync::Arc<dyn LinkSigner>>,
}

impl Builtins {
    pub fn new() -> Result<Builtins, StepError> {
        Ok(Builtins {
            client: http::client()?,
            console: ConsoleSink::Stdout,
            links: None,
        })
    }

    /// Sends `console.print` somewhere other than stdout.
    pub fn with_console(mut self, console: ConsoleSink) -> Builtins {
        self.console = console;
        self
    }

    /// Lets `approval.link` make links to the server's approval pages.
    pub fn with_links(mut self, signer: std::sync::Arc<dyn LinkSigner>) -> Builtins {
        self.links = Some(signer);
        self
    }
}

impl Connector for Builtins {
    fn invoke<'a>(&'a self, call: &'a ActionCall<'a>, ctx: &'a CallContext) -> InvokeFuture<'a> {
        Box::pin(async move {
            let args = call.args_json();
            let action = call.action.name.as_str();
            let mut args = args;
            if let Some(timeout) = ctx.timeout {
                args.insert(
                    "timeout_ms".into(),
                    serde_json::json!(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
                );
            }
            let json = match call.integration.name.as_str() {
                "http" => http::call(&self.client, action, &args).await?,
                "file" => file::call(action, &args).await?,
                "console" => self.console.print(action, &args)?,
                "approval" => approval::call(self.links.as_ref(), action, &args, ctx)?,
                other => {
                    return Err(StepError::runtime(format!(
                        "`{other}` is not a built-in integration"
                    )));
                }
            };
            Value::from_json(&json, &call.action.result).map_err(|e| {
                StepError::validation(format!(
                    "{}.{action} returned a value that does not fit its type: {e}",
                    call.integration.name
                ))
            })
        })
    }
}
