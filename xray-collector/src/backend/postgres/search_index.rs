//! [`SearchIndex`] for PostgreSQL: steps noted in `xray.search_pending` by
//! the shipping transaction become rows of `xray.step_search` (a
//! `tsvector` and its GIN index), a batch per transaction, on the indexer's
//! own connection. `xray.step_search` is partitioned by the day a step
//! started (migration 10); a batch first makes the partitions of its days.
//!
//! # One indexer at a time
//!
//! Each batch runs under a transaction-level advisory lock
//! ([`INDEX_LOCK_KEY`]), so the indexers of several collectors take turns.
//! That is what keeps the index right when a step is written twice in
//! quick succession: a batch sees the step as of its statement's start,
//! and a later write's note is only visible to a later batch, which
//! therefore starts after this one committed and writes the newer text
//! over it. Two batches at once could commit in the other order.

use tokio_postgres::Client;
use uuid::Uuid;

use crate::backend::postgres::PostgresStore;
use crate::backend::{SearchIndex, StoreError};

/// The advisory-lock key the indexers take turns under: the bytes of
/// `"xraysrch"`, recognisable in `pg_locks`.
pub const INDEX_LOCK_KEY: i64 = i64::from_be_bytes(*b"xraysrch");

/// What a person searches: the step's name and error and the string values
/// of its output and input — not the JSON's keys and numbers — cut at
/// 250,000 characters so that a huge value cannot exceed `tsvector`'s 1 MB
/// limit (words past the cut are not found). Over `xray.steps AS s`.
macro_rules! searched_text {
    () => {
        "to_tsvector('simple'::regconfig, left(
            coalesce(s.name, '') || ' ' || coalesce(s.error, '') || ' ' ||
            coalesce(jsonb_path_query_array(s.output, 'strict $.** ? (@.type() == \"string\")')::text, '') || ' ' ||
            coalesce(jsonb_path_query_array(s.input, 'strict $.** ? (@.type() == \"string\")')::text, ''),
            250000))"
    };
}

/// Takes up to `$1` notes; answers the steps they name.
const TAKE_NOTES: &str = "DELETE FROM xray.search_pending
     WHERE ctid = ANY (ARRAY(SELECT ctid FROM xray.search_pending LIMIT $1))
     RETURNING step_id";

/// Makes the partitions of the days (UTC) the steps `$1` started on
/// (`xray.step_search_day`, migration 10), before their entries are
/// written.
const MAKE_DAYS: &str = "SELECT xray.step_search_day(d) FROM (
         SELECT DISTINCT (started_at AT TIME ZONE 'UTC')::date AS d
         FROM xray.steps WHERE id = ANY ($1)) days";

/// (Re)indexes the steps `$1`, in id order; a step that is gone (pruned)
/// is skipped.
const INDEX_STEPS: &str = concat!(
    "INSERT INTO xray.step_search AS x (step_id, search, started_at)
     SELECT s.id, ",
    searched_text!(),
    ", s.started_at FROM xray.steps s WHERE s.id = ANY ($1)
     ORDER BY s.id
     ON CONFLICT (step_id, started_at) DO UPDATE SET search = EXCLUDED.search"
);

/// A reasoning job for each noted step that ended with decisions or a
/// failure (the job's id is the step's: one job per step), queued by the
/// indexer off the shipping path ([`crate::reasoning`]).
const QUEUE_REASONING: &str =
    "INSERT INTO xray.reasoning_jobs (id, execution_id, step_id, status, method)
     SELECT s.id, s.execution_id, s.id, 'pending', 'rules' FROM xray.steps s
     WHERE s.id = ANY ($1) AND s.status <> 'running'
       AND (s.status <> 'ok' OR EXISTS (SELECT 1 FROM xray.decisions d WHERE d.step_id = s.id))
     ORDER BY s.id
     ON CONFLICT (step_id) DO NOTHING";

impl SearchIndex for PostgresStore {
    async fn index_pending(&self, batch: usize) -> Result<u64, StoreError> {
        let batch = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        self.with_background_client(move |c| Box::pin(index_batch(c, batch)))
            .await
    }
}

/// One batch in one transaction: the notes taken, their days' partitions
/// made, their steps indexed; how many notes it took.
async fn index_batch(client: &mut Client, batch: i64) -> Result<u64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INDEX_LOCK_KEY])
        .await?;
    let steps: Vec<Uuid> = tx
        .query(TAKE_NOTES, &[&batch])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !steps.is_empty() {
        tx.execute(MAKE_DAYS, &[&steps]).await?;
        tx.execute(INDEX_STEPS, &[&steps]).await?;
        tx.execute(QUEUE_REASONING, &[&steps]).await?;
    }
    tx.commit().await?;
    Ok(steps.len() as u64)
}
