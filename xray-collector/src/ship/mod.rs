//! The shipping loop: outbox → backend, exactly once in effect.
//!
//! # Order of operations, and why nothing is lost
//!
//! For each outbox, in turn:
//!
//! 1. read the oldest rows, bounded by rows and bytes ([`ShipConfig`]), as
//!    one batch or, on a store that takes several writes at once
//!    ([`Store::concurrent_writes`]), as that many consecutive batches;
//! 2. rows that do not parse go to the dead-letter table with the reason;
//! 3. the parsed records of each batch are written in **one transaction**
//!    of idempotent upserts ([`crate::backend::Store::write`]), the batches
//!    of a round side by side on their own connections (the upserts' rules
//!    make their order irrelevant: a start never overwrites an end);
//! 4. only after every batch of the round has committed are its rows
//!    deleted from the outbox.
//!
//! A crash between 3 and 4 re-ships the rows; the upserts make that
//! harmless. While a round is written the next one is read. A retriable backend error (unreachable, restarting) is retried
//! with capped exponential backoff and jitter, forever, holding the batch:
//! nothing is dropped, and the outbox keeps growing in the application
//! meanwhile. A record the backend *rejects* is found by bisecting the
//! batch (each half written on its own, recursively) and moved to the
//! dead-letter table, so it never blocks the rows behind it.
//!
//! An outbox that cannot be read (unknown format version, not an outbox,
//! corrupt) is reported — in the log and in `/healthz` — and checked again
//! only after [`ShipConfig::recheck_failed`]; the other outboxes keep
//! shipping. A missing outbox is waited for.
//!
//! Shutdown (SIGINT/SIGTERM) lets the batch in hand finish — its commit and
//! its delete — and then stops; during an outage it stops without deleting
//! anything.

mod backoff;
mod metrics;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uuid::Uuid;

pub use backoff::Backoff;
pub use metrics::{Metrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};

use crate::backend::{DeadLetter, Store, StoreError};
use crate::model::ShipRecord;
use crate::outbox::{OutboxError, OutboxReader, ReadBatch};

/// This sink's name in the outbox's progress table
/// ([`xray_outbox::PROGRESS_TABLE`]).
pub const SINK: &str = "database";

/// A fault to inject, for the crash tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fault {
    /// No fault.
    #[default]
    None,
    /// Abort the process right after the round holding the `n`-th batch
    /// commits, before its rows are deleted from the outbox.
    CrashAfterCommit(u64),
}

impl Fault {
    /// Reads `XRAY_COLLECTOR_FAULT` (`crash-after-commit:N`); for tests,
    /// only built with the `fault-injection` feature.
    #[cfg(feature = "fault-injection")]
    pub fn from_env() -> Fault {
        match std::env::var("XRAY_COLLECTOR_FAULT") {
            Ok(v) => match v
                .strip_prefix("crash-after-commit:")
                .and_then(|n| n.parse().ok())
            {
                Some(n) => Fault::CrashAfterCommit(n),
                None => Fault::None,
            },
            Err(_) => Fault::None,
        }
    }
}

/// How the shipper runs.
#[derive(Debug, Clone)]
pub struct ShipConfig {
    /// The outboxes to ship.
    pub outboxes: Vec<PathBuf>,
    /// Most rows per batch.
    pub batch_rows: usize,
    /// Most payload bytes per batch (a single larger row still ships alone).
    pub batch_bytes: usize,
    /// Most bytes one outbox row may have over all its columns; a larger
    /// row is dead-lettered without being loaded
    /// ([`crate::outbox::OutboxReader::with_max_row_bytes`]).
    pub max_row_bytes: usize,
    /// Ship what is there, then return.
    pub once: bool,
    /// How long to wait when every outbox is empty.
    pub poll_interval: Duration,
    /// Backoff between retries of a batch the backend could not take.
    pub backoff: Backoff,
    /// How long an unreadable outbox is left alone before being checked again.
    pub recheck_failed: Duration,
    /// Most batches written at once, each in its own transaction on its
    /// own connection, as far as the store takes them
    /// ([`Store::concurrent_writes`]); 1 writes one batch at a time.
    pub concurrent_batches: usize,
    /// The other sinks shipping the same outboxes (e.g. [`crate::otlp::SINK`]):
    /// a row is deleted only once each of them has delivered it too
    /// ([`OutboxReader::delivered_through`]).
    pub other_sinks: Vec<&'static str>,
    /// Injected fault (tests).
    pub fault: Fault,
}

