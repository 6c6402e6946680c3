//! [`OutboxReader`]: batches of outbox rows in `seq` order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;
use uuid::Uuid;

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

/// Reads one outbox file.
pub struct OutboxReader {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for OutboxReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxReader")
            .field("path", &self.path)
            .finish()
    }
}

const SELECT: &str = "SELECT seq, record_type, phase, id, execution_id, parent_id, project, name, kind, status,
        input, output, error, attributes, metadata, outcome, decisions, llm_usage,
        started_at_us, ended_at_us, duration_us,
        coalesce(length(input), 0) + coalesce(length(output), 0) + coalesce(length(attributes), 0)
          + coalesce(length(metadata), 0) + coalesce(length(decisions), 0) + coalesce(length(error), 0) + 200
    FROM xray_outbox WHERE seq > ?2 ORDER BY seq LIMIT ?1";

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
        if app_id != xray::outbox::APPLICATION_ID {
            return Err(corrupt(&"not an X-Ray outbox (application_id differs)"));
        }
        if version != xray::outbox::FORMAT_VERSION {
            return Err(OutboxError::UnknownVersion {
                path: path.to_path_buf(),
                found: version,
                supported: xray::outbox::FORMAT_VERSION,
            });
        }
        let reader = OutboxReader {
            path: path.to_path_buf(),
            conn,
        };
        // Touch the table once so a damaged file fails here, not mid-batch.
        reader.backlog()?;
        Ok(reader)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// Reads the oldest rows: at most `max_rows`, and stopping once
    /// `max_bytes` of payload is reached (always at least one row).
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
            .prepare_cached(SELECT)
            .map_err(|e| self.sql_error(e))?;
        let mut rows = stmt
            .query([max_rows as i64, after_seq])
            .map_err(|e| self.sql_error(e))?;
        let mut batch = ReadBatch::default();
        let mut bytes = 0usize;
        while let Some(row) = rows.next().map_err(|e| self.sql_error(e))? {
            let size: i64 = row.get(21).unwrap_or(0);
            if !batch.is_empty() && bytes + size as usize > max_bytes {
                break;
            }
            bytes += size as usize;
            let seq: i64 = row.get(0).map_err(|e| self.sql_error(e))?;
            batch.last_seq = seq;
            match parse_row(row) {
                Ok(record) => batch.records.push(record),
                Err(reason) => batch.problems.push(RowProblem {
                    seq,
                    raw: raw_row(row),
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

fn raw_row(row: &rusqlite::Row<'_>) -> Value {
    let names = [
        "seq",
        "record_type",
        "phase",
        "id",
        "execution_id",
        "parent_id",
        "project",
        "name",
        "kind",
        "status",
        "input",
        "output",
        "error",
        "attributes",
        "metadata",
        "outcome",
        "decisions",
        "llm_usage",
        "started_at_us",
        "ended_at_us",
        "duration_us",
    ];
    let mut map = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        let value = match row.get_ref(i) {
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
        map.insert((*name).to_owned(), value);
    }
    Value::Object(map)
}

fn text(row: &rusqlite::Row<'_>, i: usize, column: &str) -> Result<Option<String>, String> {
    match row.get_ref(i).map_err(|e| format!("{column}: {e}"))? {
        rusqlite::types::ValueRef::Null => Ok(None),
        rusqlite::types::ValueRef::Text(t) => std::str::from_utf8(t)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| format!("{column} is not valid UTF-8")),
        other => Err(format!(
            "{column} should be text, found {:?}",
            other.data_type()
        )),
    }
}

fn required(row: &rusqlite::Row<'_>, i: usize, column: &str) -> Result<String, String> {
    text(row, i, column)?.ok_or_else(|| format!("{column} is missing"))
}

fn json(row: &rusqlite::Row<'_>, i: usize, column: &str) -> Result<Option<Value>, String> {
    match text(row, i, column)? {
        None => Ok(None),
        Some(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| format!("{column} is not valid JSON: {e}")),
    }
}

fn uuid(s: &str, column: &str) -> Result<Uuid, String> {
    Uuid::parse_str(s).map_err(|e| format!("{column} {s:?} is not a UUID: {e}"))
}

fn int(row: &rusqlite::Row<'_>, i: usize, column: &str) -> Result<Option<i64>, String> {
    row.get::<_, Option<i64>>(i)
        .map_err(|e| format!("{column}: {e}"))
}

fn parse_row(row: &rusqlite::Row<'_>) -> Result<ShipRecord, String> {
    let seq: i64 = row.get(0).map_err(|e| e.to_string())?;
    let record_type = required(row, 1, "record_type")?;
    let id = uuid(&required(row, 3, "id")?, "id")?;
    let status = required(row, 9, "status")?;
    let started_at_us = int(row, 18, "started_at_us")?.ok_or("started_at_us is missing")?;
    match record_type.as_str() {
        "step" => {
            const STATUSES: [&str; 5] = ["running", "ok", "error", "panicked", "cancelled"];
            if !STATUSES.contains(&status.as_str()) {
                return Err(format!("unknown step status {status:?}"));
            }
            let parent_id = text(row, 5, "parent_id")?
                .map(|p| uuid(&p, "parent_id"))
                .transpose()?;
            Ok(ShipRecord::Step(StepRow {
                seq,
                id,
                execution_id: uuid(&required(row, 4, "execution_id")?, "execution_id")?,
                parent_id,
                project: required(row, 6, "project")?,
                name: required(row, 7, "name")?,
                kind: text(row, 8, "kind")?,
                status,
                input: json(row, 10, "input")?,
                output: json(row, 11, "output")?,
                error: text(row, 12, "error")?,
                attributes: json(row, 13, "attributes")?,
                started_at_us,
                duration_us: int(row, 20, "duration_us")?,
                decisions: decisions(json(row, 16, "decisions")?)?,
                llm_usage: llm_usage(json(row, 17, "llm_usage")?)?,
            }))
        }
        "execution" => {
            if !["running", "ok", "error"].contains(&status.as_str()) {
                return Err(format!("unknown execution status {status:?}"));
            }
            Ok(ShipRecord::Execution(ExecutionRow {
                seq,
                id,
                project: required(row, 6, "project")?,
                name: required(row, 7, "name")?,
                status,
                metadata: json(row, 14, "metadata")?,
                outcome: json(row, 15, "outcome")?,
                error: text(row, 12, "error")?,
                started_at_us,
                ended_at_us: int(row, 19, "ended_at_us")?,
            }))
        }
        other => Err(format!("unknown record_type {other:?}")),
    }
}

fn decisions(value: Option<Value>) -> Result<Vec<Decision>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items = value.as_array().ok_or("decisions is not an array")?;
    items
        .iter()
        .map(|d| {
            let candidate_id = match &d["candidate_id"] {
                Value::String(s) => s.clone(),
                other => return Err(format!("decision candidate_id {other} is not a string")),
            };
            Ok(Decision {
                candidate_id,
                accepted: d["accepted"].as_bool(),
                filter: d["filter"].as_str().map(str::to_owned),
                reason: d["reason"].as_str().map(str::to_owned),
                score: d["score"].as_f64(),
            })
        })
        .collect()
}

fn llm_usage(value: Option<Value>) -> Result<Vec<LlmUsage>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items = value.as_array().ok_or("llm_usage is not an array")?;
    items
        .iter()
        .map(|u| {
            Ok(LlmUsage {
                model: u["model"]
                    .as_str()
                    .ok_or("llm_usage model is not a string")?
                    .to_owned(),
                prompt_tokens: u["prompt_tokens"]
                    .as_i64()
                    .ok_or("prompt_tokens is not an integer")?,
                completion_tokens: u["completion_tokens"]
                    .as_i64()
                    .ok_or("completion_tokens is not an integer")?,
            })
        })
        .collect()
}
