//! Small reads used by tests, and the blocking-thread runner the queries
//! (`query.rs`) build on.

use rusqlite::Connection;

use super::{classify, SqliteStore};
use crate::backend::StoreError;

impl SqliteStore {
    /// How many steps the store holds.
    pub async fn count_steps(&self) -> Result<i64, StoreError> {
        self.read(|conn| conn.query_row("SELECT count(*) FROM steps", [], |r| r.get(0)))
            .await
    }

    /// How many executions the store holds (placeholders included).
    pub async fn count_executions(&self) -> Result<i64, StoreError> {
        self.read(|conn| conn.query_row("SELECT count(*) FROM executions", [], |r| r.get(0)))
            .await
    }

    /// Runs `query` with the connection on a blocking thread, its errors
    /// classified.
    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.with_connection(query)
            .await
            .map_err(super::worker_failed)?
            .map_err(|e| classify(&e))
    }
}
