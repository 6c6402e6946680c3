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
use crate::trace::{Remote, TraceId};

// The values the outbox format defines (`xray-outbox`): phases, the
// contract's statuses, decisions and LLM token usage.
pub(crate) use xray_outbox::{Decision, LlmUsage, Phase};
pub use xray_outbox::{ExecutionStatus, StepStatus};

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
    /// The remote trace its execution continues; `None`: derived.
    pub trace_id: Option<TraceId>,
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
    /// Listed in the metadata's `_xray_flags`.
    pub flags: Flags,
    /// JSON object text.
    pub outcome: Option<String>,
    pub error: Option<String>,
    pub started_at_us: i64,
    pub ended_at_us: Option<i64>,
    /// The remote trace it continues; `None`: its own, derived.
    pub remote: Option<Remote>,
}
