//! The capture pipeline: the bounded queue between the application's threads
//! and the outbox writer thread, the counters behind [`crate::stats`], and
//! the [`Guard`] that flushes and stops it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, SendTimeoutError, Sender, TrySendError};
use parking_lot::Mutex;

use crate::capture::{Redactor, SinkLimits};
use crate::config::{Config, WhenFull};
use crate::error::Error;
use crate::outbox::OutboxWriter;
use crate::record::Record;
use crate::stats::{Counters, Stats};

/// Number of live pipelines in the process; zero means every step takes the
/// not-initialised fast path.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The counters of the pipeline built last, for [`crate::stats`].
static LATEST: Mutex<Option<Weak<Counters>>> = Mutex::new(None);

#[inline(always)]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
}

/// Settings the capture side needs on the hot path.
pub(crate) struct RuntimeConfig {
    pub project: Arc<str>,
    pub sample_rate: f64,
    pub max_payload_bytes: usize,
    pub when_full: WhenFull,
    pub block_timeout: Duration,
    pub redactor: Arc<Redactor>,
}

/// A message to the writer thread.
pub(crate) enum Message {
    Record(Record),
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

/// What the layer, the cells and the guard share.
pub(crate) struct Shared {
    pub config: RuntimeConfig,
    pub counters: Arc<Counters>,
    tx: Sender<Message>,
    capacity: usize,
    wake: Arc<WriterWake>,
    /// Queue length at which a sender wakes the sleeping writer.
    wake_at: usize,
}

impl Shared {
    pub fn sink_limits(&self) -> SinkLimits<'_> {
        SinkLimits {
            max_bytes: self.config.max_payload_bytes,
            redactor: &self.config.redactor,
        }
    }

    /// Hands a record to the writer under the configured full-queue policy.
    /// Never blocks longer than `block_timeout`, never fails: a record that
    /// cannot be queued is counted as dropped, and `false` returned.
    /// (A step is counted as captured when it finishes, not here.)
    pub fn send(&self, record: Record) -> bool {
        let step_end = record.is_step_end();
        if record.is_start()
            && self.config.when_full == WhenFull::Drop
            && self.tx.len() * 2 > self.capacity
        {
            // Start records only make unfinished work visible; when the queue
            // is filling up, keep its room for the records that carry results.
            self.counters
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
                match self.config.when_full {
                    WhenFull::Drop => true,
                    WhenFull::Block => self
                        .tx
                        .send_timeout(message, self.config.block_timeout)
                        .is_err(),
                }
            }
        };
        if lost {
            self.counters
                .count_lost(step_end, &self.counters.dropped_queue_full);
        }
        !lost
    }

    /// Whether an execution starting now is recorded.
    pub fn sample(&self) -> bool {
        let rate = self.config.sample_rate;
        rate >= 1.0 || (rate > 0.0 && fastrand::f64() < rate)
    }
}

/// Keeps X-Ray running. [`Guard::flush`] makes what was captured durable;
/// dropping the guard flushes (waiting at most the configured shutdown
/// timeout) and stops the writer. Keep it alive for as long as the program
/// should be traced: `let _guard = …init()?;` — not `let _ = …`.
#[must_use = "dropping the guard stops X-Ray"]
pub struct Guard {
    inner: Option<GuardInner>,
}

struct GuardInner {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    shutdown_timeout: Duration,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("active", &self.inner.is_some())
            .finish()
    }
}

impl Guard {
    pub(crate) fn disabled() -> Guard {
        Guard { inner: None }
    }

    /// Returns once every record captured before the call is committed to
    /// the outbox (with a full sync), or the error that prevented it.
    /// Waits at most 60 s.
    pub fn flush(&self) -> Result<(), Error> {
        self.flush_within(Duration::from_secs(60))
    }

    /// Like [`Guard::flush`] with a custom bound on the wait.
    pub fn flush_within(&self, timeout: Duration) -> Result<(), Error> {
        match &self.inner {
            Some(inner) => flush_until(&inner.shared, Instant::now() + timeout, timeout),
            None => Ok(()),
        }
    }

