//! `run`: ship outboxes to the backend, once or until SIGINT/SIGTERM, with
//! `/healthz` and `/metrics` on `--listen`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::watch;
use xray_collector::backend::{AnyStore, Migrations, Store};
use xray_collector::migrate::MigrateError;
use xray_collector::otlp::{OtlpConfig, OtlpSink};
use xray_collector::query::parse_duration;
use xray_collector::reason::config::Reasoner;
use xray_collector::reasoning::{Explained, Reasoners};
use xray_collector::ship::{Backoff, Metrics, ShipConfig, Shipper};
use xray_collector::{indexing, retention};

use super::{describe_backend, open_store, Backend, Missing, UsageError};

#[derive(clap::Args, Debug)]
pub(super) struct RunArgs {
    /// An outbox to ship (repeatable); default XRAY_OUTBOX or .xray/outbox.db.
    #[arg(long = "outbox")]
    outboxes: Vec<PathBuf>,
    /// Ship everything in the outboxes at start, then exit.
    #[arg(long)]
    once: bool,
    /// Serve /healthz and /metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Do not apply pending migrations at start.
    #[arg(long)]
    no_migrate: bool,
    /// Most rows per batch.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch_rows: u32,
    /// Delete executions that started longer ago than this (30d, 12h),
    /// with their steps: at start and then every tenth of it (between a
    /// minute and an hour); with --once, once after shipping.
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    retention: Option<i64>,
    /// Also export every execution and step as OTLP/HTTP protobuf spans to
    /// this receiver (a URL without a path gets /v1/traces); default
    /// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT +
    /// /v1/traces. Headers from OTEL_EXPORTER_OTLP_HEADERS.
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

pub(super) async fn run(args: RunArgs, backend: &Backend) -> anyhow::Result<ExitCode> {
    // Checked before anything starts: a malformed endpoint or header is a
    // usage error.
    let otlp = OtlpConfig::resolve(args.otlp_endpoint.as_deref(), |name| {
        std::env::var(name).ok()
    })
    .map_err(anyhow::Error::msg)?;
    let prices = xray_collector::cost::from_env().map_err(anyhow::Error::msg)?;
    let reasoners = Arc::new(reasoners_from_env()?);
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = args.listen {
        let bound = xray_collector::http::serve(addr, metrics.clone())
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(address = %bound, "serving /healthz and /metrics");
    }
    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping after the batch in hand");
        let _ = stop_tx.send(true);
    });
    let Some(store) = open_for_run(backend, args.no_migrate, &metrics, &mut stop_rx).await? else {
        return Ok(ExitCode::SUCCESS);
    };
    // What LLM usage shipped from now on is priced from.
    store
        .set_model_prices(&prices)
        .await
        .context("cannot write the model prices")?;
    let outboxes = if args.outboxes.is_empty() {
        vec![std::env::var_os("XRAY_OUTBOX")
            .map_or_else(|| PathBuf::from(".xray/outbox.db"), PathBuf::from)]
    } else {
        args.outboxes
    };
    let config = ShipConfig {
        outboxes: outboxes.clone(),
        once: args.once,
        other_sinks: if otlp.is_some() {
            vec![xray_collector::otlp::SINK]
        } else {
            Vec::new()
        },
        batch_rows: args.batch_rows as usize,
        #[cfg(feature = "fault-injection")]
        fault: xray_collector::ship::Fault::from_env(),
        ..ShipConfig::default()
    };
    let store = Arc::new(store);
    let keeping = match args.retention {
        Some(retention) if !args.once => {
            let (store, stop) = (store.clone(), stop_rx.clone());
            Some(tokio::spawn(async move {
                retention::keep(&*store, retention, stop).await
            }))
        }
        _ => None,
    };
    let indexing = if args.once {
        None
    } else {
        let (store, stop, metrics) = (store.clone(), stop_rx.clone(), metrics.clone());
        let reasoner = (store.clone(), stop_rx.clone(), reasoners.clone());
        Some(tokio::spawn(async move {
            tokio::join!(
                indexing::keep(&*store, &metrics, stop),
                reasoner.2.keep(&*reasoner.0, &metrics, reasoner.1)
            );
        }))
    };
    let exporting = match otlp {
        Some(otlp) => {
            let sink = OtlpSink::new(
                otlp,
                outboxes,
                vec![xray_collector::ship::SINK],
                store.clone(),
                metrics.clone(),
                args.once,
            )
            .map_err(anyhow::Error::msg)?;
            let stop = stop_rx.clone();
            Some(tokio::spawn(async move { sink.run(stop).await }))
        }
        None => None,
    };
    let shipper = Shipper::new(store.clone(), config, metrics);
    let summary = shipper.run(stop_rx).await;
    if let Some(exporting) = exporting {
        let spans = exporting.await.unwrap_or(0);
        tracing::info!(spans, "exported {spans} spans over OTLP");
    }
    tracing::info!(
        rows = summary.rows,
        batches = summary.batches,
        dead_letters = summary.dead_letters,
        "shipped {} rows in {} batches ({} dead-lettered)",
        summary.rows,
        summary.batches,
        summary.dead_letters
    );
    if let Some(indexing) = indexing {
        let _ = indexing.await;
    } else {
        // What was shipped is found by search when --once returns.
        let indexed = indexing::catch_up(&*store)
            .await
            .context("cannot index the shipped steps for search")?;
        tracing::info!(notes = indexed, "search index current");
        // The indexer queued the steps to explain: explained when --once
        // returns (by the LLM too, when it is the reasoner).
        let explained = reasoners
            .catch_up(&*store)
            .await
            .context("cannot explain the shipped steps")?;
        log_explained(&explained);
    }
    if let Some(keeping) = keeping {
        // It stops at the same signal (between batches).
        let _ = keeping.await;
    } else if let Some(retention) = args.retention {
        retention::prune_older_than(&*store, retention)
            .await
            .context("cannot prune")?;
    }
    Ok(if summary.unreadable_outboxes > 0 && args.once {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// The reasoner `XRAY_REASONER` (and, for `llm`, the `XRAY_LLM_*`
/// variables) ask for, ready to run; a malformed value is a usage error.
pub(super) fn reasoners_from_env() -> anyhow::Result<Reasoners> {
    let reasoner = Reasoner::resolve(|name| std::env::var(name).ok())
        .map_err(|e| anyhow::Error::new(UsageError(e)))?;
    if let Reasoner::Llm(config) = &reasoner {
        tracing::info!(
            endpoint = %config.endpoint_shown(),
            model = %config.model,
            "steps are explained by the rules, then by the LLM"
        );
    }
    Reasoners::new(reasoner).map_err(|e| anyhow::Error::new(UsageError(e)))
}

/// Logs what a reasoning catch-up did.
pub(super) fn log_explained(explained: &Explained) {
    let llm = &explained.llm;
    tracing::info!(
        jobs = explained.by_rules,
        llm_explained = llm.explained,
        llm_failed = llm.failed,
        llm_retries = llm.retried,
        llm_prompt_tokens = llm.prompt_tokens,
        llm_completion_tokens = llm.completion_tokens,
        "reasoning current"
    );
}

/// Opens the backend and migrates it, waiting out a backend that is down
/// (or not migrated yet) with the shipper's backoff; `None` when stopped
/// by a signal meanwhile. Errors that waiting cannot fix end the run.
async fn open_for_run(
    backend: &Backend,
    no_migrate: bool,
    metrics: &Metrics,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<AnyStore>> {
    let backoff = Backoff::default();
    let mut attempt = 0u32;
    loop {
        let (retriable, error) = match open_store(backend, Missing::Create).await {
            Ok(store) if no_migrate => return Ok(Some(store)),
            Ok(store) => match store.migrate_up().await {
                Ok(_) => return Ok(Some(store)),
                Err(e @ MigrateError::Backend(_)) => (true, anyhow::Error::new(e)),
                Err(e) => return Err(e.into()),
            },
            Err(e) => (e.is_retriable(), anyhow::Error::new(e)),
        };
        if !retriable {
            return Err(error.context(describe_backend(backend)));
        }
        let wait = backoff.delay(attempt);
        let text = format!("{:#}", error.context(describe_backend(backend)));
        tracing::warn!(error = %text, retry_in = ?wait, "the backend is not ready");
        metrics.set_backend_problem(text);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return Ok(None),
        }
    }
}

pub(super) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
