//! The live state of what X-Ray records: an execution ([`ExecCell`]) or a
//! step ([`StepCell`]) from its start until its end row is built, what the
//! layer keeps per span ([`SpanState`]), and the pipeline the cells report
//! to ([`Shared`]).
//!
//! A cell is shared (`Arc`) by the span that records it, by the code that
//! runs it (`#[xray::step]`, `xray::execution`) and by the outbox writer:
//! only a reference travels through the queue ([`Record`]), and the writer
//! builds the rows, off the application's thread. [`Shared`] lives here
//! because it and the cells refer to each other: a cell holds its pipeline
//! and queues itself on it.
//!
//! # Invariants
//!
//! - **Finished once.** A step's `finished` flag is set once, under its data
//!   lock; what is recorded into the step after that (decisions, attributes,
//!   events) is ignored. An execution has finished when its end is set,
//!   also once, under its lock.
//! - **Counted once.** A step is counted as captured when it finishes; its
//!   end then rides on its queued start record or is queued on its own (see
//!   [`QueueSlot`]), and a record the queue cannot take is counted there.
//! - **Ends are built once.** The end row moves the captured values out of
//!   the cell. A start row is built only while the cell has not finished:
//!   after that the end row says everything.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use parking_lot::Mutex;
use uuid::Uuid;

use crate::capture::{keyed_json, push_json_str, Flags, SinkLimits};
use crate::clock::start_time;
use crate::config::RuntimeConfig;
use crate::id::new_id;
use crate::queue::{Queue, QueueSlot, QueuedRecord};
use crate::record::{
    Attribute, Decision, ExecutionRecord, ExecutionStatus, LlmUsage, Phase, StepRecord, StepStatus,
};
use crate::stats::Counters;
use crate::trace::{Remote, TraceId};

/// Most events kept per step (the rest are counted, in `events_dropped`).
const MAX_EVENTS: usize = 64;
/// Most decisions (accept, reject, score) kept per step; the rest are
/// counted in the `decisions_dropped` attribute and flagged `capped`.
pub(crate) const MAX_DECISIONS: usize = 10_000;
/// Most `xray::reason` texts kept per step (the rest: `reasons_dropped`).
pub(crate) const MAX_REASONS: usize = 256;
/// Most attributes kept per step, from `xray::attr` and span fields (the
/// rest: `attributes_dropped`).
pub(crate) const MAX_ATTRIBUTES: usize = 1024;
/// Most LLM calls kept per step (the rest: `llm_usage_dropped`).
pub(crate) const MAX_LLM_CALLS: usize = 1024;
/// Most bytes of a candidate id, a filter name or a model name.
pub(crate) const MAX_ID_BYTES: usize = 1024;

/// The pipeline as the capture side sees it: its settings, its counters and
/// the sending half of its queue. Shared by its layer, its cells and its
/// guard.
pub(crate) struct Shared {
    pub config: RuntimeConfig,
    pub counters: Arc<Counters>,
    pub queue: Queue<Record>,
}

impl Shared {
    pub fn sink_limits(&self) -> SinkLimits<'_> {
        SinkLimits {
            max_bytes: self.config.max_payload_bytes,
            redactor: &self.config.redactor,
        }
    }

    /// Hands a record to the writer (see [`Queue::send`]): `false` when it
    /// was dropped, and counted.
    pub fn send(&self, record: Record) -> bool {
        self.queue.send(record, &self.counters)
    }

    /// Whether an execution starting now is recorded.
    pub fn sample(&self) -> bool {
        let rate = self.config.sample_rate;
        rate >= 1.0 || (rate > 0.0 && fastrand::f64() < rate)
    }
}

/// What travels through the queue to the writer: a reference to the live
/// step or execution, never a built row.
///
/// A step or an execution queues a start record when it begins (so a
/// process killed mid-run leaves it visible as `running`), and its end when
/// it finishes: on that same record if the writer has not taken it yet (the
/// common case, see [`QueueSlot`]), else as an end record of its own.
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

