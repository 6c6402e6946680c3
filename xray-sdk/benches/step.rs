//! Criterion bench `one_step`: what one call of a step costs the calling
//! thread, with and without X-Ray, against the tools people compare it with.
//!
//! Every variant calls the same function body ([`pick`]) on the same input: a
//! [`Query`] with three candidates (about 400 bytes of JSON, the `small`
//! input) or with 39 (about 5 KB, the `large` input), returning a small
//! [`Chosen`] struct (about 50 bytes of JSON). Each figure is named
//! `one_step/<variant>/<input>`.
//!
//! | variant | what is measured |
//! |---|---|
//! | `baseline_no_xray` | the plain function |
//! | `xray_not_initialised` | the `#[xray::step]` function, no X-Ray and no subscriber in the process |
//! | `serialization_floor` | the plain function plus `serde_json::to_string` of its input and output: the least any capture of both as JSON can cost |
//! | `tracing_instrument_fmt` | `#[tracing::instrument(ret)]` (input and output by `Debug`) under `tracing_subscriber::fmt` writing to `std::io::sink` |
//! | `opentelemetry_sdk_span` | an OpenTelemetry SDK span per call (`Tracer::in_span`), attributes `input` and `output` set to the same JSON strings, thread-based `BatchSpanProcessor` + `InMemorySpanExporter` |
//! | `xray_capturing` | the `#[xray::step]` function capturing into an outbox in a temp dir; **all calls are children of one `xray::execution("bench")`** (the whole measurement runs inside one `run`) |
//! | `xray_capturing_implicit` | the same with no surrounding execution: every call is its own implicit execution |
//! | `*_drained` | `opentelemetry_sdk_span`, `xray_capturing` and `xray_capturing_implicit` timed in bursts of 1024 calls, with the exporter / outbox writer drained (untimed) between bursts; for X-Ray the written rows are then deleted from the outbox, as the collector does after shipping them |
//!
//! The back-to-back variants run on the small input only: on the large one
//! they would write gigabytes of outbox per measurement.
//!
//! The back-to-back variants (`b.iter`) call far faster than any real
//! pipeline, so on a 2-core machine the OpenTelemetry exporter thread and the
//! X-Ray outbox writer fall behind and a backlog builds up for the whole
//! measurement; the `_drained` variants measure the caller while the
//! background thread keeps up, as it does when steps do real work.
//!
//! The X-Ray variants use the default `WhenFull::Drop` policy with a queue
//! large enough for that backlog ([`XRAY_QUEUE`]) and a raised outbox size
//! limit; after each of them the bench flushes the outbox and prints
//! `captured / dropped / written` to stderr, with a loud warning if anything
//! was dropped (a dropped step costs less than a written one, so the figure
//! would flatter X-Ray). The OpenTelemetry variants likewise report spans
//! created against spans exported. `xray_not_initialised` runs before any
//! X-Ray pipeline exists, and each pipeline is shut down before the next
//! variant.
//!
//! Run (see BENCHMARKS.md at the workspace root for results and how the
//! ratios are computed):
//!
//! ```text
//! cargo bench -p xray-sdk --bench step -- --warm-up-time 1 --measurement-time 3
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use opentelemetry::trace::{TraceContextExt, Tracer, TracerProvider};
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, InMemorySpanExporter, SdkTracer, SdkTracerProvider,
    SpanData, SpanExporter,
};
use tracing_subscriber::layer::SubscriberExt;

// ---------------------------------------------------------------------------
// The workload
// ---------------------------------------------------------------------------

mod workload;

use workload::{choose_plain, choose_step, pick, query, query_of_size, Chosen, Query};

#[tracing::instrument(ret)]
#[inline(never)]
fn choose_traced(q: &Query) -> Chosen {
    pick(q)
}

// ---------------------------------------------------------------------------
// OpenTelemetry: the in-memory exporter, kept bounded
// ---------------------------------------------------------------------------

/// Spans the in-memory exporter may hold before it is cleared.
const OTEL_KEEP_SPANS: u64 = 1 << 16;

/// `InMemorySpanExporter`, counting what it was given and cleared every
/// [`OTEL_KEEP_SPANS`] spans (on the exporter thread, where a real exporter
/// does its work), so memory stays bounded over millions of iterations.
#[derive(Debug)]
struct BoundedInMemoryExporter {
    inner: InMemorySpanExporter,
    exported: Arc<AtomicU64>,
}

