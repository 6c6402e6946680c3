//! The value serializer ([`Ser`]) and the state one write shares
//! ([`State`]): the size limit, the depth limit, the flags raised, and the
//! rule that a failing `Serialize` impl costs only its own value
//! ([`serialize_guarded`]).
//!
//! `Ser` hands containers to [`Compound`], which hands each element back to
//! [`serialize_guarded`]: the two call each other as a value contains values.

use std::fmt;

use serde::ser::{self, Serialize};

use super::compound::Compound;
use super::text::{
    first_escape, floor_char_boundary, push_ascii_limited, push_escaped, push_integer,
    push_limited, push_str_literal, Digits, TooLarge,
};
use super::{Flags, JsonOptions};
use crate::capture::redact::{Redactor, REDACTED_JSON};

/// Longest failure message kept in a `_xray_serialize_error` marker; a
/// message is diagnostic, it must not eat the payload budget.
const MAX_ERROR_MESSAGE: usize = 512;

const DEPTH_LIMITED: &str = "{\"_xray_depth_limited\":true}";

/// Why serialization stopped. One pointer wide, so that the `Result<(), Error>`
/// every write returns travels in a register; the boxed error is built only
/// on the rare failing paths.
#[derive(Debug)]
pub(super) struct Error(Box<ErrorKind>);

#[derive(Debug)]
enum ErrorKind {
    /// The size limit was reached; propagates to the top.
    TooLarge,
    /// A `Serialize` impl failed; caught by the nearest enclosing value.
    Custom(String),
    /// Raised by [`KeySer`](super::key::KeySer) only, to fall back to the JSON-text form of a key.
    KeyNotString,
}

impl Error {
    #[cold]
    pub(super) fn too_large() -> Error {
        Error(Box::new(ErrorKind::TooLarge))
    }

    #[cold]
    pub(super) fn key_not_string() -> Error {
        Error(Box::new(ErrorKind::KeyNotString))
    }

    #[cold]
    pub(super) fn message(text: String) -> Error {
        Error(Box::new(ErrorKind::Custom(text)))
    }

    fn is_too_large(&self) -> bool {
        matches!(*self.0, ErrorKind::TooLarge)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            ErrorKind::TooLarge => fmt::Display::fmt(&TooLarge, f),
            ErrorKind::Custom(msg) => f.write_str(msg),
            ErrorKind::KeyNotString => f.write_str("map key is not a string"),
        }
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        // Marked by `recover` (which sets `format_error` anyway).
        let mut flags = super::Flags::default();
        Error::message(crate::capture::format::display(
            &msg,
            MAX_ERROR_MESSAGE,
            &mut flags,
        ))
    }
}

/// Everything shared by the serializers of one write.
pub(super) struct State<'a> {
    pub out: &'a mut String,
    pub limit: usize,
    pub max_depth: usize,
    pub redactor: &'a Redactor,
    pub flags: Flags,
    /// Sticky: once the limit is hit nothing may hide it, not even a
    /// `Serialize` impl that turns our error into a custom one or drops it.
    pub too_large: bool,
    /// Set by [`KeySer`](super::key::KeySer) when the key it wrote is a secret.
    pub key_is_secret: bool,
}

impl<'a> State<'a> {
    pub(super) fn new(out: &'a mut String, opts: &JsonOptions<'a>) -> Self {
        State {
            out,
            limit: opts.limit,
            max_depth: opts.max_depth,
            redactor: opts.redactor,
            flags: Flags::default(),
            too_large: false,
            key_is_secret: false,
        }
    }

    #[inline]
    pub(super) fn push(&mut self, s: &str) -> Result<(), Error> {
        push_limited(self.out, self.limit, s).map_err(|TooLarge| self.overflowed())
    }

    #[inline]
    pub(super) fn write_str_literal(&mut self, s: &str) -> Result<(), Error> {
        push_str_literal(self.out, self.limit, s).map_err(|TooLarge| self.overflowed())
    }

    /// Writes `"name":` for a struct field. Field names are short, fixed
    /// in the program and almost never need escaping, so the common case is
    /// one reservation and three copies, without a limit check (see
    /// [`write_json`](super::write_json)).
    #[inline]
    pub(super) fn write_field_name(&mut self, name: &'static str) -> Result<(), Error> {
        if first_escape(name.as_bytes()).is_none() {
            self.out.reserve(name.len() + 3);
            self.out.push('"');
            self.out.push_str(name);
            self.out.push_str("\":");
            return Ok(());
        }
        self.write_str_literal(name)?;
        self.push(":")
    }

    #[cold]
    pub(super) fn overflowed(&mut self) -> Error {
        self.too_large = true;
        Error::too_large()
    }

    #[inline]
    pub(super) fn push_ascii(&mut self, ascii: &[u8]) -> Result<(), Error> {
        push_ascii_limited(self.out, self.limit, ascii).map_err(|TooLarge| self.overflowed())
    }

    pub(super) fn write_u64(&mut self, v: u64) -> Result<(), Error> {
        push_integer(self.out, self.limit, v, false).map_err(|TooLarge| self.overflowed())
    }

