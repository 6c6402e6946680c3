//! Retention: deleting executions older than a cutoff with everything
//! that hangs off them, in bounded batches ([`PRUNE_BATCH`] executions per
//! transaction) so that shipping into the same store goes on in between —
//! once (`prune`) or periodically (`run --retention`).

use std::time::Duration;

use tokio::sync::watch;

use crate::backend::{retrying, PruneFilter, Pruned, Retention, StoreError};
use crate::render;

/// Executions deleted per transaction.
pub const PRUNE_BATCH: usize = 200;

/// Deletes what `filter` selects, a batch at a time until nothing is
/// left; with `dry_run`, counts it instead and changes nothing. What was
/// (or would be) deleted.
pub async fn prune(
    store: &impl Retention,
    filter: &PruneFilter,
    dry_run: bool,
) -> Result<Pruned, StoreError> {
    if dry_run {
        return store.prune_count(filter).await;
    }
    let mut total = Pruned::default();
    loop {
        let batch = batch_with_retries(store, filter).await?;
        if batch.executions == 0 {
            let dropped = store.after_prune(filter).await?;
            if dropped > 0 {
                tracing::info!(
                    partitions = dropped,
                    "dropped the search index's emptied days"
                );
            }
            return Ok(total);
        }
        total += batch;
        // Let a shipper waiting for the store have it between batches.
        tokio::task::yield_now().await;
    }
}

/// Times a batch that failed in a way that may pass (a busy embedded
/// store, a deadlock with a shipper, a lost connection) is tried again;
/// a failed batch changed nothing.
const BATCH_RETRIES: u32 = 6;

async fn batch_with_retries(
    store: &impl Retention,
    filter: &PruneFilter,
) -> Result<Pruned, StoreError> {
    retrying(
        "a prune batch",
        BATCH_RETRIES,
        |attempt| Duration::from_millis(25 << (attempt + 1)),
        || store.prune_batch(filter, PRUNE_BATCH),
    )
    .await
}

/// Prunes every execution older than `retention_us` now (any project),
/// and logs what went.
pub async fn prune_older_than(
    store: &impl Retention,
    retention_us: i64,
) -> Result<Pruned, StoreError> {
    let filter = PruneFilter::older_than(retention_us, None);
    let pruned = prune(store, &filter, false).await?;
    if pruned.executions > 0 {
        tracing::info!(
            executions = pruned.executions,
            steps = pruned.steps,
            "{}",
            render::pruned(&pruned, &filter, false)
        );
    } else {
        tracing::debug!("nothing to prune");
    }
    Ok(pruned)
}

/// How often `run --retention D` prunes: a tenth of D, between a minute
/// and an hour.
pub fn interval(retention_us: i64) -> Duration {
    Duration::from_micros((retention_us / 10).max(0) as u64)
        .clamp(Duration::from_secs(60), Duration::from_secs(3600))
}

/// Prunes executions older than `retention_us` now and then every
/// [`interval`], until `stop` turns true. A failed prune is logged and
/// tried again at the next turn; it never stops shipping.
pub async fn keep(store: &impl Retention, retention_us: i64, mut stop: watch::Receiver<bool>) {
    let every = interval(retention_us);
    loop {
        let pruned = tokio::select! {
            pruned = prune_older_than(store, retention_us) => pruned,
            // A batch in hand is finished or rolled back by the backend.
            _ = stop.changed() => return,
        };
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "pruning failed; trying again in {every:?}");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_a_tenth_between_a_minute_and_an_hour() {
        let day = 86_400_000_000;
        assert_eq!(interval(30 * day), Duration::from_secs(3600));
        assert_eq!(interval(day / 4), Duration::from_secs(2160));
        assert_eq!(interval(1_000_000), Duration::from_secs(60));
    }
}
