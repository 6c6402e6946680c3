//! What this thread is inside: the stack of entered spans that X-Ray
//! records, and two one-slot hand-offs between `#[xray::step]` and the
//! layer that spare lookups on the hot path.
//!
//! The stack is what `xray::accept` and friends record into (the innermost
//! entry, when it is a step) and where `on_new_span` finds a new span's
//! parent without walking the span tree. It holds only spans the layer
//! recorded, each tagged with the layer that recorded it: span ids are only
//! unique within one subscriber, and a thread may switch between
//! subscribers. A hand-off slot holds a cell for the very next callback on
//! this thread and is emptied by it; a stale one is recognised by its span
//! id and ignored.
//!
//! The functions the layer calls are `#[inline]`: the `Layer` impl is
//! generic, so it is compiled in the application's crate, and they are most
//! of its callbacks.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use tracing::span::Id;
use uuid::Uuid;

use crate::cell::{SpanState, StepCell};
use crate::lookup::state_of;

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

/// Pushes the span `id` that `layer` recorded, entered by this thread.
#[inline]
pub(crate) fn push(layer: *const (), id: Id, state: SpanState) {
    let entered = Entered { layer, id, state };
    let _ = CURRENT.try_with(|stack| stack.borrow_mut().push(entered));
}

/// Removes the innermost entry for the span `id` of `layer` (spans are not
/// always exited in the order they were entered), returning its state.
#[inline]
pub(crate) fn remove(layer: *const (), id: &Id) -> Option<SpanState> {
    CURRENT
        .try_with(|stack| {
            let mut stack = stack.borrow_mut();
            stack
                .iter()
                .rposition(|e| e.id == *id && e.layer == layer)
                .map(|at| stack.remove(at).state)
        })
        .ok()
        .flatten()
}

/// The state of the innermost entry when it is the span `id` of `layer`.
#[inline]
pub(crate) fn top_if(layer: *const (), id: &Id) -> Option<SpanState> {
    CURRENT
        .try_with(|stack| {
            let stack = stack.borrow();
            let top = stack.last()?;
            (top.layer == layer && top.id == *id).then(|| top.state.clone())
        })
        .ok()
        .flatten()
}

/// Hands the step `on_new_span` just made for a `#[xray::step]` span to
/// [`new_step_of`].
#[inline]
pub(crate) fn hand_new_step(id: &Id, cell: &Arc<StepCell>) {
    let _ = NEW_STEP.try_with(|stash| stash.set(Some((id.clone(), cell.clone()))));
}

/// The step [`enter_step`] handed over for the span being entered, if any.
#[inline]
pub(crate) fn take_entering() -> Option<(Id, Arc<StepCell>)> {
    ENTERING.try_with(Cell::take).ok().flatten()
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

/// Runs `f` on the step this thread is in when `layer` recorded it.
#[inline]
pub(crate) fn with_current_step_of(layer: *const (), f: impl FnOnce(&Arc<StepCell>)) {
    let top = CURRENT
        .try_with(|stack| match stack.borrow().last() {
            Some(Entered {
                layer: by,
                state: SpanState::Step(cell),
                ..
            }) if *by == layer => Some(cell.clone()),
            _ => None,
        })
        .ok()
        .flatten();
    if let Some(cell) = top {
        f(&cell);
    }
}

/// The recorded step or execution this thread is inside: the innermost
/// recorded span entered here, else the current span's own state (a span
/// propagated to this task or thread and entered without the layer
/// seeing it here).
pub(crate) fn current_state() -> Option<SpanState> {
    if !crate::pipeline::is_active() {
        return None;
    }
    innermost().or_else(|| match state_of(&tracing::Span::current()) {
        Some(state @ (SpanState::Execution(_) | SpanState::Step(_))) => Some(state),
        _ => None,
    })
}

/// The id of the execution this thread is inside, if it is recorded.
pub(crate) fn current_execution_id() -> Option<Uuid> {
    match current_state()? {
        SpanState::Step(cell) => Some(cell.exec.id),
        SpanState::Execution(e) => Some(e.id),
        SpanState::Unsampled => None,
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
