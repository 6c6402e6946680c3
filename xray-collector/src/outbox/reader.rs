//! [`OutboxReader`]: batches of outbox rows in `seq` order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use uuid::Uuid;

use xray_outbox::{Column, ExecutionStatus, RecordType, StepStatus};

use crate::model::{Decision, ExecutionRow, LlmUsage, ShipRecord, StepRow};

/// Errors from reading an outbox. None of them is fixed by retrying soon,
/// except [`OutboxError::Busy`] and [`OutboxError::Missing`] (the file may
/// appear later).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// No file at the path (yet).
    #[error("the outbox {} does not exist yet", .0.display())]
    Missing(PathBuf),
    /// The file holds another format version.
    #[error(
        "the outbox {} has format version {found}, which this collector cannot read (it reads version {supported}); \
         upgrade xray-collector", path.display()
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The version this collector reads.
        supported: i64,
    },
    /// The file is not an X-Ray outbox, or is damaged.
    #[error("the outbox {} cannot be read: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Another process holds a lock on the file for too long.
    #[error("the outbox {} is busy: {reason}", path.display())]
    Busy {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
}

impl OutboxError {
    /// Whether reading the same file may succeed soon.
    pub fn is_retriable(&self) -> bool {
        matches!(self, OutboxError::Busy { .. } | OutboxError::Missing(_))
    }
}

/// A row that could not be turned into a [`ShipRecord`].
#[derive(Debug, Clone)]
pub struct RowProblem {
    /// Its sequence number.
    pub seq: i64,
    /// The row as found, as JSON (text columns as strings).
    pub raw: Value,
    /// What is wrong with it.
    pub reason: String,
}

/// One batch: parsed records and the rows that did not parse, all with
/// `seq <= last_seq`.
#[derive(Debug, Default)]
pub struct ReadBatch {
    /// Bytes of column values loaded to build the batch: each row's size
    /// over all its columns, or, for a row over the row limit, at most
    /// [`xray_outbox::SMALL_COLUMN_BYTES`] per column.
    pub bytes: usize,
    /// Parsed records, in `seq` order.
    pub records: Vec<ShipRecord>,
    /// Rows that could not be parsed.
    pub problems: Vec<RowProblem>,
    /// The highest `seq` in the batch (0 when empty).
    pub last_seq: i64,
}

impl ReadBatch {
    /// Whether the batch holds no row at all.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.problems.is_empty()
    }
}

/// Most bytes one outbox row may have, over all its columns, by default
/// (see [`OutboxReader::with_max_row_bytes`]). The SDK caps each payload at
/// `XRAY_MAX_PAYLOAD_BYTES` (64 KiB by default), so only a doctored file or
/// a misconfigured writer comes near it.
pub const MAX_ROW_BYTES: usize = 16 << 20;

/// Reads one outbox file.
pub struct OutboxReader {
    path: PathBuf,
    id: Uuid,
    conn: Connection,
    max_row_bytes: usize,
}

impl std::fmt::Debug for OutboxReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxReader")
            .field("path", &self.path)
            .finish()
    }
}

/// Makes a version 1 outbox a version 2 one (see
/// [`xray_outbox::UPGRADE_FROM_V1`]), under the write lock; a writer that
/// upgraded it meanwhile leaves nothing to do.
fn upgrade_from_v1(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let upgraded = (|| {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 1 {
            conn.execute_batch(xray_outbox::UPGRADE_FROM_V1)?;
            conn.execute_batch(&format!(
                "PRAGMA user_version = {};",
                xray_outbox::FORMAT_VERSION
            ))?;
        }
        Ok(())
    })();
    conn.execute_batch(if upgraded.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    })?;
    upgraded
}

