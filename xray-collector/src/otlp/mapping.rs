//! Outbox records as OTLP spans: the mapping of DESIGN.md ("Trace context
//! and OTLP export"), defined once here.
//!
//! - The execution is the root span of its trace (its parent the remote
//!   span it continues, if any); a step's parent is its enclosing step, or
//!   the execution. Ids: [`xray_outbox::trace`].
//! - Name: the step's (execution's) name. Kind: `INTERNAL`.
//! - Attributes: `input.value` / `output.value` (JSON text, with
//!   `*.mime_type = application/json`), `openinference.span.kind` (`LLM`
//!   for kind `llm`, `RETRIEVER` for `retrieval`, `TOOL` for `tool`, else
//!   `CHAIN`), `xray.kind`, `xray.status`, `xray.execution_id`,
//!   `xray.step_id`, `xray.attributes` (the step's attributes, JSON); for
//!   LLM usage, `gen_ai.request.model` and `llm.model_name` (the first
//!   call's model), `gen_ai.usage.input_tokens` / `output_tokens` and
//!   `llm.token_count.prompt` / `completion` / `total` (summed over the
//!   step's calls); an execution's metadata as `metadata` (JSON), its
//!   outcome as `output.value`.
//! - Status: `error`, `panicked`, `cancelled` → `ERROR` with the error
//!   text; `ok` → `OK`; a span exported before it ended → `UNSET`, with
//!   `xray.unfinished = true`.
//! - Each decision → an event `xray.decision` at the step's start, with
//!   `candidate_id`, `accepted` (when set), `filter`, `reason`, `score`.
//! - Resource (one per project): `service.name` and
//!   `openinference.project.name` = the project.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use xray_outbox::trace::derived_span_id;

use crate::model::{ExecutionRow, ExecutionStatus, ShipRecord, StepRow, StepStatus};

/// The instrumentation scope the spans are reported under.
pub const SCOPE: &str = "xray";

/// The name of a decision's span event.
pub const DECISION_EVENT: &str = "xray.decision";

/// A span to export: the record, and whether it is exported before it
/// ended (a start whose end has not come within the bound).
#[derive(Debug, Clone, Copy)]
pub struct Export<'a> {
    /// The record.
    pub record: &'a ShipRecord,
    /// Exported unfinished: ends at `now_us`, status unset, flagged.
    pub unfinished: bool,
}

