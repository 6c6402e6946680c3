//! The backend a shipping scenario runs against: the embedded store in a
//! temp dir, or a fresh database on the test PostgreSQL server.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::outbox::StoreCounts;
use super::pg::TestDb;

/// Where the collector under test ships to.
pub enum Target {
    /// The embedded SQLite store.
    Embedded {
        /// Keeps the directory alive.
        _dir: tempfile::TempDir,
        /// The store file.
        path: PathBuf,
    },
    /// A fresh PostgreSQL database.
    Postgres {
        /// The database (dropped with the target on external servers).
        db: TestDb,
        /// For the checks' queries.
        rt: tokio::runtime::Runtime,
    },
}

impl Target {
    /// An embedded store in a new temp dir (in a subdirectory that does not
    /// exist yet: the collector creates it).
    pub fn embedded() -> Target {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store/xray.db");
        Target::Embedded { _dir: dir, path }
    }

    /// A fresh database on the test server.
    pub fn postgres() -> Target {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = rt.block_on(super::pg::fresh_database());
        Target::Postgres { db, rt }
    }

    /// Points a collector command at this backend.
    pub fn configure(&self, cmd: &mut Command) {
        match self {
            Target::Embedded { path, .. } => {
                cmd.env_remove("DATABASE_URL").env("XRAY_STORE", path);
            }
            Target::Postgres { db, .. } => {
                cmd.env("DATABASE_URL", &db.url);
            }
        }
    }

    /// The flags naming this backend on a command line (`--store PATH` or
    /// `--database-url URL`), for commands given no backend environment.
    pub fn flags(&self) -> Vec<String> {
        match self {
            Target::Embedded { path, .. } => vec!["--store".into(), path.display().to_string()],
            Target::Postgres { db, .. } => vec!["--database-url".into(), db.url.clone()],
        }
    }

    pub fn query_i64(&self, sql_embedded: &str, sql_postgres: &str) -> Vec<i64> {
        match self {
            Target::Embedded { path, .. } => {
                if !path.exists() {
                    return Vec::new();
                }
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .unwrap();
                let Ok(mut stmt) = conn.prepare(sql_embedded) else {
                    return Vec::new();
                };
                stmt.query_map([], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            Target::Postgres { db, rt } => rt.block_on(async {
                let client = db.client().await;
                match client.query(sql_postgres, &[]).await {
                    Ok(rows) => rows.iter().map(|r| r.get::<_, i64>(0)).collect(),
                    Err(_) => Vec::new(),
                }
            }),
        }
    }

    fn count(&self, table: &str) -> i64 {
        self.query_i64(
            &format!("SELECT count(*) FROM {table}"),
            &format!("SELECT count(*)::bigint FROM xray.{table}"),
        )
        .first()
        .copied()
        .unwrap_or(0)
    }

    /// Row counts of every table (zeros before the schema exists).
    pub fn counts(&self) -> StoreCounts {
        StoreCounts {
            executions: self.count("executions"),
            steps: self.count("steps"),
            decisions: self.count("decisions"),
            llm_usage: self.count("llm_usage"),
            dead_letters: self.count("dead_letters"),
        }
    }

    /// The sorted step outputs of a PostgreSQL database.
    pub fn outputs_of(rt: &tokio::runtime::Runtime, db: &TestDb) -> Vec<u64> {
        rt.block_on(async {
            let client = db.client().await;
            let rows = client
                .query(
                    "SELECT (output #>> '{}')::bigint FROM xray.steps ORDER BY 1",
                    &[],
                )
                .await
                .unwrap();
            rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect()
        })
    }

    /// Every step's output (the tests' steps return a number), sorted.
    pub fn outputs(&self) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .query_i64(
                "SELECT CAST(output AS INTEGER) FROM steps",
                "SELECT (output #>> '{}')::bigint FROM xray.steps",
            )
            .into_iter()
            .map(|v| v as u64)
            .collect();
        out.sort_unstable();
        out
    }

    /// The reasons in the dead-letter table.
    pub fn dead_letter_reasons(&self) -> Vec<String> {
        match self {
            Target::Embedded { path, .. } => super::outbox::dead_letter_reasons(path),
            Target::Postgres { db, rt } => rt.block_on(async {
                let client = db.client().await;
                let rows = client
                    .query("SELECT reason FROM xray.dead_letters ORDER BY seq", &[])
                    .await
                    .unwrap();
                rows.iter().map(|r| r.get::<_, String>(0)).collect()
            }),
        }
    }

    /// Runs `sql_embedded` on the embedded store's file, or `sql_postgres`
    /// on the database (the schema must exist: run `migrate up` first).
    pub fn execute(&self, sql_embedded: &str, sql_postgres: &str) {
        match self {
            Target::Embedded { path, .. } => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql_embedded)
                .unwrap(),
            Target::Postgres { db, rt } => {
                rt.block_on(async { db.client().await.batch_execute(sql_postgres).await.unwrap() })
            }
        }
    }