impl OutboxReader {
    /// Opens an existing outbox and checks that it is one this collector reads.
    pub fn open(path: &Path) -> Result<OutboxReader, OutboxError> {
        if !path.exists() {
            return Err(OutboxError::Missing(path.to_path_buf()));
        }
        let corrupt = |e: &dyn std::fmt::Display| OutboxError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        // Read-write: the reader deletes what it shipped. No CREATE: a file
        // that vanished is not recreated empty.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| corrupt(&e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| corrupt(&e))?;
        let app_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| corrupt(&e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| corrupt(&e))?;
        if app_id == 0 && version == 0 {
            // A writer may be creating the file right now: an empty database
            // is an outbox that is not ready yet.
            let tables: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(|e| corrupt(&e))?;
            if tables == 0 {
                return Err(OutboxError::Missing(path.to_path_buf()));
            }
        }
        if app_id != xray_outbox::APPLICATION_ID {
            return Err(corrupt(&"not an X-Ray outbox (application_id differs)"));
        }
        if version == 1 {
            upgrade_from_v1(&conn).map_err(|e| corrupt(&e))?;
        } else if version != xray_outbox::FORMAT_VERSION {
            return Err(OutboxError::UnknownVersion {
                path: path.to_path_buf(),
                found: version,
                supported: xray_outbox::FORMAT_VERSION,
            });
        }
        // Before `backlog`: a file without the meta table fails here too,
        // as corrupt.
        let id = outbox_id(&conn).map_err(|e| corrupt(&e))?;
        conn.execute_batch(xray_outbox::PROGRESS_SCHEMA)
            .map_err(|e| corrupt(&e))?;
        let reader = OutboxReader {
            path: path.to_path_buf(),
            id,
            conn,
            max_row_bytes: MAX_ROW_BYTES,
        };
        // Touch the table once so a damaged file fails here, not mid-batch.
        reader.backlog()?;
        Ok(reader)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the most bytes one row may have over all its columns: a larger
    /// row is not loaded (only its columns of at most
    /// [`xray_outbox::SMALL_COLUMN_BYTES`] are, to say what it was) and is
    /// handed back as a [`RowProblem`], which the shipper dead-letters.
    pub fn with_max_row_bytes(mut self, bytes: usize) -> OutboxReader {
        self.max_row_bytes = bytes;
        self
    }

    /// The file's durable identity (`xray_outbox_meta`, key `outbox_id`):
    /// what its dead letters are keyed by, with their `seq`.
    pub fn id(&self) -> Uuid {
        self.id
    }

    fn sql_error(&self, e: rusqlite::Error) -> OutboxError {
        let busy = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        if busy {
            OutboxError::Busy {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        } else {
            OutboxError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }
        }
    }

    /// Reads the oldest rows: at most `max_rows`, and stopping before
    /// `max_bytes` of loaded column values would be passed (always at least
    /// one row; a row over the row limit costs only its small columns).
    pub fn read_batch(&self, max_rows: usize, max_bytes: usize) -> Result<ReadBatch, OutboxError> {
        self.read_batch_after(0, max_rows, max_bytes)
    }

    /// Like [`OutboxReader::read_batch`], for the rows after `after_seq`:
    /// the next batch, read while the previous one is being written.
    pub fn read_batch_after(
        &self,
        after_seq: i64,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch, OutboxError> {
        let mut stmt = self
            .conn
            .prepare_cached(xray_outbox::select_sql())
            .map_err(|e| self.sql_error(e))?;
        let at = ColumnIndex::of(&stmt).map_err(|e| self.sql_error(e))?;
        let row_limit = i64::try_from(self.max_row_bytes).unwrap_or(i64::MAX);
        let mut rows = stmt
            .query([max_rows as i64, after_seq, row_limit])
            .map_err(|e| self.sql_error(e))?;
        let mut batch = ReadBatch::default();
        while let Some(row) = rows.next().map_err(|e| self.sql_error(e))? {
            let size = usize::try_from(row.get::<_, i64>(at.row_bytes).unwrap_or(0)).unwrap_or(0);
            let oversize = size > self.max_row_bytes;
            let loaded = if oversize {
                size.min(Column::ALL.len() * xray_outbox::SMALL_COLUMN_BYTES)
            } else {
                size
            };
            if !batch.is_empty() && batch.bytes + loaded > max_bytes {
                break;
            }
            batch.bytes += loaded;
            let seq: i64 = row.get(at[Column::Seq]).map_err(|e| self.sql_error(e))?;
            batch.last_seq = seq;
            let fields = Fields { row, at: &at };
            if oversize {
                batch.problems.push(RowProblem {
                    seq,
                    raw: fields.raw(),
                    reason: format!(
                        "the row is {size} bytes, over the {} bytes an outbox row may have; \
                         only its columns of at most {} bytes were read (the others are null here)",
                        self.max_row_bytes,
                        xray_outbox::SMALL_COLUMN_BYTES
                    ),
                });
                continue;
            }
            match fields.record(seq) {
                Ok(record) => batch.records.push(record),
                Err(reason) => batch.problems.push(RowProblem {
                    seq,
                    raw: fields.raw(),
                    reason,
                }),
            }
        }
        Ok(batch)
    }

    /// Deletes every row with `seq <= last_seq` (after the backend committed them).
    pub fn delete_through(&self, last_seq: i64) -> Result<usize, OutboxError> {
        self.conn
            .execute("DELETE FROM xray_outbox WHERE seq <= ?1", [last_seq])
            .map_err(|e| self.sql_error(e))
    }

    /// The highest `seq` `sink` has delivered, as recorded in the file
    /// ([`xray_outbox::PROGRESS_TABLE`]); `None` when it never recorded any.
    pub fn progress(&self, sink: &str) -> Result<Option<i64>, OutboxError> {
        self.conn
            .query_row(
                "SELECT seq FROM xray_sink_progress WHERE sink = ?1",
                [sink],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.sql_error(e))
    }

    /// Records that `sink` has delivered every row through `seq`, and
    /// deletes the rows every one of `sink` and `others` has delivered (a
    /// sink of `others` that recorded nothing yet has delivered nothing).
    /// Returns the rows deleted. One transaction: the progress and the
    /// delete commit together.
    pub fn delivered_through(
        &self,
        sink: &str,
        seq: i64,
        others: &[&str],
    ) -> Result<usize, OutboxError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.sql_error(e))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        tx.execute(
            "INSERT INTO xray_sink_progress (sink, seq, updated_at_us) VALUES (?1, ?2, ?3)
             ON CONFLICT (sink) DO UPDATE SET seq = max(seq, excluded.seq),
                                              updated_at_us = excluded.updated_at_us",
            rusqlite::params![sink, seq, now],
        )
        .map_err(|e| self.sql_error(e))?;
        let mut through = seq;
        for other in others {
            through = through.min(self.progress(other)?.unwrap_or(0));
        }
        let deleted = if through > 0 {
            tx.execute("DELETE FROM xray_outbox WHERE seq <= ?1", [through])
                .map_err(|e| self.sql_error(e))?
        } else {
            0
        };
        tx.commit().map_err(|e| self.sql_error(e))?;
        Ok(deleted)
    }

