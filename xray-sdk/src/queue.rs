//! The bounded queue between the application's threads and the outbox
//! writer thread.
//!
//! It owns what travels on the queue ([`Message`]), the full-queue policy a
//! record is sent under ([`Queue::send`]), flushing and stopping the writer
//! through it, how a sender wakes the sleeping writer ([`WriterWake`]), and
//! how a step's end rides on its start record while that is still queued
//! ([`QueueSlot`]).
//!
//! It is generic over the record it carries, so that it knows nothing of
//! the cells that queue themselves on it: they depend on it, not it on them.
//!
//! # Invariants
//!
//! - **Nothing is lost silently.** A record handed to [`Queue::send`] is
//!   either queued or counted lost in [`Counters`] (a step end as dropped
//!   with the queue full, anything else as another record dropped), and
//!   `send` says which.
//! - **The application never waits long.** `send` never blocks, except
//!   under [`WhenFull::Block`] and then for at most the block timeout.
//! - **Starts give way to ends.** Under [`WhenFull::Drop`] a start record is
//!   shed once the queue is half full: it only makes unfinished work
//!   visible, the room is kept for the records that carry results.
//! - **A flush covers what came before it.** A flush is queued behind every
//!   record sent before it; the writer answers it after the commit that
//!   holds them (see `outbox::writer`).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender, TrySendError};

use crate::config::{Config, WhenFull};
use crate::error::Error;
use crate::stats::Counters;

/// What the queue needs to know of a record to apply its policy and count
/// its loss.
pub(crate) trait QueuedRecord {
    /// Whether losing this record, as sent, loses a step (as counted in
    /// `Stats`).
    fn is_step_end(&self) -> bool;

    /// Whether this is a `start` record (of a step or an execution).
    fn is_start(&self) -> bool;
}

/// A message to the writer thread.
pub(crate) enum Message<R> {
    Record(R),
    /// Commit everything before this message, then answer.
    Flush(Sender<Result<(), Error>>),
    /// Commit what is queued and end the writer thread.
    Stop,
}

/// How the application's threads wake the writer thread, which sleeps
/// between batches instead of waiting on the queue: queueing a record is
/// then a few atomic operations, not a system call to wake a waiting thread.
/// A thread wakes it only when the queue holds a full batch, when it asks
/// for a flush or a stop, and when the queue is full.
#[derive(Default)]
pub(crate) struct WriterWake {
    sleeping: AtomicBool,
    thread: OnceLock<Thread>,
}

impl WriterWake {
    pub fn set_thread(&self, thread: Thread) {
        let _ = self.thread.set(thread);
    }

    /// Wakes the writer (or makes its next sleep return at once).
    pub fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    /// Wakes the writer if it is sleeping; one atomic load when it is not.
    #[inline]
    fn wake_if_sleeping(&self) {
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            self.wake();
        }
    }

    /// The writer sleeps for at most `timeout`, unless `nothing_queued`
    /// (checked after it announced its sleep, so a record queued meanwhile
    /// is seen) says there is work.
    pub fn sleep_until(&self, timeout: Duration, nothing_queued: impl FnOnce() -> bool) {
        self.sleeping.store(true, Ordering::SeqCst);
        if nothing_queued() {
            std::thread::park_timeout(timeout);
        }
        self.sleeping.store(false, Ordering::Relaxed);
    }
}

/// The sending half of the queue, with its full-queue policy.
pub(crate) struct Queue<R> {
    tx: Sender<Message<R>>,
    capacity: usize,
    wake: Arc<WriterWake>,
    /// Queue length at which a sender wakes the sleeping writer.
    wake_at: usize,
    when_full: WhenFull,
    block_timeout: Duration,
}

impl<R: QueuedRecord> Queue<R> {
    /// A queue of `config`'s capacity and policy, with its receiving end and
    /// the wake the writer thread sleeps on. `full_batch` is the most records
    /// the writer commits at once.
    pub fn bounded(
        config: &Config,
        full_batch: usize,
    ) -> (Queue<R>, Receiver<Message<R>>, Arc<WriterWake>) {
        let (tx, rx) = bounded(config.queue_capacity);
        let wake = Arc::new(WriterWake::default());
        let queue = Queue {
            tx,
            capacity: config.queue_capacity,
            wake: wake.clone(),
            // A full batch, or half the queue when that is smaller.
            wake_at: (config.queue_capacity / 2).clamp(1, full_batch),
            when_full: config.when_full,
            block_timeout: config.block_timeout,
        };
        (queue, rx, wake)
    }

