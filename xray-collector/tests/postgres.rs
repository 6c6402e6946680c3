//! What only the PostgreSQL backend has, against a real server (see
//! `support/pg.rs`): several collectors migrating under the advisory lock,
//! NUL characters PostgreSQL cannot store, the classification of real
//! server errors, reconnecting after a lost connection or an outage, TLS
//! modes, and keeping the password out of every error. Its behaviour as a
//! backend is in `tests/parity/`.

mod support;

use std::time::Duration;

use serde_json::json;
use support::pg;
use support::records::{execution, filter_step, new_id, step};
use xray_collector::backend::{
    postgres::{classify, redact_url, PostgresStore, MIGRATIONS},
    Migrations, PruneFilter, QueryStore, Store, StoreError,
};
use xray_collector::retention;

/// A migrated, empty database and a store connected to it.
async fn migrated_postgres() -> (pg::TestDb, PostgresStore) {
    let db = pg::fresh_database().await;
    let store = PostgresStore::connect(&db.url).await.expect("connect");
    store.migrate_up().await.expect("migrate up");
    (db, store)
}

/// Two consecutive batches written at once, as the shipper writes them
/// (two connections), each writing an execution row the other carries
/// steps of: batch A starts P and carries steps of Q (started earlier),
/// batch B ends Q and carries steps of P. Had the placeholders been
/// written after the executions, each transaction would wait for the
/// other's execution row: a deadlock, which PostgreSQL breaks after
/// `deadlock_timeout` by failing one of the writes.
#[tokio::test]
async fn two_batches_written_at_once_that_share_executions_do_not_deadlock() {
    let (db, store) = migrated_postgres().await;
    let rounds = 8;
    for _ in 0..rounds {
        let (p, q) = (new_id(), new_id());
        store
            .write(&[execution(q).running().record()])
            .await
            .expect("Q's start");
        let a: Vec<_> = std::iter::once(execution(p).running().record())
            .chain((0..2_000).map(|_| filter_step(new_id(), q).record()))
            .collect();
        let b: Vec<_> = std::iter::once(execution(q).record())
            .chain((0..2_000).map(|_| filter_step(new_id(), p).record()))
            .collect();
        let (wrote_a, wrote_b) = tokio::join!(store.write(&a), store.write(&b));
        wrote_a.expect("batch A");
        wrote_b.expect("batch B");
        let client = db.client().await;
        let row = client
            .query_one(
                "SELECT p.status, p.placeholder, p.name, q.status, q.ended_at IS NOT NULL
                 FROM xray.executions p, xray.executions q WHERE p.id = $1 AND q.id = $2",
                &[&p, &q],
            )
            .await
            .unwrap();
        assert_eq!(
            (
                row.get::<_, String>(0),
                row.get::<_, bool>(1),
                row.get::<_, String>(2),
                row.get::<_, String>(3),
                row.get::<_, bool>(4)
            ),
            (
                "running".into(),
                false,
                "pick_competitor".into(),
                "ok".into(),
                true
            ),
            "P is its own start (not a placeholder), Q has its end"
        );
    }
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM xray.steps), (SELECT count(*) FROM xray.decisions),
                    (SELECT count(*) FROM xray.llm_usage),
                    (SELECT sum(finished)::int8 FROM xray.step_rollups WHERE width = 'hour'),
                    (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap();
    let steps = rounds * 4_000;
    assert_eq!(
        (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1),
            row.get::<_, i64>(2),
            row.get::<_, i64>(3),
            row.get::<_, i64>(4)
        ),
        (steps, 2 * steps, steps, steps, 0),
        "every step, decision and call written and counted once, and no deadlock"
    );
}

const DAY_US: i64 = 86_400_000_000;

/// Where each step's search entry is: the name of its partition of
/// `xray.step_search`, per step, and how many entries each step has.
async fn search_partitions(db: &pg::TestDb, steps: &[uuid::Uuid]) -> Vec<(String, i64)> {
    let client = db.client().await;
    let mut found = Vec::new();
    for step in steps {
        let row = client
            .query_one(
                "SELECT coalesce(min(tableoid::regclass::text), ''), count(*)
                 FROM xray.step_search WHERE step_id = $1",
                &[step],
            )
            .await
            .unwrap();
        found.push((row.get(0), row.get(1)));
    }
    found
}

