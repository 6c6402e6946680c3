//! The search index behind the shipper ([`SearchIndex`]): caught up once
//! (`run --once`, after shipping) or kept current while the daemon runs
//! (`run`), a batch of [`INDEX_BATCH`] noted steps per transaction.
//!
//! Shipping never waits for the index: a store under more load than it can
//! index lets search lag rather than the outbox grow. While the shipper is
//! behind (its rounds of batches come full), the daemon's
//! indexer leaves the machine to it for up to [`MAX_LAG`] at a time: on a
//! small machine shipping and indexing compete for the same cores, and an
//! outbox that fills up drops steps, while a search that lags a few
//! seconds only finds them a little later. What is noted is in
//! the store itself, so nothing is lost when the collector stops; the next
//! one indexes it.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::backend::{drain, SearchIndex, StoreError};
use crate::ship::{Backoff, Metrics};

/// Noted steps indexed per transaction.
pub const INDEX_BATCH: usize = 5_000;

/// How long the daemon's indexer waits, when the index is current, before
/// it looks again: a step shipped meanwhile is found within about this
/// much more than its indexing takes.
pub const IDLE: Duration = Duration::from_millis(250);

/// How long the daemon's indexer stays out of the way of a shipper that is
/// behind, counted from when the index was last current: under a sustained
/// load it then catches up, and a step is found within about this long
/// plus its indexing.
pub const MAX_LAG: Duration = Duration::from_secs(5);

/// Indexes every noted step, a batch at a time, until nothing is noted;
/// how many notes it took. A batch that failed in a way that may pass (a
/// busy store, a deadlock with a prune, a lost connection) is tried again
/// a few times; a failed batch changed nothing.
pub async fn catch_up(store: &impl SearchIndex) -> Result<u64, StoreError> {
    drain("an indexing batch", || store.index_pending(INDEX_BATCH)).await
}

/// Keeps the index current until `stop` turns true: catches up, waits
/// [`IDLE`], and again; while the shipper is behind, only once the index
/// was last current [`MAX_LAG`] ago (see the module docs). A failure is logged, counted and tried again later
/// (with backoff, up to a minute apart); it never stops shipping. What it
/// indexed and when the index was last current go to `metrics`
/// (`xray_collector_search_*`).
pub async fn keep(store: &impl SearchIndex, metrics: &Metrics, mut stop: watch::Receiver<bool>) {
    let backoff = Backoff {
        base: IDLE,
        max: Duration::from_secs(60),
    };
    let mut failures = 0;
    let mut current_at = Instant::now();
    loop {
        let done = if metrics.shipping_behind() && current_at.elapsed() < MAX_LAG {
            None
        } else {
            Some(tokio::select! {
                done = catch_up(store) => done,
                _ = stop.changed() => return,
            })
        };
        let wait = match done {
            None => IDLE,
            Some(Ok(notes)) => {
                failures = 0;
                current_at = Instant::now();
                metrics.search_caught_up(notes);
                IDLE
            }
            Some(Err(e)) => {
                metrics.search_failed();
                let wait = backoff.delay(failures);
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "search indexing failed; trying again in {wait:?}");
                wait
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
