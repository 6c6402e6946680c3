//! [`Reasoning`] for PostgreSQL: jobs taken with `FOR UPDATE SKIP LOCKED`
//! (several collectors share the queue), on the background connection.
//! The rules text is written in the transaction that takes its jobs; an
//! LLM job is held (`processing`, until its claim runs out) in one short
//! transaction and finished in another, so no transaction stays open while
//! the model thinks.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use crate::backend::postgres::query::decision;
use crate::backend::postgres::PostgresStore;
use crate::backend::{AfterRules, Explain, Reasoning, StoreError};
use crate::model::{Decision, StepStatus};
use crate::reason::job::{LlmBacklog, LlmJob, LlmOutcome, StepToExplain};

/// Jobs whose rules text is to be written, to be left for the LLM (the
/// partial index `reasoning_jobs_rules_due` holds just these, so the jobs
/// waiting for the model are never scanned).
const TAKE_FOR_RULES: &str = "SELECT j.id, s.status, s.error FROM xray.reasoning_jobs j
     JOIN xray.steps s ON s.id = j.step_id
     WHERE j.status = 'pending' AND j.next_attempt_at IS NULL
     ORDER BY j.created_at LIMIT $1
     FOR UPDATE OF j SKIP LOCKED";

/// Jobs to be completed by the rules: also those left waiting for the LLM,
/// or held past their claim, when the reasoner went back to the rules.
const TAKE_TO_COMPLETE: &str = "SELECT j.id, s.status, s.error FROM xray.reasoning_jobs j
     JOIN xray.steps s ON s.id = j.step_id
     WHERE j.status = 'pending'
        OR (j.status = 'processing' AND j.next_attempt_at < now())
     ORDER BY j.created_at LIMIT $1
     FOR UPDATE OF j SKIP LOCKED";

const DECISIONS: &str = "SELECT step_id, candidate_id, accepted, filter, reason, score
     FROM xray.decisions WHERE step_id = ANY ($1) ORDER BY step_id, ordinal";

const WRITE: &str = "UPDATE xray.steps s SET reasoning = t.text
     FROM UNNEST($1::uuid[], $2::text[]) AS t(id, text) WHERE s.id = t.id";

const COMPLETE: &str = "UPDATE xray.reasoning_jobs SET status = 'completed', method = 'rules',
         attempts = attempts + 1, error = NULL, completed_at = now(), next_attempt_at = NULL
     WHERE id = ANY ($1)";

const AWAIT_LLM: &str = "UPDATE xray.reasoning_jobs SET status = 'pending', method = 'rules',
         error = NULL, next_attempt_at = now()
     WHERE id = ANY ($1)";

/// Jobs due for their LLM call, held for `$2` µs.
const TAKE_FOR_LLM: &str = "WITH due AS (
         SELECT id FROM xray.reasoning_jobs
         WHERE status IN ('pending', 'processing') AND next_attempt_at <= now()
         ORDER BY next_attempt_at LIMIT $1
         FOR UPDATE SKIP LOCKED)
     UPDATE xray.reasoning_jobs j SET status = 'processing',
         next_attempt_at = now() + $2::int8 * interval '1 microsecond'
     FROM due WHERE j.id = due.id
     RETURNING j.id, j.attempts";

const STEPS: &str = "SELECT id, name, kind, status, input, output, error, duration_us, reasoning
     FROM xray.steps WHERE id = ANY ($1)";

const EXPLAINED: &str = "WITH j AS (
         UPDATE xray.reasoning_jobs SET status = 'completed', method = 'llm',
             attempts = attempts + 1, error = NULL, completed_at = now(), next_attempt_at = NULL,
             model = $2, prompt_tokens = $3::int4, completion_tokens = $4::int4,
             cost_usd = (SELECT ($3::int4 * p.prompt_usd_per_million
                                 + $4::int4 * p.completion_usd_per_million)
                                / 1000000.0
                         FROM xray.model_prices p WHERE p.model = $2)
         WHERE id = $1 AND status = 'processing'
         RETURNING step_id)
     UPDATE xray.steps s SET reasoning = $5 FROM j WHERE s.id = j.step_id";

const RETRY: &str = "UPDATE xray.reasoning_jobs SET status = 'pending', attempts = attempts + 1,
         error = $2, next_attempt_at = now() + $3::int8 * interval '1 microsecond'
     WHERE id = $1 AND status = 'processing'";

const FAILED: &str = "UPDATE xray.reasoning_jobs SET status = 'failed', attempts = attempts + 1,
         error = $2, completed_at = now(), next_attempt_at = NULL
     WHERE id = $1 AND status = 'processing'";

const BACKLOG: &str = "SELECT count(*) FILTER (WHERE status = 'pending'),
         count(*) FILTER (WHERE status = 'processing'),
         (EXTRACT(EPOCH FROM min(next_attempt_at) FILTER (WHERE status = 'pending') - now())
             * 1000000)::int8
     FROM xray.reasoning_jobs
     WHERE status IN ('pending', 'processing') AND next_attempt_at IS NOT NULL";

const REQUEUE: &str = "UPDATE xray.reasoning_jobs SET status = 'pending', completed_at = NULL,
         next_attempt_at = NULL, attempts = 0
     WHERE ($1::uuid IS NULL OR execution_id = $1) AND (NOT $2 OR status = 'failed')";

