//! Criterion bench `scaling`: how the cost of one `#[xray::step]` call on the
//! calling thread grows with the size of what it captures.
//!
//! The workload is the one of `benches/step.rs` (a `Query` with candidates
//! scored by a cheap body returning a small `Chosen`), with the number of
//! candidates chosen so that the input is about 400 B (1×), 4 KB (10×) and
//! 40 KB (100×) of JSON; the output stays about 50 B.
//!
//! | variant | what is measured |
//! |---|---|
//! | `serialization_floor/N` | the plain function + `serde_json::to_string` of input and output |
//! | `xray_capturing_drained/N` | the `#[xray::step]` function capturing into an outbox, all calls children of one `xray::execution`, timed in bursts of 1024 calls with `guard.flush()` (untimed) between bursts |
//!
//! Between bursts (untimed) the bench also deletes the written rows from the
//! outbox, as the collector does after shipping them, so that the outbox
//! stays small whatever the number of iterations criterion picks (at 40 KB a
//! step, a few seconds of measurement would otherwise write gigabytes).
//! `max_payload_bytes` is the default 64 KiB, so the 40 KB input is stored
//! whole; the bench checks that nothing was dropped.
//!
//! ```text
//! cargo bench -p xray-sdk --bench scaling -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tracing_subscriber::layer::SubscriberExt;

mod workload;

use workload::{choose_plain, choose_step, pick, query_of_size as query};

/// Calls per timed burst.
const BURST: u64 = 1024;

/// Queue capacity (records): a burst queues 2 × 1024 records, and the
/// queue is drained between bursts.
const QUEUE: usize = 1 << 16;

fn scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("scaling");
    for factor in [1usize, 10, 100] {
        let q = query(400 * factor - 50);
        let in_bytes = serde_json::to_string(&q).unwrap().len();
        let out_bytes = serde_json::to_string(&pick(&q)).unwrap().len();
        eprintln!(
            "scaling {factor}x: {} candidates, input {in_bytes} bytes of JSON, output {out_bytes} bytes",
            q.candidates.len()
        );
        let id = format!("{factor}x");

        group.bench_function(BenchmarkId::new("serialization_floor", &id), |b| {
            b.iter(|| {
                let q = black_box(&q);
                let input = serde_json::to_string(q).expect("serializable");
                let out = choose_plain(q);
                let output = serde_json::to_string(&out).expect("serializable");
                black_box((input, output, out))
            })
        });

        let dir = tempfile::tempdir().expect("temp dir");
        let outbox = dir.path().join("outbox.db");
        let (layer, guard) = xray::Config::default()
            .outbox(&outbox)
            .queue_capacity(QUEUE)
            .max_payload_bytes(64 * 1024)
            .build()
            .expect("X-Ray starts");
        let cleaner = rusqlite::Connection::open(&outbox).expect("outbox opens");
        cleaner
            .busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        tracing::dispatcher::with_default(&dispatch, || {
            xray::execution("scaling").run(|| {
                group.bench_function(BenchmarkId::new("xray_capturing_drained", &id), |b| {
                    b.iter_custom(|iters| {
                        let mut measured = Duration::ZERO;
                        let mut left = iters;
                        while left > 0 {
                            let n = left.min(BURST);
                            let start = Instant::now();
                            for _ in 0..n {
                                black_box(choose_step(black_box(&q)));
                            }
                            measured += start.elapsed();
                            guard.flush().expect("X-Ray flushes");
                            // What the collector does after shipping.
                            cleaner
                                .execute("DELETE FROM xray_outbox WHERE record_type = 'step'", [])
                                .expect("delete shipped rows");
                            left -= n;
                        }
                        measured
                    })
                });
            })
        });
        guard.flush().expect("X-Ray flushes");
        let s = guard.stats();
        if s.dropped + s.other_records_dropped > 0 || s.written != s.captured {
            eprintln!(
                "!!! scaling {factor}x: captured {} / dropped {} / written {} steps, {} other \
                 records dropped: NOT a valid measurement",
                s.captured, s.dropped, s.written, s.other_records_dropped
            );
        } else {
            eprintln!(
                "scaling {factor}x: captured {} / written {} steps: nothing dropped",
                s.captured, s.written
            );
        }
        drop(dispatch);
        drop(guard);
    }
    group.finish();
}

criterion_group!(benches, scaling);
criterion_main!(benches);
