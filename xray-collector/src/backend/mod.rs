//! Backends: PostgreSQL ([`postgres`]) and the embedded SQLite store
//! ([`sqlite`]), one folder each holding its connection, migrations,
//! writes, queries and error classification, behind five traits —
//! [`Store`] (shipping), [`SearchIndex`] (the search index behind it),
//! [`Migrations`] (the schema), [`QueryStore`] (reading) and [`Retention`]
//! (pruning) — and one dispatch, [`AnyStore`]. The rest of the collector
//! does not know which backend it talks to.
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
//! - A value PostgreSQL cannot hold (a NUL character, a key too long for
//!   an index, a token count over `integer`) is stored by both backends in
//!   the same defined, flagged form ([`storable`]), never refused.

mod any;
pub mod postgres;
pub mod sqlite;
pub mod storable;

pub use any::AnyStore;
pub use postgres::redact_url;

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

use crate::migrate::{MigrateError, MigrationStatus};
use crate::model::ShipRecord;
use crate::query::{
    CandidateEntry, ExecutionDetail, ExecutionFilter, ExecutionHead, ExecutionPage, LlmTotals,
    SearchHit, Stats, StepDetail, StepFilter, StepPage, WhyEntry,
};
use crate::reason::job::{LlmBacklog, LlmJob, LlmOutcome};

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
    /// A read took longer than it was allowed and was stopped (a search's
    /// statement timeout); the connection stays usable.
    #[error("{0}")]
    TimedOut(String),
    /// Anything else, assumed transient.
    #[error("{0}")]
    Other(String),
}

impl StoreError {
    /// Whether the same operation may succeed later.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_)
                | StoreError::Schema(_)
                | StoreError::TimedOut(_)
                | StoreError::Other(_)
        )
    }
}

/// Runs `op` until it succeeds or fails in a way that will not pass,
/// trying it again at most `retries` times after a retriable error,
/// `delay(n)` after the `n`-th failure (0-based); `what` names it in the
/// debug log. For operations that are one transaction each, so that a
/// failed attempt changed nothing (a prune batch, an indexing batch).
pub async fn retrying<T, Fut>(
    what: &str,
    retries: u32,
    delay: impl Fn(u32) -> Duration,
    mut op: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_retriable() && attempt < retries => {
                let wait = delay(attempt);
                attempt += 1;
                tracing::debug!(error = %e, ?wait, "{what} failed; trying it again");
                tokio::time::sleep(wait).await;
            }
            done => return done,
        }
    }
}

/// Runs the batch `op` (one transaction that takes up to a batch of work
/// and says how much it took) until it takes nothing; how much it took in
/// all. A batch that failed in a way that may pass (a busy store, a
/// deadlock with a prune, a lost connection) is tried again a few times
/// ([`retrying`]); a failed batch changed nothing. `what` names it.
pub async fn drain<Fut>(what: &str, mut op: impl FnMut() -> Fut) -> Result<u64, StoreError>
where
    Fut: Future<Output = Result<u64, StoreError>>,
{
    let backoff = crate::ship::Backoff {
        base: Duration::from_millis(50),
        max: Duration::from_secs(2),
    };
    let mut total = 0;
    loop {
        let taken = retrying(what, 6, |attempt| backoff.delay(attempt), &mut op).await?;
        if taken == 0 {
            return Ok(total);
        }
        total += taken;
        tokio::task::yield_now().await;
    }
}

/// A record the backend refused, as kept in the dead-letter table.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The durable identity of the outbox file the record came from
    /// (`xray_outbox_meta`, key `outbox_id`): with `seq`, the key.
    pub outbox_id: Uuid,
    /// The outbox's path as the collector was given it, for people.
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
    /// transaction (idempotent by `(outbox_id, seq)`).
    fn dead_letter(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many [`write`](Store::write)s the store runs at once (on as
    /// many connections); the shipper keeps that many batches in flight.
    /// One unless the store says otherwise: a store that serialises its
    /// writes gains nothing from more.
    fn concurrent_writes(&self) -> usize {
        1
    }

    /// Replaces the prices LLM usage is priced from when it is written
    /// ([`crate::cost`]), in one transaction.
    fn set_model_prices(
        &self,
        prices: &[crate::cost::ModelPrice],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Which executions a prune deletes: those that started before
/// `before_us`, in `project` if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneFilter {
    /// The cutoff (µs since the epoch): executions that started earlier go.
    pub before_us: i64,
    /// Only this project's executions.
    pub project: Option<String>,
}

/// What a prune deleted (or, in a dry run, would delete).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Executions.
    pub executions: u64,
    /// Their steps.
    pub steps: u64,
    /// The decisions of those steps.
    pub decisions: u64,
    /// Their LLM usage rows.
    pub llm_usage: u64,
}

impl PruneFilter {
    /// Executions that started longer than `age_us` ago (from now).
    pub fn older_than(age_us: i64, project: Option<String>) -> PruneFilter {
        PruneFilter {
            before_us: jiff::Timestamp::now()
                .as_microsecond()
                .saturating_sub(age_us),
            project,
        }
    }
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, other: Pruned) {
        self.executions += other.executions;
        self.steps += other.steps;
        self.decisions += other.decisions;
        self.llm_usage += other.llm_usage;
    }
}

