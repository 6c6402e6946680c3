//! Load tool: sustained capture against bare rusqlite, drop rate, memory.
//!
//! ```sh
//! cargo run --release -p xray-sdk --example load -- sustained --threads 4
//! cargo run --release -p xray-sdk --example load -- drop --threads 4 --sustained 150000
//! cargo run --release -p xray-sdk --example load -- memory --threads 4
//! ```
//!
//! Modes (one per process: X-Ray is installed as the global subscriber):
//!
//! - `sustained [--steps N] [--threads T]`: N steps (default 1 000 000) in
//!   executions of 100 steps under `WhenFull::Block`, then `guard.flush()`;
//!   steps/s from the first step to durable. In the same process, the bare
//!   baseline: T producer threads serialize the same input and output with
//!   `serde_json` and build the same rows (UUIDs, timestamps), one writer
//!   thread inserts them with a prepared statement in transactions of 4096
//!   rows into a table with the outbox's DDL (WAL, `synchronous = NORMAL`,
//!   last commit `synchronous = FULL`) — the shape of X-Ray's pipeline.
//! - `drop --sustained R [--factor F] [--seconds S] [--threads T]`: default
//!   `drop` policy, producers paced to F × R steps/s (default F = 2) for S
//!   seconds (default 5); captured, dropped, drop rate.
//! - `memory [--steps N] [--threads T] [--record-bytes B] [--queue Q]`: N steps under
//!   `WhenFull::Block`, queue capacity Q (default 65 536, the SDK's default), sampling VmRSS / VmHWM; then counts the step
//!   ends in the outbox. The bound is (queue capacity + writer batch) × B
//!   (default 530, measured by `record-size`) + 8 MiB.
//!
//! Before measuring, the tool waits until the machine has been idle for 3 s
//! (set `LOAD_NO_WAIT=1` to skip), and every phase prints the CPU time used
//! by other processes while it ran.
//!
//! - `record-size [--threads T]`: holds the outbox's write lock so the
//!   writer cannot commit, lets the producers fill the queue, and divides
//!   the RSS growth by the records held: the measured size of a queued
//!   record, for the memory mode's worst case.
//!
//! `--xray-first` runs X-Ray before the baseline in `sustained` (default:
//! baseline first). `--dir PATH` puts the databases there (default: a temp dir in the system
//! temp directory).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing_subscriber::prelude::*;

/// Steps per execution.
const STEPS_PER_EXECUTION: u64 = 100;
/// Rows per transaction of the bare baseline (X-Ray's writer: `MAX_BATCH`).
const BARE_BATCH: usize = 4096;
/// X-Ray's default queue capacity (records), `Config::default()`.
const DEFAULT_QUEUE_CAPACITY: u64 = 65_536;
/// The writer's batch (`MAX_BATCH` in `xray-sdk/src/outbox/writer.rs`).
const WRITER_BATCH: u64 = 4096;
/// What the memory bound allows beyond the records held: SQLite's page cache
/// (2 MiB by default), its statement cache, thread stacks, allocator slack.
const MEMORY_CONSTANT_MIB: u64 = 8;
/// Distinct inputs per thread (reused round-robin).
const POOL: usize = 1024;

/// The step's input: three fields, about 150 bytes of JSON.
#[derive(Serialize, Debug, Clone)]
struct Offer {
    sku: String,
    title: String,
    price: f64,
}

fn offers(thread: usize) -> Vec<Offer> {
    (0..POOL)
        .map(|i| Offer {
            sku: format!("B0{thread:02}{i:07}"),
            title: format!(
                "Stainless steel insulated water bottle, 750 ml, leak-proof lid, colour {:03}, pack of {}",
                i % 1000,
                1 + i % 4
            ),
            price: 9.99 + (i % 500) as f64 * 0.25,
        })
        .collect()
}

#[xray::step]
fn score_offer(offer: &Offer) -> f64 {
    offer.price * 0.9 + offer.title.len() as f64
}

/// The input as X-Ray captures it: `{"offer": {...}}`, serialized directly.
#[derive(Serialize)]
struct Input<'a> {
    offer: &'a Offer,
}

/// The same body, uninstrumented (for the baseline).
fn score_plain(offer: &Offer) -> f64 {
    offer.price * 0.9 + offer.title.len() as f64
}

