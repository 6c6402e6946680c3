//! What `#[xray::step]` expands into. Not public API: the names here may
//! change in any release; only the macro may use them.
//!
//! The expansion of a step is, in outline:
//!
//! ```text
//! let __xray_step = if is_active() { Step::start(&SITE, || span!(..), |inputs| ..) } else { Step::inert() };
//! let __xray_ret = __xray_step.call(move || { <body> });          // or call_async(..).await
//! __xray_step.end_with(|out| <capture __xray_ret>);
//! __xray_ret
//! ```
//!
//! A synchronous step wraps that in `if is_active() { return out_of_line(move || { … }) }`
//! followed by the plain body, so that without X-Ray it runs its body after
//! one relaxed atomic load and nothing else (see `gen_function` in
//! `xray-macros`). Otherwise, when X-Ray is not active, the whole thing is
//! that load and a few branches on `None`: nothing is serialized and no span
//! is created.
//!
//! Values are captured with *autoref specialization*: for
//! `(&&&Capture(&v)).xray_capture(sink)` the compiler picks the
//! `Serialize` impl if the type has one, else `Debug`, else the opaque
//! marker, so a step never fails to compile because a type lacks a trait.

#![allow(missing_docs)]

use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::Serialize;

use crate::capture::{format, panic_message, Payload, ValueSink};
use crate::cell::{Returned, Shared, StepCell};
use crate::record::StepStatus;
use crate::stack::{enter_step, new_step_of};

pub use tracing;

/// Whether any X-Ray pipeline is live in this process. The one check a step
/// makes when X-Ray is not initialised.
#[inline(always)]
pub fn is_active() -> bool {
    crate::pipeline::is_active()
}

/// Runs `f` in a function of its own: the recording path of a synchronous
/// step, kept out of the function the macro expands.
#[inline(never)]
pub fn out_of_line<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Static description of one `#[xray::step]` function.
#[derive(Debug)]
pub struct StepSite {
    /// The step name (the function name unless `name = "…"`).
    pub name: &'static str,
    /// The `kind = "…"` option.
    pub kind: Option<&'static str>,
    /// Sizes of the inputs and of the output captured last: the next
    /// capture's buffer starts with that much room, instead of growing to
    /// it by reallocations, or holding much more than it needs while it
    /// waits in the queue.
    input_bytes: AtomicUsize,
    output_bytes: AtomicUsize,
}

impl StepSite {
    pub const fn new(name: &'static str, kind: Option<&'static str>) -> StepSite {
        StepSite {
            name,
            kind,
            input_bytes: AtomicUsize::new(0),
            output_bytes: AtomicUsize::new(0),
        }
    }
}

/// Room for the next capture after one of `last` bytes: that (plus a little:
/// sizes vary), at least 16 bytes and at most the payload limit.
fn next_capacity(last: &AtomicUsize, limit: usize) -> usize {
    let last = last.load(Ordering::Relaxed);
    (last + last / 8 + 2).clamp(16, limit.max(16))
}

/// Remembers the size of a capture, for [`next_capacity`].
fn remember_size(last: &AtomicUsize, bytes: usize) {
    if last.load(Ordering::Relaxed) != bytes {
        last.store(bytes, Ordering::Relaxed);
    }
}

/// One running step, owned by the expansion. Dropping it before
/// [`Step::end_with`] records the step as cancelled (or panicked, if the thread is
/// unwinding).
#[must_use]
pub struct Step {
    /// `None` when X-Ray is not active. (A synchronous step does not even
    /// build one then: the expansion runs its body directly.)
    active: Option<Active>,
}

struct Active {
    span: tracing::Span,
    cell: Option<Arc<StepCell>>,
    site: &'static StepSite,
}

impl Step {
    /// A step that records nothing (X-Ray is not active).
    #[inline(always)]
    pub const fn inert() -> Step {
        Step { active: None }
    }

