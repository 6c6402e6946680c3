//! Reading ([`QueryStore`]): keyset pages and filters, one execution
//! whole, `why`, full-text search and statistics.

use serde_json::json;
use uuid::Uuid;
use xray_collector::backend::{AnyStore, Migrations, QueryStore, Store, StoreError};
use xray_collector::model::{Decision, ShipRecord};
use xray_collector::query::{
    Cursor, ExecutionFilter, ExecutionSummary, ModelTokens, SearchHit, Stats,
};

use crate::backend::Backend;
use crate::support::records::{
    decision, execution, filter_step, id, new_id, step, usage, EXECUTION_TOOK_US, MS, T0,
};

on_both_backends!(
    migrated: pages_are_newest_first_disjoint_and_stable_while_executions_arrive,
    ids_order_like_uuids_on_equal_start_times,
    pages_run_through_starts_before_1970_with_printed_cursors,
    cursors_beyond_any_stored_time_answer_without_an_error,
    filters_select_project_name_status_and_time_range,
    latest_execution_is_the_newest_overall_or_of_a_project,
    an_execution_comes_back_whole_with_exact_times,
    why_follows_a_candidate_across_steps_in_order,
    why_carries_each_steps_reasoning_and_its_job,
    search_finds_a_word_in_any_column_of_a_step,
    search_ranks_the_better_match_first,
    search_needs_every_word_and_takes_query_syntax_as_text,
    an_end_that_replaces_the_output_replaces_what_search_finds,
    search_finds_a_step_once_the_index_behind_the_shipper_has_it,
    search_ranks_the_newest_matches_of_a_common_word,
    search_finds_matches_of_every_age,
    search_finds_string_values_and_not_keys_or_numbers,
    stats_report_discrete_percentiles_errors_and_tokens_per_model,
    percentiles_of_a_single_step_are_its_duration,
);

// Drift: PostgreSQL's search column uses the `simple` text search
// configuration (no stemming: "Colour" misses "colours") and
// `plainto_tsquery` keeps "TIMED-out" as one compound word, while FTS5's
// porter/unicode61 tokenizer stems and splits on punctuation. The search
// index is rebuilt for shipping speed in issue 12; the two must agree then.
on_the_embedded_store_until_postgres_matches!(
    migrated: search_matches_other_forms_of_a_word,
    search_splits_a_hyphenated_word_like_the_text,
);

on_both_backends!(unmigrated: queries_on_an_unmigrated_store_say_so);

const NONE: [Uuid; 0] = [];

/// The default listing filter, `limit` rows a page.
fn filter(limit: usize) -> ExecutionFilter {
    ExecutionFilter {
        limit,
        ..ExecutionFilter::default()
    }
}

fn ids(rows: &[ExecutionSummary]) -> Vec<Uuid> {
    rows.iter().map(|e| e.id).collect()
}

fn step_ids(hits: &[SearchHit]) -> Vec<Uuid> {
    hits.iter().map(|h| h.step_id).collect()
}

/// `(step, step name, status, start)` of each hit, best first.
fn hit_rows(hits: &[SearchHit]) -> Vec<(Uuid, &str, &str, i64)> {
    hits.iter()
        .map(|h| {
            (
                h.step_id,
                h.step_name.as_str(),
                h.status.as_str(),
                h.started_at_us,
            )
        })
        .collect()
}