impl QueuedRecord for Record {
    /// A start is not an end when sent: an end rides on it only once it is
    /// safely queued.
    fn is_step_end(&self) -> bool {
        matches!(self, Record::StepEnd(_))
    }

    fn is_start(&self) -> bool {
        matches!(self, Record::StepStart(_) | Record::ExecutionStart(_))
    }
}

/// What a step returned, as captured: its output, or its error (an `Err`
/// return), and the flags raised capturing it.
#[derive(Default)]
pub(crate) struct Returned {
    pub output: Option<String>,
    pub error: Option<String>,
    pub flags: Flags,
}

/// What the layer knows about one span.
#[derive(Clone)]
pub(crate) enum SpanState {
    Execution(Arc<ExecCell>),
    Step(Arc<StepCell>),
    Unsampled,
}

/// What a span's extensions hold: its [`SpanState`], tagged with the layer
/// that recorded it. Extensions are keyed by type, so a span can hold one of
/// these whatever the number of X-Ray layers in its subscriber: the first
/// layer to see the span records it, and every other ignores it.
pub(crate) struct Recorded {
    pub layer: u64,
    pub state: SpanState,
}

/// A recorded execution.
pub(crate) struct ExecCell {
    pub id: Uuid,
    pub name: Cow<'static, str>,
    pub shared: Arc<Shared>,
    started_at_us: i64,
    start: Instant,
    /// A step panicked or a top-level step failed.
    failed: AtomicBool,
    steps: AtomicU64,
    failed_steps: AtomicU64,
    /// Whether its start record is queued and its end rides on it.
    pub queue: QueueSlot,
    /// The remote trace it continues, set (once) before its start is
    /// queued; unset, its trace id is derived from its id.
    remote: OnceLock<Remote>,
    state: Mutex<ExecData>,
}

#[derive(Default)]
struct ExecData {
    metadata: Vec<Attribute>,
    /// What its metadata was stored with (`malformed_traceparent`).
    flags: Flags,
    /// Set when it finishes (once); the writer builds the end row from it.
    end: Option<ExecEnd>,
}

/// How an execution ended, as its end row will say.
struct ExecEnd {
    status: ExecutionStatus,
    steps: u64,
    failed_steps: u64,
    error: Option<String>,
    ended_at_us: i64,
}

impl ExecCell {
    // Inline: the layer, in another module (so another codegen unit), calls
    // it for every span it records, and out of line it measured as a call
    // and a move of the whole cell (about 25 instructions a step, callgrind).
    #[inline]
    pub fn new(name: Cow<'static, str>, shared: Arc<Shared>) -> Arc<ExecCell> {
        let (start, started_at_us) = start_time();
        shared.counters.executions.fetch_add(1, Ordering::Relaxed);
        Arc::new(ExecCell {
            id: new_id(started_at_us),
            name,
            shared,
            started_at_us,
            start,
            failed: AtomicBool::new(false),
            steps: AtomicU64::new(0),
            failed_steps: AtomicU64::new(0),
            queue: QueueSlot::default(),
            remote: OnceLock::new(),
            state: Mutex::new(ExecData::default()),
        })
    }

    pub fn add_metadata(&self, key: Cow<'static, str>, json: String) {
        self.state.lock().metadata.push((key, json));
    }

    /// Makes the execution continue `remote`'s trace; called before
    /// [`begin`](Self::begin), so every record of it and its steps says so.
    pub fn continue_trace(&self, remote: Remote) {
        let _ = self.remote.set(remote);
    }

    /// Flags the execution's metadata (e.g. a malformed `traceparent`).
    pub fn flag(&self, flags: Flags) {
        self.state.lock().flags.merge(flags);
    }

