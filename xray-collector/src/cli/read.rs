//! The reading commands: `executions`, `show`, `why`, `search`, `stats`.
//! Each prints text (coloured only on a terminal, never with `NO_COLOR`)
//! or, with `--json`, one JSON document.

use std::process::ExitCode;

use uuid::Uuid;
use xray_collector::backend::{AnyStore, Migrations, QueryStore};
use xray_collector::query::{parse_time, Cursor, ExecutionFilter};
use xray_collector::render::{self, Style};

use super::{open, Backend, Missing, UsageError};

#[derive(clap::Args, Debug, Clone, Copy)]
pub(super) struct Output {
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args, Debug)]
pub(super) struct ExecutionsArgs {
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
}

#[derive(clap::Args, Debug)]
pub(super) struct ShowArgs {
    /// An execution id, or `latest`.
    execution: String,
    /// Print whole values instead of one-line previews.
    #[arg(long)]
    full: bool,
    #[command(flatten)]
    output: Output,
}

#[derive(clap::Args, Debug)]
pub(super) struct WhyArgs {
    /// An execution id, or `latest`.
    execution: String,
    /// The candidate's id.
    candidate: String,
    #[command(flatten)]
    output: Output,
}

#[derive(clap::Args, Debug)]
pub(super) struct SearchArgs {
    /// Words to find (all of them).
    text: String,
    /// Most results.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    #[command(flatten)]
    output: Output,
}

#[derive(clap::Args, Debug)]
pub(super) struct StatsArgs {
    /// Only steps started since: 30m, 2h, 7d, or an RFC 3339 time.
    #[arg(long)]
    since: Option<String>,
    /// Only this step name.
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    output: Output,
}

pub(super) async fn executions(
    args: ExecutionsArgs,
    backend: &Backend,
) -> anyhow::Result<ExitCode> {
    let filter = ExecutionFilter {
        project: args.project,
        name: args.name,
        status: args.status,
        since_us: time_arg("since", args.since.as_deref())?,
        until_us: time_arg("until", args.until.as_deref())?,
        limit: args.limit as usize,
        after: args
            .cursor
            .as_deref()
            .map(Cursor::decode)
            .transpose()
            .map_err(|e| UsageError(format!("--cursor: {e}")))?,
    };
    let store = open_for_query(backend).await?;
    let page = store.executions(&filter).await?;
    if args.output.json {
        print_json(&page)?;
    } else {
        print!("{}", render::executions(&page, style()));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn show(args: ShowArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let store = open_for_query(backend).await?;
    let id = execution_id(&store, &args.execution).await?;
    let detail = store
        .execution(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no execution {id}"))?;
    if args.output.json {
        print_json(&detail)?;
    } else {
        print!("{}", render::execution_tree(&detail, args.full, style()));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn why(args: WhyArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let store = open_for_query(backend).await?;
    let id = execution_id(&store, &args.execution).await?;
    if store.execution(id).await?.is_none() {
        anyhow::bail!("no execution {id}");
    }
    let entries = store.why(id, &args.candidate).await?;
    if args.output.json {
        print_json(&serde_json::json!({
            "execution_id": id, "candidate_id": args.candidate, "decisions": entries
        }))?;
    } else {
        print!("{}", render::why(&id, &args.candidate, &entries, style()));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn search(args: SearchArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    if args.text.trim().is_empty() {
        return Err(UsageError("search text is empty".into()).into());
    }
    let store = open_for_query(backend).await?;
    let hits = store.search(&args.text, args.limit as usize).await?;
    if args.output.json {
        print_json(&serde_json::json!({ "query": args.text, "hits": hits }))?;
    } else {
        print!("{}", render::search(&args.text, &hits, style()));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn stats(args: StatsArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let since_us = time_arg("since", args.since.as_deref())?;
    let store = open_for_query(backend).await?;
    let stats = store.stats(since_us, args.name.as_deref()).await?;
    if args.output.json {
        print_json(&stats)?;
    } else {
        print!("{}", render::stats(&stats, style()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the backend for reading. A missing embedded store is an error
/// (never created by a read); an existing one is ours — checked to be an
/// X-Ray store — and is migrated if needed (an empty store answers with
/// nothing). PostgreSQL is not migrated by a read.
async fn open_for_query(backend: &Backend) -> anyhow::Result<AnyStore> {
    let store = open(backend, Missing::Refuse).await?;
    if backend.database_url.is_none() {
        store.migrate_up().await?;
    }
    Ok(store)
}

fn time_arg(flag: &str, text: Option<&str>) -> anyhow::Result<Option<i64>> {
    let now_us = jiff::Timestamp::now().as_microsecond();
    text.map(|t| parse_time(t, now_us).map_err(|e| UsageError(format!("--{flag}: {e}")).into()))
        .transpose()
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
    println!("{}", render::to_json(value)?);
    Ok(())
}

/// Colour when stdout is a terminal and the environment allows it
/// (`NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`, as `anstream` reads them).
fn style() -> Style {
    Style {
        colour: anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never,
    }
}
