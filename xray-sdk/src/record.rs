//! The rows the outbox writer writes, as plain data: a step's or an
//! execution's record (one per phase) and the values inside them (statuses,
//! decisions, LLM token usage, attributes as JSON text).
//!
//! Nothing here knows how values are captured or queued: the cells
//! (`crate::cell`) build these records, the writer writes them. An `End`
//! record is self-sufficient: it repeats everything its `Start` said, so a
//! reader may merge the two by id, and a writer may omit a start whose end
//! it already has.

use std::borrow::Cow;
use std::sync::Arc;

use uuid::Uuid;

use crate::capture::Flags;

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
