//! `xray-collector`: ships X-Ray outboxes to PostgreSQL (with a database
//! URL) or the embedded SQLite store (without), and manages the schema.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::sync::watch;
use uuid::Uuid;
use xray_collector::backend::{redact_url, AnyStore, Migrations, QueryStore, StoreError};
use xray_collector::migrate::MigrateError;
use xray_collector::query::{parse_time, Cursor, ExecutionFilter};
use xray_collector::render::{self, Style};
use xray_collector::ship::{Fault, Metrics, ShipConfig, Shipper};

#[derive(Parser, Debug)]
#[command(
    name = "xray-collector",
    version,
    about = "Ships X-Ray outboxes to a backend and reads traces back"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    backend: Backend,
}

/// The backend every command reads or writes. Global: accepted before or
/// after the subcommand's own words (`migrate up --database-url URL`).
#[derive(clap::Args, Debug, Clone)]
struct Backend {
    /// PostgreSQL URL; without it, the embedded store at XRAY_STORE is used.
    #[arg(long, global = true, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The embedded store's file (when no database URL is given).
    #[arg(
        long,
        global = true,
        env = "XRAY_STORE",
        default_value = ".xray/xray.db"
    )]
    store: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ship outboxes to the backend (until SIGINT/SIGTERM, or once).
    Run {
        /// An outbox to ship (repeatable); default XRAY_OUTBOX or .xray/outbox.db.
        #[arg(long = "outbox")]
        outboxes: Vec<PathBuf>,
        /// Ship everything in the outboxes at start, then exit.
        #[arg(long)]
        once: bool,
        /// Serve /healthz and /metrics on this address (e.g. 127.0.0.1:9464).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
        /// Most rows per batch.
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        batch_rows: u32,
    },
    /// List executions, newest first.
    Executions {
        /// Only this project.
        #[arg(long)]
        project: Option<String>,
        /// Only executions of this name.
        #[arg(long)]
        name: Option<String>,
        /// Only this status.
        #[arg(long, value_parser = ["running", "ok", "error"])]
        status: Option<String>,
        /// Started since: 30m, 2h, 7d, or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Started before: 30m, 2h, 7d, or an RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Continue after a previous page (the value it printed).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Show one execution as a tree of steps.
    Show {
        /// An execution id, or `latest`.
        execution: String,
        /// Print whole values instead of one-line previews.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Follow one candidate through an execution's decisions.
    Why {
        /// An execution id, or `latest`.
        execution: String,
        /// The candidate's id.
        candidate: String,
        #[command(flatten)]
        output: Output,
    },
    /// Full-text search over step names, inputs, outputs and errors.
    Search {
        /// Words to find (all of them).
        text: String,
        /// Most results.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        #[command(flatten)]
        output: Output,
    },
    /// Per step name: count, error rate, p50/p95/max duration; tokens per model.
    Stats {
        /// Only steps started since: 30m, 2h, 7d, or an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only this step name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Apply, revert or list schema migrations.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
}

#[derive(clap::Args, Debug, Clone, Copy)]
struct Output {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug, Clone, Copy)]
enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// Revert the last N applied migrations (default 1).
    Down {
        /// How many.
        #[arg(default_value_t = 1)]
        n: usize,
        /// Really drop what those migrations created (without it, nothing
        /// is changed).
        #[arg(long)]
        yes: bool,
    },
    /// List migrations and whether each is applied.
    Status,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line: the message, without the usage block and the tip.
            let text = e.render().to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("xray-collector: {message} (see --help)");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xray-collector: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // Errors may quote a database URL: never print its password.
            let text = scrub(&format!("{e:#}")).replace('\n', " ");
            eprintln!("xray-collector: {text}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn scrub(text: &str) -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() && text.contains(&url) => text.replace(&url, &redact_url(&url)),
        _ => text.to_owned(),
    }
}

