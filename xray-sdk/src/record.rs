//! The records the capture side hands to the outbox writer.
//!
//! A step or an execution produces a `Start` record when it begins (so a
//! process killed mid-run leaves it visible as `running`) and an `End`
//! record when it finishes. The `End` record is self-sufficient: it repeats
//! everything the `Start` record said, so a reader may merge the two by id,
//! and the writer may skip a `Start` whose `End` is in the same batch.

use std::borrow::Cow;
use std::sync::Arc;

use uuid::Uuid;

use crate::capture::Flags;
use crate::layer::{ExecCell, StepCell};

/// Whether a record opens or closes its step or execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Start,
    End,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::End => "end",
        }
    }
}

/// The status of a step (contract values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Started, not finished (yet, or ever: the process died).
    Running,
    /// Returned normally (`Ok` for a `Result`).
    Ok,
    /// Returned `Err`.
    Error,
    /// Panicked; the panic continued.
    Panicked,
    /// An async step whose future was dropped before it completed.
    Cancelled,
}

impl StepStatus {
    /// The contract's text for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Ok => "ok",
            StepStatus::Error => "error",
            StepStatus::Panicked => "panicked",
            StepStatus::Cancelled => "cancelled",
        }
    }
}

/// The status of an execution (contract values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionStatus {
    /// Started, not finished.
    Running,
    /// Finished without a panic or a failed top-level step.
    Ok,
    /// A step panicked, a top-level step failed, or the closure panicked.
    Error,
}

impl ExecutionStatus {
    /// The contract's text for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Ok => "ok",
            ExecutionStatus::Error => "error",
        }
    }
}

/// One decision taken inside a step about a candidate.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub candidate_id: String,
    /// `None` for a pure score.
    pub accepted: Option<bool>,
    pub filter: Option<String>,
    pub reason: Option<String>,
    pub score: Option<f64>,
}

/// Tokens used by one LLM call inside a step.
#[derive(Debug, Clone)]
pub(crate) struct LlmUsage {
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// An attribute: a key and its value as JSON text.
pub(crate) type Attribute = (Cow<'static, str>, String);

/// A step's record.
#[derive(Debug)]
pub(crate) struct StepRecord {
    pub phase: Phase,
    pub id: Uuid,
    pub execution_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub project: Arc<str>,
    pub name: Cow<'static, str>,
    pub kind: Option<&'static str>,
    pub status: StepStatus,
    pub input: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub attributes: Vec<Attribute>,
    pub decisions: Vec<Decision>,
    pub llm_usage: Vec<LlmUsage>,
    pub flags: Flags,
    pub started_at_us: i64,
    pub duration_us: Option<i64>,
}

/// An execution's record.
#[derive(Debug)]
pub(crate) struct ExecutionRecord {
    pub phase: Phase,
    pub id: Uuid,
    pub project: Arc<str>,
    pub name: Cow<'static, str>,
    pub status: ExecutionStatus,
    pub metadata: Vec<Attribute>,
    /// JSON object text.
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub started_at_us: i64,
    pub ended_at_us: Option<i64>,
}

/// What travels through the queue to the writer. A start travels as a
/// reference to its live cell, so the application's thread does not build a
/// row the writer will usually skip (its end is in the same batch).
pub(crate) enum Record {
    StepStart(Arc<StepCell>),
    ExecutionStart(Arc<ExecCell>),
    /// A step's end.
    Step(Box<StepRecord>),
    /// An execution's end.
    Execution(Box<ExecutionRecord>),
}

impl Record {
    /// Whether this record, if lost, loses a step (as counted in `Stats`).
    pub fn is_step_end(&self) -> bool {
        matches!(self, Record::Step(_))
    }

    /// Whether this is a `start` record (of a step or an execution).
    pub fn is_start(&self) -> bool {
        matches!(self, Record::StepStart(_) | Record::ExecutionStart(_))
    }
}

/// Microseconds since the Unix epoch.
pub(crate) fn now_us() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(_) => 0,
    }
}

/// A fresh UUIDv7: time-ordered, so ids sort by start time and index well.
pub(crate) fn new_id(now_us: i64) -> Uuid {
    let mut random = [0u8; 10];
    let r: u128 = fastrand::u128(..);
    random.copy_from_slice(&r.to_le_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis((now_us / 1000) as u64, &random).into_uuid()
}
