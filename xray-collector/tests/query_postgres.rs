//! The read side of the PostgreSQL backend ([`QueryStore`]) against a real
//! server (see `support/pg.rs`): keyset pagination, filters, whole
//! executions with exact times, `why`, full-text search and statistics.

mod support;

use serde_json::json;
use support::pg;
use support::records::{filter, ids, migrated_postgres, usage};
use uuid::Uuid;
use xray_collector::backend::{postgres::PostgresStore, Migrations, QueryStore, Store, StoreError};
use xray_collector::model::{Decision, ExecutionRow, ShipRecord, StepRow};
use xray_collector::query::ExecutionFilter;

const T0: i64 = 1_700_000_000_123_456;
const MS: i64 = 1_000;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A finished (`ok`/`error`) or `running` execution.
fn execution(id: Uuid, project: &str, name: &str, status: &str, started_at_us: i64) -> ShipRecord {
    let ended = status != "running";
    ShipRecord::Execution(ExecutionRow {
        seq: 1,
        id,
        project: project.into(),
        name: name.into(),
        status: status.into(),
        metadata: Some(json!({"sku": "A-1"})),
        outcome: ended.then(|| json!({"picked": "c2"})),
        error: (status == "error").then(|| "it broke".into()),
        started_at_us,
        ended_at_us: ended.then_some(started_at_us + 5_000_007),
    })
}

/// A finished step with no payload; adjust fields as needed.
fn step(id: Uuid, execution_id: Uuid, name: &str, started_at_us: i64) -> StepRow {
    StepRow {
        seq: 2,
        id,
        execution_id,
        parent_id: None,
        project: "shop".into(),
        name: name.into(),
        kind: None,
        status: "ok".into(),
        input: None,
        output: None,
        error: None,
        attributes: None,
        started_at_us,
        duration_us: Some(MS),
        decisions: vec![],
        llm_usage: vec![],
    }
}

fn decided(candidate: &str, accepted: Option<bool>, reason: &str) -> Decision {
    Decision {
        candidate_id: candidate.into(),
        accepted,
        filter: Some("price".into()),
        reason: Some(reason.into()),
        score: Some(0.25),
    }
}

#[tokio::test]
async fn pages_are_newest_first_without_overlap_and_stable_under_inserts() {
    let (_db, store) = migrated_postgres().await;
    // 25 executions; pairs share a start time, so the id breaks the tie.
    let records: Vec<ShipRecord> = (1..=25u128)
        .map(|n| execution(id(n), "shop", "pick", "ok", T0 + (n as i64 / 2) * MS))
        .collect();
    store.write(&records).await.unwrap();
    let mut expected: Vec<(i64, Uuid)> = (1..=25u128)
        .map(|n| (T0 + (n as i64 / 2) * MS, id(n)))
        .collect();
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<Uuid> = expected.into_iter().map(|(_, id)| id).collect();

    let first = store.executions(&filter(10)).await.unwrap();
    assert_eq!(ids(&first.executions), expected[..10]);
    let cursor = first.next_cursor.expect("a second page");
    let last = first.executions.last().unwrap();
    assert_eq!(
        (cursor.started_at_us, cursor.id),
        (last.started_at_us, last.id)
    );

    // Something newer arrives between the requests: the next pages do not move.
    store
        .write(&[execution(
            id(100),
            "shop",
            "pick",
            "running",
            T0 + 3_600_000_000,
        )])
        .await
        .unwrap();

    let second = store
        .executions(&ExecutionFilter {
            after: Some(cursor),
            ..filter(10)
        })
        .await
        .unwrap();
    assert_eq!(ids(&second.executions), expected[10..20]);
    let third = store
        .executions(&ExecutionFilter {
            after: second.next_cursor,
            ..filter(10)
        })
        .await
        .unwrap();
    assert_eq!(ids(&third.executions), expected[20..]);
    assert_eq!(third.next_cursor, None);

    // A page that ends exactly at the last row says there is no more.
    let exact = store.executions(&filter(26)).await.unwrap();
    assert_eq!(exact.executions.len(), 26);
    assert_eq!(exact.executions[0].id, id(100));
    assert_eq!(exact.next_cursor, None);

    assert_eq!(store.latest_execution(None).await.unwrap(), Some(id(100)));
}

