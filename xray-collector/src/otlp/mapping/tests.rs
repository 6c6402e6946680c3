use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::model::{Decision, LlmUsage};

const T0: i64 = 1_750_000_000_000_000;

fn execution(id: Uuid) -> ExecutionRow {
    ExecutionRow {
        seq: 1,
        id,
        project: "shop".into(),
        name: "pick_competitor".into(),
        status: ExecutionStatus::Ok,
        metadata: Some(json!({"sku": "A-1"})),
        outcome: Some(json!({"picked": "c2"})),
        error: None,
        started_at_us: T0,
        ended_at_us: Some(T0 + 5_000),
        trace_id: None,
        parent_span_id: None,
    }
}

fn step(id: Uuid, execution_id: Uuid) -> StepRow {
    StepRow {
        seq: 2,
        id,
        execution_id,
        parent_id: None,
        project: "shop".into(),
        name: "llm_relevance".into(),
        kind: Some("llm".into()),
        status: StepStatus::Ok,
        input: Some(json!({"product": "trail bottle"})),
        output: Some(json!(0.9)),
        error: None,
        attributes: Some(json!({"temperature": 0.2})),
        started_at_us: T0 + 1_000,
        duration_us: Some(2_000),
        decisions: vec![
            Decision {
                candidate_id: "B07X".into(),
                accepted: Some(false),
                filter: Some("price".into()),
                reason: Some("79.99 > 50".into()),
                score: None,
            },
            Decision {
                candidate_id: "B08Y".into(),
                accepted: None,
                filter: None,
                reason: None,
                score: Some(0.75),
            },
        ],
        llm_usage: vec![
            LlmUsage {
                model: "gpt-4o-mini".into(),
                prompt_tokens: 120,
                completion_tokens: 30,
            },
            LlmUsage {
                model: "gpt-4o-mini".into(),
                prompt_tokens: 80,
                completion_tokens: 20,
            },
        ],
        trace_id: None,
        reasoning: None,
    }
}

/// `records` to export, each finished.
fn finished(records: &[ShipRecord]) -> Vec<Export<'_>> {
    records
        .iter()
        .map(|record| Export {
            record,
            unfinished: false,
        })
        .collect()
}

