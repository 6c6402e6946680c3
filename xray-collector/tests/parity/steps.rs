//! Reading a large execution a piece at a time: its head without its
//! steps, pages of step outlines by scope (all, top level, children of a
//! step), some steps whole, and a candidate across executions.

use serde_json::json;
use uuid::Uuid;
use xray_collector::backend::{QueryStore, Store};
use xray_collector::query::{Cursor, StepFilter, StepOutline, StepScope};

use crate::backend::Backend;
use crate::support::records::{decision, execution, filter_step, id, step, usage, T0};

on_both_backends!(
    migrated: step_pages_walk_an_execution_in_start_order_by_scope,
    step_outlines_count_children_and_decisions,
    step_cursors_beyond_any_stored_time_answer_without_an_error,
    some_steps_come_back_whole_and_only_from_their_execution,
    the_head_is_the_execution_without_its_steps,
    a_candidate_is_followed_across_executions_newest_first,
);

/// Execution 1: `a` (top level) with children `b` and `c`, `b` with child
/// `d`, `e` whose parent never arrived; `f` and `g` start at the same time
/// as `c` (ids decide). Execution 2 holds a child of `a`'s id that is not
/// `a`'s.
async fn tree(db: &Backend) {
    let exec = id(1);
    db.store
        .write(&[
            execution(exec).record(),
            step(id(10), exec).name("a").at(T0 + 1).record(),
            step(id(20), exec)
                .name("b")
                .parent(id(10))
                .at(T0 + 2)
                .record(),
            filter_step(id(31), exec)
                .name("c")
                .parent(id(10))
                .at(T0 + 3)
                .failed("boom")
                .record(),
            step(id(30), exec).name("f").at(T0 + 3).running().record(),
            step(id(32), exec)
                .name("g")
                .parent(id(20))
                .at(T0 + 3)
                .record(),
            step(id(40), exec)
                .name("d")
                .parent(id(20))
                .at(T0 + 4)
                .record(),
            step(id(50), exec)
                .name("e")
                .parent(id(999))
                .at(T0 + 5)
                .record(),
            execution(id(2)).record(),
            step(id(60), id(2)).parent(id(10)).at(T0 + 2).record(),
        ])
        .await
        .unwrap();
}

fn pages(scope: StepScope, limit: usize) -> StepFilter {
    StepFilter {
        execution: id(1),
        scope,
        limit,
        after: None,
    }
}

/// Every page of `filter`, following the cursors: the names, and how many
/// pages it took.
async fn walk(db: &Backend, mut filter: StepFilter) -> (Vec<String>, usize) {
    let mut names = Vec::new();
    let mut n = 0;
    loop {
        let page = db.store.steps(&filter).await.unwrap();
        n += 1;
        assert!(page.steps.len() <= filter.limit);
        names.extend(page.steps.iter().map(|s| s.name.clone()));
        match page.next_cursor {
            Some(c) => {
                let last = page.steps.last().expect("a cursor follows a full page");
                assert_eq!(
                    c,
                    Cursor {
                        started_at_us: last.started_at_us,
                        id: last.id
                    }
                );
                filter.after = Some(c);
            }
            None => return (names, n),
        }
        assert!(n < 100, "pages never end");
    }
}

