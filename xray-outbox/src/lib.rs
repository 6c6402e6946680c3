//! # xray-outbox
//!
//! The outbox format, written down once: the SDK's writer
//! (`xray-sdk`) and the collector's reader (`xray-collector`), the test
//! support and the load tool all use these definitions, so a column, a
//! status or a decision field cannot mean one thing on one side and
//! another on the other. This crate holds data definitions (and the
//! owner-only creation of the files that hold captured data,
//! [`private_file`]): no SQLite binding, so both sides keep their own
//! SQLite driver.
//!
//! ## Format (version 2)
//!
//! One SQLite database in WAL mode, `PRAGMA application_id = 0x58524159`
//! ("XRAY") and `PRAGMA user_version = 2`; the version is also kept in
//! `xray_outbox_meta(key = 'format_version')`, and the file's durable
//! identity, a UUID written at creation, in `xray_outbox_meta(key =
//! 'outbox_id')` (see [`OUTBOX_ID_KEY`]). A reader that finds another
//! version must not guess: it reports the file and leaves it alone. Records
//! live in one table, `xray_outbox`, one row per record:
//!
//! | column | meaning |
//! |---|---|
//! | `seq` | `INTEGER PRIMARY KEY AUTOINCREMENT`: the record's place in the file |
//! | `record_type` | `step` or `execution` |
//! | `phase` | `start` (the thing began; status `running`) or `end` |
//! | `id`, `execution_id`, `parent_id` | UUIDs as text (an execution's `execution_id` is its `id`) |
//! | `project`, `name`, `kind`, `status` | text (contract status values) |
//! | `input`, `output`, `attributes`, `metadata`, `outcome`, `decisions`, `llm_usage` | JSON text or NULL |
//! | `error` | text or NULL |
//! | `started_at_us`, `ended_at_us`, `duration_us` | microseconds (Unix epoch for the instants) |
//! | `pid`, `written_at_us` | the writing process and the commit time, for diagnosis |
//! | `trace_id` | lowercase hex, or NULL when it is derived from `execution_id` ([`trace`]) |
//! | `parent_span_id` | an execution's remote parent span (lowercase hex), or NULL |
//!
//! `decisions` is an array of `{candidate_id, accepted (bool|null), filter,
//! reason, score}`; `llm_usage` an array of `{model, prompt_tokens,
//! completion_tokens}`. Capture flags (values stored in a flagged form) are
//! listed in `attributes._xray_flags`.
//!
//! Version 2 added `trace_id` and `parent_span_id` at the end of the
//! table. A version 1 file is upgraded in place by whichever side opens it
//! first ([`UPGRADE_FROM_V1`], under the write lock): its rows keep NULL
//! there, which says "derived", exactly what they meant. A writer of
//! version 1 still running appends with named columns, so its rows land
//! the same way.
//!
//! ## Readers' progress
//!
//! A collector that ships one outbox to several sinks (a database, an
//! OTLP receiver) keeps each sink's progress in the file, in
//! [`PROGRESS_TABLE`] (created by the reader; writers ignore it): the
//! highest `seq` the sink has delivered. A row is deleted once every sink
//! the collector runs has delivered it.
//!
//! ## Invariants
//!
//! - **Order.** Rows are appended by writers holding SQLite's write lock and
//!   `seq` is assigned inside that lock, so rows become visible in `seq`
//!   order: once a reader has seen `seq = n`, no row with `seq <= n` appears
//!   later, even with several writing processes. `AUTOINCREMENT` means a
//!   `seq` is never reused, even after deletes.
//! - **Self-sufficient ends.** An `end` row repeats everything its `start`
//!   row said; a reader merges them by `id` (the `end` wins), and a writer
//!   may omit a `start` when its `end` is in the same transaction. A `start`
//!   without an `end` is a step or execution still running — or one whose
//!   process died.
//! - **Deletion.** Only a reader deletes, and only rows it has durably
//!   delivered (committed in its backend). Writers never delete or update.
//! - **Several writers.** Any number of processes may append to one file;
//!   each waits for the write lock (busy timeout), never corrupts another.
//!
//! # What lives where
//!
//! - [`Column`]: every column, in table order, with its name; the
//!   statements ([`insert_sql`], [`select_sql`]) are built from it, and
//!   the reader looks columns up by name.
//! - [`RecordType`], [`Phase`], [`StepStatus`], [`ExecutionStatus`]: the
//!   text values, with `as_str` and `FromStr`.
//! - [`Decision`], [`LlmUsage`]: the elements of the `decisions` and
//!   `llm_usage` JSON arrays (serde).

