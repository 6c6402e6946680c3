//! The `tracing` layer: turns spans into steps and executions.
//!
//! Every span the layer records gets a [`SpanState`] in its extensions when
//! it is created, found by walking up to the nearest recorded ancestor:
//!
//! - an `xray::execution(..)` span starts an execution (sampled once, here);
//! - a `#[xray::step]` span becomes a step of the ancestor's execution, or
//!   starts an *implicit* execution named after it when there is none;
//! - a plain `tracing` span becomes a step only inside an execution (its
//!   fields become attributes); outside one it is ignored;
//! - inside an execution that was not sampled, spans are marked
//!   [`SpanState::Unsampled`] so nothing below them records either.
//!
//! Because state hangs off the span tree, nesting follows tracing's own
//! propagation: `.instrument(span)`, `span.in_scope(..)` and
//! `Span::current()` carry the execution across tasks and threads.
//!
//! Each callback is cheap and cannot panic into the application; a span the
//! layer does not record costs one extension lookup per ancestor.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use uuid::Uuid;

use crate::capture::{keyed_json, push_json_str, Flags};
use crate::clock::start_time;
use crate::pipeline::Shared;
use crate::record::{
    new_id, Attribute, Decision, ExecutionRecord, ExecutionStatus, LlmUsage, Phase, QueueSlot,
    Record, StepRecord, StepStatus,
};

/// The name of the span `xray::execution(..)` opens.
pub(crate) const EXECUTION_SPAN: &str = "xray.execution";
/// The field that marks a span as an execution span.
pub(crate) const EXECUTION_FIELD: &str = "xray.execution";
/// The field that marks a span as a `#[xray::step]` span.
pub(crate) const STEP_FIELD: &str = "xray.step";

/// Most events kept per step (the rest are counted).
const MAX_EVENTS: usize = 64;

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
    state: Mutex<ExecData>,
}

