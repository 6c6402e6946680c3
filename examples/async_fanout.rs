//! Work spread over tokio tasks and OS threads stays in its execution when
//! the span is propagated the `tracing` way: `.instrument(Span::current())`
//! for tasks, `span.in_scope(..)` for threads.
//!
//! `cargo run --example async_fanout`

#[path = "support/trace.rs"]
mod trace;

use std::time::Duration;

use tracing::Instrument;

#[xray::step(kind = "search")]
async fn search_shard(shard: u32, query: String) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(5 * u64::from(shard))).await;
    (0..2).map(|i| format!("{query}-s{shard}-{i}")).collect()
}

#[xray::step(kind = "rank")]
fn rerank(mut hits: Vec<String>) -> Vec<String> {
    hits.sort();
    hits.truncate(3);
    for h in &hits {
        xray::accept(h, "top3", "kept");
    }
    hits
}

#[xray::step]
async fn fan_out(query: String) -> Vec<String> {
    let mut tasks = Vec::new();
    for shard in 0..4 {
        // Without `.instrument(..)` the task's steps would start implicit
        // executions of their own: the classic orphaned-children problem.
        let task = search_shard(shard, query.clone()).instrument(tracing::Span::current());
        tasks.push(tokio::spawn(task));
    }
    let mut hits = Vec::new();
    for t in tasks {
        hits.extend(t.await.expect("shard task"));
    }
    let span = tracing::Span::current();
    std::thread::spawn(move || span.in_scope(|| rerank(hits)))
        .join()
        .expect("rerank thread")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = xray::Config::from_env().project("search").init()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let (top, id) = rt.block_on(
        xray::execution("fanout_search")
            .run_async(async { (fan_out("laptop".into()).await, xray::current_execution_id()) }),
    );
    println!("top: {top:?}");
    let id = id.ok_or("X-Ray is disabled: nothing was recorded")?;
    trace::ship_and_show(&guard, &id, &[])
}