    /// Starts a step in the span `span` creates and captures its arguments
    /// through `inputs`, unless the step is not recorded (no X-Ray layer on
    /// this thread's subscriber, or its execution was not sampled).
    ///
    /// Out of line, with the span's creation inside it: the function the
    /// macro expands keeps a small frame, which is all the not-recording
    /// path pays for.
    #[inline(never)]
    pub fn start(
        site: &'static StepSite,
        span: impl FnOnce() -> tracing::Span,
        inputs: impl FnOnce(&mut Inputs),
    ) -> Step {
        let span = span();
        let cell = new_step_of(&span);
        if let Some(cell) = &cell {
            let shared = &cell.exec.shared;
            let limit = shared.config.max_payload_bytes;
            let mut args = Inputs {
                payload: Payload::with_capacity(next_capacity(&site.input_bytes, limit)),
                shared,
            };
            inputs(&mut args);
            remember_size(&site.input_bytes, args.payload.buf.len());
            let flags = args.payload.flags;
            let input = args.payload.finish(limit);
            cell.begin(site.kind, input, flags);
        }
        Step {
            active: Some(Active { span, cell, site }),
        }
    }

    /// Runs a synchronous body inside the step's span. A panic is recorded
    /// with its message and then continues unchanged.
    #[inline]
    pub fn call<R>(&self, body: impl FnOnce() -> R) -> R {
        match &self.active {
            None => body(),
            Some(active) => active.call(body),
        }
    }

    /// Runs a future inside the step's span (entered on every poll).
    #[inline]
    pub fn call_async<F: Future>(&self, future: F) -> StepFuture<'_, F> {
        StepFuture { step: self, future }
    }

    /// Ends a step that returned: captures what it returned through
    /// `capture` (if the step is recorded) and records it, ok, or error if
    /// the capture saw an `Err`.
    #[inline]
    pub fn end_with(mut self, capture: impl FnOnce(&mut Output<'_>)) {
        if let Some(active) = self.active.take() {
            if let Some(cell) = &active.cell {
                cell.returned(capture_output(cell, active.site, capture));
            }
        }
    }
}

// Kept out of line so that the expansion's not-recording path stays a few
// instructions with a small stack frame.
#[inline(never)]
fn capture_output(
    cell: &StepCell,
    site: &StepSite,
    capture: impl FnOnce(&mut Output<'_>),
) -> Returned {
    let shared = &cell.exec.shared;
    let limit = shared.config.max_payload_bytes;
    let mut out = Output {
        payload: Payload::with_capacity(next_capacity(&site.output_bytes, limit)),
        error: None,
        shared,
    };
    capture(&mut out);
    remember_size(&site.output_bytes, out.payload.buf.len());
    let flags = out.payload.flags;
    Returned {
        output: out.payload.finish(limit),
        error: out.error,
        flags,
    }
}

impl Active {
    fn call<R>(&self, body: impl FnOnce() -> R) -> R {
        let _entered = match &self.cell {
            Some(cell) => enter_step(&self.span, cell),
            None => self.span.enter(),
        };
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(value) => value,
            Err(payload) => {
                if let Some(cell) = &self.cell {
                    cell.finish(Some((
                        StepStatus::Panicked,
                        panic_message(payload.as_ref()),
                    )));
                }
                resume_unwind(payload)
            }
        }
    }
}

impl Drop for Step {
    #[inline]
    fn drop(&mut self) {
        if self.active.is_some() {
            self.drop_unfinished();
        }
    }
}

impl Step {
    #[cold]
    fn drop_unfinished(&mut self) {
        if let Some(Active {
            cell: Some(cell), ..
        }) = &self.active
        {
            // Reached only when `end` did not run: the body panicked (already
            // recorded with its message) or the future was dropped early.
            if std::thread::panicking() {
                cell.finish(Some((StepStatus::Panicked, "panicked".to_owned())));
            } else {
                cell.finish(Some((
                    StepStatus::Cancelled,
                    "cancelled: the future was dropped before it completed".to_owned(),
                )));
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`Step::call_async`].
    pub struct StepFuture<'s, F> {
        step: &'s Step,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for StepFuture<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        match &this.step.active {
            None => this.future.poll(cx),
            Some(active) => {
                let future = this.future;
                active.call(move || future.poll(cx))
            }
        }
    }
}

