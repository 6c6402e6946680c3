//! The `tracing` layer: turns spans into steps and executions. This module
//! is the [`Layer`] impl and nothing else; what it records lives in
//! [`crate::cell`], the thread's stack of entered spans in [`crate::stack`],
//! the reading of fields in [`crate::field`].
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use uuid::Uuid;

use crate::capture::push_json_str;
use crate::cell::{ExecCell, Recorded, Shared, SpanState, StepCell};
use crate::field::{execution_name, role, FieldsToJson, SpanRole};
use crate::lookup::StateAccess;
use crate::stack;

/// The X-Ray `tracing` layer. Made by [`crate::Config::build`]; add it to a
/// `tracing_subscriber::registry()` beside other layers.
///
/// One X-Ray layer per subscriber records: a second one added to the same
/// subscriber is inert (it records nothing, and its outbox stays empty),
/// and if two are ever side by side (in a `Vec` of layers), each span is
/// recorded once, by the first to see it.
pub struct XRayLayer {
    shared: Option<Arc<Shared>>,
    access: StateAccess,
    /// Tells the spans this layer recorded from those of another X-Ray
    /// layer in the same subscriber.
    id: u64,
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
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        XRayLayer {
            shared,
            access: StateAccess::none(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// This layer's state for a span, from its extensions.
    fn own<'e>(
        &self,
        extensions: &'e tracing_subscriber::registry::Extensions<'_>,
    ) -> Option<&'e SpanState> {
        extensions
            .get::<Recorded>()
            .filter(|r| r.layer == self.id)
            .map(|r| &r.state)
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

    /// The step this layer recorded for the span `id`, if any.
    fn step_cell<S>(&self, ctx: &Context<'_, S>, id: &Id) -> Option<Arc<StepCell>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let span = ctx.span(id)?;
        let extensions = span.extensions();
        match self.own(&extensions) {
            Some(SpanState::Step(cell)) => Some(cell.clone()),
            _ => None,
        }
    }

    /// What identifies this layer on the thread's [`stack`].
    fn identity(&self) -> *const () {
        (self as *const XRayLayer).cast()
    }

    /// The state of a new span's parent when that parent is the span this
    /// thread is in (a contextual parent: what `#[xray::step]` and most
    /// spans have) and this layer recorded it: the top of the thread's
    /// [`stack`], without walking the span tree. `None` sends the caller to
    /// the walk.
    fn entered_parent<S>(&self, attrs: &Attributes<'_>, ctx: &Context<'_, S>) -> Option<SpanState>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if !attrs.is_contextual() {
            return None;
        }
        let current = ctx.current_span();
        let parent = current.id()?;
        stack::top_if(self.identity(), parent)
    }
}

impl<S> Layer<S> for XRayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a> + 'static,
{
    fn on_layer(&mut self, subscriber: &mut S) {
        // A layer below this one is X-Ray already: it records, this one
        // stays inert (two would record every span twice, or fight over it).
        if (&*subscriber as &dyn Subscriber).is::<XRayLayer>() {
            self.shared = None;
            return;
        }
        self.access = StateAccess::of::<S>();
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        // Another X-Ray layer beside this one recorded it first.
        if span.extensions().get::<Recorded>().is_some() {
            return;
        }
        let meta = attrs.metadata();
        let inherited = self.entered_parent(attrs, &ctx).or_else(|| {
            span.scope()
                .skip(1)
                .find_map(|ancestor| self.own(&ancestor.extensions()).cloned())
        });
        let role = role(meta);
        let is_macro_step = matches!(role, SpanRole::Step);
        let state = match (role, inherited) {
            (SpanRole::Execution, _) => {
                if shared.sample() {
                    SpanState::Execution(ExecCell::new(execution_name(attrs), shared.clone()))
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
            stack::hand_new_step(id, cell);
        }
        span.extensions_mut().insert(Recorded {
            layer: self.id,
            state,
        });
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        if let Some(cell) = self.step_cell(&ctx, id) {
            let mut fields = FieldsToJson::new(cell.exec.shared.sink_limits());
            values.record(&mut fields);
            cell.add_fields(fields.out, fields.flags);
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if self.shared.is_none() {
            return;
        }
        stack::with_current_step_of(self.identity(), |cell| {
            let mut fields = FieldsToJson::new(cell.exec.shared.sink_limits());
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
            cell.event(text, error, fields.flags);
        });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let handed = stack::take_entering();
        let state = match handed {
            Some((entering, cell)) if entering == *id => SpanState::Step(cell),
            _ => {
                let Some(span) = ctx.span(id) else {
                    return;
                };
                let Some(state) = self.own(&span.extensions()).cloned() else {
                    return;
                };
                state
            }
        };
        stack::push(self.identity(), id.clone(), state);
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        if let Some(SpanState::Step(cell)) = stack::remove(self.identity(), id) {
            if std::thread::panicking() {
                cell.panicked_on_exit();
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        // `#[xray::step]` spans are finished by the step itself; this ends
        // plain spans (and does nothing for steps already finished).
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let cell = match self.own(&span.extensions()) {
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
        let mut fields = FieldsToJson::new(cell.exec.shared.sink_limits());
        attrs.record(&mut fields);
        fields
            .out
            .push((Cow::Borrowed("tracing.target"), json_str(meta.target())));
        cell.begin_span(fields.out, fields.flags);
    }
    cell
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_str(&mut out, s);
    out
}
