//! The queue and the writer under load: exact counts, full queues, a full
//! outbox, the block policy.

mod support;

use std::sync::Arc;

use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;

#[xray::step]
fn work(thread: u32, i: u32) -> u32 {
    xray::accept(i, "all", "kept");
    thread * 1_000_000 + i
}

fn run_threads(dispatch: &Dispatch, threads: u32, executions: u32, steps_per_execution: u32) {
    std::thread::scope(|scope| {
        for t in 0..threads {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for e in 0..executions {
                        xray::execution("load").run(|| {
                            for s in 0..steps_per_execution {
                                std::hint::black_box(work(t, e * steps_per_execution + s));
                            }
                        });
                    }
                })
            });
        }
    });
}

#[test]
fn eight_threads_many_executions_exact_counts() {
    let (_dir, path) = support::outbox();
    let (layer, guard) = xray::Config::default()
        .outbox(&path)
        .when_full(xray::WhenFull::Block)
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    run_threads(&dispatch, 8, 250, 4);
    guard.flush().unwrap();
    let stats = guard.stats();
    assert_eq!(
        (stats.captured, stats.written, stats.dropped),
        (8000, 8000, 0)
    );
    assert_eq!(stats.executions, 2000);
    assert_eq!(
        stats.records_written,
        support::rows(&path).len() as u64,
        "records_written counts the rows in the outbox"
    );
    let steps = support::steps(&path);
    assert_eq!(steps.len(), 8000);
    assert!(steps.iter().all(|s| s.status == "ok" && s.phase == "end"));
    let mut outputs: Vec<u64> = steps
        .iter()
        .map(|s| s.output.as_ref().unwrap().as_u64().unwrap())
        .collect();
    outputs.sort_unstable();
    outputs.dedup();
    assert_eq!(outputs.len(), 8000, "every step exactly once");
    // Cells and buffers are reused across threads: nothing of one step may
    // show in another's row.
    for s in &steps {
        let output = s.output.as_ref().unwrap().as_u64().unwrap();
        let decisions = s
            .decisions
            .as_ref()
            .expect("one decision")
            .as_array()
            .unwrap();
        assert_eq!(decisions.len(), 1, "{s:?}");
        assert_eq!(
            decisions[0]["candidate_id"],
            (output % 1_000_000).to_string()
        );
        assert_eq!(
            s.input.as_ref().unwrap()["i"].as_u64().unwrap(),
            output % 1_000_000
        );
    }
    let execs = support::executions(&path);
    assert_eq!(execs.len(), 2000);
    assert!(execs
        .iter()
        .all(|e| e.status == "ok" && e.outcome.as_ref().unwrap()["steps"] == 4));
}

#[test]
fn a_full_queue_drops_and_counts_under_the_drop_policy_without_harming_the_application() {
    let (_dir, path) = support::outbox();
    let (layer, guard) = xray::Config::default()
        .outbox(&path)
        .queue_capacity(4)
        .flush_interval(std::time::Duration::from_millis(200))
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut sum = 0u64;
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..5_000 {
            sum += u64::from(work(0, i));
        }
    });
    assert_eq!(
        sum,
        (0..5_000u64).sum::<u64>(),
        "the application's results are unchanged"
    );
    guard.flush().unwrap();
    let stats = guard.stats();
    assert_eq!(stats.captured, 5_000);
    assert!(
        stats.dropped > 0,
        "a 4-record queue cannot keep up: {stats:?}"
    );
    assert_eq!(stats.dropped, stats.dropped_queue_full);
    assert_eq!(stats.captured, stats.written + stats.dropped, "{stats:?}");
    // A step whose end record was dropped may still show its start (running).
    let ended = support::steps(&path)
        .iter()
        .filter(|s| s.phase == "end")
        .count();
    assert_eq!(ended as u64, stats.written);
}

#[test]
fn the_block_policy_loses_nothing_with_a_tiny_queue() {
    let (_dir, path) = support::outbox();
    let (layer, guard) = xray::Config::default()
        .outbox(&path)
        .queue_capacity(2)
        .when_full(xray::WhenFull::Block)
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    run_threads(&dispatch, 4, 50, 5);
    guard.flush().unwrap();
    let stats = guard.stats();
    assert_eq!(
        (stats.captured, stats.written, stats.dropped),
        (1000, 1000, 0)
    );
    assert_eq!(support::steps(&path).len(), 1000);
}

#[xray::step]
fn bulky(blob: &str) -> usize {
    blob.len()
}