async fn step_pages_walk_an_execution_in_start_order_by_scope(db: Backend) {
    tree(&db).await;
    let all = ["a", "b", "f", "c", "g", "d", "e"];
    for limit in [1, 2, 3, 7, 5000] {
        let (names, n) = walk(&db, pages(StepScope::All, limit)).await;
        assert_eq!(names, all, "limit {limit}");
        assert_eq!(n, all.len().div_ceil(limit), "limit {limit}");
    }
    // A page size of 0 or past the maximum is brought into range.
    let page = db.store.steps(&pages(StepScope::All, 0)).await.unwrap();
    assert_eq!(page.steps.len(), 1);
    let page = db
        .store
        .steps(&pages(StepScope::All, usize::MAX))
        .await
        .unwrap();
    assert_eq!(page.steps.len(), all.len());

    let (roots, _) = walk(&db, pages(StepScope::Roots, 1)).await;
    assert_eq!(
        roots,
        ["a", "f", "e"],
        "no parent, or a parent never shipped"
    );
    let (children, _) = walk(&db, pages(StepScope::ChildrenOf(id(10)), 1)).await;
    assert_eq!(
        children,
        ["b", "c"],
        "not execution 2's step under the same id"
    );
    let (children, _) = walk(&db, pages(StepScope::ChildrenOf(id(20)), 5000)).await;
    assert_eq!(children, ["g", "d"]);
    let (none, _) = walk(&db, pages(StepScope::ChildrenOf(id(40)), 10)).await;
    assert!(none.is_empty());
    let (none, _) = walk(&db, pages(StepScope::ChildrenOf(id(404)), 10)).await;
    assert!(none.is_empty());
    let unknown = StepFilter {
        execution: id(404),
        ..pages(StepScope::All, 10)
    };
    assert!(db.store.steps(&unknown).await.unwrap().steps.is_empty());
}

async fn step_outlines_count_children_and_decisions(db: Backend) {
    tree(&db).await;
    let page = db.store.steps(&pages(StepScope::All, 100)).await.unwrap();
    let by_name =
        |name: &str| -> &StepOutline { page.steps.iter().find(|s| s.name == name).unwrap() };
    let a = by_name("a");
    assert_eq!(
        (a.id, a.parent_id, a.children, a.decisions, a.has_error),
        (id(10), None, 2, 0, false)
    );
    assert_eq!((a.status.as_str(), a.duration_us), ("ok", Some(1_000)));
    assert_eq!(by_name("b").children, 2);
    let c = by_name("c");
    assert_eq!(
        (c.parent_id, c.kind.as_deref(), c.status.as_str()),
        (Some(id(10)), Some("filter"), "error")
    );
    assert_eq!((c.children, c.decisions, c.has_error), (0, 2, true));
    let f = by_name("f");
    assert_eq!((f.status.as_str(), f.duration_us), ("running", None));
    assert_eq!(by_name("e").parent_id, Some(id(999)));
    assert_eq!(by_name("e").started_at_us, T0 + 5);
    // The API sends outlines as they are, the cursor as its text.
    let value = serde_json::to_value(&page).unwrap();
    assert_eq!(value["steps"][0]["id"], json!(id(10).to_string()));
    assert_eq!(value["steps"][0]["children"], json!(2));
    assert_eq!(value["next_cursor"], json!(null));
}

async fn step_cursors_beyond_any_stored_time_answer_without_an_error(db: Backend) {
    tree(&db).await;
    for (at, expected) in [(i64::MIN, 7), (i64::MAX, 0), (T0 + 3, 5), (T0 + 6, 0)] {
        let filter = StepFilter {
            after: Some(Cursor {
                started_at_us: at,
                id: Uuid::nil(),
            }),
            ..pages(StepScope::All, 100)
        };
        let page = db.store.steps(&filter).await.unwrap();
        assert_eq!(page.steps.len(), expected, "after {at}");
    }
}

async fn some_steps_come_back_whole_and_only_from_their_execution(db: Backend) {
    tree(&db).await;
    db.store
        .write(&[step(id(70), id(1))
            .name("llm")
            .at(T0 + 9)
            .usage(vec![usage("gpt-4o", 7, 3)])
            .input(json!({"prompt": "<b>hi</b>"}))
            .record()])
        .await
        .unwrap();
    let asked = [id(70), id(31), id(60), id(404), id(31)];
    let found = db.store.step_details(id(1), &asked).await.unwrap();
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["c", "llm"],
        "start order, once each, only execution 1's"
    );
    // Whole, as `execution` gives them.
    let whole = db.store.execution(id(1)).await.unwrap().unwrap();
    for s in &found {
        assert_eq!(Some(s), whole.steps.iter().find(|w| w.id == s.id));
    }
    assert_eq!(found[0].decisions.len(), 2);
    assert_eq!(found[0].llm_usage.len(), 1);
    assert_eq!(found[0].error.as_deref(), Some("boom"));
    assert_eq!(found[1].llm_usage[0].model, "gpt-4o");
    assert_eq!(found[1].input, Some(json!({"prompt": "<b>hi</b>"})));
    assert!(db.store.step_details(id(1), &[]).await.unwrap().is_empty());
    assert!(db
        .store
        .step_details(id(2), &[id(31)])
        .await
        .unwrap()
        .is_empty());
}

