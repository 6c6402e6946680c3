//! `import FILE [--project P] [--dry-run]`: the earlier X-Ray's JSON data
//! into the store ([`xray_collector::import`]).

use std::path::PathBuf;
use std::process::ExitCode;

use xray_collector::import;

use super::{open_store, Backend, Missing};

#[derive(clap::Args, Debug)]
pub(super) struct ImportArgs {
    /// The earlier X-Ray's JSON file: an array of executions, or
    /// {"executions": [...]}.
    file: PathBuf,
    /// The project of entries that name none (their projectId).
    #[arg(long, default_value = "default")]
    project: String,
    /// Read and check everything, say what would be imported; write nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(super) async fn import(args: ImportArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let store = open_store(backend, Missing::Create).await?;
    xray_collector::backend::Migrations::migrate_up(&store).await?;
    let summary = import::import(&store, &args.file, &args.project, args.dry_run, |n| {
        tracing::info!(entries = n, "{n} entries read");
    })
    .await?;
    for (index, reason) in &summary.refused {
        println!(
            "entry {index} refused: {}",
            xray_collector::render::escape(reason)
        );
    }
    let verb = if args.dry_run {
        "would import"
    } else {
        "imported"
    };
    println!(
        "{verb} {} executions ({} steps); {} already present; {} refused (of {} entries)",
        summary.imported,
        summary.steps,
        summary.already_present,
        summary.refused.len(),
        summary.entries
    );
    Ok(if summary.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
