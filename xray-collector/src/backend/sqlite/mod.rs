//! The embedded store: the backend used when no database URL is given, one
//! SQLite file (`XRAY_STORE`, default `.xray/xray.db`) with the tables of
//! the PostgreSQL schema and the same query features.
//!
//! # Guarantees
//!
//! - [`Store::write`] applies a batch in **one** `BEGIN IMMEDIATE`
//!   transaction, after [`merge_by_id`]: executions first, then steps, then
//!   the steps' decisions and LLM usage. Every row is an upsert keyed by
//!   its id, so writing the same records again changes nothing.
//! - A `start` (status `running`) never overwrites a row that already has
//!   its `end`: the upsert's `WHERE` only lets a non-`running` row replace
//!   a finished one.
//! - A step whose execution has not arrived yet gets a **placeholder**
//!   execution (`name = '(unknown)'`, `status = 'running'`,
//!   `placeholder = 1`, the step's project); the execution's own row,
//!   start or end, replaces it whenever it comes.
//! - Decisions and LLM usage are keyed by `(step_id, ordinal)` and inserted
//!   with `ON CONFLICT DO NOTHING`.
//! - Commits are durable (`synchronous = FULL`): the shipper deletes
//!   shipped rows from the outbox once `write` returns, so a commit that a
//!   power loss could undo would lose them.
//! - Errors are classified ([`classify`]): a busy or locked database and
//!   I/O failures are retriable ([`StoreError::Unavailable`]); a value the
//!   schema refuses (a `CHECK`, a type, a size) is [`StoreError::Rejected`],
//!   which the shipper dead-letters.
//! - The async methods never block the runtime: the connection sits behind
//!   a mutex and the work runs on [`tokio::task::spawn_blocking`].
//!
//! # On disk
//!
//! The file's `PRAGMA application_id` is [`APPLICATION_ID`], set when it
//! becomes a store; a file that is not a store is refused unchanged
//! (`identity.rs`). What X-Ray creates is owner-only (`private_file.rs`).
//! Tables `executions`, `steps`, `decisions`, `llm_usage`, `dead_letters`
//! and `schema_migrations`, with the PostgreSQL columns; ids are hyphenated
//! UUID text, JSON is text checked with `json_valid`, timestamps are
//! INTEGER microseconds since the Unix epoch (`started_at_us`,
//! `ended_at_us`, `duration_us`). The tables are `STRICT`. Full-text search
//! is the contentless FTS5 table `steps_fts(name,
//! input, output, error)` (keyed by the rowid alias `steps.fts_rowid`),
//! fed behind the shipper from the steps that triggers on `steps` note in
//! `search_pending` (`search_index.rs`); rank with `bm25(steps_fts)`. The schema
//! is created and changed only by the migrations in
//! `store/sqlite/migrations/` ([`SqliteStore::migrate_up`]); opening a
//! store does not migrate it.

mod error;
mod identity;
mod migrations;
mod private_file;
mod prune;
mod query;
mod read;
mod reasoning;
mod search_index;
mod write;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::ffi::ErrorCode;
use rusqlite::Connection;

pub use error::classify;
pub use identity::APPLICATION_ID;
pub use migrations::MIGRATIONS;

use crate::backend::{DeadLetter, Store, StoreError};
use crate::model::ShipRecord;

/// Where the embedded store lives when `XRAY_STORE` is not set.
pub const DEFAULT_PATH: &str = ".xray/xray.db";

