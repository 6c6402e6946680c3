//! The outbox writer thread.
//!
//! The application's threads only capture and enqueue; this thread owns the
//! SQLite connection. It waits on the queue for the first record, then
//! *sleeps* (rather than waiting on the queue, which would make every record
//! queued after it wake the thread with a system call) until the flush
//! interval has passed since that first record, a flush was requested, or
//! the queue holds a full batch ([`WriterWake`]); then it takes what is
//! queued and commits it in one transaction. Records taken late also let
//! most steps' ends ride on their start records (see `queue::QueueSlot`).
//! A flush is answered only after the commit that holds every
//! record queued before it (synced with `synchronous = FULL`). A batch that
//! cannot be written is retried with each row under a savepoint of its
//! own, so a row SQLite refuses (a constraint or trigger added to the file,
//! a value too big) is dropped and counted alone while the rest of the
//! batch is committed; a batch that still cannot be written (disk full, the
//! file locked for too long) is counted as dropped: the writer never
//! panics and never stops the application.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use rusqlite::types::Null;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use xray_outbox::{Column, RecordType};

use super::{APPLICATION_ID, FORMAT_VERSION, SCHEMA};
use crate::cell::{ExecCell, Record, StepCell};
use crate::clock::{now_us, resync_clock};
use crate::error::Error;
use crate::queue::{Message, Taken, WriterWake};
use crate::record::{Attribute, ExecutionRecord, StepRecord};
use crate::stats::Counters;
use xray_outbox::trace::hex;

/// Most records committed in one transaction.
pub(crate) const MAX_BATCH: usize = 4096;

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts at writing one batch before it is dropped and counted.
const WRITE_ATTEMPTS: u32 = 3;

/// What the writer batches: a record turned, as it is taken from the queue,
/// into the row it stands for. An end is built into its row at once (it is
/// final); a start stays a reference and is built at commit time, or
/// skipped if its end has come by then.
enum Row {
    StepStart(Arc<StepCell>),
    ExecutionStart(Arc<ExecCell>),
    Step(StepRecord),
    Execution(ExecutionRecord),
}

impl Row {
    /// Takes `record` off the queue: settles with the application's thread
    /// whether an end rides on a start, and builds the end rows.
    fn take(record: Record) -> Row {
        match record {
            Record::StepStart(cell) => match cell.queue.take() {
                Taken::StartWithEnd => Row::Step(cell.end_record()),
                Taken::Start => Row::StepStart(cell),
            },
            Record::StepEnd(cell) => Row::Step(cell.end_record()),
            Record::ExecutionStart(cell) => match cell.queue.take() {
                Taken::StartWithEnd => Row::Execution(cell.end_record()),
                Taken::Start => Row::ExecutionStart(cell),
            },
            Record::ExecutionEnd(cell) => Row::Execution(cell.end_record()),
        }
    }

    /// Whether losing this row loses a step (as counted in `Stats`).
    fn is_step_end(&self) -> bool {
        matches!(self, Row::Step(_))
    }
}

/// An open outbox, ready to be handed to its thread.
pub(crate) struct OutboxWriter {
    conn: Connection,
    path: PathBuf,
    max_bytes: u64,
    pid: i64,
    /// Whether commits were made with `synchronous = NORMAL` since the last
    /// synced one: a flush must then sync even with nothing new to write.
    unsynced: bool,
}

