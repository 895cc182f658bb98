//! An executor's lease on a PostgreSQL store: a row in `executors` that a thread of its
//! process refreshes every [`BEAT`]. Another process takes the executor's runs only once
//! the row is older than [`STALE`] (five missed beats) or gone; both instants are read
//! off the database server's clock.

use std::sync::mpsc;
use std::time::Duration;

use super::{NOW_MS, Postgres, StoreError, backoff, connect, error};
use crate::store::Durability;

/// How often a live executor refreshes its row.
const BEAT: Duration = Duration::from_secs(2);

/// How old a row may be before its executor counts as gone.
const STALE: Duration = Duration::from_secs(10);

/// [`STALE`] in milliseconds.
pub(super) fn stale_millis() -> i64 {
    i64::try_from(STALE.as_millis()).unwrap_or(i64::MAX)
}

/// A running heartbeat; [`Heartbeat::stop`] ends it and removes the row.
pub(in crate::store) struct Heartbeat {
    stop: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    owners: super::Owners,
    token: String,
}

impl Heartbeat {
    /// Ends the heartbeat and removes the executor's row (its runs are then free at
    /// once).
    pub(in crate::store) fn stop(mut self) {
        self.owners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|t| t != &self.token);
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Postgres {
    /// Registers executor `token` and starts refreshing its row.
    pub(in crate::store) fn start_heartbeat(&self, token: &str) -> Result<Heartbeat, StoreError> {
        let (url, at) = (self.url.clone(), self.at.clone());
        let beating = token.to_owned();
        let (stop, stopped) = mpsc::channel::<()>();
        let (ready, started) = mpsc::sync_channel::<Result<(), StoreError>>(1);
        let thread = std::thread::Builder::new()
            .name("flow-store-heartbeat".into())
            .spawn(move || beat(&url, &at, &beating, &ready, &stopped))
            .map_err(|e| StoreError::Postgres {
                at: self.at.clone(),
                message: e.to_string(),
            })?;
        started.recv().map_err(|_| StoreError::WriterGone)??;
        self.owners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(token.to_owned());
        Ok(Heartbeat {
            stop,
            thread: Some(thread),
            owners: self.owners.clone(),
            token: token.to_owned(),
        })
    }

    /// Whether executor `token` beat within [`STALE`]. When the database cannot say, the
    /// executor counts as alive: a run is never taken on a guess.
    pub(in crate::store) fn executor_alive(&self, token: &str) -> bool {
        let token = token.to_owned();
        let stale = stale_millis();
        self.read(move |s| {
            let row = s.opt(
                &format!("SELECT heartbeat_at > {NOW_MS} - $2 FROM executors WHERE token = $1"),
                &[&token, &stale],
            )?;
            Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
        })
        .unwrap_or(true)
    }
}

fn beat(
    url: &super::Target,
    at: &str,
    token: &str,
    ready: &mpsc::SyncSender<Result<(), StoreError>>,
    stopped: &mpsc::Receiver<()>,
) {
    let upsert = format!(
        "INSERT INTO executors (token, host, pid, started_at, heartbeat_at) VALUES ($1, $2, $3, {NOW_MS}, {NOW_MS}) \
         ON CONFLICT (token) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at"
    );
    let host = std::env::var("HOSTNAME").ok();
    let pid = i64::from(std::process::id());
    let mut client: Option<postgres::Client> = None;
    let mut failures = 0u32;
    let mut first = Some(ready);
    loop {
        let result = (|| {
            let c = match client.take() {
                Some(c) if !c.is_closed() => client.insert(c),
                _ => client.insert(connect(url, Durability::Full)?),
            };
            c.execute(&upsert, &[&token, &host, &pid]).map(drop)
        })();
        match (&result, first.take()) {
            (_, Some(ready)) => {
                let failed = result.is_err();
                let _ = ready.send(result.map_err(|e| error(at, e)));
                if failed {
                    return;
                }
            }
            (Ok(()), None) => failures = 0,
            (Err(e), None) => {
                tracing::warn!(store = %at, error = %e, "the executor's heartbeat could not be written; retrying");
                failures += 1;
            }
        }
        let pause = if failures == 0 {
            BEAT
        } else {
            backoff(failures).min(BEAT)
        };
        match stopped.recv_timeout(pause) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Released: remove the row so the executor's unfinished runs are free at once.
            Ok(()) => {
                if let Some(c) = client.as_mut() {
                    let _ = c.execute("DELETE FROM executors WHERE token = $1", &[&token]);
                }
                return;
            }
            // Dropped without a release: stop beating and let the row go stale, since
            // this process may still be finishing what it ran.
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}
