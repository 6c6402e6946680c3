//! Existing `tracing` code, unchanged: `#[tracing::instrument]` functions
//! and events, with a `fmt` layer printing logs and the X-Ray layer
//! recording the same spans as steps, composed in one registry.
//!
//! `cargo run --example tracing_interop`

#[path = "support/trace.rs"]
mod trace;

use tracing_subscriber::prelude::*;

#[tracing::instrument]
fn parse_query(raw: &str) -> Vec<String> {
    let words: Vec<String> = raw.split_whitespace().map(str::to_lowercase).collect();
    tracing::info!(words = words.len(), "parsed the query");
    words
}

#[tracing::instrument(skip(index))]
fn lookup(index: &[(&str, u32)], word: &str) -> Option<u32> {
    let hit = index.iter().find(|(w, _)| *w == word).map(|(_, id)| *id);
    if hit.is_none() {
        tracing::warn!(word, "no document for this word");
    }
    hit
}

#[tracing::instrument(err)]
fn fetch(id: u32) -> Result<String, String> {
    if id == 404 {
        Err(format!("document {id} is gone"))
    } else {
        Ok(format!("document {id}"))
    }
}

/// A new X-Ray step calling the old instrumented code.
#[xray::step(kind = "search")]
fn answer(query: &str) -> Vec<String> {
    let index = [("rust", 1), ("tracing", 2), ("gone", 404)];
    let mut found = Vec::new();
    for word in parse_query(query) {
        if let Some(id) = lookup(&index, &word) {
            match fetch(id) {
                Ok(doc) => {
                    xray::accept(&word, "index", format!("found document {id}"));
                    found.push(doc);
                }
                Err(e) => xray::reject(&word, "fetch", e),
            }
        } else {
            xray::reject(&word, "index", "not in the index");
        }
    }
    found
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (xray_layer, guard) = xray::Config::from_env().project("docs").build()?;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_target(false))
        .with(xray_layer)
        .init();

    let (docs, id) = xray::execution("answer_question").run(|| {
        (
            answer("Rust tracing gone missing"),
            xray::current_execution_id(),
        )
    });
    println!("\nanswer: {docs:?}\n");
    let id = id.ok_or("X-Ray is disabled: nothing was recorded")?;
    trace::ship_and_show(&guard, &id, &["gone"])
}