/// Every page of `filter`, following the cursors.
async fn all_pages(store: &AnyStore, mut filter: ExecutionFilter) -> Vec<Uuid> {
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

async fn search_finds_string_values_and_not_keys_or_numbers(db: Backend) {
    let e = id(0x5EA);
    let s = id(0x5EB);
    db.store
        .write(&[
            execution(e).record(),
            step(s, e)
                .name("rank_offers")
                .input(json!({"sellerAsin": "B0SELLER01", "nested": {"title": ["steel bottle"]}, "maxPrice": 4242}))
                .output(json!({"winner": "quokka", "score": 0.9731}))
                .failed("upstream said nope")
                .record(),
        ])
        .await
        .unwrap();
    for (word, expected) in [
        ("B0SELLER01", vec![s]),
        ("steel", vec![s]),
        ("quokka", vec![s]),
        ("nope", vec![s]),
        ("rank_offers", vec![s]),
        // Keys and numbers are not what a person searches for.
        ("sellerAsin", vec![]),
        ("winner", vec![]),
        ("4242", vec![]),
        ("9731", vec![]),
    ] {
        assert_eq!(found(&db.store, word).await, expected, "{word}");
    }
}

/// The steps `text` finds, best first.
async fn found(store: &AnyStore, text: &str) -> Vec<Uuid> {
    xray_collector::indexing::catch_up(store).await.unwrap();
    step_ids(&store.search(text, 10, None).await.unwrap())
}

/// `(name, count, errors, p50, p95, max)` per step name.
fn per_step(stats: &Stats) -> Vec<(&str, i64, i64, i64, i64, i64)> {
    stats
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
        .collect()
}

/// `(model, calls, prompt, completion)` per model.
pub(crate) fn per_model(models: &[ModelTokens]) -> Vec<(&str, i64, i64, i64)> {
    models
        .iter()
        .map(|m| {
            (
                m.model.as_str(),
                m.calls,
                m.prompt_tokens,
                m.completion_tokens,
            )
        })
        .collect()
}

async fn pages_are_newest_first_disjoint_and_stable_while_executions_arrive(db: Backend) {
    // 25 executions; pairs share a start time, so the id breaks the tie.
    let mut rows: Vec<(i64, Uuid)> = (1..=25u128)
        .map(|n| (T0 + (n as i64 / 2) * MS, id(n)))
        .collect();
    let records: Vec<ShipRecord> = rows
        .iter()
        .map(|&(t, id)| execution(id).at(t).record())
        .collect();
    db.store.write(&records).await.unwrap();
    rows.sort_by(|a, b| b.cmp(a));
    let expected: Vec<Uuid> = rows.iter().map(|r| r.1).collect();
    // One step in the newest execution, to see the count.
    db.store
        .write(&[step(new_id(), expected[0]).at(T0 + 20 * MS).record()])
        .await
        .unwrap();

    let first = db.store.executions(&filter(10)).await.unwrap();
    assert_eq!(ids(&first.executions), expected[..10]);
    assert_eq!(first.executions[0].steps, 1);
    assert_eq!(first.executions[1].steps, 0);
    let cursor = first.next_cursor.expect("a second page");
    assert_eq!(
        cursor,
        Cursor {
            started_at_us: rows[9].0,
            id: rows[9].1
        },
        "the cursor is the page's last row"
    );

    // Something newer arrives between the requests: the next pages carry
    // on where the first one stopped.
    let late = id(100);
    db.store
        .write(&[execution(late).running().at(T0 + 3_600_000_000).record()])
        .await
        .unwrap();
    let second = db
        .store
        .executions(&ExecutionFilter {
            after: Some(cursor),
            ..filter(10)
        })
        .await
        .unwrap();
    assert_eq!(ids(&second.executions), expected[10..20]);
    let third = db
        .store
        .executions(&ExecutionFilter {
            after: second.next_cursor,
            ..filter(10)
        })
        .await
        .unwrap();
    assert_eq!(ids(&third.executions), expected[20..]);
    assert_eq!(third.next_cursor, None);

    // The whole list now starts with the late one and has no duplicates.
    let all = all_pages(&db.store, filter(10)).await;
    assert_eq!(all.len(), 26);
    assert_eq!(all[0], late);
    assert_eq!(all[1..], expected[..]);

    // A page that ends exactly at the last row says there is no more.
    let exact = db.store.executions(&filter(26)).await.unwrap();
    assert_eq!(exact.executions.len(), 26);
    assert_eq!(exact.executions[0].id, late);
    assert_eq!(exact.next_cursor, None);

    assert_eq!(db.store.latest_execution(None).await.unwrap(), Some(late));
}

async fn ids_order_like_uuids_on_equal_start_times(db: Backend) {
    // Hex digits and letters: text order must match numeric order.
    let (a, b, c) = (
        id(0x9),
        id(0xa),
        id(0xf000_0000_0000_0000_0000_0000_0000_0000),
    );
    for id in [a, b, c] {
        db.store.write(&[execution(id).record()]).await.unwrap();
    }
    assert_eq!(all_pages(&db.store, filter(1)).await, [c, b, a]);
}

async fn pages_run_through_starts_before_1970_with_printed_cursors(db: Backend) {
    // Around the epoch, where `{:x}` of a negative start once printed a
    // cursor that could not be read back: 1960, a second and a µs before
    // 1970, the epoch itself, and after.
    let starts = [-315_619_200_000_000, -1_000_001, -1, -1, 0, 1, T0];
    let records: Vec<ShipRecord> = starts
        .iter()
        .enumerate()
        .map(|(n, &t)| execution(id(n as u128 + 1)).at(t).record())
        .collect();
    db.store.write(&records).await.unwrap();
    let expected: Vec<Uuid> = (1..=starts.len() as u128).rev().map(id).collect();

    // Page by two, each cursor going through its printed form as it does
    // between two runs of `executions --cursor`.
    let mut seen = Vec::new();
    let mut cursor_text: Option<String> = None;
    loop {
        let after = cursor_text
            .as_deref()
            .map(|t| Cursor::decode(t).unwrap_or_else(|e| panic!("{t}: {e}")));
        let page = db
            .store
            .executions(&ExecutionFilter { after, ..filter(2) })
            .await
            .unwrap();
        seen.extend(ids(&page.executions));
        match page.next_cursor {
            Some(c) => cursor_text = Some(c.encode()),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    let detail = db.store.execution(id(1)).await.unwrap().unwrap();
    assert_eq!(detail.summary.started_at_us, starts[0], "exact before 1970");
}

async fn cursors_beyond_any_stored_time_answer_without_an_error(db: Backend) {
    db.store
        .write(&[
            execution(id(1)).at(-1).record(),
            execution(id(2)).at(T0).record(),
        ])
        .await
        .unwrap();
    let after = |started_at_us: i64, n: u128| ExecutionFilter {
        after: Some(Cursor {
            started_at_us,
            id: id(n),
        }),
        ..filter(10)
    };
    let list = |f: ExecutionFilter| {
        let store = &db.store;
        async move { ids(&store.executions(&f).await.unwrap().executions) }
    };
    assert_eq!(list(after(i64::MAX, 0)).await, [id(2), id(1)]);
    assert_eq!(list(after(i64::MIN, u128::MAX)).await, NONE);
    assert_eq!(list(after(0, 0)).await, [id(1)]);
    assert_eq!(list(after(-1, 2)).await, [id(1)]);
    assert_eq!(list(after(-1, 1)).await, NONE);
}

async fn filters_select_project_name_status_and_time_range(db: Backend) {
    db.store
        .write(&[
            execution(id(1)).name("pick").at(T0).record(),
            execution(id(2))
                .name("pick")
                .status("error")
                .at(T0 + 1)
                .record(),
            execution(id(3)).name("rank").running().at(T0 + 2).record(),
            execution(id(4))
                .project("blog")
                .name("pick")
                .at(T0 + 3)
                .record(),
            // A step whose execution never arrived: a placeholder, listed too.
            step(id(50), id(5)).name("orphan").at(T0 + 4).record(),
        ])
        .await
        .unwrap();
    let list = |f: ExecutionFilter| {
        let store = &db.store;
        async move { ids(&store.executions(&f).await.unwrap().executions) }
    };
    assert_eq!(list(filter(100)).await, [id(5), id(4), id(3), id(2), id(1)]);

    let project = |p: &str| ExecutionFilter {
        project: Some(p.into()),
        ..filter(100)
    };
    assert_eq!(list(project("blog")).await, [id(4)]);
    assert_eq!(list(project("shop")).await, [id(5), id(3), id(2), id(1)]);
    assert_eq!(list(project("nope")).await, NONE);
    // A user value is data, never SQL.
    assert_eq!(list(project("shop' OR '1'='1")).await, NONE);

    let name = ExecutionFilter {
        name: Some("pick".into()),
        ..filter(100)
    };
    assert_eq!(list(name.clone()).await, [id(4), id(2), id(1)]);
    let status = ExecutionFilter {
        status: Some("ok".into()),
        ..filter(100)
    };
    assert_eq!(list(status).await, [id(4), id(1)]);
    let combined = ExecutionFilter {
        project: Some("shop".into()),
        status: Some("error".into()),
        ..name
    };
    assert_eq!(list(combined).await, [id(2)]);

    // since is inclusive, until exclusive, both to the microsecond.
    let since = ExecutionFilter {
        since_us: Some(T0 + 1),
        ..filter(100)
    };
    assert_eq!(list(since.clone()).await, [id(5), id(4), id(3), id(2)]);
    let window = ExecutionFilter {
        until_us: Some(T0 + 3),
        ..since
    };
    assert_eq!(list(window.clone()).await, [id(3), id(2)]);
    // Filters hold across pages.
    assert_eq!(
        all_pages(&db.store, ExecutionFilter { limit: 1, ..window }).await,
        [id(3), id(2)]
    );

    let page = db.store.executions(&filter(100)).await.unwrap();
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
    assert_eq!(
        page.executions[1].ended_at_us,
        Some(T0 + 3 + EXECUTION_TOOK_US)
    );
    assert_eq!(page.executions[2].ended_at_us, None);

    let latest = |p: &'static str| db.store.latest_execution(Some(p));
    assert_eq!(latest("blog").await.unwrap(), Some(id(4)));
    assert_eq!(latest("shop").await.unwrap(), Some(id(5)));
    assert_eq!(latest("nope").await.unwrap(), None);
}

async fn latest_execution_is_the_newest_overall_or_of_a_project(db: Backend) {
    assert_eq!(db.store.latest_execution(None).await.unwrap(), None);
    let (old_shop, new_shop, blog) = (new_id(), new_id(), new_id());
    db.store
        .write(&[
            execution(old_shop).at(T0).record(),
            execution(new_shop).at(T0 + MS).record(),
            execution(blog).project("blog").at(T0 + 2 * MS).record(),
        ])
        .await
        .unwrap();
    assert_eq!(db.store.latest_execution(None).await.unwrap(), Some(blog));
    assert_eq!(
        db.store.latest_execution(Some("shop")).await.unwrap(),
        Some(new_shop)
    );
    assert_eq!(db.store.latest_execution(Some("nope")).await.unwrap(), None);
}

async fn an_execution_comes_back_whole_with_exact_times(db: Backend) {
    let exec = id(1);
    // Far from round numbers, before and after the epoch: µs must survive.
    let started = 4_102_444_799_999_999; // 2099-12-31T23:59:59.999999Z
    let root = step(id(11), exec)
        .name("pipeline")
        .at(started + 1)
        .took(123_456_789)
        .input(json!({"sku": "A-1"}))
        .output(json!({"n": 3}))
        .attributes(json!({"region": "eu", "nested": {"n": [1, 2]}}));
    let filtering = step(id(10), exec)
        .name("filter_by_price")
        .kind("filter")
        .parent(id(11))
        .at(started + 2)
        .failed("boom")
        .decisions(vec![
            decision("c9", Some(false), "first"),
            Decision {
                filter: Some("relevance".into()),
                ..decision("c1", None, "second")
            },
            Decision {
                score: Some(0.25),
                ..decision("c5", Some(true), "third")
            },
        ]);
    let llm = step(id(12), exec)
        .name("llm_relevance")
        .kind("llm")
        .parent(id(11))
        .at(started + 2)
        .usage(vec![usage("gpt-4o-mini", 120, 30), usage("gpt-4o", 10, 5)]);
    let running = step(id(13), exec).name("rank").at(started + 3).running();
    // Written out of order, and the execution last.
    db.store
        .write(&[
            running.record(),
            llm.record(),
            filtering.record(),
            root.record(),
        ])
        .await
        .unwrap();
    db.store
        .write(&[
            execution(exec).status("error").at(started).record(),
            execution(id(2)).name("early").at(-1_234_567).record(),
            // Another execution's steps stay out.
            execution(id(3)).at(started).record(),
            step(id(30), id(3)).at(started).record(),
        ])
        .await
        .unwrap();

    let detail = db.store.execution(exec).await.unwrap().expect("found");
    let summary = &detail.summary;
    assert_eq!(
        (
            summary.id,
            summary.project.as_str(),
            summary.name.as_str(),
            summary.status.as_str()
        ),
        (exec, "shop", "pick_competitor", "error")
    );
    assert_eq!(summary.started_at_us, started);
    assert_eq!(summary.ended_at_us, Some(started + EXECUTION_TOOK_US));
    assert_eq!(summary.steps, 4);
    assert_eq!(detail.metadata, Some(json!({"sku": "A-1"})));
    assert_eq!(detail.outcome, Some(json!({"picked": "c2"})));
    assert_eq!(detail.error.as_deref(), Some("it broke"));

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
            (id(12), started + 2),
            (id(13), started + 3),
        ]
    );
    let [s_root, s_filter, s_llm, s_running] = &detail.steps[..] else {
        panic!("four steps expected");
    };
    assert_eq!(s_root.name, "pipeline");
    assert_eq!((s_root.parent_id, s_root.kind.as_deref()), (None, None));
    assert_eq!(s_root.status, "ok");
    assert_eq!(s_root.input, Some(json!({"sku": "A-1"})));
    assert_eq!(s_root.output, Some(json!({"n": 3})));
    assert_eq!(
        s_root.attributes,
        Some(json!({"region": "eu", "nested": {"n": [1, 2]}}))
    );
    assert_eq!(s_root.duration_us, Some(123_456_789));
    assert!(s_root.decisions.is_empty() && s_root.llm_usage.is_empty());

    assert_eq!(s_filter.parent_id, Some(id(11)));
    assert_eq!(s_filter.kind.as_deref(), Some("filter"));
    assert_eq!(s_filter.status, "error");
    assert_eq!(s_filter.error.as_deref(), Some("boom"));
    assert_eq!(s_filter.output, None);
    let decisions: Vec<_> = s_filter
        .decisions
        .iter()
        .map(|d| {
            (
                d.candidate_id.as_str(),
                d.accepted,
                d.filter.as_deref(),
                d.reason.as_deref(),
                d.score,
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("c9", Some(false), Some("price"), Some("first"), None),
            ("c1", None, Some("relevance"), Some("second"), None),
            ("c5", Some(true), Some("price"), Some("third"), Some(0.25)),
        ]
    );
    assert!(s_filter.llm_usage.is_empty());

    assert_eq!(s_llm.kind.as_deref(), Some("llm"));
    let models: Vec<(&str, i64, i64)> = s_llm
        .llm_usage
        .iter()
        .map(|u| (u.model.as_str(), u.prompt_tokens, u.completion_tokens))
        .collect();
    assert_eq!(models, [("gpt-4o-mini", 120, 30), ("gpt-4o", 10, 5)]);
    assert!(s_llm.decisions.is_empty());

    assert_eq!(s_running.status, "running");
    assert_eq!(s_running.duration_us, None);

    // Serializes for `--json`: the summary flattened, ids as text.
    let value = serde_json::to_value(&detail).unwrap();
    assert_eq!(value["id"], json!(exec.to_string()));
    assert_eq!(value["steps"][1]["decisions"][0]["candidate_id"], "c9");

    let early = db.store.execution(id(2)).await.unwrap().expect("found");
    assert_eq!(early.summary.started_at_us, -1_234_567);
    assert_eq!(
        early.summary.ended_at_us,
        Some(-1_234_567 + EXECUTION_TOOK_US)
    );
    assert!(early.steps.is_empty());

    assert_eq!(db.store.execution(id(404)).await.unwrap(), None);
}

async fn why_follows_a_candidate_across_steps_in_order(db: Backend) {
    let exec = id(1);
    let price = step(id(30), exec)
        .name("price_filter")
        .at(T0 + 10)
        .decisions(vec![
            decision("c1", Some(true), "cheap"),
            decision("c2", Some(true), "cheap"),
        ]);
    let unrelated = step(id(25), exec).name("log").at(T0 + 15);
    let stock = step(id(20), exec)
        .name("stock_filter")
        .at(T0 + 20)
        .decisions(vec![
            decision("c2", Some(false), "out of stock"),
            decision("c1", Some(true), "in stock"),
            Decision {
                score: Some(0.9),
                ..decision("c1", None, "scored again")
            },
        ]);
    let rank = step(id(10), exec)
        .name("rank")
        .at(T0 + 30)
        .decisions(vec![decision("c1", Some(true), "best")]);
    // The same candidate in another execution (never shipped itself) stays out.
    let elsewhere = step(id(40), id(2))
        .name("price_filter")
        .at(T0 + 5)
        .decisions(vec![decision("c1", Some(false), "another execution")]);
    db.store
        .write(&[
            execution(exec).record(),
            rank.record(),
            stock.record(),
            unrelated.record(),
            elsewhere.record(),
            price.record(),
        ])
        .await
        .unwrap();

    let path = db.store.why(exec, "c1").await.unwrap();
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
            (id(30), "price_filter", T0 + 10, Some(true), Some("cheap")),
            (
                id(20),
                "stock_filter",
                T0 + 20,
                Some(true),
                Some("in stock")
            ),
            (id(20), "stock_filter", T0 + 20, None, Some("scored again")),
            (id(10), "rank", T0 + 30, Some(true), Some("best")),
        ]
    );
    assert!(path.iter().all(|w| w.decision.candidate_id == "c1"));
    assert_eq!(path[2].decision.score, Some(0.9));
    assert_eq!(path[0].decision.filter.as_deref(), Some("price"));

    assert_eq!(db.store.why(exec, "c2").await.unwrap().len(), 2);
    assert!(db.store.why(exec, "c3").await.unwrap().is_empty());
    assert!(db.store.why(id(404), "c1").await.unwrap().is_empty());
    assert!(db.store.why(exec, "' OR 1=1 --").await.unwrap().is_empty());
}

