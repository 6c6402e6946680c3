//! The backend a parity scenario runs on: a store behind [`AnyStore`], and
//! a second, raw connection to the same database for what the traits do
//! not show (row snapshots, the tables left, tampering with the migration
//! bookkeeping, deleting an execution by hand).
//!
//! What the two backends are allowed to do differently is declared here,
//! once, and nowhere else: the extra tables of SQLite's search index, the
//! wording of a CHECK violation, the record each schema refuses, and what
//! becomes of a NUL character in a dead letter.

use std::path::PathBuf;

use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio_postgres::Client;
use uuid::Uuid;
use xray_collector::backend::{postgres, sqlite, AnyStore, Migrations};
use xray_collector::migrate::Migration;
use xray_collector::model::ShipRecord;

use crate::support::pg::{self, TestDb};
use crate::support::records::step;

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The embedded SQLite store, in a temp dir.
    Embedded,
    /// A fresh database on the test PostgreSQL server.
    Postgres,
}

/// A store under test and a raw look into its database.
pub struct Backend {
    /// The store, as the collector sees it.
    pub store: AnyStore,
    raw: Raw,
}

enum Raw {
    Embedded {
        /// Keeps the directory alive.
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres {
        db: TestDb,
        /// Connected on first use: many scenarios look only through the
        /// store, and a login costs tens of milliseconds in a debug build.
        /// Boxed: a `Client` is large.
        client: Box<OnceCell<Client>>,
    },
}

/// A row of the dead-letter table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLetter {
    pub outbox_id: Uuid,
    pub outbox: String,
    pub seq: i64,
    pub record: Value,
    pub reason: String,
}