/// The spans of `exports` as one OTLP request, grouped by project (one
/// resource each, in project order); `now_us` ends unfinished spans.
pub fn request(exports: &[Export<'_>], now_us: i64) -> ExportTraceServiceRequest {
    let mut by_project: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for export in exports {
        let (project, span) = match export.record {
            ShipRecord::Step(s) => (s.project.as_str(), step_span(s, export.unfinished, now_us)),
            ShipRecord::Execution(e) => (
                e.project.as_str(),
                execution_span(e, export.unfinished, now_us),
            ),
        };
        by_project.entry(project).or_default().push(span);
    }
    ExportTraceServiceRequest {
        resource_spans: by_project
            .into_iter()
            .map(|(project, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        string("service.name", project),
                        string("openinference.project.name", project),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE.to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

/// The OpenInference span kind of a step's `kind`.
pub fn openinference_kind(kind: Option<&str>) -> &'static str {
    match kind {
        Some("llm") => "LLM",
        Some("retrieval") => "RETRIEVER",
        Some("tool") => "TOOL",
        _ => "CHAIN",
    }
}

fn step_span(s: &StepRow, unfinished: bool, now_us: i64) -> Span {
    let parent = s.parent_id.unwrap_or(s.execution_id);
    let ended = s.duration_us.map(|d| s.started_at_us + d);
    let mut attributes = vec![
        string(
            "openinference.span.kind",
            openinference_kind(s.kind.as_deref()),
        ),
        string("xray.status", s.status.as_str()),
        string("xray.execution_id", &s.execution_id.to_string()),
        string("xray.step_id", &s.id.to_string()),
    ];
    if let Some(kind) = &s.kind {
        attributes.push(string("xray.kind", kind));
    }
    json_value(&mut attributes, "input", s.input.as_ref());
    json_value(&mut attributes, "output", s.output.as_ref());
    if let Some(a) = &s.attributes {
        attributes.push(string("xray.attributes", &a.to_string()));
    }
    if let Some(first) = s.llm_usage.first() {
        let prompt: i64 = s.llm_usage.iter().map(|u| u.prompt_tokens).sum();
        let completion: i64 = s.llm_usage.iter().map(|u| u.completion_tokens).sum();
        attributes.extend([
            string("gen_ai.request.model", &first.model),
            string("llm.model_name", &first.model),
            int("gen_ai.usage.input_tokens", prompt),
            int("gen_ai.usage.output_tokens", completion),
            int("llm.token_count.prompt", prompt),
            int("llm.token_count.completion", completion),
            int("llm.token_count.total", prompt + completion),
        ]);
    }
    let failed = matches!(
        s.status,
        StepStatus::Error | StepStatus::Panicked | StepStatus::Cancelled
    );
    let status = status(unfinished, failed, s.error.as_deref());
    if unfinished {
        attributes.push(boolean("xray.unfinished", true));
    }
    let start = nanos(s.started_at_us);
    Span {
        trace_id: s.trace_id().to_vec(),
        span_id: s.span_id().to_vec(),
        parent_span_id: derived_span_id(*parent.as_bytes()).to_vec(),
        name: s.name.clone(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end(start, ended.filter(|_| !unfinished), now_us),
        attributes,
        events: s
            .decisions
            .iter()
            .map(|d| {
                let mut attributes = vec![string("candidate_id", &d.candidate_id)];
                if let Some(accepted) = d.accepted {
                    attributes.push(boolean("accepted", accepted));
                }
                if let Some(filter) = &d.filter {
                    attributes.push(string("filter", filter));
                }
                if let Some(reason) = &d.reason {
                    attributes.push(string("reason", reason));
                }
                if let Some(score) = d.score {
                    attributes.push(double("score", score));
                }
                Event {
                    time_unix_nano: start,
                    name: DECISION_EVENT.to_owned(),
                    attributes,
                    dropped_attributes_count: 0,
                }
            })
            .collect(),
        status: Some(status),
        ..Default::default()
    }
}

fn execution_span(e: &ExecutionRow, unfinished: bool, now_us: i64) -> Span {
    let mut attributes = vec![
        string("openinference.span.kind", "CHAIN"),
        string("xray.status", e.status.as_str()),
        string("xray.execution_id", &e.id.to_string()),
    ];
    if let Some(m) = &e.metadata {
        attributes.push(string("metadata", &m.to_string()));
    }
    json_value(&mut attributes, "output", e.outcome.as_ref());
    if unfinished {
        attributes.push(boolean("xray.unfinished", true));
    }
    let start = nanos(e.started_at_us);
    Span {
        trace_id: e.trace_id().to_vec(),
        span_id: e.span_id().to_vec(),
        parent_span_id: e.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        name: e.name.clone(),
        kind: SpanKind::Internal as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end(start, e.ended_at_us.filter(|_| !unfinished), now_us),
        attributes,
        status: Some(status(
            unfinished,
            e.status == ExecutionStatus::Error,
            e.error.as_deref(),
        )),
        ..Default::default()
    }
}

fn status(unfinished: bool, failed: bool, error: Option<&str>) -> Status {
    let (code, message) = if unfinished {
        (StatusCode::Unset, String::new())
    } else if failed {
        (StatusCode::Error, error.unwrap_or_default().to_owned())
    } else {
        (StatusCode::Ok, String::new())
    };
    Status {
        message,
        code: code as i32,
    }
}

/// An end time: the record's, else (exported unfinished) now; never
/// before the start.
fn end(start: u64, ended_us: Option<i64>, now_us: i64) -> u64 {
    nanos(ended_us.unwrap_or(now_us)).max(start)
}

/// Microseconds since the epoch as OTLP's nanoseconds (0 before 1970).
fn nanos(us: i64) -> u64 {
    u64::try_from(us).unwrap_or(0).saturating_mul(1_000)
}

/// `<prefix>.value` (JSON text) and `<prefix>.mime_type`.
fn json_value(attributes: &mut Vec<KeyValue>, prefix: &str, value: Option<&serde_json::Value>) {
    if let Some(v) = value {
        attributes.push(string(&format!("{prefix}.value"), &v.to_string()));
        attributes.push(string(&format!("{prefix}.mime_type"), "application/json"));
    }
}

fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.to_owned()))
}

fn int(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

fn double(key: &str, value: f64) -> KeyValue {
    attribute(key, any_value::Value::DoubleValue(value))
}

fn boolean(key: &str, value: bool) -> KeyValue {
    attribute(key, any_value::Value::BoolValue(value))
}

#[cfg(test)]
mod tests;
