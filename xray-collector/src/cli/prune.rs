//! `prune --older-than D [--project P] [--dry-run]`: delete executions
//! that started before now − D with everything that hangs off them (see
//! [`xray_collector::retention`]), and say what was deleted.

use std::process::ExitCode;

use xray_collector::backend::PruneFilter;
use xray_collector::query::{format_time, parse_duration};
use xray_collector::{render, retention};

use super::read::{open_for_query, print_json, Output};
use super::Backend;

#[derive(clap::Args, Debug)]
pub(super) struct PruneArgs {
    /// Delete executions that started longer ago than this: 12h, 30d, 4w.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    older_than: i64,
    /// Only this project's executions.
    #[arg(long)]
    project: Option<String>,
    /// Count what would be deleted; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    output: Output,
}

pub(super) async fn prune(args: PruneArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let filter = PruneFilter::older_than(args.older_than, args.project);
    let store = open_for_query(backend).await?;
    let pruned = retention::prune(&store, &filter, args.dry_run).await?;
    if args.output.json {
        print_json(&serde_json::json!({
            "dry_run": args.dry_run,
            "started_before": format_time(filter.before_us),
            "started_before_us": filter.before_us,
            "project": filter.project,
            "executions": pruned.executions,
            "steps": pruned.steps,
            "decisions": pruned.decisions,
            "llm_usage": pruned.llm_usage,
        }))?;
    } else {
        println!("{}", render::pruned(&pruned, &filter, args.dry_run));
    }
    Ok(ExitCode::SUCCESS)
}
