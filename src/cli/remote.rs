//! Commands that talk to a running `flow serve` over its API: `flow deploy`,
//! `flow deployments`, `flow schedules` and `flow deliveries`. The server is `--server`
//! (or `FLOW_SERVER`), the key `--key` (or `FLOW_API_KEY`); answers are printed as JSON
//! with `--format json`, as text otherwise, and API errors show their code and message.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine as _;
use clap::{Args, Subcommand};
use miette::{IntoDiagnostic, WrapErr, miette};
use serde_json::{Value as Json, json};

use super::EXIT_FAILURE;
use super::output::{ColorChoice, Format};

/// Where the server is and how to authenticate.
#[derive(Args, Clone, Default)]
pub struct RemoteArgs {
    /// A running `flow serve`'s base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "FLOW_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,

    /// An API key for the server (`flow keys create`).
    #[arg(
        long,
        env = "FLOW_API_KEY",
        value_name = "KEY",
        hide_env_values = true,
        global = true
    )]
    pub key: Option<String>,
}

/// The server, the key and how to print the answers.
#[derive(Args, Clone)]
pub struct ServerArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,

    #[arg(long, value_enum, default_value_t = Format::Human, global = true)]
    pub format: Format,
}

/// A small blocking client over the async one.
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    server: String,
    key: String,
    format: Format,
}

impl Client {
    fn new(args: ServerArgs) -> miette::Result<Client> {
        Client::to(args.remote, args.format)
    }

    fn to(args: RemoteArgs, format: Format) -> miette::Result<Client> {
        let server = args
            .server
            .ok_or_else(|| miette!("which server? pass --server URL or set FLOW_SERVER"))?;
        let key = args.key.ok_or_else(|| {
            miette!("no API key: pass --key KEY or set FLOW_API_KEY (create one with `flow keys create`)")
        })?;
        Ok(Client {
            server,
            key,
            format,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .into_diagnostic()?,
            http: reqwest::Client::new(),
        })
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> miette::Result<Json> {
        let url = format!("{}{path}", self.server.trim_end_matches('/'));
        let mut req = self.http.request(method, &url).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .into_diagnostic()
                .wrap_err_with(|| format!("cannot reach {url}"))?;
            let status = resp.status();
            let body: Json = resp.json().await.unwrap_or(Json::Null);
            if status.is_success() {
                Ok(body)
            } else {
                let code = body["error"]["code"].as_str().unwrap_or("error");
                let message = body["error"]["message"].as_str().unwrap_or("");
                let at = match body["error"]["path"].as_str() {
                    Some(path) => format!(" (at `{path}`)"),
                    None => String::new(),
                };
                Err(miette!(
                    "the server answered {status}: [{code}] {message}{at}"
                ))
            }
        })
    }

    fn print(&self, v: &Json, human: impl FnOnce(&Json)) {
        match self.format {
            Format::Json => println!("{v}"),
            Format::Human => human(v),
        }
    }
}

#[derive(Args)]
pub struct DeployArgs {
    /// `.flow` files or directories (checked here first) or `.flowc` artefacts.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub server: ServerArgs,
}

/// `flow deploy`: checks the sources here, then sends the artefacts; the server makes
/// them its next version.
pub fn deploy(args: DeployArgs, color: ColorChoice) -> miette::Result<ExitCode> {
    let Some(artefacts) = super::serve::load_all(&args.paths, color)? else {
        eprintln!("not deployed: the programs have errors");
        return Ok(ExitCode::from(EXIT_FAILURE));
    };
    let encoded: Vec<String> = artefacts
        .iter()
        .map(|a| base64::engine::general_purpose::STANDARD.encode(&a.bytes))
        .collect();
    let client = Client::new(args.server)?;
    let v = client.call(
        reqwest::Method::POST,
        "/api/v1/deployments",
        Some(json!({ "artefacts": encoded })),
    )?;
    client.print(&v, |v| println!("deployed version {}", v["version"]));
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct DeploymentsArgs {
    #[command(subcommand)]
    pub command: DeploymentsCommand,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Subcommand)]
pub enum DeploymentsCommand {
    /// Every version, newest first; `*` marks the active one.
    List,
    /// Deploy an earlier version's programs again, as a new version.
    Rollback {
        #[arg(value_name = "VERSION")]
        number: i64,
    },
}