// ---------------------------------------------------------------- options

struct Opts {
    mode: String,
    steps: u64,
    threads: usize,
    sustained: Option<f64>,
    factor: f64,
    seconds: f64,
    dir: Option<PathBuf>,
    xray_first: bool,
    record_bytes: f64,
    queue: u64,
}

fn parse() -> Opts {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let mut o = Opts {
        mode,
        steps: 1_000_000,
        threads: 1,
        sustained: None,
        factor: 2.0,
        seconds: 5.0,
        dir: None,
        xray_first: false,
        record_bytes: 530.0,
        queue: DEFAULT_QUEUE_CAPACITY,
    };
    while let Some(a) = args.next() {
        let mut v = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--steps" => o.steps = v().parse().unwrap_or_else(|_| usage("bad --steps")),
            "--threads" => o.threads = v().parse().unwrap_or_else(|_| usage("bad --threads")),
            "--sustained" => {
                o.sustained = Some(v().parse().unwrap_or_else(|_| usage("bad --sustained")))
            }
            "--factor" => o.factor = v().parse().unwrap_or_else(|_| usage("bad --factor")),
            "--seconds" => o.seconds = v().parse().unwrap_or_else(|_| usage("bad --seconds")),
            "--dir" => o.dir = Some(PathBuf::from(v())),
            "--xray-first" => o.xray_first = true,
            "--record-bytes" => {
                o.record_bytes = v().parse().unwrap_or_else(|_| usage("bad --record-bytes"))
            }
            "--queue" => o.queue = v().parse().unwrap_or_else(|_| usage("bad --queue")),
            other => usage(&format!("unknown option {other}")),
        }
    }
    if o.threads == 0 {
        usage("--threads must be at least 1");
    }
    o
}

fn usage(msg: &str) -> ! {
    eprintln!("load: {msg}");
    eprintln!(
        "usage: load sustained [--steps N] [--threads T]\n       load drop --sustained STEPS_PER_S [--factor F] [--seconds S] [--threads T]\n       load memory [--steps N] [--threads T] [--record-bytes B]\n       load record-size [--threads T]\n       (all: [--dir PATH])"
    );
    std::process::exit(2)
}

// ---------------------------------------------------------------- helpers

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn uuid7() -> String {
    let now = now_us();
    let random: [u8; 10] = std::array::from_fn(|_| fastrand::u8(..));
    uuid::Builder::from_unix_timestamp_millis((now / 1000) as u64, &random)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// CPU seconds used so far by the whole machine (all cores) and by this
/// process, from `/proc/stat` and `/proc/self/stat` (USER_HZ = 100).
#[derive(Clone, Copy)]
struct Cpu {
    machine: f64,
    me: f64,
    at: Instant,
}

fn cpu() -> Cpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    let me_stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = me_stat.rsplit(')').next().unwrap_or("");
    let f: Vec<i64> = after
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // After the ')': state ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime stime; the state letter does not parse.
    let me = (f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0)).max(0);
    Cpu {
        machine: busy as f64 / 100.0,
        me: me as f64 / 100.0,
        at: Instant::now(),
    }
}

/// "this process X CPU-s, others Y CPU-s over Z s": others near 0 means the
/// figure was taken on a quiet machine.
fn cpu_since(c: Cpu) -> String {
    let n = cpu();
    format!(
        "wall {:.2} s, this process {:.2} CPU-s, other processes {:.2} CPU-s",
        c.at.elapsed().as_secs_f64(),
        n.me - c.me,
        ((n.machine - c.machine) - (n.me - c.me)).max(0.0)
    )
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Splits `n` steps into whole executions per thread.
fn executions_per_thread(n: u64, threads: usize) -> u64 {
    n.div_ceil(STEPS_PER_EXECUTION).div_ceil(threads as u64)
}

fn install(outbox: &Path, when_full: xray::WhenFull, queue: u64) -> xray::Guard {
    let (layer, guard) = xray::Config::default()
        .outbox(outbox)
        .when_full(when_full)
        .queue_capacity(queue as usize)
        .build()
        .expect("build X-Ray");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("install the subscriber");
    guard
}

/// Runs `executions` executions of 100 steps on each of `threads` threads;
/// `pace` (steps/s per thread) spaces the executions when set.
fn produce_xray(threads: usize, executions: u64, pace: Option<f64>) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let pool = offers(t);
                let mut k = 0usize;
                let t0 = Instant::now();
                for e in 0..executions {
                    if let Some(rate) = pace {
                        let due =
                            t0 + Duration::from_secs_f64((e * STEPS_PER_EXECUTION) as f64 / rate);
                        wait_until(due);
                    }
                    xray::execution("load").run(|| {
                        for _ in 0..STEPS_PER_EXECUTION {
                            black_box(score_offer(black_box(&pool[k % POOL])));
                            k += 1;
                        }
                    });
                }
            });
        }
    });
    start.elapsed()
}

