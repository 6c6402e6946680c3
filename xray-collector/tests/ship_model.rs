//! Model-based property test: random sequences of write / ship / crash /
//! restart against the real outbox, shipper and embedded store, checked
//! against a simple model — the set of step outputs the SDK wrote. Whatever
//! the sequence, once everything is shipped the store holds each step
//! exactly once, and at no point does it hold a step that was not written.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use support::outbox::{outbox_rows, write_steps};
use xray_collector::backend::{sqlite::SqliteStore, Migrations, Store};
use xray_collector::outbox::OutboxReader;
use xray_collector::ship::{ShipConfig, Shipper};

#[derive(Debug, Clone)]
enum Op {
    /// The application writes this many steps (and flushes).
    Write(u8),
    /// The collector ships everything, in batches of this many rows.
    Ship(u8),
    /// The collector commits one batch of this many rows, then dies before
    /// deleting it from the outbox.
    CrashAfterCommit(u8),
    /// The collector reads a batch, then dies before committing it.
    CrashBeforeCommit(u8),
    /// The collector restarts: the store is opened anew.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u8..25).prop_map(Op::Write),
        2 => (1u8..40).prop_map(Op::Ship),
        2 => (1u8..40).prop_map(Op::CrashAfterCommit),
        1 => (1u8..40).prop_map(Op::CrashBeforeCommit),
        1 => Just(Op::Restart),
    ]
}

fn store_outputs(store: &Path) -> Vec<u64> {
    if !store.exists() {
        return Vec::new();
    }
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut stmt = conn
        .prepare("SELECT output FROM steps ORDER BY output")
        .unwrap();
    let mut out: Vec<u64> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|o| o.unwrap().parse().unwrap())
        .collect();
    out.sort_unstable();
    out
}

async fn open_store(path: &Path) -> SqliteStore {
    let store = SqliteStore::open(path).unwrap();
    store.migrate_up().await.unwrap();
    store
}

async fn ship_all(store: &SqliteStore, outbox: &Path, batch_rows: usize) {
    let config = ShipConfig {
        outboxes: vec![outbox.to_path_buf()],
        batch_rows,
        ..ShipConfig::default()
    };
    let summary = Shipper::ship_once(Arc::new(store.clone()), config).await;
    assert_eq!(summary.dead_letters, 0);
}

fn run_case(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let store_path = dir.path().join("xray.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut store = open_store(&store_path).await;
        let mut written: BTreeSet<u64> = BTreeSet::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Write(n) => {
                    write_steps(&outbox, next, u64::from(n));
                    written.extend(next..next + u64::from(n));
                    next += u64::from(n);
                }
                Op::Ship(rows) => {
                    ship_all(&store, &outbox, usize::from(rows)).await;
                    let expected: Vec<u64> = written.iter().copied().collect();
                    assert_eq!(store_outputs(&store_path), expected, "after a full ship");
                    if outbox.exists() {
                        assert_eq!(outbox_rows(&outbox), 0);
                    }
                }
                Op::CrashAfterCommit(rows) | Op::CrashBeforeCommit(rows) => {
                    let Ok(reader) = OutboxReader::open(&outbox) else {
                        continue;
                    };
                    let batch = reader.read_batch(usize::from(rows), usize::MAX).unwrap();
                    if matches!(op, Op::CrashAfterCommit(_)) {
                        store.write(&batch.records).await.unwrap();
                    }
                    // ... and the process dies: no delete.
                }
                Op::Restart => {
                    drop(store);
                    store = open_store(&store_path).await;
                }
            }
            let held: BTreeSet<u64> = store_outputs(&store_path).into_iter().collect();
            assert!(
                held.is_subset(&written),
                "the store holds a step never written"
            );
            let mut outputs = store_outputs(&store_path);
            let total = outputs.len();
            outputs.dedup();
            assert_eq!(outputs.len(), total, "a step is held twice");
        }
        ship_all(&store, &outbox, 500).await;
        let expected: Vec<u64> = written.into_iter().collect();
        assert_eq!(store_outputs(&store_path), expected);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_write_ship_crash_restart_ends_with_each_step_exactly_once(ops in prop::collection::vec(op(), 1..12)) {
        run_case(ops);
    }
}
