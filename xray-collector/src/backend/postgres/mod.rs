//! The PostgreSQL backend: schema `xray`, written by [`PostgresStore`].
//!
//! # Guarantees
//!
//! - [`Store::write`] applies a batch in **one** transaction, after
//!   [`merge_by_id`](crate::model::merge_by_id) (each id written once):
//!   placeholder executions, then executions, then the steps' decisions,
//!   then steps, then their LLM usage (the order keeps two batches
//!   written at once free of deadlocks: see `write.rs`). Every row is an upsert keyed by its id, so
//!   writing the same records again changes nothing (apart from
//!   `updated_at`).
//! - A `start` (status `running`) never overwrites a row that already has
//!   its `end`: the upsert's `WHERE` lets only a non-`running` row replace
//!   a finished one. Optional values (input, output, metadata, …) that a
//!   later row lacks keep their earlier value.
//! - A step whose execution is unknown gets a **placeholder** execution
//!   (`name = '(unknown)'`, `status = 'running'`, `placeholder = true`, the
//!   step's project, the step's start) — the execution's start row may
//!   have been lost. Placeholders are always `running`, so the
//!   execution's own row, start or end, replaces them whenever it comes,
//!   and clears `placeholder`.
//! - Decisions and LLM usage are keyed by `(step_id, ordinal)` and
//!   inserted with `ON CONFLICT DO NOTHING`.
//! - Timestamps arrive as microseconds since the epoch and are stored
//!   exactly (`'epoch' + µs * interval '1 microsecond'`).
//! - Errors are classified by [`classify`]: connection trouble is
//!   retriable ([`StoreError::Unavailable`]); a value PostgreSQL refuses
//!   (a NUL character in JSON or text, a `CHECK`, a size limit) is
//!   [`StoreError::Rejected`]; a missing table or grant is
//!   [`StoreError::Schema`]. No error text contains the URL's password.
//! - One connection for shipping and reading, opened by
//!   [`PostgresStore::connect`]; [`WRITE_CONNECTIONS`] − 1 more, opened
//!   when first needed, so that the shipper's batches are written side by
//!   side ([`Store::concurrent_writes`]); and one for the search indexer
//!   ([`SearchIndex`](crate::backend::SearchIndex)), so that indexing runs
//!   beside shipping rather than between its batches. After an error other than `Rejected` a connection is
//!   dropped, and the next call opens a new one; if that fails the call
//!   returns [`StoreError::Unavailable`]. Calls are serialised on each
//!   connection.
//! - [`PostgresStore::migrate_up`], [`migrate_down`](PostgresStore::migrate_down)
//!   and [`migrate_status`](PostgresStore::migrate_status) run under an
//!   advisory lock, so several collectors may start at once (see
//!   [`MIGRATIONS`] and `migrations.rs`).
//!
//! TLS and `sslmode` are described in `connect.rs`: `require` insists on
//! TLS with a certificate verified against the Mozilla roots; `prefer`
//! (the default) falls back to plain TCP when the TLS handshake fails.

/// `'epoch' + µs`: exact to the microsecond, unlike `to_timestamp(µs / 1e6)`,
/// which goes through a double.
macro_rules! ts {
    ($col:literal) => {
        concat!(
            "('epoch'::timestamptz + ",
            $col,
            " * interval '1 microsecond')"
        )
    };
}

mod classify;
mod connect;
mod migrations;
mod password;
mod prune;
mod query;
mod read;
mod reasoning;
mod search_index;
mod write;

use tokio::sync::Mutex;
use tokio_postgres::Client;
use uuid::Uuid;

pub use classify::classify;
pub use migrations::{MIGRATIONS, MIGRATION_LOCK_KEY};
pub use password::{redact_url, Redactor};

use self::connect::Target;
use self::write::Statements;
use crate::backend::{DeadLetter, Migrations, Store, StoreError};
use crate::migrate::{MigrateError, MigrationStatus};
use crate::model::ShipRecord;

/// How many batches a store writes at once, each on its own connection.
/// Two: on a 2-core machine the server then works on one batch while the
/// shipper encodes the other and waits for its locks (see BENCHMARKS.md).
pub const WRITE_CONNECTIONS: usize = 2;

/// A connection to PostgreSQL holding the X-Ray schema.
pub struct PostgresStore {
    // Boxed: the parsed URL and the client are large, and stores are moved
    // around in enums such as `AnyStore`.
    target: Box<Target>,
    session: Mutex<Option<Box<Session>>>,
    /// The other writers' connections (see [`WRITE_CONNECTIONS`]).
    writers: Vec<Mutex<Option<Box<Session>>>>,
    /// The search indexer's connection.
    background: Mutex<Option<Box<Session>>>,
}

