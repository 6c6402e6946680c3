//! A program written from the public contract alone (DESIGN.md, "Capture"):
//! X-Ray composed with a `fmt` layer as the global subscriber, every kind of
//! step, both execution styles, decisions, a flush — and not one step lost.

use std::path::Path;

use serde::Serialize;
use tracing_subscriber::prelude::*;

#[derive(Debug, Clone, Serialize)]
struct Product {
    asin: String,
    price: f64,
}

#[derive(Debug)]
struct MyError(String);
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for MyError {}

struct Client;

#[xray::step]
fn filter_by_price(candidates: &[Product], max_price: f64) -> Vec<Product> {
    let mut kept = Vec::new();
    for c in candidates {
        if c.price > max_price {
            xray::reject(&c.asin, "price", format!("{} > max {}", c.price, max_price));
        } else {
            xray::accept(&c.asin, "price", "within budget");
            kept.push(c.clone());
        }
    }
    kept
}

#[xray::step(name = "llm_relevance", kind = "llm", skip(client), redact(api_key))]
async fn relevance(client: &Client, api_key: &str, p: &Product) -> Result<f32, MyError> {
    let _ = client;
    xray::llm_usage("model", 10, 2);
    xray::score(&p.asin, 0.5);
    if api_key.is_empty() {
        return Err(MyError("no key".into()));
    }
    Ok(0.5)
}

struct Ranker {
    seen: usize,
}

impl Ranker {
    #[xray::step(kind = "rank")]
    fn rank<'a, T: Serialize + Clone + std::fmt::Debug>(
        &mut self,
        items: &'a [T],
        (lo, hi): (usize, usize),
    ) -> Option<&'a T>
    where
        Self: Sized,
    {
        self.seen += items.len();
        xray::reason("first in range");
        items.get(lo.min(hi))
    }

    #[xray::step(skip_output, capture_self)]
    fn summary(&self) -> usize {
        self.seen
    }
}

impl Serialize for Ranker {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.seen as u64)
    }
}

#[xray::step(skip_all)]
fn total(items: impl IntoIterator<Item = u32>) -> u32 {
    items.into_iter().sum()
}

#[tracing::instrument]
fn legacy_helper(x: u32) -> u32 {
    tracing::info!(x, "legacy code, unchanged");
    x + 1
}

#[test]
fn a_program_written_from_the_contract_runs_every_case_without_losing_a_step() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    std::env::set_var("XRAY_OUTBOX", &outbox);
    let (layer, guard) = xray::Config::from_env()
        .project("contract")
        .build()
        .unwrap();
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_test_writer())
        .with(layer)
        .init();

    let products = vec![
        Product {
            asin: "B01".into(),
            price: 10.0,
        },
        Product {
            asin: "B07X".into(),
            price: 79.99,
        },
    ];
    let kept = xray::execution("competitor_selection")
        .metadata("seller_asin", "B0SELLER")
        .run(|| {
            let kept = filter_by_price(&products, 50.0);
            let mut ranker = Ranker { seen: 0 };
            let first = ranker.rank(&kept, (0, 3)).cloned();
            let _ = ranker.summary();
            let _ = total(vec![1, 2, 3]);
            let _ = legacy_helper(41);
            first
        });
    assert_eq!(kept.unwrap().asin, "B01");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let score =
        rt.block_on(xray::execution("async_run").run_async(relevance(&Client, "k", &products[0])));
    assert_eq!(score.unwrap(), 0.5);
    let err = rt.block_on(relevance(&Client, "", &products[0]));
    assert!(err.is_err());

    guard.flush().unwrap();
    let stats = xray::stats();
    // filter, rank, summary, total, legacy_helper, relevance ×2
    assert_eq!(
        (stats.captured, stats.written, stats.dropped),
        (7, 7, 0),
        "{stats:?}"
    );
    assert_eq!(ended_steps(&outbox), 7);
}

fn ended_steps(outbox: &Path) -> i64 {
    let conn = rusqlite::Connection::open(outbox).unwrap();
    conn.query_row(
        "SELECT count(*) FROM xray_outbox WHERE record_type = 'step' AND phase = 'end'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}
