//! What only the embedded SQLite store has, against real files in
//! temporary directories: the file and its directory, WAL, other
//! processes opening or locking the same file, and the FTS5 index kept
//! current by triggers. Its behaviour as a backend is in `tests/parity/`.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use rusqlite::Connection;
use serde_json::json;
use support::records::{execution, filter_step, new_id, step};
use xray_collector::backend::{sqlite::SqliteStore, Migrations, QueryStore, Store, StoreError};

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested").join("xray.db")
}

async fn migrated_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&store_path(&dir)).unwrap();
    store.migrate_up().await.unwrap();
    (dir, store)
}

/// A second, independent connection to the store's file.
fn raw(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn
}

/// FTS5's own check that the index matches the `steps` table.
/// Indexes what the writes noted for search.
async fn catch_up(store: &SqliteStore) {
    xray_collector::indexing::catch_up(store).await.unwrap();
}

fn assert_search_index_consistent(path: &Path) {
    raw(path)
        .execute(
            "INSERT INTO steps_fts (steps_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .expect("steps_fts disagrees with steps");
}

#[tokio::test]
async fn the_store_file_is_created_with_its_directory_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("xray.db");
    let store = SqliteStore::open(&path).unwrap();
    assert!(path.is_file());
    assert_eq!(store.path(), path);
    let mode: String = raw(&path)
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn two_processes_opening_a_fresh_store_at_once_migrate_it_once() {
    let all: Vec<i64> = xray_collector::backend::sqlite::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let path = store_path(&dir);
        let start = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (path, start) = (path.clone(), Arc::clone(&start));
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    start.wait();
                    let store = SqliteStore::open(&path).unwrap();
                    runtime.block_on(store.migrate_up()).unwrap()
                })
            })
            .collect();
        let mut applied: Vec<Vec<i64>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        applied.sort();
        assert_eq!(
            applied,
            [vec![], all.clone()],
            "exactly one of them applied the migrations"
        );
        let rows: i64 = raw(&path)
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, all.len() as i64);
    }
}

#[tokio::test]
async fn a_store_locked_by_another_process_is_unavailable_and_retriable() {
    let (dir, store) = migrated_store().await;
    let other = raw(&store_path(&dir));
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store
        .write(&[execution(new_id()).record()])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.is_retriable());
    other.execute_batch("ROLLBACK").unwrap();
    store.write(&[execution(new_id()).record()]).await.unwrap();
}

#[tokio::test]
async fn the_search_index_agrees_with_the_steps_through_rewrites_and_deletes() {
    let (dir, store) = migrated_store().await;
    let path = store_path(&dir);
    let (gone, kept, s1, s2) = (new_id(), new_id(), new_id(), new_id());
    let batch = [
        execution(gone).running().seq(1).record(),
        filter_step(s1, gone).running().seq(2).record(),
        filter_step(s1, gone).seq(3).record(),
        execution(kept).seq(4).record(),
        step(s2, kept)
            .output(json!({"title": "ceramic mug"}))
            .seq(5)
            .record(),
    ];
    store.write(&batch).await.unwrap();
    catch_up(&store).await;
    assert_search_index_consistent(&path);

    // The same records again, together and one by one.
    store.write(&batch).await.unwrap();
    for record in &batch {
        store.write(std::slice::from_ref(record)).await.unwrap();
    }
    catch_up(&store).await;
    assert_search_index_consistent(&path);

    // An end replacing the output (the update trigger).
    store
        .write(&[step(s2, kept)
            .output(json!({"title": "enamel mug"}))
            .seq(6)
            .record()])
        .await
        .unwrap();
    catch_up(&store).await;
    assert_search_index_consistent(&path);

    // A cascade from the execution (the delete trigger).
    raw(&path)
        .execute("DELETE FROM executions WHERE id = ?1", [gone.to_string()])
        .unwrap();
    catch_up(&store).await;
    assert_search_index_consistent(&path);
    assert!(store.search("walrus", 10, None).await.unwrap().is_empty());
    assert_eq!(store.search("enamel", 10, None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_search_past_its_deadline_is_interrupted_and_the_store_goes_on() {
    let (_dir, store) = migrated_store().await;
    let kept = new_id();
    let mut batch = vec![execution(kept).record()];
    batch.extend((0..300).map(|i| {
        step(new_id(), kept)
            .output(json!({"note": format!("walrus number {i}")}))
            .record()
    }));
    store.write(&batch).await.unwrap();
    catch_up(&store).await;
    // A deadline already past: SQLite's progress handler stops the
    // statement at its first check.
    let stopped = store
        .search("walrus", 10, Some(Duration::ZERO))
        .await
        .expect_err("a search with no time left is stopped");
    assert!(matches!(stopped, StoreError::TimedOut(_)), "{stopped:?}");
    assert!(stopped.to_string().contains("interrupt"), "{stopped}");
    // The handler is gone: the next statements on the connection run.
    assert_eq!(store.search("walrus", 10, None).await.unwrap().len(), 10);
    assert_eq!(
        store
            .search("walrus", 500, Some(Duration::from_secs(10)))
            .await
            .unwrap()
            .len(),
        300
    );
    assert!(store.execution_head(kept).await.unwrap().is_some());
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_store_its_directory_and_its_wal_files_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/xray.db");
    let store = SqliteStore::open(&path).unwrap();
    store.migrate_up().await.unwrap();
    let id = new_id();
    store.write(&[execution(id).record()]).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    assert_eq!(mode(&dir.path().join("a/b")), 0o700);
    // While the store is open its WAL and shared-memory files exist.
    for file in ["xray.db", "xray.db-wal", "xray.db-shm"] {
        let p = dir.path().join("a/b").join(file);
        assert_eq!(mode(&p), 0o600, "{file}");
    }
    drop(store);
    // An existing directory keeps its mode.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _second = SqliteStore::open(&shared.join("xray.db")).unwrap();
    assert_eq!(mode(&shared), 0o755);
    assert_eq!(mode(&shared.join("xray.db")), 0o600);
}