/// What [`PostgresStore::with_client`] runs: a future borrowing the client.
pub(crate) type ClientFuture<'c, T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'c>,
>;

/// An open connection and what was prepared on it.
struct Session {
    client: Client,
    /// Prepared on first use: they need the schema, which may not exist
    /// when the connection opens (before `migrate up`).
    statements: Option<Statements>,
}

impl Session {
    fn new(client: Client) -> Box<Session> {
        Box::new(Session {
            client,
            statements: None,
        })
    }

    async fn prepared(&mut self) -> Result<(&mut Client, &Statements), tokio_postgres::Error> {
        let statements = match self.statements.take() {
            Some(st) => st,
            None => Statements::prepare(&self.client).await?,
        };
        let statements = self.statements.insert(statements);
        Ok((&mut self.client, statements))
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.target.shown)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or key-value
    /// string; `sslmode` = `disable`, `prefer` or `require`). Must be
    /// called within a tokio runtime. Fails with
    /// [`StoreError::Unavailable`] when the server cannot be reached or
    /// refuses the login, with [`StoreError::Schema`] when the URL is
    /// malformed; the password never appears in the error.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let target = Box::new(Target::parse(url)?);
        let client = target.connect().await?;
        Ok(PostgresStore {
            target,
            session: Mutex::new(Some(Session::new(client))),
            writers: (1..WRITE_CONNECTIONS).map(|_| Mutex::new(None)).collect(),
            background: Mutex::new(None),
        })
    }

    /// The URL this store connects to, password hidden.
    pub fn url(&self) -> &str {
        &self.target.shown
    }

    /// Number of executions stored.
    pub async fn count_executions(&self) -> Result<i64, StoreError> {
        let mut guard = self.session.lock().await;
        let session = self.open(&mut guard).await?;
        let result = read::count_executions(&session.client).await;
        self.settle(&mut guard, result)
    }

    /// Number of steps stored.
    pub async fn count_steps(&self) -> Result<i64, StoreError> {
        let mut guard = self.session.lock().await;
        let session = self.open(&mut guard).await?;
        let result = read::count_steps(&session.client).await;
        self.settle(&mut guard, result)
    }

    /// Every step's id and status, ordered by id.
    pub async fn step_statuses(&self) -> Result<Vec<(Uuid, String)>, StoreError> {
        let mut guard = self.session.lock().await;
        let session = self.open(&mut guard).await?;
        let result = read::step_statuses(&session.client).await;
        self.settle(&mut guard, result)
    }

    /// Runs `f` on the connection (opened or reopened as needed), with
    /// calls serialised as for writes; its error is classified, password
    /// hidden, and the connection dropped unless the data was at fault.
    /// Used by the queries (`crate::query`).
    pub(crate) async fn with_client<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut Client) -> ClientFuture<'c, T>,
    {
        self.on(&self.session, f).await
    }

    /// [`with_client`](Self::with_client) on the indexer's connection.
    pub(crate) async fn with_background_client<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut Client) -> ClientFuture<'c, T>,
    {
        self.on(&self.background, f).await
    }

    async fn on<T, F>(&self, slot: &Mutex<Option<Box<Session>>>, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut Client) -> ClientFuture<'c, T>,
    {
        let mut guard = slot.lock().await;
        let session = self.open(&mut guard).await?;
        let result = f(&mut session.client).await;
        self.settle(&mut guard, result)
    }

    /// A connection free to write on: the first one nobody is using, or,
    /// when all are busy, the main one once it is free.
    async fn writer(&self) -> tokio::sync::MutexGuard<'_, Option<Box<Session>>> {
        for slot in std::iter::once(&self.session).chain(&self.writers) {
            if let Ok(guard) = slot.try_lock() {
                return guard;
            }
        }
        self.session.lock().await
    }

    /// The open session, or a new one if there is none or it was closed.
    async fn open<'g>(
        &self,
        guard: &'g mut Option<Box<Session>>,
    ) -> Result<&'g mut Session, StoreError> {
        if guard.as_ref().is_some_and(|s| s.client.is_closed()) {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some(Session::new(self.target.connect().await?));
        }
        guard
            .as_deref_mut()
            .ok_or_else(|| StoreError::Other("no connection".into()))
    }

    /// Classifies an error (password hidden) and drops the connection
    /// unless the data was at fault or a statement ran out of time, so
    /// the next call starts afresh.
    fn settle<T>(
        &self,
        guard: &mut Option<Box<Session>>,
        result: Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        result.map_err(|e| {
            let err = self.target.redactor.error(classify(&e));
            if !matches!(err, StoreError::Rejected(_) | StoreError::TimedOut(_)) {
                *guard = None;
            }
            err
        })
    }

    /// [`after_migrating`](Self::after_migrating) for the other writers' connections.
    async fn writers_after_migrating(&self) {
        for slot in &self.writers {
            Self::after_migrating(&mut *slot.lock().await);
        }
    }

    /// Migrations change the tables the prepared statements name, and a
    /// failed migration may have left the connection unusable.
    fn after_migrating(guard: &mut Option<Box<Session>>) {
        match guard {
            Some(s) if !s.client.is_closed() => s.statements = None,
            _ => *guard = None,
        }
    }
}

