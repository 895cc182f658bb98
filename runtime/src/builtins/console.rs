//! The built-in `console` integration: `print` writes one line to standard output.

use std::io::Write;

use serde_json::{Map, Value as Json};

use crate::error::StepError;

/// Where `console.print` writes: the process's stdout, or a buffer (`flow test`).
#[derive(Clone, Default)]
pub enum ConsoleSink {
    #[default]
    Stdout,
    Buffer(std::sync::Arc<std::sync::Mutex<Vec<String>>>),
}

impl ConsoleSink {
    pub fn print(&self, action: &str, args: &Map<String, Json>) -> Result<Json, StepError> {
        if action != "print" {
            return Err(StepError::runtime(format!(
                "console has no action `{action}`"
            )));
        }
        let message = match args.get("message") {
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        match self {
            ConsoleSink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{message}")
                    .and_then(|()| out.flush())
                    .map_err(|e| {
                        StepError::runtime(format!("cannot write to standard output: {e}"))
                    })?;
            }
            ConsoleSink::Buffer(lines) => {
                lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(message);
            }
        }
        Ok(serde_json::json!({ "printed": true }))
    }
}