    /// Rows waiting, and the commit time (µs since the epoch) of the oldest.
    /// The count is `max(seq) - min(seq) + 1`: two lookups on the primary
    /// key instead of a scan of the table (the reader deletes prefixes, so
    /// the span of sequence numbers is the backlog, give or take rows a
    /// writer rolled back).
    pub fn backlog(&self) -> Result<(u64, Option<i64>), OutboxError> {
        self.conn
            .query_row(
                "SELECT coalesce((SELECT max(seq) FROM xray_outbox) - (SELECT min(seq) FROM xray_outbox) + 1, 0),
                        (SELECT written_at_us FROM xray_outbox ORDER BY seq LIMIT 1)",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Option<i64>>(1)?)),
            )
            .optional()
            .map(|o| o.unwrap_or((0, None)))
            .map_err(|e| self.sql_error(e))
    }
}

/// The file's identity: the one its writer gave it at creation or, for a
/// file made by an SDK older than the identity, one added now. `INSERT OR
/// IGNORE` then read back, so a writer adding one at the same time and
/// this reader agree on whichever came first.
fn outbox_id(conn: &Connection) -> Result<Uuid, String> {
    let sql = |what: &str, e: rusqlite::Error| format!("cannot {what} the outbox id: {e}");
    let fresh = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes())
        .into_uuid()
        .to_string();
    conn.execute(xray_outbox::ADD_OUTBOX_ID, [fresh.as_str()])
        .map_err(|e| sql("store", e))?;
    let text: String = conn
        .query_row(xray_outbox::SELECT_OUTBOX_ID, [], |r| r.get(0))
        .map_err(|e| sql("read", e))?;
    Uuid::parse_str(&text).map_err(|e| format!("the outbox id {text:?} is not a UUID: {e}"))
}

/// Where each column of [`xray_outbox::select_sql`] is, looked up by name
/// once per statement.
struct ColumnIndex {
    columns: Vec<usize>,
    row_bytes: usize,
}

impl ColumnIndex {
    fn of(stmt: &rusqlite::Statement<'_>) -> rusqlite::Result<ColumnIndex> {
        Ok(ColumnIndex {
            columns: Column::ALL
                .iter()
                .map(|c| stmt.column_index(c.name()))
                .collect::<rusqlite::Result<_>>()?,
            row_bytes: stmt.column_index("row_bytes")?,
        })
    }
}

impl std::ops::Index<Column> for ColumnIndex {
    type Output = usize;

    fn index(&self, column: Column) -> &usize {
        // `Column::ALL` lists every variant in declaration order.
        &self.columns[column as usize]
    }
}

/// One row, read column by column with the reason for whatever is wrong.
struct Fields<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    at: &'r ColumnIndex,
}

impl Fields<'_, '_> {
    /// The row as found, as JSON (text columns as strings), for the
    /// dead-letter table.
    fn raw(&self) -> Value {
        let mut map = serde_json::Map::new();
        for column in Column::ALL {
            let value = match self.row.get_ref(self.at[*column]) {
                Ok(rusqlite::types::ValueRef::Null) | Err(_) => Value::Null,
                Ok(rusqlite::types::ValueRef::Integer(n)) => Value::from(n),
                Ok(rusqlite::types::ValueRef::Real(f)) => Value::from(f),
                Ok(rusqlite::types::ValueRef::Text(t)) => {
                    Value::from(String::from_utf8_lossy(t).into_owned())
                }
                Ok(rusqlite::types::ValueRef::Blob(b)) => {
                    Value::from(format!("<{} bytes of blob>", b.len()))
                }
            };
            map.insert(column.name().to_owned(), value);
        }
        Value::Object(map)
    }

