//! [`Reasoning`] for PostgreSQL: pending jobs taken with `FOR UPDATE SKIP
//! LOCKED` (several collectors share the queue), explained, and written
//! back in the same transaction, on the background connection.

use std::collections::HashMap;

use tokio_postgres::Client;
use uuid::Uuid;

use crate::backend::postgres::PostgresStore;
use crate::backend::{Explain, Reasoning, StoreError};
use crate::model::{Decision, StepStatus};

const TAKE: &str = "SELECT j.id, s.status, s.error FROM xray.reasoning_jobs j
     JOIN xray.steps s ON s.id = j.step_id
     WHERE j.status = 'pending' ORDER BY j.created_at LIMIT $1
     FOR UPDATE OF j SKIP LOCKED";

const DECISIONS: &str = "SELECT step_id, candidate_id, accepted, filter, reason, score
     FROM xray.decisions WHERE step_id = ANY ($1) ORDER BY step_id, ordinal";

const WRITE: &str = "UPDATE xray.steps s SET reasoning = t.text
     FROM UNNEST($1::uuid[], $2::text[]) AS t(id, text) WHERE s.id = t.id";

const COMPLETE: &str = "UPDATE xray.reasoning_jobs SET status = 'completed', method = $2,
         attempts = attempts + 1, error = NULL, completed_at = now()
     WHERE id = ANY ($1)";

impl Reasoning for PostgresStore {
    async fn reason_pending(
        &self,
        batch: usize,
        method: &'static str,
        explain: Explain,
    ) -> Result<u64, StoreError> {
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.with_background_client(move |c| Box::pin(reason_batch(c, batch, method, explain)))
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

const REQUEUE: &str = "UPDATE xray.reasoning_jobs SET status = 'pending', completed_at = NULL
     WHERE ($1::uuid IS NULL OR execution_id = $1) AND (NOT $2 OR status = 'failed')";

async fn reason_batch(
    client: &mut Client,
    batch: i64,
    method: &'static str,
    explain: Explain,
) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let jobs = tx.query(TAKE, &[&batch]).await?;
    if jobs.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let ids: Vec<Uuid> = jobs.iter().map(|r| r.get(0)).collect();
    let mut decisions: HashMap<Uuid, Vec<Decision>> = HashMap::new();
    for r in tx.query(DECISIONS, &[&ids]).await? {
        decisions.entry(r.get(0)).or_default().push(Decision {
            candidate_id: r.get(1),
            accepted: r.get(2),
            filter: r.get(3),
            reason: r.get(4),
            score: r.get(5),
        });
    }
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
    tx.execute(COMPLETE, &[&ids, &method]).await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}
