//! The read side of the embedded store ([`QueryStore`] for [`SqliteStore`])
//! against real files in temporary directories: keyset pagination and
//! filters, whole executions, `why`, full-text search and statistics.

mod support;

use serde_json::json;
use support::records::{filter, ids, new_id, usage};
use uuid::Uuid;
use xray_collector::backend::{sqlite::SqliteStore, Migrations, QueryStore, Store, StoreError};
use xray_collector::model::{Decision, ExecutionRow, ShipRecord, StepRow};
use xray_collector::query::{Cursor, ExecutionFilter};

const T0: i64 = 1_700_000_000_000_000;
const MS: i64 = 1_000;
const NONE: [Uuid; 0] = [];

async fn migrated_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("xray.db")).unwrap();
    store.migrate_up().await.unwrap();
    (dir, store)
}

fn execution_row(id: Uuid, project: &str, name: &str, status: &str, started: i64) -> ExecutionRow {
    let ended = status != "running";
    ExecutionRow {
        seq: 1,
        id,
        project: project.into(),
        name: name.into(),
        status: status.into(),
        metadata: Some(json!({"seller_asin": "B0SELLER"})),
        outcome: ended.then(|| json!({"chosen": "B0CHOSEN"})),
        error: (status == "error").then(|| "no candidate left".into()),
        started_at_us: started,
        ended_at_us: ended.then_some(started + 5 * MS),
    }
}

fn execution(id: Uuid, project: &str, name: &str, status: &str, started: i64) -> ShipRecord {
    ShipRecord::Execution(execution_row(id, project, name, status, started))
}

/// A finished (`ok`) step of `execution` named `name`.
fn step_row(execution_id: Uuid, name: &str, started: i64, duration: i64) -> StepRow {
    StepRow {
        seq: 2,
        id: new_id(),
        execution_id,
        parent_id: None,
        project: "shop".into(),
        name: name.into(),
        kind: Some("filter".into()),
        status: "ok".into(),
        input: Some(json!({"max_price": 30.0})),
        output: Some(json!(["B0CHOSEN"])),
        error: None,
        attributes: Some(json!({})),
        started_at_us: started,
        duration_us: Some(duration),
        decisions: Vec::new(),
        llm_usage: Vec::new(),
    }
}

fn decision(candidate: &str, accepted: Option<bool>, filter: &str, reason: &str) -> Decision {
    Decision {
        candidate_id: candidate.into(),
        accepted,
        filter: Some(filter.into()),
        reason: Some(reason.into()),
        score: None,
    }
}

/// Every page of `filter`, following the cursors.
async fn all_pages(store: &SqliteStore, mut filter: ExecutionFilter) -> Vec<Uuid> {
    let mut out = Vec::new();
    loop {
        let page = store.executions(&filter).await.unwrap();
        out.extend(ids(&page.executions));
        match page.next_cursor {
            Some(c) => filter.after = Some(c),
            None => return out,
        }
    }
}

#[tokio::test]
async fn pages_are_newest_first_disjoint_and_stable_while_executions_arrive() {
    let (_dir, store) = migrated_store().await;
    // Pairs share a start time, so the id decides their order.
    let mut rows: Vec<(i64, Uuid)> = (0..25).map(|i| (T0 + (i / 2) * MS, new_id())).collect();
    let records: Vec<ShipRecord> = rows
        .iter()
        .map(|&(t, id)| execution(id, "shop", "competitor_selection", "ok", t))
        .collect();
    store.write(&records).await.unwrap();
    // One step in the newest execution, to see the count.
    rows.sort_by(|a, b| b.cmp(a));
    let newest = rows[0].1;
    store
        .write(&[ShipRecord::Step(step_row(newest, "a", T0 + 20 * MS, MS))])
        .await
        .unwrap();
    let expected: Vec<Uuid> = rows.iter().map(|r| r.1).collect();

    let page1 = store.executions(&filter(10)).await.unwrap();
    assert_eq!(ids(&page1.executions), expected[..10]);
    assert_eq!(page1.executions[0].steps, 1);
    assert_eq!(page1.executions[1].steps, 0);
    let cursor = page1.next_cursor.unwrap();
    assert_eq!(
        cursor,
        Cursor {
            started_at_us: rows[9].0,
            id: rows[9].1
        }
    );

    // A newer execution arrives between the page requests: the next pages
    // carry on where the first one stopped.
    let late = new_id();
    store
        .write(&[execution(
            late,
            "shop",
            "competitor_selection",
            "running",
            T0 + 99 * MS,
        )])
        .await
        .unwrap();

    let page2 = store
        .executions(&ExecutionFilter {
            after: Some(cursor),
            ..filter(10)
        })
        .await
        .unwrap();
    assert_eq!(ids(&page2.executions), expected[10..20]);
    let page3 = store
        .executions(&ExecutionFilter {
            after: page2.next_cursor,
            ..filter(10)
        })
        .await
        .unwrap();
    assert_eq!(ids(&page3.executions), expected[20..]);
    assert_eq!(page3.next_cursor, None);

    // The whole list now starts with the late one and has no duplicates.
    let all = all_pages(&store, filter(10)).await;
    assert_eq!(all.len(), 26);
    assert_eq!(all[0], late);
    assert_eq!(all[1..], expected[..]);

    // Exactly a page's worth: no next cursor.
    let exact = store.executions(&filter(26)).await.unwrap();
    assert_eq!(exact.executions.len(), 26);
    assert_eq!(exact.next_cursor, None);
}