#[tokio::test]
async fn filters_select_project_name_status_and_time_range() {
    let (_db, store) = migrated_postgres().await;
    store
        .write(&[
            execution(id(1), "shop", "pick", "ok", T0),
            execution(id(2), "shop", "pick", "error", T0 + 1),
            execution(id(3), "shop", "rank", "running", T0 + 2),
            execution(id(4), "blog", "pick", "ok", T0 + 3),
            // A step whose execution never arrived: a placeholder, listed too.
            ShipRecord::Step(step(id(50), id(5), "orphan", T0 + 4)),
        ])
        .await
        .unwrap();
    let list = |f: ExecutionFilter| {
        let store = &store;
        async move { ids(&store.executions(&f).await.unwrap().executions) }
    };
    assert_eq!(list(filter(100)).await, [id(5), id(4), id(3), id(2), id(1)]);
    let project = |p: &str| ExecutionFilter {
        project: Some(p.into()),
        ..filter(100)
    };
    assert_eq!(list(project("blog")).await, [id(4)]);
    assert_eq!(list(project("shop")).await, [id(5), id(3), id(2), id(1)]);
    assert_eq!(list(project("nope")).await, Vec::<Uuid>::new());
    let name = ExecutionFilter {
        name: Some("pick".into()),
        ..filter(100)
    };
    assert_eq!(list(name).await, [id(4), id(2), id(1)]);
    let status = ExecutionFilter {
        status: Some("ok".into()),
        ..filter(100)
    };
    assert_eq!(list(status).await, [id(4), id(1)]);
    let combined = ExecutionFilter {
        project: Some("shop".into()),
        name: Some("pick".into()),
        status: Some("error".into()),
        ..filter(100)
    };
    assert_eq!(list(combined).await, [id(2)]);
    // since is inclusive, until exclusive, both to the microsecond.
    let range = ExecutionFilter {
        since_us: Some(T0 + 1),
        until_us: Some(T0 + 3),
        ..filter(100)
    };
    assert_eq!(list(range).await, [id(3), id(2)]);

    let page = store.executions(&filter(100)).await.unwrap();
    let placeholder = &page.executions[0];
    assert_eq!(
        (
            placeholder.name.as_str(),
            placeholder.status.as_str(),
            placeholder.steps
        ),
        ("(unknown)", "running", 1)
    );
    assert_eq!(page.executions[1].steps, 0);
    assert_eq!(page.executions[1].ended_at_us, Some(T0 + 3 + 5_000_007));
    assert_eq!(page.executions[2].ended_at_us, None);

    assert_eq!(
        store.latest_execution(Some("blog")).await.unwrap(),
        Some(id(4))
    );
    assert_eq!(
        store.latest_execution(Some("shop")).await.unwrap(),
        Some(id(5))
    );
    assert_eq!(store.latest_execution(Some("nope")).await.unwrap(), None);
}