    pub(super) fn write_i64(&mut self, v: i64) -> Result<(), Error> {
        push_integer(self.out, self.limit, v.unsigned_abs(), v < 0)
            .map_err(|TooLarge| self.overflowed())
    }

    pub(super) fn write_u128(&mut self, v: u128) -> Result<(), Error> {
        self.push_ascii(Digits::u128(v).bytes())
    }

    pub(super) fn write_i128(&mut self, v: i128) -> Result<(), Error> {
        self.push_ascii(Digits::i128(v).bytes())
    }

    pub(super) fn write_f64(&mut self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return self.write_non_finite(v.is_nan(), v > 0.0);
        }
        self.write_finite_float(v)
    }

    pub(super) fn write_f32(&mut self, v: f32) -> Result<(), Error> {
        if !v.is_finite() {
            return self.write_non_finite(v.is_nan(), v > 0.0);
        }
        self.write_finite_float(v)
    }

    fn write_finite_float<F: zmij::Float>(&mut self, v: F) -> Result<(), Error> {
        // serde_json's own formatter, so the text is the same as its.
        self.push(zmij::Buffer::new().format_finite(v))
    }

    fn write_non_finite(&mut self, nan: bool, positive: bool) -> Result<(), Error> {
        self.flags.non_finite = true;
        self.push(match (nan, positive) {
            (true, _) => "{\"_xray_non_finite\":\"NaN\"}",
            (false, true) => "{\"_xray_non_finite\":\"inf\"}",
            (false, false) => "{\"_xray_non_finite\":\"-inf\"}",
        })
    }

    pub(super) fn write_redacted(&mut self) -> Result<(), Error> {
        self.flags.redacted = true;
        self.push(REDACTED_JSON)
    }

    pub(super) fn write_error_marker(&mut self, message: &str) -> Result<(), Error> {
        let message = &message[..floor_char_boundary(message, MAX_ERROR_MESSAGE)];
        self.push("{\"_xray_serialize_error\":")?;
        self.write_str_literal(message)?;
        self.push("}")
    }

    /// Enters one container level: `Some(child depth)`, or `None` after
    /// writing the depth-limited marker when this level is one too many.
    pub(super) fn enter(&mut self, depth: usize) -> Result<Option<usize>, Error> {
        if depth >= self.max_depth {
            self.flags.depth_limited = true;
            self.push(DEPTH_LIMITED)?;
            return Ok(None);
        }
        Ok(Some(depth + 1))
    }
}

/// Serializes one complete value (the top level, a seq element, a field or a
/// map value) so that a failing `Serialize` impl costs only that value.
///
/// A failure can come after part of the value was written, so the output is
/// rolled back to where the value started and the error marker written
/// instead. Flags set by the discarded part are rolled back too.
#[inline]
pub(super) fn serialize_guarded<T: Serialize + ?Sized>(
    st: &mut State<'_>,
    depth: usize,
    value: &T,
) -> Result<(), Error> {
    let start = st.out.len();
    let flags = st.flags;
    match value.serialize(Ser {
        st: &mut *st,
        depth,
    }) {
        Ok(()) => Ok(()),
        Err(err) => recover(st, start, flags, err),
    }
}

/// The failing path of [`serialize_guarded`], out of its way.
#[cold]
#[inline(never)]
fn recover(st: &mut State<'_>, start: usize, flags: Flags, err: Error) -> Result<(), Error> {
    if st.too_large {
        return Err(Error::too_large());
    }
    if err.is_too_large() {
        return Err(st.overflowed());
    }
    st.out.truncate(start);
    st.flags = flags;
    st.flags.format_error = true;
    st.write_error_marker(&err.to_string())
}

/// Implements the `Serializer` methods that open a container, each with
/// [`Ser::compound`]'s arguments: the variant (for an enum variant's
/// content) and the brackets. Inline, like the other forwarding methods
/// (see `forward_scalars!`).
macro_rules! open_compounds {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $assoc:ident = ($($how:expr),*);)*) => {
        $(
            #[inline]
            fn $method(self, $($arg: $ty),*) -> Result<Self::$assoc, Error> {
                self.compound($($how),*)
            }
        )*
    };
}

/// The value serializer: `depth` is the number of container levels around
/// the value it writes.
pub(super) struct Ser<'b, 'a> {
    pub st: &'b mut State<'a>,
    pub depth: usize,
}

