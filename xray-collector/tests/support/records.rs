//! The one set of fixtures the store and query suites build their records
//! from: a shop's `pick_competitor` execution and its steps.
//!
//! [`execution`] and [`step`] start from a finished (`ok`) row with
//! defaults; the setters change one thing each and keep the row
//! consistent (a `running` row has no end, output, decisions or usage —
//! a start carries none). [`filter_step`] is a step with a payload of every
//! kind. Times are off round numbers so that microseconds must survive.

use serde_json::{json, Value};
use uuid::Uuid;
use xray_collector::model::{
    Decision, ExecutionRow, ExecutionStatus, LlmUsage, ShipRecord, StepRow, StepStatus,
};

/// When the fixtures' executions start (µs since the epoch).
pub const T0: i64 = 1_700_000_000_123_456;
/// A millisecond, in µs.
pub const MS: i64 = 1_000;
/// How long a finished execution takes (µs).
pub const EXECUTION_TOOK_US: i64 = 5_000_007;

/// A fixed id, for tests that want to spell an order.
pub fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A random (v4-shaped) id.
pub fn new_id() -> Uuid {
    uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid()
}

/// An execution: finished `ok` at [`T0`] + [`EXECUTION_TOOK_US`], project
/// `shop`, name `pick_competitor`, metadata `{"sku": "A-1"}`, outcome
/// `{"picked": "c2"}`.
pub fn execution(id: Uuid) -> Execution {
    Execution(ExecutionRow {
        seq: 1,
        id,
        project: "shop".into(),
        name: "pick_competitor".into(),
        status: ExecutionStatus::Ok,
        metadata: Some(json!({"sku": "A-1"})),
        outcome: Some(json!({"picked": "c2"})),
        error: None,
        started_at_us: T0,
        ended_at_us: Some(T0 + EXECUTION_TOOK_US),
        trace_id: None,
        parent_span_id: None,
    })
}

/// An execution record being built (see [`execution`]).
#[derive(Debug, Clone)]
pub struct Execution(ExecutionRow);

impl Execution {
    /// `running` (a start: no end, no outcome), `ok`, or `error` (with the
    /// error `it broke`).
    pub fn status(mut self, status: &str) -> Self {
        let row = &mut self.0;
        let ended = status != "running";
        row.status = status.parse().expect("an execution status");
        row.outcome = ended.then(|| json!({"picked": "c2"}));
        row.error = (status == "error").then(|| "it broke".into());
        row.ended_at_us = ended.then_some(row.started_at_us + EXECUTION_TOOK_US);
        self
    }

    /// A start.
    pub fn running(self) -> Self {
        self.status("running")
    }

    /// Starts at `started_at_us` (the end moves with it).
    pub fn at(mut self, started_at_us: i64) -> Self {
        let row = &mut self.0;
        row.ended_at_us = row
            .ended_at_us
            .map(|end| end - row.started_at_us + started_at_us);
        row.started_at_us = started_at_us;
        self
    }

    pub fn project(mut self, project: &str) -> Self {
        self.0.project = project.into();
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.0.name = name.into();
        self
    }

    pub fn metadata(mut self, metadata: Option<Value>) -> Self {
        self.0.metadata = metadata;
        self
    }

    /// The outbox sequence number it came from.
    pub fn seq(mut self, seq: i64) -> Self {
        self.0.seq = seq;
        self
    }

    /// Continues the remote trace `trace_id` under the remote span `parent`.
    pub fn continues(mut self, trace_id: [u8; 16], parent: [u8; 8]) -> Self {
        self.0.trace_id = Some(trace_id);
        self.0.parent_span_id = Some(parent);
        self
    }

    pub fn record(self) -> ShipRecord {
        ShipRecord::Execution(self.0)
    }
}

/// A step of `execution_id`: finished `ok`, project `shop`, name
/// `filter_candidates`, started at [`T0`] + 1 ms, took 1 ms, no payload.
pub fn step(id: Uuid, execution_id: Uuid) -> Step {
    Step(StepRow {
        seq: 2,
        id,
        execution_id,
        parent_id: None,
        project: "shop".into(),
        name: "filter_candidates".into(),
        kind: None,
        status: StepStatus::Ok,
        input: None,
        output: None,
        error: None,
        attributes: None,
        started_at_us: T0 + MS,
        duration_us: Some(MS),
        decisions: Vec::new(),
        llm_usage: Vec::new(),
        trace_id: None,
        reasoning: None,
    })
}

