//! Shared by the examples: ship the outbox into the embedded store with the
//! collector's library (in-process), then read the execution back and print
//! it — what `xray-collector run --once` and `xray-collector show` do.
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) set, the
//! trace is also exported over OTLP, as `run --otlp-endpoint` does.

use std::path::PathBuf;
use std::sync::Arc;

use xray_collector::backend::{AnyStore, Migrations, QueryStore};
use xray_collector::otlp::{OtlpConfig, OtlpSink};
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

/// Flushes, ships, and prints execution `execution_id` as a tree, then the
/// path of each candidate in `why`.
pub fn ship_and_show(
    guard: &xray::Guard,
    execution_id: &str,
    why: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    guard.flush()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Arc::new(AnyStore::sqlite(&store_path()).await?);
        store.migrate_up().await?;
        let otlp = OtlpConfig::resolve(None, |name| std::env::var(name).ok())?;
        let config = ShipConfig {
            outboxes: vec![outbox_path()],
            other_sinks: otlp.iter().map(|_| xray_collector::otlp::SINK).collect(),
            ..ShipConfig::default()
        };
        let exporting = match otlp {
            Some(otlp) => {
                let endpoint = otlp.endpoint.to_string();
                let sink = OtlpSink::new(
                    otlp,
                    vec![outbox_path()],
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
        if let Some((endpoint, exporting)) = exporting {
            println!("exported {} spans over OTLP to {endpoint}", exporting.await?);
        }
        println!(
            "shipped {} outbox rows into {} ({} dead-lettered)\n",
            summary.rows,
            store_path().display(),
            summary.dead_letters
        );
        let id = uuid::Uuid::parse_str(execution_id)?;
        let style = Style {
            colour: std::io::IsTerminal::is_terminal(&std::io::stdout()),
        };
        let detail = store.execution(id).await?.ok_or("the execution was not shipped")?;
        print!("{}", render::execution_tree(&detail, false, style));
        for candidate in why {
            println!();
            print!("{}", render::why(&id, candidate, &store.why(id, candidate).await?, style));
        }
        println!(
            "\nmore: cargo run -p xray-collector -- show {execution_id} --full   (or: executions, why, search, stats)"
        );
        println!(
            "in a browser: cargo run -p xray-collector -- serve   then open http://127.0.0.1:7373/executions/{execution_id}"
        );
        Ok(())
    })
}
