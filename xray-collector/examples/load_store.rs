//! Fills a store with many executions shaped like real pipelines, for
//! measuring reads at scale (BENCHMARKS.md, issue 12): by default 1 000 000
//! executions and about 10 000 000 steps spread over the last 30 days, and
//! one execution of 200 000 steps (`tests/support/big.rs`), written through
//! the collector's own write path (`Store::write`, 5 000 records a
//! transaction) and then indexed for search, on either backend.
//!
//! Each execution is one of four pipelines in one of three projects:
//! `generate_keywords` (an LLM call with token usage), `search_products`
//! (the SDK benches' 393-byte `Query` as input), `filter_candidates` (five
//! decisions, the price and rating filters reject some), `rank_candidates`
//! (scores for the kept ones), then two to ten `fetch_reviews` calls, 3 %
//! of which fail (and with them 1 in 3 of their executions). Random but
//! reproducible (`--seed`).
//!
//! ```text
//! cargo run --release -p xray-collector --example load_store -- --store /tmp/load.db
//! cargo run --release -p xray-collector --example load_store -- --database-url postgres://…
//! ```
//!
//! Prints the big execution's id and a newest execution's id on stdout;
//! progress goes to stderr.

#[path = "../tests/support/big.rs"]
mod big;
#[path = "support/open.rs"]
mod open;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use serde_json::json;
use uuid::Uuid;
use xray_collector::backend::Store;
use xray_collector::indexing;
use xray_collector::model::{
    Decision, ExecutionRow, ExecutionStatus, LlmUsage, ShipRecord, StepRow, StepStatus,
};

