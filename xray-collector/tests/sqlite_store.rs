//! The embedded SQLite store against real files in temporary directories:
//! migrations, idempotent writes, placeholders, rejection, dead letters,
//! cascades and full-text search.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use rusqlite::Connection;
use serde_json::json;
use support::records::new_id;
use uuid::Uuid;
use xray_collector::backend::{
    sqlite::{SqliteStore, MIGRATIONS},
    DeadLetter, Migrations, QueryStore, Store, StoreError,
};
use xray_collector::migrate::MigrateError;
use xray_collector::model::{Decision, ExecutionRow, LlmUsage, ShipRecord, StepRow};
use xray_collector::query::SearchHit;

const T0: i64 = 1_700_000_000_000_000;

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested").join("xray.db")
}

async fn migrated_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&store_path(&dir)).unwrap();
    store.migrate_up().await.unwrap();
    (dir, store)
}

/// A second, independent connection to the store's file, for looking and
/// tampering.
fn raw(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    conn
}

fn execution(id: Uuid, seq: i64, status: &str) -> ShipRecord {
    let ended = status != "running";
    ShipRecord::Execution(ExecutionRow {
        seq,
        id,
        project: "shop".into(),
        name: "competitor_selection".into(),
        status: status.into(),
        metadata: (!ended).then(|| json!({"seller_asin": "B0SELLER"})),
        outcome: ended.then(|| json!({"chosen": "B0CHOSEN"})),
        error: (status == "error").then(|| "no candidate left".into()),
        started_at_us: T0,
        ended_at_us: ended.then_some(T0 + 5_000),
    })
}

fn step_row(id: Uuid, execution_id: Uuid, seq: i64, status: &str) -> StepRow {
    let ended = status != "running";
    StepRow {
        seq,
        id,
        execution_id,
        parent_id: None,
        project: "shop".into(),
        name: "filter_by_price".into(),
        kind: Some("filter".into()),
        status: status.into(),
        input: Some(json!({"max_price": 30.0})),
        output: ended.then(|| json!(["B0CHOSEN"])),
        error: None,
        attributes: Some(json!({})),
        started_at_us: T0 + 100,
        duration_us: ended.then_some(1_000),
        decisions: Vec::new(),
        llm_usage: Vec::new(),
    }
}

fn step(id: Uuid, execution_id: Uuid, seq: i64, status: &str) -> ShipRecord {
    ShipRecord::Step(step_row(id, execution_id, seq, status))
}

fn step_with_decisions(id: Uuid, execution_id: Uuid, seq: i64) -> ShipRecord {
    let mut s = step_row(id, execution_id, seq, "ok");
    s.decisions = vec![
        Decision {
            candidate_id: "B0CHEAP".into(),
            accepted: Some(true),
            filter: Some("price".into()),
            reason: Some("within budget".into()),
            score: None,
        },
        Decision {
            candidate_id: "B0PRICEY".into(),
            accepted: Some(false),
            filter: Some("price".into()),
            reason: Some("45 > max 30".into()),
            score: Some(0.25),
        },
    ];
    s.llm_usage = vec![LlmUsage {
        model: "gpt-4o-mini".into(),
        prompt_tokens: 120,
        completion_tokens: 30,
    }];
    ShipRecord::Step(s)
}

/// Every row of every table, as text, in a stable order.
fn dump(path: &Path) -> Vec<String> {
    let conn = raw(path);
    let mut out = Vec::new();
    for (table, order) in [
        ("executions", "id"),
        ("steps", "id"),
        ("decisions", "step_id, ordinal"),
        ("llm_usage", "step_id, ordinal"),
        ("dead_letters", "outbox, seq"),
    ] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))
            .unwrap();
        let columns = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                    .collect();
                Ok(format!("{table}: {}", values.join(" | ")))
            })
            .unwrap();
        for row in rows {
            let row = row.unwrap();
            // When a row was written is not part of what it says.
            if table != "dead_letters" {
                out.push(row);
            } else {
                out.push(row.rsplit_once(" | ").unwrap().0.to_owned());
            }
        }
    }
    out
}

