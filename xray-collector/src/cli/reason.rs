//! `reason [--execution ID] [--retry-failed]`: explain what is waiting, or
//! explain an execution's steps (or the failed jobs) anew
//! ([`xray_collector::reasoning`]), with the reasoner `XRAY_REASONER`
//! names. Exits 1 when the LLM gave up on a job (its rules text stays),
//! 2 when the reasoner is `off` or its settings are malformed.

use std::process::ExitCode;

use anyhow::Context;
use uuid::Uuid;
use xray_collector::backend::Reasoning;
use xray_collector::indexing;
use xray_collector::reasoning::Reasoners;

use super::read::open_for_query;
use super::run::{log_explained, reasoners_from_env};
use super::{Backend, UsageError};

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
    let reasoners = reasoners_from_env()?;
    if let Reasoners::Off = reasoners {
        return Err(UsageError(
            "XRAY_REASONER is off: nothing would explain the steps (set it to rules or llm)"
                .to_owned(),
        )
        .into());
    }
    let store = open_for_query(backend).await?;
    // Steps shipped but not indexed yet have no job yet: the indexer
    // queues them.
    indexing::catch_up(&store)
        .await
        .context("cannot index the shipped steps")?;
    let requeued = store
        .requeue_reasoning(args.execution, args.retry_failed)
        .await?;
    let explained = reasoners
        .catch_up(&store)
        .await
        .context("cannot explain the steps")?;
    log_explained(&explained);
    println!(
        "explained {} steps ({requeued} of them again)",
        explained.by_rules
    );
    if let Reasoners::Llm(_) = reasoners {
        let llm = explained.llm;
        println!(
            "the LLM explained {} of them ({} failed; {} prompt + {} completion tokens)",
            llm.explained, llm.failed, llm.prompt_tokens, llm.completion_tokens
        );
        if llm.failed > 0 {
            // Their rules text stays; `reason --retry-failed` tries again.
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
