//! Applications that already use SQLite can add xray-sdk.
//!
//! Cargo links a `links = "sqlite3"` crate (libsqlite3-sys) once per build,
//! so xray-sdk's rusqlite must resolve to the same libsqlite3-sys as the
//! application's own SQLite library. Each crate under `tests/embedding/` is
//! such an application, outside the workspace with its own committed
//! lockfile: it is built with `cargo run --locked`, records one step, and the
//! outbox it wrote is read back here.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds and runs the application in `tests/embedding/<app>` with an outbox
/// in a fresh directory; returns the outbox path and what the program
/// printed. Panics with cargo's output if it fails to build or run.
fn run_embedding_app(app: &str) -> (tempfile::TempDir, PathBuf, String) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/embedding")
        .join(app)
        .join("Cargo.toml");
    // One target directory for every application, kept between runs so that
    // only the first run pays for the build.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("embedding");
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");

    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .arg("run")
        .arg("--locked")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--")
        .arg(&outbox);
    // The application reads `Config::from_env()`: this shell's X-Ray settings
    // (XRAY_DISABLED, a sample rate…) must not decide what it records.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("XRAY_") {
            cargo.env_remove(key);
        }
    }
    let output = cargo
        .output()
        .unwrap_or_else(|e| panic!("cannot start cargo for {}: {e}", manifest.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`cargo run --locked --manifest-path {}` failed ({}).\n\
         If the lockfile needs updating (xray-sdk's dependencies changed), run\n\
         `cargo update --manifest-path {} -p xray-sdk` and commit it.\n\
         --- stdout ---\n{stdout}\n--- stderr ---\n{}",
        manifest.display(),
        output.status,
        manifest.display(),
        String::from_utf8_lossy(&output.stderr),
    );
    (dir, outbox, stdout.trim().to_owned())
}

/// Asserts that `outbox` holds the finished, successful execution `execution`
/// with the finished, successful step `sqlite_version` inside it, whose output
/// is the SQLite version the application printed.
fn assert_recorded(outbox: &Path, execution: &str, printed_version: &str) {
    let conn = rusqlite::Connection::open(outbox).unwrap();
    let (execution_id, status): (String, String) = conn
        .query_row(
            "SELECT id, status FROM xray_outbox
             WHERE record_type = 'execution' AND phase = 'end' AND name = ?1",
            [execution],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or_else(|e| panic!("no finished execution {execution:?} in the outbox: {e}"));
    assert_eq!(status, "ok", "execution {execution:?}");

    let (status, output): (String, Option<String>) = conn
        .query_row(
            "SELECT status, output FROM xray_outbox
             WHERE record_type = 'step' AND phase = 'end'
               AND name = 'sqlite_version' AND execution_id = ?1",
            [&execution_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or_else(|e| panic!("no finished step sqlite_version in {execution:?}: {e}"));
    assert_eq!(status, "ok");
    assert_eq!(
        output.as_deref(),
        Some(serde_json::to_string(printed_version).unwrap().as_str()),
        "the step's output is the version the application read with its own SQLite library"
    );
}

#[test]
fn an_application_on_the_newest_rusqlite_can_embed_xray() {
    let (_dir, outbox, version) = run_embedding_app("rusqlite-app");
    assert_recorded(&outbox, "rusqlite_app", &version);
}

#[test]
fn an_application_on_the_oldest_rusqlite_in_the_range_can_embed_xray() {
    let (_dir, outbox, version) = run_embedding_app("rusqlite-oldest-app");
    assert_recorded(&outbox, "rusqlite_app", &version);
}

#[test]
fn an_application_on_sqlx_sqlite_can_embed_xray() {
    let (_dir, outbox, version) = run_embedding_app("sqlx-app");
    assert_recorded(&outbox, "sqlx_app", &version);
}
