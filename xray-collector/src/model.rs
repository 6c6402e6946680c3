//! What the collector ships: outbox records turned into backend rows.
//!
//! An outbox row (format: the `xray-outbox` crate) is a `start` or an `end` of a
//! step or an execution. [`ShipRecord`] is one such row, parsed; the
//! backend upserts it by id, never letting a `start` (status `running`)
//! overwrite a row that already has its `end`. A step's decisions and LLM
//! usage travel inside its `end` row and become rows keyed by
//! `(step_id, ordinal)`, so re-shipping them changes nothing.

use serde_json::Value;
use uuid::Uuid;
use xray_outbox::trace;
pub use xray_outbox::trace::{SpanId, TraceId};
pub use xray_outbox::{ExecutionStatus, StepStatus};

/// One outbox row, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum ShipRecord {
    /// A step's start or end.
    Step(StepRow),
    /// An execution's start or end.
    Execution(ExecutionRow),
}

impl ShipRecord {
    /// The outbox sequence number the record came from.
    pub fn seq(&self) -> i64 {
        match self {
            ShipRecord::Step(s) => s.seq,
            ShipRecord::Execution(e) => e.seq,
        }
    }

    /// Whether the record is a start (its end is still to come).
    pub fn is_running(&self) -> bool {
        match self {
            ShipRecord::Step(s) => s.is_running(),
            ShipRecord::Execution(e) => e.is_running(),
        }
    }

    /// When the step or execution started, µs since the Unix epoch.
    pub fn started_at_us(&self) -> i64 {
        match self {
            ShipRecord::Step(s) => s.started_at_us,
            ShipRecord::Execution(e) => e.started_at_us,
        }
    }

    /// The id of the step or execution.
    pub fn id(&self) -> Uuid {
        match self {
            ShipRecord::Step(s) => s.id,
            ShipRecord::Execution(e) => e.id,
        }
    }

