//! The embedded store's schema migrations, applied with the shared logic
//! of [`crate::migrate`].
//!
//! SQLite has no advisory locks; the migration lock is a `BEGIN EXCLUSIVE`
//! transaction around the whole run — check, apply, record — so two
//! processes opening a fresh store at once apply each migration once (the
//! second waits, up to the busy timeout, then finds nothing pending). As
//! the lock is itself a transaction, the pending migrations of one run
//! apply together: if one fails, the schema stays where it was.
//! `schema_migrations` records `applied_at_us`, microseconds since the
//! Unix epoch, like every timestamp in this store.

use rusqlite::{Connection, TransactionBehavior};

use super::SqliteStore;
use crate::backend::Migrations;
use crate::migrate::{self, Applied, MigrateError, Migration, MigrationStatus};

/// The embedded store's migrations, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        up: include_str!("migrations/0001_init.up.sql"),
        down: include_str!("migrations/0001_init.down.sql"),
    },
    Migration {
        version: 2,
        name: "outbox_identity",
        up: include_str!("migrations/0002_outbox_identity.up.sql"),
        down: include_str!("migrations/0002_outbox_identity.down.sql"),
    },
    Migration {
        version: 3,
        name: "read_indexes",
        up: include_str!("migrations/0003_read_indexes.up.sql"),
        down: include_str!("migrations/0003_read_indexes.down.sql"),
    },
    Migration {
        version: 4,
        name: "executions_by_start",
        up: include_str!("migrations/0004_executions_by_start.up.sql"),
        down: include_str!("migrations/0004_executions_by_start.down.sql"),
    },
    Migration {
        version: 5,
        name: "search_strings",
        up: include_str!("migrations/0005_search_strings.up.sql"),
        down: include_str!("migrations/0005_search_strings.down.sql"),
    },
    Migration {
        version: 6,
        name: "search_behind",
        up: include_str!("migrations/0006_search_behind.up.sql"),
        down: include_str!("migrations/0006_search_behind.down.sql"),
    },
    Migration {
        version: 7,
        name: "decisions_checked_per_statement",
        up: include_str!("migrations/0007_decisions_checked_per_statement.up.sql"),
        down: include_str!("migrations/0007_decisions_checked_per_statement.down.sql"),
    },
    Migration {
        version: 8,
        name: "stats_rollups",
        up: include_str!("migrations/0008_stats_rollups.up.sql"),
        down: include_str!("migrations/0008_stats_rollups.down.sql"),
    },
    Migration {
        version: 9,
        name: "reads_at_scale",
        up: include_str!("migrations/0009_reads_at_scale.up.sql"),
        down: include_str!("migrations/0009_reads_at_scale.down.sql"),
    },
    Migration {
        version: 10,
        name: "search_by_day",
        up: include_str!("migrations/0010_search_by_day.up.sql"),
        down: include_str!("migrations/0010_search_by_day.down.sql"),
    },
    Migration {
        version: 11,
        name: "trace_context",
        up: include_str!("migrations/0011_trace_context.up.sql"),
        down: include_str!("migrations/0011_trace_context.down.sql"),
    },
    Migration {
        version: 12,
        name: "reasoning",
        up: include_str!("migrations/0012_reasoning.up.sql"),
        down: include_str!("migrations/0012_reasoning.down.sql"),
    },
    Migration {
        version: 13,
        name: "llm_cost",
        up: include_str!("migrations/0013_llm_cost.up.sql"),
        down: include_str!("migrations/0013_llm_cost.down.sql"),
    },
    Migration {
        version: 14,
        name: "reasoning_llm",
        up: include_str!("migrations/0014_reasoning_llm.up.sql"),
        down: include_str!("migrations/0014_reasoning_llm.down.sql"),
    },
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version       INTEGER NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    checksum      TEXT    NOT NULL,
    applied_at_us INTEGER NOT NULL
) STRICT";

impl Migrations for SqliteStore {
    /// Applies the pending migrations under the migration lock and returns
    /// their versions (empty when the schema is current). Refuses a store
    /// whose schema is newer than this binary, or whose applied migration
    /// was edited since.
    async fn migrate_up(&self) -> Result<Vec<i64>, MigrateError> {
        self.with_connection(|conn| up(conn, MIGRATIONS))
            .await
            .map_err(worker_failed)?
    }

