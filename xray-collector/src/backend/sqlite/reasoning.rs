//! [`Reasoning`] for the embedded store: the rules text written in the
//! `BEGIN IMMEDIATE` transaction that takes its jobs; an LLM job held
//! (`processing`, until its claim runs out) in one short transaction and
//! finished in another, so none stays open while the model thinks.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use super::migrations::now_us;
use super::query::{decision_at, json_at};
use crate::backend::sqlite::SqliteStore;
use crate::backend::{AfterRules, Explain, Reasoning, StoreError};
use crate::model::{Decision, StepStatus};
use crate::reason::job::{LlmBacklog, LlmJob, LlmOutcome, StepToExplain};

/// Jobs whose rules text is to be written, to be left for the LLM (the
/// partial index `reasoning_jobs_rules_due` holds just these).
const TAKE_FOR_RULES: &str = "SELECT j.id, s.status, s.error FROM reasoning_jobs j
     JOIN steps s ON s.id = j.step_id
     WHERE j.status = 'pending' AND j.next_attempt_at_us IS NULL
     ORDER BY j.created_at_us LIMIT ?1";

/// Jobs to be completed by the rules: also those left waiting for the LLM,
/// or held past their claim (`?2`: now), when the reasoner went back to
/// the rules.
const TAKE_TO_COMPLETE: &str = "SELECT j.id, s.status, s.error FROM reasoning_jobs j
     JOIN steps s ON s.id = j.step_id
     WHERE j.status = 'pending'
        OR (j.status = 'processing' AND j.next_attempt_at_us < ?2)
     ORDER BY j.created_at_us LIMIT ?1";

const DECISIONS: &str = "SELECT candidate_id, accepted, filter, reason, score FROM decisions
     WHERE step_id = ?1 ORDER BY ordinal";

const COMPLETE: &str = "UPDATE reasoning_jobs SET status = 'completed', method = 'rules',
         attempts = attempts + 1, error = NULL, completed_at_us = ?2, next_attempt_at_us = NULL
     WHERE id = ?1";

const AWAIT_LLM: &str = "UPDATE reasoning_jobs SET status = 'pending', method = 'rules',
         error = NULL, next_attempt_at_us = ?2
     WHERE id = ?1";

const TAKE_FOR_LLM: &str = "SELECT id, attempts FROM reasoning_jobs
     WHERE status IN ('pending', 'processing') AND next_attempt_at_us <= ?2
     ORDER BY next_attempt_at_us LIMIT ?1";

const STEP: &str = "SELECT name, kind, status, input, output, error, duration_us, reasoning
     FROM steps WHERE id = ?1";

const EXPLAINED: &str = "UPDATE reasoning_jobs SET status = 'completed', method = 'llm',
         attempts = attempts + 1, error = NULL, completed_at_us = ?5, next_attempt_at_us = NULL,
         model = ?2, prompt_tokens = ?3, completion_tokens = ?4,
         cost_usd = (SELECT (?3 * prompt_usd_per_million + ?4 * completion_usd_per_million)
                            / 1000000.0
                     FROM model_prices WHERE model = ?2)
     WHERE id = ?1 AND status = 'processing'
     RETURNING step_id";

const RETRY: &str = "UPDATE reasoning_jobs SET status = 'pending', attempts = attempts + 1,
         error = ?2, next_attempt_at_us = ?3
     WHERE id = ?1 AND status = 'processing'";

const FAILED: &str = "UPDATE reasoning_jobs SET status = 'failed', attempts = attempts + 1,
         error = ?2, completed_at_us = ?3, next_attempt_at_us = NULL
     WHERE id = ?1 AND status = 'processing'";

const BACKLOG: &str = "SELECT count(*) FILTER (WHERE status = 'pending'),
         count(*) FILTER (WHERE status = 'processing'),
         min(next_attempt_at_us) FILTER (WHERE status = 'pending')
     FROM reasoning_jobs
     WHERE status IN ('pending', 'processing') AND next_attempt_at_us IS NOT NULL";

const REQUEUE: &str = "UPDATE reasoning_jobs SET status = 'pending', completed_at_us = NULL,
         next_attempt_at_us = NULL, attempts = 0
     WHERE (?1 IS NULL OR execution_id = ?1) AND (NOT ?2 OR status = 'failed')";

impl Reasoning for SqliteStore {
    async fn reason_pending(
        &self,
        batch: usize,
        explain: Explain,
        then: AfterRules,
    ) -> Result<u64, StoreError> {
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.read(move |conn| reason_batch(conn, batch, explain, then))
            .await
    }

    async fn take_llm_jobs(&self, limit: usize, hold: Duration) -> Result<Vec<LlmJob>, StoreError> {
        let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
        let hold_us = micros(hold);
        self.read(move |conn| take_for_llm(conn, limit, hold_us))
            .await
    }