    /// What this pipeline has captured, dropped and written so far.
    pub fn stats(&self) -> Stats {
        match &self.inner {
            Some(inner) => inner.shared.counters.snapshot(),
            None => Stats::default(),
        }
    }
}

fn flush_until(shared: &Shared, deadline: Instant, timeout: Duration) -> Result<(), Error> {
    let (ack_tx, ack_rx) = bounded(1);
    // Before queueing, in case the queue is full while the writer sleeps
    // (the send would wait for room); after, so that it sees the flush.
    shared.wake.wake();
    shared
        .tx
        .send_deadline(Message::Flush(ack_tx), deadline)
        .map_err(|e| match e {
            SendTimeoutError::Timeout(_) => Error::FlushTimeout(timeout),
            SendTimeoutError::Disconnected(_) => Error::WriterStopped,
        })?;
    shared.wake.wake();
    match ack_rx.recv_deadline(deadline) {
        Ok(result) => result,
        Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(Error::FlushTimeout(timeout)),
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(Error::WriterStopped),
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
        let timeout = inner.shutdown_timeout;
        let deadline = Instant::now() + timeout;
        if let Err(e) = flush_until(&inner.shared, deadline, timeout) {
            eprintln!("xray: records captured before shutdown may be lost: {e}");
        }
        // The layer may outlive the guard (a global subscriber keeps it), so
        // the writer is told to stop rather than waiting for every sender.
        let _ = inner.shared.tx.send_deadline(Message::Stop, deadline);
        inner.shared.wake.wake();
        if let Some(writer) = inner.writer.take() {
            while !writer.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if writer.is_finished() {
                let _ = writer.join();
            }
        }
    }
}

/// Starts a pipeline for `config`: opens the outbox (creating it), starts
/// the writer thread. `None` when the configuration disables X-Ray.
pub(crate) fn start(config: &Config) -> Result<Option<(Arc<Shared>, Guard)>, Error> {
    config.validate()?;
    if config.disabled {
        return Ok(None);
    }
    let writer = OutboxWriter::open(&config.outbox, config.outbox_max_bytes)?;
    let (tx, rx): (Sender<Message>, Receiver<Message>) = bounded(config.queue_capacity);
    let counters = Arc::new(Counters::default());
    let wake = Arc::new(WriterWake::default());
    let handle = writer.spawn(rx, counters.clone(), wake.clone(), config.flush_interval)?;
    let redactor = Arc::new(Redactor::new(config.redact_keys.iter()));
    let shared = Arc::new(Shared {
        config: RuntimeConfig {
            project: Arc::from(config.project.as_str()),
            sample_rate: config.sample_rate,
            max_payload_bytes: config.max_payload_bytes,
            when_full: config.when_full,
            block_timeout: config.block_timeout,
            redactor: redactor.clone(),
        },
        counters: counters.clone(),
        tx,
        capacity: config.queue_capacity,
        wake,
        // A full batch, or half the queue when that is smaller.
        wake_at: (config.queue_capacity / 2).clamp(1, crate::outbox::MAX_BATCH),
    });
    ACTIVE.fetch_add(1, Ordering::Relaxed);
    let guard = Guard {
        inner: Some(GuardInner {
            shared: shared.clone(),
            writer: Some(handle),
            shutdown_timeout: config.shutdown_timeout,
        }),
    };
    Ok(Some((shared, guard)))
}

/// Makes `shared` the pipeline that [`crate::stats`] reports on.
pub(crate) fn publish(shared: &Arc<Shared>) {
    *LATEST.lock() = Some(Arc::downgrade(&shared.counters));
}

/// The counters of the pipeline started last (zeros if none).
pub(crate) fn latest_stats() -> Stats {
    match LATEST.lock().as_ref().and_then(Weak::upgrade) {
        Some(counters) => counters.snapshot(),
        None => Stats::default(),
    }
}
