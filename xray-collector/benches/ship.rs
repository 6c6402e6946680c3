//! Shipping throughput: an outbox of N steps shipped into PostgreSQL by the
//! collector's shipper, against `psql \copy` of the same step rows, in the
//! same run, on the same throw-away cluster, into: a table of the same
//! shape (`LIKE xray.steps INCLUDING ALL`: same columns, indexes and
//! search column, where there is one) with and without the foreign key, and a
//! bare table (same columns, primary key only) — the goal's yardstick.
//!
//! Two workloads (`XRAY_BENCH_WORKLOAD`):
//! - `realistic` (default): the SDK benches' 393-byte `Query` input and
//!   `Chosen` output, three decisions per step (the price filter rejects
//!   one), every step nested in a `rank_batch` step per 100;
//! - `tiny`: `fn small(i: u64) -> u64`, 10-byte values, no decisions.
//!
//! Then the embedded store: a copy of the same outbox shipped into a fresh
//! store, against bare SQLite inserts of the same step rows (same columns,
//! primary key only, WAL and `synchronous = FULL` like the store, 5 000
//! rows per transaction); the goal there is ≥ 0.3.
//!
//! The collector also writes the decisions (three rows per realistic step):
//! the goal's yardstick on each backend is a bare copy (or bare inserts) of
//! the same rows — the steps and, copied back out of what was shipped, the
//! decisions; the ratio to the steps alone is printed beside it.
//!
//! `XRAY_BENCH_BACKEND=embedded` runs the embedded store's phase alone.
//!
//! `XRAY_BENCH_COLLECTORS=N` also ships the same number of steps from N
//! outboxes by N collectors at once into one database.
//!
//! `cargo bench -p xray-collector --bench ship` (`XRAY_BENCH_STEPS` to
//! change N, default 200 000). Prints the rates and their ratios; the goal
//! is ≥ 0.7 of the bare `\copy`. `XRAY_BENCH_PG_SQL` runs SQL on the
//! migrated database before shipping (an experiment: an index or a key
//! less, measured against the same run's yardsticks).

#[path = "../tests/support/pg.rs"]
#[allow(dead_code)]
mod pg;

/// The SDK benches' workload.
#[path = "../../xray-sdk/benches/workload/mod.rs"]
mod workload;

/// The outbox both benches ship: the workload's steps, recorded by the SDK.
#[path = "support/pipeline.rs"]
mod pipeline;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xray_collector::backend::{postgres::PostgresStore, Migrations, SearchIndex};
use xray_collector::indexing;
use xray_collector::ship::{Metrics, ShipConfig, Shipper};

use pipeline::write_outbox;

/// The outbox's step rows as CSV in the column order of `xray.steps`.
fn export_csv(outbox: &Path, csv: &Path) -> u64 {
    let conn = rusqlite::Connection::open(outbox).unwrap();
    let mut out = std::io::BufWriter::new(std::fs::File::create(csv).unwrap());
    let mut stmt = conn
        .prepare(
            "SELECT id, execution_id, parent_id, name, kind, status, input, output, error, attributes,
                    datetime(started_at_us / 1000000, 'unixepoch') || '.' || printf('%06d', started_at_us % 1000000) || '+00',
                    duration_us
             FROM xray_outbox WHERE record_type = 'step' AND phase = 'end' ORDER BY seq",
        )
        .unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut n = 0;
    let field = |v: Option<String>| match v {
        None => String::new(),
        Some(s) => format!("\"{}\"", s.replace('"', "\"\"")),
    };
    while let Some(r) = rows.next().unwrap() {
        let started: String = r.get(10).unwrap();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.get::<_, String>(0).unwrap(),
            r.get::<_, String>(1).unwrap(),
            r.get::<_, Option<String>>(2).unwrap().unwrap_or_default(),
            field(r.get(3).unwrap()),
            field(r.get(4).unwrap()),
            field(r.get(5).unwrap()),
            field(r.get(6).unwrap()),
            field(r.get(7).unwrap()),
            field(r.get(8).unwrap()),
            field(r.get(9).unwrap()),
            started,
            r.get::<_, Option<i64>>(11)
                .unwrap()
                .map(|d| d.to_string())
                .unwrap_or_default(),
        )
        .unwrap();
        n += 1;
    }
    n
}

