//! [`SearchIndex`] for the embedded store: the steps the triggers on
//! `steps` noted in `search_pending` are fed to the contentless FTS5 table
//! `steps_fts`, a batch per `BEGIN IMMEDIATE` transaction (one FTS5 flush
//! per batch), oldest note first. A step that may already be in the index
//! (`replaces = 1`) is removed from it first; a note whose step is gone
//! (pruned) is dropped.

use rusqlite::{Connection, TransactionBehavior};

use crate::backend::sqlite::SqliteStore;
use crate::backend::{SearchIndex, StoreError};

/// What a person searches, as `steps_fts` holds it: the name, the string
/// values of input and output (not the JSON's keys and numbers), the error.
const INDEX_NOTED: &str = "INSERT INTO steps_fts (rowid, name, input, output, error)
     SELECT fts_rowid, name,
            (SELECT group_concat(value, ' ') FROM json_tree(steps.input) WHERE type = 'text'),
            (SELECT group_concat(value, ' ') FROM json_tree(steps.output) WHERE type = 'text'),
            error
     FROM steps
     WHERE fts_rowid IN (SELECT fts_rowid FROM search_pending WHERE rowid <= ?1)
     ORDER BY fts_rowid";

/// A reasoning job for each noted step that ended with decisions or a
/// failure (its id the step's: one job per step), queued off the shipping
/// path ([`crate::reasoning`]).
const QUEUE_REASONING: &str =
    "INSERT INTO reasoning_jobs (id, execution_id, step_id, status, method, created_at_us)
     SELECT s.id, s.execution_id, s.id, 'pending', 'rules', ?2 FROM steps s
     WHERE s.fts_rowid IN (SELECT fts_rowid FROM search_pending WHERE rowid <= ?1)
       AND s.status <> 'running'
       AND (s.status <> 'ok' OR EXISTS (SELECT 1 FROM decisions d WHERE d.step_id = s.id))
     ON CONFLICT (step_id) DO NOTHING";

impl SearchIndex for SqliteStore {
    async fn index_pending(&self, batch: usize) -> Result<u64, StoreError> {
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.read(move |conn| index_batch(conn, batch)).await
    }
}

fn index_batch(conn: &mut Connection, batch: i64) -> rusqlite::Result<u64> {
    // The write lock first (see prune.rs on why not deferred).
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (last, taken): (Option<i64>, i64) = tx.query_row(
        "SELECT max(rowid), count(*) FROM
             (SELECT rowid FROM search_pending ORDER BY rowid LIMIT ?1)",
        [batch],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let Some(last) = last else {
        tx.commit()?;
        return Ok(0);
    };
    {
        // One by one: FTS5 finds a row by its rowid, not by `IN`.
        let mut replaced = tx.prepare(
            "SELECT DISTINCT fts_rowid FROM search_pending WHERE rowid <= ?1 AND replaces = 1",
        )?;
        let mut forget = tx.prepare("DELETE FROM steps_fts WHERE rowid = ?1")?;
        let rows: Vec<i64> = replaced
            .query_map([last], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for rowid in rows {
            forget.execute([rowid])?;
        }
    }
    tx.execute(INDEX_NOTED, [last])?;
    tx.execute(
        QUEUE_REASONING,
        rusqlite::params![last, super::migrations::now_us()],
    )?;
    tx.execute("DELETE FROM search_pending WHERE rowid <= ?1", [last])?;
    tx.commit()?;
    Ok(taken.max(0) as u64)
}
