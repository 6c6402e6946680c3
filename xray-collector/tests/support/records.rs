//! Small builders and helpers the store and query suites of both backends
//! share.

use uuid::Uuid;
use xray_collector::backend::{postgres::PostgresStore, Migrations};
use xray_collector::model::LlmUsage;
use xray_collector::query::{ExecutionFilter, ExecutionSummary};

use super::pg::{self, TestDb};

/// A random (v4-shaped) id.
pub fn new_id() -> Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

pub fn usage(model: &str, prompt_tokens: i64, completion_tokens: i64) -> LlmUsage {
    LlmUsage {
        model: model.into(),
        prompt_tokens,
        completion_tokens,
    }
}

/// The default listing filter, `limit` rows a page.
pub fn filter(limit: usize) -> ExecutionFilter {
    ExecutionFilter {
        limit,
        ..ExecutionFilter::default()
    }
}

pub fn ids(rows: &[ExecutionSummary]) -> Vec<Uuid> {
    rows.iter().map(|e| e.id).collect()
}

/// A migrated, empty PostgreSQL database and a store connected to it.
pub async fn migrated_postgres() -> (TestDb, PostgresStore) {
    let db = pg::fresh_database().await;
    let store = PostgresStore::connect(&db.url).await.expect("connect");
    store.migrate_up().await.expect("migrate up");
    (db, store)
}