/// Deleting old executions with everything that hangs off them, in
/// bounded batches so that shipping goes on in between (see
/// [`crate::retention`], which drives these).
pub trait Retention: Send + Sync {
    /// Deletes the oldest `batch` executions the filter selects (fewer if
    /// there are fewer), with their steps, decisions and LLM usage, in one
    /// transaction; what it deleted. Nothing left: all zero.
    fn prune_batch(
        &self,
        filter: &PruneFilter,
        batch: usize,
    ) -> impl Future<Output = Result<Pruned, StoreError>> + Send;

    /// What [`prune_batch`](Self::prune_batch) until nothing is left would
    /// delete now, changing nothing.
    fn prune_count(
        &self,
        filter: &PruneFilter,
    ) -> impl Future<Output = Result<Pruned, StoreError>> + Send;

    /// After the batches: drops what holds nothing any more because of
    /// them (on PostgreSQL, the search index's day partitions wholly before
    /// the cutoff that are now empty); how many were dropped. Nothing by
    /// default.
    fn after_prune(
        &self,
        filter: &PruneFilter,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = filter;
        async { Ok(0) }
    }
}

/// How a reasoner explains a step: its status, error and decisions in
/// words, or `None` when there is nothing to say
/// ([`crate::reason::rules::explain`]).
pub type Explain =
    fn(crate::model::StepStatus, Option<&str>, &[crate::model::Decision]) -> Option<String>;

/// What the rules pass does with a job once its text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRules {
    /// Completes it (`XRAY_REASONER=rules`).
    Complete,
    /// Leaves it pending, due for the LLM now (`XRAY_REASONER=llm`).
    AwaitLlm,
}

