//! Deployments: the set of programs a server runs, numbered in the store. Each load of
//! changed programs (start, SIGHUP, `POST /api/v1/deployments`, rollback) becomes the
//! next version; new runs use the newest version, runs in flight finish on the program
//! they started with (a run names its program by hash). A deployment is indexed once for
//! serving: workflows by name, webhook paths, integration events by path, schedules.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use flow_connectors::Connection;
use flow_connectors::eval::ConnContext;
use flow_expr::Value;
use flow_ir::artefact::Artefact;
use flow_ir::program::{IntegrationId, TriggerKind, WorkflowId};
use flow_ir::types::Type;
use flow_runtime::prepared::Prepared;
use flow_runtime::store::SqlValue;
use flow_runtime::{Engine, EngineError, Store, StoreError};
use serde::Serialize;

/// One workflow of a deployment.
#[derive(Clone)]
pub struct Entry {
    pub program: Arc<Prepared>,
    pub workflow: WorkflowId,
}

/// `on webhook("/p") as T`: served at `POST /hooks/p`.
#[derive(Clone)]
pub struct Hook {
    pub entry: Entry,
    pub name: String,
    pub body_type: Type,
}

/// `on INTEGRATION.EVENT(args)`: served at `/hooks` + the event's path.
#[derive(Clone)]
pub struct Subscriber {
    pub entry: Entry,
    pub name: String,
    pub integration: IntegrationId,
    pub event: u32,
    /// The trigger's arguments, evaluated at deployment (they are constants).
    pub args: Vec<Option<Value>>,
}

/// `on schedule(CRON, tz:)`.
#[derive(Clone)]
pub struct Scheduled {
    pub entry: Entry,
    pub name: String,
    pub cron: String,
    pub with_seconds: bool,
    pub time_zone: Option<String>,
}

/// A numbered set of programs, indexed for serving.
pub struct Deployment {
    pub version: i64,
    pub created_at: i64,
    pub programs: Vec<Arc<Prepared>>,
    pub workflows: BTreeMap<String, Entry>,
    pub hooks: HashMap<String, Hook>,
    pub events: HashMap<String, Vec<Subscriber>>,
    /// Events some workflow's step waits for (`wait integration.event(...)`), by path:
    /// a delivery there goes to the waiting run whose condition holds.
    pub waited: HashMap<String, Vec<Waited>>,
    pub schedules: Vec<Scheduled>,
}

/// An event a step of a deployed workflow waits for.
#[derive(Clone)]
pub struct Waited {
    /// The program that declares the event (for verifying deliveries).
    pub program: Arc<Prepared>,
    pub integration: IntegrationId,
    pub event: u32,
}

