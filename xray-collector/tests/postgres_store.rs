//! The PostgreSQL backend against a real server (see `support/pg.rs`):
//! migrations, idempotent writes, the start/end rules, placeholders,
//! rejected records, dead letters, search, and password hygiene.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::pg;
use support::records::{migrated_postgres, new_id};
use tokio_postgres::Client;
use uuid::Uuid;
use xray_collector::backend::{
    postgres::{classify, redact_url, PostgresStore, MIGRATIONS},
    DeadLetter, Migrations, Store, StoreError,
};
use xray_collector::migrate::MigrateError;
use xray_collector::model::{Decision, ExecutionRow, LlmUsage, ShipRecord, StepRow};

const T0: i64 = 1_700_000_000_123_456;

fn execution(id: Uuid, status: &str, seq: i64) -> ExecutionRow {
    let ended = status != "running";
    ExecutionRow {
        seq,
        id,
        project: "shop".into(),
        name: "pick_competitor".into(),
        status: status.into(),
        metadata: Some(json!({"sku": "A-1"})),
        outcome: ended.then(|| json!({"picked": "c2"})),
        error: None,
        started_at_us: T0,
        ended_at_us: ended.then_some(T0 + 5_000_000),
    }
}

fn step(id: Uuid, execution_id: Uuid, status: &str, seq: i64) -> StepRow {
    let ended = status != "running";
    StepRow {
        seq,
        id,
        execution_id,
        parent_id: None,
        project: "shop".into(),
        name: "filter_candidates".into(),
        kind: Some("filter".into()),
        status: status.into(),
        input: Some(json!({"candidates": ["c1", "c2", "c3"]})),
        output: ended.then(|| json!({"kept": ["c2"], "note": "walrus"})),
        error: None,
        attributes: Some(json!({"threshold": 0.5})),
        started_at_us: T0 + 1_000,
        duration_us: ended.then_some(2_500),
        decisions: if ended {
            vec![
                Decision {
                    candidate_id: "c1".into(),
                    accepted: Some(false),
                    filter: Some("price".into()),
                    reason: Some("too expensive".into()),
                    score: None,
                },
                Decision {
                    candidate_id: "c2".into(),
                    accepted: Some(true),
                    filter: Some("price".into()),
                    reason: None,
                    score: Some(0.9),
                },
            ]
        } else {
            vec![]
        },
        llm_usage: if ended {
            vec![LlmUsage {
                model: "gpt-x".into(),
                prompt_tokens: 120,
                completion_tokens: 30,
            }]
        } else {
            vec![]
        },
    }
}

/// Every row of every X-Ray table, minus `updated_at`, in a fixed order.
async fn snapshot(client: &Client) -> Value {
    let mut all = serde_json::Map::new();
    for (table, order) in [
        ("executions", "id"),
        ("steps", "id"),
        ("decisions", "step_id, ordinal"),
        ("llm_usage", "step_id, ordinal"),
        ("dead_letters", "outbox, seq"),
    ] {
        let sql = format!(
            "SELECT coalesce(jsonb_agg(to_jsonb(t) - 'updated_at' - 'created_at' ORDER BY {order}), '[]') \
             FROM xray.{table} t"
        );
        let v: Value = client.query_one(&sql, &[]).await.unwrap().get(0);
        all.insert(table.into(), v);
    }
    Value::Object(all)
}

