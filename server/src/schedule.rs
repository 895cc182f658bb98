//! The scheduler: fires every `on schedule(CRON, tz:)` at its nominal instants, taken
//! from the cron grid in the schedule's zone (never from when the last run ended).
//!
//! Each tick is a run created under a dedupe key made of the schedule's identity (the
//! workflow, the cron expression and the zone; not the deployment version) and the
//! nominal instant, so a restart, a second server on the same store, or a clock step
//! never fires a tick twice: whoever creates the run first fires it, the others find it.
//! Daylight saving time follows croner: a local time that does not exist fires at the
//! first instant after the gap, an ambiguous one fires once (the earlier instant).
//!
//! After downtime the default catch-up runs the most recent missed tick once. When a
//! tick is due while the schedule's previous run is still going, the default overlap
//! policy skips it. Paused schedules count their ticks as skipped.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use flow_ir::program::Overlap;
use flow_runtime::store::RunFilter;
use flow_runtime::{RunOrigin, RunStatus, Started, Store, StoreError};
use serde::Serialize;
use serde_json::json;

use crate::app::Shared;
use crate::deployment::Scheduled;

/// How missed ticks are caught up after downtime (from the workflow's `catch_up`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatchUp {
    None,
    Latest,
    /// Every missed tick no older than this many milliseconds.
    All {
        within_ms: i64,
    },
}

/// Most ticks caught up at once for one schedule.
const MAX_CATCH_UP: usize = 1000;
/// Most missed ticks counted for one schedule after an outage.
const MAX_COUNTED: usize = 100_000;

/// A parsed schedule: its cron grid in its zone.
pub struct Grid {
    cron: Cron,
    tz: Tz,
}

impl Grid {
    pub fn new(cron: &str, time_zone: Option<&str>) -> Result<Grid, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(cron)
            .map_err(|e| e.to_string())?;
        let tz = match time_zone {
            None => Tz::UTC,
            Some(name) => Tz::from_str(name).map_err(|_| format!("unknown time zone `{name}`"))?,
        };
        Ok(Grid { cron, tz })
    }

    /// The first nominal instant strictly after `after_ms` (Unix ms).
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        let after = self.tz.timestamp_millis_opt(after_ms).single()?;
        self.cron
            .find_next_occurrence(&after, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// The newest nominal instant at or before `at_ms` (found backwards, so a long
    /// outage costs no walk over its ticks).
    pub fn latest_at_or_before(&self, at_ms: i64) -> Option<i64> {
        let at = self.tz.timestamp_millis_opt(at_ms).single()?;
        self.cron
            .find_previous_occurrence(&at, true)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// The nominal instants in `(from_ms, to_ms]`, oldest first, at most `limit`.
    pub fn between(&self, from_ms: i64, to_ms: i64, limit: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = from_ms;
        while out.len() < limit {
            match self.next_after(at) {
                Some(t) if t <= to_ms => {
                    out.push(t);
                    at = t;
                }
                _ => break,
            }
        }
        out
    }

    /// The ticks a catch-up fires for a schedule last fired at `last_ms`, at `now_ms`.
    pub fn catch_up(&self, last_ms: i64, now_ms: i64, policy: CatchUp) -> Vec<i64> {
        match policy {
            CatchUp::None => Vec::new(),
            CatchUp::Latest => self
                .latest_at_or_before(now_ms)
                .filter(|t| *t > last_ms)
                .into_iter()
                .collect(),
            CatchUp::All { within_ms } => {
                let from = last_ms.max(now_ms - within_ms);
                self.between(from, now_ms, MAX_CATCH_UP)
            }
        }
    }
}

/// A schedule as `flow schedules list` and the API show it.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleState {
    pub workflow: String,
    pub cron: String,
    pub time_zone: String,
    pub paused: bool,
    pub next_fire: Option<String>,
    pub last_fire: Option<String>,
    pub fires: i64,
    pub missed: i64,
    pub skipped: i64,
}

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS schedules (
    identity  TEXT PRIMARY KEY,
    workflow  TEXT NOT NULL,
    paused    INTEGER NOT NULL DEFAULT 0,
    last_fire INTEGER,
    fires     INTEGER NOT NULL DEFAULT 0,
    missed    INTEGER NOT NULL DEFAULT 0,
    skipped   INTEGER NOT NULL DEFAULT 0
);
";

