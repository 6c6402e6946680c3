//! Writes one large execution straight into a store, for trying the
//! reader (CLI `show`, `serve`) at scale and for the figures in
//! BENCHMARKS.md: `rank_catalog`, batches of 100 scoring steps with the
//! SDK benches' 393-byte `Query` input, three decisions each (the price
//! filter rejects one), an LLM re-rank under every tenth (see
//! `tests/support/big.rs`).
//!
//! ```text
//! cargo run --release -p xray-collector --example big_execution -- --steps 200000 --store /tmp/big.db
//! cargo run --release -p xray-collector --example big_execution -- --steps 100000 --database-url postgres://…
//! ```
//!
//! Prints the execution's id on stdout; progress goes to stderr.

#[path = "../tests/support/big.rs"]
mod big;
#[path = "support/open.rs"]
mod open;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use uuid::Uuid;
use xray_collector::backend::Store;

/// Writes one large execution into a store.
#[derive(Parser, Debug)]
struct Args {
    /// How many steps (at least 1).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    steps: u64,
    /// The embedded store's file (created and migrated if needed).
    #[arg(long, default_value = ".xray/xray.db")]
    store: PathBuf,
    /// A PostgreSQL URL instead of the embedded store (migrated if needed).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The execution's id (default: a new one).
    #[arg(long)]
    id: Option<Uuid>,
}

/// Records per write: one transaction each.
const BATCH: usize = 5_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = open::migrated_store(&args.store, args.database_url.as_deref()).await?;
    let id = args.id.unwrap_or_else(|| {
        uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
    });
    let steps = args.steps as usize;
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    let mut written = 0usize;
    for record in big::records(id, steps) {
        batch.push(record);
        if batch.len() == BATCH {
            store.write(&batch).await.context("cannot write")?;
            written += batch.len();
            batch.clear();
            eprint!("\r{written} records written");
        }
    }
    store.write(&batch).await.context("cannot write")?;
    written += batch.len();
    eprintln!(
        "\r{written} records ({steps} steps) written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("{id}");
    Ok(())
}