    /// The remote trace it continues, if any.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.get()
    }

    /// Its trace id (derived from its id unless it continues a trace).
    pub fn trace_id(&self) -> TraceId {
        crate::trace::trace_id(self.id, self.remote())
    }

    fn record(&self, phase: Phase, data: &ExecData) -> ExecutionRecord {
        let (status, outcome, error, ended_at_us) = match (&data.end, phase) {
            (Some(end), Phase::End) => {
                let mut outcome = format!(
                    "{{\"steps\":{},\"failed_steps\":{}",
                    end.steps, end.failed_steps
                );
                // A panic message is free text: redacted like a step's error.
                let error = end.error.as_ref().map(|e| {
                    self.shared
                        .config
                        .redactor
                        .redact_text(e)
                        .unwrap_or_else(|| e.clone())
                });
                if let Some(e) = &error {
                    outcome.push_str(",\"error\":");
                    push_json_str(&mut outcome, e);
                }
                outcome.push('}');
                (end.status, Some(outcome), error, Some(end.ended_at_us))
            }
            _ => (ExecutionStatus::Running, None, None, None),
        };
        ExecutionRecord {
            phase,
            id: self.id,
            project: self.shared.config.project.clone(),
            name: self.name.clone(),
            status,
            metadata: data.metadata.clone(),
            flags: data.flags,
            outcome,
            error,
            started_at_us: self.started_at_us,
            ended_at_us,
            remote: self.remote().copied(),
        }
    }

    /// Queues the `start` record. Only a reference travels: the writer
    /// builds the row, off the application's thread.
    pub fn begin(self: &Arc<Self>) {
        self.queue.start_queued();
        if !self.shared.send(Record::ExecutionStart(self.clone())) {
            self.queue.start_lost();
        }
    }

    /// The `start` row, built by the writer; `None` once the execution has
    /// finished (its `end` row says everything).
    pub(crate) fn start_record(&self) -> Option<ExecutionRecord> {
        let state = self.state.lock();
        state
            .end
            .is_none()
            .then(|| self.record(Phase::Start, &state))
    }

    /// The `end` row, built by the writer once the execution has finished.
    pub(crate) fn end_record(&self) -> ExecutionRecord {
        self.record(Phase::End, &self.state.lock())
    }

    /// Ends the execution, once, and queues its end (on its start record
    /// when that is still queued). `error` is the reason the execution
    /// itself failed (its closure panicked, its future was dropped).
    pub fn finish(self: &Arc<Self>, error: Option<String>) {
        {
            let mut state = self.state.lock();
            if state.end.is_some() {
                return;
            }
            let failed = error.is_some() || self.failed.load(Ordering::Relaxed);
            state.end = Some(ExecEnd {
                status: if failed {
                    ExecutionStatus::Error
                } else {
                    ExecutionStatus::Ok
                },
                steps: self.steps.load(Ordering::Relaxed),
                failed_steps: self.failed_steps.load(Ordering::Relaxed),
                error,
                ended_at_us: self.started_at_us + self.start.elapsed().as_micros() as i64,
            });
        }
        if !self.queue.ride() {
            self.shared.send(Record::ExecutionEnd(self.clone()));
        }
    }
}

/// A recorded step (a `#[xray::step]` call or a plain span in an execution).
pub(crate) struct StepCell {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub exec: Arc<ExecCell>,
    name: Cow<'static, str>,
    /// Whether this step opened an implicit execution that ends with it.
    owns_execution: bool,
    started_at_us: i64,
    start: Instant,
    /// Whether its start record is queued and its end rides on it.
    pub queue: QueueSlot,
    /// Whether it has finished. Set under the `data` lock, so exact when
    /// read under it; a hint when read without.
    finished: AtomicBool,
    data: Mutex<StepData>,
}

#[derive(Default)]
struct StepData {
    /// Set when it finishes, for the end row the writer builds.
    status: Option<StepStatus>,
    duration_us: Option<i64>,
    kind: Option<&'static str>,
    input: Option<String>,
    output: Option<String>,
    error: Option<String>,
    attributes: Vec<Attribute>,
    decisions: Vec<Decision>,
    /// What fewer steps have, boxed so that a step without them (most) is
    /// smaller while it waits in the queue.
    extra: Option<Box<StepExtra>>,
    flags: Flags,
    panicked_on_exit: bool,
}

