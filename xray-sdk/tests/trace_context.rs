//! W3C trace context: an execution continues a caller's `traceparent`,
//! `xray::traceparent()` names the current step for the next service, and
//! a malformed header is ignored and flagged, never an error.

mod support;

use std::sync::Mutex;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

static SEEN: Mutex<Vec<Option<String>>> = Mutex::new(Vec::new());

#[xray::step]
fn call_next_service() {
    SEEN.lock().unwrap().push(xray::traceparent());
    inner();
}

#[xray::step]
fn inner() {
    SEEN.lock().unwrap().push(xray::traceparent());
}

/// The last 16 hex digits of a hyphenated UUID: its derived span id.
fn span_of(uuid: &str) -> String {
    uuid.replace('-', "")[16..].to_owned()
}

#[test]
fn an_execution_continues_the_callers_trace_and_hands_it_on() {
    SEEN.lock().unwrap().clear();
    let (_dir, path) = support::outbox();
    let header = format!("00-{TRACE}-{PARENT}-01");
    let (in_execution, _) = support::capture(xray::Config::default().outbox(&path), || {
        xray::execution("serve").traceparent(&header).run(|| {
            call_next_service();
            xray::traceparent()
        })
    });
    let execution = support::execution(&path, "serve");
    assert_eq!(execution.trace_id.as_deref(), Some(TRACE));
    assert_eq!(execution.parent_span_id.as_deref(), Some(PARENT));
    // Every row of the execution and its steps, start and end, says so.
    for row in support::rows(&path) {
        assert_eq!(row.trace_id.as_deref(), Some(TRACE), "{row:?}");
        if row.record_type == "step" {
            assert_eq!(row.parent_span_id, None, "{row:?}");
        }
    }
    let outer = support::step(&path, "call_next_service");
    let inner = support::step(&path, "inner");
    assert_eq!(
        *SEEN.lock().unwrap(),
        [
            Some(format!("00-{TRACE}-{}-01", span_of(&outer.id))),
            Some(format!("00-{TRACE}-{}-01", span_of(&inner.id))),
        ]
    );
    assert_eq!(
        in_execution,
        Some(format!("00-{TRACE}-{}-01", span_of(&execution.id)))
    );
}

#[test]
fn without_a_header_the_trace_is_the_executions_own() {
    SEEN.lock().unwrap().clear();
    let (_dir, path) = support::outbox();
    support::capture(xray::Config::default().outbox(&path), || {
        xray::execution("own").run(call_next_service)
    });
    let execution = support::execution(&path, "own");
    // Derived, so not stored: NULL in every row.
    assert!(support::rows(&path)
        .iter()
        .all(|r| r.trace_id.is_none() && r.parent_span_id.is_none()));
    let outer = support::step(&path, "call_next_service");
    let header = SEEN.lock().unwrap()[0].clone().unwrap();
    assert_eq!(
        header,
        format!(
            "00-{}-{}-01",
            execution.id.replace('-', ""),
            span_of(&outer.id)
        )
    );
    assert!(execution.metadata.is_none(), "{:?}", execution.metadata);
}

#[test]
fn a_malformed_header_starts_a_trace_of_its_own_and_is_flagged() {
    for bad in [
        "",
        "garbage",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ] {
        let (_dir, path) = support::outbox();
        let (value, stats) = support::capture(xray::Config::default().outbox(&path), || {
            xray::execution("flagged")
                .metadata("who", "caller")
                .traceparent(bad)
                .run(|| 7)
        });
        assert_eq!(value, 7);
        assert_eq!(stats.dropped, 0);
        let execution = support::execution(&path, "flagged");
        assert_eq!(execution.trace_id, None, "{bad:?}");
        assert_eq!(execution.parent_span_id, None, "{bad:?}");
        let metadata = execution.metadata.expect("metadata");
        assert_eq!(metadata["who"], "caller");
        assert_eq!(
            metadata["_xray_flags"],
            serde_json::json!(["malformed_traceparent"]),
            "{bad:?}"
        );
    }
}

#[test]
fn outside_a_step_there_is_no_header_to_hand_on() {
    let (_dir, path) = support::outbox();
    let (outside, _) = support::capture(xray::Config::default().outbox(&path), xray::traceparent);
    assert_eq!(outside, None);
    assert_eq!(xray::traceparent(), None);
}
