//! Shared by the examples: ship the outbox into the embedded store with the
//! collector's library (in-process), then read the execution back and print
//! it — what `xray-collector run --once` and `xray-collector show` do.
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) set, the
//! trace is also exported over OTLP, as `run --otlp-endpoint` does; with
//! `XRAY_REASONER=llm` (and `XRAY_LLM_*`), steps are explained by a model.

use std::path::PathBuf;
use std::sync::Arc;

use xray_collector::backend::{AnyStore, Migrations, QueryStore, Store};
use xray_collector::otlp::{OtlpConfig, OtlpSink};
use xray_collector::reason::config::Reasoner;
use xray_collector::reasoning::Reasoners;
use xray_collector::render::{self, Style};
use xray_collector::ship::{Metrics, ShipConfig, Shipper};

/// The outbox the SDK wrote (`XRAY_OUTBOX`, default `.xray/outbox.db`).
pub fn outbox_path() -> PathBuf {
    std::env::var_os("XRAY_OUTBOX").map_or_else(|| PathBuf::from(".xray/outbox.db"), PathBuf::from)
}

/// The embedded store (`XRAY_STORE`, default `.xray/xray.db`).
pub fn store_path() -> PathBuf {
    std::env::var_os("XRAY_STORE").map_or_else(|| PathBuf::from(".xray/xray.db"), PathBuf::from)
}

type Error = Box<dyn std::error::Error>;

/// Ships `outboxes` into the embedded store (and, with
/// `OTEL_EXPORTER_OTLP_ENDPOINT` set, over OTLP), as `run --once` does.
async fn ship(outboxes: Vec<PathBuf>) -> Result<Arc<AnyStore>, Error> {
    let store = Arc::new(AnyStore::sqlite(&store_path()).await?);
    store.migrate_up().await?;
    store
        .set_model_prices(&xray_collector::cost::from_env()?)
        .await?;
    let otlp = OtlpConfig::resolve(None, |name| std::env::var(name).ok())?;
    let config = ShipConfig {
        outboxes: outboxes.clone(),
        other_sinks: otlp.iter().map(|_| xray_collector::otlp::SINK).collect(),
        ..ShipConfig::default()
    };
    let exporting = match otlp {
        Some(otlp) => {
            let endpoint = otlp.endpoint_shown();
            let sink = OtlpSink::new(
                otlp,
                outboxes,
                vec![xray_collector::ship::SINK],
                store.clone(),
                Arc::new(Metrics::default()),
                true,
            )?;
            let (_never, stop) = tokio::sync::watch::channel(false);
            Some((endpoint, tokio::spawn(async move { sink.run(stop).await })))
        }
        None => None,
    };
    let summary = Shipper::ship_once(store.clone(), config).await;
    // As `run --once`: the search index, and the explanations it queues
    // (by the reasoner XRAY_REASONER names: the rules, or an LLM too).
    xray_collector::indexing::catch_up(&*store).await?;
    let reasoner = Reasoner::resolve(|name| std::env::var(name).ok())?;
    Reasoners::new(reasoner)?.catch_up(&*store).await?;
    if let Some((endpoint, exporting)) = exporting {
        println!(
            "exported {} spans over OTLP to {endpoint}",
            exporting.await?
        );
    }
    println!(
        "shipped {} outbox rows into {} ({} dead-lettered)\n",
        summary.rows,
        store_path().display(),
        summary.dead_letters
    );
    Ok(store)
}

fn style() -> Style {
    Style {
        colour: std::io::IsTerminal::is_terminal(&std::io::stdout()),
    }
}

/// Execution `id` as `show` prints it.
async fn print_tree(store: &AnyStore, id: uuid::Uuid) -> Result<(), Error> {
    let detail = store
        .execution(id)
        .await?
        .ok_or("the execution was not shipped")?;
    print!("{}", render::execution_tree(&detail, false, style()));
    Ok(())
}

fn print_more(execution_id: &str) {
    println!(
        "\nmore: cargo run -p xray-collector -- show {execution_id} --full   (or: executions, why, search, stats)"
    );
    println!(
        "in a browser: cargo run -p xray-collector -- serve   then open http://127.0.0.1:7373/executions/{execution_id}"
    );
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Flushes, ships, and prints execution `execution_id` as a tree, then the
/// path of each candidate in `why`.
#[allow(dead_code)] // (not every example uses every helper)
pub fn ship_and_show(guard: &xray::Guard, execution_id: &str, why: &[&str]) -> Result<(), Error> {
    guard.flush()?;
    runtime()?.block_on(async {
        let store = ship(vec![outbox_path()]).await?;
        let id = uuid::Uuid::parse_str(execution_id)?;
        print_tree(&store, id).await?;
        for candidate in why {
            println!();
            print!(
                "{}",
                render::why(&id, candidate, &store.why(id, candidate).await?, style())
            );
        }
        print_more(execution_id);
        Ok(())
    })
}

/// Flushes, ships `outboxes` (this process's and another service's), and
/// prints execution `execution_id`, then the latest execution of project
/// `other` — the other service's half of the same trace — and the trace
/// they share.
#[allow(dead_code)] // (not every example uses every helper)
pub fn ship_and_show_all(
    guard: &xray::Guard,
    outboxes: &[PathBuf],
    execution_id: &str,
    other: &str,
) -> Result<(), Error> {
    guard.flush()?;
    runtime()?.block_on(async {
        let store = ship(outboxes.to_vec()).await?;
        let id = uuid::Uuid::parse_str(execution_id)?;
        print_tree(&store, id).await?;
        let page = store
            .executions(&xray_collector::query::ExecutionFilter {
                project: Some(other.to_owned()),
                limit: 1,
                ..Default::default()
            })
            .await?;
        let theirs = page
            .executions
            .first()
            .ok_or("the other service recorded nothing")?;
        println!();
        print_tree(&store, theirs.id).await?;
        let ours = store.execution_head(id).await?.ok_or("not shipped")?;
        let other_head = store
            .execution_head(theirs.id)
            .await?
            .ok_or("not shipped")?;
        println!(
            "\none trace: {} — {} ({}) called {} ({}), which continues span {}",
            ours.trace.trace_id.as_deref().unwrap_or("?"),
            ours.summary.name,
            ours.summary.project,
            other_head.summary.name,
            other_head.summary.project,
            other_head
                .trace
                .parent_span_id
                .as_deref()
                .unwrap_or("(none)"),
        );
        if ours.trace.trace_id != other_head.trace.trace_id {
            return Err("the two halves are not in one trace".into());
        }
        print_more(execution_id);
        Ok(())
    })
}
