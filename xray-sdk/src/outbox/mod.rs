//! The outbox: a local SQLite file between the application and the collector.
//!
//! Its format — DDL, columns, record types, statuses, decisions, LLM usage,
//! and the invariants writers and readers keep — is defined once, in the
//! `xray-outbox` crate, which the collector's reader uses too. This module
//! holds the writer.

mod writer;

pub(crate) use writer::{OutboxWriter, MAX_BATCH};

/// The outbox format this SDK writes, its file marker and DDL (for tools
/// that need a table of the same shape, such as the load tool's bare-SQLite
/// baseline).
pub use xray_outbox::{APPLICATION_ID, FORMAT_VERSION, SCHEMA};
