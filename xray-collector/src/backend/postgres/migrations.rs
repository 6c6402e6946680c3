//! The PostgreSQL migrations and the runner, following the order in
//! [`crate::migrate`]: advisory lock → ensure `xray.schema_migrations` →
//! load applied → [`migrate::verify`] → apply or revert, each migration in
//! its own transaction together with its `schema_migrations` row → unlock.
//!
//! The lock is a session-level advisory lock with a fixed key
//! ([`MIGRATION_LOCK_KEY`]): a second collector migrating at the same time
//! waits, then finds nothing left to do. It is released on every path —
//! explicitly, and by PostgreSQL itself if the connection dies.

use tokio_postgres::Client;

use crate::migrate::{self, Applied, MigrateError, Migration, MigrationStatus};

use super::classify::describe;
use super::password::Redactor;

/// The schema's migrations, oldest first.
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

/// The advisory-lock key every collector migrates under: the bytes of
/// `"xraymigr"`, so it is recognisable in `pg_locks`.
pub const MIGRATION_LOCK_KEY: i64 = i64::from_be_bytes(*b"xraymigr");

const ENSURE_TABLE: &str = "CREATE SCHEMA IF NOT EXISTS xray;
     CREATE TABLE IF NOT EXISTS xray.schema_migrations (
         version    bigint      PRIMARY KEY,
         name       text        NOT NULL,
         checksum   text        NOT NULL,
         applied_at timestamptz NOT NULL DEFAULT now()
     );";

/// Turns a tokio-postgres error into a [`MigrateError`] saying what was
/// being done, password hidden.
struct Context<'a> {
    redactor: &'a Redactor,
}

impl Context<'_> {
    fn fail(&self, doing: &str, e: &tokio_postgres::Error) -> MigrateError {
        MigrateError::Backend(self.redactor.scrub(&format!("{doing}: {}", describe(e))))
    }
}

/// Applies every pending migration; returns the versions applied.
pub(crate) async fn up(client: &mut Client, redactor: &Redactor) -> Result<Vec<i64>, MigrateError> {
    let cx = Context { redactor };
    lock(client, &cx).await?;
    let result = up_locked(client, &cx).await;
    unlock(client, &cx, result).await
}

/// Reverts the `n` newest applied migrations; returns the versions reverted.
pub(crate) async fn down(
    client: &mut Client,
    redactor: &Redactor,
    n: usize,
) -> Result<Vec<i64>, MigrateError> {
    let cx = Context { redactor };
    lock(client, &cx).await?;
    let result = down_locked(client, &cx, n).await;
    unlock(client, &cx, result).await
}

/// Every known migration and whether it is applied (changes nothing).
pub(crate) async fn status(
    client: &mut Client,
    redactor: &Redactor,
) -> Result<Vec<MigrationStatus>, MigrateError> {
    let cx = Context { redactor };
    lock(client, &cx).await?;
    let result = status_locked(client, &cx).await;
    unlock(client, &cx, result).await
}

/// Waits for the migration lock.
async fn lock(client: &Client, cx: &Context<'_>) -> Result<(), MigrateError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(|e| cx.fail("cannot take the migration lock", &e))?;
    Ok(())
}

/// Releases the migration lock whatever the work under it returned. A
/// failed transaction's rollback was queued before this (tokio-postgres
/// sends it when the transaction is dropped), so it runs first.
async fn unlock<T>(
    client: &Client,
    cx: &Context<'_>,
    result: Result<T, MigrateError>,
) -> Result<T, MigrateError> {
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(|e| cx.fail("cannot release the migration lock", &e));
    // The work's own error says more than the unlock's.
    let value = result?;
    unlocked?;
    Ok(value)
}

async fn up_locked(client: &mut Client, cx: &Context<'_>) -> Result<Vec<i64>, MigrateError> {
    client
        .batch_execute(ENSURE_TABLE)
        .await
        .map_err(|e| cx.fail("cannot create xray.schema_migrations", &e))?;
    let applied = load_applied(client, cx).await?;
    migrate::verify(MIGRATIONS, &applied)?;
    let mut done = Vec::new();
    for m in migrate::pending(MIGRATIONS, &applied) {
        let doing = format!("migration {} ({}) failed", m.version, m.name);
        let tx = client
            .transaction()
            .await
            .map_err(|e| cx.fail(&doing, &e))?;
        tx.batch_execute(m.up)
            .await
            .map_err(|e| cx.fail(&doing, &e))?;
        tx.execute(
            "INSERT INTO xray.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[&m.version, &m.name, &m.checksum()],
        )
        .await
        .map_err(|e| cx.fail(&doing, &e))?;
        tx.commit().await.map_err(|e| cx.fail(&doing, &e))?;
        done.push(m.version);
    }
    Ok(done)
}

async fn down_locked(
    client: &mut Client,
    cx: &Context<'_>,
    n: usize,
) -> Result<Vec<i64>, MigrateError> {
    if !table_exists(client, cx).await? {
        return Ok(Vec::new());
    }
    let applied = load_applied(client, cx).await?;
    migrate::verify(MIGRATIONS, &applied)?;
    let mut done = Vec::new();
    for m in migrate::to_revert(MIGRATIONS, &applied, n) {
        let doing = format!("reverting migration {} ({}) failed", m.version, m.name);
        let tx = client
            .transaction()
            .await
            .map_err(|e| cx.fail(&doing, &e))?;
        // The row goes first: the first migration's down drops the
        // bookkeeping table itself once no version is left in it.
        tx.execute(
            "DELETE FROM xray.schema_migrations WHERE version = $1",
            &[&m.version],
        )
        .await
        .map_err(|e| cx.fail(&doing, &e))?;
        tx.batch_execute(m.down)
            .await
            .map_err(|e| cx.fail(&doing, &e))?;
        tx.commit().await.map_err(|e| cx.fail(&doing, &e))?;
        done.push(m.version);
    }
    Ok(done)
}

async fn status_locked(
    client: &mut Client,
    cx: &Context<'_>,
) -> Result<Vec<MigrationStatus>, MigrateError> {
    let applied = if table_exists(client, cx).await? {
        load_applied(client, cx).await?
    } else {
        Vec::new()
    };
    migrate::verify(MIGRATIONS, &applied)?;
    Ok(migrate::status(MIGRATIONS, &applied))
}

async fn table_exists(client: &Client, cx: &Context<'_>) -> Result<bool, MigrateError> {
    let row = client
        .query_one(
            "SELECT to_regclass('xray.schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| cx.fail("cannot look for xray.schema_migrations", &e))?;
    Ok(row.get(0))
}

async fn load_applied(client: &Client, cx: &Context<'_>) -> Result<Vec<Applied>, MigrateError> {
    let rows = client
        .query(
            "SELECT version, name, checksum FROM xray.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(|e| cx.fail("cannot read xray.schema_migrations", &e))?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            version: r.get(0),
            name: r.get(1),
            checksum: r.get(2),
        })
        .collect())
}
