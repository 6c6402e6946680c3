//! End-to-end latency (step ended in the application → row visible in
//! PostgreSQL), with default settings on both sides, and the shipping rate
//! by payload size.
//!
//! `cargo bench -p xray-collector --bench latency`
//!
//! **Phase 1, latency.** A throw-away PostgreSQL cluster; the collector's
//! [`Shipper`] running as a daemon task (`ShipConfig::default()` with the
//! outbox path: 100 ms poll interval when the outbox is empty, batches of up
//! to 5000 rows / 8 MiB); an application thread with the SDK at its defaults
//! (`xray::Config::default().outbox(path)`: 50 ms flush interval) emitting
//! one `#[xray::step]` every 20 ms for 20 s (`XRAY_BENCH_LATENCY_STEPS`,
//! default 1000), each step its own implicit execution and returning its
//! sequence number, the time it ended being taken just after the call
//! returns; a poller querying PostgreSQL every 2 ms for steps it has not seen
//! yet and taking the time each first came back. Prints p50 / p90 / p99 /
//! max of (visible − ended); the goal is p99 ≤ 1 s.
//!
//! **Phase 2, shipping rate by size.** For inputs of about 400 B, 4 KB and
//! 40 KB of JSON (a `Query` with 3, ~38, ~390 candidates), 5000 steps
//! (`XRAY_BENCH_SIZE_STEPS`) written into an outbox and shipped with
//! `once` into the embedded SQLite store and, from a second outbox of the
//! same steps, into PostgreSQL. Prints steps/s and MB/s of input JSON.

#[path = "../tests/support/pg.rs"]
#[allow(dead_code)]
mod pg;

/// The same workload as the SDK's capture benches.
#[path = "../../xray-sdk/benches/workload/mod.rs"]
mod workload;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing_subscriber::layer::SubscriberExt;
use xray_collector::backend::{postgres::PostgresStore, AnyStore, Migrations};
use xray_collector::ship::{Metrics, ShipConfig, Shipper};

// ---------------------------------------------------------------------------
// Phase 1: latency
// ---------------------------------------------------------------------------