/// Fills a store with realistic executions.
#[derive(Parser, Debug)]
struct Args {
    /// How many executions (besides the big one).
    #[arg(long, default_value_t = 1_000_000)]
    executions: u64,
    /// Steps of the one big execution (0: none).
    #[arg(long, default_value_t = 200_000)]
    big_steps: u64,
    /// Executions start over this many days before now.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// The random seed.
    #[arg(long, default_value_t = 12)]
    seed: u64,
    /// The embedded store's file (created and migrated if needed).
    #[arg(long, default_value = ".xray/xray.db")]
    store: PathBuf,
    /// A PostgreSQL URL instead of the embedded store (migrated if needed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Records per write: one transaction each.
const BATCH: usize = 5_000;

const PROJECTS: [&str; 3] = ["shop", "catalog", "support"];
const PIPELINES: [&str; 4] = [
    "pick_competitor",
    "rank_catalog",
    "answer_question",
    "summarize_reviews",
];
const MODELS: [&str; 3] = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku"];
const MAX_PRICE: f64 = 45.0;
const MIN_RATING: f64 = 3.5;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = open::migrated_store(&args.store, args.database_url.as_deref()).await?;

    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let now_us = jiff::Timestamp::now().as_microsecond();
    let span_us = i64::from(args.days) * 86_400_000_000;
    let mut batch: Vec<ShipRecord> = Vec::with_capacity(BATCH + 16);
    let (mut steps, mut newest) = (0u64, (i64::MIN, Uuid::nil()));
    for n in 0..args.executions {
        let at = now_us - rng.i64(0..span_us);
        let records = execution(&mut rng, at);
        if at > newest.0 {
            newest = (at, records[0].id());
        }
        steps += records.len() as u64 - 1;
        batch.extend(records);
        if batch.len() >= BATCH {
            store.write(&batch).await.context("cannot write")?;
            batch.clear();
            if n % 10_000 < 400 {
                eprint!(
                    "\r{} executions, {steps} steps written ({:.0} steps/s)",
                    n + 1,
                    steps as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    }
    store.write(&batch).await.context("cannot write")?;
    batch.clear();
    eprintln!(
        "\r{} executions, {steps} steps written in {:.0} s",
        args.executions,
        started.elapsed().as_secs_f64()
    );

    let big_id = Uuid::from_u128(rng.u128(..));
    if args.big_steps > 0 {
        for record in big::records(big_id, args.big_steps as usize) {
            batch.push(record);
            if batch.len() == BATCH {
                store.write(&batch).await.context("cannot write")?;
                batch.clear();
            }
        }
        store.write(&batch).await.context("cannot write")?;
        eprintln!("the big execution ({} steps) written", args.big_steps);
    }
    let t = Instant::now();
    let notes = indexing::catch_up(&store)
        .await
        .context("cannot index for search")?;
    eprintln!(
        "{notes} steps indexed for search in {:.0} s; {:.0} s in all",
        t.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!("big {big_id}");
    println!("newest {}", newest.1);
    Ok(())
}

/// One execution: its row, then its steps in start order.
fn execution(rng: &mut fastrand::Rng, at: i64) -> Vec<ShipRecord> {
    let id = Uuid::from_u128(rng.u128(..));
    let project = PROJECTS[rng.usize(..PROJECTS.len())];
    let name = PIPELINES[rng.usize(..PIPELINES.len())];
    let mut steps = Vec::with_capacity(14);
    let mut clock = at + 50;
    let mut step =
        |rng: &mut fastrand::Rng, name: &str, kind: &str, took_ms: std::ops::Range<i64>| {
            let took = rng.i64(took_ms) * 1_000 + rng.i64(0..1_000);
            let row = StepRow {
                seq: 0,
                id: Uuid::from_u128(rng.u128(..)),
                execution_id: id,
                parent_id: None,
                project: project.into(),
                name: name.into(),
                kind: Some(kind.into()),
                status: StepStatus::Ok,
                input: None,
                output: None,
                error: None,
                attributes: None,
                started_at_us: clock,
                duration_us: Some(took),
                decisions: Vec::new(),
                llm_usage: Vec::new(),
                trace_id: None,
                reasoning: None,
            };
            clock += took + 20;
            row
        };

    let product = ["trail bottle", "desk lamp", "rain jacket", "coffee grinder"][rng.usize(..4)];
    let mut keywords = step(rng, "generate_keywords", "llm", 300..1_500);
    keywords.input =
        Some(json!({"product": product, "seller": format!("S{:05}", rng.u32(..100_000))}));
    keywords.output = Some(json!({"keywords": [product, "best value", "durable"]}));
    keywords.llm_usage = vec![LlmUsage {
        model: MODELS[rng.usize(..MODELS.len())].into(),
        prompt_tokens: rng.i64(200..900),
        completion_tokens: rng.i64(10..120),
    }];

    let candidates: Vec<(String, f64, f64)> = (0..5)
        .map(|_| {
            (
                format!("B0{:08X}", rng.u32(..)),
                (rng.f64() * 80.0 * 100.0).round() / 100.0 + 5.0,
                (rng.f64() * 20.0 + 30.0).round() / 10.0,
            )
        })
        .collect();
    let mut search = step(rng, "search_products", "search", 40..400);
    search.input = Some(json!({
        "seller_asin": "B0SELLER01",
        "keywords": [product, "best value", "durable"],
        "candidates": candidates.iter().take(3).map(|(asin, price, rating)| json!({
            "asin": asin, "title": format!("{product} by maker {}", &asin[8..]),
            "price": price, "rating": rating, "category": "Sports"
        })).collect::<Vec<_>>(),
    }));
    search.output = Some(json!({"found": candidates.iter().map(|c| &c.0).collect::<Vec<_>>()}));

    let mut filter = step(rng, "filter_candidates", "filter", 1..5);
    filter.input = Some(json!({"max_price": MAX_PRICE, "min_rating": MIN_RATING}));
    filter.decisions = candidates
        .iter()
        .map(|(asin, price, rating)| {
            let (accepted, filter, reason) = if *price > MAX_PRICE {
                (
                    false,
                    "price",
                    Some(format!("{price:.2} > max {MAX_PRICE}")),
                )
            } else if *rating < MIN_RATING {
                (
                    false,
                    "rating",
                    Some(format!("{rating:.1} < min {MIN_RATING}")),
                )
            } else {
                (true, "price", None)
            };
            Decision {
                candidate_id: asin.clone(),
                accepted: Some(accepted),
                filter: Some(filter.into()),
                reason,
                score: None,
            }
        })
        .collect();
    let kept: Vec<&(String, f64, f64)> = candidates
        .iter()
        .filter(|(_, price, rating)| *price <= MAX_PRICE && *rating >= MIN_RATING)
        .collect();

    let mut rank = step(rng, "rank_candidates", "rank", 2..20);
    rank.decisions = kept
        .iter()
        .map(|(asin, price, rating)| Decision {
            candidate_id: asin.clone(),
            accepted: None,
            filter: None,
            reason: Some("score".into()),
            score: Some(rating * 10.0 - price / 10.0),
        })
        .collect();
    rank.output = Some(match kept.first() {
        Some((asin, price, _)) => json!({"asin": asin, "price": price}),
        None => json!(null),
    });

    let mut failed = false;
    let fetches = rng.usize(2..=10);
    let mut fetch_rows = Vec::with_capacity(fetches);
    for _ in 0..fetches {
        let mut fetch = step(rng, "fetch_reviews", "tool", 20..300);
        let asin = &candidates[rng.usize(..candidates.len())].0;
        fetch.input = Some(json!({"asin": asin, "page": rng.u8(1..5)}));
        if rng.u32(..100) < 3 {
            fetch.status = StepStatus::Error;
            fetch.error = Some(format!("reviews service timed out after 5 s (asin {asin})"));
            failed |= rng.u32(..3) == 0;
        } else {
            fetch.output = Some(json!({"reviews": rng.u32(0..400), "stars": rng.u8(1..=5)}));
        }
        fetch_rows.push(fetch);
    }
    steps.extend([keywords, search, filter, rank]);
    steps.extend(fetch_rows);

    let mut out = Vec::with_capacity(steps.len() + 1);
    out.push(ShipRecord::Execution(ExecutionRow {
        seq: 0,
        id,
        project: project.into(),
        name: name.into(),
        status: if failed {
            ExecutionStatus::Error
        } else {
            ExecutionStatus::Ok
        },
        metadata: Some(json!({"product": product})),
        outcome: (!failed).then(|| json!({"chosen": kept.first().map(|k| &k.0)})),
        error: failed.then(|| "fetch_reviews failed".to_owned()),
        started_at_us: at,
        ended_at_us: Some(clock),
        trace_id: None,
        parent_span_id: None,
    }));
    out.extend(steps.into_iter().map(ShipRecord::Step));
    out
}
