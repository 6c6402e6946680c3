//! Starting and stopping a capture pipeline: [`start`] opens the outbox,
//! starts its writer thread and builds the [`Shared`] state the layer and
//! the cells use; the [`Guard`] flushes and stops it. It also keeps the two
//! process-wide facts about pipelines: whether any is live (the one check a
//! step makes when X-Ray is not initialised) and which was started last (for
//! [`crate::stats()`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::cell::Shared;
use crate::clock::deadline_after;
use crate::config::{Config, RuntimeConfig};
use crate::error::Error;
use crate::outbox::{OutboxWriter, MAX_BATCH};
use crate::queue::Queue;
use crate::stats::{Counters, Stats};

/// Number of live pipelines in the process; zero means every step takes the
/// not-initialised fast path.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// The counters of the pipeline built last, for [`crate::stats()`].
static LATEST: Mutex<Option<Weak<Counters>>> = Mutex::new(None);

#[inline(always)]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed) != 0
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
            Some(inner) => inner
                .shared
                .queue
                .flush_until(deadline_after(timeout), timeout),
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

impl Drop for Guard {
    fn drop(&mut self) {
        let Some(mut inner) = self.inner.take() else {
            return;
        };
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
        let timeout = inner.shutdown_timeout;
        let deadline = deadline_after(timeout);
        if let Err(e) = inner.shared.queue.flush_until(deadline, timeout) {
            eprintln!("xray: records captured before shutdown may be lost: {e}");
        }
        // The layer may outlive the guard (a global subscriber keeps it), so
        // the writer is told to stop rather than waiting for every sender.
        inner.shared.queue.stop(deadline);
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
    let (queue, rx, wake) = Queue::bounded(config, MAX_BATCH);
    let counters = Arc::new(Counters::default());
    let handle = writer.spawn(rx, counters.clone(), wake, config.flush_interval)?;
    let shared = Arc::new(Shared {
        config: RuntimeConfig::of(config),
        counters,
        queue,
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

/// Makes `shared` the pipeline that [`crate::stats()`] reports on.
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
