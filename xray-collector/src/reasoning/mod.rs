//! Reasoning jobs behind the search indexer ([`Reasoning`]): the indexer
//! queues a job for each step it indexes that ended with decisions or a
//! failure, and the jobs are explained here — caught up once (`run
//! --once`, `reason`, after indexing) or kept up while the daemon runs.
//!
//! - The `rules` reasoner ([`crate::reason::rules`]) always writes first,
//!   [`REASON_BATCH`] jobs per transaction: a person reads its text within
//!   moments of shipping.
//! - With `XRAY_REASONER=llm` the rules pass leaves each job due for the
//!   LLM, and [`llm`] replaces the text when the model answers (retrying
//!   with backoff, a job that keeps failing ends `failed` with the rules
//!   text kept). Shipping never waits for it.
//! - With `off`, nothing is explained; the jobs wait in the store.
//!
//! Like the index, the queue is in the store: nothing is lost when the
//! collector stops.

pub mod llm;

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::backend::{drain, AfterRules, Reasoning, StoreError};
use crate::reason::config::Reasoner;
use crate::reason::rules;
use crate::ship::{Backoff, Metrics};
pub use llm::{LlmReasoner, LlmSummary};

/// Jobs explained per transaction.
pub const REASON_BATCH: usize = 1_000;

/// How long the daemon's reasoner waits, when no job is pending, before it
/// looks again.
pub const IDLE: Duration = Duration::from_millis(250);

/// Writes the rules text of every job waiting for it until none is, then
/// completes the jobs or leaves them due for the LLM (`then`); how many it
/// took ([`drain`]: a batch that failed in a way that may pass is tried
/// again).
pub async fn rules_pass(store: &impl Reasoning, then: AfterRules) -> Result<u64, StoreError> {
    drain("a reasoning batch", || {
        store.reason_pending(REASON_BATCH, rules::explain, then)
    })
    .await
}

/// Explains every pending job with the rules alone, completing them.
pub async fn catch_up(store: &impl Reasoning) -> Result<u64, StoreError> {
    rules_pass(store, AfterRules::Complete).await
}

/// The reasoner chosen, ready to run.
pub enum Reasoners {
    /// Rules alone.
    Rules,
    /// Rules, then the LLM.
    Llm(LlmReasoner),
    /// None.
    Off,
}

/// What one catch-up did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Explained {
    /// Jobs whose rules text was written.
    pub by_rules: u64,
    /// What the LLM did, when it runs.
    pub llm: LlmSummary,
}

impl Reasoners {
    /// Ready to run `reasoner` (the LLM's client set up).
    pub fn new(reasoner: Reasoner) -> Result<Reasoners, String> {
        Ok(match reasoner {
            Reasoner::Rules => Reasoners::Rules,
            Reasoner::Llm(config) => Reasoners::Llm(LlmReasoner::new(config)?),
            Reasoner::Off => Reasoners::Off,
        })
    }

    fn after_rules(&self) -> AfterRules {
        match self {
            Reasoners::Llm(_) => AfterRules::AwaitLlm,
            _ => AfterRules::Complete,
        }
    }

    /// Explains every job waiting: the rules text, then (with the LLM) every
    /// job's call, waiting for those to retry, until none is pending.
    pub async fn catch_up(&self, store: &impl Reasoning) -> Result<Explained, StoreError> {
        if let Reasoners::Off = self {
            return Ok(Explained::default());
        }
        let by_rules = rules_pass(store, self.after_rules()).await?;
        let llm = match self {
            Reasoners::Llm(llm) => llm.catch_up(store).await?,
            _ => LlmSummary::default(),
        };
        Ok(Explained { by_rules, llm })
    }

    /// Keeps the jobs explained until `stop` turns true, counting what
    /// the reasoners did in `metrics`; a failure is logged and tried again
    /// later (up to a minute apart), never stopping shipping.
    pub async fn keep(
        &self,
        store: &impl Reasoning,
        metrics: &Metrics,
        mut stop: watch::Receiver<bool>,
    ) {
        match self {
            Reasoners::Off => {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }
            Reasoners::Rules => keep_rules(store, AfterRules::Complete, metrics, stop).await,
            Reasoners::Llm(llm) => {
                tokio::join!(
                    keep_rules(store, AfterRules::AwaitLlm, metrics, stop.clone()),
                    llm.keep(store, metrics, stop)
                );
            }
        }
    }
}

/// The daemon's rules pass: as jobs come.
async fn keep_rules(
    store: &impl Reasoning,
    then: AfterRules,
    metrics: &Metrics,
    stop: watch::Receiver<bool>,
) {
    let count = |jobs| metrics.reasoned_by_rules(jobs);
    repeat("reasoning", stop, || rules_pass(store, then), count).await
}

/// Runs `pass` until `stop` turns true, [`IDLE`] apart, handing what it
/// did to `done`; a failure is logged (as `what`) and tried again after a
/// backoff of up to a minute, never stopping shipping.
pub(crate) async fn repeat<T, Fut>(
    what: &str,
    mut stop: watch::Receiver<bool>,
    mut pass: impl FnMut() -> Fut,
    mut done: impl FnMut(T),
) where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let backoff = Backoff {
        base: IDLE,
        max: Duration::from_secs(60),
    };
    let mut failures = 0;
    loop {
        let wait = tokio::select! {
            result = pass() => match result {
                Ok(did) => {
                    failures = 0;
                    done(did);
                    IDLE
                }
                Err(e) => {
                    let wait = backoff.delay(failures);
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "{what} failed; trying again in {wait:?}");
                    wait
                }
            },
            _ = stop.changed() => return,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
