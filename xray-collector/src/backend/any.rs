//! [`AnyStore`]: the backend chosen at start, behind the backend traits.

use std::path::Path;
use std::time::Duration;

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use uuid::Uuid;

use super::{
    AfterRules, DeadLetter, Explain, Migrations, PruneFilter, Pruned, QueryStore, Reasoning,
    Retention, SearchIndex, Store, StoreError,
};
use crate::migrate::{MigrateError, MigrationStatus};
use crate::model::ShipRecord;
use crate::query::{
    CandidateEntry, ExecutionDetail, ExecutionFilter, ExecutionHead, ExecutionPage, LlmTotals,
    SearchHit, Stats, StepDetail, StepFilter, StepPage, WhyEntry,
};
use crate::reason::job::{LlmBacklog, LlmJob, LlmOutcome};

/// PostgreSQL or the embedded store: the rest of the collector does not
/// need to know which.
#[derive(Debug)]
pub enum AnyStore {
    /// A PostgreSQL database (`DATABASE_URL`).
    Postgres(PostgresStore),
    /// The embedded SQLite store (`XRAY_STORE`).
    Sqlite(SqliteStore),
}

/// Forwards a trait method to the backend in hand: the one place that
/// matches on [`AnyStore`].
macro_rules! dispatch {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match $self {
            AnyStore::Postgres(s) => s.$method($($arg),*).await,
            AnyStore::Sqlite(s) => s.$method($($arg),*).await,
        }
    };
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

    /// Opens the embedded store if it exists ([`SqliteStore::open_existing`]).
    pub async fn sqlite_existing(path: &Path) -> Result<AnyStore, StoreError> {
        Ok(AnyStore::Sqlite(SqliteStore::open_existing(path)?))
    }
}

impl Store for AnyStore {
    async fn write(&self, records: &[ShipRecord]) -> Result<(), StoreError> {
        dispatch!(self.write(records))
    }

    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        dispatch!(self.dead_letter(letters))
    }

    async fn set_model_prices(&self, prices: &[crate::cost::ModelPrice]) -> Result<(), StoreError> {
        dispatch!(self.set_model_prices(prices))
    }

    fn concurrent_writes(&self) -> usize {
        match self {
            AnyStore::Postgres(s) => s.concurrent_writes(),
            AnyStore::Sqlite(s) => s.concurrent_writes(),
        }
    }
}

impl SearchIndex for AnyStore {
    async fn index_pending(&self, batch: usize) -> Result<u64, StoreError> {
        dispatch!(self.index_pending(batch))
    }
}

impl Reasoning for AnyStore {
    async fn reason_pending(
        &self,
        batch: usize,
        explain: Explain,
        then: AfterRules,
    ) -> Result<u64, StoreError> {
        dispatch!(self.reason_pending(batch, explain, then))
    }

    async fn take_llm_jobs(&self, limit: usize, hold: Duration) -> Result<Vec<LlmJob>, StoreError> {
        dispatch!(self.take_llm_jobs(limit, hold))
    }

    async fn finish_llm_job(&self, id: Uuid, outcome: &LlmOutcome) -> Result<(), StoreError> {
        dispatch!(self.finish_llm_job(id, outcome))
    }

    async fn llm_backlog(&self) -> Result<LlmBacklog, StoreError> {
        dispatch!(self.llm_backlog())
    }

    async fn requeue_reasoning(
        &self,
        execution: Option<Uuid>,
        failed_only: bool,
    ) -> Result<u64, StoreError> {
        dispatch!(self.requeue_reasoning(execution, failed_only))
    }
}

impl Migrations for AnyStore {
    async fn migrate_up(&self) -> Result<Vec<i64>, MigrateError> {
        dispatch!(self.migrate_up())
    }

    async fn migrate_down(&self, n: usize) -> Result<Vec<i64>, MigrateError> {
        dispatch!(self.migrate_down(n))
    }

    async fn migrate_status(&self) -> Result<Vec<MigrationStatus>, MigrateError> {
        dispatch!(self.migrate_status())
    }
}

impl QueryStore for AnyStore {
    async fn executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage, StoreError> {
        dispatch!(self.executions(filter))
    }

    async fn latest_execution(&self, project: Option<&str>) -> Result<Option<Uuid>, StoreError> {
        dispatch!(self.latest_execution(project))
    }

    async fn existing_executions(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashSet<Uuid>, StoreError> {
        dispatch!(self.existing_executions(ids))
    }

    async fn execution(&self, id: Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        dispatch!(self.execution(id))
    }

    async fn execution_head(&self, id: Uuid) -> Result<Option<ExecutionHead>, StoreError> {
        dispatch!(self.execution_head(id))
    }

    async fn execution_llm(&self, id: Uuid) -> Result<LlmTotals, StoreError> {
        dispatch!(self.execution_llm(id))
    }

    async fn steps(&self, filter: &StepFilter) -> Result<StepPage, StoreError> {
        dispatch!(self.steps(filter))
    }

    async fn step_details(
        &self,
        execution: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<StepDetail>, StoreError> {
        dispatch!(self.step_details(execution, ids))
    }

    async fn candidate(
        &self,
        candidate: &str,
        except: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<CandidateEntry>, StoreError> {
        dispatch!(self.candidate(candidate, except, limit))
    }

    async fn why(&self, execution: Uuid, candidate: &str) -> Result<Vec<WhyEntry>, StoreError> {
        dispatch!(self.why(execution, candidate))
    }

    async fn search(
        &self,
        text: &str,
        limit: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        dispatch!(self.search(text, limit, timeout))
    }

    async fn stats(&self, since_us: Option<i64>, name: Option<&str>) -> Result<Stats, StoreError> {
        dispatch!(self.stats(since_us, name))
    }
}

impl Retention for AnyStore {
    async fn prune_batch(&self, filter: &PruneFilter, batch: usize) -> Result<Pruned, StoreError> {
        dispatch!(self.prune_batch(filter, batch))
    }

    async fn prune_count(&self, filter: &PruneFilter) -> Result<Pruned, StoreError> {
        dispatch!(self.prune_count(filter))
    }

    async fn after_prune(&self, filter: &PruneFilter) -> Result<u64, StoreError> {
        dispatch!(self.after_prune(filter))
    }
}