fn outbox_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Outbox {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl OutboxWriter {
    /// Opens (creating if needed) the outbox at `path` and checks its format.
    pub fn open(path: &Path, max_bytes: u64) -> Result<OutboxWriter, Error> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            xray_outbox::private_file::create_dir_all(dir).map_err(|e| {
                outbox_error(
                    path,
                    format!("cannot create the directory {}: {e}", dir.display()),
                )
            })?;
        }
        xray_outbox::private_file::create(path).map_err(|e| outbox_error(path, e))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| outbox_error(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| outbox_error(path, e))?;
        let setup = || -> Result<(), Error> {
            let mode = switch_to_wal(&conn).map_err(|e| outbox_error(path, e))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(outbox_error(
                    path,
                    format!("cannot switch to WAL mode (got {mode})"),
                ));
            }
            conn.execute_batch("PRAGMA synchronous = NORMAL")
                .map_err(|e| outbox_error(path, e))?;
            check_or_create(&conn, path)
        };
        setup()?;
        Ok(OutboxWriter {
            conn,
            path: path.to_path_buf(),
            max_bytes,
            pid: i64::from(std::process::id()),
            unsynced: false,
        })
    }

    /// Starts the writer thread.
    pub fn spawn(
        self,
        rx: Receiver<Message<Record>>,
        counters: Arc<Counters>,
        wake: Arc<WriterWake>,
        interval: Duration,
    ) -> Result<JoinHandle<()>, Error> {
        let path = self.path.clone();
        let handle = std::thread::Builder::new()
            .name("xray-outbox-writer".into())
            .spawn({
                let wake = wake.clone();
                move || self.run(rx, &counters, &wake, interval)
            })
            .map_err(|e| outbox_error(&path, format!("cannot start the writer thread: {e}")))?;
        wake.set_thread(handle.thread().clone());
        Ok(handle)
    }

    fn run(
        mut self,
        rx: Receiver<Message<Record>>,
        counters: &Counters,
        wake: &WriterWake,
        interval: Duration,
    ) {
        let mut batch: Vec<Row> = Vec::with_capacity(256);
        let mut acks = Vec::new();
        loop {
            let mut stop = false;
            let take = |m: Message<Record>,
                        batch: &mut Vec<Row>,
                        acks: &mut Vec<_>,
                        stop: &mut bool| match m {
                Message::Record(r) => batch.push(Row::take(r)),
                Message::Flush(ack) => acks.push(ack),
                Message::Stop => *stop = true,
            };
            // Idle: wait on the queue (the one wake-up a record pays for).
            let first = match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            };
            take(first, &mut batch, &mut acks, &mut stop);
            let deadline = Instant::now() + interval;
            loop {
                while batch.len() < MAX_BATCH && acks.is_empty() && !stop {
                    match rx.try_recv() {
                        Ok(m) => take(m, &mut batch, &mut acks, &mut stop),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => stop = true,
                    }
                }
                let now = Instant::now();
                if batch.len() >= MAX_BATCH || !acks.is_empty() || stop || now >= deadline {
                    break;
                }
                wake.sleep_until(deadline - now, || rx.is_empty());
            }
            resync_clock();
            let result = self.commit_with_retries(&mut batch, !acks.is_empty() || stop, counters);
            for ack in acks.drain(..) {
                let _ = ack.send(result.clone());
            }
            if stop {
                break;
            }
        }
    }

    fn commit_with_retries(
        &mut self,
        batch: &mut Vec<Row>,
        sync: bool,
        counters: &Counters,
    ) -> Result<(), Error> {
        if batch.is_empty() {
            if sync && self.unsynced {
                return self.sync_now().map_err(|e| outbox_error(&self.path, e));
            }
            return Ok(());
        }
        if self.is_full() {
            for r in batch.drain(..) {
                counters.count_lost(r.is_step_end(), &counters.dropped_outbox_full);
            }
            return Ok(());
        }
        let mut last_error = None;
        for attempt in 0..WRITE_ATTEMPTS {
            // After a failed attempt, each row is written under a savepoint
            // of its own: a row SQLite refuses (a constraint, a trigger, a
            // value too big) costs only itself, not the batch.
            let isolate = attempt > 0;
            match self.commit(batch, sync, isolate) {
                Ok(done) => {
                    self.unsynced = !sync;
                    counters.written.fetch_add(done.steps, Ordering::Relaxed);
                    counters
                        .records_written
                        .fetch_add(done.rows, Ordering::Relaxed);
                    counters.batches.fetch_add(1, Ordering::Relaxed);
                    if let Some(error) = &done.first_refusal {
                        eprintln!(
                            "xray: dropping {} of {} records the outbox refused: {}",
                            done.refused.len(),
                            batch.len(),
                            outbox_error(&self.path, error)
                        );
                    }
                    for i in done.refused {
                        counters.count_lost(batch[i].is_step_end(), &counters.dropped_write_failed);
                    }
                    batch.clear();
                    return Ok(());
                }
                Err(e) => {
                    counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    last_error = Some(e);
                    std::thread::sleep(Duration::from_millis(50 << attempt));
                }
            }
        }
        let error = last_error
            .map(|e| outbox_error(&self.path, e))
            .unwrap_or(Error::WriterStopped);
        eprintln!("xray: dropping {} records: {error}", batch.len());
        for r in batch.drain(..) {
            counters.count_lost(r.is_step_end(), &counters.dropped_write_failed);
        }
        Err(error)
    }

    /// Whether the outbox holds `max_bytes` of live pages (free pages left by
    /// the collector's deletes are reused, so they do not count).
    fn is_full(&self) -> bool {
        let used = self.conn.query_row(
            "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count()),
                    (SELECT page_size FROM pragma_page_size())",
            [],
            |r| Ok(r.get::<_, i64>(0)? * r.get::<_, i64>(1)?),
        );
        matches!(used, Ok(bytes) if bytes as u64 >= self.max_bytes)
    }

    /// Makes earlier `synchronous = NORMAL` commits durable: a synced commit
    /// of a no-op write syncs the whole WAL, those commits included.
    fn sync_now(&mut self) -> rusqlite::Result<()> {
        self.conn.execute_batch(
            "PRAGMA synchronous = FULL;
             BEGIN IMMEDIATE;
             UPDATE xray_outbox_meta SET value = value WHERE key = 'format_version';
             COMMIT;
             PRAGMA synchronous = NORMAL;",
        )?;
        self.unsynced = false;
        Ok(())
    }

    /// Writes the batch in one transaction. With `isolate`, each row is
    /// inserted under a savepoint of its own, and a row SQLite refuses is
    /// rolled back alone and reported in [`Committed::refused`] instead of
    /// failing the transaction.
    fn commit(&mut self, batch: &[Row], sync: bool, isolate: bool) -> rusqlite::Result<Committed> {
        // A start whose end is in the same batch adds nothing the end lacks.
        let ended: HashSet<uuid::Uuid> = batch
            .iter()
            .filter_map(|r| match r {
                Row::Step(s) => Some(s.id),
                Row::Execution(e) => Some(e.id),
                _ => None,
            })
            .collect();
        if sync {
            self.conn.execute_batch("PRAGMA synchronous = FULL")?;
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let written_at = now_us();
        let mut done = Committed::default();
        {
            let mut insert = tx.prepare_cached(xray_outbox::insert_sql())?;
            for (i, record) in batch.iter().enumerate() {
                if isolate {
                    tx.execute_batch("SAVEPOINT xray_row")?;
                }
                let inserted = match record {
                    Row::StepStart(cell) if !ended.contains(&cell.id) => {
                        match cell.start_record() {
                            Some(start) => insert_step(&mut insert, &start, self.pid, written_at),
                            None => Ok(0),
                        }
                    }
                    Row::ExecutionStart(cell) if !ended.contains(&cell.id) => {
                        match cell.start_record() {
                            Some(start) => {
                                insert_execution(&mut insert, &start, self.pid, written_at)
                            }
                            None => Ok(0),
                        }
                    }
                    Row::StepStart(_) | Row::ExecutionStart(_) => Ok(0),
                    Row::Step(s) => insert_step(&mut insert, s, self.pid, written_at),
                    Row::Execution(e) => insert_execution(&mut insert, e, self.pid, written_at),
                };
                match inserted {
                    Ok(n) => {
                        if isolate {
                            tx.execute_batch("RELEASE xray_row")?;
                        }
                        done.steps += u64::from(record.is_step_end());
                        done.rows += n as u64;
                    }
                    Err(e) if isolate => {
                        tx.execute_batch("ROLLBACK TO xray_row; RELEASE xray_row")?;
                        done.refused.push(i);
                        done.first_refusal.get_or_insert(e);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        tx.commit()?;
        if sync {
            self.conn.execute_batch("PRAGMA synchronous = NORMAL")?;
        }
        Ok(done)
    }
}

/// What a committed batch held.
#[derive(Default)]
struct Committed {
    /// Step ends written.
    steps: u64,
    /// Rows inserted (starts made redundant by their end are not rows).
    rows: u64,
    /// Positions in the batch of the rows SQLite refused (isolated writes only).
    refused: Vec<usize>,
    /// Why the first of them was refused.
    first_refusal: Option<rusqlite::Error>,
}

/// Switches the file to WAL mode. Several processes creating one outbox at
/// once contend for the lock this takes, and SQLite's busy handler does not
/// cover it, so a busy answer is retried for up to [`BUSY_TIMEOUT`].
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Err(e)
                if Instant::now() < deadline
                    && matches!(
                        e.sqlite_error_code(),
                        Some(
                            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                        )
                    ) =>
            {
                std::thread::sleep(Duration::from_millis(5 + fastrand::u64(0..20)));
            }
            other => return other,
        }
    }
}

fn check_or_create(conn: &Connection, path: &Path) -> Result<(), Error> {
    let err = |e: rusqlite::Error| outbox_error(path, e);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
    let result = (|| {
        let app_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(err)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(err)?;
        if app_id == 0 && version == 0 && tables == 0 {
            conn.execute_batch(SCHEMA).map_err(err)?;
            conn.execute(
                "INSERT OR REPLACE INTO xray_outbox_meta (key, value) VALUES ('format_version', ?1)",
                [FORMAT_VERSION.to_string()],
            )
            .map_err(err)?;
            conn.execute_batch(&format!(
                "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {FORMAT_VERSION};"
            ))
            .map_err(err)?;
            return ensure_outbox_id(conn).map_err(err);
        }
        if app_id != APPLICATION_ID {
            return Err(outbox_error(
                path,
                "the file is an SQLite database but not an X-Ray outbox (application_id differs); \
                 point XRAY_OUTBOX at another file",
            ));
        }
        if version == 1 {
            // A file of the previous version, upgraded in place (see
            // `xray_outbox::UPGRADE_FROM_V1`); under this transaction's
            // write lock, so a collector doing the same waits and then
            // finds version 2.
            conn.execute_batch(xray_outbox::UPGRADE_FROM_V1)
                .map_err(err)?;
            conn.execute_batch(&format!("PRAGMA user_version = {FORMAT_VERSION};"))
                .map_err(err)?;
        } else if version != FORMAT_VERSION {
            return Err(Error::OutboxVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        // A file made by an SDK older than the identity gets one now.
        ensure_outbox_id(conn).map_err(err)
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    conn.execute_batch(end).map_err(err)?;
    result
}

/// Gives the file its durable identity if it has none (see
/// [`xray_outbox::OUTBOX_ID_KEY`]): `INSERT OR IGNORE`, so a collector that
/// added one first keeps its own.
fn ensure_outbox_id(conn: &Connection) -> rusqlite::Result<()> {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    conn.execute(xray_outbox::ADD_OUTBOX_ID, [id.to_string()])?;
    Ok(())
}

fn attributes_json(attributes: &[Attribute], flags: &crate::capture::Flags) -> Option<String> {
    if attributes.is_empty() && !flags.any() {
        return None;
    }
    let mut out = String::with_capacity(64);
    out.push('{');
    for (i, (key, value)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::capture::push_json_str(&mut out, key);
        out.push(':');
        out.push_str(value);
    }
    if flags.any() {
        if !attributes.is_empty() {
            out.push(',');
        }
        crate::capture::push_json_str(&mut out, xray_outbox::FLAGS_KEY);
        out.push(':');
        out.push_str(&flags.to_json_array());
    }
    out.push('}');
    Some(out)
}

/// Binds every written column of the format's insert statement, by
/// column: `value` gives the value of the columns the row has; the others
/// are bound NULL (SQLite keeps a statement's bindings across executions,
/// so none may be left from the previous row). Then inserts the row.
fn insert_row(
    insert: &mut rusqlite::CachedStatement<'_>,
    mut value: impl FnMut(&mut rusqlite::CachedStatement<'_>, usize, Column) -> rusqlite::Result<bool>,
) -> rusqlite::Result<usize> {
    for (i, column) in Column::written().iter().enumerate() {
        if !value(insert, i + 1, *column)? {
            insert.raw_bind_parameter(i + 1, Null)?;
        }
    }
    insert.raw_execute()
}

/// A JSON array of `items`, or NULL when there are none.
fn json_array<T: serde::Serialize>(items: &[T]) -> Option<String> {
    // Serializing the format's own plain structs into a String cannot fail.
    (!items.is_empty())
        .then(|| serde_json::to_string(items).ok())
        .flatten()
}

fn insert_step(
    insert: &mut rusqlite::CachedStatement<'_>,
    s: &StepRecord,
    pid: i64,
    written_at: i64,
) -> rusqlite::Result<usize> {
    let decisions = json_array(&s.decisions);
    let llm_usage = json_array(&s.llm_usage);
    let attributes = attributes_json(&s.attributes, &s.flags);
    let ended_at = s.duration_us.map(|d| s.started_at_us + d);
    let (mut id, mut execution_id, mut parent_id) = ([0; 36], [0; 36], [0; 36]);
    let id = &*s.id.hyphenated().encode_lower(&mut id);
    let execution_id = &*s.execution_id.hyphenated().encode_lower(&mut execution_id);
    let parent_id = s
        .parent_id
        .as_ref()
        .map(|p| &*p.hyphenated().encode_lower(&mut parent_id));
    let trace_id = s.trace_id.as_ref().map(|t| hex(t));
    insert_row(insert, |stmt, at, column| {
        match column {
            Column::RecordType => stmt.raw_bind_parameter(at, RecordType::Step.as_str())?,
            Column::Phase => stmt.raw_bind_parameter(at, s.phase.as_str())?,
            Column::Id => stmt.raw_bind_parameter(at, id)?,
            Column::ExecutionId => stmt.raw_bind_parameter(at, execution_id)?,
            Column::ParentId => stmt.raw_bind_parameter(at, parent_id)?,
            Column::Project => stmt.raw_bind_parameter(at, &*s.project)?,
            Column::Name => stmt.raw_bind_parameter(at, &*s.name)?,
            Column::Kind => stmt.raw_bind_parameter(at, s.kind)?,
            Column::Status => stmt.raw_bind_parameter(at, s.status.as_str())?,
            Column::Input => stmt.raw_bind_parameter(at, s.input.as_deref())?,
            Column::Output => stmt.raw_bind_parameter(at, s.output.as_deref())?,
            Column::Error => stmt.raw_bind_parameter(at, s.error.as_deref())?,
            Column::Attributes => stmt.raw_bind_parameter(at, attributes.as_deref())?,
            Column::Decisions => stmt.raw_bind_parameter(at, decisions.as_deref())?,
            Column::LlmUsage => stmt.raw_bind_parameter(at, llm_usage.as_deref())?,
            Column::StartedAtUs => stmt.raw_bind_parameter(at, s.started_at_us)?,
            Column::EndedAtUs => stmt.raw_bind_parameter(at, ended_at)?,
            Column::DurationUs => stmt.raw_bind_parameter(at, s.duration_us)?,
            Column::Pid => stmt.raw_bind_parameter(at, pid)?,
            Column::WrittenAtUs => stmt.raw_bind_parameter(at, written_at)?,
            Column::TraceId => stmt.raw_bind_parameter(at, trace_id.as_deref())?,
            Column::Seq | Column::Metadata | Column::Outcome | Column::ParentSpanId => {
                return Ok(false)
            }
        }
        Ok(true)
    })
}

fn insert_execution(
    insert: &mut rusqlite::CachedStatement<'_>,
    e: &ExecutionRecord,
    pid: i64,
    written_at: i64,
) -> rusqlite::Result<usize> {
    let mut buf = [0; 36];
    let id = &*e.id.hyphenated().encode_lower(&mut buf);
    let metadata = attributes_json(&e.metadata, &e.flags);
    let duration = e.ended_at_us.map(|end| end - e.started_at_us);
    let (trace_id, parent_span_id) = match &e.remote {
        Some(r) => (Some(hex(&r.trace_id)), Some(hex(&r.parent_span_id))),
        None => (None, None),
    };
    insert_row(insert, |stmt, at, column| {
        match column {
            Column::RecordType => stmt.raw_bind_parameter(at, RecordType::Execution.as_str())?,
            Column::Phase => stmt.raw_bind_parameter(at, e.phase.as_str())?,
            // An execution's `execution_id` is its own id.
            Column::Id | Column::ExecutionId => stmt.raw_bind_parameter(at, id)?,
            Column::Project => stmt.raw_bind_parameter(at, &*e.project)?,
            Column::Name => stmt.raw_bind_parameter(at, &*e.name)?,
            Column::Status => stmt.raw_bind_parameter(at, e.status.as_str())?,
            Column::Error => stmt.raw_bind_parameter(at, e.error.as_deref())?,
            Column::Metadata => stmt.raw_bind_parameter(at, metadata.as_deref())?,
            Column::Outcome => stmt.raw_bind_parameter(at, e.outcome.as_deref())?,
            Column::StartedAtUs => stmt.raw_bind_parameter(at, e.started_at_us)?,
            Column::EndedAtUs => stmt.raw_bind_parameter(at, e.ended_at_us)?,
            Column::DurationUs => stmt.raw_bind_parameter(at, duration)?,
            Column::Pid => stmt.raw_bind_parameter(at, pid)?,
            Column::WrittenAtUs => stmt.raw_bind_parameter(at, written_at)?,
            Column::TraceId => stmt.raw_bind_parameter(at, trace_id.as_deref())?,
            Column::ParentSpanId => stmt.raw_bind_parameter(at, parent_span_id.as_deref())?,
            Column::Seq
            | Column::ParentId
            | Column::Kind
            | Column::Input
            | Column::Output
            | Column::Attributes
            | Column::Decisions
            | Column::LlmUsage => return Ok(false),
        }
        Ok(true)
    })
}
