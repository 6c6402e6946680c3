//! An application on sqlx's SQLite driver that records one X-Ray step.
//!
//! Usage: `xray-embedding-sqlx-app <outbox path>`. Opens its own SQLite
//! database with sqlx, asks it for its version inside an async
//! `#[xray::step]` run in an execution, flushes the outbox, prints the
//! version and exits 0.

use sqlx::sqlite::SqlitePool;

#[xray::step(skip(db))]
async fn sqlite_version(db: &SqlitePool) -> Result<String, sqlx::Error> {
    sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(db)
        .await
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let outbox = std::env::args_os()
        .nth(1)
        .ok_or("usage: xray-embedding-sqlx-app <outbox path>")?;
    let guard = xray::Config::from_env()
        .outbox(outbox)
        .project("embedding")
        .init()?;

    let db = SqlitePool::connect("sqlite::memory:").await?;
    let version = xray::execution("sqlx_app")
        .run_async(sqlite_version(&db))
        .await?;
    db.close().await;
    guard.flush()?;
    println!("{version}");
    Ok(())
}
