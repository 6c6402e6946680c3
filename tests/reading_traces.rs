//! End to end, on both backends: a pipeline captured by the SDK, shipped by
//! the collector's shipper, read back through the query layer and the
//! renderer the CLI uses — tree, why, search, stats and pagination.

#[path = "../xray-collector/tests/support/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use tracing_subscriber::layer::SubscriberExt;
use xray_collector::backend::{AnyStore, Migrations, QueryStore};
use xray_collector::query::ExecutionFilter;
use xray_collector::render::{self, Style};
use xray_collector::ship::{ShipConfig, Shipper};

#[derive(Debug, Clone, Serialize)]
struct Product {
    asin: String,
    price: f64,
    category: &'static str,
}

fn catalogue() -> Vec<Product> {
    [
        ("B01STAND", 39.99, "office"),
        ("B02STAND", 54.0, "office"),
        ("B07XPRO", 79.99, "office"),
        ("B08COOL", 34.99, "electronics"),
        ("B09ERGO", 44.0, "office"),
    ]
    .into_iter()
    .map(|(asin, price, category)| Product {
        asin: asin.into(),
        price,
        category,
    })
    .collect()
}

#[xray::step(kind = "llm")]
fn keywords(title: &str) -> Vec<String> {
    xray::llm_usage("kw-model", 40, 6);
    title.split_whitespace().map(str::to_lowercase).collect()
}

#[xray::step(kind = "filter")]
fn filter(candidates: Vec<Product>, max_price: f64) -> Vec<Product> {
    candidates
        .into_iter()
        .filter(|c| {
            if c.price > max_price {
                xray::reject(&c.asin, "price", format!("{} > {max_price}", c.price));
                false
            } else if c.category != "office" {
                xray::reject(&c.asin, "category", format!("{} is not office", c.category));
                false
            } else {
                xray::accept(&c.asin, "all", "fits");
                true
            }
        })
        .collect()
}

#[xray::step(kind = "rank")]
fn rank(candidates: Vec<Product>) -> Result<String, String> {
    let best = candidates.first().ok_or("nothing left to rank")?;
    for c in &candidates {
        xray::score(&c.asin, 1.0 / c.price);
    }
    xray::accept(&best.asin, "rank", "cheapest fitting");
    Ok(best.asin.clone())
}

fn pipeline(max_price: f64) -> Result<String, String> {
    let _ = keywords("Aluminium laptop stand");
    rank(filter(catalogue(), max_price))
}

/// Records 5 executions: 4 that succeed, then one whose rank step fails.
fn capture(outbox: &Path) -> Vec<String> {
    let (layer, guard) = xray::Config::default()
        .outbox(outbox)
        .project("shop")
        .build()
        .unwrap();
    let ids = tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let mut ids = Vec::new();
        for max in [50.0, 60.0, 45.0, 100.0, 10.0] {
            let id = xray::execution("competitor_selection")
                .metadata("max_price", &max)
                .run(|| {
                    let _ = pipeline(max);
                    xray::current_execution_id().unwrap()
                });
            ids.push(id);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        ids
    });
    guard.flush().unwrap();
    ids
}

async fn ship(store: Arc<AnyStore>, outbox: &Path) {
    let config = ShipConfig {
        outboxes: vec![outbox.to_path_buf()],
        ..ShipConfig::default()
    };
    let summary = Shipper::ship_once(store.clone(), config).await;
    assert_eq!(summary.dead_letters, 0);
    // As `run --once` does: what was shipped is found by search.
    xray_collector::indexing::catch_up(&*store).await.unwrap();
}