/// The embedded store: the shipper into a fresh store against bare SQLite
/// inserts of the same step rows (same columns, primary key only, WAL and
/// `synchronous = FULL` like the store, 5 000 rows per transaction).
fn embedded_phase(rt: &tokio::runtime::Runtime, outbox: &Path, dir: &Path, n: u64) {
    let bare = dir.join("bare.db");
    let conn = rusqlite::Connection::open(&bare).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE steps (id TEXT PRIMARY KEY, execution_id TEXT NOT NULL, parent_id TEXT,
             name TEXT NOT NULL, kind TEXT, status TEXT NOT NULL, input TEXT, output TEXT,
             error TEXT, attributes TEXT, started_at_us INTEGER NOT NULL, duration_us INTEGER)",
    )
    .unwrap();
    let source = rusqlite::Connection::open(outbox).unwrap();
    let mut read = source
        .prepare(
            "SELECT id, execution_id, parent_id, name, kind, status, input, output, error,
                    attributes, started_at_us, duration_us
             FROM xray_outbox WHERE record_type = 'step' AND phase = 'end' ORDER BY seq",
        )
        .unwrap();
    type Row = (
        String,
        String,
        Option<String>,
        String,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
        Option<i64>,
    );
    let rows: Vec<Row> = read
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len() as u64, n);
    let mut conn = conn;
    let bare_time = bare_inserts(
        &mut conn,
        "INSERT INTO steps VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        &rows,
        5000,
        |insert, r| {
            insert.execute(rusqlite::params![
                r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11
            ])
        },
    );

    let store = xray_collector::backend::sqlite::SqliteStore::open(&dir.join("store.db")).unwrap();
    rt.block_on(store.migrate_up()).unwrap();
    if let Ok(sql) = std::env::var("XRAY_BENCH_SQLITE_SQL") {
        // An experiment on the embedded store's schema, as XRAY_BENCH_PG_SQL.
        eprintln!("XRAY_BENCH_SQLITE_SQL: {sql}");
        rusqlite::Connection::open(dir.join("store.db"))
            .unwrap()
            .execute_batch(&sql)
            .unwrap();
    }
    let config = ShipConfig {
        outboxes: vec![outbox.to_path_buf()],
        once: true,
        ..ShipConfig::default()
    };
    let (summary, ship_time, in_backend, searchable) = ship(rt, store, config);
    assert_eq!(summary.dead_letters, 0);

    // The decisions the collector wrote too, read back from the store and
    // inserted bare (primary key only), the decisions of 5 000 steps per
    // transaction: with the bare step inserts, all the rows shipped.
    type Decision = (
        String,
        i64,
        String,
        String,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<f64>,
    );
    let shipped = rusqlite::Connection::open(dir.join("store.db")).unwrap();
    let decisions: Vec<Decision> = shipped
        .prepare("SELECT step_id, ordinal, execution_id, candidate_id, accepted, filter, reason, score FROM decisions")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    conn.execute_batch(
        "CREATE TABLE decisions (step_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
             execution_id TEXT NOT NULL, candidate_id TEXT NOT NULL, accepted INTEGER,
             filter TEXT, reason TEXT, score REAL, PRIMARY KEY (step_id, ordinal)) WITHOUT ROWID",
    )
    .unwrap();
    let per_tx = (decisions.len() * 5000).div_ceil(n as usize).max(1);
    let all_bare_time = bare_time
        + bare_inserts(
            &mut conn,
            "INSERT INTO decisions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            &decisions,
            per_tx,
            |insert, d| insert.execute(rusqlite::params![d.0, d.1, d.2, d.3, d.4, d.5, d.6, d.7]),
        );

    // The same rows into tables made by the store's own DDL — same
    // columns, checks and indexes — without its triggers (the search notes
    // and rollups) and without foreign-key checks (the executions table is
    // there, empty, for the keys to name): what the schema alone
    // costs.
    let same = rusqlite::Connection::open(dir.join("same.db")).unwrap();
    same.pragma_update(None, "journal_mode", "WAL").unwrap();
    same.pragma_update(None, "synchronous", "FULL").unwrap();
    same.pragma_update(None, "foreign_keys", "OFF").unwrap();
    let ddl: Vec<String> = shipped
        .prepare(
            "SELECT sql FROM sqlite_master WHERE tbl_name IN ('executions', 'steps', 'decisions')
               AND type IN ('table', 'index') AND sql IS NOT NULL
             ORDER BY type = 'index', name",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for statement in &ddl {
        same.execute_batch(statement).unwrap();
    }
    let mut same = same;
    let same_time = bare_inserts(
        &mut same,
        "INSERT INTO steps (id, execution_id, parent_id, name, kind, status, input, output, error,
                            attributes, started_at_us, duration_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        &rows,
        5000,
        |insert, r| {
            insert.execute(rusqlite::params![
                r.0, r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10, r.11
            ])
        },
    ) + bare_inserts(
        &mut same,
        "INSERT INTO decisions (step_id, ordinal, execution_id, candidate_id, accepted, filter, reason, score)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        &decisions,
        per_tx,
        |insert, d| insert.execute(rusqlite::params![d.0, d.1, d.2, d.3, d.4, d.5, d.6, d.7]),
    );

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "embedded: the same rows into the store's own tables and indexes, no triggers: {:>10.0} steps/s ({same_time:.2?}); ratio of the collector to it {:.2}",
        rate(same_time),
        rate(ship_time) / rate(same_time)
    );
    println!(
        "embedded: bare SQLite inserts {:>10.0} steps/s ({bare_time:.2?}), with the {} decisions {:>10.0} steps/s ({all_bare_time:.2?}); xray-collector {:>10.0} steps/s ({ship_time:.2?}; {in_backend:.2} s of it in the store's write transactions; all found by search after {searchable:.2?}); ratio to bare inserts of the same rows {:.2} (goal >= 0.3), of the steps alone {:.2}",
        rate(bare_time),
        decisions.len(),
        rate(all_bare_time),
        rate(ship_time),
        rate(ship_time) / rate(all_bare_time),
        rate(ship_time) / rate(bare_time)
    );
}