impl SpanExporter for BoundedInMemoryExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let before = self.exported.fetch_add(n, Ordering::Relaxed);
        if before / OTEL_KEEP_SPANS != (before + n) / OTEL_KEEP_SPANS {
            self.inner.reset();
        }
        self.inner.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
}

// ---------------------------------------------------------------------------
// The bench
// ---------------------------------------------------------------------------

fn one_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_step");
    one_input(&mut group, "small", &query(), 350..=500, true);
    one_input(
        &mut group,
        "large",
        &query_of_size(5000),
        4500..=6000,
        false,
    );
    group.finish();
}

/// Every variant on one input (`size` names it in the figures);
/// `back_to_back` adds the variants that do not drain between bursts.
fn one_input(
    group: &mut Group<'_>,
    size: &str,
    q: &Query,
    expected_json_bytes: std::ops::RangeInclusive<usize>,
    back_to_back: bool,
) {
    let input_json = serde_json::to_string(q).expect("serializable");
    let output_json = serde_json::to_string(&pick(q)).expect("serializable");
    eprintln!(
        "one_step, {size} input: {} bytes of JSON, output {} bytes of JSON",
        input_json.len(),
        output_json.len()
    );
    assert!(
        expected_json_bytes.contains(&input_json.len()),
        "the {size} input should be {expected_json_bytes:?} bytes of JSON"
    );
    let id = |variant: &str| BenchmarkId::new(variant, size);

    // 1. The plain function.
    group.bench_function(id("baseline_no_xray"), |b| {
        b.iter(|| black_box(choose_plain(black_box(q))))
    });

    // 2. The step, with no X-Ray (and no subscriber at all) in the process.
    //    Runs before any pipeline is started below.
    group.bench_function(id("xray_not_initialised"), |b| {
        b.iter(|| black_box(choose_step(black_box(q))))
    });

    // 3. The least that capturing input and output as JSON can cost.
    group.bench_function(id("serialization_floor"), |b| {
        b.iter(|| {
            let q = black_box(q);
            let input = serde_json::to_string(q).expect("serializable");
            let out = choose_plain(q);
            let output = serde_json::to_string(&out).expect("serializable");
            black_box((input, output, out))
        })
    });

    // 4. `#[tracing::instrument(ret)]` under the fmt layer, writing to a sink.
    {
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink)),
        );
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(id("tracing_instrument_fmt"), |b| {
                b.iter(|| black_box(choose_traced(black_box(q))))
            });
        });
    }

    if back_to_back {
        // 5. The OpenTelemetry SDK: one span per call, children of one
        //    parent span (as the steps of `xray_capturing` are children of
        //    one execution), thread-based batch processor (no async runtime).
        otel(
            group,
            &format!("opentelemetry_sdk_span/{size}"),
            |group, tracer, _| {
                let mut calls = 0;
                group.bench_function(id("opentelemetry_sdk_span"), |b| {
                    b.iter(|| {
                        calls += 1;
                        otel_call(tracer, black_box(q))
                    })
                });
                calls
            },
        );

        // 6. X-Ray capturing, all steps children of one execution.
        xray_capturing(
            group,
            &format!("xray_capturing/{size}"),
            XRAY_QUEUE,
            |group, dispatch, _, _| {
                tracing::dispatcher::with_default(dispatch, || {
                    xray::execution("bench").run(|| {
                        group.bench_function(id("xray_capturing"), |b| {
                            b.iter(|| black_box(choose_step(black_box(q))))
                        });
                    })
                })
            },
        );

        // 7. X-Ray capturing, every call its own implicit execution. Each
        //    call queues records for an execution and a step, hence the
        //    larger queue.
        xray_capturing(
            group,
            &format!("xray_capturing_implicit/{size}"),
            2 * XRAY_QUEUE,
            |group, dispatch, _, _| {
                tracing::dispatcher::with_default(dispatch, || {
                    group.bench_function(id("xray_capturing_implicit"), |b| {
                        b.iter(|| black_box(choose_step(black_box(q))))
                    });
                })
            },
        );
    }

    // 8. The `_drained` variants: the same calls in bursts of `BURST`, with
    //    the exporter / outbox writer drained (untimed) between bursts, so
    //    the caller is measured while the background thread keeps up, as it
    //    does in a pipeline whose steps do real work. Nothing can pile up or
    //    be dropped here, whatever the queue size.
    otel(
        group,
        &format!("opentelemetry_sdk_span_drained/{size}"),
        |group, tracer, provider| {
            let mut calls = 0;
            group.bench_function(id("opentelemetry_sdk_span_drained"), |b| {
                in_bursts(
                    b,
                    || {
                        calls += 1;
                        black_box(otel_call(tracer, black_box(q)));
                    },
                    || provider.force_flush().expect("OpenTelemetry flushes"),
                )
            });
            calls
        },
    );
    xray_capturing(
        group,
        &format!("xray_capturing_drained/{size}"),
        XRAY_QUEUE,
        |group, dispatch, guard, outbox| {
            tracing::dispatcher::with_default(dispatch, || {
                xray::execution("bench").run(|| {
                    group.bench_function(id("xray_capturing_drained"), |b| {
                        in_bursts(
                            b,
                            || {
                                black_box(choose_step(black_box(q)));
                            },
                            || drain_outbox(guard, outbox),
                        )
                    });
                })
            })
        },
    );
    xray_capturing(
        group,
        &format!("xray_capturing_implicit_drained/{size}"),
        XRAY_QUEUE,
        |group, dispatch, guard, outbox| {
            tracing::dispatcher::with_default(dispatch, || {
                group.bench_function(id("xray_capturing_implicit_drained"), |b| {
                    in_bursts(
                        b,
                        || {
                            black_box(choose_step(black_box(q)));
                        },
                        || drain_outbox(guard, outbox),
                    )
                });
            })
        },
    );
}