async fn check(store: Arc<AnyStore>, outbox: &Path) {
    let ids = capture(outbox);
    ship(store.clone(), outbox).await;
    let plain = Style { colour: false };

    // Pagination: newest first, 2 + 2 + 1, no overlap, cursor only while more.
    let mut filter = ExecutionFilter {
        limit: 2,
        ..ExecutionFilter::default()
    };
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.executions(&filter).await.unwrap();
        pages += 1;
        seen.extend(page.executions.iter().map(|e| e.id.to_string()));
        match page.next_cursor {
            Some(c) => filter.after = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    // Filters.
    let errors = store
        .executions(&ExecutionFilter {
            status: Some("error".into()),
            limit: 10,
            ..ExecutionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        errors.executions.len(),
        1,
        "the max_price 10 run fails at rank"
    );
    assert_eq!(errors.executions[0].id.to_string(), ids[4]);
    let none = store
        .executions(&ExecutionFilter {
            name: Some("other".into()),
            limit: 10,
            ..ExecutionFilter::default()
        })
        .await
        .unwrap();
    assert!(none.executions.is_empty());
    let latest = store.latest_execution(None).await.unwrap().unwrap();
    assert_eq!(latest.to_string(), ids[4]);

    // The tree of the first run (max 50): B02STAND and B07XPRO too dear, B08COOL wrong category.
    let first = uuid::Uuid::parse_str(&ids[0]).unwrap();
    let detail = store.execution(first).await.unwrap().unwrap();
    let names: Vec<&str> = detail.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["keywords", "filter", "rank"]);
    let tree = render::execution_tree(&detail, false, plain);
    assert!(tree.starts_with("competitor_selection "), "{tree}");
    assert!(tree.contains("├─ keywords [llm] ok"), "{tree}");
    assert!(tree.contains("└─ rank [rank] ok"), "{tree}");
    assert!(
        tree.contains(
            "decisions: 5 candidates: 2 accepted, 3 rejected (1 by category, 2 by price)"
        ),
        "{tree}"
    );
    assert!(
        tree.contains("llm: kw-model 40 prompt + 6 completion tokens"),
        "{tree}"
    );
    let failed = store
        .execution(uuid::Uuid::parse_str(&ids[4]).unwrap())
        .await
        .unwrap()
        .unwrap();
    let failed_tree = render::execution_tree(&failed, false, plain);
    assert!(
        failed_tree.contains("error: nothing left to rank"),
        "{failed_tree}"
    );

    // why: B07XPRO dropped by price; B01STAND through filter and rank.
    let why = store.why(first, "B07XPRO").await.unwrap();
    assert_eq!(why.len(), 1);
    assert_eq!(
        (why[0].step_name.as_str(), why[0].decision.accepted),
        ("filter", Some(false))
    );
    assert_eq!(why[0].decision.reason.as_deref(), Some("79.99 > 50"));
    let path: Vec<(String, Option<bool>)> = store
        .why(first, "B01STAND")
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.step_name, w.decision.accepted))
        .collect();
    assert_eq!(
        path,
        [
            ("filter".to_string(), Some(true)),
            ("rank".to_string(), None),
            ("rank".to_string(), Some(true))
        ]
    );
    let text = render::why(
        &first,
        "B01STAND",
        &store.why(first, "B01STAND").await.unwrap(),
        plain,
    );
    assert!(text.contains("filter accepted by all: fits"), "{text}");

    // search: a word of an output, and of an error.
    let hits = store.search("B09ERGO", 10, None).await.unwrap();
    assert!(hits.iter().any(|h| h.step_name == "filter"), "{hits:?}");
    let hits = store.search("nothing left", 10, None).await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].execution_id.to_string(), ids[4]);
    assert!(store.search("zebra", 10, None).await.unwrap().is_empty());

    // stats: 5 of each step, rank failed once; tokens per model.
    let stats = store.stats(None, None).await.unwrap();
    let by_name: Vec<(&str, i64, i64)> = stats
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.count, s.errors))
        .collect();
    assert_eq!(
        by_name,
        [("filter", 5, 0), ("keywords", 5, 0), ("rank", 5, 1)]
    );
    assert!(stats
        .steps
        .iter()
        .all(|s| s.p50_us <= s.p95_us && s.p95_us <= s.max_us));
    assert_eq!(stats.models.len(), 1);
    assert_eq!(
        (
            stats.models[0].calls,
            stats.models[0].prompt_tokens,
            stats.models[0].completion_tokens
        ),
        (5, 200, 30)
    );
    let table = render::stats(&stats, plain);
    assert!(table.contains("rank") && table.contains("20.0%"), "{table}");
}

#[test]
fn the_embedded_store_answers_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(AnyStore::sqlite(&dir.path().join("xray.db")).await.unwrap());
        store.migrate_up().await.unwrap();
        check(store, &dir.path().join("outbox.db")).await;
    });
}

#[test]
fn postgresql_answers_every_query() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = pg::fresh_database().await;
        let store = Arc::new(AnyStore::postgres(&db.url).await.unwrap());
        store.migrate_up().await.unwrap();
        check(store, &dir.path().join("outbox.db")).await;
    });
}