#[test]
fn a_full_outbox_drops_and_counts_and_the_application_goes_on() {
    let (_dir, path) = support::outbox();
    let (layer, guard) = xray::Config::default()
        .outbox(&path)
        .outbox_max_bytes(256 * 1024)
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    let blob: Arc<str> = Arc::from("y".repeat(8 * 1024));
    let total: usize = tracing::dispatcher::with_default(&dispatch, || {
        (0..200)
            .map(|_| {
                let n = bulky(&blob);
                guard.flush().unwrap();
                n
            })
            .sum()
    });
    assert_eq!(total, 200 * 8 * 1024);
    let stats = guard.stats();
    assert_eq!(stats.captured, 200);
    assert!(stats.dropped_outbox_full > 0, "{stats:?}");
    assert_eq!(stats.captured, stats.written + stats.dropped, "{stats:?}");
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 1024 * 1024, "the outbox grew to {size} bytes");
    assert_eq!(support::steps(&path).len() as u64, stats.written);
}

#[xray::step]
fn flushes_while_running(guard: &xray::Guard) -> u32 {
    // The writer takes this step's start record and commits a start row
    // while the step is still running.
    guard.flush().expect("flush");
    7
}

#[xray::step]
fn quick(i: u32) -> u32 {
    i + 1
}

#[test]
fn a_step_that_outlives_its_start_record_writes_a_start_row_and_then_its_end() {
    let (_dir, path) = support::outbox();
    let (layer, guard) = xray::Config::default().outbox(&path).build().unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        xray::execution("long").run(|| flushes_while_running(&guard));
    });
    guard.flush().unwrap();
    let rows: Vec<_> = support::rows(&path)
        .into_iter()
        .filter(|r| r.record_type == "step")
        .map(|r| (r.phase, r.status, r.output))
        .collect();
    assert_eq!(
        rows,
        vec![
            ("start".to_owned(), "running".to_owned(), None),
            (
                "end".to_owned(),
                "ok".to_owned(),
                Some(serde_json::json!(7))
            ),
        ],
        "the start row is committed while the step runs, the end row after"
    );
    let stats = guard.stats();
    assert_eq!((stats.captured, stats.written, stats.dropped), (1, 1, 0));
}

#[test]
fn steps_that_end_before_the_writer_takes_their_start_write_one_row_each() {
    let (_dir, path) = support::outbox();
    // A long flush interval and far fewer records than a batch: the writer
    // takes the first record, then sleeps until the flush below, so every
    // step ends while its start record is still queued and its end rides on
    // it (one record per step in the queue, one row per step in the outbox).
    let (layer, guard) = xray::Config::default()
        .outbox(&path)
        .flush_interval(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        xray::execution("quick").run(|| {
            for i in 0..100 {
                std::hint::black_box(quick(i));
            }
        });
    });
    guard.flush().unwrap();
    let rows = support::rows(&path);
    let steps: Vec<_> = rows.iter().filter(|r| r.record_type == "step").collect();
    assert_eq!(steps.len(), 100, "one row per step: its end, no start");
    assert!(steps.iter().all(|s| s.phase == "end" && s.status == "ok"));
    let mut outputs: Vec<u64> = steps
        .iter()
        .map(|s| s.output.as_ref().unwrap().as_u64().unwrap())
        .collect();
    outputs.sort_unstable();
    assert_eq!(outputs, (1..=100).collect::<Vec<u64>>());
    let stats = guard.stats();
    assert_eq!(
        (stats.captured, stats.written, stats.dropped),
        (100, 100, 0)
    );
    assert_eq!(stats.records_written, rows.len() as u64);
    assert_eq!(
        stats.batches, 1,
        "queueing records does not wake the writer before a batch is full"
    );
}

#[xray::step]
fn refused_by_the_outbox() -> u32 {
    0
}

#[test]
fn a_row_the_outbox_refuses_is_dropped_and_counted_alone_and_the_rest_of_its_batch_is_written() {
    let (_dir, path) = support::outbox();
    // Create the outbox, then give it a trigger refusing one step's rows.
    let _ = support::capture(xray::Config::default().outbox(&path), || ());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON xray_outbox
             WHEN new.name = 'refused_by_the_outbox'
             BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END;",
        )
        .unwrap();
    // A flush interval longer than the test: everything is one batch,
    // committed by the flush.
    let config = xray::Config::default()
        .outbox(&path)
        .flush_interval(std::time::Duration::from_secs(60));
    let ((), stats) = support::capture(config, || {
        xray::execution("batch").run(|| {
            for i in 0..100 {
                quick(i);
                if i == 50 {
                    refused_by_the_outbox();
                }
            }
        })
    });
    assert_eq!(stats.batches, 1, "{stats:?}");
    assert_eq!(
        (stats.captured, stats.written, stats.dropped),
        (101, 100, 1),
        "{stats:?}"
    );
    assert_eq!(stats.dropped_write_failed, 1, "{stats:?}");
    assert_eq!(stats.captured, stats.written + stats.dropped);
    let steps = support::steps(&path);
    assert_eq!(steps.len(), 100);
    assert!(steps.iter().all(|s| s.name == "quick"));
    assert_eq!(support::executions(&path).len(), 1);
}