#[tokio::test]
async fn ids_order_like_uuids_on_equal_start_times() {
    let (_dir, store) = migrated_store().await;
    // Hex digits and letters: text order must match numeric order.
    let a = Uuid::from_u128(0x0000_0000_0000_0000_0000_0000_0000_0009);
    let b = Uuid::from_u128(0x0000_0000_0000_0000_0000_0000_0000_000a);
    let c = Uuid::from_u128(0xf000_0000_0000_0000_0000_0000_0000_0000);
    for id in [a, b, c] {
        store
            .write(&[execution(id, "shop", "x", "ok", T0)])
            .await
            .unwrap();
    }
    assert_eq!(all_pages(&store, filter(1)).await, [c, b, a]);
}

#[tokio::test]
async fn filters_select_by_project_name_status_and_time() {
    let (_dir, store) = migrated_store().await;
    let shop_ok = new_id();
    let shop_err = new_id();
    let shop_other = new_id();
    let blog = new_id();
    store
        .write(&[
            execution(shop_ok, "shop", "competitor_selection", "ok", T0),
            execution(shop_err, "shop", "competitor_selection", "error", T0 + MS),
            execution(shop_other, "shop", "restock", "running", T0 + 2 * MS),
            execution(blog, "blog", "competitor_selection", "ok", T0 + 3 * MS),
        ])
        .await
        .unwrap();
    // A step whose execution has not arrived: a placeholder, listed too.
    let orphan_execution = new_id();
    store
        .write(&[ShipRecord::Step(step_row(
            orphan_execution,
            "a",
            T0 + 4 * MS,
            MS,
        ))])
        .await
        .unwrap();

    let run = |f: ExecutionFilter| {
        let store = store.clone();
        async move { ids(&store.executions(&f).await.unwrap().executions) }
    };
    assert_eq!(
        run(filter(100)).await,
        [orphan_execution, blog, shop_other, shop_err, shop_ok]
    );
    let placeholder = &store.executions(&filter(1)).await.unwrap().executions[0];
    assert_eq!(
        (
            placeholder.name.as_str(),
            placeholder.status.as_str(),
            placeholder.steps
        ),
        ("(unknown)", "running", 1)
    );

    let project = |p: &str| ExecutionFilter {
        project: Some(p.into()),
        ..filter(100)
    };
    assert_eq!(
        run(project("shop")).await,
        [orphan_execution, shop_other, shop_err, shop_ok]
    );
    assert_eq!(run(project("blog")).await, [blog]);
    assert_eq!(run(project("nope")).await, NONE);

    let by_name = ExecutionFilter {
        name: Some("competitor_selection".into()),
        ..filter(100)
    };
    assert_eq!(run(by_name.clone()).await, [blog, shop_err, shop_ok]);
    let by_status = ExecutionFilter {
        status: Some("ok".into()),
        ..filter(100)
    };
    assert_eq!(run(by_status).await, [blog, shop_ok]);
    let combined = ExecutionFilter {
        project: Some("shop".into()),
        status: Some("error".into()),
        ..by_name
    };
    assert_eq!(run(combined).await, [shop_err]);

    // since is inclusive, until exclusive.
    let since = ExecutionFilter {
        since_us: Some(T0 + MS),
        ..filter(100)
    };
    assert_eq!(
        run(since.clone()).await,
        [orphan_execution, blog, shop_other, shop_err]
    );
    let window = ExecutionFilter {
        until_us: Some(T0 + 3 * MS),
        ..since
    };
    assert_eq!(run(window.clone()).await, [shop_other, shop_err]);
    // Filters hold across pages.
    assert_eq!(
        all_pages(&store, ExecutionFilter { limit: 1, ..window }).await,
        [shop_other, shop_err]
    );

    // A user value is data, never SQL.
    assert_eq!(run(project("shop' OR '1'='1")).await, NONE);
}