fn wait_until(due: Instant) {
    loop {
        let now = Instant::now();
        if now >= due {
            return;
        }
        let left = due - now;
        if left > Duration::from_micros(1500) {
            std::thread::sleep(left - Duration::from_millis(1));
        } else {
            std::hint::spin_loop();
        }
    }
}

fn print_stats(s: &xray::Stats) {
    println!(
        "  stats: captured {} | dropped {} (queue full {}, outbox full {}, write failed {}) | written {} | other records dropped {} | records written {} | batches {} | executions {}",
        s.captured,
        s.dropped,
        s.dropped_queue_full,
        s.dropped_outbox_full,
        s.dropped_write_failed,
        s.written,
        s.other_records_dropped,
        s.records_written,
        s.batches,
        s.executions
    );
}

fn outbox_summary(path: &Path) -> (i64, i64, f64, f64) {
    let conn = rusqlite::Connection::open(path).expect("open outbox");
    let ends: i64 = conn
        .query_row(
            "SELECT count(*) FROM xray_outbox WHERE phase = 'end' AND record_type = 'step'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM xray_outbox", [], |r| r.get(0))
        .expect("count");
    let (input, output): (f64, f64) = conn
        .query_row(
            "SELECT avg(length(input)), avg(length(output)) FROM xray_outbox WHERE record_type = 'step' AND phase = 'end'",
            [],
            |r| Ok((r.get::<_, Option<f64>>(0)?.unwrap_or(0.0), r.get::<_, Option<f64>>(1)?.unwrap_or(0.0))),
        )
        .expect("avg");
    (ends, rows, input, output)
}

fn file_mib(path: &Path) -> f64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    (size(path) + size(&wal)) as f64 / (1024.0 * 1024.0)
}

// ---------------------------------------------------------------- baseline

/// One row as X-Ray's writer binds it (only the columns X-Ray fills here).
struct Row {
    record_type: &'static str,
    id: String,
    execution_id: String,
    parent_id: Option<String>,
    name: &'static str,
    input: Option<String>,
    output: Option<String>,
    outcome: Option<String>,
    started_at_us: i64,
    duration_us: i64,
}