/// FTS5's own check that the index matches the `steps` table.
fn assert_search_index_consistent(path: &Path) {
    raw(path)
        .execute(
            "INSERT INTO steps_fts (steps_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .expect("steps_fts disagrees with steps");
}

fn user_tables(path: &Path) -> Vec<String> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             AND name NOT LIKE 'steps_fts_%' ORDER BY name",
        )
        .unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.collect::<Result<_, _>>().unwrap()
}

fn execution_row(path: &Path, id: Uuid) -> (String, String, i64, Option<i64>, String) {
    raw(path)
        .query_row(
            "SELECT name, status, placeholder, ended_at_us, project FROM executions WHERE id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap()
}

fn step_status(path: &Path, id: Uuid) -> (String, Option<i64>, Option<String>) {
    raw(path)
        .query_row(
            "SELECT status, duration_us, output FROM steps WHERE id = ?1",
            [id.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

#[tokio::test]
async fn the_store_file_is_created_with_its_directory() {
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

#[tokio::test]
async fn migrations_go_up_down_and_up_again_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = SqliteStore::open(&path).unwrap();
    let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    let tables = [
        "dead_letters",
        "decisions",
        "executions",
        "llm_usage",
        "schema_migrations",
        "steps",
        "steps_fts",
    ];
    for _ in 0..2 {
        assert_eq!(store.migrate_up().await.unwrap(), all);
        assert_eq!(
            store.migrate_up().await.unwrap(),
            Vec::<i64>::new(),
            "nothing left to apply"
        );
        assert_eq!(user_tables(&path), tables);
        let mut newest_first = all.clone();
        newest_first.reverse();
        assert_eq!(store.migrate_down(all.len()).await.unwrap(), newest_first);
        assert_eq!(user_tables(&path), ["schema_migrations"]);
        assert_eq!(store.migrate_down(1).await.unwrap(), Vec::<i64>::new());
    }
    store.migrate_up().await.unwrap();
    let id = new_id();
    store.write(&[execution(id, 1, "ok")]).await.unwrap();
    assert_eq!(store.count_executions().await.unwrap(), 1);
}

#[tokio::test]
async fn status_lists_each_migration_and_whether_it_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&store_path(&dir)).unwrap();
    let before = store.migrate_status().await.unwrap();
    assert_eq!(before.len(), MIGRATIONS.len());
    assert!(before.iter().all(|s| !s.applied));
    assert_eq!(before[0].version, 1);
    assert_eq!(before[0].name, "init");

    store.migrate_up().await.unwrap();
    assert!(store
        .migrate_status()
        .await
        .unwrap()
        .iter()
        .all(|s| s.applied));
    store.migrate_down(1).await.unwrap();
    let after = store.migrate_status().await.unwrap();
    assert!(!after.last().unwrap().applied);
}

#[tokio::test]
async fn a_schema_newer_than_this_collector_is_refused() {
    let (dir, store) = migrated_store().await;
    raw(&store_path(&dir))
        .execute(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at_us)
             VALUES (999, 'from_the_future', 'x', 0)",
            [],
        )
        .unwrap();
    for err in [
        store.migrate_up().await.unwrap_err(),
        store.migrate_down(1).await.unwrap_err(),
        store.migrate_status().await.unwrap_err(),
    ] {
        assert!(
            matches!(err, MigrateError::NewerSchema { found: 999, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade xray-collector"), "{err}");
    }
    assert!(
        user_tables(&store_path(&dir)).contains(&"steps".to_owned()),
        "down refused, nothing dropped"
    );
}

#[tokio::test]
async fn an_edited_migration_is_refused() {
    let (dir, store) = migrated_store().await;
    raw(&store_path(&dir))
        .execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1",
            [],
        )
        .unwrap();
    let err = store.migrate_up().await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Edited { version: 1, .. }),
        "{err}"
    );
    let err = store.migrate_down(1).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Edited { version: 1, .. }),
        "{err}"
    );
}