/// `xray.step_search` is partitioned by the UTC day a step started
/// (migration 10): the last microsecond of a day and the first of the next
/// land in their own days' partitions, a step written again keeps one
/// entry, a step whose day is out of range (a clock years off) is kept in
/// the default partition, and every one of them is found.
#[tokio::test]
async fn search_entries_land_in_their_day_partition_and_are_all_found() {
    let (db, store) = migrated_postgres().await;
    let today_us = jiff::Timestamp::now().as_microsecond() / DAY_US * DAY_US;
    let execution_id = new_id();
    let at = [
        today_us - 1,                 // yesterday's last microsecond
        today_us,                     // today's first
        today_us - 11 * 365 * DAY_US, // eleven years ago
        today_us + 30 * DAY_US,       // a month ahead
    ];
    let steps: Vec<_> = at.iter().map(|_| new_id()).collect();
    let mut records = vec![execution(execution_id).at(at[2]).record()];
    for (id, at) in steps.iter().zip(at) {
        records.push(
            step(*id, execution_id)
                .at(at)
                .output(json!({"note": "quokka"}))
                .record(),
        );
    }
    store.write(&records).await.unwrap();
    xray_collector::indexing::catch_up(&store).await.unwrap();
    // Written again (re-shipped, a new output): still one entry each.
    let again: Vec<_> = steps
        .iter()
        .zip(at)
        .map(|(id, at)| {
            step(*id, execution_id)
                .at(at)
                .output(json!({"note": "quokka wombat"}))
                .record()
        })
        .collect();
    store.write(&again).await.unwrap();
    xray_collector::indexing::catch_up(&store).await.unwrap();

    let day = |us: i64| {
        jiff::Timestamp::from_microsecond(us)
            .unwrap()
            .strftime("xray.step_search_%Y%m%d")
            .to_string()
    };
    let other = "xray.step_search_other".to_string();
    assert_eq!(
        search_partitions(&db, &steps).await,
        vec![
            (day(at[0]), 1),
            (day(at[1]), 1),
            (other.clone(), 1),
            (other.clone(), 1)
        ]
    );
    let mut found: Vec<_> = store
        .search("wombat", 10, None)
        .await
        .unwrap()
        .iter()
        .map(|h| h.step_id)
        .collect();
    found.sort_unstable();
    let mut expected = steps.clone();
    expected.sort_unstable();
    assert_eq!(
        found, expected,
        "every step found, once, with its new output"
    );

    // The month ahead comes into range (as if it were a day before it):
    // its entry moves out of the default partition into its day's.
    let ahead = jiff::Timestamp::from_microsecond(at[3]).unwrap();
    let ahead_day = ahead.strftime("%Y-%m-%d").to_string();
    db.client()
        .await
        .execute(
            "SELECT xray.step_search_day($1::text::date, $1::text::date - 1)",
            &[&ahead_day],
        )
        .await
        .unwrap();
    assert_eq!(
        search_partitions(&db, &steps[3..]).await,
        vec![(day(at[3]), 1)]
    );
    assert_eq!(store.search("wombat", 10, None).await.unwrap().len(), 4);

    // Deleted with their steps, from whichever partition holds them.
    db.client()
        .await
        .execute(
            "DELETE FROM xray.executions WHERE id = $1",
            &[&execution_id],
        )
        .await
        .unwrap();
    assert_eq!(
        search_partitions(&db, &steps).await,
        vec![(String::new(), 0); 4]
    );
    assert!(store.search("wombat", 10, None).await.unwrap().is_empty());
}