pub async fn prepare(store: &Store) -> Result<(), StoreError> {
    store.create_tables(TABLE).await
}

/// A schedule's identity: the same across deployment versions while its workflow, cron
/// expression and zone stay the same.
pub fn identity(s: &Scheduled) -> String {
    format!(
        "{}|{}|{}",
        s.name,
        s.cron,
        s.time_zone.as_deref().unwrap_or("UTC")
    )
}

/// When a schedule last fired (its newest nominal instant recorded).
fn last_fire_of(store: &Store, identity: &str) -> Result<Option<i64>, StoreError> {
    match store
        .query(
            "SELECT last_fire FROM schedules WHERE identity = ?1",
            &[identity.into()],
        )?
        .first()
    {
        Some(row) => row.get(0),
        None => Ok(None),
    }
}

/// Which counter a tick adds to.
#[derive(Clone, Copy)]
enum Tally {
    Fired,
    Missed,
    Skipped,
}

/// Adds `count` ticks to a schedule's `tally`, its last fire becoming `at` when later.
async fn record(
    store: &Store,
    s: &Scheduled,
    at: i64,
    tally: Tally,
    count: i64,
) -> Result<(), StoreError> {
    let identity = identity(s);
    let workflow = s.name.clone();
    let column = match tally {
        Tally::Fired => "fires",
        Tally::Missed => "missed",
        Tally::Skipped => "skipped",
    };
    store
        .transact(move |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO schedules (identity, workflow, last_fire, {column}) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (identity) DO UPDATE SET last_fire = CASE WHEN coalesce(schedules.last_fire, 0) > ?3 THEN schedules.last_fire ELSE ?3 END, {column} = schedules.{column} + ?4"
                ),
                &[identity.into(), workflow.into(), at.into(), count.into()],
            )
            .map(|_| ())
        })
        .await
}

/// Pauses or resumes a schedule (its ticks are skipped while paused).
pub async fn set_paused(store: &Store, s: &Scheduled, paused: bool) -> Result<(), StoreError> {
    let identity = identity(s);
    let workflow = s.name.clone();
    store
        .transact(move |tx| {
            tx.execute(
                "INSERT INTO schedules (identity, workflow, paused) VALUES (?1, ?2, ?3)
                 ON CONFLICT (identity) DO UPDATE SET paused = ?3",
                &[identity.into(), workflow.into(), paused.into()],
            )
            .map(|_| ())
        })
        .await
}