impl Default for ShipConfig {
    fn default() -> Self {
        ShipConfig {
            outboxes: vec![PathBuf::from(".xray/outbox.db")],
            batch_rows: 5000,
            batch_bytes: 8 << 20,
            max_row_bytes: crate::outbox::MAX_ROW_BYTES,
            once: false,
            poll_interval: Duration::from_millis(100),
            backoff: Backoff::default(),
            recheck_failed: Duration::from_secs(30),
            concurrent_batches: 2,
            other_sinks: Vec::new(),
            fault: Fault::None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShipSummary {
    /// Outbox rows delivered (committed and deleted).
    pub rows: u64,
    /// Batches committed.
    pub batches: u64,
    /// Rows moved to the dead-letter table.
    pub dead_letters: u64,
    /// Outboxes that could not be read.
    pub unreadable_outboxes: u64,
}

struct OutboxState {
    path: PathBuf,
    /// Where a dead letter says it came from.
    source: Source,
    /// Shared with the blocking threads its calls run on.
    reader: Option<Arc<Mutex<OutboxReader>>>,
    /// The round after the one in hand, read while that one was written.
    prefetched: Vec<ReadBatch>,
    /// The last `seq` delivered to the database (rows through it may stay
    /// in the outbox while another sink has yet to deliver them).
    cursor: i64,
    failed_at: Option<Instant>,
    waiting_logged: bool,
}

/// An outbox as its dead letters name it: its durable identity (known
/// once the file is open) and its path.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) id: Uuid,
    pub(crate) label: String,
}

impl Source {
    pub(crate) fn letter(&self, seq: i64, record: serde_json::Value, reason: String) -> DeadLetter {
        DeadLetter {
            outbox_id: self.id,
            outbox: self.label.clone(),
            seq,
            record,
            reason,
        }
    }
}

/// Ships outboxes into a [`Store`].
pub struct Shipper<S> {
    store: Arc<S>,
    config: ShipConfig,
    metrics: Arc<Metrics>,
}

/// The shutdown signal arrived while waiting for the backend.
struct Interrupted;

impl<S: Store> Shipper<S> {
    /// A shipper writing into `store`.
    pub fn new(store: Arc<S>, config: ShipConfig, metrics: Arc<Metrics>) -> Self {
        Shipper {
            store,
            config,
            metrics,
        }
    }

    /// Ships what `config.outboxes` hold into `store`, then returns (as
    /// `run --once` does, without a shutdown signal or shared metrics): for
    /// programs and tests that ship in-process.
    pub async fn ship_once(store: Arc<S>, config: ShipConfig) -> ShipSummary {
        let config = ShipConfig {
            once: true,
            ..config
        };
        let (_never, shutdown) = watch::channel(false);
        Shipper::new(store, config, Arc::new(Metrics::default()))
            .run(shutdown)
            .await
    }

    /// Ships until `shutdown` turns true (or, with `once`, until every
    /// outbox is empty, missing or unreadable).
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> ShipSummary {
        let mut states: Vec<OutboxState> = self
            .config
            .outboxes
            .iter()
            .map(|p| OutboxState {
                path: p.clone(),
                source: Source {
                    id: Uuid::nil(),
                    label: p.display().to_string(),
                },
                reader: None,
                prefetched: Vec::new(),
                cursor: 0,
                failed_at: None,
                waiting_logged: false,
            })
            .collect();
        let mut summary = ShipSummary::default();
        'outer: loop {
            if *shutdown.borrow() {
                break;
            }
            let mut shipped_any = false;
            for state in &mut states {
                if *shutdown.borrow() {
                    break 'outer;
                }
                let Some(round) = self.next_round(state, &mut summary).await else {
                    continue;
                };
                if round.is_empty() {
                    continue;
                }
                shipped_any = true;
                match self
                    .deliver(state, round, &mut shutdown, &mut summary)
                    .await
                {
                    Ok(()) => {}
                    Err(Interrupted) => break 'outer,
                }
            }
            if !shipped_any {
                self.metrics.set_shipping_behind(false);
                if self.config.once {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        summary
    }

    /// How many batches a round holds.
    fn round_size(&self) -> usize {
        self.config
            .concurrent_batches
            .min(self.store.concurrent_writes())
            .max(1)
    }

    /// Whether a round took as many batches, each as large, as it may.
    fn is_full(&self, round: &[ReadBatch]) -> bool {
        round.len() >= self.round_size()
            && round.iter().all(|b| {
                b.records.len() + b.problems.len() >= self.config.batch_rows
                    || b.bytes >= self.config.batch_bytes
            })
    }

    /// Opens the outbox if needed and reads its next round (its next
    /// batches, none of them empty); `None` when it is missing or
    /// unreadable right now.
    async fn next_round(
        &self,
        state: &mut OutboxState,
        summary: &mut ShipSummary,
    ) -> Option<Vec<ReadBatch>> {
        let prefetched = std::mem::take(&mut state.prefetched);
        if !prefetched.is_empty() {
            return Some(prefetched);
        }
        if state.reader.is_none() {
            if let Some(at) = state.failed_at {
                if at.elapsed() < self.config.recheck_failed {
                    return None;
                }
            }
            let (path, max_row_bytes) = (state.path.clone(), self.config.max_row_bytes);
            let opened = off_runtime(&state.path, move || {
                let reader = OutboxReader::open(&path)?.with_max_row_bytes(max_row_bytes);
                let delivered = reader.progress(SINK)?.unwrap_or(0);
                Ok((reader, delivered))
            })
            .await;
            match opened {
                Ok((reader, delivered)) => {
                    state.cursor = delivered;
                    tracing::info!(outbox = %state.source.label, "shipping");
                    self.metrics.clear_outbox_problem(&state.source.label);
                    state.source.id = reader.id();
                    state.reader = Some(Arc::new(Mutex::new(reader)));
                    state.failed_at = None;
                }
                Err(OutboxError::Missing(_)) => {
                    if !state.waiting_logged {
                        tracing::info!(outbox = %state.source.label, "waiting for the outbox to appear");
                        state.waiting_logged = true;
                    }
                    return None;
                }
                Err(e) => return self.outbox_failed(state, e, summary),
            }
        }
        let reader = Arc::clone(state.reader.as_ref()?);
        let (max_rows, max_bytes, batches) = (
            self.config.batch_rows,
            self.config.batch_bytes,
            self.round_size(),
        );
        let after = state.cursor;
        let read = on_reader(&state.path, reader, move |r| {
            Ok((
                r.backlog()?,
                read_round(r, after, batches, max_rows, max_bytes)?,
            ))
        })
        .await;
        match read {
            Ok(((rows, oldest), round)) => {
                self.metrics.set_backlog(&state.source.label, rows, oldest);
                Some(round)
            }
            Err(e) => self.outbox_failed(state, e, summary),
        }
    }

    fn outbox_failed(
        &self,
        state: &mut OutboxState,
        e: OutboxError,
        summary: &mut ShipSummary,
    ) -> Option<Vec<ReadBatch>> {
        state.prefetched = Vec::new();
        if e.is_retriable() {
            tracing::warn!(outbox = %state.source.label, error = %e, "cannot read the outbox; will retry");
        } else {
            tracing::error!(
                outbox = %state.source.label,
                error = %e,
                recheck_in = ?self.config.recheck_failed,
                "{e}; leaving it alone for {:?}, other outboxes keep shipping",
                self.config.recheck_failed
            );
            summary.unreadable_outboxes += 1;
            self.metrics
                .set_outbox_problem(&state.source.label, e.to_string());
        }
        state.reader = None;
        state.failed_at = Some(Instant::now());
        None
    }

    /// Writes a round's batches side by side (dead-lettering what must
    /// be), then deletes them.
    async fn deliver(
        &self,
        state: &mut OutboxState,
        round: Vec<ReadBatch>,
        shutdown: &mut watch::Receiver<bool>,
        summary: &mut ShipSummary,
    ) -> Result<(), Interrupted> {
        let letters: Vec<DeadLetter> = round
            .iter()
            .flat_map(|batch| &batch.problems)
            .map(|p| {
                state.source.letter(
                    p.seq,
                    p.raw.clone(),
                    format!("unreadable outbox row: {}", p.reason),
                )
            })
            .collect();
        if !letters.is_empty() {
            self.dead_letter(&letters, shutdown).await?;
            summary.dead_letters += letters.len() as u64;
        }
        let last_seq = round.last().map_or(0, |b| b.last_seq);
        // While the backend works on this round, read the next one: the
        // read is a local SQLite query, the writes round trips to another
        // process, so the two overlap. Rows are deleted only below.
        let writes = futures_util::future::join_all(
            round
                .iter()
                .filter(|batch| !batch.records.is_empty())
                .map(|batch| {
                    let mut shutdown = shutdown.clone();
                    let source = &state.source;
                    async move { self.write(source, &batch.records, &mut shutdown).await }
                }),
        );
        let (max_rows, max_bytes, batches) = (
            self.config.batch_rows,
            self.config.batch_bytes,
            self.round_size(),
        );
        let prefetch = async {
            let reader = Arc::clone(state.reader.as_ref()?);
            on_reader(&state.path, reader, move |r| {
                read_round(r, last_seq, batches, max_rows, max_bytes)
            })
            .await
            .ok()
        };
        let (written, next) = tokio::join!(writes, prefetch);
        state.prefetched = next.unwrap_or_default();
        // Behind while rounds come full: the outbox holds more than one
        // round can take (with several outboxes, as the last one
        // delivered says).
        self.metrics.set_shipping_behind(self.is_full(&round));
        for dead in written {
            summary.dead_letters += dead?;
        }
        for batch in &round {
            let rows = (batch.records.len() + batch.problems.len()) as u64;
            self.metrics.batch_committed(rows);
            summary.batches += 1;
            summary.rows += rows;
        }
        if let Fault::CrashAfterCommit(n) = self.config.fault {
            if summary.batches >= n {
                tracing::error!(
                    batches = summary.batches,
                    "injected fault: aborting after commit {}, before delete",
                    summary.batches
                );
                std::process::abort();
            }
        }
        state.cursor = state.cursor.max(last_seq);
        if let Some(reader) = &state.reader {
            let others = self.config.other_sinks.clone();
            let deleted = on_reader(&state.path, Arc::clone(reader), move |r| {
                r.delivered_through(SINK, last_seq, &others)
            })
            .await;
            if let Err(e) = deleted {
                // The rows stay and will be shipped again: harmless.
                tracing::warn!(
                    outbox = %state.source.label,
                    error = %e,
                    "could not delete shipped rows (they will be shipped again, harmlessly)"
                );
            }
        }
        Ok(())
    }

    /// Writes `records`, retrying while the backend is unavailable and
    /// bisecting around records it rejects; returns how many were
    /// dead-lettered.
    async fn write(
        &self,
        outbox: &Source,
        records: &[ShipRecord],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<u64, Interrupted> {
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            match self.store.write(records).await {
                Ok(()) => {
                    self.metrics.batch_written(started.elapsed());
                    self.metrics.backend_ok();
                    return Ok(0);
                }
                Err(e) if e.is_retriable() => {
                    self.retry_wait(&e, attempt, shutdown).await?;
                    attempt = attempt.saturating_add(1);
                }
                Err(e) => return Box::pin(self.isolate(outbox, records, e, shutdown)).await,
            }
        }
    }

    /// A batch was rejected: a single record goes to the dead-letter table;
    /// a larger batch is split in two and each half written on its own.
    async fn isolate(
        &self,
        outbox: &Source,
        records: &[ShipRecord],
        error: StoreError,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<u64, Interrupted> {
        if let [record] = records {
            tracing::warn!(
                outbox = %outbox.label,
                seq = record.seq(),
                reason = %error,
                "dead-lettering a record the backend refused"
            );
            let letter = outbox.letter(record.seq(), record.to_json(), error.to_string());
            self.dead_letter(std::slice::from_ref(&letter), shutdown)
                .await?;
            return Ok(1);
        }
        let (left, right) = records.split_at(records.len() / 2);
        let a = self.write(outbox, left, shutdown).await?;
        let b = self.write(outbox, right, shutdown).await?;
        Ok(a + b)
    }

    async fn dead_letter(
        &self,
        letters: &[DeadLetter],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Interrupted> {
        let mut attempt = 0u32;
        loop {
            match self.store.dead_letter(letters).await {
                Ok(()) => {
                    self.metrics.dead_lettered(letters.len() as u64);
                    return Ok(());
                }
                Err(e) => {
                    // Even a "rejected" dead letter is retried: dropping it
                    // would lose the record.
                    self.retry_wait(&e, attempt, shutdown).await?;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    async fn retry_wait(
        &self,
        error: &StoreError,
        attempt: u32,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Interrupted> {
        let wait = self.config.backoff.delay(attempt);
        if attempt == 0 || attempt.is_power_of_two() {
            tracing::warn!(
                error = %error,
                retry_in = ?wait,
                attempt = attempt + 1,
                "the backend could not take the batch; retrying"
            );
        }
        self.metrics.backend_failed(error.to_string());
        if *shutdown.borrow() {
            return Err(Interrupted);
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => Ok(()),
            _ = shutdown.changed() => Err(Interrupted),
        }
    }
}

/// Up to `batches` consecutive batches after `after_seq`, none empty.
fn read_round(
    reader: &OutboxReader,
    after_seq: i64,
    batches: usize,
    max_rows: usize,
    max_bytes: usize,
) -> Result<Vec<ReadBatch>, OutboxError> {
    let mut round: Vec<ReadBatch> = Vec::with_capacity(batches);
    let mut after = after_seq;
    while round.len() < batches {
        let batch = reader.read_batch_after(after, max_rows, max_bytes)?;
        if batch.is_empty() {
            break;
        }
        after = batch.last_seq;
        round.push(batch);
    }
    Ok(round)
}

/// Runs an outbox call on a blocking thread: SQLite calls may wait up to
/// the busy timeout for a writer's lock, and must not stall the runtime's
/// worker threads (which also serve `/healthz` and the backend's I/O).
async fn off_runtime<T, F>(path: &Path, work: F) -> Result<T, OutboxError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, OutboxError> + Send + 'static,
{
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(OutboxError::Busy {
            path: path.to_owned(),
            reason: format!("the reading thread failed: {e}"),
        })
    })
}

/// [`off_runtime`] with the outbox's reader.
async fn on_reader<T, F>(
    path: &Path,
    reader: Arc<Mutex<OutboxReader>>,
    work: F,
) -> Result<T, OutboxError>
where
    T: Send + 'static,
    F: FnOnce(&OutboxReader) -> Result<T, OutboxError> + Send + 'static,
{
    off_runtime(path, move || {
        // A panic in a call leaves nothing half-done in the reader (each
        // call is one statement or one read transaction).
        let reader = reader.lock().unwrap_or_else(|p| p.into_inner());
        work(&reader)
    })
    .await
}