#[derive(Default)]
struct ExecData {
    metadata: Vec<Attribute>,
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
    fn new(name: Cow<'static, str>, shared: Arc<Shared>) -> Arc<ExecCell> {
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
            state: Mutex::new(ExecData::default()),
        })
    }

    pub fn add_metadata(&self, key: Cow<'static, str>, json: String) {
        self.state.lock().metadata.push((key, json));
    }

    fn record(&self, phase: Phase, data: &ExecData) -> ExecutionRecord {
        let (status, outcome, error, ended_at_us) = match (&data.end, phase) {
            (Some(end), Phase::End) => {
                let mut outcome = format!(
                    "{{\"steps\":{},\"failed_steps\":{}",
                    end.steps, end.failed_steps
                );
                if let Some(e) = &end.error {
                    outcome.push_str(",\"error\":");
                    push_json_str(&mut outcome, e);
                }
                outcome.push('}');
                (
                    end.status,
                    Some(outcome),
                    end.error.clone(),
                    Some(end.ended_at_us),
                )
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
            outcome,
            error,
            started_at_us: self.started_at_us,
            ended_at_us,
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
}

impl StepData {
    fn extra(&mut self) -> &mut StepExtra {
        self.extra.get_or_insert_with(Box::default)
    }
}

impl StepCell {
    fn new(
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
        let (output, error, attributes, decisions, llm_usage) = if phase == Phase::End {
            let mut attributes = std::mem::take(&mut data.attributes);
            let extra = data.extra.take().map(|e| *e).unwrap_or_default();
            if !extra.reasons.is_empty() {
                attributes.push((Cow::Borrowed("reasons"), json_string_array(&extra.reasons)));
            }
            if !extra.events.is_empty() {
                attributes.push((
                    Cow::Borrowed("events"),
                    format!("[{}]", extra.events.join(",")),
                ));
            }
            if extra.events_dropped > 0 {
                attributes.push((
                    Cow::Borrowed("events_dropped"),
                    extra.events_dropped.to_string(),
                ));
            }
            (
                data.output.take(),
                data.error.take().or(extra.event_error),
                attributes,
                std::mem::take(&mut data.decisions),
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
            flags: data.flags,
            started_at_us: self.started_at_us,
            duration_us: if phase == Phase::End {
                data.duration_us
            } else {
                None
            },
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
    fn is_finished(&self) -> bool {
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

thread_local! {
    /// The spans with a [`SpanState`] this thread is inside, innermost last.
    /// Maintained by `on_enter`/`on_exit`; read by `accept`, `reject` and
    /// friends, and by `on_new_span` to find a new span's parent state
    /// without a lookup.
    static CURRENT: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };

    /// The step `on_new_span` just made for a `#[xray::step]` span, taken
    /// at once by `Step::start` (which would otherwise look it up through
    /// the dispatcher and the span's extensions).
    static NEW_STEP: Cell<Option<(Id, Arc<StepCell>)>> = const { Cell::new(None) };

    /// The step whose span this thread is entering, for `on_enter` (which
    /// would otherwise look it up in the span's extensions).
    static ENTERING: Cell<Option<(Id, Arc<StepCell>)>> = const { Cell::new(None) };
}

/// Enters the span of a recorded step, handing its cell to `on_enter`.
pub(crate) fn enter_step<'a>(
    span: &'a tracing::Span,
    cell: &Arc<StepCell>,
) -> tracing::span::Entered<'a> {
    let handed = span
        .id()
        .and_then(|id| {
            ENTERING
                .try_with(|slot| slot.set(Some((id, cell.clone()))))
                .ok()
        })
        .is_some();
    let entered = span.enter();
    if handed {
        // Not taken when the span's subscriber has no X-Ray layer.
        let _ = ENTERING.try_with(Cell::take);
    }
    entered
}

/// An entry of [`CURRENT`].
struct Entered {
    /// The layer that recorded it: span ids are only unique within one
    /// subscriber, and a thread may switch between subscribers.
    layer: *const (),
    id: Id,
    state: SpanState,
}

/// The state of the innermost recorded span this thread is inside.
fn innermost() -> Option<SpanState> {
    CURRENT
        .try_with(|stack| stack.borrow().last().map(|e| e.state.clone()))
        .ok()
        .flatten()
}

/// Runs `f` on the step this thread is in (the innermost recorded span,
/// when it is a step).
pub(crate) fn with_current_step(f: impl FnOnce(&Arc<StepCell>)) {
    if !crate::pipeline::is_active() {
        return;
    }
    if let Some(SpanState::Step(cell)) = innermost() {
        f(&cell);
    }
}

/// The id of the execution this thread is inside, if it is recorded.
pub(crate) fn current_execution_id() -> Option<Uuid> {
    if !crate::pipeline::is_active() {
        return None;
    }
    match innermost() {
        Some(SpanState::Step(cell)) => Some(cell.exec.id),
        Some(SpanState::Execution(e)) => Some(e.id),
        Some(SpanState::Unsampled) => None,
        None => match state_of(&tracing::Span::current()) {
            Some(SpanState::Execution(e)) => Some(e.id),
            Some(SpanState::Step(cell)) => Some(cell.exec.id),
            _ => None,
        },
    }
}

/// The step `on_new_span` recorded for `span`, if `span` is the
/// `#[xray::step]` span this thread just created; else what its extensions
/// hold.
pub(crate) fn new_step_of(span: &tracing::Span) -> Option<Arc<StepCell>> {
    let stashed = NEW_STEP.try_with(Cell::take).ok().flatten();
    if let (Some((stashed_id, cell)), Some(id)) = (stashed, span.id()) {
        if stashed_id == id {
            return Some(cell);
        }
    }
    match state_of(span) {
        Some(SpanState::Step(cell)) => Some(cell),
        _ => None,
    }
}

impl StepCell {
    pub fn decide(&self, decision: Decision) {
        self.with_data(|d| d.decisions.push(decision));
    }

    pub fn reason(&self, text: String) {
        self.with_data(|d| d.extra().reasons.push(text));
    }

    pub fn llm_usage(&self, usage: LlmUsage) {
        self.with_data(|d| d.extra().llm_usage.push(usage));
    }

    /// Adds an attribute; a secret key gets the redaction marker.
    pub fn attr<T: serde::Serialize + ?Sized>(&self, key: &str, value: &T) {
        let limits = self.exec.shared.sink_limits();
        let (json, flags) = keyed_json(key, limits, |sink| sink.serialize(value));
        if let Some(json) = json {
            self.with_data(|d| {
                d.flags.merge(flags);
                d.attributes.push((Cow::Owned(key.to_owned()), json));
            });
        }
    }
}

/// Reads the layer's state for `span` through its dispatcher.
pub(crate) fn state_of(span: &tracing::Span) -> Option<SpanState> {
    span.with_subscriber(|(id, dispatch)| {
        let access = dispatch.downcast_ref::<StateAccess>()?;
        (access.0)(dispatch, id)
    })
    .flatten()
}

/// A function that finds a span's [`SpanState`] in the subscriber the layer
/// was added to; found through `Dispatch::downcast_ref`, the way code outside
/// a layer reaches that layer's per-span data without knowing the
/// subscriber's type.
#[derive(Clone, Copy)]
struct StateAccess(fn(&Dispatch, &Id) -> Option<SpanState>);

fn state_access_for<S>(dispatch: &Dispatch, id: &Id) -> Option<SpanState>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let subscriber = dispatch.downcast_ref::<S>()?;
    let span = subscriber.span(id)?;
    let extensions = span.extensions();
    extensions.get::<SpanState>().cloned()
}

fn no_state_access(_: &Dispatch, _: &Id) -> Option<SpanState> {
    None
}

/// The X-Ray `tracing` layer. Made by [`crate::Config::build`]; add it to a
/// `tracing_subscriber::registry()` beside other layers.
pub struct XRayLayer {
    shared: Option<Arc<Shared>>,
    access: StateAccess,
}

impl std::fmt::Debug for XRayLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XRayLayer")
            .field("enabled", &self.shared.is_some())
            .finish()
    }
}

impl XRayLayer {
    pub(crate) fn new(shared: Option<Arc<Shared>>) -> XRayLayer {
        XRayLayer {
            shared,
            access: StateAccess(no_state_access),
        }
    }
}

impl XRayLayer {
    /// The pipeline of the X-Ray layer in this thread's current subscriber,
    /// if it has one (found through `Dispatch::downcast_ref`, which
    /// `downcast_raw` answers for the layer itself).
    pub(crate) fn current_pipeline() -> Option<Arc<Shared>> {
        tracing::dispatcher::get_default(|dispatch| {
            dispatch.downcast_ref::<XRayLayer>()?.shared.clone()
        })
    }

    /// What identifies this layer in [`CURRENT`].
    fn identity(&self) -> *const () {
        (self as *const XRayLayer).cast()
    }

    /// The state of a new span's parent when that parent is the span this
    /// thread is in (a contextual parent: what `#[xray::step]` and most
    /// spans have) and this layer recorded it: the top of [`CURRENT`],
    /// without walking the span tree. `None` sends the caller to the walk.
    fn entered_parent<S>(&self, attrs: &Attributes<'_>, ctx: &Context<'_, S>) -> Option<SpanState>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if !attrs.is_contextual() {
            return None;
        }
        let current = ctx.current_span();
        let parent = current.id()?;
        let me = self.identity();
        CURRENT
            .try_with(|stack| {
                let stack = stack.borrow();
                let top = stack.last()?;
                (top.layer == me && top.id == *parent).then(|| top.state.clone())
            })
            .ok()
            .flatten()
    }
}