/// Bare rusqlite: T producers serialize and build rows, one writer inserts
/// them in transactions of 4096. Returns the elapsed time to durable.
fn bare(path: &Path, threads: usize, executions: u64) -> (Duration, u64) {
    let mut conn = rusqlite::Connection::open(path).expect("open bare db");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("wal");
    assert!(mode.eq_ignore_ascii_case("wal"));
    conn.execute_batch("PRAGMA synchronous = NORMAL")
        .expect("sync");
    conn.execute_batch(xray::outbox::SCHEMA).expect("schema");
    // Chunks of one execution (100 steps + the execution's row); the channel
    // holds at most as many rows as X-Ray's default queue holds records.
    let per_chunk = STEPS_PER_EXECUTION as usize + 1;
    let (tx, rx) =
        crossbeam_channel::bounded::<Vec<Row>>(DEFAULT_QUEUE_CAPACITY as usize / per_chunk);
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let pid = i64::from(std::process::id());
        let mut rows = 0u64;
        let mut pending: Vec<Row> = Vec::with_capacity(BARE_BATCH + per_chunk);
        let commit = |conn: &mut rusqlite::Connection, batch: &mut Vec<Row>, sync: bool| {
            if sync {
                conn.execute_batch("PRAGMA synchronous = FULL")
                    .expect("sync");
            }
            let tx = conn.transaction().expect("begin");
            let written = now_us();
            {
                let mut st = tx
                    .prepare_cached(xray_outbox::insert_sql())
                    .expect("prepare");
                for r in batch.drain(..) {
                    use rusqlite::ToSql;
                    use xray_outbox::Column;
                    let ended_at = r.started_at_us + r.duration_us;
                    // The same columns every row: the others stay NULL.
                    let values: [(Column, &dyn ToSql); 15] = [
                        (Column::RecordType, &r.record_type),
                        (Column::Phase, &"end"),
                        (Column::Id, &r.id),
                        (Column::ExecutionId, &r.execution_id),
                        (Column::ParentId, &r.parent_id),
                        (Column::Project, &"default"),
                        (Column::Name, &r.name),
                        (Column::Status, &"ok"),
                        (Column::Input, &r.input),
                        (Column::Output, &r.output),
                        (Column::Outcome, &r.outcome),
                        (Column::StartedAtUs, &r.started_at_us),
                        (Column::EndedAtUs, &ended_at),
                        (Column::DurationUs, &r.duration_us),
                        (Column::Pid, &pid),
                    ];
                    for (column, value) in values {
                        let at = column.parameter().expect("a written column");
                        st.raw_bind_parameter(at, value).expect("bind");
                    }
                    let at = Column::WrittenAtUs.parameter().expect("a written column");
                    st.raw_bind_parameter(at, written).expect("bind");
                    st.raw_execute().expect("insert");
                }
            }
            tx.commit().expect("commit");
        };
        for chunk in rx {
            rows += chunk.len() as u64;
            pending.extend(chunk);
            if pending.len() >= BARE_BATCH {
                let mut batch: Vec<Row> = pending.drain(..BARE_BATCH).collect();
                commit(&mut conn, &mut batch, false);
            }
        }
        commit(&mut conn, &mut pending, true);
        rows
    });
    std::thread::scope(|s| {
        for t in 0..threads {
            let tx = tx.clone();
            s.spawn(move || {
                let pool = offers(t);
                let mut k = 0usize;
                for _ in 0..executions {
                    let exec_id = uuid7();
                    let exec_start = now_us();
                    let mut chunk = Vec::with_capacity(per_chunk);
                    for _ in 0..STEPS_PER_EXECUTION {
                        let offer = black_box(&pool[k % POOL]);
                        k += 1;
                        let started = now_us();
                        let input = serde_json::to_string(&Input { offer }).expect("json");
                        let out = black_box(score_plain(offer));
                        let output = serde_json::to_string(&out).expect("json");
                        let duration = now_us() - started;
                        chunk.push(Row {
                            record_type: "step",
                            id: uuid7(),
                            execution_id: exec_id.clone(),
                            parent_id: None,
                            name: "score_offer",
                            input: Some(input),
                            output: Some(output),
                            outcome: None,
                            started_at_us: started,
                            duration_us: duration,
                        });
                    }
                    chunk.push(Row {
                        record_type: "execution",
                        id: exec_id.clone(),
                        execution_id: exec_id,
                        parent_id: None,
                        name: "load",
                        input: None,
                        output: None,
                        outcome: Some(
                            serde_json::json!({"steps": STEPS_PER_EXECUTION, "failed_steps": 0})
                                .to_string(),
                        ),
                        started_at_us: exec_start,
                        duration_us: now_us() - exec_start,
                    });
                    tx.send(chunk).expect("send");
                }
            });
        }
    });
    drop(tx);
    let rows = writer.join().expect("writer");
    (start.elapsed(), rows)
}

// ---------------------------------------------------------------- modes

