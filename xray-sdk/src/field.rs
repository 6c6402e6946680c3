//! Span and event fields: the marker fields that tell an `xray::execution`
//! span and a `#[xray::step]` span from a plain one, and the visitors that
//! read an execution's name and turn other fields into JSON attributes
//! (redacting secret keys, as every captured value is).

use std::borrow::Cow;

use tracing::span::Attributes;

use crate::capture::{format, keyed_json, Flags, SinkLimits, ValueSink};
use crate::record::Attribute;

/// The name of the span `xray::execution(..)` opens.
pub(crate) const EXECUTION_SPAN: &str = "xray.execution";
/// The field that marks a span as an execution span.
pub(crate) const EXECUTION_FIELD: &str = "xray.execution";
/// The field that marks a span as a `#[xray::step]` span.
pub(crate) const STEP_FIELD: &str = "xray.step";
/// Most bytes of an execution name taken from a `Debug` field.
const MAX_NAME_BYTES: usize = 1024;

/// What a span is to X-Ray, told by its first field.
pub(crate) enum SpanRole {
    Execution,
    Step,
    Plain,
}

pub(crate) fn role(meta: &tracing::Metadata<'_>) -> SpanRole {
    // The macro and `execution()` put their marker field first.
    match meta.fields().iter().next().map(|f| f.name()) {
        Some(STEP_FIELD) => SpanRole::Step,
        Some(EXECUTION_FIELD) => SpanRole::Execution,
        _ => SpanRole::Plain,
    }
}

/// The name of an execution span: its `name` field.
#[inline]
pub(crate) fn execution_name(attrs: &Attributes<'_>) -> Cow<'static, str> {
    let mut name = ExecutionName(None);
    attrs.record(&mut name);
    name.0.map(Cow::Owned).unwrap_or(Cow::Borrowed("execution"))
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
            let mut flags = Flags::default();
            self.0 = Some(format::bounded(
                format_args!("{value:?}"),
                MAX_NAME_BYTES,
                &mut flags,
            ));
        }
    }
}

/// Turns span and event fields into JSON attributes, redacting secret keys.
pub(crate) struct FieldsToJson<'a> {
    limits: SinkLimits<'a>,
    pub out: Vec<Attribute>,
    pub flags: Flags,
}

impl<'a> FieldsToJson<'a> {
    pub fn new(limits: SinkLimits<'a>) -> Self {
        FieldsToJson {
            limits,
            out: Vec::new(),
            flags: Flags::default(),
        }
    }

    fn push(&mut self, field: &tracing::field::Field, write: impl FnOnce(&mut ValueSink<'_>)) {
        let name = field.name();
        if name == STEP_FIELD || name == EXECUTION_FIELD {
            return;
        }
        let (json, flags) = keyed_json(name, self.limits, write);
        self.flags.merge(flags);
        if let Some(json) = json {
            self.out.push((Cow::Borrowed(name), json));
        }
    }
}

/// Implements the `Visit` methods of scalar fields, each captured through
/// its `Serialize` impl like any other value.
macro_rules! record_scalars {
    ($($method:ident($ty:ty),)*) => {
        $(
            fn $method(&mut self, field: &tracing::field::Field, value: $ty) {
                self.push(field, |s| s.serialize(&value));
            }
        )*
    };
}

impl tracing::field::Visit for FieldsToJson<'_> {
    record_scalars! {
        record_f64(f64),
        record_i64(i64),
        record_u64(u64),
        record_i128(i128),
        record_u128(u128),
        record_bool(bool),
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.push(field, |s| s.text(value));
    }
    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        let text = format::error_chain(value, self.limits.max_bytes, &mut self.flags);
        self.push(field, |s| s.text(&text));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        // Debug text (what `#[tracing::instrument]` records arguments
        // with, and event messages), or `%x` fields as Display through
        // Debug: stored as a string, bounded, its secrets redacted, an impl
        // that fails or panics contained.
        self.push(field, |s| s.debug(value));
    }
}
