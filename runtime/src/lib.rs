//! flow-runtime: the durable executor for compiled Flow workflows.
//!
//! - [`engine`]: admission (priority, limits), run creation, recovery of crashed runs;
//! - `exec`: one run's dataflow interpreter with journal replay (the engine hands it a
//!   run's start arguments; what both use is in [`run`]);
//! - [`prepared`]: a loaded program with its expressions prepared once;
//! - [`attempt`]: the retry/timeout loop of a step;
//! - [`store`]: the SQLite journal (runs, events, programs) with group commit, and its
//!   schema migrations (`migrate`);
//! - [`invoke`]: the [`Connector`] boundary every action implementation plugs into;
//! - [`builtins`]: the native `http`, `file` and `console` integrations;
//! - [`policy`], [`error`]: retry math, error kinds and the `err` record;
//! - [`signals`]: sending signals to runs and waking the runs that wait for them;
//! - [`trace`]: the spans of a run, its step attempts and its HTTP calls, for traces.

pub mod admission;
pub mod attempt;
pub mod builtins;
pub mod clock;
pub mod engine;
pub mod error;
mod exec;
pub mod group_commit;
pub mod invoke;
mod migrate;
pub mod optimize;
pub mod policy;
pub mod prepared;
pub mod report;
pub mod run;
pub mod signals;
pub mod store;
pub mod testing;
pub mod trace;
pub mod worker;

use std::time::Duration;

pub use engine::{Engine, EngineError, RunHandle, Started};
pub use error::{ErrorKind, StepError};
pub use invoke::{ActionCall, CallContext, Connector, InvokeFuture, Router};
pub use prepared::{Prepared, PreparedIntegration};
pub use run::{EngineConfig, Observer, Progress, RunOutcome, Silent};
pub use store::{Durability, RunOrigin, RunStatus, Store, StoreError, StoreLocation, StoreOptions};

/// A duration the way Flow writes it: `250ms`, `5s`, `1m30s`, `2h`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    let rest_ms = ms % 1000;
    if secs > 0 || rest_ms > 0 || out.is_empty() {
        if rest_ms > 0 && out.is_empty() {
            out.push_str(&format!("{}.{:03}s", secs, rest_ms).replace(".000", ""));
        } else {
            out.push_str(&format!("{secs}s"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_flow_literals() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.500s");
    }
}