#[xray::step]
fn emit(seq: u64) -> u64 {
    seq
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn latency(rt: &tokio::runtime::Runtime, cluster: &pg::LocalCluster, n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let db = rt.block_on(cluster.fresh_database());
    let store = rt.block_on(PostgresStore::connect(&db.url)).unwrap();
    rt.block_on(store.migrate_up()).unwrap();

    // The SDK first, so that the outbox exists when the shipper looks.
    let (layer, guard) = xray::Config::default()
        .outbox(&outbox)
        .build()
        .expect("X-Ray starts");

    let config = ShipConfig {
        outboxes: vec![outbox.clone()],
        ..ShipConfig::default()
    };
    let (poll, flush) = (config.poll_interval, Duration::from_millis(50));
    let shipper = Shipper::new(Arc::new(store), config, Arc::new(Metrics::default()));
    let (stop_shipper, rx) = watch::channel(false);

    // The shipper's future is not `Send` (it holds the outbox's SQLite
    // connection): like the binary, run it in a `block_on`, on its own
    // thread; the PostgreSQL connections and the poller run on the runtime.
    let (seen, round_trips, ended, summary) = std::thread::scope(|scope| {
        let shipper_thread = scope.spawn(|| rt.block_on(shipper.run(rx)));
        let origin = Instant::now();
        let us = move || origin.elapsed().as_micros() as u64;

        // The poller: every 2 ms, the steps not seen yet.
        let seen: Arc<Mutex<HashMap<i64, u64>>> = Arc::default();
        let stop_poller = Arc::new(AtomicBool::new(false));
        let round_trips: Arc<Mutex<Vec<u64>>> = Arc::default();
        let poller = {
            let (seen, stop, trips) = (seen.clone(), stop_poller.clone(), round_trips.clone());
            let client = rt.block_on(db.client());
            rt.spawn(async move {
                let stmt = client
                    .prepare(
                        "SELECT (output #>> '{}')::bigint FROM xray.steps \
                     WHERE (output #>> '{}')::bigint > $1",
                    )
                    .await
                    .unwrap();
                let mut tick = tokio::time::interval(Duration::from_millis(2));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut max_seen: i64 = -1;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let sent = us();
                    let rows = client.query(&stmt, &[&max_seen]).await.unwrap();
                    let now = us();
                    trips.lock().unwrap().push(now - sent);
                    let mut seen = seen.lock().unwrap();
                    for r in rows {
                        let seq: i64 = r.get(0);
                        seen.entry(seq).or_insert(now);
                        max_seen = max_seen.max(seq);
                    }
                }
            })
        };

        // The application: one step every 20 ms.
        let subscriber = tracing_subscriber::registry().with(layer);
        let ended: Vec<u64> = tracing::subscriber::with_default(subscriber, || {
            let start = Instant::now();
            let mut ended = Vec::with_capacity(n as usize);
            for i in 0..n {
                let deadline = start + Duration::from_millis(20 * i);
                if let Some(wait) = deadline.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let seq = emit(i);
                ended.push(us());
                assert_eq!(seq, i);
            }
            ended
        });

        // Wait for the last steps to show up (at most 10 s).
        let waited = Instant::now();
        while seen.lock().unwrap().len() < n as usize && waited.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop_poller.store(true, Ordering::Relaxed);
        rt.block_on(poller).unwrap();
        stop_shipper.send(true).unwrap();
        let summary = shipper_thread.join().unwrap();
        (seen, round_trips, ended, summary)
    });
    let stats = guard.stats();
    drop(guard);

    let seen = seen.lock().unwrap();
    let mut lat: Vec<u64> = (0..n)
        .filter_map(|i| Some(seen.get(&(i as i64))?.saturating_sub(ended[i as usize])))
        .collect();
    let missing = n as usize - lat.len();
    lat.sort_unstable();
    let mut trips = round_trips.lock().unwrap().clone();
    trips.sort_unstable();
    let ms = |v: u64| v as f64 / 1000.0;
    println!("== phase 1: end-to-end latency (step ended -> row visible in PostgreSQL) ==");
    println!(
        "steps: {n} emitted, {} seen, {missing} missing; SDK captured {} / dropped {} / written {}; \
         shipper: {} outbox rows in {} batches",
        lat.len(),
        stats.captured,
        stats.dropped,
        stats.written,
        summary.rows,
        summary.batches
    );
    println!(
        "settings: SDK flush interval {flush:?} (default), collector poll interval {poll:?} (default)"
    );
    if !lat.is_empty() {
        let mean = lat.iter().sum::<u64>() as f64 / lat.len() as f64;
        println!(
            "latency ms: min {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}  \
             (goal p99 <= 1000: {})",
            ms(lat[0]),
            ms(percentile(&lat, 0.50)),
            ms(percentile(&lat, 0.90)),
            ms(percentile(&lat, 0.99)),
            ms(*lat.last().unwrap()),
            mean / 1000.0,
            if percentile(&lat, 0.99) <= 1_000_000 && missing == 0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    if !trips.is_empty() {
        println!(
            "poller: {} queries, round trip ms p50 {:.2} p99 {:.2} max {:.2}",
            trips.len(),
            ms(percentile(&trips, 0.5)),
            ms(percentile(&trips, 0.99)),
            ms(*trips.last().unwrap())
        );
    }
}

// ---------------------------------------------------------------------------
// Phase 2: shipping rate by payload size
// ---------------------------------------------------------------------------

/// Writes `n` steps capturing `q` into a new outbox at `path`, all in one
/// execution; returns the time taken and the outbox's size in bytes.
fn write_outbox(path: &Path, q: &workload::Query, n: u64) -> (Duration, u64) {
    let (layer, guard) = xray::Config::default()
        .outbox(path)
        .when_full(xray::WhenFull::Block)
        .queue_capacity(1 << 14)
        .max_payload_bytes(64 * 1024)
        .build()
        .expect("build");
    let t = Instant::now();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        xray::execution("ship-size").run(|| {
            for _ in 0..n {
                workload::choose_step(q);
            }
        })
    });
    guard.flush().expect("flush");
    let took = t.elapsed();
    let stats = guard.stats();
    assert_eq!((stats.written, stats.dropped), (n, 0), "{stats:?}");
    drop(guard);
    let bytes = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    (took, bytes)
}