impl<'b, 'a> Ser<'b, 'a> {
    /// Opens a container (`open` is its opening text) or writes the
    /// depth-limited marker and returns a compound that ignores its content.
    fn compound(
        self,
        open_variant: Option<&'static str>,
        open: char,
        close: char,
    ) -> Result<Compound<'b, 'a>, Error> {
        let Some(depth) = self.st.enter(self.depth)? else {
            return Ok(Compound {
                st: self.st,
                depth: self.depth,
                first: true,
                skip: true,
                close,
                in_variant: false,
                redact_value: false,
            });
        };
        if let Some(variant) = open_variant {
            self.st.push("{")?;
            self.st.write_str_literal(variant)?;
            self.st.push(":")?;
            // `Secret::ApiKey { .. }` is the key `ApiKey`: its content goes.
            if self.st.redactor.is_secret(variant) {
                self.st.write_redacted()?;
                self.st.push("}")?;
                return Ok(Compound {
                    st: self.st,
                    depth,
                    first: true,
                    skip: true,
                    close,
                    in_variant: false,
                    redact_value: false,
                });
            }
        }
        if self.st.out.len() >= self.st.limit {
            return Err(self.st.overflowed());
        }
        self.st.out.push(open);
        Ok(Compound {
            st: self.st,
            depth,
            first: true,
            skip: false,
            close,
            in_variant: open_variant.is_some(),
            redact_value: false,
        })
    }
}

impl<'b, 'a> ser::Serializer for Ser<'b, 'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'b, 'a>;
    type SerializeTuple = Compound<'b, 'a>;
    type SerializeTupleStruct = Compound<'b, 'a>;
    type SerializeTupleVariant = Compound<'b, 'a>;
    type SerializeMap = Compound<'b, 'a>;
    type SerializeStruct = Compound<'b, 'a>;
    type SerializeStructVariant = Compound<'b, 'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.st.push(if v { "true" } else { "false" })
    }

    forward_scalars! {
        serialize_i8(i8) => st.write_i64;
        serialize_i16(i16) => st.write_i64;
        serialize_i32(i32) => st.write_i64;
        serialize_i64(i64) => st.write_i64;
        serialize_i128(i128) => st.write_i128;
        serialize_u8(u8) => st.write_u64;
        serialize_u16(u16) => st.write_u64;
        serialize_u32(u32) => st.write_u64;
        serialize_u64(u64) => st.write_u64;
        serialize_u128(u128) => st.write_u128;
        serialize_f32(f32) => st.write_f32;
        serialize_f64(f64) => st.write_f64;
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.st.write_str_literal(v.encode_utf8(&mut [0u8; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.st.write_str_literal(v)
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.st.push("[")?;
        for (i, &b) in v.iter().enumerate() {
            if i > 0 {
                self.st.push(",")?;
            }
            self.st.write_u64(b.into())?;
        }
        self.st.push("]")
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.st.push("null")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        // Transparent, like serde_json. Not a depth level: a recursive type
        // always passes through a struct or enum, which are counted.
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.st.push("null")
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.st.push("null")
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.st.write_str_literal(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        // Counted although transparent in JSON: `struct Node(Option<Box<Node>>)`
        // recurses through nothing else.
        match self.st.enter(self.depth)? {
            Some(depth) => value.serialize(Ser { st: self.st, depth }),
            None => Ok(()),
        }
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        let Some(depth) = self.st.enter(self.depth)? else {
            return Ok(());
        };
        self.st.push("{")?;
        self.st.write_str_literal(variant)?;
        self.st.push(":")?;
        // `ApiKey("sk-…")` is `{"ApiKey": "sk-…"}`: a secret key.
        if self.st.redactor.is_secret(variant) {
            self.st.write_redacted()?;
        } else {
            value.serialize(Ser {
                st: &mut *self.st,
                depth,
            })?;
        }
        self.st.push("}")
    }

    open_compounds! {
        serialize_seq(_len: Option<usize>) -> SerializeSeq = (None, '[', ']');
        serialize_tuple(_len: usize) -> SerializeTuple = (None, '[', ']');
        serialize_tuple_struct(_name: &'static str, _len: usize)
            -> SerializeTupleStruct = (None, '[', ']');
        serialize_tuple_variant(_name: &'static str, _index: u32, variant: &'static str, _len: usize)
            -> SerializeTupleVariant = (Some(variant), '[', ']');
        serialize_map(_len: Option<usize>) -> SerializeMap = (None, '{', '}');
        serialize_struct(_name: &'static str, _len: usize) -> SerializeStruct = (None, '{', '}');
        serialize_struct_variant(_name: &'static str, _index: u32, variant: &'static str, _len: usize)
            -> SerializeStructVariant = (Some(variant), '{', '}');
    }

    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        use fmt::Write as _;

        // The default would format into a temporary String first; escape
        // straight into the output instead (Uuid, timestamps, … use this).
        self.st.push("\"")?;
        let mut writer = EscapingWriter { st: &mut *self.st };
        if write!(writer, "{value}").is_err() {
            if self.st.too_large {
                return Err(Error::too_large());
            }
            return Err(Error::message(
                "Display implementation returned an error".to_owned(),
            ));
        }
        self.st.push("\"")
    }
}

/// `fmt::Write` that escapes into the output as a JSON string body.
struct EscapingWriter<'b, 'a> {
    st: &'b mut State<'a>,
}

impl fmt::Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.st.too_large {
            return Err(fmt::Error);
        }
        push_escaped(self.st.out, self.st.limit, s).map_err(|TooLarge| {
            self.st.too_large = true;
            fmt::Error
        })
    }
}
