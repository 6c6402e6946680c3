//! The reading commands: `executions`, `show`, `why`, `search`, `stats`.
//! Each prints text (coloured only on a terminal, never with `NO_COLOR`)
//! or, with `--json`, one JSON document.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use uuid::Uuid;
use xray_collector::backend::{AnyStore, Migrations, QueryStore, StoreError};
use xray_collector::query::{
    parse_time, Cursor, ExecutionFilter, ExecutionHead, StepDetail, StepFilter, StepScope,
    MAX_STEP_PAGE,
};
use xray_collector::render::{self, ExecutionJson, StepTree, Style, TreeCut, TreeLines, Visit};

use super::{open, Backend, Missing, UsageError};

#[derive(clap::Args, Debug, Clone, Copy)]
pub(super) struct Output {
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub(super) json: bool,
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
    /// Only steps down to this depth (1: the top level only).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    depth: Option<usize>,
    /// At most this many steps, in tree order (each step before its
    /// children).
    ///
    /// With --json, the steps that --depth and --limit keep are listed in
    /// start order, and the execution's `steps` count still counts every
    /// step.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    limit: Option<usize>,
    #[command(flatten)]
    output: Output,
}

/// A count of 1 or more, for `--depth` and `--limit`.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number, at least 1".into()),
    }
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

/// Steps whose values `show` reads at once. With the ids and parents of
/// every step, these are all it holds, however large the execution.
const DETAIL_BATCH: usize = 1000;

/// `show`, in time linear in the number of steps (and the size of the
/// output) and in memory bounded by the outlines plus [`DETAIL_BATCH`]
/// steps: the head, then the outline of every step (ids and parents only
/// kept), then the steps' values a batch at a time, written to stdout as
/// they come.
pub(super) async fn show(args: ShowArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let store = open_for_query(backend).await?;
    let id = execution_id(&store, &args.execution).await?;
    let head = store
        .execution_head(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no execution {id}"))?;
    let cut = TreeCut {
        depth: args.depth,
        limit: args.limit,
    };
    let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let shown = if args.output.json {
        show_json(&store, &head, cut, out).await
    } else {
        show_tree(&store, &head, cut, args.full, out).await
    };
    match shown {
        // The reader went away (`| head`): nothing more to show anyone.
        Err(e)
            if e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
        {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

/// The text tree: the header, the steps kept by `cut` depth first, and
/// what was cut.
async fn show_tree(
    store: &AnyStore,
    head: &ExecutionHead,
    cut: TreeCut,
    full: bool,
    mut out: impl Write,
) -> anyhow::Result<()> {
    let execution = head.summary.id;
    let style = style();
    out.write_all(render::execution_header(head, full, style).as_bytes())?;
    let llm = store.execution_llm(execution).await?;
    out.write_all(render::llm_lines(&llm, style).as_bytes())?;
    let tree = step_tree(store, execution).await?;
    let mut lines = TreeLines::new(full, style);
    let mut text = String::new();
    let mut within = tree.within(cut);
    loop {
        let batch: Vec<Visit> = within.by_ref().take(DETAIL_BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = batch.iter().map(|v| tree.id(v.index)).collect();
        let mut steps: HashMap<Uuid, StepDetail> = store
            .step_details(execution, &ids)
            .await?
            .into_iter()
            .map(|step| (step.id, step))
            .collect();
        for visit in batch {
            match steps.remove(&tree.id(visit.index)) {
                Some(step) => lines.write(&mut text, visit, &step),
                // Gone since its outline was read.
                None => lines.skip(visit),
            }
            out.write_all(text.as_bytes())?;
            text.clear();
        }
    }
    out.write_all(render::tree_footer(tree.len(), within.hidden(), cut).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// The `--json` document: the head's fields, then the steps in start
/// order — all of them, or those `cut` keeps.
async fn show_json(
    store: &AnyStore,
    head: &ExecutionHead,
    cut: TreeCut,
    out: impl Write,
) -> anyhow::Result<()> {
    let execution = head.summary.id;
    let llm = store.execution_llm(execution).await?;
    let mut json = ExecutionJson::begin(out, head, &llm)?;
    if cut.is_none() {
        // No tree needed: each page of outlines, in start order, is read
        // whole a batch at a time.
        let mut after = None;
        loop {
            let page = store.steps(&all_steps(execution, after)).await?;
            for batch in page.steps.chunks(DETAIL_BATCH) {
                let ids: Vec<Uuid> = batch.iter().map(|s| s.id).collect();
                for step in store.step_details(execution, &ids).await? {
                    json.step(&step)?;
                }
            }
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
    } else {
        let tree = step_tree(store, execution).await?;
        let mut is_kept = vec![false; tree.len()];
        for visit in tree.within(cut) {
            is_kept[visit.index] = true;
        }
        let kept: Vec<Uuid> = (0..tree.len())
            .filter(|&i| is_kept[i])
            .map(|i| tree.id(i))
            .collect();
        for batch in kept.chunks(DETAIL_BATCH) {
            for step in store.step_details(execution, batch).await? {
                json.step(&step)?;
            }
        }
    }
    json.finish()?.flush()?;
    Ok(())
}

/// A page of every step of `execution`, after `after`.
fn all_steps(execution: Uuid, after: Option<Cursor>) -> StepFilter {
    StepFilter {
        execution,
        scope: StepScope::All,
        limit: MAX_STEP_PAGE,
        after,
    }
}

/// The tree of the execution's steps, from their outlines read a page at
/// a time (only ids and parents kept).
async fn step_tree(store: &AnyStore, execution: Uuid) -> Result<StepTree, StoreError> {
    let mut steps = Vec::new();
    let mut after = None;
    loop {
        let page = store.steps(&all_steps(execution, after)).await?;
        steps.extend(page.steps.iter().map(|s| (s.id, s.parent_id)));
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    Ok(StepTree::new(steps))
}

pub(super) async fn why(args: WhyArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let store = open_for_query(backend).await?;
    let id = execution_id(&store, &args.execution).await?;
    if store.execution_head(id).await?.is_none() {
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
    let hits = store.search(&args.text, args.limit as usize, None).await?;
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
pub(super) async fn open_for_query(backend: &Backend) -> anyhow::Result<AnyStore> {
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

pub(super) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
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
