//! The outbox the collector's benches ship: steps of the SDK benches'
//! workload (`crate::workload`), recorded by the real SDK.
//!
//! - realistic: the 393-byte `Query` input and `Chosen` output, three
//!   decisions per step (the price filter rejects one), every step nested
//!   in a `rank_batch` step per 100;
//! - tiny: `fn small(i: u64) -> u64`, 10-byte values, no decisions.

use std::path::Path;

use tracing_subscriber::layer::SubscriberExt;

use crate::workload;

#[xray::step]
fn small(i: u64) -> u64 {
    i * 2
}

/// A scoring step as a ranking pipeline has it: the query in, the best
/// candidate out, a decision per candidate.
#[xray::step(kind = "rank")]
fn score_candidates(q: &workload::Query) -> workload::Chosen {
    for c in &q.candidates {
        if c.price > 30.0 {
            xray::reject(c.asin.clone(), "price", format!("{:.2} > 30", c.price));
        } else {
            xray::score(c.asin.clone(), c.rating * 10.0 - c.price / 10.0);
        }
    }
    workload::pick(q)
}

#[xray::step]
fn rank_batch(q: &workload::Query, from: u64, to: u64) -> u64 {
    for _ in from..to {
        score_candidates(q);
    }
    to - from
}

/// `n` steps of the workload; the number of steps written (the realistic
/// one adds a batch step per 100).
pub fn write_outbox(path: &Path, n: u64, realistic: bool) -> u64 {
    let (layer, guard) = xray::Config::default()
        .outbox(path)
        .when_full(xray::WhenFull::Block)
        .queue_capacity(1 << 16)
        .build()
        .expect("build");
    let q = workload::query();
    let steps = if realistic { n + n.div_ceil(100) } else { n };
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        xray::execution("bench").run(|| {
            if realistic {
                for from in (0..n).step_by(100) {
                    rank_batch(&q, from, (from + 100).min(n));
                }
            } else {
                for i in 0..n {
                    small(i);
                }
            }
        })
    });
    guard.flush().expect("flush");
    let stats = guard.stats();
    assert_eq!((stats.written, stats.dropped), (steps, 0), "{stats:?}");
    steps
}

/// The steps a bench run is asked for (`XRAY_BENCH_STEPS`, else
/// `default`); `None` when cargo only lists the benches (`--list`, test
/// discovery): nothing to run.
pub fn steps_asked(default: u64) -> Option<u64> {
    if std::env::args().any(|a| a == "--list") {
        return None;
    }
    Some(
        std::env::var("XRAY_BENCH_STEPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}