fn ship_once(rt: &tokio::runtime::Runtime, store: AnyStore, outbox: &Path) -> (Duration, u64) {
    rt.block_on(store.migrate_up()).unwrap();
    let config = ShipConfig {
        outboxes: vec![outbox.to_path_buf()],
        ..ShipConfig::default()
    };
    let t = Instant::now();
    let summary = rt.block_on(Shipper::ship_once(Arc::new(store), config));
    let took = t.elapsed();
    assert_eq!(summary.dead_letters, 0);
    (took, summary.batches)
}

fn ship_by_size(rt: &tokio::runtime::Runtime, cluster: &pg::LocalCluster, n: u64) {
    println!("== phase 2: shipping rate by input size ({n} steps per size, one execution) ==");
    println!(
        "| size | input JSON | outbox | write outbox (SDK) | SQLite store (once) | PostgreSQL (once) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for factor in [1usize, 10, 100] {
        let q = workload::query_of_size(400 * factor - 50);
        let in_bytes = serde_json::to_string(&q).unwrap().len();
        let dir = tempfile::tempdir().unwrap();
        let (ob_sqlite, ob_pg) = (
            dir.path().join("a/outbox.db"),
            dir.path().join("b/outbox.db"),
        );
        std::fs::create_dir_all(ob_sqlite.parent().unwrap()).unwrap();
        std::fs::create_dir_all(ob_pg.parent().unwrap()).unwrap();
        let (write_time, outbox_bytes) = write_outbox(&ob_sqlite, &q, n);
        write_outbox(&ob_pg, &q, n);

        let store = rt
            .block_on(AnyStore::sqlite(&dir.path().join("store.db")))
            .unwrap();
        let (sqlite_time, sqlite_batches) = ship_once(rt, store, &ob_sqlite);

        let db = rt.block_on(cluster.fresh_database());
        let store = rt.block_on(AnyStore::postgres(&db.url)).unwrap();
        let (pg_time, pg_batches) = ship_once(rt, store, &ob_pg);
        let steps_size: i64 = rt.block_on(async {
            db.client()
                .await
                .query_one("SELECT pg_total_relation_size('xray.steps')", &[])
                .await
                .unwrap()
                .get(0)
        });

        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let mbs = |d: Duration| (n as f64 * in_bytes as f64) / d.as_secs_f64() / 1e6;
        println!(
            "| {factor}x | {in_bytes} B | {:.1} MiB | {:.0} steps/s | {:.0} steps/s, {:.1} MB/s ({sqlite_batches} batches) | \
             {:.0} steps/s, {:.1} MB/s ({pg_batches} batches; xray.steps {:.1} MiB) |",
            outbox_bytes as f64 / (1 << 20) as f64,
            rate(write_time),
            rate(sqlite_time),
            mbs(sqlite_time),
            rate(pg_time),
            mbs(pg_time),
            steps_size as f64 / (1 << 20) as f64,
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` and test discovery: nothing to list.
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let cluster = pg::LocalCluster::start_new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    latency(&rt, &cluster, env("XRAY_BENCH_LATENCY_STEPS", 1000));
    ship_by_size(&rt, &cluster, env("XRAY_BENCH_SIZE_STEPS", 5000));
}
