//! Which SQLite files are X-Ray stores. `--store app.db` may name another
//! application's database; opening it as a store would switch it to WAL
//! and add X-Ray's tables. So a file is looked at first through a
//! **read-only** connection — which changes nothing in it — and used only
//! when it is a store:
//!
//! - `PRAGMA application_id` is [`APPLICATION_ID`]: a store (stamped at
//!   creation);
//! - `0` and no tables (a new or empty file, or a store whose migrations
//!   were all reverted): becomes a store, stamped;
//! - `0` with X-Ray's `schema_migrations` holding X-Ray's first migration
//!   (checksum included): a store made before stores were stamped, stamped
//!   now;
//! - anything else — another application id (an X-Ray outbox included),
//!   other tables, not an SQLite file — is refused with a
//!   [`StoreError::Config`] saying what the file is; nothing in it changes.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, MIGRATIONS};
use crate::backend::StoreError;

/// `PRAGMA application_id` of an embedded store: "XRDB" in ASCII (an
/// outbox is "XRAY", [`xray_outbox::APPLICATION_ID`]).
pub const APPLICATION_ID: i64 = 0x5852_4442;

/// What an existing file turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// Stamped as a store.
    Store,
    /// A store to be: empty, or an X-Ray store from before stamping.
    ToStamp,
}

/// Looks at the file at `path` without changing it.
pub(super) fn recognise(path: &Path) -> Result<Found, StoreError> {
    let refuse = |why: String| {
        StoreError::Config(format!(
            "{} is not an X-Ray store ({why}); nothing in it was changed: point --store \
             (XRAY_STORE) at an X-Ray store or at a new file",
            path.display()
        ))
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| super::at_path(path, &e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| super::at_path(path, &e))?;
    let app_id: i64 = match conn.query_row("PRAGMA application_id", [], |r| r.get(0)) {
        Ok(id) => id,
        Err(rusqlite::Error::SqliteFailure(f, _))
            if f.code == rusqlite::ErrorCode::NotADatabase =>
        {
            return Err(refuse("not an SQLite database".into()));
        }
        Err(e) => return Err(super::at_path(path, &e)),
    };
    match app_id {
        APPLICATION_ID => return Ok(Found::Store),
        xray_outbox::APPLICATION_ID => {
            return Err(refuse(
                "it is an X-Ray outbox: give it to `run --outbox`".into(),
            ))
        }
        0 => {}
        other => {
            return Err(refuse(format!(
                "its application_id is {other:#x}: another application's database"
            )))
        }
    }
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| super::at_path(path, &e))?;
    if tables.is_empty() {
        return Ok(Found::ToStamp);
    }
    let first: Option<String> = conn
        .query_row(
            "SELECT checksum FROM schema_migrations WHERE version = 1 AND name = ?1",
            [MIGRATIONS[0].name],
            |r| r.get(0),
        )
        .ok();
    if first == Some(MIGRATIONS[0].checksum()) {
        return Ok(Found::ToStamp);
    }
    let shown: Vec<&str> = tables.iter().take(5).map(String::as_str).collect();
    let more = if tables.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    Err(refuse(format!(
        "it holds tables of something else: {}{more}",
        shown.join(", ")
    )))
}

/// Marks the file of `conn` as a store.
pub(super) fn stamp(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "application_id", APPLICATION_ID)
}
