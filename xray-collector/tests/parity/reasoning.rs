//! Reasoning ([`Reasoning`]): the indexer queues a job for each step that
//! ended with decisions or a failure; the rules reasoner explains them into
//! `steps.reasoning`; shipping again queues nothing twice.

use uuid::Uuid;
use xray_collector::backend::{QueryStore, Store};
use xray_collector::{indexing, reasoning};

use crate::backend::Backend;
use crate::support::records::{execution, filter_step, new_id, step};

on_both_backends!(
    migrated: steps_with_decisions_or_a_failure_are_explained_once_and_the_others_left_alone
);

async fn reasoning_of(db: &Backend, execution: Uuid) -> Vec<(String, Option<String>)> {
    let detail = db.store.execution(execution).await.unwrap().unwrap();
    detail
        .steps
        .into_iter()
        .map(|s| (s.name, s.reasoning))
        .collect()
}

async fn index_and_reason(db: &Backend) -> u64 {
    indexing::catch_up(&db.store).await.unwrap();
    reasoning::catch_up(&db.store).await.unwrap()
}

async fn steps_with_decisions_or_a_failure_are_explained_once_and_the_others_left_alone(
    db: Backend,
) {
    let e = new_id();
    let (filter, failed, plain, running) = (new_id(), new_id(), new_id(), new_id());
    db.store
        .write(&[
            execution(e).record(),
            filter_step(filter, e).at(1).record(),
            step(failed, e)
                .name("search")
                .status("error")
                .error("search timed out")
                .at(2)
                .record(),
            step(plain, e).name("plain").at(3).record(),
            filter_step(running, e)
                .name("later")
                .running()
                .at(4)
                .record(),
        ])
        .await
        .unwrap();
    assert_eq!(index_and_reason(&db).await, 2);
    assert_eq!(
        reasoning_of(&db, e).await,
        [
            (
                "filter_candidates".to_owned(),
                Some(
                    "2 candidates: 1 kept; rejected 1 by price (too expensive). \
                     scored 1: c2 ranked first (0.9)"
                        .to_owned()
                )
            ),
            (
                "search".to_owned(),
                Some("failed: search timed out".to_owned())
            ),
            ("plain".to_owned(), None),
            ("later".to_owned(), None),
        ]
    );
    assert_eq!(
        db.reasoning_jobs().await.len(),
        2,
        "{:?}",
        db.reasoning_jobs().await
    );
    assert!(db
        .reasoning_jobs()
        .await
        .iter()
        .all(|j| j == "completed rules 1"));

    // Shipped again: no new job, the text kept. The running step ends:
    // explained in its turn.
    db.store
        .write(&[
            filter_step(filter, e).at(1).record(),
            filter_step(running, e)
                .name("later")
                .status("panicked")
                .error("panicked: index out of bounds")
                .at(4)
                .record(),
        ])
        .await
        .unwrap();
    assert_eq!(index_and_reason(&db).await, 1);
    let after = reasoning_of(&db, e).await;
    assert!(after[0].1.as_deref().unwrap().starts_with("2 candidates"));
    assert_eq!(
        after[3].1.as_deref(),
        Some(
            "panicked: index out of bounds. 2 candidates: 1 kept; rejected 1 by price \
             (too expensive). scored 1: c2 ranked first (0.9)"
        )
    );
    assert_eq!(db.reasoning_jobs().await.len(), 3);
    assert_eq!(index_and_reason(&db).await, 0, "nothing left pending");
}