pub fn deployments(args: DeploymentsArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let client = Client::new(args.server)?;
    match args.command {
        DeploymentsCommand::List => {
            let v = client.call(reqwest::Method::GET, "/api/v1/deployments", None)?;
            client.print(&v, |v| {
                for d in v["deployments"].as_array().into_iter().flatten() {
                    println!(
                        "{} {:>4}  {}  {}  {}",
                        if d["active"] == true { "*" } else { " " },
                        d["version"],
                        super::runs::time_text(d["created_at"].as_i64().unwrap_or(0)),
                        d["actor"].as_str().unwrap_or(""),
                        d["workflows"].as_array().map(|w| w.len()).unwrap_or(0)
                    );
                }
            });
        }
        DeploymentsCommand::Rollback { number: version } => {
            let v = client.call(
                reqwest::Method::POST,
                &format!("/api/v1/deployments/{version}/rollback"),
                None,
            )?;
            client.print(&v, |v| {
                println!(
                    "deployed version {} (the programs of version {version})",
                    v["version"]
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct SchedulesArgs {
    #[command(subcommand)]
    pub command: SchedulesCommand,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule: next fire, last fire, fires, missed and skipped ticks.
    List,
    /// Stop firing a schedule (its ticks count as skipped).
    Pause { workflow: String },
    /// Fire a paused schedule again.
    Resume { workflow: String },
    /// Start a run of a scheduled workflow now.
    Trigger { workflow: String },
}

pub fn schedules(args: SchedulesArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let client = Client::new(args.server)?;
    let (path, method) = match &args.command {
        SchedulesCommand::List => ("/api/v1/schedules".to_owned(), reqwest::Method::GET),
        SchedulesCommand::Pause { workflow } => (
            format!("/api/v1/schedules/{workflow}/pause"),
            reqwest::Method::POST,
        ),
        SchedulesCommand::Resume { workflow } => (
            format!("/api/v1/schedules/{workflow}/resume"),
            reqwest::Method::POST,
        ),
        SchedulesCommand::Trigger { workflow } => (
            format!("/api/v1/schedules/{workflow}/trigger"),
            reqwest::Method::POST,
        ),
    };
    let v = client.call(method, &path, None)?;
    client.print(&v, |v| match &args.command {
        SchedulesCommand::List => {
            println!(
                "{:<28} {:<18} {:<26} {:>6} {:>6} {:>7}",
                "WORKFLOW", "CRON", "NEXT", "FIRES", "MISSED", "SKIPPED"
            );
            for s in v["schedules"].as_array().into_iter().flatten() {
                println!(
                    "{:<28} {:<18} {:<26} {:>6} {:>6} {:>7}{}",
                    s["workflow"].as_str().unwrap_or(""),
                    s["cron"].as_str().unwrap_or(""),
                    s["next_fire"].as_str().unwrap_or("-"),
                    s["fires"],
                    s["missed"],
                    s["skipped"],
                    if s["paused"] == true {
                        "  (paused)"
                    } else {
                        ""
                    }
                );
            }
        }
        SchedulesCommand::Trigger { workflow } => {
            println!("started run {} of {workflow}", v["run"])
        }
        SchedulesCommand::Pause { workflow } => println!("paused {workflow}"),
        SchedulesCommand::Resume { workflow } => println!("resumed {workflow}"),
    });
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct DeliveriesArgs {
    /// Most deliveries to show.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// `flow deliveries`: webhook deliveries that started no run, with the reason.
pub fn deliveries(args: DeliveriesArgs, _color: ColorChoice) -> miette::Result<ExitCode> {
    let client = Client::new(args.server)?;
    let v = client.call(
        reqwest::Method::GET,
        &format!("/api/v1/deliveries?limit={}", args.limit),
        None,
    )?;
    client.print(&v, |v| {
        for d in v["deliveries"].as_array().into_iter().flatten() {
            println!(
                "{}  {:<24} {} {:<9} {}",
                super::runs::time_text(d["at"].as_i64().unwrap_or(0)),
                d["path"].as_str().unwrap_or(""),
                d["status"],
                d["outcome"].as_str().unwrap_or(""),
                d["reason"].as_str().unwrap_or("")
            );
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// `flow run --server`: starts a run of a deployed workflow and waits for its end,
/// printing its output as JSON; exits 0 when it completed, 1 otherwise.
pub fn run_remote(remote: RemoteArgs, workflow: &str, input: &Json) -> miette::Result<ExitCode> {
    let client = Client::to(remote, Format::Json)?;
    let started = client.call(
        reqwest::Method::POST,
        &format!("/api/v1/workflows/{}/runs?wait=60s", url_encode(workflow)),
        Some(input.clone()),
    )?;
    let id = started["run"]
        .as_str()
        .ok_or_else(|| miette!("the server answered without a run id: {started}"))?
        .to_owned();
    eprintln!("run {id} on {}", client.server);
    let mut run = started;
    while !matches!(
        run["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    ) {
        std::thread::sleep(std::time::Duration::from_millis(500));
        run = client.call(reqwest::Method::GET, &format!("/api/v1/runs/{id}"), None)?;
    }
    if run["status"] == "completed" {
        println!(
            "{}",
            serde_json::to_string_pretty(&run["output"]).into_diagnostic()?
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "run {id} {}: {}",
            run["status"].as_str().unwrap_or(""),
            run["error"]["message"].as_str().unwrap_or("")
        );
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}

/// `flow signal --server`: sends a signal through the run API.
pub fn signal_remote(
    remote: RemoteArgs,
    run: &str,
    name: &str,
    payload: &Json,
    id: Option<&str>,
    format: Format,
) -> miette::Result<ExitCode> {
    let client = Client::to(remote, format)?;
    let mut path = format!(
        "/api/v1/runs/{}/signals/{}",
        url_encode(run),
        url_encode(name)
    );
    if let Some(id) = id {
        path.push_str(&format!("?id={}", url_encode(id)));
    }
    let v = client.call(reqwest::Method::POST, &path, Some(payload.clone()))?;
    client.print(&v, |v| {
        if v["duplicate"] == true {
            println!(
                "signal `{name}` was already sent to run {run} with this id; nothing new stored"
            );
        } else {
            println!("signal `{name}` stored for run {run} (#{})", v["seq"]);
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// `flow runs list|show|cancel --server`: the same commands over the run API.
pub fn runs_remote(
    remote: RemoteArgs,
    command: &super::runs::RunsCommand,
) -> miette::Result<ExitCode> {
    use super::runs::RunsCommand;
    match command {
        RunsCommand::List {
            workflow,
            status,
            limit,
            format,
        } => {
            let client = Client::to(remote, *format)?;
            let mut query = format!("?limit={}", (*limit).clamp(1, 500));
            for (k, v) in [("workflow", workflow), ("status", status)] {
                if let Some(v) = v {
                    query.push_str(&format!("&{k}={}", url_encode(v)));
                }
            }
            let v = client.call(reqwest::Method::GET, &format!("/api/v1/runs{query}"), None)?;
            let runs = v["runs"].as_array().cloned().unwrap_or_default();
            match format {
                Format::Json => {
                    for r in &runs {
                        println!("{r}");
                    }
                }
                Format::Human => {
                    println!(
                        "{:<22} {:<24} {:<10} {:<21} {:<9}",
                        "RUN", "WORKFLOW", "STATUS", "STARTED", "TRIGGER"
                    );
                    for r in &runs {
                        println!(
                            "{:<22} {:<24} {:<10} {:<21} {:<9}",
                            r["run_id"].as_str().unwrap_or(""),
                            r["workflow"].as_str().unwrap_or(""),
                            r["status"].as_str().unwrap_or(""),
                            super::runs::time_text(r["created_at"].as_i64().unwrap_or(0)),
                            r["trigger"].as_str().unwrap_or("-")
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { run, format } => {
            let client = Client::to(remote, *format)?;
            let v = client.call(
                reqwest::Method::GET,
                &format!("/api/v1/runs/{}", url_encode(run)),
                None,
            )?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&v).into_diagnostic()?),
                Format::Human => {
                    for key in [
                        "run_id",
                        "workflow",
                        "status",
                        "trigger",
                        "actor",
                        "created_at",
                        "finished_at",
                    ] {
                        println!("{key:<12} {}", v[key]);
                    }
                    println!("{:<12} {}", "output", v["output"]);
                    if !v["error"].is_null() {
                        println!("{:<12} {}", "error", v["error"]);
                    }
                    for s in v["steps"].as_array().into_iter().flatten() {
                        println!(
                            "  {:<24} {:<10} attempts {} {} ms",
                            s["step"].as_str().unwrap_or(""),
                            s["status"].as_str().unwrap_or(""),
                            s["attempts"],
                            s["duration_ms"]
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Cancel { run } => {
            let client = Client::to(remote, Format::Human)?;
            let v = client.call(
                reqwest::Method::POST,
                &format!("/api/v1/runs/{}/cancel", url_encode(run)),
                None,
            )?;
            if v["cancelled"] == true {
                eprintln!("cancelled run {run}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("run {run} had already ended");
                Ok(ExitCode::from(EXIT_FAILURE))
            }
        }
        RunsCommand::Prune { .. } => Err(miette!(
            "`flow runs prune` works on a store file; run it where the server's store is (--store PATH)"
        )),
    }
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