fn sustained(o: &Opts, dir: &Path) {
    let executions = executions_per_thread(o.steps, o.threads);
    let steps = executions * STEPS_PER_EXECUTION * o.threads as u64;

    // Both sides in one process; the order is an option (`--xray-first`) so
    // that an order effect (page cache, disk write-back) shows.
    let bare_path = dir.join("bare.db");
    let run_bare = || {
        let c = cpu();
        let r = bare(&bare_path, o.threads, executions);
        (r, cpu_since(c))
    };
    let mut bare_result = None;
    if !o.xray_first {
        bare_result = Some(run_bare());
    }
    let outbox = dir.join("outbox.db");
    let guard = install(&outbox, xray::WhenFull::Block, o.queue);
    let c = cpu();
    let start = Instant::now();
    let produced = produce_xray(o.threads, executions, None);
    let flush_start = Instant::now();
    guard.flush().expect("flush");
    let flush = flush_start.elapsed();
    let elapsed = start.elapsed();
    let xray_cpu = cpu_since(c);
    let stats = guard.stats();
    let rate = steps as f64 / elapsed.as_secs_f64();
    let ((bare_elapsed, bare_rows), bare_cpu) = bare_result.unwrap_or_else(run_bare);
    let (bare_ends, _, bare_in, bare_out) = outbox_summary(&bare_path);
    let bare_rate = steps as f64 / bare_elapsed.as_secs_f64();
    let (ends, rows, xin, xout) = outbox_summary(&outbox);

    println!("== sustained capture: {steps} steps, {} thread(s), executions of {STEPS_PER_EXECUTION} steps, WhenFull::Block ==", o.threads);
    println!(
        "  dir: {} | order: {}",
        dir.display(),
        if o.xray_first {
            "X-Ray first, then bare"
        } else {
            "bare first, then X-Ray"
        }
    );
    println!(
        "| side | time to durable (s) | steps/s | step ends in db | rows in db | avg input / output bytes | db + wal MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| bare rusqlite ({} producers -> 1 writer, tx of {BARE_BATCH}) | {:.2} | {:.0} | {} | {} | {:.0} / {:.0} | {:.0} |",
        o.threads,
        bare_elapsed.as_secs_f64(),
        bare_rate,
        bare_ends,
        bare_rows,
        bare_in,
        bare_out,
        file_mib(&bare_path)
    );
    println!(
        "| X-Ray (block) | {:.2} (producing {:.2}, flush {:.2}) | {:.0} | {} | {} | {:.0} / {:.0} | {:.0} |",
        elapsed.as_secs_f64(),
        produced.as_secs_f64(),
        flush.as_secs_f64(),
        rate,
        ends,
        rows,
        xin,
        xout,
        file_mib(&outbox)
    );
    print_stats(&stats);
    println!("  CPU, bare:  {bare_cpu}");
    println!("  CPU, X-Ray: {xray_cpu}");
    println!(
        "  ratio xray / bare = {:.2} (goal >= 0.7); dropped = {} (goal 0) -> {}",
        rate / bare_rate,
        stats.dropped,
        if rate / bare_rate >= 0.7 && stats.dropped == 0 && ends as u64 == steps {
            "HOLDS"
        } else {
            "MISSED"
        }
    );
}

fn drop_rate(o: &Opts, dir: &Path) {
    let sustained = o
        .sustained
        .unwrap_or_else(|| usage("drop needs --sustained STEPS_PER_S (from the sustained mode)"));
    let target = sustained * o.factor;
    let total = (target * o.seconds) as u64;
    let executions = executions_per_thread(total, o.threads);
    let steps = executions * STEPS_PER_EXECUTION * o.threads as u64;
    let outbox = dir.join("outbox.db");
    let guard = install(&outbox, xray::WhenFull::Drop, o.queue);
    let c = cpu();
    let produced = produce_xray(o.threads, executions, Some(target / o.threads as f64));
    let offered = steps as f64 / produced.as_secs_f64();
    guard.flush().expect("flush");
    let stats = guard.stats();
    let used = cpu_since(c);
    let (ends, _, _, _) = outbox_summary(&outbox);
    println!(
        "== drop rate: WhenFull::Drop, {} thread(s), target {:.0} steps/s = {} x {:.0} for {:.1} s ==",
        o.threads, target, o.factor, sustained, o.seconds
    );
    println!("| steps produced | producing time (s) | offered steps/s | captured | written | dropped | drop rate | step ends in db |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.2} | {:.0} | {} | {} | {} | {:.1} % | {} |",
        steps,
        produced.as_secs_f64(),
        offered,
        stats.captured,
        stats.written,
        stats.dropped,
        100.0 * stats.dropped as f64 / steps as f64,
        ends
    );
    print_stats(&stats);
    println!("  CPU: {used}");
    if offered < 0.95 * target {
        println!(
            "  NOTE: the producers reached only {:.0} steps/s ({:.2} x sustained), not the target",
            offered,
            offered / sustained
        );
    }
}

