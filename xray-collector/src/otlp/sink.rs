//! The OTLP sink's loop: each outbox read from the sink's own progress,
//! spans exported as their steps end, progress recorded in the outbox.
//!
//! # Progress, and why nothing is lost
//!
//! The sink reads an outbox after the last `seq` it read, on a connection
//! of its own, independently of the database shipper. An `end` row is
//! exported as a span; a `start` row is held until its end comes (the end
//! repeats everything), or until its start is older than
//! [`OtlpConfig::unfinished_after`] — then it is exported unfinished
//! (flagged `xray.unfinished`; a crashed process's work still shows) and
//! exported again, whole, should its end come after all. The progress
//! recorded in the outbox ([`SINK`] in `xray_sink_progress`) is the last
//! `seq` before the oldest start still held, so a restart reads the held
//! starts again (and re-exports what came after them: at least once).
//!
//! A request the receiver cannot take now (down, 429, 5xx) is retried
//! with backoff, forever — unless the outbox holds more than
//! [`OtlpConfig::max_backlog_rows`] rows the sink has not exported: then
//! the request in hand is given up (its spans counted as dropped) so that
//! the outbox can be emptied for the database. 413 splits the request in
//! halves; a span the receiver refuses for good (400 and other 4xx) is
//! found by halving too, and dead-lettered in the store with the reason.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use super::client::{Client, Sent};
use super::config::OtlpConfig;
use super::mapping::{self, Export};
use crate::backend::Store;
use crate::model::ShipRecord;
use crate::outbox::{OutboxError, OutboxReader};
use crate::ship::{Backoff, Metrics, Source};

/// This sink's name in the outbox's progress table.
pub const SINK: &str = "otlp";

/// The sink: outboxes, where to send, and the store that keeps its dead
/// letters.
pub struct OtlpSink<S> {
    client: Client,
    config: OtlpConfig,
    outboxes: Vec<PathBuf>,
    /// The other sinks of the same outboxes (the database shipper's).
    others: Vec<&'static str>,
    store: Arc<S>,
    metrics: Arc<Metrics>,
    backoff: Backoff,
    once: bool,
    poll_interval: Duration,
}

/// One outbox, as this sink reads it.
struct Outbox {
    path: PathBuf,
    reader: Option<Arc<Mutex<OutboxReader>>>,
    /// The last `seq` read.
    read: i64,
    /// Starts whose end has not come: by id, their `seq` and record.
    held: HashMap<(bool, Uuid), (i64, ShipRecord)>,
}

/// The shutdown signal came while waiting.
struct Stopped;

