//! The LLM reasoner's jobs: after the rules text is written, each job is
//! due for one chat-completions call ([`crate::reason::chat`]) whose answer
//! replaces that text.
//!
//! - At most `XRAY_LLM_CONCURRENCY` calls are in flight, and at most
//!   `XRAY_LLM_RATE_LIMIT` start per minute (when set).
//! - A job is held in the store while its call runs (status `processing`,
//!   for [`LlmReasoner::hold`]): another collector does not take it, and
//!   if this one dies the claim runs out and the job is taken again.
//! - A call that may pass later (429, 5xx, a timeout, a malformed answer)
//!   makes the job due again after the server's `Retry-After`, else a
//!   backoff from 1 s doubling to a minute; after `XRAY_LLM_MAX_ATTEMPTS`
//!   calls, or at once when refused (a wrong key, model or URL), the job
//!   ends `failed` with its error and the rules text stays.
//! - None of it is on the shipping path: shipping never waits for a model.

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{watch, Mutex};
use tokio::time::Instant;

use crate::backend::{Reasoning, StoreError};
use crate::reason::chat::{ChatClient, ChatError};
use crate::reason::config::LlmConfig;
use crate::reason::job::{LlmJob, LlmOutcome};
use crate::reason::prompt;
use crate::ship::{Backoff, Metrics};

/// Delays between a job's calls when the server does not say.
const RETRY: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(60),
};

/// What the LLM did in a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LlmSummary {
    /// Jobs explained by the model.
    pub explained: u64,
    /// Calls that failed and will be tried again.
    pub retried: u64,
    /// Jobs that ended failed.
    pub failed: u64,
    /// Prompt tokens the server counted.
    pub prompt_tokens: u64,
    /// Completion tokens the server counted.
    pub completion_tokens: u64,
}

