//! Executions: one run of a pipeline, the unit a person opens to read.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;

use crate::capture::{keyed_json, panic_message, Flags};
use crate::cell::{ExecCell, SpanState};
use crate::field::EXECUTION_SPAN;
use crate::layer::XRayLayer;
use crate::lookup::state_of;
use crate::trace::Remote;

/// Starts describing an execution named `name`; run it with
/// [`Execution::run`] or [`Execution::run_async`].
///
/// ```no_run
/// # fn pipeline(_: &str) -> u32 { 7 }
/// let chosen = xray::execution("competitor_selection")
///     .metadata("seller_asin", "B0SELLER")
///     .run(|| pipeline("B0SELLER"));
/// ```
pub fn execution(name: impl Into<Cow<'static, str>>) -> Execution {
    Execution {
        name: name.into(),
        metadata: Vec::new(),
        traceparent: None,
    }
}

/// An execution about to run. Steps called inside it (and plain `tracing`
/// spans, and work propagated to other tasks and threads with tracing's
/// span propagation) belong to it.
#[must_use = "an execution does nothing until it is run"]
pub struct Execution {
    name: Cow<'static, str>,
    /// (key, JSON text): serialized when added, since the value is borrowed.
    metadata: Vec<(Cow<'static, str>, String)>,
    /// A `traceparent` header was given: the trace it names, or `None`
    /// when it was malformed.
    traceparent: Option<Option<Remote>>,
}

impl std::fmt::Debug for Execution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execution")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Execution {
    /// Attaches a key and value to the execution (stored as JSON; secret
    /// keys are redacted). Costs nothing when X-Ray is not active.
    ///
    /// The value is borrowed, so it is serialized here, with the payload
    /// limit and redaction list of the X-Ray pipeline of this thread's
    /// current subscriber: the one the execution is recorded in when it is
    /// run on this thread. Without an X-Ray layer there, nothing would record
    /// the execution, and nothing is serialized.
    pub fn metadata<T: Serialize + ?Sized>(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: &T,
    ) -> Self {
        if !crate::pipeline::is_active() {
            return self;
        }
        if let Some(shared) = XRayLayer::current_pipeline() {
            let key = key.into();
            let (json, _) = keyed_json(&key, shared.sink_limits(), |sink| sink.serialize(value));
            self.metadata
                .push((key, json.unwrap_or_else(|| "null".to_owned())));
        }
        self
    }

    /// Continues the trace of a caller's W3C `traceparent` header (e.g.
    /// the one on the request being served): the execution takes its trace
    /// id, and the caller's span becomes its parent, so both services' work
    /// shows as one trace. A malformed header (not version `00`-style
    /// lowercase hex, all-zero ids, version `ff`) is ignored — the
    /// execution starts a trace of its own — and flagged in its metadata
    /// (`_xray_flags: ["malformed_traceparent"]`); it is never an error.
    ///
    /// ```no_run
    /// # fn pipeline() {}
    /// # let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// xray::execution("serve_reviews").traceparent(header).run(pipeline);
    /// ```
    ///
    /// Without a header, an execution started inside an OpenTelemetry span
    /// continues that span's trace (cargo feature `opentelemetry`, with
    /// `tracing-opentelemetry`'s layer in the same subscriber).
    pub fn traceparent(mut self, header: impl AsRef<str>) -> Self {
        if crate::pipeline::is_active() {
            self.traceparent = Some(xray_outbox::trace::parse_traceparent(header.as_ref()).map(
                |(trace_id, parent_span_id)| Remote {
                    trace_id,
                    parent_span_id,
                },
            ));
        }
        self
    }

    fn open(self) -> (tracing::Span, Option<Arc<ExecCell>>) {
        if !crate::pipeline::is_active() {
            return (tracing::Span::none(), None);
        }
        // Read before the execution's span is made the current one.
        let remote = match self.traceparent {
            Some(given) => given,
            None => crate::trace::opentelemetry_parent(),
        };
        let span = tracing::span!(
            target: "xray",
            tracing::Level::INFO,
            EXECUTION_SPAN,
            xray.execution = tracing::field::Empty,
            name = &*self.name
        );
        let cell = match state_of(&span) {
            Some(SpanState::Execution(cell)) => Some(cell),
            _ => None,
        };
        if let Some(cell) = &cell {
            for (key, json) in self.metadata {
                cell.add_metadata(key, json);
            }
            match (remote, self.traceparent) {
                (Some(remote), _) => cell.continue_trace(remote),
                (None, Some(None)) => cell.flag(Flags {
                    malformed_traceparent: true,
                    ..Flags::default()
                }),
                (None, _) => {}
            }
            cell.begin();
        }
        (span, cell)
    }

    /// Runs `f` as this execution. A panic in `f` marks the execution
    /// `error` and continues unchanged.
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let (span, cell) = self.open();
        let Some(cell) = cell else {
            return span.in_scope(f);
        };
        let result = {
            let _entered = span.enter();
            catch_unwind(AssertUnwindSafe(f))
        };
        match result {
            Ok(value) => {
                cell.finish(None);
                value
            }
            Err(payload) => {
                cell.finish(Some(format!(
                    "panicked: {}",
                    panic_message(payload.as_ref())
                )));
                resume_unwind(payload)
            }
        }
    }

    /// Runs `future` as this execution; the execution's span is entered on
    /// every poll. A panic marks it `error`; so does dropping the returned
    /// future before it completes.
    pub fn run_async<F: Future>(self, future: F) -> ExecutionFuture<F> {
        let (span, cell) = self.open();
        ExecutionFuture { span, cell, future }
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`Execution::run_async`].
    pub struct ExecutionFuture<F> {
        span: tracing::Span,
        cell: Option<Arc<ExecCell>>,
        #[pin]
        future: F,
    }

    impl<F> PinnedDrop for ExecutionFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(cell) = this.project().cell.take() {
                cell.finish(Some("cancelled: the execution's future was dropped before it completed".to_owned()));
            }
        }
    }
}

impl<F: Future> Future for ExecutionFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let future = this.future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Ready(value)) => {
                if let Some(cell) = this.cell.take() {
                    cell.finish(None);
                }
                Poll::Ready(value)
            }
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                if let Some(cell) = this.cell.take() {
                    cell.finish(Some(format!(
                        "panicked: {}",
                        panic_message(payload.as_ref())
                    )));
                }
                resume_unwind(payload)
            }
        }
    }
}
