//! What `#[xray::step]` captures for the signature shapes the macro has to
//! take apart: pattern parameters, receivers, generics, `async fn`, and
//! functions returning `impl Future`. (The runtime's own rules — redaction
//! lists, bad values, sampling — are tested in `capture.rs`.)

mod support;

use std::fmt::{self, Debug, Display};
use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use support::{capture, outbox, step, steps};

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Point {
    x: i32,
    y: i32,
}

#[xray::step]
fn patterns(
    (a, b): (u32, u32),
    Point { x, y }: Point,
    _: u8,
    mut bytes: Vec<u8>,
    [first, ..]: [u8; 2],
) -> u32 {
    bytes.push(first);
    a + b + x.unsigned_abs() + y.unsigned_abs() + bytes.len() as u32
}

#[test]
fn pattern_parameters_record_every_name_they_bind_and_wildcards_nothing() {
    let (_dir, path) = outbox();
    let (value, _) = capture(xray::Config::default().outbox(&path), || {
        patterns((1, 2), Point { x: 3, y: -4 }, 9, vec![7], [5, 6])
    });
    assert_eq!(value, 12);
    let s = step(&path, "patterns");
    assert_eq!(
        s.input,
        Some(json!({"a": 1, "b": 2, "x": 3, "y": -4, "bytes": [7], "first": 5}))
    );
    assert_eq!(s.output, Some(json!(12)));
}

#[xray::step(redact(x), skip(b))]
fn pattern_options((a, b): (u32, u32), Point { x, y }: Point) -> i64 {
    i64::from(a + b) + i64::from(x + y)
}

#[test]
fn skip_and_redact_apply_to_names_bound_inside_patterns() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        pattern_options((1, 2), Point { x: 3, y: 4 })
    });
    let s = step(&path, "pattern_options");
    assert_eq!(s.input, Some(json!({"a": 1, "x": "[redacted]", "y": 4})));
}

#[xray::step]
fn r#match(r#type: u32) -> u32 {
    r#type * 2
}

#[test]
fn raw_identifiers_are_recorded_without_their_prefix() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || r#match(4));
    let s = step(&path, "match");
    assert_eq!(s.input, Some(json!({"type": 4})));
}

#[derive(Debug)]
struct DebugOnly {
    #[allow(dead_code)] // read only through `Debug`, which is the point
    id: u32,
}

#[xray::step]
fn debug_only(value: DebugOnly) -> DebugOnly {
    value
}

#[xray::step]
fn generic_debug<T: Debug>(value: T) -> usize {
    format!("{value:?}").len()
}

#[xray::step]
fn generic_serialize<T: Serialize>(value: T) -> T {
    value
}

#[xray::step]
fn generic_unbounded<T>(value: T) -> T {
    value
}

#[xray::step]
fn impl_display(value: impl Display) -> String {
    value.to_string()
}

#[test]
fn each_value_is_recorded_through_the_best_trait_its_type_declares() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        debug_only(DebugOnly { id: 7 });
        generic_debug(DebugOnly { id: 8 });
        generic_serialize(Point { x: 1, y: 2 });
        generic_unbounded(Point { x: 1, y: 2 });
        impl_display(3);
    });
    let debug_text = json!("DebugOnly { id: 7 }");
    let s = step(&path, "debug_only");
    assert_eq!(
        (s.input, s.output),
        (Some(json!({"value": debug_text})), Some(debug_text))
    );
    // In a generic function the bounds decide: the body only knows `T: Debug`.
    let s = step(&path, "generic_debug");
    assert_eq!(s.input, Some(json!({"value": "DebugOnly { id: 8 }"})));
    let s = step(&path, "generic_serialize");
    assert_eq!(s.input, Some(json!({"value": {"x": 1, "y": 2}})));
    assert_eq!(s.output, Some(json!({"x": 1, "y": 2})));
    let s = step(&path, "generic_unbounded");
    assert_eq!(
        (s.input, s.output),
        (Some(json!({"value": "<opaque>"})), Some(json!("<opaque>")))
    );
    let s = step(&path, "impl_display");
    assert_eq!(
        (s.input, s.output),
        (Some(json!({"value": "<opaque>"})), Some(json!("3")))
    );
}