    fn text(&self, column: Column) -> Result<Option<String>, String> {
        let name = column.name();
        match self
            .row
            .get_ref(self.at[column])
            .map_err(|e| format!("{name}: {e}"))?
        {
            rusqlite::types::ValueRef::Null => Ok(None),
            rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| format!("{name} is not valid UTF-8")),
            other => Err(format!(
                "{name} should be text, found {:?}",
                other.data_type()
            )),
        }
    }

    fn required(&self, column: Column) -> Result<String, String> {
        self.text(column)?
            .ok_or_else(|| format!("{} is missing", column.name()))
    }

    fn json(&self, column: Column) -> Result<Option<Value>, String> {
        match self.text(column)? {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| format!("{} is not valid JSON: {e}", column.name())),
        }
    }

    /// A JSON array of `T` (absent: empty).
    fn array<T: serde::de::DeserializeOwned>(&self, column: Column) -> Result<Vec<T>, String> {
        match self.text(column)? {
            None => Ok(Vec::new()),
            Some(t) => serde_json::from_str(&t).map_err(|e| format!("{}: {e}", column.name())),
        }
    }

    fn uuid(&self, column: Column) -> Result<Option<Uuid>, String> {
        self.text(column)?
            .map(|s| {
                Uuid::parse_str(&s)
                    .map_err(|e| format!("{} {s:?} is not a UUID: {e}", column.name()))
            })
            .transpose()
    }

    fn required_uuid(&self, column: Column) -> Result<Uuid, String> {
        self.uuid(column)?
            .ok_or_else(|| format!("{} is missing", column.name()))
    }

    /// A trace or span id column: lowercase hex of `N` bytes, not all
    /// zero, or NULL.
    fn trace_id<const N: usize>(&self, column: Column) -> Result<Option<[u8; N]>, String> {
        self.text(column)?
            .map(|s| {
                xray_outbox::trace::parse_id(&s).ok_or_else(|| {
                    format!(
                        "{} {s:?} is not {} lowercase hex digits (not all zero)",
                        column.name(),
                        N * 2
                    )
                })
            })
            .transpose()
    }

    fn int(&self, column: Column) -> Result<Option<i64>, String> {
        self.row
            .get::<_, Option<i64>>(self.at[column])
            .map_err(|e| format!("{}: {e}", column.name()))
    }

    fn record(&self, seq: i64) -> Result<ShipRecord, String> {
        let record_type: RecordType = self
            .required(Column::RecordType)?
            .parse()
            .map_err(|e: xray_outbox::UnknownValue| e.to_string())?;
        let id = self.required_uuid(Column::Id)?;
        let status = self.required(Column::Status)?;
        let started_at_us = self
            .int(Column::StartedAtUs)?
            .ok_or("started_at_us is missing")?;
        match record_type {
            RecordType::Step => {
                let status: StepStatus = status
                    .parse()
                    .map_err(|e: xray_outbox::UnknownValue| e.to_string())?;
                Ok(ShipRecord::Step(StepRow {
                    seq,
                    id,
                    execution_id: self.required_uuid(Column::ExecutionId)?,
                    parent_id: self.uuid(Column::ParentId)?,
                    project: self.required(Column::Project)?,
                    name: self.required(Column::Name)?,
                    kind: self.text(Column::Kind)?,
                    status,
                    input: self.json(Column::Input)?,
                    output: self.json(Column::Output)?,
                    error: self.text(Column::Error)?,
                    attributes: self.json(Column::Attributes)?,
                    started_at_us,
                    duration_us: self.int(Column::DurationUs)?,
                    decisions: self.array::<Decision>(Column::Decisions)?,
                    llm_usage: self.array::<LlmUsage>(Column::LlmUsage)?,
                    trace_id: self.trace_id(Column::TraceId)?,
                    reasoning: None,
                }))
            }
            RecordType::Execution => {
                let status: ExecutionStatus = status
                    .parse()
                    .map_err(|e: xray_outbox::UnknownValue| e.to_string())?;
                Ok(ShipRecord::Execution(ExecutionRow {
                    seq,
                    id,
                    project: self.required(Column::Project)?,
                    name: self.required(Column::Name)?,
                    status,
                    metadata: self.json(Column::Metadata)?,
                    outcome: self.json(Column::Outcome)?,
                    error: self.text(Column::Error)?,
                    started_at_us,
                    ended_at_us: self.int(Column::EndedAtUs)?,
                    trace_id: self.trace_id(Column::TraceId)?,
                    parent_span_id: self.trace_id(Column::ParentSpanId)?,
                }))
            }
        }
    }
}