#[derive(Default)]
struct StepExtra {
    /// Set by an ERROR event carrying an `error` field (`#[instrument(err)]`).
    event_error: Option<String>,
    llm_usage: Vec<LlmUsage>,
    events: Vec<String>,
    events_dropped: usize,
    reasons: Vec<String>,
    /// What was recorded past a cap, not kept.
    decisions_dropped: usize,
    reasons_dropped: usize,
    attributes_dropped: usize,
    llm_usage_dropped: usize,
}

impl StepData {
    fn extra(&mut self) -> &mut StepExtra {
        self.extra.get_or_insert_with(Box::default)
    }
}

impl StepCell {
    // Inline, for the same reason as `ExecCell::new`.
    #[inline]
    pub fn new(
        name: Cow<'static, str>,
        parent_id: Option<Uuid>,
        exec: Arc<ExecCell>,
        owns_execution: bool,
    ) -> Arc<StepCell> {
        let (start, started_at_us) = start_time();
        Arc::new(StepCell {
            id: new_id(started_at_us),
            parent_id,
            exec,
            name,
            owns_execution,
            started_at_us,
            start,
            queue: QueueSlot::default(),
            finished: AtomicBool::new(false),
            data: Mutex::new(StepData::default()),
        })
    }

    fn record(&self, phase: Phase, data: &mut StepData) -> StepRecord {
        let status = match phase {
            Phase::End => data.status.unwrap_or(StepStatus::Ok),
            Phase::Start => StepStatus::Running,
        };
        let mut flags = data.flags;
        let (output, error, attributes, decisions, llm_usage) = if phase == Phase::End {
            // Free text is redacted here, on the writer's thread, rather than
            // where it was recorded: a filter step records many reasons.
            let redactor = &self.exec.shared.config.redactor;
            let mut redact = |text: &mut String| {
                if let Some(redacted) = redactor.redact_text(text) {
                    *text = redacted;
                    flags.redacted = true;
                }
            };
            let mut attributes = std::mem::take(&mut data.attributes);
            let mut extra = data.extra.take().map(|e| *e).unwrap_or_default();
            if !extra.reasons.is_empty() {
                extra.reasons.iter_mut().for_each(&mut redact);
                attributes.push((Cow::Borrowed("reasons"), json_string_array(&extra.reasons)));
            }
            if !extra.events.is_empty() {
                attributes.push((
                    Cow::Borrowed("events"),
                    format!("[{}]", extra.events.join(",")),
                ));
            }
            for (name, count) in [
                ("events_dropped", extra.events_dropped),
                ("decisions_dropped", extra.decisions_dropped),
                ("reasons_dropped", extra.reasons_dropped),
                ("attributes_dropped", extra.attributes_dropped),
                ("llm_usage_dropped", extra.llm_usage_dropped),
            ] {
                if count > 0 {
                    attributes.push((Cow::Borrowed(name), count.to_string()));
                }
            }
            let mut decisions = std::mem::take(&mut data.decisions);
            for decision in &mut decisions {
                if let Some(reason) = &mut decision.reason {
                    redact(reason);
                }
            }
            let mut error = data.error.take().or(extra.event_error);
            if let Some(error) = &mut error {
                redact(error);
            }
            (
                data.output.take(),
                error,
                attributes,
                decisions,
                extra.llm_usage,
            )
        } else {
            (None, None, data.attributes.clone(), Vec::new(), Vec::new())
        };
        StepRecord {
            phase,
            id: self.id,
            execution_id: self.exec.id,
            parent_id: self.parent_id,
            project: self.exec.shared.config.project.clone(),
            name: self.name.clone(),
            kind: data.kind,
            status,
            // The end row is the last use of the input (a start row is no
            // longer built once the step has finished), so it moves out;
            // a start row, built on the writer's thread, copies it there.
            input: if phase == Phase::End {
                data.input.take()
            } else {
                data.input.clone()
            },
            output,
            error,
            attributes,
            decisions,
            llm_usage,
            flags,
            started_at_us: self.started_at_us,
            duration_us: if phase == Phase::End {
                data.duration_us
            } else {
                None
            },
            trace_id: self.exec.remote().map(|r| r.trace_id),
        }
    }