    /// Installs a user's trigger on the steps table that refuses, with
    /// `message`, every step named `name`: `RAISE(ABORT)` on the embedded
    /// store, `RAISE EXCEPTION … USING ERRCODE = 'P0001'` on PostgreSQL (a
    /// SQLSTATE of no class the collector knows).
    pub fn refuse_steps_named(&self, name: &str, message: &str) {
        self.execute(
            &format!(
                "CREATE TRIGGER users_own_refusal BEFORE INSERT ON steps                  WHEN new.name = '{name}' BEGIN SELECT RAISE(ABORT, '{message}'); END;"
            ),
            &format!(
                "CREATE FUNCTION xray.users_own_refusal() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                     IF NEW.name = '{name}' THEN
                         RAISE EXCEPTION '{message}' USING ERRCODE = 'P0001';
                     END IF;
                     RETURN NEW;
                 END $$;
                 CREATE TRIGGER users_own_refusal BEFORE INSERT OR UPDATE ON xray.steps
                 FOR EACH ROW EXECUTE FUNCTION xray.users_own_refusal();"
            ),
        );
    }

    /// Appends to `outbox` a row that parses but that this backend refuses:
    /// an empty name for the embedded store (a CHECK), a start 292,000
    /// years after 1970 for PostgreSQL (out of `timestamptz`'s range).
    pub fn append_poison_row(&self, outbox: &Path) {
        match self {
            Target::Embedded { .. } => {
                super::outbox::append_raw_step(outbox, "", "ok", "{\"x\":1}")
            }
            Target::Postgres { .. } => {
                super::outbox::append_raw_step_at(outbox, "far", "ok", "{\"x\":1}", i64::MAX)
            }
        }
    }

    /// Everything this backend holds, as bytes to search: the store file
    /// and its WAL, or the text of every row of every table of the `xray`
    /// schema (what `pg_dump --data-only` would print, row by row).
    pub fn dump(&self) -> Vec<u8> {
        match self {
            Target::Embedded { path, .. } => {
                let mut bytes = std::fs::read(path).unwrap_or_default();
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                bytes.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
                bytes
            }
            Target::Postgres { db, rt } => rt.block_on(async {
                let client = db.client().await;
                let tables = client
                    .query(
                        "SELECT table_name::text FROM information_schema.tables \
                         WHERE table_schema = 'xray' AND table_type = 'BASE TABLE'",
                        &[],
                    )
                    .await
                    .unwrap();
                let mut bytes = Vec::new();
                for table in tables {
                    let name: String = table.get(0);
                    let rows = client
                        .query(&format!("SELECT t::text FROM xray.{name} t"), &[])
                        .await
                        .unwrap();
                    for row in rows {
                        bytes.extend(row.get::<_, String>(0).into_bytes());
                        bytes.push(b'\n');
                    }
                }
                bytes
            }),
        }
    }
}