/// Between bursts (untimed): flushes the outbox, then deletes the step rows
/// written, as the collector does after shipping them, so the outbox stays
/// small whatever the number of iterations.
fn drain_outbox(guard: &xray::Guard, outbox: &rusqlite::Connection) {
    guard.flush().expect("X-Ray flushes");
    outbox
        .execute("DELETE FROM xray_outbox WHERE record_type = 'step'", [])
        .expect("delete shipped rows");
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// X-Ray's queue capacity (records) in the back-to-back variants: large
/// enough that the backlog the outbox writer builds up during a 1 s warm-up
/// and 3 s measurement on a 2-core machine never reaches half of it (past
/// half, `WhenFull::Drop` starts dropping `start` records).
const XRAY_QUEUE: usize = 1 << 22;

/// OpenTelemetry's `max_queue_size` (spans), 512 times its default: its
/// exporter thread keeps up on average, but with the default 2048 it drops
/// spans whenever it is descheduled for a moment. The channel is allocated
/// up front (slowly: keep it no larger than needed).
const OTEL_QUEUE: usize = 1 << 20;

/// The back-to-back variants write well over a million steps (about 650
/// bytes each in the outbox): lift the 1 GiB default so that no step is
/// dropped for want of room.
const OUTBOX_MAX_BYTES: u64 = 16 << 30;

/// Calls per burst in the `_drained` variants.
const BURST: u64 = 1024;

/// Times `iters` calls of `one` in bursts of [`BURST`], calling `drain`
/// (untimed) after each burst.
fn in_bursts(b: &mut criterion::Bencher<'_>, mut one: impl FnMut(), mut drain: impl FnMut()) {
    b.iter_custom(|iters| {
        let mut measured = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(BURST);
            let start = Instant::now();
            for _ in 0..n {
                one();
            }
            measured += start.elapsed();
            drain();
            left -= n;
        }
        measured
    })
}

/// One instrumented call the OpenTelemetry way: a span made current for the
/// call (`in_span`, as `#[xray::step]` enters its span), with the input and
/// output as JSON attributes.
#[inline(always)]
fn otel_call(tracer: &SdkTracer, q: &Query) -> Chosen {
    tracer.in_span("choose", |cx| {
        let input = serde_json::to_string(q).expect("serializable");
        let out = choose_plain(q);
        let output = serde_json::to_string(&out).expect("serializable");
        let span = cx.span();
        span.set_attribute(KeyValue::new("input", input));
        span.set_attribute(KeyValue::new("output", output));
        out
    })
}

