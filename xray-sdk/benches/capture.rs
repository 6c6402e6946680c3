//! Criterion bench `capture`: X-Ray's JSON capture of a value against
//! `serde_json::to_string` of the same value, without the rest of a step
//! (span, record, queue), so that changes to the capture writer can be
//! measured on their own. The values are the one-step bench's output
//! (47 B of JSON), its small input (393 B) and a large input (~5 KB).
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

criterion_group!(benches, capture);
criterion_main!(benches);