/// The arguments of a step under capture, as one JSON object.
pub struct Inputs<'a> {
    payload: Payload,
    shared: &'a Shared,
}

impl Inputs<'_> {
    /// A sink for the argument `name`; redacted names get the marker instead.
    pub fn arg(&mut self, name: &str) -> ArgSink<'_> {
        let limits = self.shared.sink_limits();
        let secret = limits.redactor.is_secret(name);
        let mut sink = self.payload.member(name, limits);
        if secret {
            sink.redacted();
            ArgSink(None)
        } else {
            ArgSink(Some(sink))
        }
    }

    /// Records the argument `name` as `"[redacted]"` (the `redact(..)` option).
    pub fn redacted(&mut self, name: &str) {
        let limits = self.shared.sink_limits();
        self.payload.member(name, limits).redacted();
    }
}

/// The sink for one argument; empty when the argument's name is a secret.
pub struct ArgSink<'a>(Option<ValueSink<'a>>);

/// The return value of a step under capture.
pub struct Output<'a> {
    payload: Payload,
    error: Option<String>,
    shared: &'a Shared,
}

impl Output<'_> {
    /// A sink for the returned value (the `Ok` value of a `Result`).
    pub fn value(&mut self) -> ArgSink<'_> {
        ArgSink(Some(self.payload.value(self.shared.sink_limits())))
    }

    fn set_error(&mut self, text: String) {
        self.error = Some(text);
    }
}

/// Any value, for capture by autoref specialization.
pub struct Capture<'a, T: ?Sized>(pub &'a T);

/// First choice: the value's `Serialize` impl.
pub trait CaptureSerialize {
    fn xray_capture(&self, sink: ArgSink<'_>);
}
impl<T: Serialize + ?Sized> CaptureSerialize for &&Capture<'_, T> {
    fn xray_capture(&self, sink: ArgSink<'_>) {
        if let Some(mut sink) = sink.0 {
            sink.serialize(self.0);
        }
    }
}

/// Second choice: the value's `Debug` text.
pub trait CaptureDebug {
    fn xray_capture(&self, sink: ArgSink<'_>);
}
impl<T: Debug + ?Sized> CaptureDebug for &Capture<'_, T> {
    fn xray_capture(&self, sink: ArgSink<'_>) {
        if let Some(mut sink) = sink.0 {
            sink.debug(self.0);
        }
    }
}

/// Last resort: `"<opaque>"`.
pub trait CaptureOpaque {
    fn xray_capture(&self, sink: ArgSink<'_>);
}
impl<T: ?Sized> CaptureOpaque for Capture<'_, T> {
    fn xray_capture(&self, sink: ArgSink<'_>) {
        if let Some(mut sink) = sink.0 {
            sink.opaque();
        }
    }
}

/// A returned value, split into its `Ok` and `Err` halves when it is a `Result`.
pub struct Split<'a, T: ?Sized>(pub &'a T);

/// A `Result`: `Ok` is the output, `Err` the error.
pub trait SplitResult<'a> {
    type Ok: ?Sized + 'a;
    type Err: ?Sized + 'a;
    fn xray_split(&self) -> (Option<&'a Self::Ok>, Option<&'a Self::Err>);
}
impl<'a, T: 'a, E: 'a> SplitResult<'a> for &Split<'a, Result<T, E>> {
    type Ok = T;
    type Err = E;
    fn xray_split(&self) -> (Option<&'a T>, Option<&'a E>) {
        match self.0 {
            Ok(value) => (Some(value), None),
            Err(error) => (None, Some(error)),
        }
    }
}