#[tokio::test]
async fn an_execution_comes_back_whole_with_exact_times() {
    let (_db, store) = migrated_postgres().await;
    let exec = id(1);
    // Far from round numbers, before and after the epoch: µs must survive.
    let started = 4_102_444_799_999_999; // 2099-12-31T23:59:59.999999Z
    let mut a = step(id(11), exec, "fetch", started + 1);
    a.kind = Some("io".into());
    a.input = Some(json!({"sku": "A-1"}));
    a.output = Some(json!({"n": 3}));
    a.attributes = Some(json!({"region": "eu"}));
    a.duration_us = Some(123_456_789);
    a.llm_usage = vec![usage("gpt-b", 10, 1), usage("gpt-a", 20, 2)];
    let mut b = step(id(10), exec, "filter", started + 2);
    b.parent_id = Some(id(11));
    b.status = "error".into();
    b.error = Some("boom".into());
    b.decisions = vec![
        decided("c9", Some(false), "first"),
        decided("c1", None, "second"),
        decided("c5", Some(true), "third"),
    ];
    let mut c = step(id(12), exec, "running", started + 2);
    c.status = "running".into();
    c.duration_us = None;
    store
        .write(&[
            execution(exec, "shop", "pick", "ok", started),
            ShipRecord::Step(c),
            ShipRecord::Step(b),
            ShipRecord::Step(a),
            execution(id(2), "shop", "early", "ok", -1_234_567),
        ])
        .await
        .unwrap();

    let detail = store.execution(exec).await.unwrap().expect("found");
    assert_eq!(detail.summary.started_at_us, started);
    assert_eq!(detail.summary.ended_at_us, Some(started + 5_000_007));
    assert_eq!(detail.summary.steps, 3);
    assert_eq!(detail.metadata, Some(json!({"sku": "A-1"})));
    assert_eq!(detail.outcome, Some(json!({"picked": "c2"})));
    // Start order, then id for equal starts.
    let order: Vec<(Uuid, i64)> = detail
        .steps
        .iter()
        .map(|s| (s.id, s.started_at_us))
        .collect();
    assert_eq!(
        order,
        [
            (id(11), started + 1),
            (id(10), started + 2),
            (id(12), started + 2)
        ]
    );
    let fetch = &detail.steps[0];
    assert_eq!(fetch.kind.as_deref(), Some("io"));
    assert_eq!(fetch.input, Some(json!({"sku": "A-1"})));
    assert_eq!(fetch.output, Some(json!({"n": 3})));
    assert_eq!(fetch.attributes, Some(json!({"region": "eu"})));
    assert_eq!(fetch.duration_us, Some(123_456_789));
    let models: Vec<&str> = fetch.llm_usage.iter().map(|u| u.model.as_str()).collect();
    assert_eq!(models, ["gpt-b", "gpt-a"]);
    assert_eq!(
        (
            fetch.llm_usage[1].prompt_tokens,
            fetch.llm_usage[1].completion_tokens
        ),
        (20, 2)
    );
    assert!(fetch.decisions.is_empty());
    let filter_step = &detail.steps[1];
    assert_eq!(filter_step.parent_id, Some(id(11)));
    assert_eq!(filter_step.status, "error");
    assert_eq!(filter_step.error.as_deref(), Some("boom"));
    let candidates: Vec<&str> = filter_step
        .decisions
        .iter()
        .map(|d| d.candidate_id.as_str())
        .collect();
    assert_eq!(candidates, ["c9", "c1", "c5"]);
    assert_eq!(filter_step.decisions[0].accepted, Some(false));
    assert_eq!(filter_step.decisions[1].accepted, None);
    assert_eq!(filter_step.decisions[2].reason.as_deref(), Some("third"));
    assert_eq!(filter_step.decisions[2].score, Some(0.25));
    assert_eq!(detail.steps[2].duration_us, None);

    let early = store.execution(id(2)).await.unwrap().expect("found");
    assert_eq!(early.summary.started_at_us, -1_234_567);
    assert_eq!(early.summary.ended_at_us, Some(-1_234_567 + 5_000_007));
    assert!(early.steps.is_empty());

    assert_eq!(store.execution(id(404)).await.unwrap(), None);
}