    /// Records the step's kind and inputs and queues its `start` record
    /// (only a reference travels; the writer builds the row).
    pub fn begin(
        self: &Arc<Self>,
        kind: Option<&'static str>,
        input: Option<String>,
        flags: Flags,
    ) {
        {
            let mut data = self.data.lock();
            data.kind = kind;
            data.input = input;
            data.flags.merge(flags);
        }
        self.queue_start();
    }

    /// Queues the `start` record (a reference: the writer builds the row).
    fn queue_start(self: &Arc<Self>) {
        self.queue.start_queued();
        if !self.exec.shared.send(Record::StepStart(self.clone())) {
            self.queue.start_lost();
        }
    }

    /// The `start` row, built by the writer; `None` once the step has
    /// finished (its `end` row says everything).
    pub(crate) fn start_record(&self) -> Option<StepRecord> {
        let mut data = self.data.lock();
        if self.is_finished() {
            return None;
        }
        Some(self.record(Phase::Start, &mut data))
    }

    /// The `end` row, built by the writer once the step has finished. Moves
    /// the captured values out: it is built once.
    pub(crate) fn end_record(&self) -> StepRecord {
        self.record(Phase::End, &mut self.data.lock())
    }

    /// Ends the step, once: with `outcome` when it did not return normally
    /// (panicked, cancelled), else ok or error from what was recorded.
    pub fn finish(self: &Arc<Self>, outcome: Option<(StepStatus, String)>) {
        self.finish_with(outcome, None);
    }

    /// Ends a step that returned, with what it returned (its output, or its
    /// error for an `Err`): ok or error.
    pub fn returned(self: &Arc<Self>, output: Returned) {
        self.finish_with(None, Some(output));
    }

    fn finish_with(
        self: &Arc<Self>,
        outcome: Option<(StepStatus, String)>,
        returned: Option<Returned>,
    ) {
        {
            let mut data = self.data.lock();
            if self.is_finished() {
                return;
            }
            self.finished.store(true, Ordering::Relaxed);
            if let Some(returned) = returned {
                data.output = returned.output;
                data.error = returned.error;
                data.flags.merge(returned.flags);
            }
            let status = match outcome {
                Some((status, message)) => {
                    data.error = Some(message);
                    status
                }
                None if data.panicked_on_exit => {
                    data.error.get_or_insert_with(|| "panicked".to_owned());
                    StepStatus::Panicked
                }
                None if data.error.is_some()
                    || data.extra.as_ref().is_some_and(|e| e.event_error.is_some()) =>
                {
                    StepStatus::Error
                }
                None => StepStatus::Ok,
            };
            let exec = &self.exec;
            exec.steps.fetch_add(1, Ordering::Relaxed);
            if status != StepStatus::Ok {
                exec.failed_steps.fetch_add(1, Ordering::Relaxed);
            }
            if status == StepStatus::Panicked
                || (self.parent_id.is_none() && status != StepStatus::Ok)
            {
                exec.failed.store(true, Ordering::Relaxed);
            }
            data.status = Some(status);
            data.duration_us = Some(self.start.elapsed().as_micros() as i64);
        }
        let shared = &self.exec.shared;
        shared.counters.captured.fetch_add(1, Ordering::Relaxed);
        if !self.queue.ride() {
            shared.send(Record::StepEnd(self.clone()));
        }
        if self.owns_execution {
            self.exec.finish(None);
        }
    }

    /// Whether the step has finished (exact under the `data` lock).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Relaxed)
    }

    fn with_data(&self, f: impl FnOnce(&mut StepData)) {
        let mut data = self.data.lock();
        if !self.is_finished() {
            f(&mut data);
        }
    }
}

fn json_string_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(&mut out, item);
    }
    out.push(']');
    out
}

// What is recorded into a step while it runs. The `#[inline]` ones are most
// of a `Layer` callback, which is generic and so compiled in the
// application's crate: inlined, they stay there rather than add a call.
impl StepCell {
    /// Begins a plain `tracing` span's step, whose fields are its
    /// attributes, and queues its `start` record. (A `#[xray::step]` begins
    /// in [`StepCell::begin`] once its inputs are captured.)
    pub fn begin_span(self: &Arc<Self>, attributes: Vec<Attribute>, flags: Flags) {
        {
            let mut data = self.data.lock();
            data.kind = Some("span");
            data.flags.merge(flags);
            data.attributes = attributes;
        }
        self.queue_start();
    }

