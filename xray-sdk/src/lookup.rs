//! Reaching the layer's per-span state from outside the layer.
//!
//! `Step::start`, `xray::execution` and `current_execution_id` hold a
//! `tracing::Span`, not the subscriber's type, so they cannot ask the
//! registry for the span's extensions. The layer therefore answers
//! `Dispatch::downcast_ref::<StateAccess>()` with a function, made for the
//! subscriber it was added to, that does the lookup: the way code outside a
//! layer reaches that layer's data. The layer's `downcast_raw` (the crate's
//! one `unsafe`, the standard one) hands it out.

use tracing::span::Id;
use tracing::{Dispatch, Subscriber};
use tracing_subscriber::registry::LookupSpan;

use crate::cell::{Recorded, SpanState};

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
pub(crate) struct StateAccess(fn(&Dispatch, &Id) -> Option<SpanState>);

impl StateAccess {
    /// Finds nothing: a layer not yet added to a subscriber.
    pub fn none() -> StateAccess {
        StateAccess(no_state_access)
    }

    /// Finds a span's state in a subscriber of type `S`.
    pub fn of<S>() -> StateAccess
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        StateAccess(state_access_for::<S>)
    }
}

fn state_access_for<S>(dispatch: &Dispatch, id: &Id) -> Option<SpanState>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let subscriber = dispatch.downcast_ref::<S>()?;
    let span = subscriber.span(id)?;
    let extensions = span.extensions();
    extensions.get::<Recorded>().map(|r| r.state.clone())
}

fn no_state_access(_: &Dispatch, _: &Id) -> Option<SpanState> {
    None
}
