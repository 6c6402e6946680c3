//! [`AnyStore`]: the backend chosen at start, behind the [`Store`] trait.

use std::path::Path;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::{DeadLetter, Store, StoreError};
use crate::migrate::{MigrateError, MigrationStatus};
use crate::model::ShipRecord;

/// PostgreSQL or the embedded store: the rest of the collector does not
/// need to know which.
#[derive(Debug)]
pub enum AnyStore {
    /// A PostgreSQL database (`DATABASE_URL`).
    Postgres(PostgresStore),
    /// The embedded SQLite store (`XRAY_STORE`).
    Sqlite(SqliteStore),
}

impl AnyStore {
    /// Connects to PostgreSQL.
    pub async fn postgres(url: &str) -> Result<AnyStore, StoreError> {
        Ok(AnyStore::Postgres(PostgresStore::connect(url).await?))
    }

    /// Opens (creating) the embedded store.
    pub async fn sqlite(path: &Path) -> Result<AnyStore, StoreError> {
        Ok(AnyStore::Sqlite(SqliteStore::open(path)?))
    }

    /// Applies pending migrations; returns the versions applied.
    pub async fn migrate_up(&self) -> Result<Vec<i64>, MigrateError> {
        match self {
            AnyStore::Postgres(s) => s.migrate_up().await,
            AnyStore::Sqlite(s) => s.migrate_up().await,
        }
    }

    /// Reverts the last `n` migrations; returns the versions reverted.
    pub async fn migrate_down(&self, n: usize) -> Result<Vec<i64>, MigrateError> {
        match self {
            AnyStore::Postgres(s) => s.migrate_down(n).await,
            AnyStore::Sqlite(s) => s.migrate_down(n).await,
        }
    }

    /// Every known migration and whether it is applied.
    pub async fn migrate_status(&self) -> Result<Vec<MigrationStatus>, MigrateError> {
        match self {
            AnyStore::Postgres(s) => s.migrate_status().await,
            AnyStore::Sqlite(s) => s.migrate_status().await,
        }
    }
}

impl Store for AnyStore {
    async fn write(&self, records: &[ShipRecord]) -> Result<(), StoreError> {
        match self {
            AnyStore::Postgres(s) => s.write(records).await,
            AnyStore::Sqlite(s) => s.write(records).await,
        }
    }

    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        match self {
            AnyStore::Postgres(s) => s.dead_letter(letters).await,
            AnyStore::Sqlite(s) => s.dead_letter(letters).await,
        }
    }
}
