//! # X-Ray: why did the pipeline decide that?
//!
//! X-Ray records each run (an *execution*) of a multi-step, non-deterministic
//! pipeline — LLM calls, search, filters, ranking — with every *step*'s
//! inputs, outputs, errors and duration, and the *decisions* taken inside
//! it ("candidate B07X rejected by the price filter: 79.99 > 50"), so a
//! person can open one run and follow how the answer came about.
//!
//! Capture is cheap for the application: a step's values are serialized on
//! the calling thread and queued; a dedicated writer thread commits them in
//! batches to a local SQLite *outbox*, which the `xray-collector` daemon
//! ships to PostgreSQL (or an embedded store). Nothing here needs tokio or a
//! network, and nothing here panics into, or blocks, the application.
//!
//! ```no_run
//! # #[derive(serde::Serialize, Clone)] struct Product { asin: String, price: f64 }
//! #[xray::step(kind = "filter")]
//! fn filter_by_price(candidates: &[Product], max_price: f64) -> Vec<Product> {
//!     let mut kept = Vec::new();
//!     for c in candidates {
//!         if c.price > max_price {
//!             xray::reject(&c.asin, "price", format!("{} > max {}", c.price, max_price));
//!         } else {
//!             xray::accept(&c.asin, "price", "within budget");
//!             kept.push(c.clone());
//!         }
//!     }
//!     kept
//! }
//!
//! # fn main() -> Result<(), xray::Error> {
//! let guard = xray::Config::from_env().project("shop").init()?;
//! let candidates = vec![Product { asin: "B07X".into(), price: 79.99 }];
//! let kept = xray::execution("competitor_selection")
//!     .metadata("seller_asin", "B0SELLER")
//!     .run(|| filter_by_price(&candidates, 50.0));
//! guard.flush()?; // every step so far is durable in the outbox
//! # let _ = kept; Ok(()) }
//! ```
//!
//! To compose with other `tracing` layers, use [`Config::build`]:
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! # fn main() -> Result<(), xray::Error> {
//! let (layer, guard) = xray::Config::from_env().build()?;
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(layer)
//!     .init();
//! # drop(guard); Ok(()) }
//! ```
//!
//! ## What is recorded
//!
//! - `#[xray::step]` functions, sync or async: arguments as JSON (through
//!   `Serialize`, else `Debug`, else `"<opaque>"`), the return value (the
//!   `Ok` value, or the `Err`'s text with its `source()` chain), status
//!   (`ok`, `error`, `panicked`, `cancelled`, or `running` if the process
//!   died), timing, and the decisions, reasons, attributes and LLM token
//!   usage recorded inside them with [`accept`], [`reject`], [`score`],
//!   [`reason`], [`attr`] and [`llm_usage`].
//! - Plain `tracing` spans inside an execution, as steps whose fields are
//!   attributes; `tracing` events inside a step, in its `events` attribute.
//! - Executions: [`execution()`] explicitly, or implicitly when a step is
//!   called outside any execution (the execution is named after the step).
//!
//! ## Propagation
//!
//! Nesting follows the `tracing` span tree. To keep work on another task or
//! thread inside the current step, propagate the span as `tracing` does:
//! `tokio::spawn(fut.instrument(tracing::Span::current()))`, or
//! `let span = tracing::Span::current(); std::thread::spawn(move || span.in_scope(|| …))`.
//!
//! ## Losing nothing silently
//!
//! When the queue is full the [`WhenFull`] policy applies, and every record
//! lost is counted in [`stats()`]. Values that cannot be stored faithfully
//! (NaN, deep nesting, oversize payloads, non-string map keys) are stored in
//! a flagged form listed in the step's `attributes._xray_flags`.

#![warn(missing_docs)]

mod capture;
mod cell;
mod clock;
mod config;
mod error;
mod execution;
mod field;
mod id;
mod layer;
mod lookup;
pub mod outbox;
mod pipeline;
mod queue;
mod record;
mod stack;
mod stats;
mod trace;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use config::{Config, WhenFull};
pub use error::Error;
pub use execution::{execution, Execution, ExecutionFuture};
pub use layer::XRayLayer;
pub use pipeline::Guard;
pub use record::{ExecutionStatus, StepStatus};
pub use stats::Stats;
pub use trace::traceparent;
/// Records a function as a step. See the `xray-macros` crate for options.
pub use xray_macros::step;

use capture::format;
use record::{Decision, LlmUsage};

/// The counts of the pipeline started last in this process (all zeros when
/// X-Ray was never started). [`Guard::stats`] gives one pipeline's counts.
pub fn stats() -> Stats {
    pipeline::latest_stats()
}

