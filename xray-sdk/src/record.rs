//! The records the capture side hands to the outbox writer.
//!
//! A step or an execution queues a `Start` record when it begins (so a
//! process killed mid-run leaves it visible as `running`), and its end when
//! it finishes: on that same record if the writer has not taken it yet (the
//! common case: see [`QueueSlot`]), else as an `End` record of its own. The
//! end row is self-sufficient: it repeats everything the start row said, so
//! a reader may merge the two by id, and the writer writes no start row for
//! a step whose end it already has.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU8, Ordering};
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

/// What travels through the queue to the writer: a reference to the live
/// step or execution, never a built row. The writer builds the rows, off the
/// application's thread.
pub(crate) enum Record {
    /// A step began. If the step ends before the writer takes this record,
    /// its end rides along (see [`QueueSlot`]) and no `StepEnd` is sent.
    StepStart(Arc<StepCell>),
    /// A step ended after the writer had taken its start (or its start was
    /// never queued).
    StepEnd(Arc<StepCell>),
    ExecutionStart(Arc<ExecCell>),
    ExecutionEnd(Arc<ExecCell>),
}

impl Record {
    /// Whether losing this record, as sent, loses a step (as counted in
    /// `Stats`). A start is not an end when sent: an end rides on it only
    /// once it is safely queued.
    pub fn is_step_end(&self) -> bool {
        matches!(self, Record::StepEnd(_))
    }

    /// Whether this is a `start` record (of a step or an execution).
    pub fn is_start(&self) -> bool {
        matches!(self, Record::StepStart(_) | Record::ExecutionStart(_))
    }
}

/// What the writer batches: a record turned, as it is taken from the queue,
/// into the row it stands for. An end is built into its row at once (it is
/// final); a start stays a reference and is built at commit time, or
/// skipped if its end has come by then.
pub(crate) enum Row {
    StepStart(Arc<StepCell>),
    ExecutionStart(Arc<ExecCell>),
    Step(StepRecord),
    Execution(ExecutionRecord),
}

impl Row {
    /// Takes `record` off the queue: settles with the application's thread
    /// whether an end rides on a start, and builds the end rows.
    pub fn take(record: Record) -> Row {
        match record {
            Record::StepStart(cell) => match cell.queue.take() {
                Taken::StartWithEnd => Row::Step(cell.end_record()),
                Taken::Start => Row::StepStart(cell),
            },
            Record::StepEnd(cell) => Row::Step(cell.end_record()),
            Record::ExecutionStart(cell) => match cell.queue.take() {
                Taken::StartWithEnd => Row::Execution(cell.end_record()),
                Taken::Start => Row::ExecutionStart(cell),
            },
            Record::ExecutionEnd(cell) => Row::Execution(cell.end_record()),
        }
    }

    /// Whether losing this row loses a step (as counted in `Stats`).
    pub fn is_step_end(&self) -> bool {
        matches!(self, Row::Step(_))
    }
}

const NOT_QUEUED: u8 = 0;
const START_QUEUED: u8 = 1;
const END_RIDES: u8 = 2;

/// Whether a step's (or execution's) `start` record is waiting in the queue,
/// and whether its end has been put on it.
///
/// Most steps end within the writer's flush interval, before the writer gets
/// to their start record. Such a step does not queue a second record: it
/// marks its start record as carrying the end, and the writer, taking the
/// record, writes the end row instead of the start row. The application's
/// thread and the writer settle it with one atomic each: the thread's
/// compare-exchange from "start queued" to "end rides", the writer's swap
/// back to "not queued". Whichever comes first decides: a thread that finds
/// the start already taken queues its end as a record of its own.
#[derive(Debug, Default)]
pub(crate) struct QueueSlot(AtomicU8);

/// What the writer found when it took a start record.
pub(crate) enum Taken {
    Start,
    StartWithEnd,
}

impl QueueSlot {
    /// Call before queueing the start record.
    pub fn start_queued(&self) {
        self.0.store(START_QUEUED, Ordering::Release);
    }

    /// The start record could not be queued (dropped).
    pub fn start_lost(&self) {
        self.0.store(NOT_QUEUED, Ordering::Release);
    }

    /// Puts the end on the queued start record; `false` when there is none
    /// (the writer took it, or it was never queued): queue the end then.
    pub fn ride(&self) -> bool {
        self.0
            .compare_exchange(START_QUEUED, END_RIDES, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The writer takes the start record off the queue.
    pub fn take(&self) -> Taken {
        match self.0.swap(NOT_QUEUED, Ordering::AcqRel) {
            END_RIDES => Taken::StartWithEnd,
            _ => Taken::Start,
        }
    }
}

/// A fresh UUIDv7: time-ordered, so ids sort by start time and index well.
pub(crate) fn new_id(now_us: i64) -> Uuid {
    let mut random = [0u8; 10];
    let r: u128 = fastrand::u128(..);
    random.copy_from_slice(&r.to_le_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis((now_us / 1000) as u64, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_end_rides_only_on_a_start_still_queued() {
        let slot = QueueSlot::default();
        assert!(!slot.ride(), "nothing queued: the end goes on its own");

        slot.start_queued();
        assert!(slot.ride(), "start queued: the end rides on it");
        assert!(matches!(slot.take(), Taken::StartWithEnd));
        assert!(!slot.ride(), "taken: nothing left to ride on");

        slot.start_queued();
        assert!(matches!(slot.take(), Taken::Start));
        assert!(!slot.ride(), "the writer took the start first");

        slot.start_queued();
        slot.start_lost();
        assert!(!slot.ride(), "a start that was dropped carries nothing");
    }
}