#[tokio::test]
async fn latest_execution_is_the_newest_overall_or_of_a_project() {
    let (_dir, store) = migrated_store().await;
    assert_eq!(store.latest_execution(None).await.unwrap(), None);
    let old_shop = new_id();
    let new_shop = new_id();
    let blog = new_id();
    store
        .write(&[
            execution(old_shop, "shop", "x", "ok", T0),
            execution(new_shop, "shop", "x", "ok", T0 + MS),
            execution(blog, "blog", "x", "ok", T0 + 2 * MS),
        ])
        .await
        .unwrap();
    assert_eq!(store.latest_execution(None).await.unwrap(), Some(blog));
    assert_eq!(
        store.latest_execution(Some("shop")).await.unwrap(),
        Some(new_shop)
    );
    assert_eq!(store.latest_execution(Some("nope")).await.unwrap(), None);
}

#[tokio::test]
async fn an_execution_comes_back_whole_with_steps_in_start_order() {
    let (_dir, store) = migrated_store().await;
    let exec = new_id();
    let mut root = step_row(exec, "pipeline", T0, 50 * MS);
    root.kind = None;
    root.attributes = Some(json!({"region": "eu", "nested": {"n": [1, 2]}}));
    let mut filter_step = step_row(exec, "filter_by_price", T0 + 10 * MS, 2 * MS);
    filter_step.parent_id = Some(root.id);
    filter_step.decisions = vec![
        decision("B0CHEAP", Some(true), "price", "within budget"),
        decision("B0PRICEY", Some(false), "price", "45 > max 30"),
        Decision {
            score: Some(0.25),
            ..decision("B0MAYBE", None, "relevance", "scored")
        },
    ];
    let mut llm = step_row(exec, "llm_relevance", T0 + 20 * MS, 8 * MS);
    llm.parent_id = Some(root.id);
    llm.kind = Some("llm".into());
    llm.llm_usage = vec![usage("gpt-4o-mini", 120, 30), usage("gpt-4o", 10, 5)];
    let mut failed = step_row(exec, "fetch", T0 + 30 * MS, MS);
    failed.status = "error".into();
    failed.output = None;
    failed.error = Some("timed out".into());
    let mut running = step_row(exec, "rank", T0 + 40 * MS, 0);
    running.status = "running".into();
    running.duration_us = None;
    running.output = None;

    // Written out of order, and the execution last.
    store
        .write(&[
            ShipRecord::Step(running.clone()),
            ShipRecord::Step(llm.clone()),
            ShipRecord::Step(failed.clone()),
            ShipRecord::Step(root.clone()),
            ShipRecord::Step(filter_step.clone()),
        ])
        .await
        .unwrap();
    store
        .write(&[execution(exec, "shop", "competitor_selection", "error", T0)])
        .await
        .unwrap();
    // Another execution's steps stay out.
    let other = new_id();
    store
        .write(&[
            execution(other, "shop", "competitor_selection", "ok", T0),
            ShipRecord::Step(step_row(other, "pipeline", T0, MS)),
        ])
        .await
        .unwrap();

    let detail = store.execution(exec).await.unwrap().unwrap();
    assert_eq!(detail.summary.id, exec);
    assert_eq!(detail.summary.project, "shop");
    assert_eq!(detail.summary.name, "competitor_selection");
    assert_eq!(detail.summary.status, "error");
    assert_eq!(detail.summary.started_at_us, T0);
    assert_eq!(detail.summary.ended_at_us, Some(T0 + 5 * MS));
    assert_eq!(detail.summary.steps, 5);
    assert_eq!(detail.metadata, Some(json!({"seller_asin": "B0SELLER"})));
    assert_eq!(detail.outcome, Some(json!({"chosen": "B0CHOSEN"})));
    assert_eq!(detail.error.as_deref(), Some("no candidate left"));

    let names: Vec<&str> = detail.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "pipeline",
            "filter_by_price",
            "llm_relevance",
            "fetch",
            "rank"
        ]
    );
    let [s_root, s_filter, s_llm, s_failed, s_running] = &detail.steps[..] else {
        panic!("five steps expected");
    };
    assert_eq!(s_root.id, root.id);
    assert_eq!(s_root.parent_id, None);
    assert_eq!(s_root.kind, None);
    assert_eq!(
        s_root.attributes,
        Some(json!({"region": "eu", "nested": {"n": [1, 2]}}))
    );
    assert_eq!(s_root.input, Some(json!({"max_price": 30.0})));
    assert_eq!(s_root.output, Some(json!(["B0CHOSEN"])));
    assert_eq!(s_root.started_at_us, T0);
    assert_eq!(s_root.duration_us, Some(50 * MS));
    assert!(s_root.decisions.is_empty() && s_root.llm_usage.is_empty());

    assert_eq!(s_filter.parent_id, Some(root.id));
    let decisions: Vec<_> = s_filter
        .decisions
        .iter()
        .map(|d| {
            (
                d.candidate_id.as_str(),
                d.accepted,
                d.filter.as_deref(),
                d.score,
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("B0CHEAP", Some(true), Some("price"), None),
            ("B0PRICEY", Some(false), Some("price"), None),
            ("B0MAYBE", None, Some("relevance"), Some(0.25)),
        ]
    );
    assert_eq!(s_filter.decisions[1].reason.as_deref(), Some("45 > max 30"));

    assert_eq!(s_llm.kind.as_deref(), Some("llm"));
    let models: Vec<(&str, i64, i64)> = s_llm
        .llm_usage
        .iter()
        .map(|u| (u.model.as_str(), u.prompt_tokens, u.completion_tokens))
        .collect();
    assert_eq!(models, [("gpt-4o-mini", 120, 30), ("gpt-4o", 10, 5)]);

    assert_eq!(s_failed.status, "error");
    assert_eq!(s_failed.error.as_deref(), Some("timed out"));
    assert_eq!(s_failed.output, None);
    assert_eq!(s_running.status, "running");
    assert_eq!(s_running.duration_us, None);

    // Serializes for `--json`: the summary flattened, ids as text.
    let value = serde_json::to_value(&detail).unwrap();
    assert_eq!(value["id"], json!(exec.to_string()));
    assert_eq!(value["steps"][1]["decisions"][0]["candidate_id"], "B0CHEAP");

    assert_eq!(store.execution(new_id()).await.unwrap(), None);
}