/// The state of every schedule of a deployment.
pub fn states(
    store: &Store,
    schedules: &[Scheduled],
    now_ms: i64,
) -> Result<Vec<ScheduleState>, StoreError> {
    let mut out = Vec::new();
    for s in schedules {
        let identity = identity(s);
        let counts: Option<(i64, Option<i64>, i64, i64, i64)> = store
            .query(
                "SELECT paused, last_fire, fires, missed, skipped FROM schedules WHERE identity = ?1",
                &[identity.as_str().into()],
            )?
            .first()
            .map(|r| Ok::<_, StoreError>((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .transpose()?;
        let (paused, last, fires, missed, skipped) = counts.unwrap_or((0, None, 0, 0, 0));
        let next = Grid::new(&s.cron, s.time_zone.as_deref())
            .ok()
            .and_then(|g| g.next_after(now_ms));
        out.push(ScheduleState {
            workflow: s.name.clone(),
            cron: s.cron.clone(),
            time_zone: s.time_zone.clone().unwrap_or_else(|| "UTC".into()),
            paused: paused == 1,
            next_fire: next.map(rfc3339),
            last_fire: last.map(rfc3339),
            fires,
            missed,
            skipped,
        });
    }
    Ok(out)
}

pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Ticks held by `overlap = buffer`: at most one per schedule, started once the
/// schedule's previous run has ended (later ticks meanwhile are skipped).
#[derive(Default)]
pub struct Buffered(std::sync::Mutex<HashMap<String, (Arc<Scheduled>, i64)>>);

impl Buffered {
    /// Holds `at` for `s` unless a tick is held already; whether it was held.
    fn hold(&self, s: &Scheduled, at: i64) -> bool {
        let mut held = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = identity(s);
        if held.contains_key(&id) {
            return false;
        }
        held.insert(id, (Arc::new(s.clone()), at));
        true
    }

    fn holding(&self) -> bool {
        !self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_empty()
    }

    /// Takes the held ticks whose schedule has no run going any more.
    fn release(&self, gates: &Gates) -> Vec<(Arc<Scheduled>, i64)> {
        let mut held = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ready: Vec<String> = held
            .iter()
            .filter(|(_, (s, _))| !gates.running.contains(&s.name))
            .map(|(id, _)| id.clone())
            .collect();
        ready
            .into_iter()
            .filter_map(|id| held.remove(&id))
            .collect()
    }
}

/// Cancels the unfinished scheduled runs of `workflow` (`overlap = cancel`).
async fn cancel_previous(state: &Shared, workflow: &str) -> Result<(), String> {
    let runs = state
        .engine
        .store()
        .list_runs(&RunFilter {
            workflow: Some(workflow.to_owned()),
            trigger: Some("schedule".into()),
            statuses: vec![RunStatus::Pending, RunStatus::Running, RunStatus::Waiting],
            ..RunFilter::default()
        })
        .map_err(|e| e.to_string())?;
    for run in &runs {
        state.engine.cancel(run).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What is known about a tick before it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Trigger now: fires whatever the state, under its own key.
    Manual,
    /// A nominal tick: whether its schedule is paused and whether a run of it is going.
    Checked { paused: bool, running: bool },
}

/// The schedules paused (by identity) and the scheduled workflows with a run going, read
/// once for all the ticks due together.
#[derive(Default)]
pub struct Gates {
    paused: HashSet<String>,
    running: HashSet<String>,
}

impl Gates {
    pub fn read(store: &Store) -> Result<Gates, StoreError> {
        let column = |sql: &str| -> Result<HashSet<String>, StoreError> {
            store.query(sql, &[])?.iter().map(|r| r.get(0)).collect()
        };
        Ok(Gates {
            paused: column("SELECT identity FROM schedules WHERE paused = 1")?,
            running: column(
                "SELECT DISTINCT workflow FROM runs WHERE status IN ('pending', 'running', 'waiting') AND trigger = 'schedule'",
            )?,
        })
    }

    pub fn of(&self, s: &Scheduled) -> Gate {
        Gate::Checked {
            paused: self.paused.contains(&identity(s)),
            running: self.running.contains(&s.name),
        }
    }
}

/// Fires one tick of `s` at nominal instant `at`: creates its run under the tick's dedupe
/// key unless the schedule is paused or its previous run is still going (overlap).
pub async fn fire(
    state: &Shared,
    s: &Scheduled,
    at: i64,
    gate: Gate,
    buffered: &Buffered,
) -> Result<Option<String>, String> {
    let store = state.engine.store();
    let manual = gate == Gate::Manual;
    if let Gate::Checked { paused, running } = gate {
        let skip = paused || (running && matches!(overlap(s), Overlap::Skip | Overlap::Buffer));
        if running && !paused && overlap(s) == Overlap::Buffer && buffered.hold(s, at) {
            return Ok(None);
        }
        if skip {
            record(store, s, at, Tally::Skipped, 1)
                .await
                .map_err(|e| e.to_string())?;
            metrics::counter!("flow_schedule_skips_total", "workflow" => s.name.clone())
                .increment(1);
            return Ok(None);
        }
        if running && overlap(s) == Overlap::Cancel {
            cancel_previous(state, &s.name).await?;
        }
    }
    let dedupe = if manual {
        format!("schedule-now:{}:{}", identity(s), crate::keys::now_ms())
    } else {
        format!("schedule:{}:{at}", identity(s))
    };
    let origin = RunOrigin {
        trigger: Some("schedule".into()),
        event: Some(json!({ "scheduled_at": rfc3339(at) })),
        actor: manual.then(|| "trigger now".to_owned()),
        dedupe: Some(dedupe),
    };
    let started = crate::api::runs::start_run(
        state,
        &s.entry,
        &s.name,
        json!({}),
        origin,
        state.options.owner.as_deref(),
    )
    .await
    .map_err(|e| e.message)?;
    match started {
        Started::New(handle) => {
            record(store, s, at, Tally::Fired, 1)
                .await
                .map_err(|e| e.to_string())?;
            metrics::counter!("flow_schedule_fires_total", "workflow" => s.name.clone())
                .increment(1);
            let lateness = (crate::keys::now_ms() - at).max(0) as f64 / 1000.0;
            metrics::histogram!("flow_schedule_lateness_seconds").record(lateness);
            Ok(Some(handle.run_id))
        }
        // Another server (or this one before a restart) fired it.
        Started::Existing(row) => Ok(Some(row.run_id)),
    }
}

/// The workflow's `overlap` setting.
fn overlap(s: &Scheduled) -> Overlap {
    settings(s).map_or(Overlap::Skip, |w| w.overlap)
}

fn settings(s: &Scheduled) -> Option<&flow_ir::program::Settings> {
    s.entry
        .program
        .program
        .workflow(s.entry.workflow)
        .map(|w| &w.settings)
}

/// Runs the scheduler until `stop` fires. The next tick of every schedule waits in a
/// min-heap; the loop sleeps until the earliest, fires every due tick as its own task
/// (so ticks due together share commits and one slow start delays no other), and pushes
/// each schedule's following tick. A new deployment rebuilds the heap; a schedule seen
/// for the first time in this process is caught up from its last recorded fire.
pub async fn run(state: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    // Per schedule identity: the last nominal instant handled by this process.
    let mut cursor: HashMap<String, i64> = HashMap::new();
    let mut version = None;
    let mut entries: Vec<(Arc<Scheduled>, Arc<Grid>)> = Vec::new();
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    loop {
        let deployment = state.deployment();
        if version != Some(deployment.version) {
            version = Some(deployment.version);
            entries.clear();
            heap.clear();
            for s in &deployment.schedules {
                let Ok(grid) = Grid::new(&s.cron, s.time_zone.as_deref()) else {
                    continue;
                };
                let s = Arc::new(s.clone());
                let id = identity(&s);
                let from = match cursor.get(&id) {
                    Some(at) => *at,
                    None => {
                        let now = crate::keys::now_ms();
                        catch_up_once(&state, &s, &grid, now).await;
                        cursor.insert(id, now);
                        now
                    }
                };
                if let Some(next) = grid.next_after(from) {
                    heap.push(Reverse((next, entries.len())));
                }
                entries.push((s, Arc::new(grid)));
            }
        }
        let now = crate::keys::now_ms();
        let due =
            heap.peek().is_some_and(|Reverse((at, _))| *at <= now) || state.buffered.holding();
        let mut gates = if due {
            let store = state.engine.store().clone();
            match tokio::task::spawn_blocking(move || Gates::read(&store)).await {
                Ok(Ok(g)) => g,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the schedules' state; retrying");
                    Gates::default()
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the schedules' state; retrying");
                    Gates::default()
                }
            }
        } else {
            Gates::default()
        };
        // A tick started now counts as a run going for the ticks due with it.
        for (s, at) in state.buffered.release(&gates) {
            gates.running.insert(s.name.clone());
            let gate = Gate::Checked {
                paused: false,
                running: false,
            };
            spawn_fire(&state, s, at, gate);
        }
        while let Some(Reverse((at, i))) = heap.peek().copied() {
            if at > now {
                break;
            }
            heap.pop();
            let (s, grid) = &entries[i];
            cursor.insert(identity(s), at);
            let gate = gates.of(s);
            gates.running.insert(s.name.clone());
            spawn_fire(&state, Arc::clone(s), at, gate);
            if let Some(next) = grid.next_after(at) {
                heap.push(Reverse((next, i)));
            }
        }
        // Wake for the next tick, or within a second to notice a new deployment.
        let next = heap.peek().map_or(now + 1000, |Reverse((at, _))| *at);
        let sleep = Duration::from_millis((next - crate::keys::now_ms()).clamp(0, 1000) as u64);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => return,
        }
    }
}

fn spawn_fire(state: &Arc<Shared>, s: Arc<Scheduled>, at: i64, gate: Gate) {
    let state = Arc::clone(state);
    tokio::spawn(async move {
        if let Err(e) = fire(&state, &s, at, gate, &state.buffered).await {
            tracing::warn!(workflow = %s.name, error = %e, "a tick could not fire");
        }
    });
}

/// Catches a schedule up from its last recorded fire: the policy's ticks fire, the rest
/// are counted as missed.
async fn catch_up_once(state: &Arc<Shared>, s: &Scheduled, grid: &Grid, now: i64) {
    let last_fire = last_fire_of(state.engine.store(), &identity(s))
        .ok()
        .flatten();
    let Some(last_fire) = last_fire else { return };
    let missed = grid.between(last_fire, now, MAX_COUNTED).len();
    let catch = grid.catch_up(last_fire, now, catch_up(s));
    let skipped = missed.saturating_sub(catch.len());
    if skipped > 0 {
        let _ = record(
            state.engine.store(),
            s,
            last_fire,
            Tally::Missed,
            skipped as i64,
        )
        .await;
        metrics::counter!("flow_schedule_misses_total", "workflow" => s.name.clone())
            .increment(skipped as u64);
    }
    let gates = Gates::read(state.engine.store()).unwrap_or_default();
    for at in catch {
        if let Err(e) = fire(state, s, at, gates.of(s), &state.buffered).await {
            tracing::warn!(workflow = %s.name, error = %e, "a caught-up tick could not fire");
        }
    }
}

/// The workflow's `catch_up` setting.
fn catch_up(s: &Scheduled) -> CatchUp {
    match settings(s).map(|w| w.catch_up) {
        Some(flow_ir::program::CatchUp::None) => CatchUp::None,
        Some(flow_ir::program::CatchUp::All { within }) => CatchUp::All {
            within_ms: within / 1_000_000,
        },
        _ => CatchUp::Latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn a_local_time_in_the_spring_gap_fires_at_the_first_instant_after_it() {
        // Europe/Paris, 2026-03-29: 02:00 becomes 03:00 local (01:00 UTC).
        let g = Grid::new("30 2 * * *", Some("Europe/Paris")).unwrap();
        let next = g.next_after(ms("2026-03-28T12:00:00Z")).unwrap();
        assert_eq!(rfc3339(next), "2026-03-29T01:00:00.000Z");
        // And the day after, 02:30 local exists again (CEST, 00:30 UTC).
        let after = g.next_after(next).unwrap();
        assert_eq!(rfc3339(after), "2026-03-30T00:30:00.000Z");
    }

    #[test]
    fn an_ambiguous_local_time_in_autumn_fires_once() {
        // Europe/Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let g = Grid::new("30 2 * * *", Some("Europe/Paris")).unwrap();
        let ticks = g.between(ms("2026-10-24T12:00:00Z"), ms("2026-10-26T12:00:00Z"), 10);
        let shown: Vec<String> = ticks.into_iter().map(rfc3339).collect();
        assert_eq!(
            shown,
            ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]
        );
    }

    #[test]
    fn the_grid_not_the_last_run_gives_the_next_tick() {
        let g = Grid::new("*/15 * * * *", None).unwrap();
        // A run that ended at :07 does not move the grid: the next tick is :15.
        assert_eq!(
            rfc3339(g.next_after(ms("2026-01-01T10:07:00Z")).unwrap()),
            "2026-01-01T10:15:00.000Z"
        );
        let g = Grid::new("*/2 * * * * *", None).unwrap();
        assert_eq!(
            g.between(ms("2026-01-01T10:00:00Z"), ms("2026-01-01T10:00:10Z"), 100)
                .len(),
            5
        );
    }

    #[test]
    fn catch_up_policies() {
        let g = Grid::new("0 * * * *", None).unwrap();
        let last = ms("2026-01-01T00:00:00Z");
        let now = ms("2026-01-01T05:30:00Z");
        let shown = |v: Vec<i64>| v.into_iter().map(rfc3339).collect::<Vec<_>>();
        assert_eq!(
            shown(g.catch_up(last, now, CatchUp::Latest)),
            ["2026-01-01T05:00:00.000Z"]
        );
        assert!(g.catch_up(last, now, CatchUp::None).is_empty());
        assert_eq!(
            shown(g.catch_up(
                last,
                now,
                CatchUp::All {
                    within_ms: 2 * 3_600_000 + 1
                }
            )),
            ["2026-01-01T04:00:00.000Z", "2026-01-01T05:00:00.000Z"]
        );
        // Nothing missed, nothing caught up.
        assert!(g.catch_up(now, now + 1000, CatchUp::Latest).is_empty());
    }
}