/// Reasoning jobs (DESIGN.md, "Reasoning"): the search indexer queues one
/// for each step it indexes that ended with decisions or a failure;
/// [`reason_pending`](Reasoning::reason_pending) writes the rules text a
/// batch at a time, and with the LLM reasoner the jobs then go through
/// [`take_llm_jobs`](Reasoning::take_llm_jobs) and
/// [`finish_llm_job`](Reasoning::finish_llm_job) (see [`crate::reasoning`],
/// which drives them).
///
/// A job's life: `pending` (rules text to write) → `completed` by the
/// rules; or, with the LLM, `pending` due for its call → `processing`
/// while a collector holds it (until its claim runs out) → `completed`
/// with the LLM's text, back to `pending` (due later) after a failure that
/// may pass, or `failed` — the rules text staying.
pub trait Reasoning: Send + Sync {
    /// Takes up to `batch` jobs whose rules text is to be written, oldest
    /// first, explains each step with `explain`, writes the text into the
    /// step's `reasoning` and completes the job or leaves it due for the
    /// LLM (`then`), in one transaction; how many jobs it took — 0 when
    /// none is waiting. Completing also takes jobs waiting for the LLM or
    /// held by a collector whose claim ran out (the reasoner was switched
    /// back to rules).
    fn reason_pending(
        &self,
        batch: usize,
        explain: Explain,
        then: AfterRules,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes up to `limit` jobs due for their LLM call (or held by a
    /// collector whose claim ran out), oldest due first, and holds them
    /// for `hold` (status `processing`): the steps as the prompt needs
    /// them. Several collectors never take the same job.
    fn take_llm_jobs(
        &self,
        limit: usize,
        hold: Duration,
    ) -> impl Future<Output = Result<Vec<LlmJob>, StoreError>> + Send;

    /// Ends a held job's call with `outcome` (one more attempt): the LLM's
    /// text into the step, with the tokens and what they cost at the
    /// model's price; due again later; or failed. A job no longer held (it
    /// was queued anew meanwhile) is left as it is.
    fn finish_llm_job(
        &self,
        id: Uuid,
        outcome: &LlmOutcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The LLM jobs not done yet.
    fn llm_backlog(&self) -> impl Future<Output = Result<LlmBacklog, StoreError>> + Send;

    /// Makes jobs pending again, to be explained anew from the rules on
    /// (their attempts counted from zero): those of `execution` (all of
    /// them; with `failed_only`, its failed ones), or, without an
    /// execution, the failed ones (`failed_only`) or none; how many.
    fn requeue_reasoning(
        &self,
        execution: Option<Uuid>,
        failed_only: bool,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// The search index, kept behind the shipper: [`Store::write`] notes each
/// step it wrote, and [`index_pending`](SearchIndex::index_pending) indexes
/// noted steps a batch at a time, outside the shipping transaction (see
/// [`crate::indexing`], which drives it). `search` finds a step once it has
/// been indexed; a step written again (its end after its start) is indexed
/// again.
pub trait SearchIndex: Send + Sync {
    /// Indexes up to `batch` noted steps (more than one note of the same
    /// step counts once per note) in one transaction; how many notes it
    /// took — 0 when the index is current.
    fn index_pending(&self, batch: usize) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// The schema of a backend: versioned migrations with an up and a down,
/// checksummed and applied under a lock (see [`crate::migrate`]).
pub trait Migrations: Send + Sync {
    /// Applies every pending migration; returns the versions applied (empty
    /// when the schema is current). Refuses a schema newer than this binary
    /// or an applied migration that was edited.
    fn migrate_up(&self) -> impl Future<Output = Result<Vec<i64>, MigrateError>> + Send;

    /// Reverts the `n` newest applied migrations, newest first; returns the
    /// versions reverted.
    fn migrate_down(&self, n: usize)
        -> impl Future<Output = Result<Vec<i64>, MigrateError>> + Send;

    /// Every migration this binary knows and whether it is applied.
    fn migrate_status(
        &self,
    ) -> impl Future<Output = Result<Vec<MigrationStatus>, MigrateError>> + Send;
}

/// The read side of a backend.
pub trait QueryStore: Send + Sync {
    /// A page of executions, newest first (`started_at desc, id desc`).
    fn executions(
        &self,
        filter: &ExecutionFilter,
    ) -> impl Future<Output = Result<ExecutionPage, StoreError>> + Send;
    /// The newest execution's id (optionally of one project).
    fn latest_execution(
        &self,
        project: Option<&str>,
    ) -> impl Future<Output = Result<Option<Uuid>, StoreError>> + Send;
    /// Which of `ids` are executions in the store (placeholders too).
    fn existing_executions(
        &self,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<std::collections::HashSet<Uuid>, StoreError>> + Send;
    /// One execution with its steps, decisions and usage; `None` if unknown.
    fn execution(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<ExecutionDetail>, StoreError>> + Send;
    /// One execution without its steps; `None` if unknown.
    fn execution_head(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<ExecutionHead>, StoreError>> + Send;
    /// An execution's LLM calls summed per model, with their cost (see
    /// [`LlmTotals`](crate::query::LlmTotals)), in one aggregate query
    /// however many steps it has; no calls for an unknown execution.
    /// Kept apart from [`execution_head`](QueryStore::execution_head),
    /// which answers "does it exist" for every page of steps.
    fn execution_llm(&self, id: Uuid)
        -> impl Future<Output = Result<LlmTotals, StoreError>> + Send;
    /// A page of an execution's steps without their values, in start order
    /// (empty for an unknown execution or step).
    fn steps(
        &self,
        filter: &StepFilter,
    ) -> impl Future<Output = Result<StepPage, StoreError>> + Send;
    /// These steps of the execution, whole, in start order; ids that are
    /// not steps of it are left out.
    fn step_details(
        &self,
        execution: Uuid,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<Vec<StepDetail>, StoreError>> + Send;
    /// Decisions about `candidate` in every execution (but `except`), the
    /// newest step first, at most `limit` (up to [`MAX_CANDIDATE_ENTRIES`](crate::query::MAX_CANDIDATE_ENTRIES)).
    fn candidate(
        &self,
        candidate: &str,
        except: Option<Uuid>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CandidateEntry>, StoreError>> + Send;
    /// Every decision about `candidate` in the execution, in step start order.
    fn why(
        &self,
        execution: Uuid,
        candidate: &str,
    ) -> impl Future<Output = Result<Vec<WhyEntry>, StoreError>> + Send;
    /// Steps matching `text` (all words) in name, input, output or error,
    /// best first, at most `limit`. With a `timeout`, the statement is
    /// stopped in the backend when it runs longer
    /// ([`StoreError::TimedOut`]).
    fn search(
        &self,
        text: &str,
        limit: usize,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Vec<SearchHit>, StoreError>> + Send;
    /// Step statistics over finished steps started since `since_us`
    /// (optionally one step name), and tokens per model.
    fn stats(
        &self,
        since_us: Option<i64>,
        name: Option<&str>,
    ) -> impl Future<Output = Result<Stats, StoreError>> + Send;
}