#[derive(Debug, Serialize)]
struct Catalog {
    region: String,
}

impl Catalog {
    #[xray::step]
    fn lookup(&self, sku: u32) -> Option<String> {
        (sku == 1).then(|| format!("{}-{sku}", self.region))
    }

    #[xray::step(capture_self)]
    fn region(&self) -> &str {
        &self.region
    }

    #[xray::step(capture_self, skip_all)]
    fn into_region(self) -> String {
        self.region
    }
}

#[test]
fn the_receiver_is_recorded_only_with_capture_self() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        let catalog = Catalog {
            region: "eu".into(),
        };
        assert_eq!(catalog.lookup(1).as_deref(), Some("eu-1"));
        assert_eq!(catalog.lookup(2), None);
        assert_eq!(catalog.region(), "eu");
        assert_eq!(catalog.into_region(), "eu");
    });
    let lookups: Vec<_> = steps(&path)
        .into_iter()
        .filter(|s| s.name == "lookup")
        .collect();
    assert_eq!(lookups.len(), 2);
    assert_eq!(lookups[0].input, Some(json!({"sku": 1})));
    assert_eq!(lookups[0].output, Some(json!("eu-1")));
    assert_eq!(lookups[1].output, Some(json!(null)));
    let s = step(&path, "region");
    assert_eq!(s.input, Some(json!({"self": {"region": "eu"}})));
    assert_eq!(s.output, Some(json!("eu")));
    let s = step(&path, "into_region");
    assert_eq!(s.input, Some(json!({"self": {"region": "eu"}})));
}

#[derive(Debug)]
struct NotFound {
    sku: u32,
}

impl Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sku {} not found", self.sku)
    }
}

impl std::error::Error for NotFound {}

#[xray::step(kind = "search")]
async fn fetch_price(sku: u32) -> Result<f64, NotFound> {
    tokio::task::yield_now().await;
    xray::attr("after_await", &true);
    if sku == 0 {
        return Err(NotFound { sku });
    }
    Ok(f64::from(sku) * 1.5)
}

#[xray::step]
async fn total(skus: Vec<u32>) -> f64 {
    let mut sum = 0.0;
    for sku in skus {
        sum += fetch_price(sku).await.unwrap_or(0.0);
    }
    sum
}

#[test]
fn async_steps_record_their_result_and_nest_across_awaits() {
    let (_dir, path) = outbox();
    let (sum, _) = capture(xray::Config::default().outbox(&path), || {
        block_on(total(vec![2, 0]))
    });
    assert_eq!(sum, 3.0);
    let all = steps(&path);
    let parent = all
        .iter()
        .find(|s| s.name == "total")
        .expect("the outer step");
    assert_eq!(parent.status, "ok");
    assert_eq!(parent.output, Some(json!(3.0)));
    let children: Vec<_> = all.iter().filter(|s| s.name == "fetch_price").collect();
    assert_eq!(children.len(), 2);
    for child in &children {
        assert_eq!(child.parent_id.as_deref(), Some(parent.id.as_str()));
        assert_eq!(child.kind.as_deref(), Some("search"));
        assert_eq!(
            child.attributes.as_ref().map(|a| a["after_await"].clone()),
            Some(json!(true))
        );
    }
    assert_eq!(
        (children[0].status.as_str(), children[0].output.clone()),
        ("ok", Some(json!(3.0)))
    );
    assert_eq!(children[1].status, "error");
    assert_eq!(children[1].error.as_deref(), Some("sku 0 not found"));
}

#[xray::step(skip_output)]
async fn secret_total(sku: u32) -> Result<f64, NotFound> {
    fetch_price(sku).await
}

#[test]
fn skip_output_still_records_the_error() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        block_on(async {
            assert!(secret_total(1).await.is_ok());
            assert!(secret_total(0).await.is_err());
        })
    });
    let recorded: Vec<_> = steps(&path)
        .into_iter()
        .filter(|s| s.name == "secret_total")
        .collect();
    assert_eq!(recorded.len(), 2);
    assert_eq!(
        (recorded[0].status.as_str(), recorded[0].output.clone()),
        ("ok", None)
    );
    assert_eq!(recorded[1].status, "error");
    assert_eq!(recorded[1].output, None);
    assert_eq!(recorded[1].error.as_deref(), Some("sku 0 not found"));
}

