//! Criterion bench `capture`: X-Ray's JSON capture of a value against
//! `serde_json::to_string` of the same value, without the rest of a step
//! (span, record, queue), so that changes to the capture writer can be
//! measured on their own. The values are the one-step bench's output
//! (47 B of JSON), its small input (393 B) and a large input (~5 KB).
//!
//! Group `free_text`: the redaction scan a decision reason or an error text
//! gets on the writer's thread, against formatting that text into a
//! `String` with `to_string()` (what `xray::reject(…, reason)` does on the
//! caller's thread).
//!
//! ```text
//! cargo bench -p xray-sdk --bench capture -- --warm-up-time 1 --measurement-time 2
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use serde::Serialize;

mod workload;

use workload::{pick, query, query_of_size};

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn compare<T: Serialize>(group: &mut Group<'_>, name: &str, value: &T) {
    let json = serde_json::to_string(value).expect("serializable");
    assert_eq!(
        xray::__private::capture_for_bench(value).as_deref(),
        Some(json.as_str()),
        "the capture writes what serde_json writes for {name}"
    );
    group.bench_function(BenchmarkId::new("serde_json", name), |b| {
        b.iter(|| black_box(serde_json::to_string(black_box(value))))
    });
    group.bench_function(BenchmarkId::new("xray", name), |b| {
        b.iter(|| black_box(xray::__private::capture_for_bench(black_box(value))))
    });
}

fn capture(c: &mut Criterion) {
    let mut group = c.benchmark_group("capture");
    let small = query();
    compare(&mut group, "output_47B", &pick(&small));
    compare(&mut group, "input_393B", &small);
    compare(&mut group, "input_5KB", &query_of_size(5000));
    group.finish();
}

fn free_text(c: &mut Criterion) {
    let mut group = c.benchmark_group("free_text");
    let price = 79.99;
    let texts = [
        ("reason_22B", format!("price {price} > max 50")),
        (
            "reason_60B",
            format!("rating {} below minimum {} (reviews: {})", 3.2, 4.0, 1200),
        ),
        (
            "error_300B",
            "catalogue search failed: upstream returned 503 Service Unavailable for \
             GET https://catalogue.internal/v2/search?q=wireless+earbuds&page=2&limit=50\n\
             caused by: connection reset by peer (os error 104) after 3 retries, \
             elapsed 2.41s, request_id=7f3c9a1e-5b2d-4e8f-9c6a-1d2e3f4a5b6c"
                .to_owned(),
        ),
    ];
    for (name, text) in &texts {
        assert_eq!(
            xray::__private::redact_text_for_bench(text),
            None,
            "{name} holds no secret"
        );
        group.bench_function(BenchmarkId::new("format", name), |b| {
            b.iter(|| black_box(black_box(text.as_str()).to_string()))
        });
        group.bench_function(BenchmarkId::new("redact_scan", name), |b| {
            b.iter(|| black_box(xray::__private::redact_text_for_bench(black_box(text))))
        });
    }
    group.finish();
}

criterion_group!(benches, capture, free_text);
criterion_main!(benches);