async fn open_store(backend: &Backend) -> Result<AnyStore, StoreError> {
    match &backend.database_url {
        Some(url) => AnyStore::postgres(url).await,
        None => AnyStore::sqlite(&backend.store).await,
    }
}

async fn open(backend: &Backend) -> anyhow::Result<AnyStore> {
    open_store(backend)
        .await
        .with_context(|| describe_backend(backend))
}

/// A usage error (exit 2), as opposed to a failure (exit 1).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn time_arg(flag: &str, text: Option<&str>) -> anyhow::Result<Option<i64>> {
    text.map(|t| parse_time(t, now_us()).map_err(|e| UsageError(format!("--{flag}: {e}")).into()))
        .transpose()
}

/// Opens the backend for reading. The embedded store is ours: it is
/// created and migrated if needed (an empty store answers with nothing).
async fn open_for_query(backend: &Backend) -> anyhow::Result<AnyStore> {
    let store = open(backend).await?;
    if backend.database_url.is_none() {
        store.migrate_up().await?;
    }
    Ok(store)
}

async fn execution_id(store: &AnyStore, text: &str) -> anyhow::Result<Uuid> {
    if text == "latest" {
        return store
            .latest_execution(None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no executions recorded yet"));
    }
    Uuid::parse_str(text).map_err(|_| {
        UsageError(format!(
            "invalid execution id {text:?}: expected a UUID or `latest`"
        ))
        .into()
    })
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn style() -> Style {
    use std::io::IsTerminal;
    Style {
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let backend = cli.backend;
    match cli.command {
        Command::Executions {
            project,
            name,
            status,
            since,
            until,
            limit,
            cursor,
            output,
        } => {
            let filter = ExecutionFilter {
                project,
                name,
                status,
                since_us: time_arg("since", since.as_deref())?,
                until_us: time_arg("until", until.as_deref())?,
                limit: limit as usize,
                after: cursor
                    .as_deref()
                    .map(Cursor::decode)
                    .transpose()
                    .map_err(UsageError)?,
            };
            let store = open_for_query(&backend).await?;
            let page = store.executions(&filter).await?;
            if output.json {
                print_json(&page)?;
            } else {
                print!("{}", render::executions(&page, style()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show {
            execution,
            full,
            output,
        } => {
            let store = open_for_query(&backend).await?;
            let id = execution_id(&store, &execution).await?;
            let detail = store
                .execution(id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no execution {id}"))?;
            if output.json {
                print_json(&detail)?;
            } else {
                print!("{}", render::execution_tree(&detail, full, style()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Why {
            execution,
            candidate,
            output,
        } => {
            let store = open_for_query(&backend).await?;
            let id = execution_id(&store, &execution).await?;
            if store.execution(id).await?.is_none() {
                anyhow::bail!("no execution {id}");
            }
            let entries = store.why(id, &candidate).await?;
            if output.json {
                print_json(&serde_json::json!({
                    "execution_id": id, "candidate_id": candidate, "decisions": entries
                }))?;
            } else {
                print!("{}", render::why(&id, &candidate, &entries, style()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Search {
            text,
            limit,
            output,
        } => {
            if text.trim().is_empty() {
                return Err(UsageError("search text is empty".into()).into());
            }
            let store = open_for_query(&backend).await?;
            let hits = store.search(&text, limit as usize).await?;
            if output.json {
                print_json(&serde_json::json!({ "query": text, "hits": hits }))?;
            } else {
                print!("{}", render::search(&text, &hits, style()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats {
            since,
            name,
            output,
        } => {
            let since_us = time_arg("since", since.as_deref())?;
            let store = open_for_query(&backend).await?;
            let stats = store.stats(since_us, name.as_deref()).await?;
            if output.json {
                print_json(&stats)?;
            } else {
                print!("{}", render::stats(&stats, style()));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { action } => {
            if let Some(MigrateAction::Down { n, yes: false }) = action {
                // Refused before the backend is even opened: nothing changes.
                return Err(UsageError(format!(
                    "migrate down drops the tables of the last {n} migration(s) and \
                     everything in them: pass --yes to do it"
                ))
                .into());
            }
            let store = open(&backend).await?;
            match action.unwrap_or(MigrateAction::Up) {
                MigrateAction::Up => {
                    let applied = store.migrate_up().await?;
                    if applied.is_empty() {
                        println!("schema is up to date");
                    }
                    for v in applied {
                        println!("applied {v}");
                    }
                }
                MigrateAction::Down { n, .. } => {
                    for v in store.migrate_down(n).await? {
                        println!("reverted {v}");
                    }
                }
                MigrateAction::Status => {
                    for m in store.migrate_status().await? {
                        println!(
                            "{:>4} {:<24} {}",
                            m.version,
                            m.name,
                            if m.applied { "applied" } else { "pending" }
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            outboxes,
            once,
            listen,
            no_migrate,
            batch_rows,
        } => {
            let metrics = Arc::new(Metrics::default());
            if let Some(addr) = listen {
                let bound = xray_collector::http::serve(addr, metrics.clone())
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?;
                eprintln!("xray-collector: serving /healthz and /metrics on http://{bound}");
            }
            let (stop_tx, mut stop_rx) = watch::channel(false);
            tokio::spawn(async move {
                wait_for_signal().await;
                eprintln!("xray-collector: stopping after the batch in hand");
                let _ = stop_tx.send(true);
            });
            let Some(store) = open_for_run(&backend, no_migrate, &metrics, &mut stop_rx).await?
            else {
                return Ok(ExitCode::SUCCESS);
            };
            let outboxes = if outboxes.is_empty() {
                vec![std::env::var_os("XRAY_OUTBOX")
                    .map_or_else(|| PathBuf::from(".xray/outbox.db"), PathBuf::from)]
            } else {
                outboxes
            };
            let config = ShipConfig {
                outboxes,
                once,
                batch_rows: batch_rows as usize,
                fault: Fault::from_env(),
                ..ShipConfig::default()
            };
            let shipper = Shipper::new(Arc::new(store), config, metrics);
            let summary = shipper.run(stop_rx).await;
            eprintln!(
                "xray-collector: shipped {} rows in {} batches ({} dead-lettered)",
                summary.rows, summary.batches, summary.dead_letters
            );
            Ok(if summary.unreadable_outboxes > 0 && once {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Opens the backend and migrates it, waiting out a backend that is down
/// (or not migrated yet) with the shipper's backoff; `None` when stopped
/// by a signal meanwhile. Errors that waiting cannot fix end the run.
async fn open_for_run(
    backend: &Backend,
    no_migrate: bool,
    metrics: &Metrics,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<AnyStore>> {
    let backoff = xray_collector::ship::Backoff::default();
    let mut attempt = 0u32;
    loop {
        let (retriable, error) = match open_store(backend).await {
            Ok(store) if no_migrate => return Ok(Some(store)),
            Ok(store) => match store.migrate_up().await {
                Ok(_) => return Ok(Some(store)),
                Err(e @ MigrateError::Backend(_)) => (true, anyhow::Error::new(e)),
                Err(e) => return Err(e.into()),
            },
            Err(e) => (e.is_retriable(), anyhow::Error::new(e)),
        };
        if !retriable {
            return Err(error.context(describe_backend(backend)));
        }
        let wait = backoff.delay(attempt);
        let text = scrub(&format!("{:#}", error.context(describe_backend(backend))));
        eprintln!("xray-collector: {text}; retrying in {wait:?}");
        metrics.set_backend_problem(text);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return Ok(None),
        }
    }
}

fn describe_backend(backend: &Backend) -> String {
    match &backend.database_url {
        Some(url) => format!("cannot use {}", redact_url(url)),
        None => format!("cannot use the store {}", backend.store.display()),
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