/// Starts an OpenTelemetry tracer provider (thread-based
/// `BatchSpanProcessor`, bounded `InMemorySpanExporter`), runs `bench` inside
/// one parent span, then flushes and reports whether every span created was
/// exported (`bench` returns how many calls it made). The provider is shut
/// down on return.
fn otel(
    group: &mut Group<'_>,
    name: &str,
    bench: impl FnOnce(&mut Group<'_>, &SdkTracer, &SdkTracerProvider) -> u64,
) {
    let exported = Arc::new(AtomicU64::new(0));
    let exporter = BoundedInMemoryExporter {
        inner: InMemorySpanExporter::default(),
        exported: exported.clone(),
    };
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(OTEL_QUEUE)
                .with_max_export_batch_size(512)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("xray-bench");
    let calls = tracer.in_span("bench", |_| bench(group, &tracer, &provider));
    let created = if calls == 0 { 0 } else { calls + 1 }; // + the parent span

    let start = Instant::now();
    let flushed = provider.force_flush();
    let flush_time = start.elapsed();
    let exported = exported.load(Ordering::Relaxed);
    report(
        name,
        &format!(
            "created {created} / exported {exported} spans; queue capacity {OTEL_QUEUE}; flush \
             after the measurement took {flush_time:.1?} ({flushed:?})"
        ),
        created.saturating_sub(exported),
        created,
    );
    if let Err(e) = provider.shutdown() {
        eprintln!("{name}: shutdown: {e}");
    }
}

/// Starts an X-Ray pipeline on a fresh outbox, runs `bench` with a
/// dispatcher holding its layer, then flushes and reports what was captured,
/// dropped and written. The pipeline is shut down on return.
fn xray_capturing(
    group: &mut Group<'_>,
    name: &str,
    queue_capacity: usize,
    bench: impl FnOnce(&mut Group<'_>, &tracing::Dispatch, &xray::Guard, &rusqlite::Connection),
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let outbox = dir.path().join("outbox.db");
    let (layer, guard) = xray::Config::default()
        .outbox(&outbox)
        .queue_capacity(queue_capacity)
        .outbox_max_bytes(OUTBOX_MAX_BYTES)
        .build()
        .expect("X-Ray starts");
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let reader = rusqlite::Connection::open(&outbox).expect("outbox opens");
    reader
        .busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");

    bench(group, &dispatch, &guard, &reader);

    let start = Instant::now();
    let flushed = guard.flush();
    let flush_time = start.elapsed();
    let s = guard.stats();
    let outbox_bytes: u64 = std::fs::read_dir(dir.path())
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    report(
        name,
        &format!(
            "captured {} / dropped {} (queue full {}, outbox full {}, write failed {}) / written {} \
             steps; {} executions; {} records written in {} batches, {} other records dropped; \
             queue capacity {}; outbox {:.1} MiB; flush after the measurement took {:.1?} ({:?})",
            s.captured,
            s.dropped,
            s.dropped_queue_full,
            s.dropped_outbox_full,
            s.dropped_write_failed,
            s.written,
            s.executions,
            s.records_written,
            s.batches,
            s.other_records_dropped,
            queue_capacity,
            outbox_bytes as f64 / (1 << 20) as f64,
            flush_time,
            flushed.map(|_| "ok")
        ),
        s.dropped + s.other_records_dropped,
        s.captured,
    );
    drop(dispatch);
    drop(guard);
}

/// Prints a variant's bookkeeping to stderr, loudly when something was lost.
fn report(name: &str, line: &str, lost: u64, total: u64) {
    if total == 0 {
        eprintln!("{name}: not run (filtered out)");
    } else if lost == 0 {
        eprintln!("{name}: {line}: nothing dropped");
    } else {
        let bar = "!".repeat(78);
        eprintln!(
            "{bar}\n!!! {name}: {lost} records of {total} calls DROPPED ({:.2}%) during the measurement.\n!!! {line}\n!!! \
             A dropped record is cheaper than a recorded one: this figure is NOT a valid measurement.\n{bar}",
            lost as f64 * 100.0 / total as f64
        );
    }
}

criterion_group!(benches, one_step);
criterion_main!(benches);