async fn the_head_is_the_execution_without_its_steps(db: Backend) {
    tree(&db).await;
    let head = db.store.execution_head(id(1)).await.unwrap().unwrap();
    let whole = db.store.execution(id(1)).await.unwrap().unwrap();
    assert_eq!(head.summary, whole.summary);
    assert_eq!(head.summary.steps, 7);
    assert_eq!(
        (&head.metadata, &head.outcome, &head.error),
        (&whole.metadata, &whole.outcome, &whole.error)
    );
    assert_eq!(head.metadata, Some(json!({"sku": "A-1"})));
    let value = serde_json::to_value(&head).unwrap();
    assert_eq!(value["id"], json!(id(1).to_string()));
    assert_eq!(value["steps"], json!(7));
    assert_eq!(db.store.execution_head(id(404)).await.unwrap(), None);
}

async fn a_candidate_is_followed_across_executions_newest_first(db: Backend) {
    let mut records = Vec::new();
    for (n, at) in [(1u128, 10), (2, 30), (3, 20)] {
        records.push(
            execution(id(n))
                .name(&format!("run{n}"))
                .at(T0 + at)
                .record(),
        );
        records.push(
            step(id(100 + n), id(n))
                .name("price_filter")
                .at(T0 + at)
                .decisions(vec![
                    decision("c1", Some(n != 2), &format!("in run {n}")),
                    decision("c2", Some(true), "other"),
                ])
                .record(),
        );
    }
    records.push(
        step(id(110), id(1))
            .name("rank")
            .at(T0 + 40)
            .decisions(vec![decision("c1", None, "scored")])
            .record(),
    );
    db.store.write(&records).await.unwrap();

    let seen = |entries: &[xray_collector::query::CandidateEntry]| -> Vec<(Uuid, String, Uuid, Option<bool>)> {
        entries
            .iter()
            .map(|e| (e.execution_id, e.execution_name.clone(), e.step_id, e.decision.accepted))
            .collect()
    };
    let all = db.store.candidate("c1", None, 100).await.unwrap();
    assert_eq!(
        seen(&all),
        [
            (id(1), "run1".into(), id(110), None),
            (id(2), "run2".into(), id(102), Some(false)),
            (id(3), "run3".into(), id(103), Some(true)),
            (id(1), "run1".into(), id(101), Some(true)),
        ]
    );
    assert!(all.iter().all(|e| e.decision.candidate_id == "c1"));
    assert_eq!(all[1].decision.reason.as_deref(), Some("in run 2"));
    assert_eq!(all[1].started_at_us, T0 + 30);
    assert_eq!(all[1].step_name, "price_filter");

    let elsewhere = db.store.candidate("c1", Some(id(1)), 100).await.unwrap();
    assert_eq!(
        seen(&elsewhere),
        [
            (id(2), "run2".into(), id(102), Some(false)),
            (id(3), "run3".into(), id(103), Some(true)),
        ]
    );
    assert_eq!(db.store.candidate("c1", None, 1).await.unwrap().len(), 1);
    // 0 is brought up to 1; past the maximum down to it.
    assert_eq!(db.store.candidate("c1", None, 0).await.unwrap().len(), 1);
    assert_eq!(
        db.store
            .candidate("c1", None, usize::MAX)
            .await
            .unwrap()
            .len(),
        4
    );
    assert!(db
        .store
        .candidate("c404", None, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(db
        .store
        .candidate("' OR 1=1 --", None, 10)
        .await
        .unwrap()
        .is_empty());
}
