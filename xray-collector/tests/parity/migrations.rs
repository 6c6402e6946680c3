//! The schema ([`Migrations`]): up, down and status, and refusing a schema
//! this binary did not write.

use xray_collector::backend::{Migrations, QueryStore, Store};
use xray_collector::migrate::MigrateError;

use crate::backend::Backend;
use crate::support::records::{execution, filter_step, new_id};

on_both_backends!(
    unmigrated: migrations_go_up_down_and_up_again_twice_leaving_nothing_behind,
    migrate_status_lists_every_known_migration_and_whether_it_is_applied,
);

on_both_backends!(
    migrated: migrate_down_keeps_what_else_lives_in_the_schema,
    a_schema_newer_than_the_binary_is_refused,
    a_migration_edited_after_it_was_applied_is_refused,
    dead_letters_from_before_outbox_identities_keep_one_id_per_path,
    steps_shipped_before_the_string_search_index_are_found_by_their_strings,
    reverting_the_search_index_behind_the_shipper_indexes_what_was_noted,
);

async fn steps_shipped_before_the_string_search_index_are_found_by_their_strings(db: Backend) {
    // Version 4 indexed the whole JSON text, keys included, as steps were
    // written (this binary writes version 6's tables: plain SQL here).
    down_to(&db, 4).await;
    let (e, s) = (new_id(), new_id());
    db.insert_raw_step(e, s, r#"{"zebraKey": "okapi"}"#).await;
    // Version 5 re-indexes string values only; version 6 keeps that index
    // behind the shipper, with nothing noted for the steps found indexed.
    assert_eq!(db.store.migrate_up().await.unwrap(), above(&db, 4));
    assert_eq!(
        xray_collector::indexing::catch_up(&db.store).await.unwrap(),
        0
    );
    let hits = |word: &'static str| {
        let store = &db.store;
        async move { store.search(word, 10, None).await.unwrap().len() }
    };
    assert_eq!((hits("okapi").await, hits("zebraKey").await), (1, 0));
}

/// Version 6 moved the search index behind the shipper: reverting it
/// indexes what was noted and not yet indexed, and what was indexed stays
/// found; up again, everything is in the new index.
async fn reverting_the_search_index_behind_the_shipper_indexes_what_was_noted(db: Backend) {
    let (e, indexed, noted) = (new_id(), new_id(), new_id());
    let write_step = |s, word: &'static str| {
        let store = &db.store;
        async move {
            store
                .write(&[
                    execution(e).record(),
                    filter_step(s, e)
                        .output(serde_json::json!({"note": word}))
                        .record(),
                ])
                .await
                .unwrap()
        }
    };
    write_step(indexed, "okapi").await;
    assert_eq!(
        xray_collector::indexing::catch_up(&db.store).await.unwrap(),
        1
    );
    write_step(noted, "dingo").await;
    assert!(db.store.search("dingo", 10, None).await.unwrap().is_empty());
    down_to(&db, 5).await;
    for word in ["okapi", "dingo"] {
        assert_eq!(db.found_by_version_5_index(word).await, 1, "{word}");
    }
    assert_eq!(db.store.migrate_up().await.unwrap(), above(&db, 5));
    assert_eq!(
        xray_collector::indexing::catch_up(&db.store).await.unwrap(),
        0
    );
    for word in ["okapi", "dingo"] {
        assert_eq!(
            db.store.search(word, 10, None).await.unwrap().len(),
            1,
            "{word}"
        );
    }
}

/// The versions this binary knows above `version`, oldest first.
fn above(db: &Backend, version: i64) -> Vec<i64> {
    db.known_migrations()
        .iter()
        .map(|m| m.version)
        .filter(|v| *v > version)
        .collect()
}

/// Reverts every migration above `version`, newest first.
async fn down_to(db: &Backend, version: i64) {
    let mut expected = above(db, version);
    expected.reverse();
    assert_eq!(
        db.store.migrate_down(expected.len()).await.unwrap(),
        expected
    );
}