/// A [`step`] of kind `filter` carrying a payload of every kind: input
/// `{"candidates": [...]}`, output `{"kept": ["c2"], "note": "walrus"}`,
/// attributes, two decisions (`c1` rejected as too expensive, `c2`
/// accepted with a score) and one LLM call (`gpt-x`, 120 + 30 tokens);
/// took 2.5 ms.
pub fn filter_step(id: Uuid, execution_id: Uuid) -> Step {
    step(id, execution_id)
        .kind("filter")
        .input(json!({"candidates": ["c1", "c2", "c3"]}))
        .output(json!({"kept": ["c2"], "note": "walrus"}))
        .attributes(json!({"threshold": 0.5}))
        .took(2_500)
        .decisions(vec![
            decision("c1", Some(false), "too expensive"),
            Decision {
                reason: None,
                score: Some(0.9),
                ..decision("c2", Some(true), "")
            },
        ])
        .usage(vec![usage("gpt-x", 120, 30)])
}

/// A step record being built (see [`step`]).
#[derive(Debug, Clone)]
pub struct Step(StepRow);

impl Step {
    /// With error text `error`.
    pub fn error(mut self, error: &str) -> Self {
        self.0.error = Some(error.into());
        self
    }

    /// With an explanation (`steps.reasoning`), as an import brings.
    pub fn reasoning(mut self, text: &str) -> Self {
        self.0.reasoning = Some(text.into());
        self
    }

    /// In the remote trace `trace_id` its execution continues.
    pub fn in_trace(mut self, trace_id: [u8; 16]) -> Self {
        self.0.trace_id = Some(trace_id);
        self
    }

    /// Any status; `running` makes it a start (see [`Step::running`]).
    pub fn status(mut self, status: &str) -> Self {
        if status == "running" {
            return self.running();
        }
        self.0.status = status.parse().expect("a step status");
        self
    }

    /// A start: no duration, output, decisions or usage.
    pub fn running(mut self) -> Self {
        let row = &mut self.0;
        row.status = StepStatus::Running;
        row.duration_us = None;
        row.output = None;
        row.decisions.clear();
        row.llm_usage.clear();
        self
    }

    /// Failed (`error`) with this error text.
    pub fn failed(mut self, error: &str) -> Self {
        self.0.status = StepStatus::Error;
        self.0.error = Some(error.into());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.0.name = name.into();
        self
    }

    pub fn kind(mut self, kind: &str) -> Self {
        self.0.kind = Some(kind.into());
        self
    }

    pub fn project(mut self, project: &str) -> Self {
        self.0.project = project.into();
        self
    }

    pub fn parent(mut self, parent: Uuid) -> Self {
        self.0.parent_id = Some(parent);
        self
    }

    /// Starts at `started_at_us`.
    pub fn at(mut self, started_at_us: i64) -> Self {
        self.0.started_at_us = started_at_us;
        self
    }

    /// Took `duration_us`.
    pub fn took(mut self, duration_us: i64) -> Self {
        self.0.duration_us = Some(duration_us);
        self
    }

    pub fn input(mut self, input: Value) -> Self {
        self.0.input = Some(input);
        self
    }

    pub fn output(mut self, output: Value) -> Self {
        self.0.output = Some(output);
        self
    }

    pub fn attributes(mut self, attributes: Value) -> Self {
        self.0.attributes = Some(attributes);
        self
    }

    pub fn decisions(mut self, decisions: Vec<Decision>) -> Self {
        self.0.decisions = decisions;
        self
    }

    pub fn usage(mut self, usage: Vec<LlmUsage>) -> Self {
        self.0.llm_usage = usage;
        self
    }

    /// The outbox sequence number it came from.
    pub fn seq(mut self, seq: i64) -> Self {
        self.0.seq = seq;
        self
    }

    pub fn record(self) -> ShipRecord {
        ShipRecord::Step(self.0)
    }
}

/// A decision by the `price` filter, unscored.
pub fn decision(candidate: &str, accepted: Option<bool>, reason: &str) -> Decision {
    Decision {
        candidate_id: candidate.into(),
        accepted,
        filter: Some("price".into()),
        reason: Some(reason.into()),
        score: None,
    }
}

pub fn usage(model: &str, prompt_tokens: i64, completion_tokens: i64) -> LlmUsage {
    LlmUsage {
        model: model.into(),
        prompt_tokens,
        completion_tokens,
    }
}