/// Why a set of programs cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("workflow `{0}` is defined by two programs; rename one")]
    DuplicateWorkflow(String),
    #[error("webhook path `{0}` is served by two workflows: {1} and {2}")]
    DuplicatePath(String, String, String),
    #[error("the event path of `{workflow}` cannot be computed: {message}")]
    EventPath { workflow: String, message: String },
    #[error("nothing to deploy: no program")]
    Empty,
    #[error("deployment version {0} does not exist")]
    NoSuchVersion(i64),
    #[error("the program {0} of that version is no longer in the store")]
    MissingProgram(String),
    #[error("{0}")]
    Artefact(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A deployment as listed.
#[derive(Clone, Debug, Serialize)]
pub struct Version {
    pub version: i64,
    pub created_at: i64,
    /// Who deployed it: `start`, `reload`, an API key's name, or `rollback to N`.
    pub actor: String,
    pub programs: Vec<String>,
    pub workflows: Vec<String>,
    pub active: bool,
}

const TABLE: &str = "
CREATE TABLE IF NOT EXISTS deployments (
    version    INTEGER PRIMARY KEY,
    created_at INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    programs   TEXT NOT NULL,
    workflows  TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 0
);
";

impl Deployment {
    /// Indexes programs for serving. Nothing is stored.
    pub fn index(programs: Vec<Arc<Prepared>>) -> Result<Deployment, DeployError> {
        if programs.is_empty() {
            return Err(DeployError::Empty);
        }
        let mut d = Deployment {
            version: 0,
            created_at: 0,
            programs: programs.clone(),
            workflows: BTreeMap::new(),
            hooks: HashMap::new(),
            events: HashMap::new(),
            waited: HashMap::new(),
            schedules: Vec::new(),
        };
        for program in &programs {
            for (i, wf) in program.program.workflows.iter().enumerate() {
                let entry = Entry {
                    program: Arc::clone(program),
                    workflow: WorkflowId::from_index(i),
                };
                if d.workflows.insert(wf.name.clone(), entry.clone()).is_some() {
                    return Err(DeployError::DuplicateWorkflow(wf.name.clone()));
                }
                for step in &wf.steps {
                    let flow_ir::program::StepCall::Event { event, .. } = &step.call else {
                        continue;
                    };
                    let path =
                        event_path(program, *event).map_err(|message| DeployError::EventPath {
                            workflow: wf.name.clone(),
                            message,
                        })?;
                    let waited = d.waited.entry(path).or_default();
                    let known = waited.iter().any(|w| {
                        Arc::ptr_eq(&w.program, program)
                            && w.integration == event.integration
                            && w.event == event.event
                    });
                    if !known {
                        waited.push(Waited {
                            program: Arc::clone(program),
                            integration: event.integration,
                            event: event.event,
                        });
                    }
                }
                let Some(trigger) = &wf.trigger else { continue };
                match &trigger.kind {
                    TriggerKind::Webhook { path, body_type } => {
                        let hook = Hook {
                            entry,
                            name: wf.name.clone(),
                            body_type: body_type.clone(),
                        };
                        if let Some(other) = d.hooks.insert(path.clone(), hook) {
                            return Err(DeployError::DuplicatePath(
                                path.clone(),
                                other.name,
                                wf.name.clone(),
                            ));
                        }
                    }
                    TriggerKind::Event { event, args } => {
                        let path = event_path(program, *event).map_err(|message| {
                            DeployError::EventPath {
                                workflow: wf.name.clone(),
                                message,
                            }
                        })?;
                        let args = trigger_args(&entry, args);
                        d.events.entry(path).or_default().push(Subscriber {
                            entry,
                            name: wf.name.clone(),
                            integration: event.integration,
                            event: event.event,
                            args,
                        });
                    }
                    TriggerKind::Schedule {
                        cron,
                        with_seconds,
                        time_zone,
                    } => d.schedules.push(Scheduled {
                        entry,
                        name: wf.name.clone(),
                        cron: cron.clone(),
                        with_seconds: *with_seconds,
                        time_zone: time_zone.clone(),
                    }),
                }
            }
        }
        for path in d.events.keys() {
            if let Some(hook) = d.hooks.get(path) {
                return Err(DeployError::DuplicatePath(
                    path.clone(),
                    hook.name.clone(),
                    d.events[path][0].name.clone(),
                ));
            }
        }
        Ok(d)
    }

    fn hashes(&self) -> Vec<String> {
        let mut h: Vec<String> = self.programs.iter().map(|p| p.hash.clone()).collect();
        h.sort();
        h
    }
}

/// The path an event's deliveries arrive on (its `webhook` clause, a constant string).
fn event_path(program: &Prepared, event: flow_ir::program::EventRef) -> Result<String, String> {
    let integ = program
        .program
        .integration(event.integration)
        .ok_or("unknown integration")?;
    let ev = integ
        .events
        .get(event.event as usize)
        .ok_or("unknown event")?;
    let webhook = ev.webhook.ok_or_else(|| {
        format!(
            "`{}.{}` declares no `webhook` path, so nothing can deliver it",
            integ.name, ev.name
        )
    })?;
    let exprs = flow_expr::Program::new(ev.exprs.clone());
    let conn = Connection::new(&integ.name, "");
    let mut locals = exprs.new_locals();
    let v = exprs
        .eval(webhook, &mut locals, &ConnContext { connection: &conn })
        .map_err(|e| e.to_string())?;
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the webhook path is not a string".to_owned())
}

/// A trigger's arguments, evaluated in the workflow's arena (constants; `None` when
/// not given, or when it cannot be evaluated without a run).
fn trigger_args(entry: &Entry, args: &[Option<flow_ir::expr::ExprId>]) -> Vec<Option<Value>> {
    let Some(exprs) = entry.program.workflow(entry.workflow) else {
        return vec![None; args.len()];
    };
    let ctx = flow_expr::SystemContext;
    args.iter()
        .map(|a| {
            a.and_then(|id| {
                let mut locals = exprs.new_locals();
                exprs.eval(id, &mut locals, &ctx).ok()
            })
        })
        .collect()
}

/// Creates the deployments table when missing.
pub async fn prepare(store: &Store) -> Result<(), StoreError> {
    store.create_tables(TABLE).await
}

/// Loads `artefacts` into the engine and makes them the active deployment: the same
/// programs as the active version keep its number; anything else is the next version.
pub async fn activate(
    engine: &Engine,
    artefacts: Vec<Artefact>,
    actor: &str,
) -> Result<Deployment, DeployError> {
    let mut programs = Vec::with_capacity(artefacts.len());
    for a in artefacts {
        programs.push(engine.load_artefact(a).await?);
    }
    let mut d = Deployment::index(programs)?;
    let hashes = d.hashes();
    let workflows: Vec<String> = d.workflows.keys().cloned().collect();
    let actor = actor.to_owned();
    let now = crate::keys::now_ms();
    let (version, created_at) = engine
        .store()
        .transact(move |tx| {
            let active: Option<(i64, i64, String)> = tx
                .query_opt(
                    "SELECT version, created_at, programs FROM deployments WHERE active = 1",
                    &[],
                )?
                .map(|r| Ok::<_, StoreError>((r.get(0)?, r.get(1)?, r.get(2)?)))
                .transpose()?;
            let text = serde_json::to_string(&hashes).unwrap_or_default();
            if let Some((version, created_at, programs)) = active
                && programs == text
            {
                return Ok((version, created_at));
            }
            tx.execute("UPDATE deployments SET active = 0 WHERE active = 1", &[])?;
            let row = tx.query_opt(
                "INSERT INTO deployments (version, created_at, actor, programs, workflows, active)
                 VALUES ((SELECT coalesce(max(version), 0) + 1 FROM deployments), ?1, ?2, ?3, ?4, 1) RETURNING version",
                &[
                    now.into(),
                    actor.into(),
                    text.into(),
                    SqlValue::Text(serde_json::to_string(&workflows).unwrap_or_default()),
                ],
            )?;
            let version: i64 = match row {
                Some(r) => r.get(0)?,
                None => 0,
            };
            Ok((version, now))
        })
        .await?;
    d.version = version;
    d.created_at = created_at;
    Ok(d)
}

/// The programs of an earlier version, as artefacts, to deploy again.
pub fn artefacts_of(store: &Store, version: i64) -> Result<Vec<Artefact>, DeployError> {
    let programs: Option<String> = store
        .query(
            "SELECT programs FROM deployments WHERE version = ?1",
            &[version.into()],
        )?
        .first()
        .map(|r| r.get(0))
        .transpose()?;
    let programs = programs.ok_or(DeployError::NoSuchVersion(version))?;
    let hashes: Vec<String> = serde_json::from_str(&programs).unwrap_or_default();
    let mut out = Vec::new();
    for h in hashes {
        let bytes = store
            .program(&h)?
            .ok_or_else(|| DeployError::MissingProgram(h.clone()))?;
        out.push(Artefact::decode(bytes).map_err(|e| DeployError::Artefact(e.to_string()))?);
    }
    Ok(out)
}

/// Every deployment, newest first.
pub fn list(store: &Store) -> Result<Vec<Version>, StoreError> {
    if !store.has_table("deployments")? {
        return Ok(Vec::new());
    }
    store
        .query(
            "SELECT version, created_at, actor, programs, workflows, active FROM deployments ORDER BY version DESC",
            &[],
        )?
        .iter()
        .map(|r| {
            let programs: String = r.get(3)?;
            let workflows: String = r.get(4)?;
            Ok(Version {
                version: r.get(0)?,
                created_at: r.get(1)?,
                actor: r.get(2)?,
                programs: serde_json::from_str(&programs).unwrap_or_default(),
                workflows: serde_json::from_str(&workflows).unwrap_or_default(),
                active: r.get::<i64>(5)? == 1,
            })
        })
        .collect()
}