impl Reasoning for PostgresStore {
    async fn reason_pending(
        &self,
        batch: usize,
        explain: Explain,
        then: AfterRules,
    ) -> Result<u64, StoreError> {
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.with_background_client(move |c| Box::pin(reason_batch(c, batch, explain, then)))
            .await
    }

    async fn take_llm_jobs(&self, limit: usize, hold: Duration) -> Result<Vec<LlmJob>, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let hold_us = micros(hold);
        self.with_background_client(move |c| Box::pin(take_for_llm(c, limit, hold_us)))
            .await
    }

    async fn finish_llm_job(&self, id: Uuid, outcome: &LlmOutcome) -> Result<(), StoreError> {
        let outcome = outcome.clone();
        self.with_background_client(move |c| {
            Box::pin(async move {
                match &outcome {
                    LlmOutcome::Explained {
                        text,
                        model,
                        prompt_tokens,
                        completion_tokens,
                    } => {
                        let tokens =
                            |n: &Option<i64>| n.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
                        c.execute(
                            EXPLAINED,
                            &[
                                &id,
                                model,
                                &tokens(prompt_tokens),
                                &tokens(completion_tokens),
                                text,
                            ],
                        )
                        .await?
                    }
                    LlmOutcome::Retry { error, after } => {
                        c.execute(RETRY, &[&id, error, &micros(*after)]).await?
                    }
                    LlmOutcome::Failed { error } => c.execute(FAILED, &[&id, error]).await?,
                };
                Ok(())
            })
        })
        .await
    }

    async fn llm_backlog(&self) -> Result<LlmBacklog, StoreError> {
        self.with_background_client(|c| {
            Box::pin(async move {
                let r = c.query_one(BACKLOG, &[]).await?;
                let due_in: Option<i64> = r.get(2);
                Ok(LlmBacklog {
                    pending: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
                    processing: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                    next_due_in: due_in
                        .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0))),
                })
            })
        })
        .await
    }

    async fn requeue_reasoning(
        &self,
        execution: Option<Uuid>,
        failed_only: bool,
    ) -> Result<u64, StoreError> {
        if execution.is_none() && !failed_only {
            return Ok(0);
        }
        self.with_background_client(move |c| {
            Box::pin(async move { c.execute(REQUEUE, &[&execution, &failed_only]).await })
        })
        .await
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The decisions of `ids`, by step, in the order taken.
async fn decisions_of(
    c: &impl GenericClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<Decision>>, tokio_postgres::Error> {
    let mut decisions: HashMap<Uuid, Vec<Decision>> = HashMap::new();
    for r in c.query(DECISIONS, &[&ids]).await? {
        decisions.entry(r.get(0)).or_default().push(decision(&r, 1));
    }
    Ok(decisions)
}

async fn reason_batch(
    client: &mut Client,
    batch: i64,
    explain: Explain,
    then: AfterRules,
) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let completing = then == AfterRules::Complete;
    let take = if completing {
        TAKE_TO_COMPLETE
    } else {
        TAKE_FOR_RULES
    };
    let jobs = tx.query(take, &[&batch]).await?;
    if jobs.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let ids: Vec<Uuid> = jobs.iter().map(|r| r.get(0)).collect();
    let decisions = decisions_of(&tx, &ids).await?;
    let texts: Vec<Option<String>> = jobs
        .iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            let status = r.get::<_, &str>(1).parse().unwrap_or(StepStatus::Ok);
            let error: Option<&str> = r.get(2);
            explain(
                status,
                error,
                decisions.get(&id).map_or(&[][..], Vec::as_slice),
            )
        })
        .collect();
    tx.execute(WRITE, &[&ids, &texts]).await?;
    let next = if completing { COMPLETE } else { AWAIT_LLM };
    tx.execute(next, &[&ids]).await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}

async fn take_for_llm(
    client: &mut Client,
    limit: i64,
    hold_us: i64,
) -> Result<Vec<LlmJob>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let taken = tx.query(TAKE_FOR_LLM, &[&limit, &hold_us]).await?;
    if taken.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = taken.iter().map(|r| r.get(0)).collect();
    let mut decisions = decisions_of(&tx, &ids).await?;
    let mut steps: HashMap<Uuid, StepToExplain> = tx
        .query(STEPS, &[&ids])
        .await?
        .iter()
        .map(|r| {
            let id: Uuid = r.get(0);
            let step = StepToExplain {
                name: r.get(1),
                kind: r.get(2),
                status: r.get::<_, &str>(3).parse().unwrap_or(StepStatus::Ok),
                input: r.get(4),
                output: r.get(5),
                error: r.get(6),
                duration_us: r.get(7),
                decisions: decisions.remove(&id).unwrap_or_default(),
                reasoning: r.get(8),
            };
            (id, step)
        })
        .collect();
    tx.commit().await?;
    Ok(taken
        .iter()
        .filter_map(|r| {
            let id: Uuid = r.get(0);
            Some(LlmJob {
                id,
                attempts: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
                step: steps.remove(&id)?,
            })
        })
        .collect())
}