async fn xray_tables(client: &Client) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'xray' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn schema_exists(client: &Client) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'xray')",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn recorded_versions(client: &Client) -> Vec<i64> {
    client
        .query(
            "SELECT version FROM xray.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again_twice_leaving_nothing_behind_when_down() {
    let db = pg::fresh_database().await;
    let client = db.client().await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    let tables = [
        "dead_letters",
        "decisions",
        "executions",
        "llm_usage",
        "schema_migrations",
        "steps",
    ];
    for round in 0..2 {
        assert_eq!(store.migrate_up().await.unwrap(), all, "round {round}");
        assert_eq!(xray_tables(&client).await, tables, "round {round}");
        assert_eq!(recorded_versions(&client).await, all);
        assert_eq!(
            store.migrate_up().await.unwrap(),
            Vec::<i64>::new(),
            "up again is a no-op"
        );

        let mut reverted = all.clone();
        reverted.reverse();
        assert_eq!(
            store.migrate_down(usize::MAX).await.unwrap(),
            reverted,
            "round {round}"
        );
        assert!(xray_tables(&client).await.is_empty(), "round {round}");
        assert!(
            !schema_exists(&client).await,
            "the empty schema is dropped too"
        );
        assert_eq!(
            store.migrate_down(1).await.unwrap(),
            Vec::<i64>::new(),
            "nothing left to revert"
        );
    }
    store.migrate_up().await.unwrap();
    // The store writes after the schema came back (its prepared statements
    // are not stale).
    let (e, s) = (new_id(), new_id());
    store
        .write(&[
            ShipRecord::Execution(execution(e, "ok", 1)),
            ShipRecord::Step(step(s, e, "ok", 2)),
        ])
        .await
        .unwrap();
    assert_eq!(store.count_steps().await.unwrap(), 1);
}

#[tokio::test]
async fn migrate_down_keeps_the_schema_when_something_else_lives_in_it() {
    let (db, store) = migrated_postgres().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE TABLE xray.users_own (x int)")
        .await
        .unwrap();
    store.migrate_down(usize::MAX).await.unwrap();
    assert_eq!(xray_tables(&client).await, ["users_own"]);
}

#[tokio::test]
async fn migrate_status_lists_every_known_migration_and_whether_it_is_applied() {
    let db = pg::fresh_database().await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let before = store.migrate_status().await.unwrap();
    assert_eq!(before.len(), MIGRATIONS.len());
    assert!(before.iter().all(|s| !s.applied));
    assert!(
        !schema_exists(&db.client().await).await,
        "status changes nothing"
    );
    store.migrate_up().await.unwrap();
    let after = store.migrate_status().await.unwrap();
    assert!(after.iter().all(|s| s.applied));
    assert_eq!(after[0].version, 1);
    assert_eq!(after[0].name, "init");
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let (db, store) = migrated_postgres().await;
    db.client()
        .await
        .batch_execute("INSERT INTO xray.schema_migrations (version, name, checksum) VALUES (999, 'future', 'x')")
        .await
        .unwrap();
    let err = store.migrate_up().await.unwrap_err();
    assert!(
        matches!(err, MigrateError::NewerSchema { found: 999, .. }),
        "{err}"
    );
    assert!(matches!(
        store.migrate_status().await,
        Err(MigrateError::NewerSchema { .. })
    ));
    assert!(matches!(
        store.migrate_down(1).await,
        Err(MigrateError::NewerSchema { .. })
    ));
    // The lock was released on the error path: another session can take it.
    let other = db.client().await;
    let got: bool = other
        .query_one(
            "SELECT pg_try_advisory_lock($1)",
            &[&xray_collector::backend::postgres::MIGRATION_LOCK_KEY],
        )
        .await
        .unwrap()
        .get(0);
    assert!(got, "the migration lock is free after a refused migration");
}