impl Config {
    /// Starts X-Ray and installs it as the global `tracing` subscriber.
    /// Fails with a clear [`Error`] on a malformed setting, an unusable
    /// outbox, or when a global subscriber is already set.
    pub fn init(self) -> Result<Guard, Error> {
        use tracing_subscriber::layer::SubscriberExt;
        let Some((shared, guard)) = pipeline::start(&self)? else {
            return Ok(Guard::disabled());
        };
        let subscriber = tracing_subscriber::registry().with(XRayLayer::new(Some(shared.clone())));
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| Error::AlreadyInitialized)?;
        pipeline::publish(&shared);
        Ok(guard)
    }

    /// Starts X-Ray and returns its layer, to add to a subscriber of your own
    /// (any subscriber built on `tracing_subscriber::registry()`), and the
    /// guard that keeps it running.
    pub fn build(self) -> Result<(XRayLayer, Guard), Error> {
        match pipeline::start(&self)? {
            Some((shared, guard)) => {
                pipeline::publish(&shared);
                Ok((XRayLayer::new(Some(shared)), guard))
            }
            None => Ok((XRayLayer::new(None), Guard::disabled())),
        }
    }
}

/// Records that `candidate` passed `filter`, and why. A no-op outside a step.
pub fn accept(
    candidate: impl std::fmt::Display,
    filter: impl std::fmt::Display,
    reason: impl std::fmt::Display,
) {
    decide(candidate, Some(true), filter, reason);
}

/// Records that `filter` rejected `candidate`, and why. A no-op outside a step.
pub fn reject(
    candidate: impl std::fmt::Display,
    filter: impl std::fmt::Display,
    reason: impl std::fmt::Display,
) {
    decide(candidate, Some(false), filter, reason);
}

fn decide(
    candidate: impl std::fmt::Display,
    accepted: Option<bool>,
    filter: impl std::fmt::Display,
    reason: impl std::fmt::Display,
) {
    stack::with_current_step(|step| {
        let limit = step.exec.shared.config.max_payload_bytes;
        let mut flags = capture::Flags::default();
        let decision = Decision {
            candidate_id: format::display(&candidate, cell::MAX_ID_BYTES, &mut flags),
            accepted,
            filter: Some(format::display(&filter, cell::MAX_ID_BYTES, &mut flags)),
            reason: Some(format::display(&reason, limit, &mut flags)),
            score: None,
        };
        step.decide(decision, flags);
    });
}

/// Records a score given to `candidate` (a relevance, a rank). A no-op
/// outside a step.
pub fn score(candidate: impl std::fmt::Display, value: f64) {
    stack::with_current_step(|step| {
        let mut flags = capture::Flags::default();
        let decision = Decision {
            candidate_id: format::display(&candidate, cell::MAX_ID_BYTES, &mut flags),
            accepted: None,
            filter: None,
            reason: None,
            score: Some(value),
        };
        step.decide(decision, flags);
    });
}

/// Records a free-text reason for what the current step did (kept in its
/// `reasons` attribute; secrets in it are redacted). A no-op outside a step.
pub fn reason(text: impl std::fmt::Display) {
    stack::with_current_step(|step| {
        let limit = step.exec.shared.config.max_payload_bytes;
        let mut flags = capture::Flags::default();
        let text = format::display(&text, limit, &mut flags);
        step.reason(text, flags);
    });
}

/// Records an attribute of the current step, as JSON (secret keys are
/// redacted). A no-op outside a step.
pub fn attr<T: serde::Serialize + ?Sized>(key: &str, value: &T) {
    stack::with_current_step(|step| step.attr(key, value));
}

/// Records the tokens one LLM call of the current step used. A no-op outside
/// a step.
pub fn llm_usage(model: impl std::fmt::Display, prompt_tokens: u64, completion_tokens: u64) {
    stack::with_current_step(|step| {
        let mut flags = capture::Flags::default();
        let usage = LlmUsage {
            model: format::display(&model, cell::MAX_ID_BYTES, &mut flags),
            // The format's integers are signed; no call uses 2^63 tokens.
            prompt_tokens: i64::try_from(prompt_tokens).unwrap_or(i64::MAX),
            completion_tokens: i64::try_from(completion_tokens).unwrap_or(i64::MAX),
        };
        step.llm_usage(usage, flags);
    });
}

/// The id of the recorded execution the current thread is in, if any.
pub fn current_execution_id() -> Option<String> {
    stack::current_execution_id().map(|id| id.hyphenated().to_string())
}
