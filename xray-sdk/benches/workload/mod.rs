//! The workload every capture benchmark runs, shared so that their figures
//! compare: a seller's query with candidates, and a cheap function choosing
//! one. Included by `step.rs` and `scaling.rs` (as `mod workload;`) and by
//! `xray-collector/benches/latency.rs` (by path); each uses part of it.
#![allow(dead_code)]

use serde::Serialize;

/// A candidate product.
#[derive(Debug, Clone, Serialize)]
pub struct Product {
    pub asin: String,
    pub title: String,
    pub price: f64,
    pub rating: f64,
    pub category: String,
}

/// The step's input.
#[derive(Debug, Clone, Serialize)]
pub struct Query {
    pub seller_asin: String,
    pub keywords: Vec<String>,
    pub candidates: Vec<Product>,
}

/// The step's output.
#[derive(Debug, Clone, Serialize)]
pub struct Chosen {
    pub asin: String,
    pub price: f64,
    pub score: f64,
}

const TITLES: [&str; 3] = [
    "Steel water bottle, 32oz",
    "Insulated sports bottle",
    "Hiking flask, 1L",
];

fn empty_query() -> Query {
    Query {
        seller_asin: "B0SELLER01".to_owned(),
        keywords: vec![
            "water bottle".to_owned(),
            "insulated".to_owned(),
            "steel".to_owned(),
        ],
        candidates: Vec::new(),
    }
}

/// The small input of the one-step bench: 3 candidates, 393 bytes of JSON.
pub fn query() -> Query {
    let product = |asin: &str, title: &str, price: f64, rating: f64| Product {
        asin: asin.to_owned(),
        title: title.to_owned(),
        price,
        rating,
        category: "Sports".to_owned(),
    };
    Query {
        candidates: vec![
            product("B07XJ8C8F5", TITLES[0], 24.99, 4.5),
            product("B08QK2R1TM", TITLES[1], 19.49, 4.3),
            product("B09H7ZL6WQ", TITLES[2], 31.0, 4.7),
        ],
        ..empty_query()
    }
}

/// A query whose JSON is at least `target` bytes (3 candidates at the
/// smallest), for the payload-scaling benches.
pub fn query_of_size(target: usize) -> Query {
    let mut q = empty_query();
    let mut i = 0usize;
    while q.candidates.len() < 3 || serde_json::to_string(&q).unwrap().len() < target {
        q.candidates.push(Product {
            asin: format!("B0{:08}", 7_000_000 + i * 7919),
            title: TITLES[i % 3].to_owned(),
            price: 19.49 + (i % 13) as f64,
            rating: 4.0 + (i % 8) as f64 / 10.0,
            category: "Sports".to_owned(),
        });
        i += 1;
    }
    q
}

/// The body every variant runs: score the candidates, return the best.
/// Deliberately cheap (tens of ns), so that the figures are the overhead of
/// each tool rather than the work of the function.
#[inline(always)]
pub fn pick(q: &Query) -> Chosen {
    let mut best: Option<(&Product, f64)> = None;
    for c in &q.candidates {
        let bonus = if c.category == "Sports" { 5.0 } else { 0.0 };
        let score = c.rating * 10.0 + bonus - c.price / 10.0;
        match best {
            Some((_, s)) if s >= score => {}
            _ => best = Some((c, score)),
        }
    }
    let (c, score) = best.expect("the query has candidates");
    Chosen {
        asin: c.asin.clone(),
        price: c.price,
        score,
    }
}

/// [`pick`], without X-Ray.
#[inline(never)]
pub fn choose_plain(q: &Query) -> Chosen {
    pick(q)
}

/// [`pick`], as an X-Ray step.
#[xray::step]
#[inline(never)]
pub fn choose_step(q: &Query) -> Chosen {
    pick(q)
}
