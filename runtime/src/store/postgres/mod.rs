//! The PostgreSQL store: the same journal as the SQLite file, in a database several
//! processes on several machines can share.
//!
//! The `postgres` client is synchronous and runs its own small runtime, so every
//! connection lives on a thread of its own, never on a tokio worker: one writer
//! (`writer.rs`, group commit as with SQLite), [`READERS`] readers taking read jobs from
//! one queue, and one heartbeat per executor lease (`lease.rs`). A process holds
//! `2 + READERS` connections. The schema is created and upgraded at open, under an
//! advisory lock, so processes starting together do not race.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Row, Statement, Transaction};
use tokio::sync::oneshot;

use super::signals::SignalStored;
use super::sql::{PostgresTx, SqlRow, SqlTx, SqlValue};
use super::{
    AfterCommit, Durability, Event, EventKind, EventWait, RUN_COLUMNS, RunKey, RunRow, RunStatus,
    StoreError, StoreOptions, Write, event_signal,
};

mod lease;
mod writer;
pub(super) use lease::Heartbeat;

/// The schema version this build writes (the `flow_schema` table).
pub(crate) const SCHEMA_VERSION: i64 = 2;

/// How long a session of this process may sit inside a transaction waiting for the
/// process before the server ends it (the process was paused or hung); far beyond any
/// transaction Flow keeps open.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(5);

/// Top-level runs `flow runs prune` deletes per transaction.
const PRUNE_BATCH: i64 = 1000;

/// Reader connections per process.
const READERS: usize = 2;

/// The advisory lock held while the schema is created or upgraded.
const MIGRATION_LOCK: i64 = 0x666c_6f77_0001;