#[test]
fn two_processes_opening_a_fresh_store_at_once_migrate_it_once() {
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
            [vec![], vec![1]],
            "exactly one of them applied the migration"
        );
        let rows: i64 = raw(&path)
            .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }
}

#[tokio::test]
async fn writing_the_same_records_twice_leaves_the_same_rows() {
    let (dir, store) = migrated_store().await;
    let path = store_path(&dir);
    let (e, s1, s2) = (new_id(), new_id(), new_id());
    let batch = [
        execution(e, 1, "running"),
        step(s1, e, 2, "running"),
        step(s2, e, 3, "running"),
        step_with_decisions(s1, e, 4),
        step(s2, e, 5, "ok"),
        execution(e, 6, "ok"),
    ];
    store.write(&batch).await.unwrap();
    store
        .dead_letter(&[DeadLetter {
            outbox: "/tmp/outbox.db".into(),
            seq: 7,
            record: json!({"bad": true}),
            reason: "refused".into(),
        }])
        .await
        .unwrap();
    let first = dump(&path);
    assert_eq!(
        first.iter().filter(|r| r.starts_with("decisions:")).count(),
        2
    );
    assert_eq!(
        first.iter().filter(|r| r.starts_with("llm_usage:")).count(),
        1
    );

    store.write(&batch).await.unwrap();
    for record in &batch {
        store.write(std::slice::from_ref(record)).await.unwrap();
    }
    assert_eq!(dump(&path), first);
    assert_eq!(store.count_steps().await.unwrap(), 2);
    assert_eq!(store.count_executions().await.unwrap(), 1);
    assert_search_index_consistent(&path);
}