#[tokio::test]
async fn why_follows_a_candidate_through_the_steps_in_order() {
    let (_dir, store) = migrated_store().await;
    let exec = new_id();
    let mut keywords = step_row(exec, "search", T0, MS);
    keywords.decisions = vec![
        decision("B0OTHER", Some(true), "search", "matched"),
        decision("B0TARGET", Some(true), "search", "matched keywords"),
    ];
    let mut price = step_row(exec, "filter_by_price", T0 + 10 * MS, MS);
    price.decisions = vec![
        decision("B0TARGET", Some(true), "price", "within budget"),
        Decision {
            score: Some(0.9),
            ..decision("B0TARGET", None, "price", "cheapest")
        },
    ];
    let unrelated = step_row(exec, "log", T0 + 15 * MS, MS);
    let mut rating = step_row(exec, "filter_by_rating", T0 + 20 * MS, MS);
    rating.decisions = vec![decision("B0TARGET", Some(false), "rating", "3.1 < min 4")];
    // The same candidate in another execution stays out.
    let other = new_id();
    let mut elsewhere = step_row(other, "search", T0 + 5 * MS, MS);
    elsewhere.decisions = vec![decision("B0TARGET", Some(true), "search", "elsewhere")];

    store
        .write(&[
            ShipRecord::Step(rating.clone()),
            ShipRecord::Step(unrelated),
            ShipRecord::Step(elsewhere),
            ShipRecord::Step(keywords.clone()),
            ShipRecord::Step(price.clone()),
        ])
        .await
        .unwrap();

    let path = store.why(exec, "B0TARGET").await.unwrap();
    let seen: Vec<_> = path
        .iter()
        .map(|w| {
            (
                w.step_id,
                w.step_name.as_str(),
                w.started_at_us,
                w.decision.accepted,
                w.decision.reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                keywords.id,
                "search",
                T0,
                Some(true),
                Some("matched keywords")
            ),
            (
                price.id,
                "filter_by_price",
                T0 + 10 * MS,
                Some(true),
                Some("within budget")
            ),
            (
                price.id,
                "filter_by_price",
                T0 + 10 * MS,
                None,
                Some("cheapest")
            ),
            (
                rating.id,
                "filter_by_rating",
                T0 + 20 * MS,
                Some(false),
                Some("3.1 < min 4")
            ),
        ]
    );
    assert!(path.iter().all(|w| w.decision.candidate_id == "B0TARGET"));
    assert_eq!(path[2].decision.score, Some(0.9));

    assert!(store.why(exec, "B0NOBODY").await.unwrap().is_empty());
    assert!(store.why(new_id(), "B0TARGET").await.unwrap().is_empty());
    assert!(store.why(exec, "' OR 1=1 --").await.unwrap().is_empty());
}

