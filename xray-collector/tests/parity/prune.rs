//! Retention on both backends: what a prune deletes (executions older than
//! the cutoff, in a project if given, with their steps, decisions and LLM
//! usage), what a dry run counts, that nothing newer is touched, that the
//! batches add up past one batch, and that shipping into the store while it
//! prunes loses nothing.

use uuid::Uuid;
use xray_collector::backend::{PruneFilter, Pruned, QueryStore, Retention, Store};
use xray_collector::model::ShipRecord;
use xray_collector::retention::{self, PRUNE_BATCH};

use crate::backend::Backend;
use crate::support::records::{execution, filter_step, new_id, step, EXECUTION_TOOK_US, MS, T0};

on_both_backends!(
    migrated: a_prune_deletes_old_executions_with_everything_and_nothing_newer,
    a_prune_past_one_batch_deletes_every_batch_and_counts_them_all,
    shipping_while_pruning_loses_nothing,
);

const DAY: i64 = 86_400_000_000;

/// An execution started at `at` in `project`: a filter step (two decisions,
/// one LLM call) with a child.
fn old_run(id: Uuid, project: &str, at: i64) -> Vec<ShipRecord> {
    let filter = new_id();
    vec![
        execution(id).project(project).at(at).record(),
        filter_step(filter, id)
            .project(project)
            .at(at + MS)
            .record(),
        step(new_id(), id)
            .project(project)
            .parent(filter)
            .at(at + 2 * MS)
            .record(),
    ]
}

async fn a_prune_deletes_old_executions_with_everything_and_nothing_newer(db: Backend) {
    let (old_shop, old_other, new_shop) = (new_id(), new_id(), new_id());
    let cutoff = T0 + 30 * DAY;
    let mut records = old_run(old_shop, "shop", T0);
    records.extend(old_run(old_other, "other", T0 + DAY));
    // Started a microsecond after the cutoff: kept, though it ended later.
    records.extend(old_run(new_shop, "shop", cutoff));
    db.store.write(&records).await.unwrap();
    let everything = |project: Option<&str>| PruneFilter {
        before_us: cutoff,
        project: project.map(Into::into),
    };
    let two = Pruned {
        executions: 2,
        steps: 4,
        decisions: 4,
        llm_usage: 2,
    };

    // A dry run counts and changes nothing.
    let before = db.snapshot().await;
    let counted = retention::prune(&db.store, &everything(None), true)
        .await
        .unwrap();
    assert_eq!(counted, two);
    assert_eq!(db.snapshot().await, before, "a dry run changed the store");

    // One project only.
    let shop = retention::prune(&db.store, &everything(Some("shop")), false)
        .await
        .unwrap();
    assert_eq!(
        shop,
        Pruned {
            executions: 1,
            steps: 2,
            decisions: 2,
            llm_usage: 1,
        }
    );
    assert!(db.store.execution_head(old_shop).await.unwrap().is_none());
    assert!(db.store.execution_head(old_other).await.unwrap().is_some());
    assert!(db.store.execution_head(new_shop).await.unwrap().is_some());
    assert!(
        db.store.why(old_shop, "c1").await.unwrap().is_empty(),
        "its decisions went with it"
    );

    // The rest of what is old; the newer execution keeps every row.
    let rest = retention::prune(&db.store, &everything(None), false)
        .await
        .unwrap();
    assert_eq!(rest.executions, 1);
    assert_eq!(
        (
            db.count("executions").await,
            db.count("steps").await,
            db.count("decisions").await,
            db.count("llm_usage").await
        ),
        (1, 2, 2, 1)
    );
    let kept = db.store.execution(new_shop).await.unwrap().unwrap();
    assert_eq!(kept.steps.len(), 2);
    assert_eq!(kept.summary.ended_at_us, Some(cutoff + EXECUTION_TOOK_US));

    // A step of a pruned execution arriving late is kept, under a
    // placeholder execution (the next prune takes it).
    let late = new_id();
    db.store
        .write(&[step(late, old_shop).at(T0 + 3 * MS).record()])
        .await
        .unwrap();
    assert!(db.is_placeholder(old_shop).await);
    assert_eq!(
        db.store
            .execution(old_shop)
            .await
            .unwrap()
            .unwrap()
            .steps
            .len(),
        1
    );
    let late_prune = retention::prune(&db.store, &everything(None), false)
        .await
        .unwrap();
    assert_eq!((late_prune.executions, late_prune.steps), (1, 1));

    // Nothing left to prune.
    let again = retention::prune(&db.store, &everything(None), false)
        .await
        .unwrap();
    assert_eq!(again, Pruned::default());
    let dry = retention::prune(&db.store, &everything(None), true)
        .await
        .unwrap();
    assert_eq!(dry, Pruned::default());
}

async fn a_prune_past_one_batch_deletes_every_batch_and_counts_them_all(db: Backend) {
    let n = PRUNE_BATCH * 2 + 7;
    let mut records = Vec::new();
    for i in 0..n {
        let id = new_id();
        records.push(execution(id).at(T0 + i as i64 * MS).record());
        records.push(step(new_id(), id).at(T0 + i as i64 * MS + 1).record());
    }
    db.store.write(&records).await.unwrap();
    let filter = PruneFilter {
        before_us: T0 + DAY,
        project: None,
    };
    // One batch is the oldest PRUNE_BATCH.
    let first = db.store.prune_batch(&filter, PRUNE_BATCH).await.unwrap();
    assert_eq!(
        (first.executions, first.steps),
        (PRUNE_BATCH as u64, PRUNE_BATCH as u64)
    );
    let rest = retention::prune(&db.store, &filter, false).await.unwrap();
    assert_eq!(rest.executions as usize, n - PRUNE_BATCH);
    assert_eq!(rest.steps as usize, n - PRUNE_BATCH);
    assert_eq!(
        (db.count("executions").await, db.count("steps").await),
        (0, 0)
    );
}

async fn shipping_while_pruning_loses_nothing(db: Backend) {
    // Old executions to prune, and a second store (another connection)
    // shipping new ones meanwhile.
    let mut old = Vec::new();
    for i in 0..(PRUNE_BATCH * 3) as i64 {
        old.extend(old_run(new_id(), "shop", T0 + i * MS));
    }
    db.store.write(&old).await.unwrap();
    let shipper = db.another_store().await;
    let recent = T0 + 60 * DAY;
    let shipped: Vec<Uuid> = (0..40).map(|_| new_id()).collect();
    let ship = {
        let shipped = shipped.clone();
        async move {
            for (i, id) in shipped.iter().enumerate() {
                shipper
                    .write(&old_run(*id, "shop", recent + i as i64 * MS))
                    .await
                    .unwrap();
            }
        }
    };
    let filter = PruneFilter {
        before_us: T0 + DAY,
        project: None,
    };
    let (pruned, ()) = tokio::join!(retention::prune(&db.store, &filter, false), ship);
    let pruned = pruned.unwrap();
    assert_eq!(pruned.executions as usize, PRUNE_BATCH * 3);
    assert_eq!(pruned.steps as usize, PRUNE_BATCH * 6);
    for id in &shipped {
        let e = db
            .store
            .execution(*id)
            .await
            .unwrap()
            .expect("a shipped execution");
        assert_eq!(e.steps.len(), 2, "{id}");
    }
    assert_eq!(db.count("executions").await, shipped.len() as i64);
    assert_eq!(db.count("decisions").await, 2 * shipped.len() as i64);
}