/// Each step on a candidate's path carries its reasoning and its job, as
/// the step itself reads back: explained by the rules (job completed), an
/// LLM reasoner that gave up (job failed, its error, the rules text kept),
/// and steps the reasoner has not met (no job), with and without a text.
async fn why_carries_each_steps_reasoning_and_its_job(db: Backend) {
    let e = new_id();
    let (filter, llm, imported, late) = (new_id(), new_id(), new_id(), new_id());
    let c1 = |reason| vec![decision("c1", Some(true), reason)];
    db.store
        .write(&[
            execution(e).record(),
            filter_step(filter, e)
                .name("price_filter")
                .at(T0 + 1)
                .record(),
            step(llm, e)
                .name("llm_check")
                .at(T0 + 2)
                .decisions(c1("relevant"))
                .record(),
        ])
        .await
        .unwrap();
    xray_collector::indexing::catch_up(&db.store).await.unwrap();
    xray_collector::reasoning::catch_up(&db.store)
        .await
        .unwrap();
    db.fail_reasoning_job(llm, "429 Too Many Requests <b>'")
        .await;
    // Shipped after the reasoner ran: no job yet.
    db.store
        .write(&[
            step(imported, e)
                .name("imported")
                .at(T0 + 3)
                .reasoning("kept by hand")
                .decisions(c1("by hand"))
                .record(),
            step(late, e)
                .name("late")
                .at(T0 + 4)
                .decisions(c1("late"))
                .record(),
        ])
        .await
        .unwrap();

    let path = db.store.why(e, "c1").await.unwrap();
    let seen: Vec<_> = path
        .iter()
        .map(|w| {
            let job = w.reasoning_job.as_ref();
            (
                w.step_name.as_str(),
                job.map(|j| (j.status.as_str(), j.method.as_str(), j.attempts)),
                job.and_then(|j| j.error.as_deref()),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("price_filter", Some(("completed", "rules", 1)), None),
            (
                "llm_check",
                Some(("failed", "llm", 3)),
                Some("429 Too Many Requests <b>'")
            ),
            ("imported", None, None),
            ("late", None, None),
        ]
    );
    assert!(
        path[0]
            .reasoning
            .as_deref()
            .is_some_and(|r| r.starts_with("2 candidates: 1 kept")),
        "{:?}",
        path[0].reasoning
    );
    assert!(path[0]
        .reasoning_job
        .as_ref()
        .unwrap()
        .completed_at_us
        .is_some());
    assert!(
        path[1].reasoning.is_some(),
        "the rules text stays beside the failed job"
    );
    assert_eq!(
        path[1].reasoning_job.as_ref().unwrap().completed_at_us,
        None
    );
    assert_eq!(path[2].reasoning.as_deref(), Some("kept by hand"));
    assert_eq!(path[3].reasoning, None);

    // Read as the step itself reads.
    let steps = db
        .store
        .step_details(e, &[filter, llm, imported, late])
        .await
        .unwrap();
    for (w, s) in path.iter().zip(&steps) {
        assert_eq!(w.step_id, s.id);
        assert_eq!(
            (&w.reasoning, &w.reasoning_job),
            (&s.reasoning, &s.reasoning_job),
            "{}",
            s.name
        );
    }
    assert_eq!(path.len(), steps.len());

    let json = serde_json::to_value(&path).unwrap();
    assert_eq!(json[1]["reasoning_job"]["status"], "failed", "{json}");
    assert_eq!(json[1]["reasoning_job"]["attempts"], 3, "{json}");
    assert!(json[3]["reasoning"].is_null() && json[3]["reasoning_job"].is_null());
}

async fn search_finds_a_word_in_any_column_of_a_step(db: Backend) {
    let exec = id(1);
    // 200,000 words, over a megabyte of search text.
    let huge: String = (0..200_000).map(|i| format!("w{i} ")).collect();
    db.store
        .write(&[
            execution(exec).record(),
            step(id(11), exec)
                .name("aardvark")
                .input(json!({"q": "badger"}))
                .at(T0 + 1)
                .record(),
            step(id(12), exec)
                .name("classify")
                .output(json!({"label": "cormorant"}))
                .at(T0 + 2)
                .record(),
            step(id(13), exec)
                .name("fetch")
                .failed("dingo exploded")
                .at(T0 + 3)
                .record(),
            step(id(14), exec)
                .name("deduplicate_listings")
                .at(T0 + 4)
                .record(),
            step(id(15), exec)
                .name("dump_catalogue")
                .output(json!({"blob": huge}))
                .at(T0 + 5)
                .record(),
        ])
        .await
        .expect("a huge output is stored (its search text may be cut, never refused)");
    xray_collector::indexing::catch_up(&db.store).await.unwrap();

    for (word, expected) in [
        ("aardvark", id(11)),
        ("BADGER", id(11)),
        ("cormorant", id(12)),
        ("dingo", id(13)),
        ("deduplicate_listings", id(14)),
        ("dump_catalogue", id(15)),
        ("w1", id(15)),
    ] {
        let hits = db.store.search(word, 10, None).await.unwrap();
        assert_eq!(step_ids(&hits), [expected], "{word}");
        assert_eq!(hits[0].execution_id, exec);
        assert_eq!(hits[0].execution_name, "pick_competitor");
    }
    let hits = db.store.search("dingo", 10, None).await.unwrap();
    assert_eq!(hit_rows(&hits), [(id(13), "fetch", "error", T0 + 3)]);
}

async fn search_ranks_the_better_match_first(db: Backend) {
    let exec = id(1);
    let strong = step(id(21), exec)
        .name("describe")
        .input(json!({"text": "waterproof jacket, waterproof zip, waterproof hood"}))
        .output(json!("waterproof"))
        .at(T0);
    let weak = step(id(22), exec).name("describe").at(T0 + 1).input(json!({
        "text": "a long description of a jacket with many other words in it that \
                 dilute the single mention of being waterproof somewhere in the middle"
    }));
    let thrice = step(id(23), exec)
        .name("rank")
        .output(json!({"note": "cormorant walrus walrus walrus"}))
        .at(T0 + 2);
    let once = step(id(24), exec)
        .name("fetch")
        .failed("dingo exploded, walrus seen")
        .at(T0 + 3);
    db.store
        .write(&[
            execution(exec).record(),
            weak.record(),
            once.record(),
            strong.record(),
            thrice.record(),
        ])
        .await
        .unwrap();
    xray_collector::indexing::catch_up(&db.store).await.unwrap();

    let hits = db.store.search("waterproof", 10, None).await.unwrap();
    assert_eq!(
        hit_rows(&hits),
        [
            (id(21), "describe", "ok", T0),
            (id(22), "describe", "ok", T0 + 1)
        ],
        "three mentions in a short text rank above one in a long text"
    );
    assert!(hits[0].rank > hits[1].rank, "higher is better: {hits:?}");
    let hits = db.store.search("walrus", 10, None).await.unwrap();
    assert_eq!(
        hit_rows(&hits),
        [
            (id(23), "rank", "ok", T0 + 2),
            (id(24), "fetch", "error", T0 + 3)
        ],
        "three mentions rank above one"
    );
    assert!(hits[0].rank > hits[1].rank, "{hits:?}");

    // The limit holds.
    assert_eq!(
        db.store.search("waterproof", 1, None).await.unwrap().len(),
        1
    );
    assert_eq!(db.store.search("walrus", 1, None).await.unwrap().len(), 1);

    // Equal ranks across the limit: the newest of them, then by id.
    let twins: Vec<ShipRecord> = (0..6u128)
        .map(|n| {
            step(id(40 + n), exec)
                .name("twin")
                .output(json!({"note": "pangolin"}))
                .at(T0 + 10 + (n as i64 % 3))
                .record()
        })
        .collect();
    db.store.write(&twins).await.unwrap();
    assert_eq!(
        found(&db.store, "pangolin").await[..4],
        [id(42), id(45), id(41), id(44)],
        "one rank: newest first, then by id"
    );
    assert_eq!(
        step_ids(&db.store.search("pangolin", 2, None).await.unwrap()),
        [id(42), id(45)]
    );
}

async fn search_needs_every_word_and_takes_query_syntax_as_text(db: Backend) {
    let exec = id(1);
    let (strong, weak, umbrella, timed_out, named) = (id(21), id(22), id(23), id(24), id(25));
    db.store
        .write(&[
            execution(exec).record(),
            step(strong, exec)
                .input(json!({"text": "waterproof jacket, waterproof zip, waterproof hood"}))
                .at(T0)
                .record(),
            step(weak, exec)
                .input(json!({"text": "a long jacket description, waterproof somewhere"}))
                .at(T0 + 1)
                .record(),
            step(umbrella, exec)
                .output(json!({"label": "umbrella"}))
                .at(T0 + 2)
                .record(),
            step(timed_out, exec)
                .failed("upstream timed out after 30s")
                .at(T0 + 3)
                .record(),
            step(named, exec)
                .name("aardvark")
                .input(json!({"q": "badger"}))
                .at(T0 + 4)
                .record(),
        ])
        .await
        .unwrap();
    let find = |text: &'static str| found(&db.store, text);

    // Any case; every word must match.
    assert_eq!(find("WATERPROOF").await, [strong, weak]);
    assert_eq!(find("waterproof hood").await, [strong]);
    assert_eq!(find("aardvark badger").await, [named]);
    assert_eq!(find("TIMED out").await, [timed_out]);
    assert_eq!(find("waterproof umbrella").await, NONE);
    assert_eq!(find("aardvark upstream").await, NONE);
    assert_eq!(find("nothing-like-it").await, NONE);

    // Quotes, operators and SQL of either backend are just text.
    assert_eq!(find("\"waterproof").await, [strong, weak]);
    assert_eq!(find("waterproof*").await, [strong, weak]);
    assert_eq!(find("umbrella *").await, [umbrella]);
    assert_eq!(find("NEAR( waterproof hood )").await, NONE);
    assert_eq!(find("umbrella OR jacket").await, NONE);
    assert_eq!(find("-umbrella AND ^ :").await, NONE);
    assert_eq!(find("* \" ( )").await, NONE);
    assert_eq!(find("!&|").await, NONE);
    assert_eq!(find("\"unbalanced").await, NONE);
    assert_eq!(find("'); DROP TABLE x; --").await, NONE);

    // Blank text is refused (the query layer's rule, as `search` says).
    for blank in ["", "   ", "\t\n", "   \t"] {
        match db.store.search(blank, 10, None).await {
            Err(StoreError::Config(m)) => assert_eq!(m, "search text is empty"),
            other => panic!("{blank:?}: {other:?}"),
        }
    }
}

async fn search_matches_other_forms_of_a_word(db: Backend) {
    let exec = id(1);
    db.store
        .write(&[
            execution(exec).record(),
            step(id(11), exec)
                .output(
                    json!({"title": "Trail runner with breathable mesh, lightweight sole, \
                                        several colours and a waterproof option"}),
                )
                .record(),
        ])
        .await
        .unwrap();
    assert_eq!(found(&db.store, "Colour").await, [id(11)]);
    assert_eq!(found(&db.store, "runners").await, [id(11)]);
}

async fn search_splits_a_hyphenated_word_like_the_text(db: Backend) {
    let exec = id(1);
    db.store
        .write(&[
            execution(exec).record(),
            step(id(11), exec)
                .failed("search backend timed out")
                .record(),
        ])
        .await
        .unwrap();
    assert_eq!(found(&db.store, "TIMED-out").await, [id(11)]);
}

async fn an_end_that_replaces_the_output_replaces_what_search_finds(db: Backend) {
    let (exec, s) = (id(1), id(11));
    db.store
        .write(&[
            execution(exec).record(),
            step(s, exec)
                .output(json!({"title": "ceramic mug"}))
                .seq(2)
                .record(),
        ])
        .await
        .unwrap();
    assert_eq!(found(&db.store, "ceramic").await, [s]);
    db.store
        .write(&[step(s, exec)
            .output(json!({"title": "enamel mug"}))
            .seq(3)
            .record()])
        .await
        .unwrap();
    assert_eq!(found(&db.store, "ceramic").await, NONE);
    assert_eq!(found(&db.store, "enamel").await, [s]);
}

async fn search_finds_a_step_once_the_index_behind_the_shipper_has_it(db: Backend) {
    let (exec, s, gone_exec, gone) = (id(1), id(11), id(2), id(21));
    db.store
        .write(&[
            execution(exec).record(),
            step(s, exec).output(json!({"note": "walrus"})).record(),
        ])
        .await
        .unwrap();
    // Written, noted, not indexed yet: shipping does not wait for the index.
    assert_eq!(db.count("search_pending").await, 1);
    assert!(db
        .store
        .search("walrus", 10, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        xray_collector::indexing::catch_up(&db.store).await.unwrap(),
        1
    );
    assert_eq!(
        step_ids(&db.store.search("walrus", 10, None).await.unwrap()),
        [s]
    );
    assert_eq!(db.count("search_pending").await, 0);
    assert_eq!(
        xray_collector::indexing::catch_up(&db.store).await.unwrap(),
        0,
        "nothing left to index"
    );

    // A step deleted (its execution pruned) before it was indexed: its note
    // is taken and dropped, nothing is indexed, nothing fails.
    db.store
        .write(&[
            execution(gone_exec).record(),
            step(gone, gone_exec)
                .output(json!({"note": "dingo"}))
                .record(),
        ])
        .await
        .unwrap();
    db.execute(&format!(
        "DELETE FROM {{xray}}executions WHERE id = '{gone_exec}'"
    ))
    .await;
    assert_eq!(
        xray_collector::indexing::catch_up(&db.store).await.unwrap(),
        1
    );
    assert!(db.store.search("dingo", 10, None).await.unwrap().is_empty());
    assert_eq!(db.count("search_pending").await, 0);
    assert_eq!(
        step_ids(&db.store.search("walrus", 10, None).await.unwrap()),
        [s]
    );
}

async fn search_ranks_the_newest_matches_of_a_common_word(db: Backend) {
    use xray_collector::query::SEARCH_NEWEST;
    let exec = id(1);
    let n = SEARCH_NEWEST as u128 + 1;
    // The oldest step is the best match of both words; every step has the
    // common one, five more the rare one. Stored oldest first.
    let mut records = vec![execution(exec).record()];
    records.extend((0..n).map(|i| {
        let note = match i {
            0 => "wombat wombat wombat quokka quokka quokka".to_owned(),
            1..=5 => format!("a longer note {i} about one wombat and one quokka"),
            _ => format!("a longer note {i} about one wombat"),
        };
        step(id(100 + i), exec)
            .output(json!({"note": note}))
            .at(T0 + i as i64)
            .record()
    }));
    for chunk in records.chunks(2_500) {
        db.store.write(chunk).await.unwrap();
    }
    xray_collector::indexing::catch_up(&db.store).await.unwrap();
    // The common word: the oldest step is past the newest SEARCH_NEWEST
    // matches, so it is not ranked; the best of the ranked ones leads.
    let common = step_ids(&db.store.search("wombat", 3, None).await.unwrap());
    assert_eq!(common.len(), 3);
    assert!(!common.contains(&id(100)), "{common:?}");
    // A rare word is ranked over all its matches: the oldest leads.
    let rare = step_ids(&db.store.search("quokka", 10, None).await.unwrap());
    assert_eq!(rare.len(), 6);
    assert_eq!(rare[0], id(100));
}

async fn search_finds_matches_of_every_age(db: Backend) {
    // Across the windows PostgreSQL looks for the newest matches in (the
    // last hour, day, then doubling to 512 days, then older), one match
    // in each, and in the future.
    let now = jiff::Timestamp::now().as_microsecond();
    let minute = 60_000_000;
    let day = 1_440 * minute;
    let exec = id(1);
    let ages = [
        -5 * minute,
        10 * minute,
        5 * 60 * minute,
        36 * 60 * minute,
        3 * day,
        6 * day,
        12 * day,
        20 * day,
        50 * day,
        100 * day,
        200 * day,
        400 * day,
        800 * day,
    ];
    let mut records = vec![execution(exec).at(now - 900 * day).record()];
    records.extend(ages.iter().enumerate().map(|(i, age)| {
        step(id(50 + i as u128), exec)
            .output(json!({"note": "a numbat was here"}))
            .at(now - age)
            .record()
    }));
    db.store.write(&records).await.unwrap();
    let expected: Vec<Uuid> = (0..ages.len() as u128).map(|i| id(50 + i)).collect();
    xray_collector::indexing::catch_up(&db.store).await.unwrap();
    assert_eq!(
        step_ids(&db.store.search("numbat", 20, None).await.unwrap()),
        expected,
        "equal ranks, newest first"
    );
}

async fn stats_report_discrete_percentiles_errors_and_tokens_per_model(db: Backend) {
    let exec = id(1);
    let hour = 3_600_000_000;
    let mut records = vec![execution(exec).record()];
    // `rank`: 1..=100 ms, every tenth failed, started in shuffled order.
    for n in 1..=100i64 {
        let mut s = step(id(1000 + n as u128), exec)
            .name("rank")
            .at(T0 + ((n * 37) % 100) * MS)
            .took(n * MS);
        if n % 10 == 0 {
            s = s.status(if n == 50 { "panicked" } else { "error" });
        }
        records.push(s.record());
    }
    // Still running: not counted.
    records.push(step(id(2000), exec).name("rank").at(T0).running().record());
    // `llm`: one an hour earlier (panicked, with two models), one recent.
    records.push(
        step(id(3000), exec)
            .name("llm")
            .at(T0 - hour)
            .took(7 * MS)
            .status("panicked")
            .usage(vec![usage("gpt-b", 5, 6), usage("gpt-a", 1, 1)])
            .record(),
    );
    records.push(
        step(id(3001), exec)
            .name("llm")
            .at(T0 + 500 * MS)
            .took(3 * MS)
            .usage(vec![usage("gpt-a", 100, 1), usage("gpt-a", 200, 2)])
            .record(),
    );
    db.store.write(&records).await.unwrap();

    let all = db.store.stats(None, None).await.unwrap();
    assert_eq!(
        per_step(&all),
        [
            // n = 2: p50 at rank 1, p95 at rank 2.
            ("llm", 2, 1, 3 * MS, 7 * MS, 7 * MS),
            ("rank", 100, 10, 50 * MS, 95 * MS, 100 * MS),
        ]
    );
    assert_eq!(
        per_model(&all.models),
        [("gpt-a", 3, 301, 4), ("gpt-b", 1, 5, 6)]
    );

    // Since T0: the old llm step and its usage drop out.
    let recent = db.store.stats(Some(T0), None).await.unwrap();
    assert_eq!(
        per_step(&recent),
        [
            ("llm", 1, 0, 3 * MS, 3 * MS, 3 * MS),
            ("rank", 100, 10, 50 * MS, 95 * MS, 100 * MS),
        ]
    );
    assert_eq!(per_model(&recent.models), [("gpt-a", 2, 300, 3)]);

    // One name, with its own tokens only.
    let llm_only = db.store.stats(None, Some("llm")).await.unwrap();
    assert_eq!(per_step(&llm_only), per_step(&all)[..1]);
    assert_eq!(per_model(&llm_only.models), per_model(&all.models));
    let rank_only = db.store.stats(None, Some("rank")).await.unwrap();
    assert_eq!(per_step(&rank_only), per_step(&all)[1..]);
    assert!(rank_only.models.is_empty());

    // Nothing recorded: empty, not an error.
    let none = db.store.stats(Some(T0 + hour), None).await.unwrap();
    assert!(none.steps.is_empty() && none.models.is_empty());
}

async fn percentiles_of_a_single_step_are_its_duration(db: Backend) {
    db.store
        .write(&[step(new_id(), new_id()).name("once").took(42).record()])
        .await
        .unwrap();
    let stats = db.store.stats(None, None).await.unwrap();
    let s = &stats.steps[0];
    assert_eq!(
        (s.count, s.errors, s.p50_us, s.p95_us, s.max_us),
        (1, 0, 42, 42, 42)
    );
}

async fn queries_on_an_unmigrated_store_say_so(db: Backend) {
    match db.store.executions(&filter(10)).await {
        Err(StoreError::Schema(m)) => assert!(m.contains("migrate up"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        db.store.stats(None, None).await,
        Err(StoreError::Schema(_))
    ));
    // The store works once the schema exists.
    db.store.migrate_up().await.expect("migrate up");
    assert_eq!(db.store.latest_execution(None).await.unwrap(), None);
}
