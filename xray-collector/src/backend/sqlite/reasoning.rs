//! [`Reasoning`] for the embedded store: pending jobs taken, explained and
//! written back in one `BEGIN IMMEDIATE` transaction.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::backend::sqlite::SqliteStore;
use crate::backend::{Explain, Reasoning, StoreError};
use crate::model::{Decision, StepStatus};

impl Reasoning for SqliteStore {
    async fn reason_pending(
        &self,
        batch: usize,
        method: &'static str,
        explain: Explain,
    ) -> Result<u64, StoreError> {
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.read(move |conn| reason_batch(conn, batch, method, explain))
            .await
    }

    async fn requeue_reasoning(
        &self,
        execution: Option<uuid::Uuid>,
        failed_only: bool,
    ) -> Result<u64, StoreError> {
        if execution.is_none() && !failed_only {
            return Ok(0);
        }
        let execution = execution.map(|e| e.to_string());
        self.read(move |conn| {
            conn.execute(
                "UPDATE reasoning_jobs SET status = 'pending', completed_at_us = NULL
                 WHERE (?1 IS NULL OR execution_id = ?1) AND (NOT ?2 OR status = 'failed')",
                params![execution, failed_only],
            )
            .map(|n| n as u64)
        })
        .await
    }
}

fn reason_batch(
    conn: &mut Connection,
    batch: i64,
    method: &'static str,
    explain: Explain,
) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let jobs: Vec<(String, String, Option<String>)> = tx
        .prepare(
            "SELECT j.id, s.status, s.error FROM reasoning_jobs j JOIN steps s ON s.id = j.step_id
             WHERE j.status = 'pending' ORDER BY j.created_at_us LIMIT ?1",
        )?
        .query_map([batch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    {
        let mut decisions = tx.prepare_cached(
            "SELECT candidate_id, accepted, filter, reason, score FROM decisions
             WHERE step_id = ?1 ORDER BY ordinal",
        )?;
        let mut write = tx.prepare_cached("UPDATE steps SET reasoning = ?2 WHERE id = ?1")?;
        let mut complete = tx.prepare_cached(
            "UPDATE reasoning_jobs SET status = 'completed', method = ?2, attempts = attempts + 1,
                 error = NULL, completed_at_us = ?3
             WHERE id = ?1",
        )?;
        let now = super::migrations::now_us();
        for (id, status, error) in &jobs {
            let decided: Vec<Decision> = decisions
                .query_map([id], |r| {
                    Ok(Decision {
                        candidate_id: r.get(0)?,
                        accepted: r.get(1)?,
                        filter: r.get(2)?,
                        reason: r.get(3)?,
                        score: r.get(4)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let status = status.parse().unwrap_or(StepStatus::Ok);
            let text = explain(status, error.as_deref(), &decided);
            write.execute(params![id, text])?;
            complete.execute(params![id, method, now])?;
        }
    }
    tx.commit()?;
    Ok(jobs.len() as u64)
}
