//! Backends: PostgreSQL ([`postgres`]) and the embedded SQLite store
//! ([`sqlite`]), behind one trait. The rest of the collector does not know
//! which one it talks to.
//!
//! # What a backend guarantees
//!
//! - [`Store::write`] applies a batch in **one transaction** of idempotent
//!   upserts keyed by ids: writing the same records again changes nothing,
//!   and a `start` never overwrites a row that already has its `end`.
//! - An error says whether trying again may succeed ([`StoreError::is_retriable`]):
//!   a lost connection is retriable (the shipper backs off and retries
//!   forever); a record the database refuses (a constraint, a value it
//!   cannot store) is not — the shipper bisects the batch to find it and
//!   moves it to the dead-letter table with [`Store::dead_letter`].

mod any;
pub mod postgres;
pub mod sqlite;

pub use any::AnyStore;
pub use postgres::redact_url;

use std::future::Future;

use crate::model::ShipRecord;

/// Errors from a backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or the connection broke; retry later.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend refused the data (constraint, type, size): retrying the
    /// same records will fail the same way.
    #[error("backend rejected the data: {0}")]
    Rejected(String),
    /// The backend's schema is not usable yet (not migrated, missing
    /// grants): an operator can fix it, so the shipper waits and retries,
    /// reporting it in `/healthz`, rather than dead-lettering good records.
    #[error("{0}")]
    Schema(String),
    /// The configuration is wrong (malformed URL, login refused, no such
    /// database): retrying will not help.
    #[error("{0}")]
    Config(String),
    /// Anything else, assumed transient.
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// Whether the same operation may succeed later.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Schema(_) | StoreError::Other(_)
        )
    }
}

/// A record the backend refused, as kept in the dead-letter table.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Which outbox the record came from.
    pub outbox: String,
    /// Its outbox sequence number.
    pub seq: i64,
    /// The record, as JSON.
    pub record: serde_json::Value,
    /// The backend's reason.
    pub reason: String,
}

/// A place shipped records end up in.
pub trait Store: Send + Sync {
    /// Writes `records` (already parsed, in `seq` order) in one transaction.
    fn write(&self, records: &[ShipRecord]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Stores records the backend refused, with the reason, in one
    /// transaction (idempotent by `(outbox, seq)`).
    fn dead_letter(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