/// The whole schema at [`SCHEMA_VERSION`]: the SQLite store's tables with PostgreSQL's
/// types, the indexes the run API's filters read, and the executors' heartbeats. A run
/// keeps its workflow's `concurrency`, which claims honour across workers.
///
/// Versions: 1 → 2 adds `runs.concurrency` and its index ([`UPGRADES`]).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS programs (
    hash       TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    artefact   BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id          BIGSERIAL PRIMARY KEY,
    run_id      TEXT NOT NULL UNIQUE,
    workflow    TEXT NOT NULL,
    program     TEXT NOT NULL,
    parent      BIGINT,
    parent_step TEXT,
    owner_as    TEXT,
    priority    BIGINT NOT NULL,
    status      TEXT NOT NULL,
    input       TEXT NOT NULL,
    output      TEXT,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT,
    executor    TEXT,
    wake_at     BIGINT,
    dedupe      TEXT,
    trigger     TEXT,
    event       TEXT,
    actor       TEXT,
    concurrency BIGINT
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, executor);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs(workflow, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS runs_by_dedupe ON runs(dedupe) WHERE dedupe IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_by_trigger ON runs(trigger, created_at);
CREATE INDEX IF NOT EXISTS runs_by_status_created ON runs(status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_workflow_status ON runs(workflow, status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_created_outcome ON runs(created_at, status, finished_at, workflow, parent);
CREATE INDEX IF NOT EXISTS runs_by_parent ON runs(parent, parent_step) WHERE parent IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_runnable ON runs(priority DESC, created_at, id) WHERE status IN ('pending', 'running', 'waiting') AND parent IS NULL;
CREATE INDEX IF NOT EXISTS runs_limited ON runs(workflow) WHERE concurrency IS NOT NULL AND status IN ('pending', 'running', 'waiting') AND parent IS NULL;
CREATE TABLE IF NOT EXISTS events (
    run     BIGINT NOT NULL,
    seq     BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    step    TEXT,
    attempt BIGINT,
    data    TEXT,
    PRIMARY KEY (run, seq)
);
CREATE TABLE IF NOT EXISTS signals (
    id        BIGSERIAL PRIMARY KEY,
    run       BIGINT NOT NULL,
    name      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    signal_id TEXT,
    at        BIGINT NOT NULL,
    taken_by  TEXT
);
CREATE INDEX IF NOT EXISTS signals_untaken ON signals(run, name, id) WHERE taken_by IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS signals_by_sender_id ON signals(run, signal_id) WHERE signal_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS signals_taken ON signals(run, taken_by) WHERE taken_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_waits (
    id          BIGSERIAL PRIMARY KEY,
    run         BIGINT NOT NULL,
    step        TEXT NOT NULL,
    program     TEXT NOT NULL,
    workflow    TEXT NOT NULL,
    integration TEXT NOT NULL,
    event       TEXT NOT NULL,
    args        TEXT NOT NULL,
    locals      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    UNIQUE (run, step)
);
CREATE INDEX IF NOT EXISTS event_waits_by_event ON event_waits(integration, event, id);
CREATE TABLE IF NOT EXISTS executors (
    token        TEXT PRIMARY KEY,
    host         TEXT,
    pid          BIGINT,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
";

/// What brings a store from version N-1 to N, for N = 2, 3, …; a new store is made by
/// [`SCHEMA`] at once.
const UPGRADES: &[&str] = &["
ALTER TABLE runs ADD COLUMN IF NOT EXISTS concurrency BIGINT;
CREATE INDEX IF NOT EXISTS runs_limited ON runs(workflow) WHERE concurrency IS NOT NULL AND status IN ('pending', 'running', 'waiting') AND parent IS NULL;
"];

/// The advisory lock claims of runs with a `concurrency` limit take, so that counting a
/// workflow's runs and claiming more of them is one step across all workers.
const LIMITED_CLAIMS_LOCK: i64 = 0x666c_6f77_0002;

/// The server's clock in Unix milliseconds: heartbeats are written and judged by one
/// clock, whatever the machines' clocks say.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// An open PostgreSQL store.
pub(super) struct Postgres {
    url: Target,
    /// The URL without its password, for messages.
    at: String,
    writer: mpsc::Sender<writer::PgOp>,
    readers: mpsc::Sender<ReadJob>,
    owners: Owners,
    health: Arc<Health>,
    /// Whether the `flow_runnable` listener thread was started.
    listening: std::sync::Once,
}

type ReadJob = Box<dyn FnOnce(&mut Reader) + Send>;

/// The executor tokens this process holds leases under: the writer's fence.
pub(super) type Owners = Arc<RwLock<Vec<String>>>;

/// Whether the writer reaches the server, and how many outages it went through.
#[derive(Default)]
pub(super) struct Health {
    pub down: std::sync::atomic::AtomicBool,
    pub outages: std::sync::atomic::AtomicU64,
}

/// Where to connect: the URL as the driver takes it, and the TLS it uses.
///
/// As libpq: `sslmode=prefer` (the default) tries TLS and falls back to plain, and
/// `require` insists on TLS; neither checks the server's certificate unless
/// `sslrootcert=PATH` names the CA certificates (PEM) to check it against.
/// `verify-ca` and `verify-full` insist on TLS and check the certificate and its host
/// name (both as `verify-full`) against `sslrootcert`, or the public roots without it.
/// The driver reads neither `sslrootcert` nor the two `verify-` modes, so they are taken
/// out of the URL here.
#[derive(Clone)]
pub(super) struct Target {
    url: String,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let (mut url, root_cert) = take_option(url, "sslrootcert");
        let (without_mode, mode) = take_option(&url, "sslmode");
        let verify_mode = matches!(mode.as_deref(), Some("verify-ca" | "verify-full"));
        if verify_mode {
            // The driver insists on TLS with `require`; the checking is the config's.
            let separator = if without_mode.contains('?') { '&' } else { '?' };
            url = format!("{without_mode}{separator}sslmode=require");
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let config = if verify_mode || root_cert.is_some() {
            let mut roots = rustls::RootCertStore::empty();
            match &root_cert {
                Some(path) => {
                    use rustls_pki_types::pem::PemObject;
                    let read = |e: &dyn std::fmt::Display| {
                        format!("cannot read the CA certificates in {path}: {e}")
                    };
                    for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
                        .map_err(|e| read(&e))?
                    {
                        roots.add(cert.map_err(|e| read(&e))?).map_err(|e| {
                            format!("a CA certificate in {path} is not usable: {e}")
                        })?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(std::sync::Arc::new(Unverified(provider)))
                .with_no_client_auth()
        };
        Ok(Target {
            url,
            tls: tokio_postgres_rustls::MakeRustlsConnect::new(config),
        })
    }
}

/// Accepts any server certificate (while still checking the handshake's signatures):
/// libpq's `prefer` and `require`, which encrypt without knowing whom to trust.
#[derive(Debug)]
struct Unverified(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The URL without its query option `name`, and that option's value.
fn take_option(url: &str, name: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut value = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| match pair.split_once('=') {
            Some((key, v)) if key == name => {
                value = Some(v.to_owned());
                false
            }
            _ => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, value)
}

/// The URL with its password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.find("password=") {
        Some(i) => {
            let end = tail[i..].find('&').map_or(tail.len(), |e| i + e);
            format!("{}password=***{}", &tail[..i], &tail[end..])
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

pub(in crate::store) fn error(at: &str, e: postgres::Error) -> StoreError {
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        // The driver's own words name the stage ("error connecting to server"); the
        // cause (refused, timed out, a certificate) is in its sources.
        None => crate::error::with_causes(&e),
    };
    StoreError::Postgres {
        at: at.to_owned(),
        message,
    }
}

/// Connects on the calling thread (which must not be a tokio worker) and sets the
/// session's commit durability and its limit on idling inside a transaction.
fn connect(target: &Target, durability: Durability) -> Result<Client, postgres::Error> {
    let mut client = Client::connect(&target.url, target.tls.clone())?;
    let sync = match durability {
        Durability::Full => "on",
        Durability::Process => "off",
    };
    // A process paused inside a transaction (SIGSTOP, a long pause) must not hold row
    // locks that keep other workers from its runs: the server ends such a session.
    client.batch_execute(&format!(
        "SET synchronous_commit = {sync}; SET application_name = 'flow'; \
         SET idle_in_transaction_session_timeout = '{}ms'",
        IDLE_IN_TRANSACTION.as_millis()
    ))?;
    Ok(client)
}

/// Runs `f` on a thread of its own and waits for it (a synchronous client must not be
/// used on a tokio worker thread).
fn on_own_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, std::io::Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)?
        .join()
        .map_err(|_| std::io::Error::other("thread panicked"))
}

impl Postgres {
    pub(super) fn open(url: &str, options: &StoreOptions) -> Result<Postgres, StoreError> {
        let at = redact(url);
        let url = Target::parse(url).map_err(|message| StoreError::Postgres {
            at: at.clone(),
            message,
        })?;
        let url = &url;
        let io = |e: std::io::Error| StoreError::Postgres {
            at: at.clone(),
            message: e.to_string(),
        };
        let durability = options.durability;
        let (u, a) = (url.clone(), at.clone());
        let client = on_own_thread("flow-store-open", move || -> Result<Client, StoreError> {
            let mut client = connect(&u, durability).map_err(|e| error(&a, e))?;
            migrate(&mut client, &a)?;
            Ok(client)
        })
        .map_err(io)??;
        let (writer, rx) = mpsc::channel();
        let (u, a) = (url.clone(), at.clone());
        let owners = Owners::default();
        let fence = owners.clone();
        let health = Arc::new(Health::default());
        let watched = health.clone();
        std::thread::Builder::new()
            .name("flow-store-writer".into())
            .spawn(move || writer::run(u, a, durability, client, rx, fence, &watched))
            .map_err(io)?;
        let (readers, jobs) = mpsc::channel::<ReadJob>();
        let jobs = Arc::new(Mutex::new(jobs));
        for _ in 0..READERS {
            let (jobs, url) = (jobs.clone(), url.clone());
            std::thread::Builder::new()
                .name("flow-store-reader".into())
                .spawn(move || read_loop(url, durability, &jobs))
                .map_err(io)?;
        }
        Ok(Postgres {
            url: url.clone(),
            at,
            writer,
            readers,
            owners,
            health,
            listening: std::sync::Once::new(),
        })
    }

    /// Whether the writer reaches the server now, and the outages it went through.
    pub(super) fn health(&self) -> (bool, u64) {
        use std::sync::atomic::Ordering;
        (
            !self.health.down.load(Ordering::Relaxed),
            self.health.outages.load(Ordering::Relaxed),
        )
    }

    pub(super) fn send(&self, write: Write) -> Result<(), StoreError> {
        self.writer
            .send(writer::PgOp::Write(write))
            .map_err(|_| StoreError::WriterGone)
    }

    /// Runs `f` in the writer's current transaction (inside a savepoint, so its failure
    /// undoes only its own writes) and returns its result once the batch committed.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let at = self.at.clone();
        self.exec(move |t| f(t).map_err(|e| error(&at, e))).await
    }

    /// [`Postgres::write`] for a closure that reports its own errors.
    async fn exec<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let at = self.at.clone();
        let op = writer::PgOp::Exec(Box::new(move |t: &mut Transaction<'_>| -> AfterCommit {
            let result = match t.savepoint("flow_write") {
                Ok(mut savepoint) => match f(&mut savepoint) {
                    Ok(value) => savepoint
                        .commit()
                        .map(|()| value)
                        .map_err(|e| error(&at, e)),
                    Err(e) => {
                        let _ = savepoint.rollback();
                        Err(e)
                    }
                },
                Err(e) => Err(error(&at, e)),
            };
            Box::new(move |commit_error: Option<String>| {
                let result = match commit_error {
                    None => result,
                    Some(message) => Err(StoreError::Postgres { at, message }),
                };
                let _ = tx.send(result);
            })
        }));
        self.writer.send(op).map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` on a reader connection and waits for it (blocking, as SQLite's reads do).
    fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> Result<T, postgres::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let at = self.at.clone();
        self.readers
            .send(Box::new(move |reader: &mut Reader| {
                let result = match reader.session() {
                    Ok(session) => f(session).map_err(|e| error(&at, e)),
                    Err(e) => Err(error(&at, e)),
                };
                let _ = tx.send(result);
            }))
            .map_err(|_| StoreError::WriterGone)?;
        rx.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// A query in the shared SQL (already in PostgreSQL's numbering), on a reader.
    pub(super) fn query(
        &self,
        sql: String,
        params: Vec<SqlValue>,
    ) -> Result<Vec<SqlRow>, StoreError> {
        self.read(move |s| {
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
            s.all(&sql, &refs)?.iter().map(sql_row).collect()
        })
    }

    /// [`super::Store::transact`] on PostgreSQL: inside a savepoint of the writer's
    /// transaction.
    pub(super) async fn transact<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn SqlTx) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let at = self.at.clone();
        self.exec(move |t| f(&mut PostgresTx { tx: t, at: &at }))
            .await
    }

    pub(super) fn has_table(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.read(move |s| {
            let n: i64 = s.one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
                &[&name],
            )?.get(0);
            Ok(n > 0)
        })
    }

    pub(super) async fn save_program(
        &self,
        hash: &str,
        artefact: Vec<u8>,
        at: i64,
    ) -> Result<(), StoreError> {
        let hash = hash.to_owned();
        self.write(move |t| {
            t.execute(
                "INSERT INTO programs (hash, created_at, artefact) VALUES ($1, $2, $3) ON CONFLICT (hash) DO NOTHING",
                &[&hash, &at, &artefact],
            )
            .map(drop)
        })
        .await
    }

    pub(super) fn program(&self, hash: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let hash = hash.to_owned();
        self.read(move |s| {
            Ok(
                s.opt("SELECT artefact FROM programs WHERE hash = $1", &[&hash])?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn run_where(
        &self,
        condition: &'static str,
        args: Vec<Box<dyn ToSql + Sync + Send>>,
    ) -> Result<Option<RunRow>, StoreError> {
        self.read(move |s| {
            let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE {condition}");
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
            s.opt(&sql, &params)?.map(|r| run_row(&r)).transpose()
        })
    }

    pub(super) fn run_by_id(&self, run_id: &str) -> Result<Option<RunRow>, StoreError> {
        self.run_where("run_id = $1", vec![Box::new(run_id.to_owned())])
    }

    pub(super) fn run_by_key(&self, key: RunKey) -> Result<Option<RunRow>, StoreError> {
        self.run_where("id = $1", vec![Box::new(key)])
    }

    pub(super) fn child_run(
        &self,
        parent: RunKey,
        step: &str,
    ) -> Result<Option<RunRow>, StoreError> {
        self.run_where(
            "parent = $1 AND parent_step = $2",
            vec![Box::new(parent), Box::new(step.to_owned())],
        )
    }

    /// The runs a filter's query (`RunFilter::to_sql`, renumbered) selects.
    pub(super) fn list_runs(
        &self,
        sql: String,
        args: Vec<SqlValue>,
    ) -> Result<Vec<RunRow>, StoreError> {
        self.read(move |s| {
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
            s.all(&sql, &params)?.iter().map(run_row).collect()
        })
    }

    pub(super) fn events_from(&self, run: RunKey, from: u32) -> Result<Vec<Event>, StoreError> {
        self.read(move |s| {
            let rows = s.all(
                "SELECT run, seq, at, kind, step, attempt, data FROM events WHERE run = $1 AND seq >= $2 ORDER BY seq",
                &[&run, &i64::from(from)],
            )?;
            Ok(rows.iter().filter_map(event_row).collect())
        })
    }

    pub(super) fn events_of_kinds(
        &self,
        runs: &[RunKey],
        kinds: &[EventKind],
    ) -> Result<Vec<Event>, StoreError> {
        let runs = runs.to_vec();
        let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_owned()).collect();
        self.read(move |s| {
            let rows = s.all(
                "SELECT run, seq, at, kind, step, attempt, data FROM events WHERE run = ANY($1) AND kind = ANY($2) ORDER BY array_position($1, run), seq",
                &[&runs, &kinds],
            )?;
            Ok(rows.iter().filter_map(event_row).collect())
        })
    }

    pub(super) fn unfinished_owners(&self) -> Result<Vec<String>, StoreError> {
        self.read(|s| {
            let rows = s.all(
                "SELECT DISTINCT executor FROM runs WHERE status IN ('pending', 'running', 'waiting') AND executor IS NOT NULL",
                &[],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    pub(super) async fn claim_runs_of(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<RunKey>, StoreError> {
        let (from, to) = (from.to_owned(), to.to_owned());
        self.write(move |t| {
            let rows = t.query(
                "UPDATE runs SET executor = $2 WHERE executor = $1 AND status IN ('pending', 'running', 'waiting') RETURNING id, parent",
                &[&from, &to],
            )?;
            // Child runs are driven by their parent's `run` step, not on their own.
            Ok(rows
                .iter()
                .filter(|r| r.get::<_, Option<i64>>(1).is_none())
                .map(|r| r.get(0))
                .collect())
        })
        .await
    }

    pub(super) async fn claim_run(
        &self,
        key: RunKey,
        from: Option<String>,
        to: &str,
    ) -> Result<bool, StoreError> {
        let to = to.to_owned();
        self.write(move |t| {
            let n = t.execute(
                "UPDATE runs SET executor = $3 WHERE (id = $1 OR parent = $1) AND executor IS NOT DISTINCT FROM $2 AND status IN ('pending', 'running', 'waiting')",
                &[&key, &from, &to],
            )?;
            Ok(n > 0)
        })
        .await
    }

    pub(super) async fn cancel_run(&self, key: RunKey, at: i64) -> Result<bool, StoreError> {
        self.write(move |t| {
            let n = t.execute(
                "UPDATE runs SET status = 'cancelled', finished_at = $2, error = '{\"kind\":\"runtime\",\"message\":\"cancelled\"}' WHERE (id = $1 OR parent = $1) AND status IN ('pending', 'running', 'waiting')",
                &[&key, &at],
            )?;
            Ok(n > 0)
        })
        .await
    }

    pub(super) fn status_of(&self, key: RunKey) -> Result<Option<RunStatus>, StoreError> {
        self.read(move |s| {
            Ok(s.opt("SELECT status FROM runs WHERE id = $1", &[&key])?
                .and_then(|r| RunStatus::parse(r.get(0))))
        })
    }

    pub(super) fn cancelled_of(&self, executor: &str) -> Result<Vec<RunKey>, StoreError> {
        let executor = executor.to_owned();
        self.read(move |s| {
            let rows = s.all(
                "SELECT id FROM runs WHERE executor = $1 AND status = 'cancelled'",
                &[&executor],
            )?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    /// Deletes finished runs created before `before` with their events and children;
    /// returns how many top-level runs went. Works in transactions of at most
    /// [`PRUNE_BATCH`] top-level runs, so no lock is held long and other writes go on
    /// between them.
    pub(super) async fn prune(&self, before: i64) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let pruned = self.write(move |t| {
                t.execute(
                    "CREATE TEMP TABLE flow_doomed ON COMMIT DROP AS WITH RECURSIVE doomed(id) AS (\
                       SELECT id FROM (SELECT id FROM runs WHERE parent IS NULL AND created_at < $1 \
                         AND status IN ('completed', 'failed', 'cancelled') ORDER BY id LIMIT $2) seed \
                       UNION SELECT r.id FROM runs r JOIN doomed d ON r.parent = d.id) \
                     SELECT id FROM doomed",
                    &[&before, &PRUNE_BATCH],
                )?;
                let top: i64 = t
                    .query_one(
                        "SELECT count(*) FROM runs WHERE parent IS NULL AND id IN (SELECT id FROM flow_doomed)",
                        &[],
                    )?
                    .get(0);
                t.batch_execute(
                    "DELETE FROM events WHERE run IN (SELECT id FROM flow_doomed);
                     DELETE FROM signals WHERE run IN (SELECT id FROM flow_doomed);
                     DELETE FROM event_waits WHERE run IN (SELECT id FROM flow_doomed);
                     DELETE FROM runs WHERE id IN (SELECT id FROM flow_doomed);
                     DROP TABLE flow_doomed;",
                )?;
                Ok(top)
            })
            .await?;
            total += usize::try_from(pruned).unwrap_or(0);
            if pruned < PRUNE_BATCH {
                break;
            }
        }
        self.write(|t| {
            t.execute(
                "DELETE FROM programs p WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.program = p.hash)",
                &[],
            )
            .map(drop)
        })
        .await?;
        Ok(total)
    }

    /// Claims queued runs and runs of executors whose heartbeat is stale, with their
    /// unfinished children, in one statement (two data-modifying parts, one commit) on
    /// a reader connection: an idle worker's poll is one query, with no transaction
    /// around it.
    pub(super) async fn claim_runnable(
        &self,
        to: &str,
        limit: usize,
    ) -> Result<Vec<RunRow>, StoreError> {
        let to = to.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stale = lease::stale_millis();
        let free = format!(
            "(executor IS NULL OR NOT EXISTS (SELECT 1 FROM executors e WHERE e.token = runs.executor AND e.heartbeat_at > {NOW_MS} - $3))"
        );
        // Runs without a `concurrency` limit, and whether limited ones wait: one
        // statement, so an idle worker's poll is one query.
        let unlimited = format!(
            "WITH claimed AS (\
               UPDATE runs SET executor = $1 WHERE id IN (\
                 SELECT id FROM runs WHERE status IN ('pending', 'running', 'waiting') AND parent IS NULL \
                 AND concurrency IS NULL AND {free} \
                 ORDER BY priority DESC, created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
               RETURNING {RUN_COLUMNS}), \
             children AS (\
               UPDATE runs SET executor = $1 WHERE parent IN (SELECT id FROM claimed) \
               AND status IN ('pending', 'running', 'waiting') RETURNING id), \
             waiting AS (SELECT EXISTS (SELECT 1 FROM runs WHERE concurrency IS NOT NULL \
               AND status IN ('pending', 'running', 'waiting') AND parent IS NULL AND {free}) AS limited) \
             SELECT claimed.*, waiting.limited FROM waiting LEFT JOIN claimed ON true"
        );
        // Runs with a limit, under a lock all such claims take: a workflow's unfinished
        // runs held by live executors are counted and only as many more are claimed as
        // its limit allows, highest priority and oldest first.
        let limited = format!(
            "WITH busy AS (SELECT workflow, count(*) AS n FROM runs \
               WHERE concurrency IS NOT NULL AND status IN ('pending', 'running', 'waiting') AND parent IS NULL \
               AND NOT {free} GROUP BY workflow), \
             candidates AS (SELECT id, workflow, concurrency, priority, created_at, \
               row_number() OVER (PARTITION BY workflow ORDER BY priority DESC, created_at, id) AS place \
               FROM runs WHERE concurrency IS NOT NULL AND status IN ('pending', 'running', 'waiting') \
               AND parent IS NULL AND {free}), \
             picked AS (SELECT c.id FROM candidates c LEFT JOIN busy b ON b.workflow = c.workflow \
               WHERE coalesce(b.n, 0) + c.place <= c.concurrency \
               ORDER BY c.priority DESC, c.created_at, c.id LIMIT $2), \
             claimed AS (UPDATE runs SET executor = $1 WHERE id IN (SELECT id FROM picked) RETURNING {RUN_COLUMNS}), \
             children AS (UPDATE runs SET executor = $1 WHERE parent IN (SELECT id FROM claimed) \
               AND status IN ('pending', 'running', 'waiting') RETURNING id) \
             SELECT * FROM claimed"
        );
        let (tx, rx) = oneshot::channel();
        let at = self.at.clone();
        self.readers
            .send(Box::new(move |reader: &mut Reader| {
                let result = (|| {
                    let session = reader.session()?;
                    let mut runs = Vec::new();
                    let mut limited_waiting = false;
                    for row in session.all(&unlimited, &[&to, &limit, &stale])? {
                        limited_waiting |= row.get::<_, Option<bool>>(20).unwrap_or(false);
                        if row.get::<_, Option<i64>>(0).is_some() {
                            runs.push(run_row(&row)?);
                        }
                    }
                    let room = limit - runs.len() as i64;
                    if limited_waiting && room > 0 {
                        let mut t = session.client.transaction()?;
                        t.execute("SELECT pg_advisory_xact_lock($1)", &[&LIMITED_CLAIMS_LOCK])?;
                        for row in t.query(limited.as_str(), &[&to, &room, &stale])? {
                            runs.push(run_row(&row)?);
                        }
                        t.commit()?;
                    }
                    Ok(runs)
                })()
                .map_err(|e| error(&at, e));
                let _ = tx.send(result);
            }))
            .map_err(|_| StoreError::WriterGone)?;
        let mut runs = rx.await.map_err(|_| StoreError::WriterGone)??;
        runs.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.created_at, r.key));
        Ok(runs)
    }

    /// Starts (once) a thread that listens for `flow_runnable` notifications and
    /// forwards each to `hint`; it reconnects when its connection breaks and ends when
    /// the store is dropped.
    pub(super) fn listen_for_work(&self, hint: &Arc<tokio::sync::Notify>) {
        self.listening.call_once(|| {
            let (url, at, weak) = (self.url.clone(), self.at.clone(), Arc::downgrade(hint));
            let spawned = std::thread::Builder::new()
                .name("flow-store-listen".into())
                .spawn(move || listen(&url, &at, &weak));
            if let Err(e) = spawned {
                tracing::warn!(store = %self.at, error = %e, "cannot listen for queued runs; workers poll");
            }
        });
    }

    pub(super) async fn put_signal(
        &self,
        run: RunKey,
        name: &str,
        payload: String,
        id: Option<String>,
        at: i64,
    ) -> Result<SignalStored, StoreError> {
        let name = name.to_owned();
        self.write(move |t| {
            if let Some(id) = &id
                && let Some(row) = t.query_opt(
                    "SELECT id FROM signals WHERE run = $1 AND signal_id = $2",
                    &[&run, id],
                )?
            {
                return Ok(SignalStored {
                    seq: row.get(0),
                    duplicate: true,
                });
            }
            let row = t.query_one(
                "INSERT INTO signals (run, name, payload, signal_id, at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&run, &name, &payload, &id, &at],
            )?;
            Ok(SignalStored {
                seq: row.get(0),
                duplicate: false,
            })
        })
        .await
    }

    pub(super) async fn take_signal(
        &self,
        run: RunKey,
        name: &str,
        step: &str,
    ) -> Result<Option<String>, StoreError> {
        let (name, step) = (name.to_owned(), step.to_owned());
        self.write(move |t| {
            if let Some(row) = t.query_opt(
                "SELECT payload FROM signals WHERE run = $1 AND taken_by = $2",
                &[&run, &step],
            )? {
                return Ok(Some(row.get(0)));
            }
            let taken = t.query_opt(
                "UPDATE signals SET taken_by = $3 WHERE id = (SELECT id FROM signals WHERE run = $1 AND name = $2 AND taken_by IS NULL ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING payload",
                &[&run, &name, &step],
            )?;
            Ok(taken.map(|r| r.get(0)))
        })
        .await
    }

    pub(super) fn signals_after(&self, after: i64) -> Result<(Vec<RunKey>, i64), StoreError> {
        self.read(move |s| {
            let newest: i64 = s
                .one("SELECT coalesce(max(id), 0)::bigint FROM signals", &[])?
                .get(0);
            if newest <= after {
                return Ok((Vec::new(), newest));
            }
            let rows = s.all(
                "SELECT DISTINCT run FROM signals WHERE id > $1 AND taken_by IS NULL",
                &[&after],
            )?;
            Ok((rows.iter().map(|r| r.get(0)).collect(), newest))
        })
    }

    pub(super) async fn put_event_wait(&self, wait: EventWait) -> Result<(), StoreError> {
        self.write(move |t| {
            t.execute(
                "INSERT INTO event_waits (run, step, program, workflow, integration, event, args, locals, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (run, step) DO NOTHING",
                &[
                    &wait.run,
                    &wait.step,
                    &wait.program,
                    &wait.workflow,
                    &wait.integration,
                    &wait.event,
                    &wait.args,
                    &wait.locals,
                    &wait.at,
                ],
            )
            .map(drop)
        })
        .await
    }

    pub(super) async fn remove_event_wait(
        &self,
        run: RunKey,
        step: &str,
    ) -> Result<(), StoreError> {
        let step = step.to_owned();
        self.write(move |t| {
            t.execute(
                "DELETE FROM event_waits WHERE run = $1 AND step = $2",
                &[&run, &step],
            )
            .map(drop)
        })
        .await
    }

    pub(super) fn event_waits(
        &self,
        integration: &str,
        event: &str,
    ) -> Result<Vec<EventWait>, StoreError> {
        let (integration, event) = (integration.to_owned(), event.to_owned());
        self.read(move |s| {
            let rows = s.all(
                "SELECT id, run, step, program, workflow, integration, event, args, locals, at FROM event_waits WHERE integration = $1 AND event = $2 ORDER BY id",
                &[&integration, &event],
            )?;
            Ok(rows
                .iter()
                .map(|r| EventWait {
                    id: r.get(0),
                    run: r.get(1),
                    step: r.get(2),
                    program: r.get(3),
                    workflow: r.get(4),
                    integration: r.get(5),
                    event: r.get(6),
                    args: r.get(7),
                    locals: r.get(8),
                    at: r.get(9),
                })
                .collect())
        })
    }

    pub(super) async fn give_to_wait(
        &self,
        wait: &EventWait,
        payload: String,
        delivery_id: Option<String>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let (id, run, name) = (wait.id, wait.run, event_signal(&wait.step));
        self.write(move |t| {
            if t.execute("DELETE FROM event_waits WHERE id = $1", &[&id])? == 0 {
                return Ok(false);
            }
            t.execute(
                "INSERT INTO signals (run, name, payload, signal_id, at) VALUES ($1, $2, $3, $4, $5)",
                &[&run, &name, &payload, &delivery_id, &at],
            )?;
            Ok(true)
        })
        .await
    }
}

/// Creates or upgrades the schema under an advisory lock: of processes opening the
/// database together, one creates it and the others find it made.
fn migrate(client: &mut Client, at: &str) -> Result<(), StoreError> {
    let err = |e| error(at, e);
    let mut tx = client.transaction().map_err(err)?;
    tx.batch_execute(&format!(
        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); CREATE TABLE IF NOT EXISTS flow_schema (version BIGINT NOT NULL);"
    ))
    .map_err(err)?;
    let found: Option<i64> = tx
        .query_one("SELECT max(version) FROM flow_schema", &[])
        .map_err(err)?
        .get(0);
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::PostgresTooNew {
            at: at.to_owned(),
            found,
        });
    }
    if found < SCHEMA_VERSION {
        if found > 0 {
            for upgrade in &UPGRADES[(found as usize - 1)..] {
                tx.batch_execute(upgrade).map_err(err)?;
            }
        }
        tx.batch_execute(SCHEMA).map_err(err)?;
        tx.execute("DELETE FROM flow_schema", &[]).map_err(err)?;
        tx.execute(
            "INSERT INTO flow_schema (version) VALUES ($1)",
            &[&SCHEMA_VERSION],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}

/// A reader thread's connection, made when first needed and again after it broke.
struct Reader {
    url: Target,
    durability: Durability,
    session: Option<Session>,
}

impl Reader {
    fn session(&mut self) -> Result<&mut Session, postgres::Error> {
        let session = match self.session.take() {
            Some(s) if !s.client.is_closed() => s,
            _ => Session {
                client: connect(&self.url, self.durability)?,
                statements: HashMap::new(),
            },
        };
        Ok(self.session.insert(session))
    }
}

/// A connection and the statements prepared on it.
struct Session {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Session {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    fn all(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.query(&s, params)
    }

    fn opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.query_opt(&s, params)
    }

    fn one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, postgres::Error> {
        let s = self.statement(sql)?;
        self.client.query_one(&s, params)
    }
}

fn read_loop(url: Target, durability: Durability, jobs: &Mutex<mpsc::Receiver<ReadJob>>) {
    let mut reader = Reader {
        url,
        durability,
        session: None,
    };
    loop {
        let job = {
            let jobs = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            jobs.recv()
        };
        let Ok(job) = job else { return };
        job(&mut reader);
    }
}

/// A row of any query, as the shared SQL's values.
pub(in crate::store) fn sql_row(r: &Row) -> Result<SqlRow, postgres::Error> {
    use postgres::types::Type;
    let mut values = Vec::with_capacity(r.len());
    for (i, column) in r.columns().iter().enumerate() {
        let t = column.type_();
        let value = if *t == Type::INT8 {
            r.try_get::<_, Option<i64>>(i)?.map(SqlValue::Int)
        } else if *t == Type::INT4 {
            r.try_get::<_, Option<i32>>(i)?
                .map(|v| SqlValue::Int(v.into()))
        } else if *t == Type::INT2 {
            r.try_get::<_, Option<i16>>(i)?
                .map(|v| SqlValue::Int(v.into()))
        } else if *t == Type::BOOL {
            r.try_get::<_, Option<bool>>(i)?
                .map(|v| SqlValue::Int(v.into()))
        } else if *t == Type::FLOAT8 {
            r.try_get::<_, Option<f64>>(i)?.map(SqlValue::Float)
        } else if *t == Type::FLOAT4 {
            r.try_get::<_, Option<f32>>(i)?
                .map(|v| SqlValue::Float(v.into()))
        } else if *t == Type::BYTEA {
            r.try_get::<_, Option<Vec<u8>>>(i)?.map(SqlValue::Bytes)
        } else {
            r.try_get::<_, Option<String>>(i)?.map(SqlValue::Text)
        };
        values.push(value.unwrap_or(SqlValue::Null));
    }
    Ok(SqlRow(values))
}

/// Binds a shared-SQL value to whatever type PostgreSQL inferred for the parameter.
impl ToSql for SqlValue {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match self {
            SqlValue::Null => Ok(postgres::types::IsNull::Yes),
            SqlValue::Int(i) => match *ty {
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            SqlValue::Float(f) => f.to_sql(ty, out),
            SqlValue::Text(s) => s.to_sql(ty, out),
            SqlValue::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn run_row(r: &Row) -> Result<RunRow, postgres::Error> {
    super::run_from_columns(|i| r.try_get(i), |i| r.try_get(i))
}

/// An event row; rows of kinds this build does not know are skipped.
fn event_row(r: &Row) -> Option<Event> {
    let kind = EventKind::parse(r.get(3))?;
    Some(Event {
        run: r.get(0),
        seq: u32::try_from(r.get::<_, i64>(1)).ok()?,
        at: r.get(2),
        kind,
        step: r.get(4),
        attempt: r
            .get::<_, Option<i64>>(5)
            .and_then(|a| u32::try_from(a).ok()),
        data: r.get(6),
    })
}

/// The listener of [`Postgres::listen_for_work`].
fn listen(url: &Target, at: &str, hint: &std::sync::Weak<tokio::sync::Notify>) {
    let mut failures = 0u32;
    let mut client: Option<Client> = None;
    while hint.strong_count() > 0 {
        if client.as_ref().is_none_or(Client::is_closed) {
            match connect(url, Durability::Full).and_then(|mut c| {
                c.batch_execute("LISTEN flow_runnable")?;
                Ok(c)
            }) {
                Ok(c) => {
                    client = Some(c);
                    failures = 0;
                    // Runs queued while not listening are found by this nudge.
                    if let Some(h) = hint.upgrade() {
                        h.notify_one();
                    }
                }
                Err(e) => {
                    tracing::warn!(store = %at, error = %e, "cannot listen for queued runs; workers poll meanwhile");
                    std::thread::sleep(backoff(failures));
                    failures += 1;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        // Waits on the socket (no query); a second passes to notice a dropped store.
        let heard = c
            .notifications()
            .timeout_iter(Duration::from_secs(1))
            .next();
        match heard {
            Ok(Some(_)) => {
                if let Some(h) = hint.upgrade() {
                    h.notify_one();
                }
            }
            Ok(None) => {}
            Err(_) => client = None,
        }
    }
}

/// How long a retry waits after the `n`th failure in a row: 100 ms doubling to 5 s.
fn backoff(n: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << n.min(6))).min(Duration::from_secs(5))
}