impl<S: Store> OtlpSink<S> {
    /// A sink exporting `outboxes` to `config`'s endpoint; `others` are the
    /// other sinks whose progress a delete waits for; `once` returns when
    /// every outbox is read to its end.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: OtlpConfig,
        outboxes: Vec<PathBuf>,
        others: Vec<&'static str>,
        store: Arc<S>,
        metrics: Arc<Metrics>,
        once: bool,
    ) -> Result<Self, String> {
        Ok(OtlpSink {
            client: Client::new(config.clone())?,
            config,
            outboxes,
            others,
            store,
            metrics,
            backoff: Backoff::default(),
            once,
            poll_interval: Duration::from_millis(100),
        })
    }

    /// Exports until `shutdown` (or, `once`, until every outbox is read).
    /// Returns the spans exported.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) -> u64 {
        let mut outboxes: Vec<Outbox> = self
            .outboxes
            .iter()
            .map(|path| Outbox {
                path: path.clone(),
                reader: None,
                read: 0,
                held: HashMap::new(),
            })
            .collect();
        let mut exported = 0u64;
        tracing::info!(endpoint = %self.client.endpoint(), "exporting spans over OTLP");
        loop {
            let mut any = false;
            for outbox in &mut outboxes {
                if *shutdown.borrow() {
                    return exported;
                }
                match self.step(outbox, &mut shutdown).await {
                    Ok(Some(n)) => {
                        exported += n;
                        any = true;
                    }
                    Ok(None) => {}
                    Err(Stopped) => return exported,
                }
            }
            if !any {
                if self.once {
                    return exported;
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.poll_interval) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }

    /// Reads and exports the next batch of `outbox`: the spans exported,
    /// `None` when there was nothing new (or the outbox cannot be read now).
    async fn step(
        &self,
        outbox: &mut Outbox,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<u64>, Stopped> {
        if outbox.reader.is_none() {
            let path = outbox.path.clone();
            match blocking(move || {
                let reader = OutboxReader::open(&path)?;
                let progress = reader.progress(SINK)?.unwrap_or(0);
                Ok((reader, progress))
            })
            .await
            {
                Ok((reader, progress)) => {
                    outbox.reader = Some(Arc::new(Mutex::new(reader)));
                    outbox.read = progress;
                    outbox.held.clear();
                }
                Err(OutboxError::Missing(_)) => return Ok(None),
                Err(e) => {
                    tracing::warn!(outbox = %outbox.path.display(), error = %e, "OTLP: cannot read the outbox");
                    return Ok(None);
                }
            }
        }
        let reader = outbox.reader.clone().expect("opened above");
        let (after, rows) = (outbox.read, self.config.batch_spans);
        let batch = match on(&reader, move |r| r.read_batch_after(after, rows, 8 << 20)).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(outbox = %outbox.path.display(), error = %e, "OTLP: cannot read the outbox");
                outbox.reader = None;
                return Ok(None);
            }
        };
        let now = jiff::Timestamp::now().as_microsecond();
        let bound = now - self.config.unfinished_after.as_micros() as i64;
        // Ends to export now, and starts held until their end (or the bound).
        let mut ready: Vec<(ShipRecord, bool)> = Vec::new();
        for record in batch.records {
            let key = (matches!(record, ShipRecord::Step(_)), record.id());
            if record.is_running() {
                outbox.held.insert(key, (record.seq(), record));
            } else {
                outbox.held.remove(&key);
                ready.push((record, false));
            }
        }
        let stale: Vec<(bool, Uuid)> = outbox
            .held
            .iter()
            .filter(|(_, (_, r))| r.started_at_us() < bound)
            .map(|(k, _)| *k)
            .collect();
        for key in stale {
            if let Some((_, record)) = outbox.held.remove(&key) {
                ready.push((record, true));
            }
        }
        if batch.last_seq == 0 && ready.is_empty() {
            return Ok(None);
        }
        if batch.last_seq > 0 {
            outbox.read = batch.last_seq;
        }
        let exports: Vec<Export<'_>> = ready
            .iter()
            .map(|(record, unfinished)| Export {
                record,
                unfinished: *unfinished,
            })
            .collect();
        let source = Source {
            id: reader.lock().map(|r| r.id()).unwrap_or_default(),
            label: outbox.path.display().to_string(),
        };
        let exported = self
            .export(&exports, now, &reader, &source, shutdown)
            .await?;
        // Delivered: everything read, but the starts still held.
        let delivered = outbox
            .held
            .values()
            .map(|(seq, _)| seq - 1)
            .min()
            .unwrap_or(outbox.read)
            .min(outbox.read);
        let others = self.others.clone();
        if let Err(e) = on(&reader, move |r| {
            r.delivered_through(SINK, delivered, &others)
        })
        .await
        {
            tracing::warn!(outbox = %outbox.path.display(), error = %e, "OTLP: cannot record progress (spans may be exported again)");
        }
        Ok(Some(exported))
    }

    /// Exports `exports` in requests of at most `batch_spans`, splitting on
    /// 413, halving to find refused spans, retrying what may succeed later.
    /// Returns the spans the receiver accepted.
    async fn export(
        &self,
        exports: &[Export<'_>],
        now: i64,
        reader: &Arc<Mutex<OutboxReader>>,
        source: &Source,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<u64, Stopped> {
        let mut accepted = 0;
        let mut pending: Vec<&[Export<'_>]> =
            exports.chunks(self.config.batch_spans.max(1)).collect();
        pending.reverse();
        while let Some(chunk) = pending.pop() {
            if chunk.is_empty() {
                continue;
            }
            let request = mapping::request(chunk, now);
            let mut attempt = 0u32;
            loop {
                match self.client.send(&request).await {
                    Sent::Accepted { rejected, message } => {
                        let rejected = rejected.max(0) as u64;
                        let taken = (chunk.len() as u64).saturating_sub(rejected);
                        accepted += taken;
                        self.metrics.otlp_exported(taken);
                        if rejected > 0 {
                            self.metrics.otlp_rejected(rejected);
                            tracing::warn!(rejected, %message, "OTLP receiver accepted the request but rejected some spans");
                        }
                        break;
                    }
                    Sent::TooLarge | Sent::Refused { .. } if chunk.len() > 1 => {
                        // Halves, each on its own (the first half first).
                        let (a, b) = chunk.split_at(chunk.len() / 2);
                        pending.push(b);
                        pending.push(a);
                        break;
                    }
                    Sent::TooLarge => {
                        self.dead_letter(
                            chunk[0],
                            source,
                            "the OTLP receiver answered 413: this one span is too large for it"
                                .to_owned(),
                        )
                        .await;
                        break;
                    }
                    Sent::Refused { reason, .. } => {
                        self.dead_letter(
                            chunk[0],
                            source,
                            format!("the OTLP receiver refused the span: {reason}"),
                        )
                        .await;
                        break;
                    }
                    Sent::Retry { after, reason } => {
                        self.metrics.otlp_retry();
                        if self.behind_too_far(reader).await {
                            self.metrics.otlp_dropped(chunk.len() as u64);
                            tracing::error!(spans = chunk.len(), %reason, max_backlog_rows = self.config.max_backlog_rows,
                                "OTLP receiver unavailable and the outbox holds more than the sink may keep waiting: giving up these spans (the database has them)");
                            break;
                        }
                        let delay = after.unwrap_or_else(|| self.backoff.delay(attempt));
                        if attempt == 0 || attempt % 10 == 0 {
                            tracing::warn!(%reason, retry_in = ?delay, "OTLP receiver unavailable; retrying");
                        }
                        attempt += 1;
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = shutdown.changed() => return Err(Stopped),
                        }
                    }
                }
            }
        }
        Ok(accepted)
    }

    /// Whether the outbox at `path` holds more rows than the sink may keep
    /// waiting for.
    async fn behind_too_far(&self, reader: &Arc<Mutex<OutboxReader>>) -> bool {
        let max = self.config.max_backlog_rows;
        on(reader, |r| r.backlog())
            .await
            .is_ok_and(|(rows, _)| rows > max)
    }

    async fn dead_letter(&self, export: Export<'_>, source: &Source, reason: String) {
        tracing::warn!(seq = export.record.seq(), %reason, "OTLP: span dead-lettered");
        self.metrics.otlp_dead_lettered(1);
        let letter = source.letter(
            export.record.seq(),
            export.record.to_json(),
            format!("otlp: {reason}"),
        );
        if let Err(e) = self.store.dead_letter(&[letter]).await {
            tracing::error!(error = %e, "cannot store the OTLP dead letter (logged above)");
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, OutboxError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(OutboxError::Busy {
            path: PathBuf::new(),
            reason: e.to_string(),
        })
    })
}

async fn on<T: Send + 'static>(
    reader: &Arc<Mutex<OutboxReader>>,
    work: impl FnOnce(&OutboxReader) -> Result<T, OutboxError> + Send + 'static,
) -> Result<T, OutboxError> {
    let reader = reader.clone();
    blocking(move || {
        let guard = reader.lock().unwrap_or_else(|p| p.into_inner());
        work(&guard)
    })
    .await
}