/// How long a statement waits for another connection's lock before it
/// fails with `SQLITE_BUSY` (which is retriable).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The embedded SQLite backend. Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating its directory and the file if
    /// needed (owner-only, see `private_file.rs`), in WAL mode with foreign
    /// keys on and a 5 s busy timeout. An existing file must be an X-Ray
    /// store or empty (`identity.rs`): another application's database is
    /// refused with [`StoreError::Config`] and left unchanged.
    ///
    /// Does not create or check the schema: call
    /// [`migrate_up`](Self::migrate_up) first. Blocks briefly (file system
    /// and a possible wait for another process switching the file to WAL).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.exists() {
            private_file::create(path).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", path.display()))
            })?;
        }
        SqliteStore::open_existing(path)
    }

    /// Opens the store at `path` like [`open`](Self::open), but never
    /// creates it: a missing file is a [`StoreError::Config`] (what the
    /// reading commands want — a mistyped `--store` is said, not answered
    /// with an empty store left behind).
    pub fn open_existing(path: &Path) -> Result<SqliteStore, StoreError> {
        if !path.exists() {
            return Err(StoreError::Config(format!(
                "no store at {}: nothing was shipped there yet (ship with `xray-collector run`, \
                 or point --store / XRAY_STORE or --database-url at your traces)",
                path.display()
            )));
        }
        let found = identity::recognise(path)?;
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| at_path(path, &e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| at_path(path, &e))?;
        if found == identity::Found::ToStamp {
            identity::stamp(&conn).map_err(|e| at_path(path, &e))?;
        }
        configure(&conn).map_err(|e| at_path(path, &e))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                conn: Mutex::new(conn),
            }),
        })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` with the connection on a blocking thread, so the async
    /// runtime is never blocked. `Err` only if `work` panicked.
    pub(crate) async fn with_connection<T, F>(&self, work: F) -> Result<T, tokio::task::JoinError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> T + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            // A panic while the lock was held unwound through rusqlite's
            // `Transaction`, which rolled back: the connection is usable.
            let mut conn = inner
                .conn
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&mut conn)
        })
        .await
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // The busy timeout first: switching to WAL needs a lock another
    // process opening the same file may hold.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode = switch_to_wal(conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
            Some(format!(
                "cannot switch the store to WAL mode (journal_mode is {mode})"
            )),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Statement journals (every upsert that fires the search triggers opens
    // one) in memory, not in temporary files: they were most of a
    // shipped batch's time (BENCHMARKS.md, issue 12).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Sets `journal_mode = WAL`, retrying while another connection holds the
/// lock: SQLite skips the busy handler for this change when two
/// connections open a fresh file at once, so the busy timeout alone does
/// not cover it.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            result => return result,
        }
    }
}

fn at_path(path: &Path, e: &rusqlite::Error) -> StoreError {
    match classify(e) {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{}: {m}", path.display())),
        StoreError::Rejected(m) => StoreError::Rejected(format!("{}: {m}", path.display())),
        StoreError::Schema(m) => StoreError::Schema(format!("{}: {m}", path.display())),
        StoreError::Config(m) => StoreError::Config(format!("{}: {m}", path.display())),
        StoreError::TimedOut(m) => StoreError::TimedOut(format!("{}: {m}", path.display())),
        StoreError::Other(m) => StoreError::Other(format!("{}: {m}", path.display())),
    }
}

fn worker_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Other(format!("the embedded store's worker thread failed: {e}"))
}

impl Store for SqliteStore {
    async fn set_model_prices(&self, prices: &[crate::cost::ModelPrice]) -> Result<(), StoreError> {
        let prices = prices.to_vec();
        self.read(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM model_prices", [])?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO model_prices
                         (model, prompt_usd_per_million, completion_usd_per_million, source)
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                for p in &prices {
                    insert.execute(rusqlite::params![
                        p.model,
                        p.prompt_per_million,
                        p.completion_per_million,
                        p.source
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn write(&self, records: &[ShipRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let batch = write::Batch::of(records);
        if batch.is_empty() {
            return Ok(());
        }
        self.with_connection(move |conn| write::write_batch(conn, &batch))
            .await
            .map_err(worker_failed)?
            .map_err(|e| classify(&e))
    }

    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        if letters.is_empty() {
            return Ok(());
        }
        let letters = letters.to_vec();
        self.with_connection(move |conn| write::dead_letters(conn, &letters))
            .await
            .map_err(worker_failed)?
            .map_err(|e| classify(&e))
    }
}
