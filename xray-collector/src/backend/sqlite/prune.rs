//! [`Retention`] for the embedded store: a batch of the oldest executions
//! the filter selects, deleted child tables first in one transaction (so
//! each count is exact and the search index's delete trigger runs per
//! step), while the shipper waits at most one batch for the connection.

use rusqlite::{params, Connection, Transaction, TransactionBehavior};

use crate::backend::sqlite::SqliteStore;
use crate::backend::{PruneFilter, Pruned, Retention, StoreError};

/// The executions a filter selects, oldest first (`?1` cutoff, `?2`
/// project or NULL).
const SELECTED: &str = "SELECT id FROM executions
     WHERE started_at_us < ?1 AND (?2 IS NULL OR project = ?2)";

impl Retention for SqliteStore {
    async fn prune_batch(&self, filter: &PruneFilter, batch: usize) -> Result<Pruned, StoreError> {
        let filter = filter.clone();
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.read(move |conn| prune_batch(conn, &filter, batch))
            .await
    }

    async fn prune_count(&self, filter: &PruneFilter) -> Result<Pruned, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| {
            let tx = conn.transaction()?;
            let counted = count(&tx, &filter)?;
            tx.commit()?;
            Ok(counted)
        })
        .await
    }
}

fn prune_batch(
    conn: &mut Connection,
    filter: &PruneFilter,
    batch: i64,
) -> rusqlite::Result<Pruned> {
    // The write lock first, waiting out a shipper's batch with the busy
    // timeout: a deferred transaction would read first, and SQLite
    // refuses at once (SQLITE_BUSY, no waiting) to upgrade a read
    // snapshot another connection has written past.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch("CREATE TEMP TABLE IF NOT EXISTS prune_ids (id TEXT PRIMARY KEY); DELETE FROM temp.prune_ids;")?;
    let executions = tx.execute(
        &format!(
            "INSERT INTO temp.prune_ids (id)
             {SELECTED} ORDER BY started_at_us, id LIMIT ?3"
        ),
        params![filter.before_us, filter.project, batch],
    )? as u64;
    if executions == 0 {
        tx.commit()?;
        return Ok(Pruned::default());
    }
    let of_steps =
        "step_id IN (SELECT s.id FROM steps s JOIN temp.prune_ids p ON s.execution_id = p.id)";
    let decisions = tx.execute(&format!("DELETE FROM decisions WHERE {of_steps}"), [])? as u64;
    let llm_usage = tx.execute(&format!("DELETE FROM llm_usage WHERE {of_steps}"), [])? as u64;
    let steps = tx.execute(
        "DELETE FROM steps WHERE execution_id IN (SELECT id FROM temp.prune_ids)",
        [],
    )? as u64;
    tx.execute(
        "DELETE FROM executions WHERE id IN (SELECT id FROM temp.prune_ids)",
        [],
    )?;
    tx.commit()?;
    Ok(Pruned {
        executions,
        steps,
        decisions,
        llm_usage,
    })
}

fn count(tx: &Transaction<'_>, filter: &PruneFilter) -> rusqlite::Result<Pruned> {
    let count = |sql: String| -> rusqlite::Result<u64> {
        tx.query_row(&sql, params![filter.before_us, filter.project], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n as u64)
    };
    let steps_of = format!("SELECT s.id FROM steps s WHERE s.execution_id IN ({SELECTED})");
    Ok(Pruned {
        executions: count(format!("SELECT count(*) FROM ({SELECTED})"))?,
        steps: count(format!("SELECT count(*) FROM ({steps_of})"))?,
        decisions: count(format!(
            "SELECT count(*) FROM decisions WHERE step_id IN ({steps_of})"
        ))?,
        llm_usage: count(format!(
            "SELECT count(*) FROM llm_usage WHERE step_id IN ({steps_of})"
        ))?,
    })
}
