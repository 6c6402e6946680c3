//! What a pipeline captured, lost and wrote: the public [`Stats`] and the
//! [`Counters`] behind them, which the capture side and the writer thread
//! bump with relaxed atomic adds (each count is exact on its own; a snapshot
//! taken while steps run may be between two of them).

use std::sync::atomic::{AtomicU64, Ordering};

/// What the pipeline captured, lost and wrote; see [`stats`](fn@crate::stats).
///
/// After a successful flush, `captured == written + dropped`: every step
/// X-Ray saw end is either in the outbox or counted as lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Steps that ended while being recorded.
    pub captured: u64,
    /// Steps lost: queue full, outbox full, or write failed.
    pub dropped: u64,
    /// Steps committed to the outbox.
    pub written: u64,
    /// Executions recorded (sampled in).
    pub executions: u64,
    /// Executions not recorded because of sampling.
    pub unsampled_executions: u64,
    /// Of `dropped`: the queue was full (or the writer had stopped).
    pub dropped_queue_full: u64,
    /// Of `dropped`: the outbox had reached `XRAY_OUTBOX_MAX_BYTES`.
    pub dropped_outbox_full: u64,
    /// Of `dropped`: writing to the outbox failed repeatedly.
    pub dropped_write_failed: u64,
    /// Start records and execution records lost (the step itself may still
    /// have been written through its end record).
    pub other_records_dropped: u64,
    /// Rows committed to the outbox (starts, ends and executions).
    pub records_written: u64,
    /// Failed write attempts (each batch is retried before being dropped).
    pub write_errors: u64,
    /// Transactions committed to the outbox.
    pub batches: u64,
}

/// Counts of what a pipeline captured, lost and wrote. See [`Stats`].
#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub captured: AtomicU64,
    pub dropped: AtomicU64,
    pub written: AtomicU64,
    pub executions: AtomicU64,
    pub unsampled_executions: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_outbox_full: AtomicU64,
    pub dropped_write_failed: AtomicU64,
    pub other_records_dropped: AtomicU64,
    pub records_written: AtomicU64,
    pub write_errors: AtomicU64,
    pub batches: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            captured: get(&self.captured),
            dropped: get(&self.dropped),
            written: get(&self.written),
            executions: get(&self.executions),
            unsampled_executions: get(&self.unsampled_executions),
            dropped_queue_full: get(&self.dropped_queue_full),
            dropped_outbox_full: get(&self.dropped_outbox_full),
            dropped_write_failed: get(&self.dropped_write_failed),
            other_records_dropped: get(&self.other_records_dropped),
            records_written: get(&self.records_written),
            write_errors: get(&self.write_errors),
            batches: get(&self.batches),
        }
    }

    /// Counts a record lost before it reached the outbox.
    pub fn count_lost(&self, record_is_step_end: bool, reason: &AtomicU64) {
        if record_is_step_end {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            reason.fetch_add(1, Ordering::Relaxed);
        } else {
            self.other_records_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
