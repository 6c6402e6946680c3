//! W3C trace context: the trace an execution belongs to, continued from a
//! caller's `traceparent` header or an OpenTelemetry span, and the header
//! to hand on to the next service.
//!
//! Ids are derived from X-Ray's own UUIDs unless an execution continues a
//! trace (the rules are `xray_outbox::trace`'s): then the execution takes
//! the remote trace id and records the remote span as its parent, and every
//! row of it and its steps carries that trace id.

use xray_outbox::trace::{derived_span_id, derived_trace_id, format_traceparent};
pub(crate) use xray_outbox::trace::{SpanId, TraceId};

use crate::cell::SpanState;

/// The remote trace an execution continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Remote {
    pub trace_id: TraceId,
    /// The caller's span, the execution's parent.
    pub parent_span_id: SpanId,
}

/// The `traceparent` header for the step (or execution) this thread is in
/// — `00-<trace id>-<span id>-01` — to put on an outgoing request, so the
/// service called continues this trace
/// ([`Execution::traceparent`](crate::Execution::traceparent)); `None`
/// outside a recorded step or execution (X-Ray off, not sampled).
///
/// ```no_run
/// # fn send(_: Option<String>) {}
/// #[xray::step]
/// fn fetch_reviews(asin: &str) {
///     send(xray::traceparent()); // e.g. as the request's `traceparent` header
/// }
/// ```
pub fn traceparent() -> Option<String> {
    let (trace, span) = match crate::stack::current_state()? {
        SpanState::Step(step) => (step.exec.trace_id(), derived_span_id(*step.id.as_bytes())),
        SpanState::Execution(exec) => (exec.trace_id(), derived_span_id(*exec.id.as_bytes())),
        SpanState::Unsampled => return None,
    };
    Some(format_traceparent(&trace, &span))
}

/// The trace id of the execution `id`, given the remote trace it
/// continues, if any.
pub(crate) fn trace_id(id: uuid::Uuid, remote: Option<&Remote>) -> TraceId {
    remote.map_or_else(|| derived_trace_id(*id.as_bytes()), |r| r.trace_id)
}

/// The span this thread is in according to OpenTelemetry (with
/// `tracing-opentelemetry`'s layer in the same subscriber), when there is
/// a valid one and it is not one of X-Ray's own: the trace an execution
/// started here continues.
#[cfg(feature = "opentelemetry")]
pub(crate) fn opentelemetry_parent() -> Option<Remote> {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let current = tracing::Span::current();
    // Inside one of X-Ray's own spans, OpenTelemetry's view of it is a
    // copy of X-Ray's (with other ids): not a caller to continue.
    if current.is_none() || crate::lookup::state_of(&current).is_some() {
        return None;
    }
    let context = current.context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| Remote {
        trace_id: span_context.trace_id().to_bytes(),
        parent_span_id: span_context.span_id().to_bytes(),
    })
}

/// Without the `opentelemetry` feature there is no OpenTelemetry span to
/// continue.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) fn opentelemetry_parent() -> Option<Remote> {
    None
}