/// Inserts `rows` by the prepared `insert`, `per_tx` rows a transaction —
/// the embedded store's bare yardstick; how long it took.
fn bare_inserts<R>(
    conn: &mut rusqlite::Connection,
    insert: &str,
    rows: &[R],
    per_tx: usize,
    bind: impl Fn(&mut rusqlite::CachedStatement<'_>, &R) -> rusqlite::Result<usize>,
) -> Duration {
    let t = Instant::now();
    for chunk in rows.chunks(per_tx) {
        let tx = conn.transaction().unwrap();
        {
            let mut stmt = tx.prepare_cached(insert).unwrap();
            for r in chunk {
                bind(&mut stmt, r).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    t.elapsed()
}

/// Runs one `psql` command against `url`, stopping at its first error.
fn psql(url: &str, command: &str) {
    let status = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", command])
        .status()
        .expect("psql (apt-get install -y postgresql-client)");
    assert!(status.success(), "psql {command} failed");
}

/// The CPU time (user and system) of the processes whose pid `which`
/// picks, from `/proc` (Linux); 0 elsewhere.
fn cpu_seconds(which: impl Fn(u32) -> bool) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let ticks: u64 = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| which(pid))
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command's closing parenthesis: state is field 3,
            // utime 14 and stime 15.
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    ticks as f64 / 100.0 // USER_HZ
}

fn is_postgres(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
}

/// Deadlocks PostgreSQL broke in `db` so far (`pg_stat_database`).
fn deadlocks(rt: &tokio::runtime::Runtime, db: &pg::TestDb) -> i64 {
    rt.block_on(async {
        db.client()
            .await
            .query_one(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    })
}

/// Samples, every 10 ms until `stop`, what the other connections to the
/// database are doing while they run a statement (`pg_stat_activity`:
/// `CPU` when not waiting, else the wait event), and returns the counts,
/// most frequent first.
async fn sample_waits(url: String, mut stop: tokio::sync::watch::Receiver<bool>) -> String {
    let client = pg::connect_plain(&url).await;
    let mut counts: std::collections::BTreeMap<String, u64> = Default::default();
    while !*stop.borrow() {
        let rows = client
            .query(
                "SELECT left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 40) || ' ' || coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'",
                &[],
            )
            .await
            .unwrap();
        for row in rows {
            *counts.entry(row.get(0)).or_default() += 1;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            _ = stop.changed() => {}
        }
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
        .iter()
        .map(|(what, n)| format!("{what} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ships once with the shipper's own metrics, the search indexer running
/// beside it as in `run`: the summary, the time taken to empty the
/// outbox, the part of it inside the backend's write transactions (the
/// sum of the shipper's batch-write histogram; the rest is reading,
/// parsing and deleting outbox rows, the next read overlapping the
/// write), and the time until everything shipped is found by search.
fn ship<S>(
    rt: &tokio::runtime::Runtime,
    store: S,
    config: ShipConfig,
) -> (xray_collector::ship::ShipSummary, Duration, f64, Duration)
where
    S: xray_collector::backend::Store + SearchIndex + 'static,
{
    let metrics = Arc::new(Metrics::default());
    let store = Arc::new(store);
    let (_never, shutdown) = tokio::sync::watch::channel(false);
    let (stop_indexer, indexer_stop) = tokio::sync::watch::channel(false);
    // XRAY_BENCH_INDEX_AFTER: an experiment, the indexer only after shipping.
    let beside = std::env::var_os("XRAY_BENCH_INDEX_AFTER").is_none();
    let indexer = rt.spawn({
        let (store, metrics) = (store.clone(), metrics.clone());
        async move {
            if beside {
                indexing::keep(&*store, &metrics, indexer_stop).await
            }
        }
    });
    let t = Instant::now();
    let summary = rt.block_on(Shipper::new(store.clone(), config, metrics.clone()).run(shutdown));
    let shipped = t.elapsed();
    rt.block_on(indexing::catch_up(&*store)).unwrap();
    let searchable = t.elapsed();
    let _ = stop_indexer.send(true); // (gone when the indexer did not run)
    rt.block_on(indexer).unwrap();
    let in_backend = metrics
        .prometheus()
        .lines()
        .find_map(|l| l.strip_prefix("xray_collector_batch_write_seconds_sum "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the batch write histogram's sum");
    (summary, shipped, in_backend, searchable)
}

fn main() {
    let Some(asked) = pipeline::steps_asked(200_000) else {
        return;
    };
    let workload = std::env::var("XRAY_BENCH_WORKLOAD").unwrap_or_else(|_| "realistic".into());
    let realistic = match workload.as_str() {
        "realistic" => true,
        "tiny" => false,
        other => panic!("XRAY_BENCH_WORKLOAD={other}: realistic or tiny"),
    };
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let csv = dir.path().join("steps.csv");
    let cluster = pg::LocalCluster::start_new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let t = Instant::now();
    let n = write_outbox(&outbox, asked, realistic);
    eprintln!(
        "wrote {n} {workload} steps into the outbox in {:.2?}",
        t.elapsed()
    );
    let exported = export_csv(&outbox, &csv);
    assert_eq!(exported, n);
    // A copy of the outbox for the embedded store's phase (shipping
    // empties the outbox).
    let second = dir.path().join("outbox-embedded.db");
    rusqlite::Connection::open(&outbox)
        .unwrap()
        .execute("VACUUM INTO ?1", [second.to_str().unwrap()])
        .unwrap();
    if std::env::var("XRAY_BENCH_BACKEND").as_deref() == Ok("embedded") {
        // Only the embedded store's phase (an experiment on it).
        return embedded_phase(&rt, &second, dir.path(), n);
    }

    let db = rt.block_on(cluster.fresh_database());
    let store = rt.block_on(PostgresStore::connect(&db.url)).unwrap();
    rt.block_on(store.migrate_up()).unwrap();
    if let Ok(sql) = std::env::var("XRAY_BENCH_PG_SQL") {
        // An experiment on the schema (an index or a key less), measured
        // in the same run as the yardsticks.
        eprintln!("XRAY_BENCH_PG_SQL: {sql}");
        rt.block_on(async { db.client().await.batch_execute(&sql).await.unwrap() });
    }

    // The collector's shipper: read, parse, upsert, delete.
    let config = ShipConfig {
        outboxes: vec![outbox.clone()],
        once: true,
        concurrent_batches: std::env::var("XRAY_BENCH_CONCURRENT_BATCHES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(ShipConfig::default().concurrent_batches),
        ..ShipConfig::default()
    };
    eprintln!("batches written at once: {}", config.concurrent_batches);
    let (stop_sampling, sampling_stop) = tokio::sync::watch::channel(false);
    let sampler = rt.spawn(sample_waits(db.url.clone(), sampling_stop));
    let cpu_before = (
        cpu_seconds(|pid| pid == std::process::id()),
        cpu_seconds(is_postgres),
    );
    let (summary, ship_time, in_backend, searchable) = ship(&rt, store, config);
    let cpu = (
        cpu_seconds(|pid| pid == std::process::id()) - cpu_before.0,
        cpu_seconds(is_postgres) - cpu_before.1,
    );
    stop_sampling.send(true).unwrap();
    let waits = rt.block_on(sampler).unwrap();
    // psql \copy of the same rows into tables of the same shape: with the
    // same foreign key to the (now shipped) execution as xray.steps, and,
    // for reference, without it.
    let mut copy_times = Vec::new();
    for (table, fk, bare) in [
        ("steps_copy", true, false),
        ("steps_copy_nofk", false, false),
        ("steps_bare", false, true),
    ] {
        rt.block_on(async {
            let client = db.client().await;
            let create = if bare {
                // Same columns (the search column a plain one, left empty),
                // primary key only.
                format!("CREATE TABLE public.{table} (LIKE xray.steps INCLUDING DEFAULTS, PRIMARY KEY (id))")
            } else {
                format!("CREATE TABLE public.{table} (LIKE xray.steps INCLUDING ALL)")
            };
            client.batch_execute(&create).await.unwrap();
            if fk {
                client
                    .batch_execute(&format!(
                        "ALTER TABLE public.{table} ADD FOREIGN KEY (execution_id) \
                         REFERENCES xray.executions (id) ON DELETE CASCADE"
                    ))
                    .await
                    .unwrap();
            }
        });
        let copy = format!(
            "\\copy public.{table} (id, execution_id, parent_id, name, kind, status, input, output, error, \
             attributes, started_at, duration_us) FROM '{}' WITH (FORMAT csv)",
            csv.display()
        );
        let t = Instant::now();
        psql(&db.url, &copy);
        copy_times.push(t.elapsed());
    }
    let (copy_time, copy_nofk_time, bare_time) = (copy_times[0], copy_times[1], copy_times[2]);
    // Everything else the collector wrote — the decisions — copied out of
    // xray.decisions and into a bare table (same columns, primary key only):
    // with the bare step copy, a bare copy of all the rows shipped.
    let decisions_csv = dir.path().join("decisions.csv");
    psql(
        &db.url,
        &format!(
            "\\copy xray.decisions TO '{}' WITH (FORMAT csv)",
            decisions_csv.display()
        ),
    );
    psql(
        &db.url,
        "CREATE TABLE public.decisions_bare (LIKE xray.decisions INCLUDING DEFAULTS, PRIMARY KEY (step_id, ordinal))",
    );
    let t = Instant::now();
    psql(
        &db.url,
        &format!(
            "\\copy public.decisions_bare FROM '{}' WITH (FORMAT csv)",
            decisions_csv.display()
        ),
    );
    let decisions_bare_time = t.elapsed();
    let decisions: i64 = rt.block_on(async {
        db.client()
            .await
            .query_one("SELECT count(*) FROM public.decisions_bare", &[])
            .await
            .unwrap()
            .get(0)
    });
    let all_bare_time = bare_time + decisions_bare_time;
    let counted: i64 = rt.block_on(async {
        db.client()
            .await
            .query_one(
                "SELECT (SELECT count(*) FROM xray.steps) - (SELECT count(*) FROM public.steps_copy)
                      + (SELECT count(*) FROM xray.steps) - (SELECT count(*) FROM public.steps_copy_nofk)
                      + (SELECT count(*) FROM xray.steps) - (SELECT count(*) FROM public.steps_bare)",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(counted, 0, "both tables must hold the same rows");
    assert_eq!(summary.dead_letters, 0);
    // Two batches are written at once; the statements' order must keep
    // them from deadlocking (each deadlock costs a second and a retry).
    let deadlocks = deadlocks(&rt, &db);

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "steps: {n} ({} outbox rows shipped in {} batches)",
        summary.rows, summary.batches
    );
    println!(
        "psql \\copy, same FK: {:>10.0} steps/s ({copy_time:.2?})",
        rate(copy_time)
    );
    println!(
        "psql \\copy, no FK:   {:>10.0} steps/s ({copy_nofk_time:.2?})",
        rate(copy_nofk_time)
    );
    println!(
        "psql \\copy, bare:    {:>10.0} steps/s ({bare_time:.2?})",
        rate(bare_time)
    );
    println!(
        "psql \\copy, bare, with the {decisions} decisions: {:>10.0} steps/s ({all_bare_time:.2?}: {decisions_bare_time:.2?} for the decisions)",
        rate(all_bare_time)
    );
    println!(
        "xray-collector:       {:>10.0} steps/s ({ship_time:.2?}; {in_backend:.2} s of it in the backend's write transactions; all found by search after {searchable:.2?})",
        rate(ship_time)
    );
    println!("deadlocks while shipping: {deadlocks}");
    println!(
        "CPU while shipping and indexing: the collector {:.2} s, PostgreSQL's processes {:.2} s (of {:.2} s on 2 cores)",
        cpu.0,
        cpu.1,
        2.0 * searchable.as_secs_f64()
    );
    println!("what the collector's connections were doing, sampled every 10 ms: {waits}");
    println!(
        "ratio xray / bare copy of the same rows (steps and decisions): {:.2} (goal >= 0.7); / bare copy of the steps alone: {:.2}; / copy of the steps with the same indexes and FK: {:.2}; without the FK: {:.2}",
        rate(ship_time) / rate(all_bare_time),
        rate(ship_time) / rate(bare_time),
        rate(ship_time) / rate(copy_time),
        rate(ship_time) / rate(copy_nofk_time)
    );
    if let Some(collectors) = std::env::var("XRAY_BENCH_COLLECTORS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|c| *c > 1)
    {
        collectors_phase(
            &rt,
            &cluster,
            dir.path(),
            collectors,
            asked,
            realistic,
            rate(ship_time),
        );
    }
    embedded_phase(&rt, &second, dir.path(), n);
}

/// `XRAY_BENCH_COLLECTORS=N`: the same number of steps in N outboxes,
/// shipped at once by N collectors (each with its own store, connections
/// and search indexer) into one fresh database; their rate together
/// against the one collector's of the same run, and the deadlocks.
fn collectors_phase(
    rt: &tokio::runtime::Runtime,
    cluster: &pg::LocalCluster,
    dir: &Path,
    collectors: u64,
    asked: u64,
    realistic: bool,
    one_rate: f64,
) {
    let outboxes: Vec<_> = (0..collectors)
        .map(|i| dir.join(format!("collector-{i}.db")))
        .collect();
    let steps: u64 = outboxes
        .iter()
        .map(|o| write_outbox(o, asked / collectors, realistic))
        .sum();
    let db = rt.block_on(cluster.fresh_database());
    let stores: Vec<_> = outboxes
        .iter()
        .map(|_| rt.block_on(PostgresStore::connect(&db.url)).unwrap())
        .collect();
    rt.block_on(stores[0].migrate_up()).unwrap();
    let t = Instant::now();
    let shipped: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .into_iter()
            .zip(&outboxes)
            .map(|(store, outbox)| {
                let config = ShipConfig {
                    outboxes: vec![outbox.clone()],
                    once: true,
                    ..ShipConfig::default()
                };
                scope.spawn(move || ship(rt, store, config))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all = t.elapsed();
    let shipped_by = shipped.iter().map(|s| s.1).max().unwrap_or_default();
    let rows: u64 = shipped.iter().map(|s| s.0.rows).sum();
    let deadlocks = deadlocks(rt, &db);
    let together = steps as f64 / shipped_by.as_secs_f64();
    println!(
        "{collectors} collectors at once: {steps} steps ({rows} outbox rows) shipped in {shipped_by:.2?} ({together:.0} steps/s together, {:.2}x the one collector's rate), all found by search after {all:.2?}; deadlocks: {deadlocks}",
        together / one_rate
    );
}