/// Anything else: the whole value is the output.
pub trait SplitPlain<'a> {
    type Ok: ?Sized + 'a;
    type Err: ?Sized + 'a;
    fn xray_split(&self) -> (Option<&'a Self::Ok>, Option<&'a Self::Err>);
}
impl<'a, T: ?Sized + 'a> SplitPlain<'a> for Split<'a, T> {
    type Ok = T;
    type Err = NoError;
    fn xray_split(&self) -> (Option<&'a T>, Option<&'a NoError>) {
        (Some(self.0), None)
    }
}

/// The error type of a return value that is not a `Result`: never built.
#[derive(Debug)]
pub enum NoError {}
impl Display for NoError {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}
impl std::error::Error for NoError {}

/// An `Err` value, for capture by autoref specialization.
pub struct CaptureError<'a, E: ?Sized>(pub &'a E);

/// First choice: `std::error::Error` — Display text plus the `source()` chain.
pub trait ErrorChain {
    fn xray_capture_error(&self, out: &mut Output<'_>);
}
impl<E: std::error::Error> ErrorChain for &&&CaptureError<'_, E> {
    fn xray_capture_error(&self, out: &mut Output<'_>) {
        let limit = out.shared.config.max_payload_bytes;
        let text = format::error_chain(self.0, limit, &mut out.payload.flags);
        out.set_error(text);
    }
}

/// Second choice: `Display` — in its alternate form, which error types such
/// as `anyhow::Error` use to print their whole chain.
pub trait ErrorDisplay {
    fn xray_capture_error(&self, out: &mut Output<'_>);
}
impl<E: Display + ?Sized> ErrorDisplay for &&CaptureError<'_, E> {
    fn xray_capture_error(&self, out: &mut Output<'_>) {
        let limit = out.shared.config.max_payload_bytes;
        let text = format::bounded(format_args!("{:#}", self.0), limit, &mut out.payload.flags);
        out.set_error(text);
    }
}

/// Third choice: `Debug`.
pub trait ErrorDebug {
    fn xray_capture_error(&self, out: &mut Output<'_>);
}
impl<E: Debug + ?Sized> ErrorDebug for &CaptureError<'_, E> {
    fn xray_capture_error(&self, out: &mut Output<'_>) {
        let limit = out.shared.config.max_payload_bytes;
        let text = format::bounded(format_args!("{:?}", self.0), limit, &mut out.payload.flags);
        out.set_error(text);
    }
}

/// Last resort: the error is recorded without its text.
pub trait ErrorOpaque {
    fn xray_capture_error(&self, out: &mut Output<'_>);
}
impl<E: ?Sized> ErrorOpaque for CaptureError<'_, E> {
    fn xray_capture_error(&self, out: &mut Output<'_>) {
        out.set_error("<opaque error>".to_owned());
    }
}

/// The JSON a step would store for `value` captured through `Serialize`, with
/// the default redaction list and payload limit, written the way a step
/// writes it (a pre-sized payload buffer, the sink's panic guard). For the
/// `capture` benchmark, which compares it with `serde_json::to_string`.
pub fn capture_for_bench<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    let limits = crate::capture::SinkLimits {
        max_bytes: 64 * 1024,
        redactor: &BENCH_REDACTOR,
    };
    let mut payload = Payload::with_capacity(512);
    payload.value(limits).serialize(value);
    payload.finish(limits.max_bytes)
}

/// The free-text redaction a stored reason or error goes through on the
/// writer's thread, with the default key list: for the `capture`
/// benchmark, which compares it with formatting the same text.
pub fn redact_text_for_bench(text: &str) -> Option<String> {
    BENCH_REDACTOR.redact_text(text)
}

/// The default redaction list, for the benchmark entry points above.
static BENCH_REDACTOR: std::sync::LazyLock<crate::capture::Redactor> =
    std::sync::LazyLock::new(Default::default);
