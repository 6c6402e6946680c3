//! Async steps and propagation across tokio tasks and threads, with X-Ray
//! installed as the global subscriber (as `init()` does in an application).
//! One test function, because a process has one global subscriber.

mod support;

use std::time::Duration;

use serde_json::json;
use tracing::Instrument;

#[xray::step(kind = "search")]
async fn fetch(page: u32) -> Result<Vec<u32>, String> {
    tokio::task::yield_now().await;
    if page == 99 {
        return Err("page 99 does not exist".into());
    }
    Ok(vec![page * 10, page * 10 + 1])
}

#[xray::step]
async fn slow(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[xray::step]
fn rank(items: Vec<u32>) -> Vec<u32> {
    let mut items = items;
    items.sort_unstable_by(|a, b| b.cmp(a));
    items
}

#[xray::step]
async fn fan_out(pages: Vec<u32>) -> Vec<u32> {
    // tokio tasks: the span must be passed explicitly.
    let mut handles = Vec::new();
    for page in pages {
        handles.push(tokio::spawn(
            fetch(page).instrument(tracing::Span::current()),
        ));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap().unwrap());
    }
    // a plain thread: the span entered with in_scope.
    let span = tracing::Span::current();
    std::thread::spawn(move || span.in_scope(|| rank(all)))
        .join()
        .unwrap()
}

#[test]
fn async_steps_and_propagation_across_tasks_and_threads() {
    let (_dir, path) = support::outbox();
    let guard = xray::Config::default().outbox(&path).init().expect("init");
    assert!(matches!(
        xray::Config::default().outbox(&path).init(),
        Err(xray::Error::AlreadyInitialized)
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();

    let ranked = rt.block_on(xray::execution("fanout").run_async(fan_out(vec![1, 2, 3])));
    assert_eq!(ranked, vec![31, 30, 21, 20, 11, 10]);

    let err = rt.block_on(xray::execution("missing").run_async(fetch(99)));
    assert!(err.is_err());

    let timed_out =
        rt.block_on(xray::execution("impatient").run_async(async {
            tokio::time::timeout(Duration::from_millis(20), slow(10_000)).await
        }));
    assert!(timed_out.is_err());

    guard.flush().unwrap();
    let stats = xray::stats();
    assert_eq!(stats, guard.stats());
    assert_eq!(stats.dropped, 0);

    let steps = support::steps(&path);
    let exec_id = |name: &str| support::execution(&path, name).id;

    let fan = support::step(&path, "fan_out");
    assert_eq!(fan.execution_id, exec_id("fanout"));
    assert_eq!(fan.output, Some(json!([31, 30, 21, 20, 11, 10])));
    let fetched: Vec<_> = steps
        .iter()
        .filter(|s| s.name == "fetch" && s.execution_id == exec_id("fanout"))
        .collect();
    assert_eq!(fetched.len(), 3);
    for f in &fetched {
        assert_eq!(
            f.parent_id.as_deref(),
            Some(fan.id.as_str()),
            "task lost its parent: {f:#?}"
        );
        assert_eq!(f.status, "ok");
        assert_eq!(f.kind.as_deref(), Some("search"));
    }
    let r = support::step(&path, "rank");
    assert_eq!(
        r.parent_id.as_deref(),
        Some(fan.id.as_str()),
        "thread lost its parent"
    );
    assert_eq!(r.execution_id, exec_id("fanout"));

    let missing = steps
        .iter()
        .find(|s| s.execution_id == exec_id("missing"))
        .unwrap();
    assert_eq!(missing.status, "error");
    assert_eq!(missing.error.as_deref(), Some("page 99 does not exist"));

    let cancelled = support::step(&path, "slow");
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(cancelled.execution_id, exec_id("impatient"));
    assert_eq!(cancelled.input, Some(json!({"ms": 10_000})));

    let status = |name: &str| support::execution(&path, name).status;
    assert_eq!(status("fanout"), "ok");
    assert_eq!(status("missing"), "error");
    // A step cancelled under a timeout that the pipeline handled is not a
    // failure of the execution... but it is a failed top-level step.
    assert_eq!(status("impatient"), "error");
    drop(guard);
}
