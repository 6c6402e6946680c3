//! Reading outboxes (the format is defined in the `xray-outbox` crate).
//!
//! # What the reader relies on and guarantees
//!
//! - Rows become visible in `seq` order, so reading the lowest `seq` first
//!   and deleting through the highest `seq` shipped never skips a row.
//! - The reader deletes only rows whose batch the backend has committed; a
//!   crash before the delete means the rows are read and shipped again,
//!   which the backend's idempotent upserts make harmless. Several
//!   collectors may read one outbox: each ships and deletes the same rows
//!   at worst twice, with the same effect as once.
//! - A file of another format version, a file that is not an outbox, or a
//!   corrupt file is reported with its path and not touched; a row that
//!   cannot be parsed is handed back as [`RowProblem`] (the shipper
//!   dead-letters it), never silently skipped.
//! - What one row may cost is bounded before it is loaded: its size over
//!   all columns is measured in SQL ([`xray_outbox::select_sql`]), and a
//!   row over the limit ([`MAX_ROW_BYTES`] by default) is read without its
//!   large columns and handed back as a [`RowProblem`] saying so.

mod reader;

pub use reader::{OutboxError, OutboxReader, ReadBatch, RowProblem, MAX_ROW_BYTES};