impl std::ops::AddAssign for LlmSummary {
    fn add_assign(&mut self, o: LlmSummary) {
        self.explained += o.explained;
        self.retried += o.retried;
        self.failed += o.failed;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

impl LlmSummary {
    fn of(outcome: &LlmOutcome) -> LlmSummary {
        let tokens = |n: &Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        match outcome {
            LlmOutcome::Explained {
                prompt_tokens,
                completion_tokens,
                ..
            } => LlmSummary {
                explained: 1,
                prompt_tokens: tokens(prompt_tokens),
                completion_tokens: tokens(completion_tokens),
                ..LlmSummary::default()
            },
            LlmOutcome::Retry { .. } => LlmSummary {
                retried: 1,
                ..LlmSummary::default()
            },
            LlmOutcome::Failed { .. } => LlmSummary {
                failed: 1,
                ..LlmSummary::default()
            },
        }
    }
}

/// Starts at most one call every `gap`.
struct RateLimit {
    gap: Option<Duration>,
    next: Mutex<Instant>,
}

impl RateLimit {
    fn per_minute(calls: Option<u32>) -> RateLimit {
        RateLimit {
            gap: calls.map(|n| Duration::from_secs(60) / n.max(1)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this call's turn.
    async fn turn(&self) {
        let Some(gap) = self.gap else {
            return;
        };
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + gap;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// Explains jobs with a model.
pub struct LlmReasoner {
    client: ChatClient,
    limit: RateLimit,
}

impl LlmReasoner {
    /// A reasoner calling the server `config` names.
    pub fn new(config: LlmConfig) -> Result<LlmReasoner, String> {
        let limit = RateLimit::per_minute(config.per_minute);
        Ok(LlmReasoner {
            client: ChatClient::new(config)?,
            limit,
        })
    }

    fn config(&self) -> &LlmConfig {
        self.client.config()
    }

    /// How long a job is held for its call: more than the call can take,
    /// waiting for its turn included, so that only a dead collector's
    /// claim runs out.
    pub fn hold(&self) -> Duration {
        let config = self.config();
        let queued = self
            .limit
            .gap
            .map_or(Duration::ZERO, |gap| gap * config.concurrency as u32);
        config.timeout * 2 + queued + Duration::from_secs(60)
    }

    /// One call for `job`, and what it means for the job.
    async fn attempt(&self, job: &LlmJob) -> LlmOutcome {
        self.limit.turn().await;
        let config = self.config();
        match self.client.complete(&prompt::messages(&job.step)).await {
            Ok(answer) => LlmOutcome::Explained {
                text: answer.text,
                model: config.model.clone(),
                prompt_tokens: answer.prompt_tokens,
                completion_tokens: answer.completion_tokens,
            },
            Err(ChatError::Refused { reason }) => LlmOutcome::Failed { error: reason },
            Err(ChatError::Transient { reason, after }) => {
                let calls = job.attempts.saturating_add(1);
                if calls >= config.max_attempts {
                    LlmOutcome::Failed {
                        error: format!("{reason} (gave up after {calls} attempts)"),
                    }
                } else {
                    LlmOutcome::Retry {
                        error: reason,
                        after: after.unwrap_or_else(|| RETRY.delay(job.attempts)),
                    }
                }
            }
        }
    }

    /// Logs what became of `job`'s call and writes it to the store.
    async fn finish(
        &self,
        store: &impl Reasoning,
        job: &LlmJob,
        outcome: &LlmOutcome,
    ) -> Result<LlmSummary, StoreError> {
        match outcome {
            LlmOutcome::Explained { .. } => {
                tracing::debug!(step = %job.id, "explained by the LLM");
            }
            LlmOutcome::Retry { error, after } => {
                tracing::info!(step = %job.id, error = %error, retry_in = ?after, "the LLM call failed; trying again");
            }
            LlmOutcome::Failed { error } => {
                tracing::warn!(step = %job.id, error = %error, "the LLM could not explain a step; its rules text stays");
            }
        }
        store.finish_llm_job(job.id, outcome).await?;
        Ok(LlmSummary::of(outcome))
    }

    /// Calls for every job due now, [`LlmConfig::concurrency`] at once,
    /// taking more as calls end, until none is due. The calls in flight
    /// only talk to the model; this loop alone talks to the store (a call
    /// holding the store's connection while not being polled would
    /// deadlock the next take).
    pub async fn run_due(&self, store: &impl Reasoning) -> Result<LlmSummary, StoreError> {
        let room = self.config().concurrency.max(1);
        let hold = self.hold();
        let mut summary = LlmSummary::default();
        let mut calls = FuturesUnordered::new();
        loop {
            if calls.len() < room {
                let jobs = store.take_llm_jobs(room - calls.len(), hold).await?;
                calls.extend(jobs.into_iter().map(|job| async move {
                    let outcome = self.attempt(&job).await;
                    (job, outcome)
                }));
            }
            // Wait for a call to end, then look for more due.
            match calls.next().await {
                Some((job, outcome)) => summary += self.finish(store, &job, &outcome).await?,
                None => return Ok(summary),
            }
        }
    }

    /// Explains every job waiting for the model, waiting for those due
    /// later (a retry), until none is pending; jobs another collector
    /// holds are its own.
    pub async fn catch_up(&self, store: &impl Reasoning) -> Result<LlmSummary, StoreError> {
        let mut summary = LlmSummary::default();
        loop {
            summary += self.run_due(store).await?;
            let backlog = store.llm_backlog().await?;
            match backlog.next_due_in {
                Some(wait) if backlog.pending > 0 => {
                    tracing::info!(
                        jobs = backlog.pending,
                        "{} steps wait for the LLM to be tried again in {wait:?}",
                        backlog.pending
                    );
                    tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
                }
                _ => return Ok(summary),
            }
        }
    }

    /// Keeps calling for the jobs as they come due until `stop` turns
    /// true; a store failure is logged and tried again later. Calls in
    /// flight at the stop are dropped: their jobs are taken again when
    /// their claim runs out.
    pub async fn keep(
        &self,
        store: &impl Reasoning,
        metrics: &Metrics,
        stop: watch::Receiver<bool>,
    ) {
        let log = |summary: LlmSummary| {
            metrics.reasoned_by_llm(
                summary.explained,
                summary.retried,
                summary.failed,
                (summary.prompt_tokens, summary.completion_tokens),
            );
            if summary != LlmSummary::default() {
                tracing::info!(
                    explained = summary.explained,
                    retried = summary.retried,
                    failed = summary.failed,
                    "the LLM explained {} steps",
                    summary.explained
                );
            }
        };
        super::repeat("LLM reasoning", stop, || self.run_due(store), log).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_rate_limit_spaces_the_starts_of_calls_made_at_once() {
        let limit = RateLimit::per_minute(Some(600));
        let start = Instant::now();
        let turn = || async {
            limit.turn().await;
            start.elapsed()
        };
        let (a, b, c) = tokio::join!(turn(), turn(), turn());
        let mut starts = [a, b, c];
        starts.sort();
        // One start every 100 ms: lower bounds, whatever else the machine does.
        assert!(starts[1] >= Duration::from_millis(100), "{starts:?}");
        assert!(starts[2] >= Duration::from_millis(200), "{starts:?}");
        assert_eq!(RateLimit::per_minute(None).gap, None, "no limit: no wait");
    }

    #[test]
    fn a_job_is_held_longer_than_its_call_and_its_turn_can_take() {
        let config = LlmConfig {
            endpoint: "http://127.0.0.1:1/v1/chat/completions".parse().unwrap(),
            model: "m".into(),
            api_key: None,
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            concurrency: 4,
            per_minute: Some(60),
        };
        let reasoner = LlmReasoner::new(config).unwrap();
        // 30 s call, 4 calls queued a second apart, and a minute's margin.
        assert_eq!(reasoner.hold(), Duration::from_secs(2 * 30 + 4 + 60));
    }
}
