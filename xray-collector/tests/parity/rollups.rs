//! `stats` from rollups (`xray_collector::query::rollup`): kept right by
//! the backends through every way steps come and go, and equal to what the
//! raw steps say — counts, errors and tokens exactly, percentiles and the
//! longest step in the bucket of the exact value.

use std::collections::BTreeMap;

use uuid::Uuid;
use xray_collector::backend::{Migrations, PruneFilter, QueryStore, Retention, Store};
use xray_collector::model::ShipRecord;
use xray_collector::query::rollup::{bucket, DAY_US};
use xray_collector::query::Stats;

use crate::backend::Backend;
use crate::support::records::{execution, new_id, step, usage, T0};

on_both_backends!(
    migrated: stats_follow_shipping_reshipping_starts_and_deletes,
    rollups_bucket_durations_as_the_rust_code_does,
);

on_both_backends!(unmigrated: steps_stored_before_the_rollups_are_rolled_up_by_their_migration);

/// A step as the test keeps it, to compute the exact stats from.
#[derive(Clone)]
struct Kept {
    execution: Uuid,
    record: ShipRecord,
    name: &'static str,
    started_at_us: i64,
    duration_us: i64,
    failed: bool,
    /// (model, prompt, completion)
    usage: Option<(&'static str, i64, i64)>,
}

const NAMES: [&str; 3] = ["fetch", "rank", "score"];

/// `n` finished steps of `execution`, over three days from `T0`.
fn steps(rng: &mut fastrand::Rng, execution: Uuid, n: usize) -> Vec<Kept> {
    (0..n)
        .map(|_| {
            let name = NAMES[rng.usize(..NAMES.len())];
            let started_at_us = T0 + rng.i64(0..3 * DAY_US);
            let duration_us = match rng.u8(..3) {
                0 => rng.i64(0..1_000),
                1 => rng.i64(0..3_000_000),
                _ => 1_000 * rng.i64(1..200),
            };
            let failed = rng.u8(..10) == 0;
            let call = (rng.u8(..4) == 0).then(|| {
                (
                    ["m-small", "m-large"][rng.usize(..2)],
                    rng.i64(1..900),
                    rng.i64(1..90),
                )
            });
            let mut s = step(new_id(), execution)
                .name(name)
                .at(started_at_us)
                .took(duration_us);
            if failed {
                s = s.failed("boom");
            }
            if let Some((model, prompt, completion)) = call {
                s = s.usage(vec![usage(model, prompt, completion)]);
            }
            Kept {
                execution,
                record: s.record(),
                name,
                started_at_us,
                duration_us,
                failed,
                usage: call,
            }
        })
        .collect()
}

/// The stats the kept steps make, exact: per name (count, errors, p50,
/// p95, max) and per model (calls, prompt, completion).
type Exact = (
    BTreeMap<String, (i64, i64, i64, i64, i64)>,
    BTreeMap<String, (i64, i64, i64)>,
);

fn exact(kept: &[Kept], since: Option<i64>, name: Option<&str>) -> Exact {
    let chosen = kept
        .iter()
        .filter(|k| since.map_or(true, |s| k.started_at_us >= s))
        .filter(|k| name.map_or(true, |n| k.name == n));
    let mut by_name: BTreeMap<String, Vec<&Kept>> = BTreeMap::new();
    let mut models: BTreeMap<String, (i64, i64, i64)> = BTreeMap::new();
    for k in chosen {
        by_name.entry(k.name.to_owned()).or_default().push(k);
        if let Some((model, prompt, completion)) = k.usage {
            let m = models.entry(model.to_owned()).or_default();
            *m = (m.0 + 1, m.1 + prompt, m.2 + completion);
        }
    }
    let steps = by_name
        .into_iter()
        .map(|(name, ks)| {
            let mut d: Vec<i64> = ks.iter().map(|k| k.duration_us).collect();
            d.sort_unstable();
            let n = d.len() as i64;
            let at = |rank: i64| d[(rank - 1) as usize];
            let errors = ks.iter().filter(|k| k.failed).count() as i64;
            (
                name,
                (
                    n,
                    errors,
                    at((n + 1) / 2),
                    at((95 * n + 99) / 100),
                    d[d.len() - 1],
                ),
            )
        })
        .collect();
    (steps, models)
}

/// The store's stats against the exact ones, for every window and name.
async fn check(db: &Backend, kept: &[Kept], when: &str) {
    let windows = [
        None,
        Some(T0 + DAY_US + DAY_US / 2),
        Some(T0 + 2 * DAY_US + 7),
    ];
    for since in windows {
        for name in [None, Some("rank")] {
            let got: Stats = db.store.stats(since, name).await.unwrap();
            let (steps, models) = exact(kept, since, name);
            let context = format!("{when}, since {since:?}, name {name:?}");
            let names: Vec<&str> = got.steps.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(
                names,
                steps.keys().map(String::as_str).collect::<Vec<_>>(),
                "{context}"
            );
            for s in &got.steps {
                let (count, errors, p50, p95, max) = steps[&s.name];
                assert_eq!(
                    (s.count, s.errors),
                    (count, errors),
                    "{context}: {}",
                    s.name
                );
                for (label, reported, raw) in [
                    ("p50", s.p50_us, p50),
                    ("p95", s.p95_us, p95),
                    ("max", s.max_us, max),
                ] {
                    assert_eq!(
                        bucket(reported),
                        bucket(raw),
                        "{context}: {} {label} {reported} vs {raw}",
                        s.name
                    );
                    assert!(reported >= raw, "{context}: {} {label}", s.name);
                }
            }
            let got_models: BTreeMap<String, (i64, i64, i64)> = got
                .models
                .iter()
                .map(|m| {
                    (
                        m.model.clone(),
                        (m.calls, m.prompt_tokens, m.completion_tokens),
                    )
                })
                .collect();
            assert_eq!(got_models, models, "{context}");
        }
    }
}

async fn write(db: &Backend, records: Vec<ShipRecord>) {
    for chunk in records.chunks(70) {
        db.store.write(chunk).await.unwrap();
    }
}

async fn stats_follow_shipping_reshipping_starts_and_deletes(db: Backend) {
    let mut rng = fastrand::Rng::with_seed(7);
    let executions: Vec<Uuid> = (0..3).map(|_| new_id()).collect();
    let mut records: Vec<ShipRecord> = executions
        .iter()
        .enumerate()
        .map(|(i, e)| execution(*e).at(T0 - DAY_US + i as i64).record())
        .collect();
    let mut kept: Vec<Kept> = Vec::new();
    for e in &executions {
        kept.extend(steps(&mut rng, *e, 120));
    }
    records.extend(kept.iter().map(|k| k.record.clone()));
    write(&db, records.clone()).await;
    check(&db, &kept, "shipped").await;

    // Shipped again, together and in other batches: nothing changes.
    write(&db, records.iter().rev().cloned().collect()).await;
    check(&db, &kept, "re-shipped").await;

    // Starts first (not counted: no duration), their ends later.
    let late = steps(&mut rng, executions[1], 40);
    let starts: Vec<ShipRecord> = late
        .iter()
        .map(|k| match &k.record {
            ShipRecord::Step(s) => {
                let mut start = s.clone();
                start.status = xray_collector::model::StepStatus::Running;
                start.duration_us = None;
                start.llm_usage.clear();
                ShipRecord::Step(start)
            }
            other => other.clone(),
        })
        .collect();
    write(&db, starts.clone()).await;
    check(&db, &kept, "started").await;
    write(&db, late.iter().map(|k| k.record.clone()).collect()).await;
    kept.extend(late);
    check(&db, &kept, "ended").await;
    // A start arriving after its end changes nothing.
    write(&db, starts).await;
    check(&db, &kept, "a late start").await;

    // Deleted by hand: the execution's steps cascade.
    db.execute(&format!(
        "DELETE FROM {{xray}}executions WHERE id = '{}'",
        executions[2]
    ))
    .await;
    kept.retain(|k| k.execution != executions[2]);
    check(&db, &kept, "deleted by hand").await;

    // Pruned: the oldest execution, calls and decisions first.
    let pruned = db
        .store
        .prune_batch(
            &PruneFilter {
                before_us: T0 - DAY_US + 1,
                project: None,
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(pruned.executions, 1);
    kept.retain(|k| k.execution != executions[0]);
    check(&db, &kept, "pruned").await;
    assert!(!kept.is_empty());
}

async fn rollups_bucket_durations_as_the_rust_code_does(db: Backend) {
    let e = new_id();
    let durations = [
        0,
        1,
        999,
        1_000,
        1_009,
        1_010,
        9_999,
        10_000,
        161_234,
        3_599_999_999,
        86_400_000_000_123,
        999_999_999_999_999_999,
        5_000_000_000_000_000_000,
    ];
    let mut records = vec![execution(e).record()];
    for (i, d) in durations.iter().enumerate() {
        records.push(
            step(new_id(), e)
                .name(&format!("d{i:02}"))
                .took(*d)
                .record(),
        );
    }
    db.store.write(&records).await.unwrap();
    let stats = db.store.stats(None, None).await.unwrap();
    assert_eq!(stats.steps.len(), durations.len());
    for (s, d) in stats.steps.iter().zip(durations) {
        // One step in its bucket: the percentiles and the max are it.
        assert_eq!((s.count, s.p50_us, s.max_us), (1, d, d), "{}", s.name);
    }
    let buckets = db.rollup_buckets().await;
    let expected: Vec<i64> = durations.iter().map(|d| bucket(*d)).collect();
    assert_eq!(buckets, expected);
}

async fn steps_stored_before_the_rollups_are_rolled_up_by_their_migration(db: Backend) {
    // Ship, go down to the version before the rollups (the steps stay),
    // then up again.
    let before = db
        .known_migrations()
        .iter()
        .find(|m| m.name == "stats_rollups")
        .expect("a rollups migration")
        .version
        - 1;
    let below: Vec<i64> = db
        .known_migrations()
        .iter()
        .map(|m| m.version)
        .filter(|v| *v <= before)
        .collect();
    db.store.migrate_up().await.unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    let e = new_id();
    let kept = steps(&mut rng, e, 150);
    let mut records = vec![execution(e).record()];
    records.extend(kept.iter().map(|k| k.record.clone()));
    write(&db, records).await;
    db.store
        .migrate_down(db.known_migrations().len() - below.len())
        .await
        .unwrap();
    assert_eq!(db.recorded_versions().await, below);
    db.store.migrate_up().await.unwrap();
    check(&db, &kept, "migrated").await;
}