    /// Reverts the `n` most recently applied migrations, newest first,
    /// and returns their versions. Refuses, like
    /// [`migrate_up`](Self::migrate_up), a schema this binary does not know.
    /// Reverting the last one drops `schema_migrations` too; a store never
    /// migrated is left untouched.
    async fn migrate_down(&self, n: usize) -> Result<Vec<i64>, MigrateError> {
        self.with_connection(move |conn| down(conn, MIGRATIONS, n))
            .await
            .map_err(worker_failed)?
    }

    /// Every known migration and whether it is applied. Changes nothing
    /// (a store never migrated has no `schema_migrations` table and reports
    /// nothing applied).
    async fn migrate_status(&self) -> Result<Vec<MigrationStatus>, MigrateError> {
        self.with_connection(|conn| status(conn, MIGRATIONS))
            .await
            .map_err(worker_failed)?
    }
}

fn worker_failed(e: tokio::task::JoinError) -> MigrateError {
    MigrateError::Backend(format!("the embedded store's worker thread failed: {e}"))
}

fn backend(e: rusqlite::Error) -> MigrateError {
    MigrateError::Backend(e.to_string())
}

/// Applies what is pending of `known`; see the module docs for the lock.
pub(crate) fn up(conn: &mut Connection, known: &[Migration]) -> Result<Vec<i64>, MigrateError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(backend)?;
    tx.execute_batch(CREATE_MIGRATIONS_TABLE).map_err(backend)?;
    let applied = read_applied(&tx)?;
    migrate::verify(known, &applied)?;
    let mut done = Vec::new();
    for m in migrate::pending(known, &applied) {
        tx.execute_batch(m.up).map_err(|e| {
            MigrateError::Backend(format!("migration {} ({}) failed: {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at_us)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![m.version, m.name, m.checksum(), now_us()],
        )
        .map_err(backend)?;
        done.push(m.version);
    }
    tx.commit().map_err(backend)?;
    Ok(done)
}

/// Reverts the `n` newest applied migrations of `known`.
pub(crate) fn down(
    conn: &mut Connection,
    known: &[Migration],
    n: usize,
) -> Result<Vec<i64>, MigrateError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(backend)?;
    // Never migrated: nothing to revert, and nothing to create.
    if !migrations_table_exists(&tx)? {
        return Ok(Vec::new());
    }
    let applied = read_applied(&tx)?;
    migrate::verify(known, &applied)?;
    let mut done = Vec::new();
    for m in migrate::to_revert(known, &applied, n) {
        tx.execute_batch(m.down).map_err(|e| {
            MigrateError::Backend(format!(
                "reverting migration {} ({}) failed: {e}",
                m.version, m.name
            ))
        })?;
        tx.execute(
            "DELETE FROM schema_migrations WHERE version = ?1",
            [m.version],
        )
        .map_err(backend)?;
        done.push(m.version);
    }
    // With no migration left, nothing of X-Ray is: the bookkeeping table
    // goes too, leaving the file as it was before the first `migrate up`
    // (as PostgreSQL's first migration drops `xray.schema_migrations`).
    let left: i64 = tx
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .map_err(backend)?;
    if left == 0 {
        tx.execute_batch("DROP TABLE schema_migrations")
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)?;
    Ok(done)
}

/// Reports `known` against what is applied, without writing.
pub(crate) fn status(
    conn: &mut Connection,
    known: &[Migration],
) -> Result<Vec<MigrationStatus>, MigrateError> {
    let tx = conn.transaction().map_err(backend)?;
    let applied = if migrations_table_exists(&tx)? {
        read_applied(&tx)?
    } else {
        Vec::new()
    };
    migrate::verify(known, &applied)?;
    Ok(migrate::status(known, &applied))
}

fn migrations_table_exists(conn: &Connection) -> Result<bool, MigrateError> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |r| r.get(0),
    )
    .map_err(backend)
}

fn read_applied(conn: &Connection) -> Result<Vec<Applied>, MigrateError> {
    let mut stmt = conn
        .prepare("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Applied {
                version: r.get(0)?,
                name: r.get(1)?,
                checksum: r.get(2)?,
            })
        })
        .map_err(backend)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(backend)
}

pub(crate) fn now_us() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
}