impl Migrations for PostgresStore {
    /// Applies every pending migration, under the migration lock; returns
    /// the versions applied (empty when the schema is current). Refuses a
    /// schema newer than this binary or an applied migration that was
    /// edited ([`MigrateError::NewerSchema`], [`MigrateError::Edited`]).
    async fn migrate_up(&self) -> Result<Vec<i64>, MigrateError> {
        let mut guard = self.session.lock().await;
        let session = self.open(&mut guard).await.map_err(backend)?;
        let result = migrations::up(&mut session.client, &self.target.redactor).await;
        Self::after_migrating(&mut guard);
        self.writers_after_migrating().await;
        result
    }

    /// Reverts the `n` newest applied migrations, newest first, under the
    /// migration lock; returns the versions reverted. Reverting version 1
    /// removes every X-Ray table, `xray.schema_migrations` and (if nothing
    /// else is in it) the `xray` schema.
    async fn migrate_down(&self, n: usize) -> Result<Vec<i64>, MigrateError> {
        let mut guard = self.session.lock().await;
        let session = self.open(&mut guard).await.map_err(backend)?;
        let result = migrations::down(&mut session.client, &self.target.redactor, n).await;
        Self::after_migrating(&mut guard);
        self.writers_after_migrating().await;
        result
    }

    /// Every migration this binary knows and whether it is applied. Changes
    /// nothing; fails like [`migrate_up`](Self::migrate_up) on a newer or
    /// edited schema.
    async fn migrate_status(&self) -> Result<Vec<MigrationStatus>, MigrateError> {
        let mut guard = self.session.lock().await;
        let session = self.open(&mut guard).await.map_err(backend)?;
        let result = migrations::status(&mut session.client, &self.target.redactor).await;
        Self::after_migrating(&mut guard);
        self.writers_after_migrating().await;
        result
    }
}

fn backend(e: StoreError) -> MigrateError {
    MigrateError::Backend(e.to_string())
}

impl Store for PostgresStore {
    async fn set_model_prices(&self, prices: &[crate::cost::ModelPrice]) -> Result<(), StoreError> {
        let model: Vec<String> = prices.iter().map(|p| p.model.clone()).collect();
        let prompt: Vec<f64> = prices.iter().map(|p| p.prompt_per_million).collect();
        let completion: Vec<f64> = prices.iter().map(|p| p.completion_per_million).collect();
        let source: Vec<String> = prices.iter().map(|p| p.source.clone()).collect();
        self.with_background_client(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                tx.execute("DELETE FROM xray.model_prices", &[]).await?;
                tx.execute(
                    "INSERT INTO xray.model_prices
                         (model, prompt_usd_per_million, completion_usd_per_million, source)
                     SELECT * FROM UNNEST($1::text[], $2::float8[], $3::float8[], $4::text[])",
                    &[&model, &prompt, &completion, &source],
                )
                .await?;
                tx.commit().await
            })
        })
        .await
    }

    async fn write(&self, records: &[ShipRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut guard = self.writer().await;
        let session = self.open(&mut guard).await?;
        let result = async {
            let (client, statements) = session.prepared().await?;
            write::write_batch(client, statements, records).await
        }
        .await;
        self.settle(&mut guard, result)
    }

    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        if letters.is_empty() {
            return Ok(());
        }
        let mut guard = self.session.lock().await;
        let session = self.open(&mut guard).await?;
        let result = async {
            let (client, statements) = session.prepared().await?;
            write::write_dead_letters(client, statements, letters).await
        }
        .await;
        self.settle(&mut guard, result)
    }

    fn concurrent_writes(&self) -> usize {
        WRITE_CONNECTIONS
    }
}
