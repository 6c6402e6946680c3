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

    async fn after_prune(&self, filter: &PruneFilter) -> Result<u64, StoreError> {
        let before_us = filter.before_us;
        self.with_client(move |c| Box::pin(drop_empty_search_days(c, before_us)))
            .await
    }
}

/// The search index's day partitions (`step_search_YYYYMMDD`, migration
/// 10) whose whole day is before `$1` (µs), oldest first.
const SEARCH_DAYS_BEFORE: &str = concat!(
    "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = 'xray.step_search'::regclass AND c.relname ~ '^step_search_[0-9]{8}$' \
       AND (to_date(substr(c.relname, 13), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= ",
    ts!("$1::int8"),
    " ORDER BY 1"
);

/// Drops the day partitions of the search index wholly before the cutoff
/// that the prune left empty (with `--project`, other projects' steps may
/// still be there), each in its own transaction; how many it dropped.
/// Dropping a partition locks the whole index for a moment: one that
/// cannot have that lock within a second (a long search) is left for the
/// next prune.
async fn drop_empty_search_days(
    client: &mut Client,
    before_us: i64,
) -> Result<u64, tokio_postgres::Error> {
    let days: Vec<String> = client
        .query(SEARCH_DAYS_BEFORE, &[&before_us])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut dropped = 0;
    for day in days {
        let tx = client.transaction().await?;
        tx.batch_execute("SET LOCAL lock_timeout = '1s'").await?;
        let table = format!("xray.\"{day}\"");
        let empty: bool = tx
            .query_one(&format!("SELECT NOT EXISTS (SELECT 1 FROM {table})"), &[])
            .await?
            .get(0);
        if !empty {
            continue;
        }
        match tx.batch_execute(&format!("DROP TABLE {table}")).await {
            Ok(()) => {
                tx.commit().await?;
                dropped += 1;
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                tracing::debug!(partition = %day, "the search index is busy; its empty day is left for the next prune");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(dropped)
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
