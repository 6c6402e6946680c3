//! The canonical X-Ray pipeline: pick a competitor product for a seller's
//! product. Generate keywords (a deterministic stand-in for an LLM, with
//! token usage) → search a built-in catalogue → filter candidates by price,
//! rating and category (recording every decision and its reason) → score
//! relevance → rank and select.
//!
//! Run it with `cargo run --example competitor_selection`. It records into
//! the outbox (`XRAY_OUTBOX`, default `.xray/outbox.db`), ships the outbox
//! into the embedded store (`XRAY_STORE`, default `.xray/xray.db`) with the
//! collector's library, and prints the execution as a tree and the path of
//! two candidates through it.

#[path = "support/trace.rs"]
mod trace;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
struct Product {
    asin: String,
    title: String,
    price: f64,
    rating: f32,
    category: String,
}

fn product(asin: &str, title: &str, price: f64, rating: f32, category: &str) -> Product {
    Product {
        asin: asin.into(),
        title: title.into(),
        price,
        rating,
        category: category.into(),
    }
}

fn catalogue() -> Vec<Product> {
    vec![
        product(
            "B01STAND",
            "Aluminium laptop stand, adjustable",
            39.99,
            4.6,
            "office",
        ),
        product(
            "B02STAND",
            "Bamboo laptop stand with drawer",
            54.00,
            4.4,
            "office",
        ),
        product(
            "B03RISER",
            "Monitor riser, steel mesh",
            24.50,
            4.1,
            "office",
        ),
        product(
            "B07XPRO",
            "Pro laptop stand, carbon fibre",
            79.99,
            4.8,
            "office",
        ),
        product("B04CHEAP", "Plastic laptop stand", 9.99, 3.2, "office"),
        product("B05TRAY", "Lap desk tray with cushion", 29.99, 4.3, "home"),
        product(
            "B06STAND",
            "Foldable laptop stand, portable",
            19.99,
            4.5,
            "office",
        ),
        product(
            "B08COOL",
            "Cooling pad laptop stand with fans",
            34.99,
            4.0,
            "electronics",
        ),
        product(
            "B09ERGO",
            "Ergonomic vertical laptop stand",
            44.00,
            4.7,
            "office",
        ),
        product(
            "B10MUG",
            "Coffee mug 'I love laptops'",
            12.00,
            4.9,
            "kitchen",
        ),
    ]
}

#[derive(Debug, Clone, Serialize)]
struct Criteria {
    max_price: f64,
    min_rating: f32,
    category: &'static str,
}

/// A deterministic stand-in for an LLM call that proposes search keywords.
#[xray::step(kind = "llm")]
fn generate_keywords(title: &str) -> Vec<String> {
    let words: Vec<String> = title
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 3)
        .map(str::to_owned)
        .collect();
    let mut keywords = vec![words.join(" ")];
    keywords.extend(words.iter().filter(|w| *w != "with").cloned());
    xray::llm_usage(
        "keyword-model-v1",
        42 + title.len() as u64 / 4,
        3 * keywords.len() as u64,
    );
    xray::reason(format!("split the title into {} keywords", keywords.len()));
    keywords
}

#[xray::step(kind = "search")]
fn search(keywords: &[String], catalogue: &[Product]) -> Vec<Product> {
    let hits: Vec<Product> = catalogue
        .iter()
        .filter(|p| {
            let title = p.title.to_lowercase();
            keywords.iter().skip(1).any(|k| title.contains(k.as_str()))
        })
        .cloned()
        .collect();
    xray::attr("catalogue_size", &catalogue.len());
    hits
}

#[xray::step(kind = "filter")]
fn filter_candidates(candidates: &[Product], criteria: &Criteria) -> Vec<Product> {
    let mut kept = Vec::new();
    for c in candidates {
        if c.price > criteria.max_price {
            xray::reject(
                &c.asin,
                "price",
                format!("{} > max {}", c.price, criteria.max_price),
            );
        } else if c.rating < criteria.min_rating {
            xray::reject(
                &c.asin,
                "rating",
                format!("{} < min {}", c.rating, criteria.min_rating),
            );
        } else if c.category != criteria.category {
            xray::reject(
                &c.asin,
                "category",
                format!("{} is not {}", c.category, criteria.category),
            );
        } else {
            xray::accept(&c.asin, "all", "within price, rating and category");
            kept.push(c.clone());
        }
    }
    kept
}

/// LLM-style relevance: word overlap with the seller's title, deterministic.
#[xray::step(kind = "llm")]
fn score_relevance(seller: &Product, candidates: &[Product]) -> Vec<(String, f64)> {
    let seller_words: Vec<String> = seller
        .title
        .to_lowercase()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut scores = Vec::new();
    for c in candidates {
        let title = c.title.to_lowercase();
        let overlap = seller_words
            .iter()
            .filter(|w| title.contains(w.as_str()))
            .count();
        let score =
            overlap as f64 / seller_words.len() as f64 * 0.7 + f64::from(c.rating) / 5.0 * 0.3;
        xray::score(&c.asin, score);
        scores.push((c.asin.clone(), (score * 1000.0).round() / 1000.0));
    }
    xray::llm_usage(
        "relevance-model-v1",
        80 * candidates.len() as u64,
        5 * candidates.len() as u64,
    );
    scores
}

#[xray::step(kind = "rank")]
fn rank_and_select(scores: Vec<(String, f64)>) -> Option<String> {
    let mut ranked = scores;
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    if let Some((best, score)) = ranked.first() {
        xray::accept(best, "rank", format!("highest relevance {score}"));
        for (asin, s) in ranked.iter().skip(1) {
            xray::reject(asin, "rank", format!("relevance {s} below {score}"));
        }
    }
    ranked.first().map(|(asin, _)| asin.clone())
}

fn pipeline(seller: &Product) -> Option<String> {
    let keywords = generate_keywords(&seller.title);
    let candidates = search(&keywords, &catalogue());
    let criteria = Criteria {
        max_price: 50.0,
        min_rating: 4.0,
        category: "office",
    };
    let kept = filter_candidates(&candidates, &criteria);
    let scores = score_relevance(seller, &kept);
    rank_and_select(scores)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = xray::Config::from_env().project("shop").init()?;

    let seller = product(
        "B00SELLER",
        "Adjustable aluminium laptop stand",
        45.0,
        4.5,
        "office",
    );
    let (chosen, execution_id) = xray::execution("competitor_selection")
        .metadata("seller_asin", &seller.asin)
        .run(|| (pipeline(&seller), xray::current_execution_id()));

    println!("chosen competitor: {}", chosen.as_deref().unwrap_or("none"));
    let execution_id =
        execution_id.ok_or("X-Ray is disabled (XRAY_DISABLED): nothing was recorded")?;
    // Why was the pro stand (best rated) not chosen? Why did the winner win?
    trace::ship_and_show(
        &guard,
        &execution_id,
        &["B07XPRO", chosen.as_deref().unwrap_or("B01STAND")],
    )
}
