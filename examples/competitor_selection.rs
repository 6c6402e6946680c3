//! The canonical X-Ray pipeline: pick a competitor product for a seller's
//! product. Generate keywords (a deterministic stand-in for an LLM, with
//! token usage) → search a built-in catalogue → filter candidates by price,
//! rating and category (recording every decision and its reason) → score
//! relevance → rank and select.
//!
//! Run it with `cargo run --example competitor_selection`. It records into
//! the outbox (`XRAY_OUTBOX`, default `.xray/outbox.db`), then reads the
//! execution back from the outbox and prints it as a tree.

use std::collections::BTreeMap;
use std::path::PathBuf;

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
    let config = xray::Config::from_env().project("shop");
    let outbox = std::env::var_os("XRAY_OUTBOX")
        .map_or_else(|| PathBuf::from(".xray/outbox.db"), PathBuf::from);
    let guard = config.init()?;

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
    guard.flush()?;

    println!("chosen competitor: {}", chosen.as_deref().unwrap_or("none"));
    let stats = xray::stats();
    println!(
        "recorded {} steps into {} ({} dropped)",
        stats.written,
        outbox.display(),
        stats.dropped
    );
    if let Some(id) = execution_id {
        print_trace(&outbox, &id)?;
    }
    Ok(())
}

/// Prints the execution as a tree, read back from the outbox. (The collector
/// ships outboxes to a store with richer queries; this reads the file as is.)
fn print_trace(outbox: &std::path::Path, execution_id: &str) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(outbox)?;
    let mut stmt = conn.prepare(
        "SELECT id, parent_id, name, kind, status, duration_us, input, output, error, decisions
         FROM xray_outbox WHERE execution_id = ?1 AND record_type = 'step'
         ORDER BY seq",
    )?;
    type StepRow = (
        String,
        Option<String>,
        String,
        Option<String>,
        String,
        Option<i64>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let mut steps: BTreeMap<String, StepRow> = BTreeMap::new();
    let mut order = Vec::new();
    for row in stmt.query_map([execution_id], |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
        ))
    })? {
        let row: StepRow = row?;
        if !steps.contains_key(&row.0) {
            order.push(row.0.clone());
        }
        steps.insert(row.0.clone(), row);
    }
    println!("\nexecution {execution_id}");
    fn print(id: &str, depth: usize, steps: &BTreeMap<String, StepRow>, order: &[String]) {
        let (_, _, name, kind, status, duration, input, output, error, decisions) = &steps[id];
        let indent = "  ".repeat(depth);
        let kind = kind
            .as_deref()
            .map(|k| format!(" [{k}]"))
            .unwrap_or_default();
        let ms = duration
            .map(|d| format!("{:.2} ms", d as f64 / 1000.0))
            .unwrap_or_default();
        println!("{indent}├─ {name}{kind} {status} {ms}");
        let preview = |s: &str| {
            if s.len() > 100 {
                format!(
                    "{}…",
                    &s[..s
                        .char_indices()
                        .take_while(|(i, _)| *i < 100)
                        .last()
                        .map_or(0, |(i, c)| i + c.len_utf8())]
                )
            } else {
                s.to_owned()
            }
        };
        if let Some(i) = input {
            println!("{indent}│    in:  {}", preview(i));
        }
        if let Some(o) = output {
            println!("{indent}│    out: {}", preview(o));
        }
        if let Some(e) = error {
            println!("{indent}│    error: {e}");
        }
        if let Some(d) = decisions {
            let decisions: Vec<serde_json::Value> = serde_json::from_str(d).unwrap_or_default();
            let mut rejected_by: BTreeMap<&str, usize> = BTreeMap::new();
            let accepted = decisions.iter().filter(|d| d["accepted"] == true).count();
            for d in decisions.iter().filter(|d| d["accepted"] == false) {
                *rejected_by
                    .entry(d["filter"].as_str().unwrap_or("?"))
                    .or_default() += 1;
            }
            if accepted + rejected_by.values().sum::<usize>() > 0 {
                let by: Vec<String> = rejected_by
                    .iter()
                    .map(|(f, n)| format!("{n} by {f}"))
                    .collect();
                println!(
                    "{indent}│    decisions: {accepted} accepted, rejected {}",
                    if by.is_empty() {
                        "none".to_owned()
                    } else {
                        by.join(", ")
                    }
                );
            }
            // Rejections first: they are what a reader usually asks about.
            for wanted in [false, true] {
                for d in decisions.iter().filter(|d| d["accepted"] == wanted) {
                    println!(
                        "{indent}│    {} {} {} by {}: {}",
                        if wanted { "✓" } else { "✗" },
                        d["candidate_id"].as_str().unwrap_or("?"),
                        if wanted { "accepted" } else { "rejected" },
                        d["filter"].as_str().unwrap_or("?"),
                        d["reason"].as_str().unwrap_or("")
                    );
                }
            }
        }
        for child in order.iter().filter(|c| steps[*c].1.as_deref() == Some(id)) {
            print(child, depth + 1, steps, order);
        }
    }
    for root in order.iter().filter(|c| steps[*c].1.is_none()) {
        print(root, 0, &steps, &order);
    }
    Ok(())
}