    /// Adds fields recorded on the step's span after it was created.
    #[inline]
    pub fn add_fields(&self, attributes: Vec<Attribute>, flags: Flags) {
        self.with_data(|d| {
            d.flags.merge(flags);
            for attribute in attributes {
                push_capped(d, attribute);
            }
        });
    }

    /// Adds an event (its JSON object text), up to [`MAX_EVENTS`]; `error`
    /// is the JSON of the `error` field of an ERROR event, which makes the
    /// step fail unless it returns an error of its own.
    #[inline]
    pub fn event(&self, text: String, error: Option<String>, flags: Flags) {
        self.with_data(|d| {
            d.flags.merge(flags);
            let extra = d.extra();
            let kept = push_within(&mut extra.events, MAX_EVENTS, text);
            extra.events_dropped += usize::from(!kept);
            if let Some(e) = error {
                let e = serde_json::from_str::<String>(&e).unwrap_or(e);
                extra.event_error = Some(e);
            }
            d.flags.capped |= !kept;
        });
    }

    /// The thread left the step's span unwinding: unless the step records
    /// another outcome first, it panicked.
    #[inline]
    pub fn panicked_on_exit(&self) {
        self.with_data(|d| d.panicked_on_exit = true);
    }

    /// Adds a decision, up to [`MAX_DECISIONS`]; `flags` are those raised
    /// taking its text.
    pub fn decide(&self, decision: Decision, flags: Flags) {
        self.with_data(|d| {
            d.flags.merge(flags);
            if !push_within(&mut d.decisions, MAX_DECISIONS, decision) {
                d.extra().decisions_dropped += 1;
                d.flags.capped = true;
            }
        });
    }

    /// Adds a free-text reason, up to [`MAX_REASONS`].
    pub fn reason(&self, text: String, flags: Flags) {
        self.with_data(|d| {
            d.flags.merge(flags);
            let extra = d.extra();
            let kept = push_within(&mut extra.reasons, MAX_REASONS, text);
            extra.reasons_dropped += usize::from(!kept);
            d.flags.capped |= !kept;
        });
    }

    /// Adds one LLM call's usage, up to [`MAX_LLM_CALLS`].
    pub fn llm_usage(&self, usage: LlmUsage, flags: Flags) {
        self.with_data(|d| {
            d.flags.merge(flags);
            let extra = d.extra();
            let kept = push_within(&mut extra.llm_usage, MAX_LLM_CALLS, usage);
            extra.llm_usage_dropped += usize::from(!kept);
            d.flags.capped |= !kept;
        });
    }

    /// Adds an attribute; a secret key gets the redaction marker.
    pub fn attr<T: serde::Serialize + ?Sized>(&self, key: &str, value: &T) {
        if self.is_finished() {
            return;
        }
        let limits = self.exec.shared.sink_limits();
        let (json, flags) = keyed_json(key, limits, |sink| sink.serialize(value));
        if let Some(json) = json {
            self.with_data(|d| {
                d.flags.merge(flags);
                push_capped(d, (Cow::Owned(key.to_owned()), json));
            });
        }
    }
}

/// Adds an attribute to a step, up to [`MAX_ATTRIBUTES`].
fn push_capped(d: &mut StepData, attribute: Attribute) {
    if !push_within(&mut d.attributes, MAX_ATTRIBUTES, attribute) {
        d.extra().attributes_dropped += 1;
        d.flags.capped = true;
    }
}

/// Pushes `item` unless `items` already holds `cap` of them: whether it was
/// kept (the caller counts what was not).
fn push_within<T>(items: &mut Vec<T>, cap: usize, item: T) -> bool {
    let kept = items.len() < cap;
    if kept {
        items.push(item);
    }
    kept
}