#![warn(missing_docs)]

mod column;
mod payload;
pub mod private_file;
pub mod trace;
mod value;

pub use column::{insert_sql, select_sql, Column, SMALL_COLUMN_BYTES};
pub use payload::{Decision, LlmUsage};
pub use value::{ExecutionStatus, Phase, RecordType, StepStatus, UnknownValue};

/// The outbox format this crate describes.
pub const FORMAT_VERSION: i64 = 2;

/// `PRAGMA application_id` of an outbox file: "XRAY" in ASCII.
pub const APPLICATION_ID: i64 = 0x5852_4159;

/// The table of records.
pub const TABLE: &str = "xray_outbox";

/// The key, in a step's `attributes` (an execution's `metadata`), of the
/// list of flags naming what was stored in a defined form instead of
/// verbatim (e.g. `["non_finite", "truncated"]`).
pub const FLAGS_KEY: &str = "_xray_flags";

/// The table of file metadata (`key = 'format_version'`, `'outbox_id'`).
pub const META_TABLE: &str = "xray_outbox_meta";

/// The key, in [`META_TABLE`], of the file's durable identity: a UUID
/// (hyphenated, lowercase) written once, when the file is created, and
/// never changed. Whoever finds a file without one (made by an SDK older
/// than the key) adds one with `INSERT OR IGNORE` and reads back what is
/// there, so a writer and a reader racing to add it agree on one. Dead
/// letters are keyed by it: two files at the same path on two hosts, or a
/// file deleted and created again, are different outboxes.
pub const OUTBOX_ID_KEY: &str = "outbox_id";

/// Gives a file its identity unless it has one (`?1`: a fresh UUID); the
/// writer and the reader both run it, then read [`SELECT_OUTBOX_ID`] back,
/// so whichever came first wins.
pub const ADD_OUTBOX_ID: &str =
    "INSERT OR IGNORE INTO xray_outbox_meta (key, value) VALUES ('outbox_id', ?1)";

/// The file's identity (one row, one column), once [`ADD_OUTBOX_ID`] ran.
pub const SELECT_OUTBOX_ID: &str = "SELECT value FROM xray_outbox_meta WHERE key = 'outbox_id'";

/// The DDL of the format's current version. The columns here and [`Column`] must say
/// the same (a test checks it against a real SQLite in the SDK).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS xray_outbox_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS xray_outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    record_type   TEXT NOT NULL CHECK (record_type IN ('step', 'execution')),
    phase         TEXT NOT NULL CHECK (phase IN ('start', 'end')),
    id            TEXT NOT NULL,
    execution_id  TEXT NOT NULL,
    parent_id     TEXT,
    project       TEXT NOT NULL,
    name          TEXT NOT NULL,
    kind          TEXT,
    status        TEXT NOT NULL,
    input         TEXT,
    output        TEXT,
    error         TEXT,
    attributes    TEXT,
    metadata      TEXT,
    outcome       TEXT,
    decisions     TEXT,
    llm_usage     TEXT,
    started_at_us INTEGER NOT NULL,
    ended_at_us   INTEGER,
    duration_us   INTEGER,
    pid           INTEGER NOT NULL,
    written_at_us INTEGER NOT NULL,
    trace_id      TEXT,
    parent_span_id TEXT
);
";

/// Readers' progress, one row per sink ([`PROGRESS_TABLE`]); made by the
/// reader when it opens the file.
pub const PROGRESS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS xray_sink_progress (
    sink          TEXT PRIMARY KEY,
    seq           INTEGER NOT NULL,
    updated_at_us INTEGER NOT NULL
);
";

/// The table of readers' progress.
pub const PROGRESS_TABLE: &str = "xray_sink_progress";

/// Makes a version 1 file a version 2 one, run in a write transaction by
/// whoever finds `user_version = 1` (then `PRAGMA user_version = 2`):
/// the columns version 2 added, NULL in every row already there.
pub const UPGRADE_FROM_V1: &str = "
ALTER TABLE xray_outbox ADD COLUMN trace_id TEXT;
ALTER TABLE xray_outbox ADD COLUMN parent_span_id TEXT;
UPDATE xray_outbox_meta SET value = '2' WHERE key = 'format_version';
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_statements_name_the_meta_table_and_key() {
        for sql in [ADD_OUTBOX_ID, SELECT_OUTBOX_ID] {
            assert!(sql.contains(META_TABLE), "{sql}");
            assert!(sql.contains(&format!("'{OUTBOX_ID_KEY}'")), "{sql}");
        }
    }
}