/// Measures what queued records cost: holds the outbox's write lock from
/// another connection so that the writer cannot commit, lets the producers
/// fill the queue (`WhenFull::Block`, block timeout raised to 60 s so that
/// nothing is dropped while they wait), and divides the RSS growth by the
/// records held (queue + the batch the writer holds).
fn record_size(o: &Opts, dir: &Path) {
    let outbox = dir.join("outbox.db");
    let (layer, guard) = xray::Config::default()
        .outbox(&outbox)
        .when_full(xray::WhenFull::Block)
        .block_timeout(Duration::from_secs(60))
        .build()
        .expect("build X-Ray");
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("install the subscriber");
    xray::execution("warmup").run(|| {
        black_box(score_offer(&offers(99)[0]));
    });
    guard.flush().expect("flush");
    let lock = rusqlite::Connection::open(&outbox).expect("open outbox");
    lock.execute_batch("BEGIN IMMEDIATE").expect("lock");
    std::thread::sleep(Duration::from_millis(200));
    let before = guard.stats();
    let (rss_base, _) = rss_kib();
    // 200 000 steps: far more than the queue holds; producers block.
    let executions = executions_per_thread(200_000, o.threads);
    let producers = {
        let threads = o.threads;
        std::thread::spawn(move || produce_xray(threads, executions, None))
    };
    std::thread::sleep(Duration::from_millis(1500));
    let (rss_full, _) = rss_kib();
    let held = guard.stats();
    lock.execute_batch("ROLLBACK").expect("unlock");
    producers.join().expect("producers");
    guard.flush().expect("flush");
    let after = guard.stats();
    let steps = held.captured - before.captured;
    let execs = held.executions - before.executions;
    // A step (an execution) that ends while its start record is still
    // queued is one record: its end rides on the start. The writer, held
    // off, takes no start before its step ends (but the first batch).
    let records = steps + execs;
    let growth = rss_full.saturating_sub(rss_base) as f64 * 1024.0;
    println!(
        "== record size: writer held off by a write lock, {} producer thread(s), default queue capacity {DEFAULT_QUEUE_CAPACITY} ==",
        o.threads
    );
    println!("| steps ended while held | executions started | records held (queue + writer's batch) | RSS growth MiB | bytes / record | bytes / step |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {steps} | {execs} | ~{records} | {:.1} | {:.0} | {:.0} |",
        growth / 1048576.0,
        growth / records as f64,
        growth / steps.max(1) as f64
    );
    println!(
        "  queue worst case at this size: {DEFAULT_QUEUE_CAPACITY} x {:.0} B = {:.1} MiB",
        growth / records as f64,
        DEFAULT_QUEUE_CAPACITY as f64 * growth / records as f64 / 1048576.0
    );
    print_stats(&after);
}