/// The request as a receiver gets it: encoded, then decoded.
fn over_the_wire(exports: &[Export<'_>], now_us: i64) -> ExportTraceServiceRequest {
    let bytes = request(exports, now_us).encode_to_vec();
    ExportTraceServiceRequest::decode(bytes.as_slice()).expect("a valid OTLP request")
}

fn spans(request: &ExportTraceServiceRequest) -> Vec<&Span> {
    request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect()
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a V> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text(attributes: &[KeyValue], key: &str) -> String {
    match attr(attributes, key) {
        Some(V::StringValue(s)) => s.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn a_step_maps_to_a_span_with_every_contract_attribute() {
    let (e, s) = (
        uuid(0x0190_a8c4_0000_7000_8000_0000_0000_0001),
        uuid(0x0190_a8c4_0000_7000_8000_00ab_cdef_0002),
    );
    let records = [
        ShipRecord::Execution(execution(e)),
        ShipRecord::Step(step(s, e)),
    ];
    let exports = finished(&records);
    let got = over_the_wire(&exports, T0 + 10_000);
    assert_eq!(got.resource_spans.len(), 1);
    let resource = got.resource_spans[0].resource.as_ref().unwrap();
    assert_eq!(text(&resource.attributes, "service.name"), "shop");
    assert_eq!(
        text(&resource.attributes, "openinference.project.name"),
        "shop"
    );
    assert_eq!(
        got.resource_spans[0].scope_spans[0]
            .scope
            .as_ref()
            .unwrap()
            .name,
        SCOPE
    );
    let [root, span] = spans(&got)[..] else {
        panic!("two spans expected");
    };
    // Ids: the execution's UUID is the trace; span ids the UUIDs' last 8 bytes.
    assert_eq!(root.trace_id, e.as_bytes().to_vec());
    assert_eq!(root.span_id, e.as_bytes()[8..].to_vec());
    assert!(root.parent_span_id.is_empty());
    assert_eq!(span.trace_id, root.trace_id);
    assert_eq!(span.span_id, s.as_bytes()[8..].to_vec());
    assert_eq!(span.parent_span_id, root.span_id);
    assert_eq!(span.name, "llm_relevance");
    assert_eq!(span.kind, SpanKind::Internal as i32);
    assert_eq!(span.start_time_unix_nano, (T0 as u64 + 1_000) * 1_000);
    assert_eq!(span.end_time_unix_nano, (T0 as u64 + 3_000) * 1_000);
    let a = &span.attributes;
    assert_eq!(text(a, "input.value"), r#"{"product":"trail bottle"}"#);
    assert_eq!(text(a, "input.mime_type"), "application/json");
    assert_eq!(text(a, "output.value"), "0.9");
    assert_eq!(text(a, "output.mime_type"), "application/json");
    assert_eq!(text(a, "openinference.span.kind"), "LLM");
    assert_eq!(text(a, "xray.kind"), "llm");
    assert_eq!(text(a, "xray.status"), "ok");
    assert_eq!(text(a, "xray.step_id"), s.to_string());
    assert_eq!(text(a, "xray.execution_id"), e.to_string());
    assert_eq!(text(a, "xray.attributes"), r#"{"temperature":0.2}"#);
    assert_eq!(text(a, "gen_ai.request.model"), "gpt-4o-mini");
    assert_eq!(text(a, "llm.model_name"), "gpt-4o-mini");
    for (key, n) in [
        ("gen_ai.usage.input_tokens", 200),
        ("gen_ai.usage.output_tokens", 50),
        ("llm.token_count.prompt", 200),
        ("llm.token_count.completion", 50),
        ("llm.token_count.total", 250),
    ] {
        assert_eq!(attr(a, key), Some(&V::IntValue(n)), "{key}");
    }
    assert_eq!(attr(a, "xray.unfinished"), None);
    let status = span.status.as_ref().unwrap();
    assert_eq!(status.code, StatusCode::Ok as i32);
    // Decisions, in order, as events.
    assert_eq!(span.events.len(), 2);
    let (rejected, scored) = (&span.events[0], &span.events[1]);
    assert_eq!(rejected.name, DECISION_EVENT);
    assert_eq!(text(&rejected.attributes, "candidate_id"), "B07X");
    assert_eq!(
        attr(&rejected.attributes, "accepted"),
        Some(&V::BoolValue(false))
    );
    assert_eq!(text(&rejected.attributes, "filter"), "price");
    assert_eq!(text(&rejected.attributes, "reason"), "79.99 > 50");
    assert_eq!(attr(&rejected.attributes, "score"), None);
    assert_eq!(text(&scored.attributes, "candidate_id"), "B08Y");
    assert_eq!(attr(&scored.attributes, "accepted"), None);
    assert_eq!(
        attr(&scored.attributes, "score"),
        Some(&V::DoubleValue(0.75))
    );
    // The execution: metadata, outcome as output.
    assert_eq!(text(&root.attributes, "metadata"), r#"{"sku":"A-1"}"#);
    assert_eq!(text(&root.attributes, "output.value"), r#"{"picked":"c2"}"#);
    assert_eq!(text(&root.attributes, "openinference.span.kind"), "CHAIN");
}

#[test]
fn failures_are_errors_with_their_text_and_nesting_follows_the_parent_step() {
    let (e, outer, inner) = (uuid(1 << 64 | 1), uuid(2 << 64 | 2), uuid(3 << 64 | 3));
    let mut failed = step(inner, e);
    failed.parent_id = Some(outer);
    failed.kind = Some("retrieval".into());
    failed.llm_usage.clear();
    for (status, error) in [
        (StepStatus::Error, "search timed out"),
        (StepStatus::Panicked, "panicked: index out of bounds"),
        (StepStatus::Cancelled, "cancelled: dropped"),
    ] {
        failed.status = status;
        failed.error = Some(error.into());
        let record = ShipRecord::Step(failed.clone());
        let got = over_the_wire(&finished(std::slice::from_ref(&record)), T0);
        let span = spans(&got)[0];
        assert_eq!(span.parent_span_id, outer.as_bytes()[8..].to_vec());
        let s = span.status.as_ref().unwrap();
        assert_eq!(
            (s.code, s.message.as_str()),
            (StatusCode::Error as i32, error)
        );
        assert_eq!(
            text(&span.attributes, "openinference.span.kind"),
            "RETRIEVER"
        );
        assert_eq!(attr(&span.attributes, "gen_ai.request.model"), None);
    }
}

#[test]
fn a_continued_trace_keeps_the_remote_trace_and_parent() {
    let (e, s) = (uuid(7), uuid(8));
    let trace: [u8; 16] = core::array::from_fn(|i| 0xa0 + i as u8);
    let parent: [u8; 8] = core::array::from_fn(|i| 0x10 + i as u8);
    let mut root = execution(e);
    root.trace_id = Some(trace);
    root.parent_span_id = Some(parent);
    let mut child = step(s, e);
    child.trace_id = Some(trace);
    let records = [ShipRecord::Execution(root), ShipRecord::Step(child)];
    let exports = finished(&records);
    let got = over_the_wire(&exports, T0);
    let [root, span] = spans(&got)[..] else {
        panic!("two spans");
    };
    assert_eq!(root.trace_id, trace.to_vec());
    assert_eq!(root.parent_span_id, parent.to_vec());
    assert_eq!(span.trace_id, trace.to_vec());
    assert_eq!(span.parent_span_id, e.as_bytes()[8..].to_vec());
}

#[test]
fn an_unfinished_span_ends_now_unset_and_flagged() {
    let mut running = step(uuid(9), uuid(10));
    running.status = StepStatus::Running;
    running.duration_us = None;
    let record = ShipRecord::Step(running);
    let now = T0 + 60_000_000;
    let got = over_the_wire(
        &[Export {
            record: &record,
            unfinished: true,
        }],
        now,
    );
    let span = spans(&got)[0];
    assert_eq!(span.end_time_unix_nano, now as u64 * 1_000);
    assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Unset as i32);
    assert_eq!(
        attr(&span.attributes, "xray.unfinished"),
        Some(&V::BoolValue(true))
    );
    assert_eq!(text(&span.attributes, "xray.status"), "running");
}

#[test]
fn projects_are_resources_of_their_own() {
    let mut other = execution(uuid(11));
    other.project = "books".into();
    let records = [
        ShipRecord::Execution(execution(uuid(12))),
        ShipRecord::Execution(other),
    ];
    let exports = finished(&records);
    let got = over_the_wire(&exports, T0);
    let names: Vec<String> = got
        .resource_spans
        .iter()
        .map(|r| text(&r.resource.as_ref().unwrap().attributes, "service.name"))
        .collect();
    assert_eq!(names, ["books", "shop"]);
}

#[test]
fn kinds_map_to_openinference_span_kinds() {
    for (kind, expected) in [
        (Some("llm"), "LLM"),
        (Some("retrieval"), "RETRIEVER"),
        (Some("tool"), "TOOL"),
        (Some("filter"), "CHAIN"),
        (Some("span"), "CHAIN"),
        (None, "CHAIN"),
    ] {
        assert_eq!(openinference_kind(kind), expected, "{kind:?}");
    }
}