enum SpanRole {
    Execution,
    Step,
    Plain,
}

fn role(meta: &tracing::Metadata<'_>) -> SpanRole {
    // The macro and `execution()` put their marker field first.
    match meta.fields().iter().next().map(|f| f.name()) {
        Some(STEP_FIELD) => SpanRole::Step,
        Some(EXECUTION_FIELD) => SpanRole::Execution,
        _ => SpanRole::Plain,
    }
}

impl<S> Layer<S> for XRayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a> + 'static,
{
    fn on_layer(&mut self, _subscriber: &mut S) {
        self.access = StateAccess(state_access_for::<S>);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        let meta = attrs.metadata();
        let inherited = self.entered_parent(attrs, &ctx).or_else(|| {
            span.scope()
                .skip(1)
                .find_map(|ancestor| ancestor.extensions().get::<SpanState>().cloned())
        });
        let role = role(meta);
        let is_macro_step = matches!(role, SpanRole::Step);
        let state = match (role, inherited) {
            (SpanRole::Execution, _) => {
                if shared.sample() {
                    let mut name = ExecutionName(None);
                    attrs.record(&mut name);
                    let name = name.0.map(Cow::Owned).unwrap_or(Cow::Borrowed("execution"));
                    SpanState::Execution(ExecCell::new(name, shared.clone()))
                } else {
                    shared
                        .counters
                        .unsampled_executions
                        .fetch_add(1, Ordering::Relaxed);
                    SpanState::Unsampled
                }
            }
            (_, Some(SpanState::Unsampled)) => SpanState::Unsampled,
            (role, Some(SpanState::Execution(exec))) => {
                SpanState::Step(new_step(meta, attrs, role, None, exec, false))
            }
            (role, Some(SpanState::Step(parent))) => SpanState::Step(new_step(
                meta,
                attrs,
                role,
                Some(parent.id),
                parent.exec.clone(),
                false,
            )),
            (SpanRole::Step, None) => {
                if shared.sample() {
                    let exec = ExecCell::new(Cow::Borrowed(meta.name()), shared.clone());
                    exec.begin();
                    SpanState::Step(new_step(meta, attrs, SpanRole::Step, None, exec, true))
                } else {
                    shared
                        .counters
                        .unsampled_executions
                        .fetch_add(1, Ordering::Relaxed);
                    SpanState::Unsampled
                }
            }
            (SpanRole::Plain, None) => return,
        };
        if let (true, SpanState::Step(cell)) = (is_macro_step, &state) {
            let _ = NEW_STEP.try_with(|stash| stash.set(Some((id.clone(), cell.clone()))));
        }
        span.extensions_mut().insert(state);
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        if let Some(cell) = step_cell(&ctx, id) {
            let mut fields = FieldsToJson::new(&cell.exec.shared);
            values.record(&mut fields);
            cell.with_data(|d| {
                d.flags.merge(fields.flags);
                d.attributes.extend(fields.out);
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self.shared.is_none() {
            return;
        }
        with_current_step(|cell| {
            let mut fields = FieldsToJson::new(&cell.exec.shared);
            event.record(&mut fields);
            let meta = event.metadata();
            let mut text = String::with_capacity(64);
            text.push_str("{\"level\":\"");
            text.push_str(meta.level().as_str());
            text.push_str("\",\"target\":");
            push_json_str(&mut text, meta.target());
            for (key, value) in &fields.out {
                text.push(',');
                push_json_str(&mut text, key);
                text.push(':');
                text.push_str(value);
            }
            text.push('}');
            let error = (*meta.level() == tracing::Level::ERROR)
                .then(|| {
                    fields
                        .out
                        .iter()
                        .find(|(k, _)| k == "error")
                        .map(|(_, v)| v.clone())
                })
                .flatten();
            cell.with_data(|d| {
                let extra = d.extra();
                if extra.events.len() < MAX_EVENTS {
                    extra.events.push(text);
                } else {
                    extra.events_dropped += 1;
                }
                if let Some(e) = error {
                    let e = serde_json::from_str::<String>(&e).unwrap_or(e);
                    extra.event_error = Some(e);
                }
            });
        });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let handed = ENTERING.try_with(Cell::take).ok().flatten();
        let state = match handed {
            Some((entering, cell)) if entering == *id => SpanState::Step(cell),
            _ => {
                let Some(span) = ctx.span(id) else {
                    return;
                };
                let Some(state) = span.extensions().get::<SpanState>().cloned() else {
                    return;
                };
                state
            }
        };
        let entered = Entered {
            layer: self.identity(),
            id: id.clone(),
            state,
        };
        let _ = CURRENT.try_with(|stack| stack.borrow_mut().push(entered));
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let me = self.identity();
        let popped = CURRENT
            .try_with(|stack| {
                let mut stack = stack.borrow_mut();
                stack
                    .iter()
                    .rposition(|e| e.id == *id && e.layer == me)
                    .map(|at| stack.remove(at).state)
            })
            .ok()
            .flatten();
        if let Some(SpanState::Step(cell)) = popped {
            if std::thread::panicking() {
                cell.with_data(|d| d.panicked_on_exit = true);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // `#[xray::step]` spans are finished by the step itself; this ends
        // plain spans (and does nothing for steps already finished).
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let cell = match span.extensions().get::<SpanState>() {
            Some(SpanState::Step(cell)) if !cell.is_finished() => cell.clone(),
            _ => return,
        };
        cell.finish(None);
    }

    unsafe fn downcast_raw(&self, id: std::any::TypeId) -> Option<*const ()> {
        if id == std::any::TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else if id == std::any::TypeId::of::<StateAccess>() {
            Some(&self.access as *const StateAccess as *const ())
        } else {
            None
        }
    }
}

fn step_cell<S>(ctx: &Context<'_, S>, id: &Id) -> Option<Arc<StepCell>>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let span = ctx.span(id)?;
    let extensions = span.extensions();
    match extensions.get::<SpanState>() {
        Some(SpanState::Step(cell)) => Some(cell.clone()),
        _ => None,
    }
}

fn new_step(
    meta: &'static tracing::Metadata<'static>,
    attrs: &Attributes<'_>,
    role: SpanRole,
    parent_id: Option<Uuid>,
    exec: Arc<ExecCell>,
    owns_execution: bool,
) -> Arc<StepCell> {
    let cell = StepCell::new(Cow::Borrowed(meta.name()), parent_id, exec, owns_execution);
    if let SpanRole::Plain = role {
        // A plain span starts here; a `#[xray::step]` starts in `Step::start`
        // once its inputs are captured.
        let mut fields = FieldsToJson::new(&cell.exec.shared);
        attrs.record(&mut fields);
        fields
            .out
            .push((Cow::Borrowed("tracing.target"), json_str(meta.target())));
        {
            let mut data = cell.data.lock();
            data.kind = Some("span");
            data.flags.merge(fields.flags);
            data.attributes = fields.out;
        }
        cell.queue_start();
    }
    cell
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    out
}

/// Reads the `name` field of an execution span.
struct ExecutionName(Option<String>);

impl tracing::field::Visit for ExecutionName {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "name" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "name" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// Turns span and event fields into JSON attributes, redacting secret keys.
struct FieldsToJson<'a> {
    shared: &'a Shared,
    out: Vec<Attribute>,
    flags: Flags,
}

impl<'a> FieldsToJson<'a> {
    fn new(shared: &'a Shared) -> Self {
        FieldsToJson {
            shared,
            out: Vec::new(),
            flags: Flags::default(),
        }
    }

    fn push(
        &mut self,
        field: &tracing::field::Field,
        write: impl FnOnce(&mut crate::capture::ValueSink<'_>),
    ) {
        let name = field.name();
        if name == STEP_FIELD || name == EXECUTION_FIELD {
            return;
        }
        let (json, flags) = keyed_json(name, self.shared.sink_limits(), write);
        self.flags.merge(flags);
        if let Some(json) = json {
            self.out.push((Cow::Borrowed(name), json));
        }
    }
}

impl tracing::field::Visit for FieldsToJson<'_> {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.push(field, |s| s.serialize(&value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.push(field, |s| s.serialize(&value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.push(field, |s| s.serialize(&value));
    }
    fn record_i128(&mut self, field: &tracing::field::Field, value: i128) {
        self.push(field, |s| s.serialize(&value));
    }
    fn record_u128(&mut self, field: &tracing::field::Field, value: u128) {
        self.push(field, |s| s.serialize(&value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.push(field, |s| s.serialize(&value));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.push(field, |s| s.serialize(value));
    }
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        let text = value.to_string();
        self.push(field, |s| s.serialize(&text));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        // `%x` fields arrive here as Display-through-Debug: store them as
        // plain strings rather than quoting their Debug form twice.
        let text = format!("{value:?}");
        self.push(field, |s| s.serialize(&text));
    }
}