fn memory(o: &Opts, dir: &Path) {
    let executions = executions_per_thread(o.steps, o.threads);
    let steps = executions * STEPS_PER_EXECUTION * o.threads as u64;
    let outbox = dir.join("outbox.db");
    let (rss_start, _) = rss_kib();
    let guard = install(&outbox, xray::WhenFull::Block, o.queue);
    // One warm-up execution per thread's worth of code paths, then settle.
    xray::execution("warmup").run(|| {
        black_box(score_offer(&offers(99)[0]));
    });
    guard.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    let (rss_base, _) = rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss_base));
    let samples = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak, samples) = (stop.clone(), peak.clone(), samples.clone());
        std::thread::spawn(move || {
            let mut trace = Vec::new();
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let (rss, _) = rss_kib();
                peak.fetch_max(rss, Ordering::Relaxed);
                let n = samples.fetch_add(1, Ordering::Relaxed);
                if n % 100 == 0 {
                    trace.push((t0.elapsed().as_secs_f64(), rss));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            trace
        })
    };
    let c = cpu();
    let produced = produce_xray(o.threads, executions, None);
    let (rss_end_produce, _) = rss_kib();
    guard.flush().expect("flush");
    let used = cpu_since(c);
    let (rss_after_flush, _) = rss_kib();
    stop.store(true, Ordering::Relaxed);
    let trace = sampler.join().expect("sampler");
    let stats = guard.stats();
    drop(guard);
    std::thread::sleep(Duration::from_millis(200));
    let (rss_after, hwm) = rss_kib();
    let peak = peak.load(Ordering::Relaxed).max(hwm);
    let (ends, rows, input, output) = outbox_summary(&outbox);
    // The warm-up execution added one step.
    let expected = steps + 1;

    // Record size as measured by the `record-size` mode (`--record-bytes`);
    // the worst case holds a full queue plus the batch the writer works on.
    let record = o.record_bytes;
    let queue = o.queue;
    let worst = (queue + WRITER_BATCH) as f64 * record / 1024.0; // KiB
    let bound = worst + (MEMORY_CONSTANT_MIB * 1024) as f64;
    let growth = peak.saturating_sub(rss_base);

    println!(
        "== memory: {steps} steps, {} thread(s), WhenFull::Block, queue capacity {queue} records, nothing shipping ==",
        o.threads
    );
    println!("| point | VmRSS MiB |");
    println!("|---|---:|");
    println!("| process start | {:.1} |", mib(rss_start));
    println!(
        "| after build + warm-up (baseline) | {:.1} |",
        mib(rss_base)
    );
    for (t, rss) in &trace {
        println!("| during, t = {t:.1} s | {:.1} |", mib(*rss));
    }
    println!(
        "| end of production ({:.2} s) | {:.1} |",
        produced.as_secs_f64(),
        mib(rss_end_produce)
    );
    println!("| after flush | {:.1} |", mib(rss_after_flush));
    println!("| after guard dropped | {:.1} |", mib(rss_after));
    println!(
        "| **peak (max of samples, VmHWM)** | **{:.1}** |",
        mib(peak)
    );
    println!(
        "  peak - baseline = {:.1} MiB; worst case held = ({queue} queue + {WRITER_BATCH} batch) x {record:.0} B = {:.1} MiB; bound = that + {MEMORY_CONSTANT_MIB} MiB = {:.1} MiB -> {}",
        mib(growth),
        mib(worst as u64),
        mib(bound as u64),
        if (growth as f64) <= bound { "HOLDS" } else { "MISSED" }
    );
    println!("  (rows: input {input:.0} B, output {output:.0} B of JSON on average)");
    println!(
        "  outbox: {ends} step ends (expected {expected} = {steps} + 1 warm-up step), {rows} rows, {:.0} MiB -> {}",
        file_mib(&outbox),
        if ends as u64 == expected {
            "all there"
        } else {
            "MISSING STEPS"
        }
    );
    print_stats(&stats);
    println!("  CPU (capture to durable): {used}");
}

/// Waits (at most 10 minutes) until the machine has been idle for 3 s in a
/// row (other processes using under 5 % of one core), so that a figure is not
/// taken while something else runs on the 2 cores.
fn wait_quiet() {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut quiet_since = Instant::now();
    loop {
        let c = cpu();
        std::thread::sleep(Duration::from_millis(500));
        let n = cpu();
        let others = (n.machine - c.machine) - (n.me - c.me);
        if others > 0.05 * 0.5 {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_secs(3) {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("load: the machine did not become quiet in 10 minutes; measuring anyway");
            return;
        }
    }
}

fn main() {
    let o = parse();
    if std::env::var_os("LOAD_NO_WAIT").is_none() {
        let t = Instant::now();
        wait_quiet();
        eprintln!(
            "load: machine quiet after {:.0} s of waiting",
            t.elapsed().as_secs_f64()
        );
    }
    let tmp;
    let dir = match &o.dir {
        Some(d) => {
            std::fs::create_dir_all(d).expect("create --dir");
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().expect("temp dir");
            tmp.path().to_path_buf()
        }
    };
    match o.mode.as_str() {
        "sustained" => sustained(&o, &dir),
        "drop" => drop_rate(&o, &dir),
        "memory" => memory(&o, &dir),
        "record-size" => record_size(&o, &dir),
        other => usage(&format!("unknown mode {other:?}")),
    }
}
