//! `reason [--execution ID] [--retry-failed]`: explain what is waiting, or
//! explain an execution's steps (or the failed jobs) anew
//! ([`xray_collector::reasoning`]).

use std::process::ExitCode;

use anyhow::Context;
use uuid::Uuid;
use xray_collector::backend::Reasoning;
use xray_collector::{indexing, reasoning};

use super::read::open_for_query;
use super::Backend;

#[derive(clap::Args, Debug)]
pub(super) struct ReasonArgs {
    /// Explain this execution's steps again.
    #[arg(long, value_name = "ID")]
    execution: Option<Uuid>,
    /// Try the jobs that failed again (of --execution only, when given).
    #[arg(long)]
    retry_failed: bool,
}

pub(super) async fn reason(args: ReasonArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    let store = open_for_query(backend).await?;
    // Steps shipped but not indexed yet have no job yet: the indexer
    // queues them.
    indexing::catch_up(&store)
        .await
        .context("cannot index the shipped steps")?;
    let requeued = store
        .requeue_reasoning(args.execution, args.retry_failed)
        .await?;
    let explained = reasoning::catch_up(&store)
        .await
        .context("cannot explain the steps")?;
    println!("explained {explained} steps ({requeued} of them again)");
    Ok(ExitCode::SUCCESS)
}
