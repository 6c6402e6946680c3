//! Reasoning jobs behind the search indexer ([`Reasoning`]): the indexer
//! queues a job for each step it indexes that ended with decisions or a
//! failure, and the jobs are explained here by the `rules` reasoner
//! ([`crate::reason::rules`]) — caught up once (`run --once`, after
//! indexing) or kept up while the daemon runs, [`REASON_BATCH`] jobs per
//! transaction. Like the index, the queue is in the store: nothing is lost
//! when the collector stops.

use std::time::Duration;

use tokio::sync::watch;

use crate::backend::{drain, Reasoning, StoreError};
use crate::reason::rules;
use crate::ship::Backoff;

/// Jobs explained per transaction.
pub const REASON_BATCH: usize = 1_000;

/// How long the daemon's reasoner waits, when no job is pending, before it
/// looks again.
pub const IDLE: Duration = Duration::from_millis(250);

/// The method name jobs record.
pub const RULES: &str = "rules";

/// Explains every pending job until none is; how many it took
/// ([`drain`]: a batch that failed in a way that may pass is tried again).
pub async fn catch_up(store: &impl Reasoning) -> Result<u64, StoreError> {
    drain("a reasoning batch", || {
        store.reason_pending(REASON_BATCH, RULES, rules::explain)
    })
    .await
}

/// Keeps the jobs explained until `stop` turns true; a failure is logged
/// and tried again later (up to a minute apart), never stopping shipping.
pub async fn keep(store: &impl Reasoning, mut stop: watch::Receiver<bool>) {
    let backoff = Backoff {
        base: IDLE,
        max: Duration::from_secs(60),
    };
    let mut failures = 0;
    loop {
        let wait = tokio::select! {
            done = catch_up(store) => match done {
                Ok(_) => {
                    failures = 0;
                    IDLE
                }
                Err(e) => {
                    let wait = backoff.delay(failures);
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, "reasoning failed; trying again in {wait:?}");
                    wait
                }
            },
            _ = stop.changed() => return,
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