#[tokio::test]
async fn a_start_arriving_after_the_end_does_not_regress_the_row() {
    let (dir, store) = migrated_store().await;
    let path = store_path(&dir);
    let (e, s) = (new_id(), new_id());
    store
        .write(&[execution(e, 10, "error"), step(s, e, 11, "ok")])
        .await
        .unwrap();
    // In a later batch, and in the same batch after the end.
    store
        .write(&[execution(e, 1, "running"), step(s, e, 2, "running")])
        .await
        .unwrap();
    store
        .write(&[
            step(s, e, 11, "ok"),
            step(s, e, 2, "running"),
            execution(e, 1, "running"),
        ])
        .await
        .unwrap();

    let (name, status, placeholder, ended, _) = execution_row(&path, e);
    assert_eq!(
        (name.as_str(), status.as_str(), placeholder),
        ("competitor_selection", "error", 0)
    );
    assert_eq!(ended, Some(T0 + 5_000));
    let (status, duration, output) = step_status(&path, s);
    assert_eq!((status.as_str(), duration), ("ok", Some(1_000)));
    assert_eq!(output.as_deref(), Some(r#"["B0CHOSEN"]"#));
}

#[tokio::test]
async fn an_end_keeps_what_only_the_start_carried() {
    let (dir, store) = migrated_store().await;
    let e = new_id();
    store.write(&[execution(e, 1, "running")]).await.unwrap();
    store.write(&[execution(e, 2, "ok")]).await.unwrap();
    let metadata: Option<String> = raw(&store_path(&dir))
        .query_row(
            "SELECT metadata FROM executions WHERE id = ?1",
            [e.to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(metadata.as_deref(), Some(r#"{"seller_asin":"B0SELLER"}"#));
}

#[tokio::test]
async fn a_step_before_its_execution_gets_a_placeholder_that_the_execution_replaces() {
    let (dir, store) = migrated_store().await;
    let path = store_path(&dir);

    // Replaced by the execution's start, then its end.
    let (e, s) = (new_id(), new_id());
    store.write(&[step(s, e, 2, "running")]).await.unwrap();
    let (name, status, placeholder, _, project) = execution_row(&path, e);
    assert_eq!(
        (name.as_str(), status.as_str(), placeholder),
        ("(unknown)", "running", 1)
    );
    assert_eq!(project, "shop");

    store.write(&[execution(e, 1, "running")]).await.unwrap();
    let (name, status, placeholder, _, _) = execution_row(&path, e);
    assert_eq!(
        (name.as_str(), status.as_str(), placeholder),
        ("competitor_selection", "running", 0)
    );

    // A later step of the known execution leaves it alone.
    store.write(&[step(new_id(), e, 3, "ok")]).await.unwrap();
    assert_eq!(execution_row(&path, e).0, "competitor_selection");

    store.write(&[execution(e, 4, "ok")]).await.unwrap();
    assert_eq!(execution_row(&path, e).1, "ok");

    // Replaced directly by the end.
    let (e2, s2) = (new_id(), new_id());
    store.write(&[step(s2, e2, 1, "ok")]).await.unwrap();
    store.write(&[execution(e2, 2, "ok")]).await.unwrap();
    let (name, status, placeholder, ended, _) = execution_row(&path, e2);
    assert_eq!(
        (name.as_str(), status.as_str(), placeholder),
        ("competitor_selection", "ok", 0)
    );
    assert_eq!(ended, Some(T0 + 5_000));

    // A step after the execution's end does not reopen it.
    store
        .write(&[step(new_id(), e2, 3, "running")])
        .await
        .unwrap();
    assert_eq!(execution_row(&path, e2).1, "ok");
    assert_eq!(store.count_executions().await.unwrap(), 2);
}

#[tokio::test]
async fn a_record_the_schema_refuses_is_rejected_and_not_retried() {
    let (dir, store) = migrated_store().await;
    let e = new_id();
    let good = execution(e, 1, "running");

    let mut unknown_status = step_row(new_id(), e, 2, "ok");
    unknown_status.status = "exploded".into();
    let mut nameless = step_row(new_id(), e, 2, "ok");
    nameless.name = String::new();

    for bad in [unknown_status, nameless] {
        let err = store
            .write(&[good.clone(), ShipRecord::Step(bad)])
            .await
            .expect_err("the CHECK constraint refuses the step");
        assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
        assert!(!err.is_retriable());
        assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    }
    // The batch is one transaction: the good record went with the bad one.
    assert!(dump(&store_path(&dir)).is_empty());
    store.write(&[good]).await.unwrap();
    assert_eq!(store.count_executions().await.unwrap(), 1);
}

#[tokio::test]
async fn a_store_locked_by_another_process_is_unavailable_and_retriable() {
    let (dir, store) = migrated_store().await;
    let other = raw(&store_path(&dir));
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let err = store
        .write(&[execution(new_id(), 1, "ok")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(err.is_retriable());
    other.execute_batch("ROLLBACK").unwrap();
    store.write(&[execution(new_id(), 1, "ok")]).await.unwrap();
}

#[tokio::test]
async fn a_store_that_was_never_migrated_is_retried_not_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&store_path(&dir)).unwrap();
    let err = store
        .write(&[execution(new_id(), 1, "ok")])
        .await
        .unwrap_err();
    assert!(err.is_retriable(), "{err:?}");
}

#[tokio::test]
async fn dead_letters_are_idempotent_by_outbox_and_seq() {
    let (dir, store) = migrated_store().await;
    let letter = |seq: i64, reason: &str| DeadLetter {
        outbox: "/srv/app/.xray/outbox.db".into(),
        seq,
        record: execution(Uuid::nil(), seq, "ok").to_json(),
        reason: reason.into(),
    };
    store
        .dead_letter(&[letter(1, "CHECK constraint failed"), letter(2, "too big")])
        .await
        .unwrap();
    store
        .dead_letter(&[letter(1, "again"), letter(2, "again")])
        .await
        .unwrap();
    store.dead_letter(&[letter(3, "third")]).await.unwrap();

    let conn = raw(&store_path(&dir));
    let mut stmt = conn
        .prepare("SELECT seq, reason, json_extract(record, '$.record_type') FROM dead_letters ORDER BY seq")
        .unwrap();
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                1,
                "CHECK constraint failed".to_owned(),
                "execution".to_owned()
            ),
            (2, "too big".to_owned(), "execution".to_owned()),
            (3, "third".to_owned(), "execution".to_owned()),
        ]
    );
}

#[tokio::test]
async fn deleting_an_execution_deletes_its_steps_decisions_usage_and_search_entries() {
    let (dir, store) = migrated_store().await;
    let path = store_path(&dir);
    let (gone, kept) = (new_id(), new_id());
    store
        .write(&[
            execution(gone, 1, "ok"),
            step_with_decisions(new_id(), gone, 2),
            execution(kept, 3, "ok"),
            step_with_decisions(new_id(), kept, 4),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.search("budget", 100).await.unwrap().len(),
        0,
        "decisions are not step text"
    );
    assert_eq!(store.search("B0CHOSEN", 100).await.unwrap().len(), 2);

    raw(&path)
        .execute("DELETE FROM executions WHERE id = ?1", [gone.to_string()])
        .unwrap();

    let count = |table: &str| -> i64 {
        raw(&path)
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count("steps"), 1);
    assert_eq!(count("decisions"), 2);
    assert_eq!(count("llm_usage"), 1);
    assert_eq!(store.search("B0CHOSEN", 100).await.unwrap().len(), 1);
    assert_search_index_consistent(&path);
}

#[tokio::test]
async fn search_finds_a_step_by_a_word_in_its_output_and_ranks_the_better_match_first() {
    let (dir, store) = migrated_store().await;
    let e = new_id();
    let (passing, strong, unrelated, failed) = (new_id(), new_id(), new_id(), new_id());
    let with_output = |id: Uuid, seq: i64, output: serde_json::Value| {
        let mut s = step_row(id, e, seq, "ok");
        s.output = Some(output);
        ShipRecord::Step(s)
    };
    let mut error_step = step_row(failed, e, 5, "error");
    error_step.output = None;
    error_step.error = Some("search backend timed out".into());
    store
        .write(&[
            execution(e, 1, "ok"),
            with_output(
                passing,
                2,
                json!({"title": "Trail runner with breathable mesh, lightweight sole, several colours and a waterproof option"}),
            ),
            with_output(strong, 3, json!({"title": "waterproof jacket", "tags": ["waterproof", "waterproof"]})),
            with_output(unrelated, 4, json!({"title": "ceramic mug"})),
            ShipRecord::Step(error_step),
        ])
        .await
        .unwrap();

    let hits = store.search("waterproof", 100).await.unwrap();
    let ids: Vec<Uuid> = hits.iter().map(|h| h.step_id).collect();
    assert_eq!(
        ids,
        [strong, passing],
        "the step saying it three times in a short text ranks first"
    );
    assert!(hits[0].rank > hits[1].rank, "higher is better: {hits:?}");

    // Stemmed, case-insensitive, every word must match, syntax-safe.
    assert_eq!(
        ids_of(store.search("Colour", 100).await.unwrap()),
        [passing]
    );
    assert_eq!(
        ids_of(store.search("waterproof jacket", 100).await.unwrap()),
        [strong]
    );
    assert_eq!(
        ids_of(store.search("TIMED-out", 100).await.unwrap()),
        [failed]
    );
    assert!(store.search("\"unbalanced", 100).await.unwrap().is_empty());
    // Blank text is refused (the query layer's rule, as `search` says).
    assert!(matches!(
        store.search("   ", 100).await,
        Err(StoreError::Config(m)) if m == "search text is empty"
    ));

    // An end that replaces the output replaces what search finds.
    let mut rewritten = step_row(unrelated, e, 6, "ok");
    rewritten.output = Some(json!({"title": "enamel mug"}));
    store.write(&[ShipRecord::Step(rewritten)]).await.unwrap();
    assert!(store.search("ceramic", 100).await.unwrap().is_empty());
    assert_eq!(
        ids_of(store.search("enamel", 100).await.unwrap()),
        [unrelated]
    );
    assert_search_index_consistent(&store_path(&dir));
}

fn ids_of(hits: Vec<SearchHit>) -> Vec<Uuid> {
    hits.into_iter().map(|h| h.step_id).collect()
}