/// What `migrate up`, `migrate down 1` and `migrate status` each refuse
/// with.
async fn refusals(db: &Backend) -> [(&'static str, MigrateError); 3] {
    [
        ("up", db.store.migrate_up().await.unwrap_err()),
        ("down", db.store.migrate_down(1).await.unwrap_err()),
        ("status", db.store.migrate_status().await.unwrap_err()),
    ]
}

async fn migrations_go_up_down_and_up_again_twice_leaving_nothing_behind(db: Backend) {
    let all: Vec<i64> = db.known_migrations().iter().map(|m| m.version).collect();
    let mut newest_first = all.clone();
    newest_first.reverse();
    let mut tables = vec![
        "dead_letters",
        "decisions",
        "executions",
        "llm_usage",
        "model_prices",
        "model_rollups",
        "reasoning_jobs",
        "schema_migrations",
        "step_rollups",
        "steps",
    ];
    tables.extend(db.backend_tables());
    tables.sort_unstable();

    // Down by the number applied, then by "everything".
    for (round, down) in [all.len(), usize::MAX].into_iter().enumerate() {
        assert_eq!(db.store.migrate_up().await.unwrap(), all, "round {round}");
        assert_eq!(db.tables().await, tables, "round {round}");
        assert_eq!(db.recorded_versions().await, all);
        assert_eq!(
            db.store.migrate_up().await.unwrap(),
            Vec::<i64>::new(),
            "up again is a no-op"
        );

        assert_eq!(
            db.store.migrate_down(down).await.unwrap(),
            newest_first,
            "round {round}"
        );
        assert_eq!(db.tables().await, Vec::<String>::new(), "round {round}");
        assert!(!db.schema_exists().await, "the empty schema is dropped too");
        assert_eq!(
            db.store.migrate_down(1).await.unwrap(),
            Vec::<i64>::new(),
            "nothing left to revert"
        );
        assert!(
            !db.schema_exists().await,
            "reverting nothing creates nothing"
        );
    }
    db.store.migrate_up().await.unwrap();
    // The store writes after the schema came back (nothing it prepared is
    // stale).
    let e = new_id();
    db.store
        .write(&[execution(e).record(), filter_step(new_id(), e).record()])
        .await
        .unwrap();
    assert_eq!(db.count("executions").await, 1);
    assert_eq!(db.count("steps").await, 1);
}

async fn migrate_down_keeps_what_else_lives_in_the_schema(db: Backend) {
    db.execute("CREATE TABLE {xray}users_own (x int)").await;
    db.store.migrate_down(usize::MAX).await.unwrap();
    assert_eq!(db.tables().await, ["users_own"]);
    assert!(db.schema_exists().await);
}

async fn migrate_status_lists_every_known_migration_and_whether_it_is_applied(db: Backend) {
    let before = db.store.migrate_status().await.unwrap();
    assert_eq!(before.len(), db.known_migrations().len());
    assert!(before.iter().all(|s| !s.applied));
    assert_eq!((before[0].version, before[0].name), (1, "init"));
    assert!(!db.schema_exists().await, "status changes nothing");

    db.store.migrate_up().await.unwrap();
    let after = db.store.migrate_status().await.unwrap();
    assert!(after.iter().all(|s| s.applied));
    assert_eq!((after[0].version, after[0].name), (1, "init"));

    db.store.migrate_down(1).await.unwrap();
    let reverted = db.store.migrate_status().await.unwrap();
    assert!(!reverted.last().unwrap().applied);
}

async fn a_schema_newer_than_the_binary_is_refused(db: Backend) {
    db.record_migration(999).await;
    for (command, err) in refusals(&db).await {
        assert!(
            matches!(err, MigrateError::NewerSchema { found: 999, .. }),
            "{command}: {err}"
        );
        assert!(err.to_string().contains("upgrade xray-collector"), "{err}");
    }
    assert!(
        db.tables().await.contains(&"steps".to_owned()),
        "down refused, nothing dropped"
    );
    assert!(
        db.migration_lock_is_free().await,
        "the migration lock is released on the error path"
    );
}

async fn a_migration_edited_after_it_was_applied_is_refused(db: Backend) {
    db.execute("UPDATE {xray}schema_migrations SET checksum = 'edited' WHERE version = 1")
        .await;
    for (command, err) in refusals(&db).await {
        assert!(
            matches!(err, MigrateError::Edited { version: 1, .. }),
            "{command}: {err}"
        );
    }
    assert!(db.migration_lock_is_free().await);
}

async fn dead_letters_from_before_outbox_identities_keep_one_id_per_path(db: Backend) {
    // Back to version 1, dead letters keyed by path as it stored them.
    let newest = db.known_migrations().len() as i64;
    let above_1: Vec<i64> = (2..=newest).collect();
    let reverted = db.store.migrate_down(above_1.len()).await.unwrap();
    assert_eq!(reverted, above_1.iter().rev().copied().collect::<Vec<_>>());
    for (outbox, seq) in [("a.db", 1), ("a.db", 2), ("b.db", 1)] {
        db.insert_version_1_dead_letter(outbox, seq).await;
    }
    assert_eq!(db.store.migrate_up().await.unwrap(), above_1);
    let stored = db.dead_letters().await;
    let seen: Vec<(&str, i64)> = stored.iter().map(|l| (l.outbox.as_str(), l.seq)).collect();
    assert_eq!(seen, [("a.db", 1), ("a.db", 2), ("b.db", 1)]);
    assert_eq!(stored[0].outbox_id, stored[1].outbox_id, "one id per path");
    assert_ne!(stored[0].outbox_id, stored[2].outbox_id);
    assert_eq!(stored[0].outbox_id.get_version_num(), 4);
}