    /// The record's JSON form, kept in the dead-letter table when the
    /// backend refuses it.
    pub fn to_json(&self) -> Value {
        match self {
            ShipRecord::Step(s) => serde_json::json!({
                "record_type": "step", "seq": s.seq, "id": s.id, "execution_id": s.execution_id,
                "parent_id": s.parent_id, "project": s.project, "name": s.name, "kind": s.kind,
                "status": s.status.as_str(), "input": s.input, "output": s.output, "error": s.error,
                "attributes": s.attributes, "started_at_us": s.started_at_us, "duration_us": s.duration_us,
                "decisions": s.decisions.iter().map(|d| serde_json::json!({
                    "candidate_id": d.candidate_id, "accepted": d.accepted, "filter": d.filter,
                    "reason": d.reason, "score": d.score})).collect::<Vec<_>>(),
                "llm_usage": s.llm_usage.iter().map(|u| serde_json::json!({
                    "model": u.model, "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens})).collect::<Vec<_>>(),
                "trace_id": s.trace_id.map(|t| trace::hex(&t)), "reasoning": s.reasoning,
            }),
            ShipRecord::Execution(e) => serde_json::json!({
                "record_type": "execution", "seq": e.seq, "id": e.id, "project": e.project,
                "name": e.name, "status": e.status.as_str(), "metadata": e.metadata, "outcome": e.outcome,
                "error": e.error, "started_at_us": e.started_at_us, "ended_at_us": e.ended_at_us,
                "trace_id": e.trace_id.map(|t| trace::hex(&t)),
                "parent_span_id": e.parent_span_id.map(|s| trace::hex(&s)),
            }),
        }
    }
}

/// A step (contract table `xray.steps`), from one outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// Outbox sequence number.
    pub seq: i64,
    /// Step id.
    pub id: Uuid,
    /// Its execution.
    pub execution_id: Uuid,
    /// The enclosing step, if any.
    pub parent_id: Option<Uuid>,
    /// The execution's project (used when the execution row has not arrived).
    pub project: String,
    /// Step name.
    pub name: String,
    /// `kind = "…"` of the step, `span` for plain tracing spans.
    pub kind: Option<String>,
    /// `running | ok | error | panicked | cancelled`.
    pub status: StepStatus,
    /// Arguments, JSON.
    pub input: Option<Value>,
    /// Return value, JSON.
    pub output: Option<Value>,
    /// Error text.
    pub error: Option<String>,
    /// Attributes, a JSON object.
    pub attributes: Option<Value>,
    /// Start, microseconds since the Unix epoch.
    pub started_at_us: i64,
    /// Duration in microseconds; `None` while running.
    pub duration_us: Option<i64>,
    /// Decisions taken in the step (in order).
    pub decisions: Vec<Decision>,
    /// LLM token usage in the step (in order).
    pub llm_usage: Vec<LlmUsage>,
    /// The trace id its execution continues; `None` when derived from
    /// `execution_id` ([`xray_outbox::trace`]).
    pub trace_id: Option<TraceId>,
    /// An explanation of the step (`steps.reasoning`): none from an outbox
    /// (the collector's reasoner writes it), the earlier X-Ray's when
    /// imported. Writing `None` keeps what the row has.
    pub reasoning: Option<String>,
}

impl StepRow {
    /// Whether this row is a start (the step's end is still to come).
    pub fn is_running(&self) -> bool {
        self.status == StepStatus::Running
    }

    /// The step's span id (derived from its id).
    pub fn span_id(&self) -> SpanId {
        trace::derived_span_id(*self.id.as_bytes())
    }

    /// Its execution's trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
            .unwrap_or_else(|| trace::derived_trace_id(*self.execution_id.as_bytes()))
    }
}

/// One decision about a candidate (contract table `xray.decisions`), as the
/// outbox carries it.
pub use xray_outbox::Decision;
/// Tokens one LLM call used (contract table `xray.llm_usage`), as the
/// outbox carries it.
pub use xray_outbox::LlmUsage;

/// An execution (contract table `xray.executions`), from one outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRow {
    /// Outbox sequence number.
    pub seq: i64,
    /// Execution id.
    pub id: Uuid,
    /// Project.
    pub project: String,
    /// Execution name.
    pub name: String,
    /// `running | ok | error`.
    pub status: ExecutionStatus,
    /// Metadata, a JSON object.
    pub metadata: Option<Value>,
    /// Outcome summary, JSON.
    pub outcome: Option<Value>,
    /// Why the execution failed, when it did.
    pub error: Option<String>,
    /// Start, microseconds since the Unix epoch.
    pub started_at_us: i64,
    /// End, microseconds since the Unix epoch; `None` while running.
    pub ended_at_us: Option<i64>,
    /// The trace it continues; `None` when derived from `id`.
    pub trace_id: Option<TraceId>,
    /// Its remote parent span, when it continues a trace.
    pub parent_span_id: Option<SpanId>,
}

impl ExecutionRow {
    /// Whether this row is a start (the execution's end is still to come).
    pub fn is_running(&self) -> bool {
        self.status == ExecutionStatus::Running
    }

    /// Its span id (derived from its id).
    pub fn span_id(&self) -> SpanId {
        trace::derived_span_id(*self.id.as_bytes())
    }

    /// Its trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
            .unwrap_or_else(|| trace::derived_trace_id(*self.id.as_bytes()))
    }
}

/// Keeps, of several records with one id, the one a backend would end up
/// with (the `end` over the `start`, else the latest), in `seq` order. A
/// batch merged this way writes each id once.
pub fn merge_by_id(records: &[ShipRecord]) -> Vec<&ShipRecord> {
    use std::collections::HashMap;
    let mut chosen: HashMap<(bool, Uuid), usize> = HashMap::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let key = (matches!(r, ShipRecord::Step(_)), r.id());
        match chosen.get(&key) {
            Some(&prev) if !r.is_running() || records[prev].is_running() => {
                chosen.insert(key, i);
            }
            Some(_) => {}
            None => {
                chosen.insert(key, i);
            }
        }
    }
    let mut keep: Vec<usize> = chosen.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| &records[i]).collect()
}
