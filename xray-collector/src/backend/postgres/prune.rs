//! [`Retention`] for PostgreSQL: a batch of the oldest executions the
//! filter selects, locked first (`FOR UPDATE SKIP LOCKED`: an execution a
//! shipper is writing right now waits for the next batch rather than
//! deadlocking with it), then deleted child tables first in one
//! transaction, so that each count is exact.

use tokio_postgres::Client;
use uuid::Uuid;

use crate::backend::postgres::PostgresStore;
use crate::backend::{PruneFilter, Pruned, Retention, StoreError};

/// The executions a filter selects (`$1` cutoff in µs, `$2` project or
/// NULL).
const SELECTED: &str = "SELECT id FROM xray.executions \
     WHERE started_at < ('epoch'::timestamptz + $1::bigint * interval '1 microsecond') AND ($2::text IS NULL OR project = $2)";

impl Retention for PostgresStore {
    async fn prune_batch(&self, filter: &PruneFilter, batch: usize) -> Result<Pruned, StoreError> {
        let filter = filter.clone();
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.with_client(move |c| Box::pin(prune_batch(c, filter, batch)))
            .await
    }

    async fn prune_count(&self, filter: &PruneFilter) -> Result<Pruned, StoreError> {
        let filter = filter.clone();
        self.with_client(move |c| Box::pin(count(c, filter))).await
    }
}

async fn prune_batch(
    client: &mut Client,
    filter: PruneFilter,
    batch: i64,
) -> Result<Pruned, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let ids: Vec<Uuid> = tx
        .query(
            &format!("{SELECTED} ORDER BY started_at, id LIMIT $3 FOR UPDATE SKIP LOCKED"),
            &[&filter.before_us, &filter.project, &batch],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(Pruned::default());
    }
    let of_steps = "step_id IN (SELECT id FROM xray.steps WHERE execution_id = ANY($1))";
    let decisions = tx
        .execute(
            &format!("DELETE FROM xray.decisions WHERE {of_steps}"),
            &[&ids],
        )
        .await?;
    let llm_usage = tx
        .execute(
            &format!("DELETE FROM xray.llm_usage WHERE {of_steps}"),
            &[&ids],
        )
        .await?;
    let steps = tx
        .execute(
            "DELETE FROM xray.steps WHERE execution_id = ANY($1)",
            &[&ids],
        )
        .await?;
    let executions = tx
        .execute("DELETE FROM xray.executions WHERE id = ANY($1)", &[&ids])
        .await?;
    tx.commit().await?;
    Ok(Pruned {
        executions,
        steps,
        decisions,
        llm_usage,
    })
}

async fn count(client: &mut Client, filter: PruneFilter) -> Result<Pruned, tokio_postgres::Error> {
    let steps_of = format!("SELECT s.id FROM xray.steps s WHERE s.execution_id IN ({SELECTED})");
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM ({SELECTED}) e), \
                        (SELECT count(*) FROM ({steps_of}) s), \
                        (SELECT count(*) FROM xray.decisions WHERE step_id IN ({steps_of})), \
                        (SELECT count(*) FROM xray.llm_usage WHERE step_id IN ({steps_of}))"
            ),
            &[&filter.before_us, &filter.project],
        )
        .await?;
    let n = |i: usize| row.get::<_, i64>(i) as u64;
    Ok(Pruned {
        executions: n(0),
        steps: n(1),
        decisions: n(2),
        llm_usage: n(3),
    })
}