#[tokio::test]
async fn a_migration_edited_after_it_was_applied_is_refused() {
    let (db, store) = migrated_postgres().await;
    db.client()
        .await
        .batch_execute(
            "UPDATE xray.schema_migrations SET checksum = repeat('0', 64) WHERE version = 1",
        )
        .await
        .unwrap();
    let err = store.migrate_up().await.unwrap_err();
    assert!(
        matches!(err, MigrateError::Edited { version: 1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn two_collectors_migrating_at_once_both_succeed_and_apply_each_version_once() {
    for _ in 0..3 {
        let db = pg::fresh_database().await;
        let a = PostgresStore::connect(&db.url).await.unwrap();
        let b = PostgresStore::connect(&db.url).await.unwrap();
        let (ra, rb) = tokio::join!(a.migrate_up(), b.migrate_up());
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let mut applied = [ra, rb].concat();
        applied.sort_unstable();
        assert_eq!(
            applied,
            MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
        );
        let client = db.client().await;
        assert_eq!(recorded_versions(&client).await, applied);
        assert_eq!(xray_tables(&client).await.len(), 6);
    }
}

#[tokio::test]
async fn writing_the_same_batch_twice_changes_nothing() {
    let (db, store) = migrated_postgres().await;
    let client = db.client().await;
    let e = new_id();
    let (s1, s2) = (new_id(), new_id());
    let batch = vec![
        ShipRecord::Execution(execution(e, "running", 1)),
        ShipRecord::Step(step(s1, e, "running", 2)),
        ShipRecord::Step(step(s1, e, "ok", 3)),
        ShipRecord::Step(step(s2, e, "error", 4)),
        ShipRecord::Execution(execution(e, "ok", 5)),
    ];
    store.write(&batch).await.unwrap();
    let first = snapshot(&client).await;
    store.write(&batch).await.unwrap();
    assert_eq!(snapshot(&client).await, first);
    assert_eq!(store.count_executions().await.unwrap(), 1);
    assert_eq!(store.count_steps().await.unwrap(), 2);
    assert_eq!(first["decisions"].as_array().unwrap().len(), 4);
    assert_eq!(first["llm_usage"].as_array().unwrap().len(), 2);
    // Timestamps are exact to the microsecond.
    let us: i64 = client
        .query_one(
            "SELECT (extract(epoch FROM started_at) * 1000000)::bigint FROM xray.steps LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(us, T0 + 1_000);
}

#[tokio::test]
async fn a_start_arriving_after_the_end_does_not_regress_the_row() {
    let (db, store) = migrated_postgres().await;
    let (e, s) = (new_id(), new_id());
    store
        .write(&[
            ShipRecord::Execution(execution(e, "ok", 1)),
            ShipRecord::Step(step(s, e, "ok", 2)),
        ])
        .await
        .unwrap();
    store
        .write(&[
            ShipRecord::Step(step(s, e, "running", 3)),
            ShipRecord::Execution(execution(e, "running", 4)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.step_statuses().await.unwrap(),
        [(s, "ok".to_string())]
    );
    let row = db
        .client()
        .await
        .query_one(
            "SELECT s.status, s.output, s.duration_us, x.ended_at IS NOT NULL \
             FROM xray.steps s JOIN xray.executions x ON x.id = s.execution_id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "ok");
    assert_eq!(row.get::<_, Value>(1)["note"], "walrus");
    assert_eq!(row.get::<_, i64>(2), 2_500);
    assert!(row.get::<_, bool>(3), "the execution keeps its end");
}

#[tokio::test]
async fn a_step_whose_execution_never_arrived_gets_a_placeholder_that_the_execution_fills_later() {
    let (db, store) = migrated_postgres().await;
    let client = db.client().await;
    let (e, s) = (new_id(), new_id());
    store
        .write(&[ShipRecord::Step(step(s, e, "ok", 7))])
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT name, status, project, placeholder FROM xray.executions WHERE id = $1",
            &[&e],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "(unknown)");
    assert_eq!(row.get::<_, &str>(1), "running");
    assert_eq!(row.get::<_, &str>(2), "shop");
    assert!(row.get::<_, bool>(3));

    // The execution's start replaces the placeholder; its end then finishes it.
    store
        .write(&[ShipRecord::Execution(execution(e, "running", 8))])
        .await
        .unwrap();
    let row = client
        .query_one(
            "SELECT name, placeholder, metadata FROM xray.executions WHERE id = $1",
            &[&e],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "pick_competitor");
    assert!(!row.get::<_, bool>(1));
    assert_eq!(row.get::<_, Value>(2), json!({"sku": "A-1"}));
    store
        .write(&[ShipRecord::Execution(execution(e, "ok", 9))])
        .await
        .unwrap();
    let status: String = client
        .query_one("SELECT status FROM xray.executions WHERE id = $1", &[&e])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "ok");

    // A placeholder never overwrites a real execution.
    let s2 = new_id();
    store
        .write(&[ShipRecord::Step(step(s2, e, "running", 10))])
        .await
        .unwrap();
    let name: String = client
        .query_one("SELECT name FROM xray.executions WHERE id = $1", &[&e])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "pick_competitor");
}

#[tokio::test]
async fn a_nul_character_in_json_is_rejected_not_retried_and_the_store_keeps_working() {
    let (_db, store) = migrated_postgres().await;
    let (e, s) = (new_id(), new_id());
    let mut poison = step(s, e, "ok", 1);
    poison.input = Some(json!({"text": "before\u{0}after"}));
    let err = store.write(&[ShipRecord::Step(poison)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");
    assert!(!err.is_retriable());
    assert_eq!(
        store.count_steps().await.unwrap(),
        0,
        "the batch was rolled back"
    );

    let mut poison_text = step(s, e, "ok", 2);
    poison_text.error = Some("nul \u{0} in text".into());
    let err = store
        .write(&[ShipRecord::Step(poison_text)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");

    let mut bad_status = step(s, e, "exploded", 3);
    bad_status.decisions.clear();
    let err = store
        .write(&[ShipRecord::Step(bad_status)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected(_)), "{err}");

    store
        .write(&[ShipRecord::Step(step(s, e, "ok", 4))])
        .await
        .unwrap();
    assert_eq!(store.count_steps().await.unwrap(), 1);
}

#[tokio::test]
async fn dead_letters_are_stored_once_even_with_nul_characters() {
    let (db, store) = migrated_postgres().await;
    let client = db.client().await;
    let letters = vec![
        DeadLetter {
            outbox: "/var/xray/a.db".into(),
            seq: 41,
            record: json!({"input": {"text": "bad\u{0}"}}),
            reason: "unsupported Unicode escape \u{0}".into(),
        },
        DeadLetter {
            outbox: "/var/xray/a.db".into(),
            seq: 42,
            record: json!({"id": 1}),
            reason: "check".into(),
        },
    ];
    store.dead_letter(&letters).await.unwrap();
    let first = snapshot(&client).await;
    store.dead_letter(&letters).await.unwrap();
    assert_eq!(snapshot(&client).await, first);
    let stored = first["dead_letters"].as_array().unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["record"]["input"]["text"], "bad\u{FFFD}");
    assert_eq!(stored[1]["seq"], 42);
}

#[tokio::test]
async fn deleting_an_execution_removes_its_steps_decisions_and_llm_usage() {
    let (db, store) = migrated_postgres().await;
    let client = db.client().await;
    let (e, other) = (new_id(), new_id());
    store
        .write(&[
            ShipRecord::Execution(execution(e, "ok", 1)),
            ShipRecord::Step(step(new_id(), e, "ok", 2)),
            ShipRecord::Step(step(new_id(), other, "ok", 3)),
        ])
        .await
        .unwrap();
    client
        .execute("DELETE FROM xray.executions WHERE id = $1", &[&e])
        .await
        .unwrap();
    for (table, left) in [("steps", 1), ("decisions", 2), ("llm_usage", 1)] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM xray.{table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, left, "{table}");
    }
}

#[tokio::test]
async fn full_text_search_finds_a_step_by_a_word_in_its_output() {
    let (db, store) = migrated_postgres().await;
    let client = db.client().await;
    let e = new_id();
    let (hit, miss) = (new_id(), new_id());
    let mut other = step(miss, e, "ok", 2);
    other.output = Some(json!({"kept": []}));
    let mut huge = step(new_id(), e, "ok", 3);
    huge.output = Some(json!({"blob": (0..200_000).map(|i| format!("w{i} ")).collect::<String>()}));
    store
        .write(&[
            ShipRecord::Step(step(hit, e, "ok", 1)),
            ShipRecord::Step(other),
            ShipRecord::Step(huge),
        ])
        .await
        .expect("a huge output is stored (its search text is cut, not refused)");
    let found: Vec<Uuid> = client
        .query(
            "SELECT id FROM xray.steps WHERE search @@ plainto_tsquery('simple', 'walrus')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(found, [hit]);
    let by_name: i64 = client
        .query_one(
            "SELECT count(*) FROM xray.steps WHERE search @@ plainto_tsquery('simple', 'filter_candidates')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(by_name, 3);
}

#[tokio::test]
async fn a_large_batch_is_written_in_one_go() {
    let (_db, store) = migrated_postgres().await;
    let executions: Vec<Uuid> = (0..50).map(|_| new_id()).collect();
    let mut batch = Vec::new();
    for (i, e) in executions.iter().enumerate() {
        batch.push(ShipRecord::Execution(execution(*e, "ok", i as i64)));
    }
    for i in 0..5_000 {
        let s = step(
            new_id(),
            executions[i % executions.len()],
            "ok",
            100 + i as i64,
        );
        batch.push(ShipRecord::Step(s));
    }
    let started = std::time::Instant::now();
    store.write(&batch).await.unwrap();
    let took = started.elapsed();
    eprintln!("5,000 steps (10,000 decisions, 5,000 usage rows) in {took:?}");
    assert_eq!(store.count_steps().await.unwrap(), 5_000);
}

#[tokio::test]
async fn classify_sorts_real_server_errors_into_retriable_and_not() {
    let db = pg::fresh_database().await;
    let client = db.client().await;
    let raise = |code: &'static str| {
        format!("DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '{code}'; END $$")
    };
    for (code, retriable) in [
        ("40001", true),
        ("40P01", true),
        ("57P01", true),
        ("53100", true),
        ("08006", true),
    ] {
        let err = client.batch_execute(&raise(code)).await.unwrap_err();
        let classified = classify(&err);
        assert_eq!(classified.is_retriable(), retriable, "{code}: {classified}");
        assert!(
            matches!(classified, StoreError::Unavailable(_)),
            "{code}: {classified}"
        );
    }
    for code in ["22P05", "23505", "54000", "42601"] {
        let err = client.batch_execute(&raise(code)).await.unwrap_err();
        assert!(matches!(classify(&err), StoreError::Rejected(_)), "{code}");
    }
    let err = client
        .batch_execute("SELECT * FROM xray.nothing_here")
        .await
        .unwrap_err();
    let classified = classify(&err);
    assert!(matches!(classified, StoreError::Schema(_)), "{classified}");
    assert!(
        classified.to_string().contains("migrate up"),
        "{classified}"
    );
}

#[tokio::test]
async fn writing_before_migrating_is_a_schema_error_not_a_rejection() {
    let db = pg::fresh_database().await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let (e, s) = (new_id(), new_id());
    let err = store
        .write(&[ShipRecord::Step(step(s, e, "ok", 1))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err}");
    store.migrate_up().await.unwrap();
    store
        .write(&[ShipRecord::Step(step(s, e, "ok", 1))])
        .await
        .unwrap();
}

#[tokio::test]
async fn the_store_reconnects_after_its_connection_is_killed() {
    let (db, store) = migrated_postgres().await;
    let admin = db.client().await;
    let e = new_id();
    store
        .write(&[ShipRecord::Step(step(new_id(), e, "ok", 1))])
        .await
        .unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'xray-collector'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first write may see the dead connection (retriable); a later one reconnects.
    let mut result = store
        .write(&[ShipRecord::Step(step(new_id(), e, "ok", 2))])
        .await;
    if let Err(err) = &result {
        assert!(err.is_retriable(), "{err}");
        result = store
            .write(&[ShipRecord::Step(step(new_id(), e, "ok", 2))])
            .await;
    }
    result.unwrap();
    assert_eq!(store.count_steps().await.unwrap(), 2);
}

#[tokio::test]
async fn an_outage_is_unavailable_and_the_store_recovers_when_the_server_returns() {
    let cluster = pg::LocalCluster::start_new();
    let db = cluster.fresh_database().await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    store.migrate_up().await.unwrap();
    let e = new_id();
    store
        .write(&[ShipRecord::Step(step(new_id(), e, "ok", 1))])
        .await
        .unwrap();

    cluster.stop();
    for seq in 2..4 {
        let err = store
            .write(&[ShipRecord::Step(step(new_id(), e, "ok", seq))])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(!err.to_string().contains(cluster.password()), "{err}");
    }
    cluster.start();
    store
        .write(&[ShipRecord::Step(step(new_id(), e, "ok", 4))])
        .await
        .unwrap();
    assert_eq!(store.count_steps().await.unwrap(), 2);
}

#[test]
fn redact_url_hides_the_password() {
    let url = "postgres://xray:Sup3r-Secret@db.internal:5432/xray?sslmode=require";
    let shown = redact_url(url);
    assert_eq!(
        shown,
        "postgres://xray:***@db.internal:5432/xray?sslmode=require"
    );
    assert!(!shown.contains("Sup3r-Secret"));
}

#[tokio::test]
async fn a_wrong_password_error_does_not_contain_the_password() {
    // Needs a server that checks passwords: the throw-away cluster does
    // (an external XRAY_TEST_DATABASE_URL server may trust everyone).
    let dedicated;
    let cluster = match pg::server().cluster() {
        Some(shared) => shared,
        None => {
            dedicated = pg::LocalCluster::start_new();
            &dedicated
        }
    };
    let secret = "Wr0ng-Pa55word-xyz";
    let url = format!(
        "postgres://postgres:{secret}@127.0.0.1:{}/postgres",
        cluster.port()
    );
    let err = PostgresStore::connect(&url).await.unwrap_err();
    let text = err.to_string();
    // A refused login stays refused: a configuration error, not retried.
    assert!(matches!(err, StoreError::Config(_)), "{text}");
    assert!(!err.is_retriable(), "{text}");
    assert!(!text.contains(secret), "{text}");
    assert!(text.contains("postgres:***@127.0.0.1"), "{text}");
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(!format!("{err:?}").contains(secret));

    // Nothing listening: the same.
    let url = format!("postgres://postgres:{secret}@127.0.0.1:1/postgres?connect_timeout=2");
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains(secret), "{err}");

    // The right password in the URL never shows in the store's Debug or url().
    let db = cluster.fresh_database().await;
    let store = PostgresStore::connect(&db.url).await.unwrap();
    assert!(!format!("{store:?}").contains(cluster.password()));
    assert!(!store.url().contains(cluster.password()));
}

#[tokio::test]
async fn sslmode_require_encrypts_and_verify_full_checks_the_certificate() {
    let server = pg::server();
    let db = server.fresh_database().await;
    let sep = if db.url.contains('?') { '&' } else { '?' };
    if let Some(cluster) = server.cluster() {
        assert!(
            cluster.tls(),
            "the throw-away cluster offers TLS only when openssl is installed: apt-get install -y openssl"
        );
        // libpq's `require`: encrypted, certificate not verified — so the
        // self-signed test server is reachable, and the session is TLS.
        let store = PostgresStore::connect(&format!("{}{sep}sslmode=require", db.url))
            .await
            .expect("sslmode=require connects over TLS");
        store.migrate_up().await.unwrap();
        let client = db.client().await;
        let ssl: bool = client
            .query_one(
                "SELECT bool_or(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
                 WHERE application_name = 'xray-collector'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ssl, "the collector's session must be encrypted");
        // `verify-full` checks the certificate: self-signed is refused.
        let err = PostgresStore::connect(&format!("{}{sep}sslmode=verify-full", db.url))
            .await
            .expect_err("a self-signed certificate must not verify");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Unavailable(_)), "{text}");
        assert!(
            text.to_lowercase().contains("certificate") || text.contains("TLS"),
            "{text}"
        );
        assert!(!text.contains(cluster.password()), "{text}");
    }
    for mode in ["disable", "prefer"] {
        let store = PostgresStore::connect(&format!("{}{sep}sslmode={mode}", db.url)).await;
        assert!(store.is_ok(), "{mode}: {:?}", store.err());
    }
}