#[xray::step]
fn quote(sku: u32) -> impl Future<Output = f64> {
    // Runs when `quote` is called, inside the step.
    xray::attr("sync_part", &sku);
    async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        xray::attr("async_part", &true);
        f64::from(sku) / 2.0
    }
}

#[test]
fn a_step_returning_impl_future_ends_when_its_future_completes() {
    let (_dir, path) = outbox();
    let (value, _) = capture(xray::Config::default().outbox(&path), || {
        let future = quote(3);
        block_on(future)
    });
    assert_eq!(value, 1.5);
    let s = step(&path, "quote");
    assert_eq!(s.status, "ok");
    assert_eq!(s.input, Some(json!({"sku": 3})));
    assert_eq!(s.output, Some(json!(1.5)));
    let attributes = s.attributes.expect("attributes");
    assert_eq!(
        (
            attributes["sync_part"].clone(),
            attributes["async_part"].clone()
        ),
        (json!(3), json!(true))
    );
    assert!(
        s.duration_us.expect("a duration") >= 20_000,
        "the step lasted until the future completed: {:?}",
        s.duration_us
    );
}

#[xray::step]
async fn slow(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    ms
}

#[test]
fn dropped_step_futures_are_recorded_as_cancelled() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        block_on(async {
            assert!(tokio::time::timeout(Duration::from_millis(5), slow(10_000))
                .await
                .is_err());
            // Started (the step exists) but never polled to completion.
            let pending = quote(1);
            drop(pending);
        })
    });
    assert_eq!(step(&path, "slow").status, "cancelled");
    assert_eq!(step(&path, "quote").status, "cancelled");
}

#[xray::step]
fn give_up(reason: &str) -> ! {
    panic!("giving up: {reason}")
}

#[test]
fn a_diverging_step_is_recorded_as_panicked_with_its_message() {
    let (_dir, path) = outbox();
    capture(xray::Config::default().outbox(&path), || {
        assert!(std::panic::catch_unwind(|| give_up("no candidates")).is_err());
    });
    let s = step(&path, "give_up");
    assert_eq!(s.status, "panicked");
    assert_eq!(s.input, Some(json!({"reason": "no candidates"})));
    assert!(
        s.error
            .as_deref()
            .is_some_and(|e| e.contains("giving up: no candidates")),
        "{:?}",
        s.error
    );
}

#[xray::step]
fn leaf(x: u32) -> u32 {
    x
}

#[test]
fn a_step_follows_the_span_tree_not_the_spans_entered_around_it() {
    let (_dir, path) = support::outbox();
    support::capture(xray::Config::default().outbox(&path), || {
        // Created outside any execution, so not recorded; entered inside one.
        let detached = tracing::info_span!("detached");
        xray::execution("outer").run(|| {
            leaf(1);
            detached.in_scope(|| leaf(2));
            xray::execution("inner").run(|| leaf(3));
            tracing::info_span!("plain").in_scope(|| leaf(4));
            leaf(5)
        });
    });
    let outer = support::execution(&path, "outer").id;
    let inner = support::execution(&path, "inner").id;
    let by_output = |n: u64| {
        support::steps(&path)
            .into_iter()
            .find(|s| s.name == "leaf" && s.output == Some(serde_json::json!(n)))
            .unwrap_or_else(|| panic!("no leaf step returning {n}"))
    };
    assert_eq!(by_output(1).execution_id, outer);
    assert_eq!(by_output(1).parent_id, None);
    let two = by_output(2);
    assert_ne!(
        two.execution_id, outer,
        "its parent span is outside the execution: it is its own implicit execution"
    );
    assert_eq!(
        support::executions(&path)
            .iter()
            .filter(|e| e.id == two.execution_id && e.name == "leaf")
            .count(),
        1
    );
    assert_eq!(by_output(3).execution_id, inner);
    let plain = support::step(&path, "plain");
    let four = by_output(4);
    assert_eq!(
        (four.execution_id.clone(), four.parent_id),
        (outer.clone(), Some(plain.id))
    );
    assert_eq!(by_output(5).execution_id, outer);
}