#[tokio::test]
async fn why_follows_a_candidate_across_steps_in_order() {
    let (_db, store) = migrated_postgres().await;
    let exec = id(1);
    let mut price = step(id(30), exec, "price_filter", T0 + 10);
    price.decisions = vec![
        decided("c1", Some(true), "cheap"),
        decided("c2", Some(true), "cheap"),
    ];
    let mut stock = step(id(20), exec, "stock_filter", T0 + 20);
    stock.decisions = vec![
        decided("c2", Some(false), "out of stock"),
        decided("c1", Some(true), "in stock"),
        decided("c1", None, "scored again"),
    ];
    let mut rank = step(id(10), exec, "rank", T0 + 30);
    rank.decisions = vec![decided("c1", Some(true), "best")];
    let mut other = step(id(40), id(2), "price_filter", T0 + 5);
    other.decisions = vec![decided("c1", Some(false), "another execution")];
    store
        .write(&[
            execution(exec, "shop", "pick", "ok", T0),
            execution(id(2), "shop", "pick", "ok", T0),
            ShipRecord::Step(rank),
            ShipRecord::Step(stock),
            ShipRecord::Step(price),
            ShipRecord::Step(other),
        ])
        .await
        .unwrap();

    let path = store.why(exec, "c1").await.unwrap();
    let seen: Vec<(&str, i64, Option<&str>)> = path
        .iter()
        .map(|w| {
            (
                w.step_name.as_str(),
                w.started_at_us,
                w.decision.reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("price_filter", T0 + 10, Some("cheap")),
            ("stock_filter", T0 + 20, Some("in stock")),
            ("stock_filter", T0 + 20, Some("scored again")),
            ("rank", T0 + 30, Some("best")),
        ]
    );
    assert_eq!(path[0].step_id, id(30));
    assert!(path.iter().all(|w| w.decision.candidate_id == "c1"));
    assert_eq!(store.why(exec, "c2").await.unwrap().len(), 2);
    assert!(store.why(exec, "c3").await.unwrap().is_empty());
    assert!(store.why(id(404), "c1").await.unwrap().is_empty());
}

#[tokio::test]
async fn search_finds_words_anywhere_and_ranks_better_matches_first() {
    let (_db, store) = migrated_postgres().await;
    let exec = id(1);
    let mut named = step(id(11), exec, "aardvark", T0 + 1);
    named.input = Some(json!({"q": "badger"}));
    let mut outputs = step(id(12), exec, "rank", T0 + 2);
    outputs.output = Some(json!({"note": "cormorant walrus walrus walrus"}));
    let mut errs = step(id(13), exec, "fetch", T0 + 3);
    errs.status = "error".into();
    errs.error = Some("dingo exploded, walrus seen".into());
    store
        .write(&[
            execution(exec, "shop", "pick_competitor", "ok", T0),
            ShipRecord::Step(named),
            ShipRecord::Step(outputs),
            ShipRecord::Step(errs),
        ])
        .await
        .unwrap();

    for (word, expected) in [
        ("aardvark", id(11)),
        ("BADGER", id(11)),
        ("cormorant", id(12)),
        ("dingo", id(13)),
    ] {
        let hits = store.search(word, 10).await.unwrap();
        let found: Vec<Uuid> = hits.iter().map(|h| h.step_id).collect();
        assert_eq!(found, [expected], "{word}");
        assert_eq!(hits[0].execution_id, exec);
        assert_eq!(hits[0].execution_name, "pick_competitor");
    }
    let hits = store.search("walrus", 10).await.unwrap();
    let found: Vec<Uuid> = hits.iter().map(|h| h.step_id).collect();
    assert_eq!(found, [id(12), id(13)], "three mentions rank above one");
    assert!(hits[0].rank > hits[1].rank);
    assert_eq!(
        (hits[1].step_name.as_str(), hits[1].status.as_str()),
        ("fetch", "error")
    );
    assert_eq!(hits[1].started_at_us, T0 + 3);
    // Every word must match.
    assert_eq!(store.search("aardvark badger", 10).await.unwrap().len(), 1);
    assert!(store.search("aardvark dingo", 10).await.unwrap().is_empty());
    assert_eq!(store.search("walrus", 1).await.unwrap().len(), 1);
    assert!(store
        .search("nothing-like-it", 10)
        .await
        .unwrap()
        .is_empty());
    // Quotes and operators are text, not syntax.
    assert!(store
        .search("'); DROP TABLE x; --", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.search("!&|", 10).await.unwrap().is_empty());

    for blank in ["", "   \t"] {
        match store.search(blank, 10).await {
            Err(StoreError::Config(m)) => assert_eq!(m, "search text is empty"),
            other => panic!("{blank:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn stats_report_percentiles_errors_and_tokens() {
    let (_db, store) = migrated_postgres().await;
    let exec = id(1);
    let mut records = vec![execution(exec, "shop", "pick", "ok", T0)];
    // `rank`: 1..=100 ms, every 10th failed, shuffled start order.
    for n in 1..=100i64 {
        let mut s = step(
            id(1000 + n as u128),
            exec,
            "rank",
            T0 + ((n * 37) % 100) * MS,
        );
        s.duration_us = Some(n * MS);
        if n % 10 == 0 {
            s.status = if n == 50 { "panicked" } else { "error" }.into();
        }
        if n <= 3 {
            s.llm_usage = vec![usage("gpt-a", 100 * n, n)];
        }
        records.push(ShipRecord::Step(s));
    }
    // Still running: not counted.
    let mut running = step(id(2000), exec, "rank", T0);
    running.status = "running".into();
    running.duration_us = None;
    records.push(ShipRecord::Step(running));
    // `fetch`: an hour earlier.
    let mut fetch = step(id(3000), exec, "fetch", T0 - 3_600_000_000);
    fetch.duration_us = Some(7);
    fetch.llm_usage = vec![usage("gpt-b", 5, 6), usage("gpt-a", 1, 1)];
    records.push(ShipRecord::Step(fetch));
    store.write(&records).await.unwrap();

    let all = store.stats(None, None).await.unwrap();
    let steps: Vec<(&str, i64, i64, i64, i64, i64)> = all
        .steps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.count,
                s.errors,
                s.p50_us,
                s.p95_us,
                s.max_us,
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("fetch", 1, 0, 7, 7, 7),
            ("rank", 100, 10, 50 * MS, 95 * MS, 100 * MS),
        ]
    );
    let models: Vec<(&str, i64, i64, i64)> = all
        .models
        .iter()
        .map(|m| {
            (
                m.model.as_str(),
                m.calls,
                m.prompt_tokens,
                m.completion_tokens,
            )
        })
        .collect();
    assert_eq!(models, [("gpt-a", 4, 601, 7), ("gpt-b", 1, 5, 6)]);

    let recent = store.stats(Some(T0), None).await.unwrap();
    assert_eq!(recent.steps.len(), 1);
    assert_eq!(recent.steps[0].name, "rank");
    let models: Vec<(&str, i64, i64)> = recent
        .models
        .iter()
        .map(|m| (m.model.as_str(), m.calls, m.prompt_tokens))
        .collect();
    assert_eq!(models, [("gpt-a", 3, 600)]);

    let fetch_only = store.stats(None, Some("fetch")).await.unwrap();
    assert_eq!(fetch_only.steps.len(), 1);
    assert_eq!(fetch_only.steps[0].name, "fetch");
    assert_eq!(fetch_only.models.len(), 2);

    let none = store.stats(Some(T0 + 3_600_000_000), None).await.unwrap();
    assert!(none.steps.is_empty() && none.models.is_empty());
}

#[tokio::test]
async fn queries_on_an_unmigrated_database_say_so() {
    let db = pg::fresh_database().await;
    let store = PostgresStore::connect(&db.url).await.expect("connect");
    match store.executions(&filter(10)).await {
        Err(StoreError::Schema(m)) => assert!(m.contains("migrate up"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.stats(None, None).await,
        Err(StoreError::Schema(_))
    ));
    // The connection is reopened and works once the schema exists.
    store.migrate_up().await.expect("migrate up");
    assert_eq!(store.latest_execution(None).await.unwrap(), None);
}
