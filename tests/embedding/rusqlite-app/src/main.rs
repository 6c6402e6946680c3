//! An application on rusqlite that records one X-Ray step.
//!
//! Usage: `<binary> <outbox path>`. Opens its own SQLite database with
//! rusqlite, asks it for its version inside an `#[xray::step]` run in an
//! execution, flushes the outbox, prints the version and exits 0.

use rusqlite::Connection;

#[xray::step(skip(db))]
fn sqlite_version(db: &Connection) -> rusqlite::Result<String> {
    db.query_row("SELECT sqlite_version()", [], |row| row.get(0))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let outbox = std::env::args_os().nth(1).ok_or(concat!(
        "usage: ",
        env!("CARGO_BIN_NAME"),
        " <outbox path>"
    ))?;
    let guard = xray::Config::from_env()
        .outbox(outbox)
        .project("embedding")
        .init()?;

    let db = Connection::open_in_memory()?;
    let version = xray::execution("rusqlite_app").run(|| sqlite_version(&db))?;
    guard.flush()?;
    println!("{version}");
    Ok(())
}