/// A prune leaves the search index's days before its cutoff empty, and
/// drops them; a day still holding another project's steps, and the days
/// after the cutoff, stay.
#[tokio::test]
async fn a_prune_drops_the_search_days_it_emptied() {
    let (db, store) = migrated_postgres().await;
    let today_us = jiff::Timestamp::now().as_microsecond() / DAY_US * DAY_US;
    let (old, kept, other) = (new_id(), new_id(), new_id());
    let (old_step, old_step_2, kept_step, other_step) = (new_id(), new_id(), new_id(), new_id());
    store
        .write(&[
            execution(old).at(today_us - 41 * DAY_US).record(),
            step(old_step, old).at(today_us - 41 * DAY_US).record(),
            step(old_step_2, old).at(today_us - 40 * DAY_US).record(),
            execution(other)
                .project("elsewhere")
                .at(today_us - 40 * DAY_US)
                .record(),
            step(other_step, other)
                .at(today_us - 40 * DAY_US + 1)
                .record(),
            execution(kept).at(today_us).record(),
            step(kept_step, kept).at(today_us).record(),
        ])
        .await
        .unwrap();
    xray_collector::indexing::catch_up(&store).await.unwrap();
    let days = || async {
        pg::column::<String>(
            &db.client().await,
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'xray.step_search'::regclass ORDER BY 1",
        )
        .await
    };
    let day = |us: i64| {
        jiff::Timestamp::from_microsecond(us)
            .unwrap()
            .strftime("step_search_%Y%m%d")
            .to_string()
    };
    let all = vec![
        day(today_us - 41 * DAY_US),
        day(today_us - 40 * DAY_US),
        day(today_us),
        "step_search_other".to_string(),
    ];
    assert_eq!(days().await, all);

    let filter = PruneFilter::older_than(30 * DAY_US, Some("shop".into()));
    let pruned = retention::prune(&store, &filter, false).await.unwrap();
    assert_eq!((pruned.executions, pruned.steps), (1, 2));
    // Day -41 held only the pruned steps; day -40 still holds the other
    // project's step.
    assert_eq!(days().await, all[1..].to_vec());
    assert_eq!(
        search_partitions(&db, &[other_step, kept_step]).await,
        vec![
            (format!("xray.{}", all[1]), 1),
            (format!("xray.{}", all[2]), 1)
        ]
    );
}

#[tokio::test]
async fn a_search_past_its_statement_timeout_is_stopped_by_the_server_and_the_store_goes_on() {
    let (db, store) = migrated_postgres().await;
    let execution = new_id();
    store
        .write(&[
            support::records::execution(execution).record(),
            step(new_id(), execution)
                .output(serde_json::json!({"note": "walrus"}))
                .record(),
        ])
        .await
        .unwrap();
    xray_collector::indexing::catch_up(&store).await.unwrap();
    // Another session holds the steps table: the search waits for the lock
    // until its statement timeout stops it.
    let mut other = db.client().await;
    let lock = other.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE xray.steps IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let stopped = store
        .search("walrus", 10, Some(Duration::from_millis(200)))
        .await
        .expect_err("the search waits for the lock past its timeout");
    assert!(matches!(stopped, StoreError::TimedOut(_)), "{stopped:?}");
    assert!(stopped.to_string().contains("57014"), "{stopped}");
    lock.rollback().await.unwrap();
    // The same connection answers the next search, with no limit left on it.
    let hits = store.search("walrus", 10, None).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(
        store
            .search("walrus", 10, Some(Duration::from_secs(10)))
            .await
            .unwrap()
            .len(),
        1
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
        let recorded: Vec<i64> = pg::column(
            &client,
            "SELECT version FROM xray.schema_migrations ORDER BY version",
        )
        .await;
        assert_eq!(recorded, applied);
        let tables: Vec<String> = pg::column(
            &client,
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'xray'",
        )
        .await;
        // Twelve tables (model_prices the last), the rollups' view, and
        // step_search's default partition.
        assert_eq!(tables.len(), 14, "{tables:?}");
        assert!(tables.iter().any(|t| t == "model_prices"), "{tables:?}");
        assert!(tables.iter().any(|t| t == "reasoning_jobs"), "{tables:?}");
    }
}

// A NUL character, which PostgreSQL's jsonb and text cannot hold, is
// stored in a flagged form on both backends: see the parity suite
// (`values_postgresql_cannot_hold_are_stored_in_one_flagged_form_on_both_backends`).

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
    // P0001: a user's trigger raising; XX000: an internal error. Neither is
    // known to be transient, so neither may stall an outbox.
    for code in ["22P05", "23505", "54000", "42601", "P0001", "XX000"] {
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
async fn the_store_reconnects_after_its_connection_is_killed() {
    let (db, store) = migrated_postgres().await;
    let admin = db.client().await;
    let e = new_id();
    store
        .write(&[step(new_id(), e).seq(1).record()])
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
    let mut result = store.write(&[step(new_id(), e).seq(2).record()]).await;
    if let Err(err) = &result {
        assert!(err.is_retriable(), "{err}");
        result = store.write(&[step(new_id(), e).seq(2).record()]).await;
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
        .write(&[step(new_id(), e).seq(1).record()])
        .await
        .unwrap();

    cluster.stop();
    for seq in 2..4 {
        let err = store
            .write(&[step(new_id(), e).seq(seq).record()])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(!err.to_string().contains(cluster.password()), "{err}");
    }
    cluster.start();
    store
        .write(&[step(new_id(), e).seq(4).record()])
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