    /// Hands a record to the writer under the configured full-queue policy.
    /// Never blocks longer than `block_timeout`, never fails: a record that
    /// cannot be queued is counted as dropped in `counters`, and `false`
    /// returned. (A step is counted as captured when it finishes, not here.)
    pub fn send(&self, record: R, counters: &Counters) -> bool {
        let step_end = record.is_step_end();
        if record.is_start()
            && self.when_full == WhenFull::Drop
            && self.tx.len() * 2 > self.capacity
        {
            // Start records only make unfinished work visible; when the queue
            // is filling up, keep its room for the records that carry results.
            counters
                .other_records_dropped
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let lost = match self.tx.try_send(Message::Record(record)) {
            Ok(()) => {
                if self.tx.len() >= self.wake_at {
                    self.wake.wake_if_sleeping();
                }
                false
            }
            Err(TrySendError::Disconnected(_)) => true,
            Err(TrySendError::Full(message)) => {
                // The writer may be asleep with a full queue (a queue smaller
                // than a batch, or a burst): get it going.
                self.wake.wake_if_sleeping();
                match self.when_full {
                    WhenFull::Drop => true,
                    WhenFull::Block => self.tx.send_timeout(message, self.block_timeout).is_err(),
                }
            }
        };
        if lost {
            counters.count_lost(step_end, &counters.dropped_queue_full);
        }
        !lost
    }

    /// Returns once the writer has committed every record queued before the
    /// call, or `deadline` passed (reported as a timeout of `timeout`).
    pub fn flush_until(&self, deadline: Instant, timeout: Duration) -> Result<(), Error> {
        let (ack_tx, ack_rx) = bounded(1);
        // Before queueing, in case the queue is full while the writer sleeps
        // (the send would wait for room); after, so that it sees the flush.
        self.wake.wake();
        self.tx
            .send_deadline(Message::Flush(ack_tx), deadline)
            .map_err(|e| match e {
                SendTimeoutError::Timeout(_) => Error::FlushTimeout(timeout),
                SendTimeoutError::Disconnected(_) => Error::WriterStopped,
            })?;
        self.wake.wake();
        match ack_rx.recv_deadline(deadline) {
            Ok(result) => result,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(Error::FlushTimeout(timeout)),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(Error::WriterStopped),
        }
    }

    /// Tells the writer to commit what is queued and end, waiting for room
    /// until `deadline` at most.
    pub fn stop(&self, deadline: Instant) {
        let _ = self.tx.send_deadline(Message::Stop, deadline);
        self.wake.wake();
    }
}

const NOT_QUEUED: u8 = 0;
const START_QUEUED: u8 = 1;
const END_RIDES: u8 = 2;

/// Whether a step's (or execution's) `start` record is waiting in the queue,
/// and whether its end has been put on it.
///
/// Most steps end within the writer's flush interval, before the writer gets
/// to their start record. Such a step does not queue a second record: it
/// marks its start record as carrying the end, and the writer, taking the
/// record, writes the end row instead of the start row. The application's
/// thread and the writer settle it with one atomic each: the thread's
/// compare-exchange from "start queued" to "end rides", the writer's swap
/// back to "not queued". Whichever comes first decides: a thread that finds
/// the start already taken queues its end as a record of its own.
#[derive(Debug, Default)]
pub(crate) struct QueueSlot(AtomicU8);

/// What the writer found when it took a start record.
pub(crate) enum Taken {
    Start,
    StartWithEnd,
}

impl QueueSlot {
    /// Call before queueing the start record.
    pub fn start_queued(&self) {
        self.0.store(START_QUEUED, Ordering::Release);
    }

    /// The start record could not be queued (dropped).
    pub fn start_lost(&self) {
        self.0.store(NOT_QUEUED, Ordering::Release);
    }

    /// Puts the end on the queued start record; `false` when there is none
    /// (the writer took it, or it was never queued): queue the end then.
    pub fn ride(&self) -> bool {
        self.0
            .compare_exchange(START_QUEUED, END_RIDES, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The writer takes the start record off the queue.
    pub fn take(&self) -> Taken {
        match self.0.swap(NOT_QUEUED, Ordering::AcqRel) {
            END_RIDES => Taken::StartWithEnd,
            _ => Taken::Start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_rides_only_on_a_start_still_queued() {
        let slot = QueueSlot::default();
        assert!(!slot.ride(), "nothing queued: the end goes on its own");

        slot.start_queued();
        assert!(slot.ride(), "start queued: the end rides on it");
        assert!(matches!(slot.take(), Taken::StartWithEnd));
        assert!(!slot.ride(), "taken: nothing left to ride on");

        slot.start_queued();
        assert!(matches!(slot.take(), Taken::Start));
        assert!(!slot.ride(), "the writer took the start first");

        slot.start_queued();
        slot.start_lost();
        assert!(!slot.ride(), "a start that was dropped carries nothing");
    }
}