impl Backend {
    /// A new store with no schema yet (before `migrate up`).
    pub async fn unmigrated(kind: Kind) -> Backend {
        match kind {
            Kind::Embedded => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("xray.db");
                let store = AnyStore::sqlite(&path).await.expect("open the store");
                Backend {
                    store,
                    raw: Raw::Embedded { _dir: dir, path },
                }
            }
            Kind::Postgres => {
                let db = pg::fresh_database().await;
                let store = AnyStore::postgres(&db.url).await.expect("connect");
                Backend {
                    store,
                    raw: Raw::Postgres {
                        db,
                        client: Box::default(),
                    },
                }
            }
        }
    }

    /// Another store on the same database, as a second process opens it
    /// (the API server's own).
    pub async fn another_store(&self) -> AnyStore {
        match &self.raw {
            Raw::Embedded { path, .. } => AnyStore::sqlite(path).await.expect("open the store"),
            Raw::Postgres { db, .. } => AnyStore::postgres(&db.url).await.expect("connect"),
        }
    }

    /// A new, migrated, empty store.
    pub async fn migrated(kind: Kind) -> Backend {
        let backend = Backend::unmigrated(kind).await;
        backend.store.migrate_up().await.expect("migrate up");
        backend
    }

    /// The migrations this backend's binary knows.
    pub fn known_migrations(&self) -> &'static [Migration] {
        match self.raw {
            Raw::Embedded { .. } => sqlite::MIGRATIONS,
            Raw::Postgres { .. } => postgres::MIGRATIONS,
        }
    }

    // ----- What the backends may do differently -----

    /// Tables and views the backend adds to the common ones: the search
    /// index's (FTS5's table, PostgreSQL's `step_search`), the notes behind
    /// it, and the view each rollups migration reads through.
    pub fn backend_tables(&self) -> &'static [&'static str] {
        match self.raw {
            Raw::Embedded { .. } => &["finished_steps", "search_pending", "steps_fts"],
            // step_search_other: the search index's default partition (its
            // day partitions come with the steps indexed).
            Raw::Postgres { .. } => &[
                "rollup_widths",
                "search_pending",
                "step_search",
                "step_search_other",
            ],
        }
    }

    /// How the database words a CHECK constraint refusing a row.
    pub fn check_violation(&self) -> &'static str {
        match self.raw {
            Raw::Embedded { .. } => "CHECK constraint failed",
            Raw::Postgres { .. } => "violates check constraint",
        }
    }

    /// A step this backend's schema refuses although every field has its
    /// type (statuses are enums, so an unknown one cannot be written), and
    /// how the database words the refusal: an empty name breaks the
    /// embedded store's CHECK; PostgreSQL, which has no such CHECK yet (see
    /// `store.rs`), cannot hold a start 292,000 years after 1970 (a NUL
    /// character, which it cannot hold either, is stored flagged instead).
    pub fn refused_step(&self, id: Uuid, execution: Uuid) -> (ShipRecord, &'static str) {
        match self.raw {
            Raw::Embedded { .. } => (
                step(id, execution).name("").record(),
                "CHECK constraint failed",
            ),
            Raw::Postgres { .. } => (step(id, execution).at(i64::MAX).record(), "out of range"),
        }
    }

    /// What a NUL character in a dead letter is stored as: PostgreSQL's
    /// `jsonb` and `text` cannot hold one, so it becomes U+FFFD there.
    pub fn stored_nul(&self) -> char {
        match self.raw {
            Raw::Embedded { .. } => '\0',
            Raw::Postgres { .. } => '\u{FFFD}',
        }
    }

    // ----- Looking -----

    /// The first column of every row `sql` returns; `{xray}` in it stands
    /// for where X-Ray's tables live (see [`Backend::execute`]).
    async fn column<T>(&self, sql: &str) -> Vec<T>
    where
        T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>,
    {
        match &self.raw {
            Raw::Embedded { path, .. } => {
                let conn = raw_sqlite(path);
                let mut stmt = conn.prepare(&sql.replace("{xray}", "")).unwrap();
                let values = stmt.query_map([], |r| r.get(0)).unwrap();
                values.collect::<Result<_, _>>().unwrap()
            }
            Raw::Postgres { db, client } => {
                let client = client.get_or_init(|| db.client()).await;
                pg::column(client, &sql.replace("{xray}", "xray.")).await
            }
        }
    }

    /// The SQL for this backend, where the two differ.
    pub fn either<'a>(&self, embedded: &'a str, postgres: &'a str) -> &'a str {
        match self.raw {
            Raw::Embedded { .. } => embedded,
            Raw::Postgres { .. } => postgres,
        }
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        self.column(&format!("SELECT count(*) FROM {{xray}}{table}"))
            .await[0]
    }

    /// Every row of every table, minus when it was written, in a fixed
    /// order: equal snapshots mean nothing changed.
    pub async fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (table, order) in [
            ("executions", "id"),
            ("steps", "id"),
            ("decisions", "step_id, ordinal"),
            ("llm_usage", "step_id, ordinal"),
            ("dead_letters", "outbox_id, seq"),
        ] {
            let rows: Vec<String> = match &self.raw {
                Raw::Embedded { path, .. } => {
                    let conn = raw_sqlite(path);
                    let mut stmt = conn
                        .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
                        .unwrap();
                    let kept: Vec<usize> = (0..stmt.column_count())
                        .filter(|&i| stmt.column_name(i).unwrap() != "created_at_us")
                        .collect();
                    let rows = stmt
                        .query_map([], |r| {
                            let values: Vec<String> = kept
                                .iter()
                                .map(|&i| format!("{:?}", r.get_ref(i).unwrap()))
                                .collect();
                            Ok(values.join(" | "))
                        })
                        .unwrap();
                    rows.collect::<Result<_, _>>().unwrap()
                }
                Raw::Postgres { .. } => {
                    self.column(&format!(
                        "SELECT (to_jsonb(t) - 'updated_at' - 'created_at')::text \
                         FROM xray.{table} t ORDER BY {order}"
                    ))
                    .await
                }
            };
            out.extend(rows.into_iter().map(|row| format!("{table}: {row}")));
        }
        out
    }

    /// X-Ray's tables, by name (PostgreSQL: those of schema `xray`; SQLite:
    /// the file's, without the search index's own shadow tables).
    pub async fn tables(&self) -> Vec<String> {
        self.column(self.either(
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'steps_fts_%' ORDER BY name",
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'xray' ORDER BY 1",
        ))
        .await
    }

    /// Whether anything of the schema is left: PostgreSQL's `xray`
    /// namespace (even empty); in SQLite, where the file is the namespace,
    /// any table.
    pub async fn schema_exists(&self) -> bool {
        match self.raw {
            Raw::Embedded { .. } => !self.tables().await.is_empty(),
            Raw::Postgres { .. } => {
                self.column("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'xray')")
                    .await[0]
            }
        }
    }

    /// The versions `schema_migrations` records, oldest first.
    pub async fn recorded_versions(&self) -> Vec<i64> {
        self.column("SELECT version FROM {xray}schema_migrations ORDER BY version")
            .await
    }

    /// Whether another session could take the migration lock now
    /// (PostgreSQL: the advisory lock; SQLite: an exclusive transaction).
    pub async fn migration_lock_is_free(&self) -> bool {
        match &self.raw {
            Raw::Embedded { path, .. } => {
                let conn = Connection::open(path).unwrap();
                let free = conn.execute_batch("BEGIN EXCLUSIVE").is_ok();
                let _ = conn.execute_batch("ROLLBACK");
                free
            }
            Raw::Postgres { .. } => {
                let key = postgres::MIGRATION_LOCK_KEY;
                let free = self
                    .column(&format!("SELECT pg_try_advisory_lock({key})"))
                    .await[0];
                self.execute(&format!("SELECT pg_advisory_unlock({key})"))
                    .await;
                free
            }
        }
    }

    /// Execution `id`'s `trace_id`, `parent_span_id` and `span_id`.
    pub async fn execution_trace(&self, id: Uuid) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for column in ["trace_id", "parent_span_id", "span_id"] {
            out.extend(
                self.column(&format!(
                    "SELECT {column} FROM {{xray}}executions WHERE id = '{id}'"
                ))
                .await,
            );
        }
        out
    }

    /// Step `id`'s `span_id`.
    pub async fn step_span(&self, id: Uuid) -> String {
        self.column::<String>(&format!(
            "SELECT span_id FROM {{xray}}steps WHERE id = '{id}'"
        ))
        .await[0]
            .clone()
    }

    /// Every LLM usage row's `(model, cost_usd)`, by model.
    pub async fn costs(&self) -> Vec<(String, Option<f64>)> {
        let models: Vec<String> = self
            .column("SELECT model FROM {xray}llm_usage ORDER BY model, step_id")
            .await;
        let costs: Vec<Option<f64>> = self
            .column("SELECT cost_usd FROM {xray}llm_usage ORDER BY model, step_id")
            .await;
        models.into_iter().zip(costs).collect()
    }

    /// Every reasoning job as `status method attempts`, by step id.
    pub async fn reasoning_jobs(&self) -> Vec<String> {
        self.column(
            "SELECT status || ' ' || method || ' ' || attempts FROM {xray}reasoning_jobs \
             ORDER BY step_id",
        )
        .await
    }

    /// Every reasoning job as `status method attempts model prompt
    /// completion error` (`-` for none), by step id.
    pub async fn llm_jobs(&self) -> Vec<String> {
        self.column(
            "SELECT status || ' ' || method || ' ' || attempts || ' ' || coalesce(model, '-') \
                 || ' ' || coalesce(prompt_tokens, -1) || ' ' || coalesce(completion_tokens, -1) \
                 || ' ' || coalesce(error, '-') \
             FROM {xray}reasoning_jobs ORDER BY step_id",
        )
        .await
    }

    /// Every reasoning job's `cost_usd`, by step id.
    pub async fn llm_job_costs(&self) -> Vec<Option<f64>> {
        self.column("SELECT cost_usd FROM {xray}reasoning_jobs ORDER BY step_id")
            .await
    }

    /// Whether execution `id` is a placeholder.
    pub async fn is_placeholder(&self, id: Uuid) -> bool {
        self.column(&format!(
            "SELECT placeholder FROM {{xray}}executions WHERE id = '{id}'"
        ))
        .await[0]
    }

    /// Step `id`'s start as stored, in µs since the epoch (PostgreSQL
    /// stores a `timestamptz`).
    pub async fn stored_step_start_us(&self, id: Uuid) -> i64 {
        self.column(&format!(
            "SELECT {} FROM {{xray}}steps WHERE id = '{id}'",
            self.either(
                "started_at_us",
                "(extract(epoch FROM started_at) * 1000000)::bigint"
            )
        ))
        .await[0]
    }

    /// The dead-letter table, by outbox and seq.
    pub async fn dead_letters(&self) -> Vec<StoredLetter> {
        let rows: Vec<String> = self
            .column(self.either(
                "SELECT json_array(outbox_id, outbox, seq, json(record), reason) \
                 FROM dead_letters ORDER BY outbox, seq, outbox_id",
                "SELECT jsonb_build_array(outbox_id, outbox, seq, record, reason)::text \
                 FROM xray.dead_letters ORDER BY outbox, seq, outbox_id",
            ))
            .await;
        rows.iter()
            .map(|row| {
                let (outbox_id, outbox, seq, record, reason) = serde_json::from_str(row).unwrap();
                StoredLetter {
                    outbox_id,
                    outbox,
                    seq,
                    record,
                    reason,
                }
            })
            .collect()
    }

    // ----- Changing the database behind the store's back -----

    /// Writes an execution and one step with `input` (JSON text) by plain
    /// SQL, as any schema version since 1 takes them.
    pub async fn insert_raw_step(&self, execution: Uuid, step: Uuid, input: &str) {
        let input = input.replace('\'', "''");
        self.execute(&format!(
            "{}; {}",
            self.either(
                "INSERT INTO executions (id, project, name, status, started_at_us)
                 VALUES ('{execution}', 'shop', 'raw', 'ok', 1)",
                "INSERT INTO {xray}executions (id, project, name, status, started_at)
                 VALUES ('{execution}', 'shop', 'raw', 'ok', now())",
            )
            .replace("{execution}", &execution.to_string()),
            self.either(
                "INSERT INTO steps (id, execution_id, name, status, input, started_at_us)
                 VALUES ('{step}', '{execution}', 'raw', 'ok', '{input}', 1)",
                "INSERT INTO {xray}steps (id, execution_id, name, status, input, started_at)
                 VALUES ('{step}', '{execution}', 'raw', 'ok', '{input}', now())",
            )
            .replace("{step}", &step.to_string())
            .replace("{execution}", &execution.to_string())
            .replace("{input}", &input),
        ))
        .await
    }

    /// Marks `step`'s reasoning job failed as an LLM reasoner that gave up
    /// leaves it: method `llm`, 3 attempts, `error`, not completed.
    pub async fn fail_reasoning_job(&self, step: Uuid, error: &str) {
        self.execute(&format!(
            "UPDATE {{xray}}reasoning_jobs SET status = 'failed', method = 'llm', attempts = 3, \
             error = '{}', {} = NULL WHERE step_id = '{step}'",
            error.replace('\'', "''"),
            self.either("completed_at_us", "completed_at"),
        ))
        .await
    }

    /// Steps the search index of schema version 5 (indexed as steps were
    /// written) finds for `word`, a plain lowercase word.
    pub async fn found_by_version_5_index(&self, word: &str) -> i64 {
        assert!(word.chars().all(|c| c.is_ascii_lowercase()), "{word}");
        self.column(
            &self
                .either(
                    "SELECT count(*) FROM steps_fts WHERE steps_fts MATCH '{word}'",
                    "SELECT count(*) FROM {xray}steps WHERE search @@ plainto_tsquery('simple', '{word}')",
                )
                .replace("{word}", word),
        )
        .await[0]
    }

    /// The bucket of every day rollup of the steps, by step name.
    pub async fn rollup_buckets(&self) -> Vec<i64> {
        self.column("SELECT bucket FROM {xray}step_rollups WHERE width = 'day' ORDER BY name")
            .await
    }

    /// Runs `sql` on the raw connection; `{xray}` in it stands for where
    /// X-Ray's tables live (`xray.` on PostgreSQL, nothing on SQLite).
    pub async fn execute(&self, sql: &str) {
        match &self.raw {
            Raw::Embedded { path, .. } => raw_sqlite(path)
                .execute_batch(&sql.replace("{xray}", ""))
                .unwrap(),
            Raw::Postgres { db, client } => client
                .get_or_init(|| db.client())
                .await
                .batch_execute(&sql.replace("{xray}", "xray."))
                .await
                .unwrap(),
        }
    }

    /// Stores a dead letter as version 1 of the schema did (keyed by path).
    pub async fn insert_version_1_dead_letter(&self, outbox: &str, seq: i64) {
        // SQLite's `dead_letters` has no default for when it was stored.
        let (column, value) = match self.raw {
            Raw::Embedded { .. } => (", created_at_us", ", 0"),
            Raw::Postgres { .. } => ("", ""),
        };
        self.execute(&format!(
            "INSERT INTO {{xray}}dead_letters (outbox, seq, record, reason{column}) \
             VALUES ('{outbox}', {seq}, '{{}}', 'from version 1'{value})"
        ))
        .await;
    }

    /// Records `version` as applied, as a newer collector would have.
    pub async fn record_migration(&self, version: i64) {
        // SQLite's `schema_migrations` has no default for when it was applied.
        let (column, value) = match self.raw {
            Raw::Embedded { .. } => (", applied_at_us", ", 0"),
            Raw::Postgres { .. } => ("", ""),
        };
        self.execute(&format!(
            "INSERT INTO {{xray}}schema_migrations (version, name, checksum{column}) \
             VALUES ({version}, 'from_the_future', 'x'{value})"
        ))
        .await;
    }
}

/// A second, independent connection to an embedded store's file.
fn raw_sqlite(path: &std::path::Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn
}
