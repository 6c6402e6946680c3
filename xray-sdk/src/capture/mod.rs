//! Turning the application's values into JSON, safely.
//!
//! Everything here runs on the application's thread, so it is written to be
//! cheap and to never fail: a value that cannot be represented faithfully is
//! written in a *flagged form* (see [`json`]) instead of raising an error, and
//! a value whose type has neither `Serialize` nor `Debug` is written as
//! `"<opaque>"`. The choice between `Serialize`, `Debug` and opaque is made at
//! compile time by autoref specialization in [`crate::__private`].

pub(crate) mod format;
pub(crate) mod json;
pub(crate) mod redact;

use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::Serialize;

pub(crate) use format::panic_message;
pub(crate) use json::{push_json_str, Flags, JsonOptions};
pub(crate) use redact::Redactor;
use redact::REDACTED_JSON;

/// How many nesting levels a captured value may have before the rest is cut.
pub(crate) const MAX_DEPTH: usize = 64;

/// What the sink writes for a value whose type has neither `Serialize` nor `Debug`.
const OPAQUE: &str = "\"<opaque>\"";

/// The limits a [`ValueSink`] applies to what it writes.
#[derive(Clone, Copy)]
pub(crate) struct SinkLimits<'a> {
    pub max_bytes: usize,
    pub redactor: &'a Redactor,
}

/// Destination for one captured JSON value (an argument, a return value, an
/// attribute). Writing never fails: oversize values are replaced by the
/// truncated form, and a `Serialize`/`Debug` impl that panics is recorded as
/// `{"_xray_capture_panicked": "..."}`, with the panic contained here.
pub struct ValueSink<'a> {
    out: &'a mut String,
    limits: SinkLimits<'a>,
    flags: &'a mut Flags,
    /// Where the whole payload (e.g. the inputs object) started, for truncation.
    payload_start: usize,
    /// Set when the payload overflowed; further writes are ignored.
    overflowed: &'a mut bool,
}

impl<'a> ValueSink<'a> {
    fn limit(&self) -> usize {
        self.payload_start.saturating_add(self.limits.max_bytes)
    }

    /// Captures a value through its `Serialize` implementation.
    pub fn serialize<T: Serialize + ?Sized>(&mut self, value: &T) {
        if *self.overflowed {
            return;
        }
        let opts = JsonOptions {
            max_depth: MAX_DEPTH,
            redactor: self.limits.redactor,
            limit: self.limit(),
        };
        let start = self.out.len();
        let result = catch_unwind(AssertUnwindSafe(|| {
            json::write_json(self.out, value, &opts, self.flags)
        }));
        self.settle(start, result.map(|r| r.is_ok()));
    }

    /// Captures a value through its `Debug` implementation, as a JSON string.
    pub fn debug<T: Debug + ?Sized>(&mut self, value: &T) {
        if *self.overflowed {
            return;
        }
        let opts = JsonOptions {
            max_depth: MAX_DEPTH,
            redactor: self.limits.redactor,
            limit: self.limit(),
        };
        let start = self.out.len();
        let result = catch_unwind(AssertUnwindSafe(|| {
            json::write_debug(self.out, value, &opts, self.flags)
        }));
        self.settle(start, result.map(|r| r.is_ok()));
    }

    /// Captures free text (a `tracing` field's string, an error's text) as a
    /// JSON string, with the secrets it holds redacted (see
    /// [`Redactor::redact_text`]).
    pub(crate) fn text(&mut self, value: &str) {
        let redacted = self.limits.redactor.redact_text(value);
        if redacted.is_some() {
            self.flags.redacted = true;
        }
        self.serialize(redacted.as_deref().unwrap_or(value));
    }

    /// Captures a value of a type with neither `Serialize` nor `Debug`.
    pub fn opaque(&mut self) {
        if !*self.overflowed {
            self.out.push_str(OPAQUE);
        }
    }

    /// Writes the redaction marker in place of a value.
    pub(crate) fn redacted(&mut self) {
        if !*self.overflowed {
            self.out.push_str(REDACTED_JSON);
            self.flags.redacted = true;
        }
    }

    /// Deals with the outcome of one write: `Ok(true)` fine, `Ok(false)` too
    /// large (the whole payload is marked overflowed and later replaced),
    /// `Err(panic)` the user's impl panicked.
    fn settle(&mut self, start: usize, result: std::thread::Result<bool>) {
        match result {
            Ok(true) => {}
            Ok(false) => {
                *self.overflowed = true;
                self.flags.truncated = true;
            }
            Err(payload) => {
                self.out.truncate(start);
                self.flags.format_error = true;
                let message = panic_message(payload.as_ref());
                self.out.push_str("{\"_xray_capture_panicked\":");
                push_json_str(self.out, &message);
                self.out.push('}');
            }
        }
    }
}

/// A JSON payload under construction: one value, or an object of named values.
pub(crate) struct Payload {
    pub buf: String,
    pub flags: Flags,
    overflowed: bool,
    /// Number of object members written so far (`None` when not an object).
    members: Option<usize>,
}

impl Payload {
    pub fn new() -> Self {
        Payload::with_capacity(0)
    }

    /// A payload whose buffer starts with room for `bytes`, sparing the
    /// reallocations of growing from nothing on the capture path.
    pub fn with_capacity(bytes: usize) -> Self {
        Payload {
            buf: String::with_capacity(bytes),
            flags: Flags::default(),
            overflowed: false,
            members: None,
        }
    }

    /// A sink for the single value of this payload.
    pub fn value<'s>(&'s mut self, limits: SinkLimits<'s>) -> ValueSink<'s> {
        ValueSink {
            out: &mut self.buf,
            limits,
            flags: &mut self.flags,
            payload_start: 0,
            overflowed: &mut self.overflowed,
        }
    }

    /// Starts the member `name` of an object payload and returns a sink for
    /// its value. The caller must write exactly one value into the sink.
    pub fn member<'s>(&'s mut self, name: &str, limits: SinkLimits<'s>) -> ValueSink<'s> {
        if !self.overflowed {
            match &mut self.members {
                None => {
                    self.buf.push('{');
                    self.members = Some(1);
                }
                Some(n) => {
                    self.buf.push(',');
                    *n += 1;
                }
            }
            push_json_str(&mut self.buf, name);
            self.buf.push(':');
        }
        self.value(limits)
    }

    /// Finishes the payload and returns its JSON text, or `None` when nothing
    /// was written. An overflowed payload becomes the truncated form.
    pub fn finish(mut self, max_bytes: usize) -> Option<String> {
        if self.overflowed {
            let mut out = String::with_capacity(400);
            json::write_truncated(&mut out, max_bytes, &self.buf);
            return Some(out);
        }
        match self.members {
            Some(_) => self.buf.push('}'),
            None if self.buf.is_empty() => return None,
            None => {}
        }
        Some(self.buf)
    }
}

/// The JSON of a value stored under `key` (an attribute, a span field, a
/// metadata entry): the redaction marker when the key is a secret, else what
/// `write` puts in the sink; with the flags raised on the way. `None` when
/// nothing was written.
pub(crate) fn keyed_json(
    key: &str,
    limits: SinkLimits<'_>,
    write: impl FnOnce(&mut ValueSink<'_>),
) -> (Option<String>, Flags) {
    let mut payload = Payload::new();
    if limits.redactor.is_secret(key) {
        payload.value(limits).redacted();
    } else {
        write(&mut payload.value(limits));
    }
    let flags = payload.flags;
    (payload.finish(limits.max_bytes), flags)
}