    async fn finish_llm_job(&self, id: Uuid, outcome: &LlmOutcome) -> Result<(), StoreError> {
        let outcome = outcome.clone();
        let id = id.to_string();
        self.read(move |conn| {
            let now = now_us();
            match &outcome {
                LlmOutcome::Explained {
                    text,
                    model,
                    prompt_tokens,
                    completion_tokens,
                } => {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let step: Option<String> = tx
                        .query_row(
                            EXPLAINED,
                            params![id, model, prompt_tokens, completion_tokens, now],
                            |r| r.get(0),
                        )
                        .optional()?;
                    if let Some(step) = step {
                        tx.execute(
                            "UPDATE steps SET reasoning = ?2 WHERE id = ?1",
                            params![step, text],
                        )?;
                    }
                    tx.commit()?;
                }
                LlmOutcome::Retry { error, after } => {
                    let due = now.saturating_add(micros(*after));
                    conn.execute(RETRY, params![id, error, due])?;
                }
                LlmOutcome::Failed { error } => {
                    conn.execute(FAILED, params![id, error, now])?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn llm_backlog(&self) -> Result<LlmBacklog, StoreError> {
        self.read(|conn| {
            let (pending, processing, due): (i64, i64, Option<i64>) =
                conn.query_row(BACKLOG, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            let now = now_us();
            Ok(LlmBacklog {
                pending: u64::try_from(pending).unwrap_or(0),
                processing: u64::try_from(processing).unwrap_or(0),
                next_due_in: due.map(|at| {
                    Duration::from_micros(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
                }),
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
        let execution = execution.map(|e| e.to_string());
        self.read(move |conn| {
            conn.execute(REQUEUE, params![execution, failed_only])
                .map(|n| n as u64)
        })
        .await
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn decisions_of(conn: &Connection, step: &str) -> rusqlite::Result<Vec<Decision>> {
    conn.prepare_cached(DECISIONS)?
        .query_map([step], |r| decision_at(r, 0))?
        .collect()
}

fn reason_batch(
    conn: &mut Connection,
    batch: i64,
    explain: Explain,
    then: AfterRules,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_us();
    let completing = then == AfterRules::Complete;
    let row = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
    let jobs: Vec<(String, String, Option<String>)> = if completing {
        tx.prepare(TAKE_TO_COMPLETE)?
            .query_map(params![batch, now], row)?
            .collect::<Result<_, _>>()?
    } else {
        tx.prepare(TAKE_FOR_RULES)?
            .query_map(params![batch], row)?
            .collect::<Result<_, _>>()?
    };
    {
        let mut write = tx.prepare_cached("UPDATE steps SET reasoning = ?2 WHERE id = ?1")?;
        let mut next = tx.prepare_cached(if completing { COMPLETE } else { AWAIT_LLM })?;
        for (id, status, error) in &jobs {
            let decided = decisions_of(&tx, id)?;
            let status = status.parse().unwrap_or(StepStatus::Ok);
            let text = explain(status, error.as_deref(), &decided);
            write.execute(params![id, text])?;
            next.execute(params![id, now])?;
        }
    }
    tx.commit()?;
    Ok(jobs.len() as u64)
}

fn take_for_llm(conn: &mut Connection, limit: i64, hold_us: i64) -> rusqlite::Result<Vec<LlmJob>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_us();
    let taken: Vec<(String, i64)> = tx
        .prepare(TAKE_FOR_LLM)?
        .query_map(params![limit, now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut jobs = Vec::with_capacity(taken.len());
    {
        let mut hold = tx.prepare_cached(
            "UPDATE reasoning_jobs SET status = 'processing', next_attempt_at_us = ?2 WHERE id = ?1",
        )?;
        let mut step = tx.prepare_cached(STEP)?;
        for (id, attempts) in taken {
            hold.execute(params![id, now.saturating_add(hold_us)])?;
            let Some(mut found) = step
                .query_row([&id], |r| {
                    Ok(StepToExplain {
                        name: r.get(0)?,
                        kind: r.get(1)?,
                        status: r.get::<_, String>(2)?.parse().unwrap_or(StepStatus::Ok),
                        input: json_at(r, 3)?,
                        output: json_at(r, 4)?,
                        error: r.get(5)?,
                        duration_us: r.get(6)?,
                        decisions: Vec::new(),
                        reasoning: r.get(7)?,
                    })
                })
                .optional()?
            else {
                continue;
            };
            found.decisions = decisions_of(&tx, &id)?;
            let Ok(id) = id.parse::<Uuid>() else {
                continue;
            };
            jobs.push(LlmJob {
                id,
                attempts: u32::try_from(attempts).unwrap_or(0),
                step: found,
            });
        }
    }
    tx.commit()?;
    Ok(jobs)
}
