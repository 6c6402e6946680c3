//! The `xray-collector` command line: arguments (clap), the log, and one
//! module per group of commands — `run` (shipping), `migrate` (the schema)
//! `read` (`executions`, `show`, `why`, `search`, `stats`) and `serve`
//! (the web UI and the API).
//!
//! Command results go to stdout; everything else is a `tracing` event on
//! stderr (see [`logging`]). A command that fails prints one line — text,
//! or one JSON object with `--log-format json` — and exits 2 for a usage
//! error, 1 for a failure.

mod import;
mod logging;
mod migrate;
mod prune;
mod read;
mod reason;
mod run;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xray_collector::backend::postgres::Redactor;
use xray_collector::backend::{redact_url, AnyStore, StoreError};
use xray_collector::render::escape;

use logging::LogFormat;

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
    /// How log lines on stderr are written.
    #[arg(long, global = true, env = "XRAY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
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
    Run(run::RunArgs),
    /// List executions, newest first.
    Executions(read::ExecutionsArgs),
    /// Show one execution as a tree of steps.
    Show(read::ShowArgs),
    /// Follow one candidate through an execution's decisions.
    Why(read::WhyArgs),
    /// Full-text search over step names, inputs, outputs and errors.
    Search(read::SearchArgs),
    /// Per step name: count, error rate, p50/p95/max duration; tokens per model.
    Stats(read::StatsArgs),
    /// Serve the web UI and the JSON API (loopback by default).
    Serve(serve::ServeArgs),
    /// Delete executions older than a duration, with their steps.
    Prune(prune::PruneArgs),
    /// Import the earlier X-Ray's JSON data.
    Import(import::ImportArgs),
    /// Explain what is waiting, or an execution's steps again.
    Reason(reason::ReasonArgs),
    /// Apply, revert or list schema migrations.
    Migrate {
        #[command(subcommand)]
        action: Option<migrate::MigrateAction>,
    },
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

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
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
            let format = requested_log_format().unwrap_or(LogFormat::Text);
            fail(format, &format!("{message} (see --help)"));
            return ExitCode::from(2);
        }
    };
    let redactor = cli
        .backend
        .database_url
        .as_deref()
        .map(Redactor::for_url)
        .unwrap_or_default();
    if let Err(e) = logging::init(cli.log_format, redactor.clone()) {
        eprintln!("xray-collector: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            fail(cli.log_format, &format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let format = cli.log_format;
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            // Errors may quote a database URL: never print its password.
            let text = redactor.scrub(&format!("{e:#}")).replace('\n', " ");
            fail(format, &text);
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Reports why the command failed: one line, as the log is written.
fn fail(format: LogFormat, message: &str) {
    match format {
        // The message may quote captured or typed text: escaped like the
        // rest of what reaches a terminal.
        LogFormat::Text => eprintln!("xray-collector: {}", escape(message)),
        LogFormat::Json => {
            // Through the log when it is installed (a JSON line with the
            // log's fields), else written the same way by hand.
            if tracing::dispatcher::has_been_set() {
                tracing::error!("{message}");
            } else {
                eprintln!(
                    "{}",
                    serde_json::json!({ "level": "ERROR", "message": message })
                );
            }
        }
    }
}

/// The log format asked for on a command line clap refused.
fn requested_log_format() -> Option<LogFormat> {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        let value = match a.strip_prefix("--log-format") {
            Some("") => args.get(i + 1).map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        }?;
        clap::ValueEnum::from_str(value, true).ok()
    });
    from_args.or_else(|| {
        let value = std::env::var("XRAY_LOG_FORMAT").ok()?;
        clap::ValueEnum::from_str(&value, true).ok()
    })
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let backend = cli.backend;
    match cli.command {
        Command::Run(args) => run::run(args, &backend).await,
        Command::Migrate { action } => migrate::migrate(action, &backend).await,
        Command::Executions(args) => read::executions(args, &backend).await,
        Command::Show(args) => read::show(args, &backend).await,
        Command::Why(args) => read::why(args, &backend).await,
        Command::Search(args) => read::search(args, &backend).await,
        Command::Stats(args) => read::stats(args, &backend).await,
        Command::Serve(args) => serve::serve(args, &backend).await,
        Command::Prune(args) => prune::prune(args, &backend).await,
        Command::Import(args) => import::import(args, &backend).await,
        Command::Reason(args) => reason::reason(args, &backend).await,
    }
}

/// Whether a missing embedded store is created (shipping, migrating) or
/// an error (reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    Create,
    Refuse,
}

async fn open_store(backend: &Backend, missing: Missing) -> Result<AnyStore, StoreError> {
    match (&backend.database_url, missing) {
        (Some(url), _) => AnyStore::postgres(url).await,
        (None, Missing::Create) => AnyStore::sqlite(&backend.store).await,
        (None, Missing::Refuse) => AnyStore::sqlite_existing(&backend.store).await,
    }
}

async fn open(backend: &Backend, missing: Missing) -> anyhow::Result<AnyStore> {
    use anyhow::Context;
    open_store(backend, missing)
        .await
        .with_context(|| describe_backend(backend))
}

fn describe_backend(backend: &Backend) -> String {
    match &backend.database_url {
        Some(url) => format!("cannot use {}", redact_url(url)),
        None => format!("cannot use the store {}", backend.store.display()),
    }
}