#[tokio::test]
async fn search_ranks_finds_every_column_and_takes_text_literally() {
    let (_dir, store) = migrated_store().await;
    let exec = new_id();
    let mut strong = step_row(exec, "describe", T0, MS);
    strong.input = Some(json!({"text": "waterproof jacket, waterproof zip, waterproof hood"}));
    strong.output = Some(json!("waterproof"));
    let mut weak = step_row(exec, "describe", T0 + MS, MS);
    weak.input = Some(json!({
        "text": "a long description of a jacket with many other words in it that \
                 dilute the single mention of being waterproof somewhere in the middle"
    }));
    let mut in_output = step_row(exec, "classify", T0 + 2 * MS, MS);
    in_output.output = Some(json!({"label": "umbrella"}));
    let mut in_error = step_row(exec, "fetch", T0 + 3 * MS, MS);
    in_error.status = "error".into();
    in_error.error = Some("upstream timed out after 30s".into());
    let in_name = step_row(exec, "deduplicate_listings", T0 + 4 * MS, MS);
    store
        .write(&[
            execution(exec, "shop", "competitor_selection", "ok", T0),
            ShipRecord::Step(weak.clone()),
            ShipRecord::Step(strong.clone()),
            ShipRecord::Step(in_output.clone()),
            ShipRecord::Step(in_error.clone()),
            ShipRecord::Step(in_name.clone()),
        ])
        .await
        .unwrap();

    let hits = store.search("waterproof", 10).await.unwrap();
    let found: Vec<Uuid> = hits.iter().map(|h| h.step_id).collect();
    assert_eq!(found, [strong.id, weak.id]);
    assert!(hits[0].rank > hits[1].rank, "{hits:?}");
    assert_eq!(hits[0].execution_id, exec);
    assert_eq!(hits[0].execution_name, "competitor_selection");
    assert_eq!(hits[0].step_name, "describe");
    assert_eq!(hits[0].status, "ok");
    assert_eq!(hits[0].started_at_us, T0);

    let only = |text: &'static str| {
        let store = store.clone();
        async move {
            store
                .search(text, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|h| h.step_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(only("umbrella").await, [in_output.id]);
    assert_eq!(only("TIMED out").await, [in_error.id]);
    assert_eq!(only("deduplicate_listings").await, [in_name.id]);
    // All words must match.
    assert_eq!(only("waterproof hood").await, [strong.id]);
    assert_eq!(only("waterproof umbrella").await, NONE);
    // FTS5 syntax is just text.
    assert_eq!(only("\"waterproof").await, [strong.id, weak.id]);
    assert_eq!(only("waterproof*").await, [strong.id, weak.id]);
    assert_eq!(only("NEAR( waterproof hood )").await, NONE);
    assert_eq!(only("umbrella *").await, [in_output.id]);
    assert_eq!(only("umbrella OR jacket").await, NONE);
    assert_eq!(only("-umbrella AND ^ :").await, NONE);
    assert_eq!(only("* \" ( )").await, NONE);

    // The limit holds.
    assert_eq!(store.search("waterproof", 1).await.unwrap().len(), 1);

    for blank in ["", "   ", "\t\n"] {
        match store.search(blank, 10).await {
            Err(StoreError::Config(m)) => assert_eq!(m, "search text is empty"),
            other => panic!("{blank:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn stats_give_discrete_percentiles_errors_and_tokens_per_model() {
    let (_dir, store) = migrated_store().await;
    let exec = new_id();
    // 1..=100 ms, shuffled; every tenth an error.
    let mut durations: Vec<i64> = (1..=100).collect();
    fastrand::shuffle(&mut durations);
    let mut records: Vec<ShipRecord> = durations
        .iter()
        .map(|&ms| {
            let mut s = step_row(exec, "score", T0 + ms * MS, ms * MS);
            if ms % 10 == 0 {
                s.status = "error".into();
                s.error = Some("boom".into());
            }
            ShipRecord::Step(s)
        })
        .collect();
    // A running step does not count.
    let mut running = step_row(exec, "score", T0, 0);
    running.status = "running".into();
    running.duration_us = None;
    records.push(ShipRecord::Step(running));
    // A second name, older, with usage.
    let mut llm_a = step_row(exec, "llm", T0 - 1_000 * MS, 7 * MS);
    llm_a.status = "panicked".into();
    llm_a.llm_usage = vec![usage("gpt-4o-mini", 100, 10), usage("gpt-4o", 1_000, 50)];
    let mut llm_b = step_row(exec, "llm", T0 + 500 * MS, 3 * MS);
    llm_b.llm_usage = vec![usage("gpt-4o-mini", 20, 2)];
    records.push(ShipRecord::Step(llm_a));
    records.push(ShipRecord::Step(llm_b));
    store.write(&records).await.unwrap();

    let stats = store.stats(None, None).await.unwrap();
    let names: Vec<&str> = stats.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["llm", "score"]);
    let score = &stats.steps[1];
    assert_eq!(score.count, 100);
    assert_eq!(score.errors, 10);
    assert_eq!(score.p50_us, 50 * MS);
    assert_eq!(score.p95_us, 95 * MS);
    assert_eq!(score.max_us, 100 * MS);
    let llm = &stats.steps[0];
    assert_eq!((llm.count, llm.errors), (2, 1));
    // n = 2: p50 at rank 1, p95 at rank 2.
    assert_eq!(
        (llm.p50_us, llm.p95_us, llm.max_us),
        (3 * MS, 7 * MS, 7 * MS)
    );

    let models: Vec<(&str, i64, i64, i64)> = stats
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
    assert_eq!(
        models,
        [("gpt-4o", 1, 1_000, 50), ("gpt-4o-mini", 2, 120, 12)]
    );

    // Since: the old llm step and its usage drop out.
    let recent = store.stats(Some(T0), None).await.unwrap();
    assert_eq!(recent.steps[0].name, "llm");
    assert_eq!(recent.steps[0].count, 1);
    assert_eq!(recent.steps[1].count, 100);
    let recent_models: Vec<(&str, i64)> = recent
        .models
        .iter()
        .map(|m| (m.model.as_str(), m.prompt_tokens))
        .collect();
    assert_eq!(recent_models, [("gpt-4o-mini", 20)]);

    // One name.
    let only_score = store.stats(None, Some("score")).await.unwrap();
    assert_eq!(only_score.steps.len(), 1);
    assert_eq!(only_score.steps[0].p95_us, 95 * MS);
    assert!(only_score.models.is_empty());

    // Nothing recorded: empty, not an error.
    let none = store.stats(Some(T0 + 10_000 * MS), None).await.unwrap();
    assert!(none.steps.is_empty() && none.models.is_empty());
}

#[tokio::test]
async fn percentiles_of_a_single_step_are_its_duration() {
    let (_dir, store) = migrated_store().await;
    let exec = new_id();
    store
        .write(&[ShipRecord::Step(step_row(exec, "once", T0, 42))])
        .await
        .unwrap();
    let stats = store.stats(None, None).await.unwrap();
    let s = &stats.steps[0];
    assert_eq!(
        (s.count, s.errors, s.p50_us, s.p95_us, s.max_us),
        (1, 0, 42, 42, 42)
    );
}
