//! X-Ray never harms its host: hostile `Display`/`Debug`/`Error` impls,
//! two X-Ray layers in one subscriber, huge timeouts. Each test runs a real
//! pipeline into a real outbox and reads the rows back.

mod support;

use std::fmt;
use std::time::Duration;

use serde_json::json;
use support::{capture, outbox, step, steps};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

/// A `Display` and `Debug` impl that fails on its own (`format!` panics
/// on it: "a Display implementation returned an error unexpectedly").
struct Failing;
impl fmt::Display for Failing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("half")?;
        Err(fmt::Error)
    }
}
impl fmt::Debug for Failing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl std::error::Error for Failing {}

/// An error whose `source()` chain never ends: each is its own cause.
#[derive(Debug)]
struct Cycle;
impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cycle")
    }
}
impl std::error::Error for Cycle {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        static ME: Cycle = Cycle;
        Some(&ME)
    }
}

#[xray::step]
fn hostile_decisions(n: u32) -> u32 {
    xray::reject(Failing, Failing, Failing);
    xray::accept("c1", Failing, "fine");
    xray::score(Failing, 0.5);
    xray::reason(Failing);
    xray::llm_usage(Failing, 1, 2);
    tracing::info!(field = ?Failing, shown = %Failing, "event with {}", 1);
    n
}

#[xray::step]
fn hostile_argument(value: &Failing) -> usize {
    let _ = value;
    1
}

#[xray::step]
fn failing_error() -> Result<u32, Failing> {
    Err(Failing)
}

#[xray::step]
fn cyclic_error() -> Result<u32, Cycle> {
    Err(Cycle)
}

#[tracing::instrument]
fn instrumented(value: &Failing) -> u32 {
    tracing::error!(
        error = &Failing as &(dyn std::error::Error + 'static),
        "failed"
    );
    3
}

fn flags(row: &support::Row) -> Vec<String> {
    row.attributes
        .as_ref()
        .and_then(|a| a.get("_xray_flags"))
        .and_then(|f| serde_json::from_value(f.clone()).ok())
        .unwrap_or_default()
}

#[test]
fn impls_that_fail_are_recorded_flagged_and_never_panic_the_host() {
    let (_dir, path) = outbox();
    let (results, stats) = capture(xray::Config::default().outbox(&path), || {
        xray::execution("hostile").run(|| {
            (
                hostile_decisions(7),
                hostile_argument(&Failing),
                failing_error().is_err(),
                cyclic_error().is_err(),
                instrumented(&Failing),
            )
        })
    });
    assert_eq!(results, (7, 1, true, true, 3));
    assert_eq!(stats.captured, stats.written + stats.dropped);

    let d = step(&path, "hostile_decisions");
    assert!(flags(&d).contains(&"format_error".to_owned()), "{d:?}");
    let decisions = d.decisions.expect("decisions kept");
    assert_eq!(decisions.as_array().map(Vec::len), Some(3));
    assert_eq!(
        decisions[0]["candidate_id"],
        json!("half<formatting failed: an impl returned an error>")
    );
    assert_eq!(decisions[1]["reason"], json!("fine"));
    let events = &d.attributes.as_ref().unwrap()["events"];
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");

    let a = step(&path, "hostile_argument");
    assert_eq!(
        a.input.clone().unwrap()["value"],
        json!({"_xray_serialize_error": "Debug implementation returned an error"})
    );
    assert!(flags(&a).contains(&"format_error".to_owned()));

    let e = step(&path, "failing_error");
    assert_eq!(e.status, "error");
    assert_eq!(
        e.error.as_deref(),
        Some("half<formatting failed: an impl returned an error>")
    );

    let c = step(&path, "cyclic_error");
    assert_eq!(c.status, "error");
    let text = c.error.unwrap();
    assert!(text.starts_with("cycle\ncaused by: cycle"), "{text}");
    assert!(
        text.len() < 2_000,
        "the chain is bounded: {} bytes",
        text.len()
    );

    let i = step(&path, "instrumented");
    assert_eq!(i.status, "error");
    assert_eq!(
        i.attributes.unwrap()["value"],
        json!({"_xray_serialize_error": "Debug implementation returned an error"})
    );
}

#[xray::step]
fn traced(n: u32) -> u32 {
    tracing::info!(n, "inside");
    n + 1
}

#[test]
fn a_second_layer_on_the_same_registry_is_inert() {
    let (_d1, first) = outbox();
    let (_d2, second) = outbox();
    let (l1, g1) = xray::Config::default().outbox(&first).build().unwrap();
    let (l2, g2) = xray::Config::default().outbox(&second).build().unwrap();
    let subscriber = tracing_subscriber::registry().with(l1).with(l2);
    let out = tracing::subscriber::with_default(subscriber, || {
        xray::execution("twice").run(|| {
            let _plain = tracing::info_span!("plain_span").entered();
            traced(1)
        })
    });
    assert_eq!(out, 2);
    g1.flush().unwrap();
    g2.flush().unwrap();
    let s = step(&first, "traced");
    let events = &s.attributes.unwrap()["events"];
    assert_eq!(
        events.as_array().map(Vec::len),
        Some(1),
        "one event: {events}"
    );
    assert_eq!(steps(&first).len(), 2, "plain_span and traced, once each");
    assert_eq!(steps(&second).len(), 0);
    assert_eq!(g2.stats().captured, 0);
}

#[test]
fn two_layers_side_by_side_record_each_span_once() {
    let (_d1, first) = outbox();
    let (_d2, second) = outbox();
    let (l1, g1) = xray::Config::default().outbox(&first).build().unwrap();
    let (l2, g2) = xray::Config::default().outbox(&second).build().unwrap();
    let layers = vec![l1.boxed(), l2.boxed()];
    let subscriber = tracing_subscriber::registry().with(layers);
    let out = tracing::subscriber::with_default(subscriber, || {
        xray::execution("side_by_side").run(|| traced(41))
    });
    assert_eq!(out, 42);
    g1.flush().unwrap();
    g2.flush().unwrap();
    let all: Vec<_> = steps(&first).into_iter().chain(steps(&second)).collect();
    assert_eq!(all.len(), 1, "{all:#?}");
    let events = &all[0].attributes.as_ref().unwrap()["events"];
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(g1.stats().captured + g2.stats().captured, 1);
}

#[test]
fn huge_timeouts_saturate_instead_of_panicking() {
    let (_dir, path) = outbox();
    let (layer, guard) = xray::Config::default()
        .outbox(&path)
        .shutdown_timeout(Duration::MAX)
        .block_timeout(Duration::MAX)
        .build()
        .unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || traced(1));
    guard.flush_within(Duration::MAX).unwrap();
    assert_eq!(steps(&path).len(), 1);
    // Dropping the guard flushes with the (saturated) shutdown timeout.
    drop(guard);
}
