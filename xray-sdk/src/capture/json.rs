//! Bounded, lossless-or-flagged JSON writing for captured values.
//!
//! `serde_json` is the reference for ordinary values and this module produces
//! byte-identical output for them. It differs exactly where `serde_json` would
//! lose information silently or fail, because a capture must never do either:
//!
//! * NaN and ±infinity become `{"_xray_non_finite":"NaN"|"inf"|"-inf"}`
//!   (`serde_json` writes `null`);
//! * nesting deeper than [`JsonOptions::max_depth`] becomes
//!   `{"_xray_depth_limited":true}` without visiting what is inside, so a very
//!   deep value cannot overflow the application's stack;
//! * map keys that are not strings, integers, bools, chars or unit variants
//!   become the string of their compact JSON text (`serde_json` errors);
//! * a `Serialize` impl that fails replaces only its own value with
//!   `{"_xray_serialize_error":"<message>"}`;
//! * secret keys and fields are written as `"[redacted]"` without serializing
//!   their value;
//! * output stops as soon as it would pass [`JsonOptions::limit`].
//!
//! Everything is written straight into the caller's `String`: no intermediate
//! `serde_json::Value` and no allocation per value on the normal path.

use std::fmt;

use serde::ser::{
    self, Impossible, Serialize, SerializeMap, SerializeSeq, SerializeStruct,
    SerializeStructVariant, SerializeTuple, SerializeTupleStruct, SerializeTupleVariant,
};

use super::redact::{Redactor, REDACTED_JSON};

/// How many characters of the source [`write_truncated`] keeps as a preview.
const PREVIEW_CHARS: usize = 256;

/// Longest failure message kept in a `_xray_serialize_error` marker; a
/// message is diagnostic, it must not eat the payload budget.
const MAX_ERROR_MESSAGE: usize = 512;

const DEPTH_LIMITED: &str = "{\"_xray_depth_limited\":true}";

/// Settings for one capture.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JsonOptions<'a> {
    /// Container levels written before a value is replaced by the
    /// depth-limited marker. Every seq, tuple, map, struct (newtype structs
    /// included) and enum variant carrying data counts as one level.
    pub max_depth: usize,
    /// Decides which map keys and struct fields are secrets.
    pub redactor: &'a Redactor,
    /// Maximum length the output `String` may reach, counted from its start
    /// (not from where this write began).
    pub limit: usize,
}

/// What was changed while writing: a value carrying any flag is stored in a
/// defined form rather than verbatim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flags {
    /// A NaN or infinite float was written as a `_xray_non_finite` marker.
    pub non_finite: bool,
    /// A value nested too deeply was replaced by a `_xray_depth_limited` marker.
    pub depth_limited: bool,
    /// A map key that is not a string-like scalar was written as its JSON text.
    pub non_string_keys: bool,
    /// A secret value was replaced by `"[redacted]"`.
    pub redacted: bool,
    /// The output hit the size limit.
    pub truncated: bool,
}

impl Flags {
    /// Whether any flag is set.
    pub(crate) fn any(&self) -> bool {
        self.non_finite
            || self.depth_limited
            || self.non_string_keys
            || self.redacted
            || self.truncated
    }

    /// Adds the flags set in `other`.
    pub(crate) fn merge(&mut self, other: Flags) {
        self.non_finite |= other.non_finite;
        self.depth_limited |= other.depth_limited;
        self.non_string_keys |= other.non_string_keys;
        self.redacted |= other.redacted;
        self.truncated |= other.truncated;
    }

    /// The set flags as a JSON array of their names, e.g.
    /// `["non_finite","redacted"]` (`[]` when none is set).
    // `&self` (not `self`, which clippy prefers for `Copy` types) is the
    // signature shared with the rest of the crate.
    #[allow(clippy::wrong_self_convention)]
    pub(crate) fn to_json_array(&self) -> String {
        let names = [
            (self.non_finite, "non_finite"),
            (self.depth_limited, "depth_limited"),
            (self.non_string_keys, "non_string_keys"),
            (self.redacted, "redacted"),
            (self.truncated, "truncated"),
        ];
        let mut out = String::from("[");
        for (_, name) in names.iter().filter(|(set, _)| *set) {
            if out.len() > 1 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push('"');
        }
        out.push(']');
        out
    }
}

/// The output reached the size limit; the value was not written completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("captured value exceeds the payload size limit")
    }
}

impl std::error::Error for TooLarge {}

/// Appends `value` as one compact JSON value to `out`.
///
/// Sets `flags` for every rule that changed the output (see the module docs).
///
/// On `Err(TooLarge)` (also recorded as `flags.truncated`) `out` has been
/// filled up to at most `opts.limit` bytes with a prefix of the JSON text;
/// that prefix is not valid JSON, but it is already redacted, so the caller
/// may use it as a preview before truncating `out` back.
pub(crate) fn write_json<T: Serialize + ?Sized>(
    out: &mut String,
    value: &T,
    opts: &JsonOptions,
    flags: &mut Flags,
) -> Result<(), TooLarge> {
    let mut st = State::new(out, opts);
    let result = serialize_guarded(&mut st, 0, value);
    flags.merge(st.flags);
    // Separators, closing brackets and field names are written without a
    // check (every value, string and opening bracket is checked, so they can
    // pass the limit by a few bytes at most): cut back to the limit here.
    if result.is_err() || st.too_large || out.len() > opts.limit {
        if out.len() > opts.limit {
            out.truncate(floor_char_boundary(out, opts.limit));
        }
        flags.truncated = true;
        return Err(TooLarge);
    }
    Ok(())
}

/// Appends the `{:?}` text of `value` to `out` as one JSON string literal,
/// with secret fields redacted by [`Redactor::redact_debug_text`].
///
/// The Debug text is produced into a scratch buffer that refuses to grow past
/// the remaining budget, so a huge Debug output is cut off early rather than
/// formatted in full. On `Err(TooLarge)` (also recorded as `flags.truncated`)
/// `out` holds a prefix of the (redacted, best-effort) literal, as for
/// [`write_json`]. A `Debug` impl that fails on its own is written as
/// `{"_xray_serialize_error":"Debug implementation returned an error"}`.
pub(crate) fn write_debug<T: fmt::Debug + ?Sized>(
    out: &mut String,
    value: &T,
    opts: &JsonOptions,
    flags: &mut Flags,
) -> Result<(), TooLarge> {
    use fmt::Write as _;

    let mut scratch = BoundedWriter {
        buf: String::new(),
        // The quotes of the literal are part of the budget too.
        budget: opts.limit.saturating_sub(out.len()).saturating_sub(2),
        overflow: false,
    };
    let formatted = write!(scratch, "{value:?}");
    let text = scratch.buf;
    let redacted = opts.redactor.redact_debug_text(&text);
    if redacted.is_some() {
        flags.redacted = true;
    }
    let text = redacted.as_deref().unwrap_or(&text);

    let mut st = State::new(out, opts);
    let written = if formatted.is_err() && !scratch.overflow {
        st.write_error_marker("Debug implementation returned an error")
    } else {
        st.write_str_literal(text)
    };
    if written.is_err() || scratch.overflow {
        flags.truncated = true;
        return Err(TooLarge);
    }
    Ok(())
}

/// Appends the marker stored in place of a value that exceeded the size
/// limit: `{"_xray_truncated":true,"limit":<limit>,"preview":"…"}`, the
/// preview being the first 256 characters of `preview_source`.
///
/// The preview is copied as given: pass text that is already redacted (such
/// as what [`write_json`] left in its output when it failed).
pub(crate) fn write_truncated(out: &mut String, limit: usize, preview_source: &str) {
    let cut = preview_source
        .char_indices()
        .nth(PREVIEW_CHARS)
        .map_or(preview_source.len(), |(i, _)| i);
    out.push_str("{\"_xray_truncated\":true,\"limit\":");
    let _ = push_integer(out, usize::MAX, usize_to_u64(limit), false);
    out.push_str(",\"preview\":");
    // Unlimited: the marker is small by construction.
    let _ = push_str_literal(out, usize::MAX, &preview_source[..cut]);
    out.push('}');
}

// ---------------------------------------------------------------------------
// Low-level writing with a size limit.

/// Appends `s`, or fills `out` up to `limit` (on a char boundary) and fails.
///
/// Filling rather than stopping short keeps as much as possible for the
/// caller's preview at the cost of at most `limit` bytes of copying.
#[inline]
fn push_limited(out: &mut String, limit: usize, s: &str) -> Result<(), TooLarge> {
    let room = limit.saturating_sub(out.len());
    if s.len() <= room {
        out.push_str(s);
        Ok(())
    } else {
        out.push_str(&s[..floor_char_boundary(s, room)]);
        Err(TooLarge)
    }
}

/// [`push_limited`] for ASCII bytes (digits), which need no UTF-8
/// validation to be appended as text.
#[inline]
fn push_ascii_limited(out: &mut String, limit: usize, ascii: &[u8]) -> Result<(), TooLarge> {
    let room = limit.saturating_sub(out.len());
    let (fits, result) = if ascii.len() <= room {
        (ascii, Ok(()))
    } else {
        (&ascii[..room], Err(TooLarge))
    };
    // Validation of a few ASCII bytes is cheap, and keeps this free of
    // `unsafe`; it cannot fail for digits.
    out.push_str(std::str::from_utf8(fits).unwrap_or_default());
    result
}

/// The largest char boundary of `s` not after `index` (`str::floor_char_boundary`
/// is newer than the crate's minimum Rust version).
fn floor_char_boundary(s: &str, index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    let mut i = index;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// For each byte: 0 when it is copied as is, otherwise the letter of its
/// escape (`u` for the `\u00XX` form), exactly as `serde_json` escapes.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Index of the first byte of `bytes` that JSON escapes (a control byte,
/// `"` or `\\`), if any.
///
/// Looks at eight bytes at a time: most text needs no escaping, and a byte
/// by byte scan of every key and string is the largest part of writing JSON.
#[inline]
fn first_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    /// Whether some byte of `word` is zero (exact, no false positive).
    #[inline(always)]
    fn has_zero_byte(word: u64) -> bool {
        word.wrapping_sub(ONES) & !word & HIGHS != 0
    }
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        // A byte below 0x20 (ASCII only: `!word` drops bytes with the high
        // bit set, which are never escaped), or equal to `"` or `\\`.
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
        if control
            || has_zero_byte(word ^ (ONES * u64::from(b'"')))
            || has_zero_byte(word ^ (ONES * u64::from(b'\\')))
        {
            break;
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| ESCAPE[usize::from(b)] != 0)
        .map(|i| at + i)
}

/// Appends `s` as a quoted, escaped JSON string, without a size limit (for
/// names and texts X-Ray writes itself: argument names, attribute keys,
/// event fields).
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    // Unlimited: cannot fail.
    let _ = push_str_literal(out, usize::MAX, s);
}

/// Appends `s` as a quoted, escaped JSON string.
fn push_str_literal(out: &mut String, limit: usize, s: &str) -> Result<(), TooLarge> {
    // Fast path for the common case, a string that fits: one scan for the
    // first byte needing an escape, and a plain copy of everything before it.
    if s.len() + 2 <= limit.saturating_sub(out.len()) {
        let first_escape = first_escape(s.as_bytes());
        let plain = first_escape.unwrap_or(s.len());
        out.reserve(s.len() + 2);
        out.push('"');
        // `plain` indexes an ASCII byte or the end: a char boundary.
        out.push_str(&s[..plain]);
        if plain < s.len() {
            push_escaped_unchecked(out, limit, &s[plain..])?;
            return push_limited(out, limit, "\"");
        }
        out.push('"');
        return Ok(());
    }
    push_limited(out, limit, "\"")?;
    push_escaped(out, limit, s)?;
    push_limited(out, limit, "\"")
}

/// Appends the escaped body of a JSON string (no quotes).
fn push_escaped(out: &mut String, limit: usize, s: &str) -> Result<(), TooLarge> {
    // Escaping never shortens text, so a string longer than the room left
    // cannot fit: escape only the part that can, instead of scanning all of it.
    let room = limit.saturating_sub(out.len());
    if s.len() > room {
        let _ = push_escaped_unchecked(out, limit, &s[..floor_char_boundary(s, room)]);
        return Err(TooLarge);
    }
    push_escaped_unchecked(out, limit, s)
}

/// [`push_escaped`] without the early length check.
fn push_escaped_unchecked(out: &mut String, limit: usize, s: &str) -> Result<(), TooLarge> {
    let mut rest = s;
    // Runs of bytes that need no escaping are found a word at a time and
    // copied in one go (prompts and other long texts have a line break here
    // and there, not on every byte).
    while let Some(i) = first_escape(rest.as_bytes()) {
        // `i` indexes an ASCII byte, hence a char boundary.
        push_limited(out, limit, &rest[..i])?;
        let b = rest.as_bytes()[i];
        rest = &rest[i + 1..];
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            0x0c => "\\f",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            _ => "",
        };
        if !short.is_empty() {
            push_limited(out, limit, short)?;
            continue;
        }
        let unicode = [
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX_DIGITS[usize::from(b >> 4)],
            HEX_DIGITS[usize::from(b & 0xf)],
        ];
        push_limited(out, limit, std::str::from_utf8(&unicode).unwrap_or(""))?;
    }
    push_limited(out, limit, rest)
}

/// Widens a `usize`; every supported target has pointers of at most 64 bits.
fn usize_to_u64(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `"00"`, `"01"`, … `"99"`: integers are formatted two digits per division.
const DIGIT_PAIRS: &str = "0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
    5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";

/// Appends `v` in decimal, preceded by `-` when `negative`.
///
/// The digits are split into base-100 pairs first and then appended most
/// significant first straight from [`DIGIT_PAIRS`]: formatting into a stack
/// buffer and copying that measured twice as slow (the copy reads bytes that
/// were just stored one by one, which stalls the CPU), and integers are the
/// most common captured scalar.
fn push_integer(out: &mut String, limit: usize, v: u64, negative: bool) -> Result<(), TooLarge> {
    let mut pairs = [0u8; 10];
    let mut count = 0;
    let mut head = v;
    while head >= 100 {
        // Below 100, so the cast cannot truncate.
        pairs[count] = (head % 100) as u8;
        head /= 100;
        count += 1;
    }
    let head_len = if head >= 10 { 2 } else { 1 };
    let len = usize::from(negative) + head_len + 2 * count;
    if len > limit.saturating_sub(out.len()) {
        let digits = if negative {
            Digits::i128(-i128::from(v))
        } else {
            Digits::u128(v.into())
        };
        return push_ascii_limited(out, limit, digits.bytes());
    }
    out.reserve(len);
    if negative {
        out.push('-');
    }
    // `head` is below 100 here.
    let h = head as usize * 2;
    out.push_str(&DIGIT_PAIRS[h + 2 - head_len..h + 2]);
    for &pair in pairs[..count].iter().rev() {
        let p = usize::from(pair) * 2;
        out.push_str(&DIGIT_PAIRS[p..p + 2]);
    }
    Ok(())
}

/// A 128-bit integer formatted in decimal on the stack (rare: the simple
/// digit loop is good enough).
struct Digits {
    buf: [u8; 40],
    start: usize,
}

impl Digits {
    fn i128(v: i128) -> Self {
        let mut d = Digits::u128(v.unsigned_abs());
        if v < 0 {
            d.start -= 1;
            d.buf[d.start] = b'-';
        }
        d
    }

    fn u128(mut v: u128) -> Self {
        let mut d = Digits {
            buf: [0; 40],
            start: 40,
        };
        loop {
            d.start -= 1;
            // Below 10, so the cast cannot truncate.
            d.buf[d.start] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                return d;
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// `fmt::Write` into a buffer that refuses to grow past `budget` bytes, so a
/// huge `Debug` output is abandoned early instead of being produced in full.
struct BoundedWriter {
    buf: String,
    budget: usize,
    overflow: bool,
}

impl fmt::Write for BoundedWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Some impls ignore a write error and carry on: keep refusing.
        if self.overflow {
            return Err(fmt::Error);
        }
        if push_limited(&mut self.buf, self.budget, s).is_err() {
            self.overflow = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The serializer.

/// Why serialization stopped. One pointer wide, so that the `Result<(), Error>`
/// every write returns travels in a register; the boxed error is built only
/// on the rare failing paths.
#[derive(Debug)]
struct Error(Box<ErrorKind>);

#[derive(Debug)]
enum ErrorKind {
    /// The size limit was reached; propagates to the top.
    TooLarge,
    /// A `Serialize` impl failed; caught by the nearest enclosing value.
    Custom(String),
    /// Raised by [`KeySer`] only, to fall back to the JSON-text form of a key.
    KeyNotString,
}

impl Error {
    #[cold]
    fn too_large() -> Error {
        Error(Box::new(ErrorKind::TooLarge))
    }

    #[cold]
    fn key_not_string() -> Error {
        Error(Box::new(ErrorKind::KeyNotString))
    }

    #[cold]
    fn message(text: String) -> Error {
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
        Error::message(msg.to_string())
    }
}

/// Everything shared by the serializers of one write.
struct State<'a> {
    out: &'a mut String,
    limit: usize,
    max_depth: usize,
    redactor: &'a Redactor,
    flags: Flags,
    /// Sticky: once the limit is hit nothing may hide it, not even a
    /// `Serialize` impl that turns our error into a custom one or drops it.
    too_large: bool,
    /// Set by [`KeySer`] when the key it wrote is a secret.
    key_is_secret: bool,
}

impl<'a> State<'a> {
    fn new(out: &'a mut String, opts: &JsonOptions<'a>) -> Self {
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
    fn push(&mut self, s: &str) -> Result<(), Error> {
        push_limited(self.out, self.limit, s).map_err(|TooLarge| self.overflowed())
    }

    #[inline]
    fn write_str_literal(&mut self, s: &str) -> Result<(), Error> {
        push_str_literal(self.out, self.limit, s).map_err(|TooLarge| self.overflowed())
    }

    /// Writes `"name":` for a struct field. Field names are short, fixed
    /// in the program and almost never need escaping, so the common case is
    /// one reservation and three copies, without a limit check (see
    /// [`write_json`]).
    #[inline]
    fn write_field_name(&mut self, name: &'static str) -> Result<(), Error> {
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
    fn overflowed(&mut self) -> Error {
        self.too_large = true;
        Error::too_large()
    }

    #[inline]
    fn push_ascii(&mut self, ascii: &[u8]) -> Result<(), Error> {
        push_ascii_limited(self.out, self.limit, ascii).map_err(|TooLarge| self.overflowed())
    }

    fn write_u64(&mut self, v: u64) -> Result<(), Error> {
        push_integer(self.out, self.limit, v, false).map_err(|TooLarge| self.overflowed())
    }

    fn write_i64(&mut self, v: i64) -> Result<(), Error> {
        push_integer(self.out, self.limit, v.unsigned_abs(), v < 0)
            .map_err(|TooLarge| self.overflowed())
    }

    fn write_u128(&mut self, v: u128) -> Result<(), Error> {
        self.push_ascii(Digits::u128(v).bytes())
    }

    fn write_i128(&mut self, v: i128) -> Result<(), Error> {
        self.push_ascii(Digits::i128(v).bytes())
    }

    fn write_f64(&mut self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return self.write_non_finite(v.is_nan(), v > 0.0);
        }
        self.write_finite_float(v)
    }

    fn write_f32(&mut self, v: f32) -> Result<(), Error> {
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

    fn write_redacted(&mut self) -> Result<(), Error> {
        self.flags.redacted = true;
        self.push(REDACTED_JSON)
    }

    fn write_error_marker(&mut self, message: &str) -> Result<(), Error> {
        let message = &message[..floor_char_boundary(message, MAX_ERROR_MESSAGE)];
        self.push("{\"_xray_serialize_error\":")?;
        self.write_str_literal(message)?;
        self.push("}")
    }

    /// Enters one container level: `Some(child depth)`, or `None` after
    /// writing the depth-limited marker when this level is one too many.
    fn enter(&mut self, depth: usize) -> Result<Option<usize>, Error> {
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
fn serialize_guarded<T: Serialize + ?Sized>(
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
    st.write_error_marker(&err.to_string())
}

/// The value serializer: `depth` is the number of container levels around
/// the value it writes.
struct Ser<'b, 'a> {
    st: &'b mut State<'a>,
    depth: usize,
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

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.st.write_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.st.write_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.st.write_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.st.write_i64(v)
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.st.write_i128(v)
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.st.write_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.st.write_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.st.write_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.st.write_u64(v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.st.write_u128(v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.st.write_f32(v)
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.st.write_f64(v)
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
        value.serialize(Ser {
            st: &mut *self.st,
            depth,
        })?;
        self.st.push("}")
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'b, 'a>, Error> {
        self.compound(None, '[', ']')
    }

    fn serialize_tuple(self, _len: usize) -> Result<Compound<'b, 'a>, Error> {
        self.compound(None, '[', ']')
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Compound<'b, 'a>, Error> {
        self.compound(None, '[', ']')
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'b, 'a>, Error> {
        self.compound(Some(variant), '[', ']')
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'b, 'a>, Error> {
        self.compound(None, '{', '}')
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'b, 'a>, Error> {
        self.compound(None, '{', '}')
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'b, 'a>, Error> {
        self.compound(Some(variant), '{', '}')
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

/// Writes the content of one container. With `skip` (the container was
/// replaced by the depth-limited marker) it ignores everything, so nothing
/// inside is ever visited.
struct Compound<'b, 'a> {
    st: &'b mut State<'a>,
    /// Depth of the elements.
    depth: usize,
    first: bool,
    skip: bool,
    /// The closing bracket, followed by `}` for an enum variant's content.
    close: char,
    in_variant: bool,
    /// The key just written is a secret: write the next value as redacted.
    redact_value: bool,
}

impl Compound<'_, '_> {
    /// Unchecked, like the closing bracket (see [`write_json`]).
    #[inline]
    fn separator(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.st.out.push(',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        self.separator();
        serialize_guarded(self.st, self.depth, value)
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        self.separator();
        self.st.write_field_name(name)?;
        if self.st.redactor.is_secret(name) {
            self.st.write_redacted()
        } else {
            serialize_guarded(self.st, self.depth, value)
        }
    }

    fn finish(self) -> Result<(), Error> {
        if !self.skip {
            self.st.out.push(self.close);
            if self.in_variant {
                self.st.out.push('}');
            }
        }
        Ok(())
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        self.separator();
        let start = self.st.out.len();
        self.st.key_is_secret = false;
        match key.serialize(KeySer { st: &mut *self.st }) {
            Ok(()) => self.redact_value = self.st.key_is_secret,
            Err(_) if self.st.too_large => return Err(Error::too_large()),
            Err(_) => {
                // Not string-like (or its Serialize failed): use its JSON
                // text, rendered apart so it can be written as one string.
                self.st.out.truncate(start);
                self.redact_value = false;
                self.st.flags.non_string_keys = true;
                let mut text = String::new();
                let mut sub = State {
                    out: &mut text,
                    limit: self.st.limit.saturating_sub(start),
                    max_depth: self.st.max_depth,
                    redactor: self.st.redactor,
                    flags: Flags::default(),
                    too_large: false,
                    key_is_secret: false,
                };
                let rendered = serialize_guarded(&mut sub, self.depth, key);
                let sub_too_large = rendered.is_err() || sub.too_large;
                self.st.flags.merge(sub.flags);
                // Even when it overflowed, write what fits: it is the preview.
                self.st.write_str_literal(&text)?;
                if sub_too_large {
                    return Err(self.st.overflowed());
                }
            }
        }
        self.st.push(":")
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if self.skip {
            return Ok(());
        }
        if std::mem::take(&mut self.redact_value) {
            self.st.write_redacted()
        } else {
            serialize_guarded(self.st, self.depth, value)
        }
    }
}

impl SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.value(value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }

    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// Writes a map key when it is string-like, as `serde_json` does (strings,
/// chars, integers, bools, unit variants, through newtype structs and `Some`);
/// anything else is refused with [`ErrorKind::KeyNotString`] before writing.
struct KeySer<'b, 'a> {
    st: &'b mut State<'a>,
}

impl KeySer<'_, '_> {
    fn quoted(self, text: &str) -> Result<(), Error> {
        self.st.push("\"")?;
        self.st.push(text)?;
        self.st.push("\"")
    }

    fn quoted_integer(self, v: u64, negative: bool) -> Result<(), Error> {
        self.st.push("\"")?;
        push_integer(self.st.out, self.st.limit, v, negative)
            .map_err(|TooLarge| self.st.overflowed())?;
        self.st.push("\"")
    }

    fn quoted_ascii(self, ascii: &[u8]) -> Result<(), Error> {
        self.st.push("\"")?;
        self.st.push_ascii(ascii)?;
        self.st.push("\"")
    }
}

impl ser::Serializer for KeySer<'_, '_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.st.key_is_secret = self.st.redactor.is_secret(v);
        self.st.write_str_literal(v)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        // Written as a string key, so it is redacted like one.
        self.st.key_is_secret = self.st.redactor.is_secret(variant);
        self.st.write_str_literal(variant)
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.st.write_str_literal(v.encode_utf8(&mut [0u8; 4]))
    }

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(if v { "true" } else { "false" })
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.quoted_integer(v.unsigned_abs(), v < 0)
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.quoted_ascii(Digits::i128(v).bytes())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.quoted_integer(v, false)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.quoted_ascii(Digits::u128(v).bytes())
    }

    fn serialize_f32(self, _v: f32) -> Result<(), Error> {
        Err(Error::key_not_string())
    }

    fn serialize_f64(self, _v: f64) -> Result<(), Error> {
        Err(Error::key_not_string())
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(Error::key_not_string())
    }

    fn serialize_none(self) -> Result<(), Error> {
        Err(Error::key_not_string())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Err(Error::key_not_string())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(Error::key_not_string())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(Error::key_not_string())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(Error::key_not_string())
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(Error::key_not_string())
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(Error::key_not_string())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error::key_not_string())
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(Error::key_not_string())
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(Error::key_not_string())
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error::key_not_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::collections::{BTreeMap, HashMap};

    const BIG: usize = 1 << 30;

    fn write_with<T: Serialize + ?Sized>(
        value: &T,
        max_depth: usize,
        limit: usize,
    ) -> (Result<(), TooLarge>, String, Flags) {
        let redactor = Redactor::default();
        let opts = JsonOptions {
            max_depth,
            redactor: &redactor,
            limit,
        };
        let mut out = String::new();
        let mut flags = Flags::default();
        let result = write_json(&mut out, value, &opts, &mut flags);
        (result, out, flags)
    }

    fn ours<T: Serialize + ?Sized>(value: &T) -> (String, Flags) {
        let (result, out, flags) = write_with(value, 128, BIG);
        assert_eq!(result, Ok(()));
        (out, flags)
    }

    /// Our output must equal serde_json's, with no flag set.
    #[track_caller]
    fn same_as_serde_json<T: Serialize + ?Sized>(value: &T) {
        let (out, flags) = ours(value);
        assert_eq!(out, serde_json::to_string(value).unwrap());
        assert!(!flags.any(), "unexpected flags {flags:?} for {out}");
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(u8);

    #[derive(Serialize)]
    struct Tuple(i32, String, ());

    #[derive(Serialize)]
    enum Kind {
        Unit,
        Newtype(u32),
        Tuple(u8, bool),
        EmptyTuple(),
        Struct { a: i8, b: Option<String> },
        EmptyStruct {},
    }

    #[derive(Serialize)]
    #[serde(tag = "type")]
    enum Tagged {
        A { x: u8 },
        B(Plain),
    }

    #[derive(Serialize)]
    struct Plain {
        id: u64,
        price: f64,
        name: String,
        tags: Vec<String>,
        score: Option<f32>,
        missing: Option<u8>,
        kinds: Vec<Kind>,
        #[serde(with = "serde_bytes_like")]
        blob: Vec<u8>,
        nested: Option<Box<Plain>>,
    }

    /// Serializes through `serialize_bytes`, as serde_bytes does.
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
    }

    fn plain() -> Plain {
        Plain {
            id: u64::MAX,
            price: 0.1,
            name: "Ünïcødé \"q\" \\ / \u{0} \u{1f} \u{7f} \n\r\t\u{8}\u{c} 😀 \u{2028}".to_owned(),
            tags: vec!["a".into(), String::new()],
            score: Some(0.1),
            missing: None,
            kinds: vec![
                Kind::Unit,
                Kind::Newtype(7),
                Kind::Tuple(1, true),
                Kind::EmptyTuple(),
                Kind::Struct {
                    a: -1,
                    b: Some("x".into()),
                },
                Kind::EmptyStruct {},
            ],
            blob: vec![0, 1, 255],
            nested: Some(Box::new(Plain {
                id: 0,
                price: 1e300,
                name: String::new(),
                tags: vec![],
                score: None,
                missing: Some(3),
                kinds: vec![],
                blob: vec![],
                nested: None,
            })),
        }
    }

    #[test]
    fn ordinary_values_match_serde_json() {
        same_as_serde_json(&plain());
        same_as_serde_json(&Unit);
        same_as_serde_json(&Newtype(4));
        same_as_serde_json(&Tuple(-5, "t".into(), ()));
        same_as_serde_json(&Tagged::A { x: 1 });
        same_as_serde_json(&Tagged::B(plain()));
        same_as_serde_json(&(1u8, 'c', "s", [1.5f64, -0.0]));
        same_as_serde_json(&Some(Some(3)));
        same_as_serde_json(&Option::<u8>::None);
        same_as_serde_json(&());
        same_as_serde_json("");
        same_as_serde_json(&'\u{1}');
        let every_ascii: String = (0u8..=127).map(char::from).collect();
        same_as_serde_json(&every_ascii);
        same_as_serde_json(&vec![Vec::<u8>::new(); 2]);
        same_as_serde_json(&std::time::Duration::from_millis(1500));
        same_as_serde_json(&std::net::Ipv4Addr::new(127, 0, 0, 1));
        same_as_serde_json(&std::path::PathBuf::from("/tmp/\"x\""));
    }

    #[test]
    fn numbers_match_serde_json() {
        same_as_serde_json(&(u64::MAX, i64::MIN, i64::MAX, 0u64, -1i8, i8::MIN));
        same_as_serde_json(&(u128::MAX, i128::MIN, i128::MAX, 0i128, -7i128));
        same_as_serde_json(&(u8::MAX, u16::MAX, u32::MAX, i16::MIN, i32::MIN));
        same_as_serde_json(&[
            0.1,
            1e300,
            -1e-300,
            1.0,
            0.0,
            -0.0,
            1e15,
            1e16,
            1e17,
            1e-5,
            1e-7,
            123_456.789,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            5e-324,
        ]);
        same_as_serde_json(&[
            0.1f32,
            1e30,
            f32::MAX,
            f32::MIN_POSITIVE,
            -3.5,
            16_777_216.0,
        ]);
    }

    #[test]
    fn maps_match_serde_json() {
        let mut hash = HashMap::new();
        hash.insert("k\"ey".to_owned(), vec![1, 2]);
        hash.insert("other".to_owned(), vec![]);
        same_as_serde_json(&hash);

        let ints: BTreeMap<i64, &str> = [(-1, "a"), (i64::MAX, "b")].into_iter().collect();
        same_as_serde_json(&ints);
        let wide: BTreeMap<u128, u8> = [(u128::MAX, 1)].into_iter().collect();
        same_as_serde_json(&wide);
        let bools: BTreeMap<bool, u8> = [(true, 1), (false, 0)].into_iter().collect();
        same_as_serde_json(&bools);
        let chars: BTreeMap<char, u8> = [('\n', 1), ('z', 0)].into_iter().collect();
        same_as_serde_json(&chars);

        #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
        enum Color {
            Red,
            Green,
        }
        #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
        struct Name(String);
        let variants: BTreeMap<Color, u8> =
            [(Color::Red, 1), (Color::Green, 2)].into_iter().collect();
        same_as_serde_json(&variants);
        let newtypes: BTreeMap<Name, Option<Name>> = [(Name("n".into()), Some(Name("v".into())))]
            .into_iter()
            .collect();
        same_as_serde_json(&newtypes);
        let optional: BTreeMap<Option<u8>, u8> = [(Some(4), 1)].into_iter().collect();
        same_as_serde_json(&optional);
        same_as_serde_json(&BTreeMap::<String, u8>::new());
    }

    #[test]
    fn the_word_at_a_time_scan_finds_the_first_byte_to_escape() {
        let by_bytes = |b: &[u8]| b.iter().position(|&c| ESCAPE[usize::from(c)] != 0);
        // Every byte value at every position of texts of 0 to 20 bytes, in
        // a background of plain ASCII and of multi-byte UTF-8 (high bytes).
        for background in [b'a', 0xC3, 0x7F, 0x20, 0x21, 0x5B, 0x5D] {
            for len in 0..=20 {
                for at in 0..len {
                    for byte in 0..=255u8 {
                        let mut text = vec![background; len];
                        text[at] = byte;
                        assert_eq!(first_escape(&text), by_bytes(&text), "{text:?}");
                    }
                }
                assert_eq!(
                    first_escape(&vec![background; len]),
                    by_bytes(&vec![background; len])
                );
            }
        }
        // And the escaped text is serde_json's, for every ASCII character
        // in runs of every length around it.
        for c in (0..128u8).map(char::from) {
            for run in 0..18 {
                let plain = "é".repeat(run / 2) + &"x".repeat(run);
                let text = format!("{plain}{c}{plain}{c}{c}\"\\{plain}");
                assert_eq!(ours(&text).0, serde_json::to_string(&text).unwrap());
            }
        }
    }

    #[test]
    fn collect_str_is_escaped_like_serde_json() {
        struct Shown;
        impl std::fmt::Display for Shown {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a\"b\\c\n{}", 'é'.to_uppercase())
            }
        }
        impl Serialize for Shown {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        same_as_serde_json(&Shown);
        same_as_serde_json(&[Shown, Shown]);
    }

    #[derive(Serialize)]
    struct Reading {
        value: f64,
        single: f32,
    }

    #[test]
    fn non_finite_floats_are_flagged_not_null() {
        let (out, flags) = ours(&Reading {
            value: f64::NAN,
            single: f32::INFINITY,
        });
        assert_eq!(
            out,
            r#"{"value":{"_xray_non_finite":"NaN"},"single":{"_xray_non_finite":"inf"}}"#
        );
        assert!(flags.non_finite);
        assert_eq!(flags.to_json_array(), r#"["non_finite"]"#);

        let (out, flags) = ours(&vec![1.0, f64::NEG_INFINITY, f64::INFINITY, -f64::NAN]);
        assert_eq!(
            out,
            r#"[1.0,{"_xray_non_finite":"-inf"},{"_xray_non_finite":"inf"},{"_xray_non_finite":"NaN"}]"#
        );
        assert!(flags.non_finite);

        let (out, flags) = ours(&f32::NAN);
        assert_eq!(out, r#"{"_xray_non_finite":"NaN"}"#);
        assert!(flags.non_finite);
        let (out, _) = ours(&f32::NEG_INFINITY);
        assert_eq!(out, r#"{"_xray_non_finite":"-inf"}"#);
    }

    /// A linked list as deep as we like, built and dropped without recursion.
    #[derive(Serialize)]
    enum List {
        Cons(u32, Box<List>),
        Nil,
    }

    impl List {
        fn with_len(len: u32) -> List {
            let mut list = List::Nil;
            for i in (0..len).rev() {
                list = List::Cons(i, Box::new(list));
            }
            list
        }
    }

    impl Drop for List {
        fn drop(&mut self) {
            // Detach each tail before its owner is dropped, so every drop is
            // shallow: the derived drop would recurse once per element.
            let mut rest = match self {
                List::Cons(_, next) => std::mem::replace(&mut **next, List::Nil),
                List::Nil => return,
            };
            loop {
                let next = match &mut rest {
                    List::Cons(_, next) => std::mem::replace(&mut **next, List::Nil),
                    List::Nil => return,
                };
                rest = next;
            }
        }
    }

    #[test]
    fn depth_limit_stops_descent_into_very_deep_values() {
        let list = List::with_len(100_000);
        let (result, out, flags) = write_with(&list, 3, BIG);
        assert_eq!(result, Ok(()));
        assert_eq!(
            out,
            r#"{"Cons":[0,{"Cons":[1,{"Cons":[2,{"_xray_depth_limited":true}]}]}]}"#
        );
        assert!(flags.depth_limited);
        assert!(!flags.truncated);

        // A realistic limit on the default test-thread stack.
        let (result, out, flags) = write_with(&list, 128, BIG);
        assert_eq!(result, Ok(()));
        assert!(flags.depth_limited);
        assert_eq!(out.matches("Cons").count(), 128);
    }

    #[test]
    fn depth_limit_counts_every_container_level() {
        let nested = vec![vec![vec![vec![1]]]];
        let (_, out, flags) = write_with(&nested, 4, BIG);
        assert_eq!(out, "[[[[1]]]]");
        assert!(!flags.depth_limited);
        let (_, out, flags) = write_with(&nested, 3, BIG);
        assert_eq!(out, r#"[[[{"_xray_depth_limited":true}]]]"#);
        assert!(flags.depth_limited);
        let (_, out, _) = write_with(&nested, 0, BIG);
        assert_eq!(out, r#"{"_xray_depth_limited":true}"#);
        // Scalars are not levels.
        let (_, out, flags) = write_with(&5u8, 0, BIG);
        assert_eq!(out, "5");
        assert!(!flags.any());
    }

    #[test]
    fn non_string_keys_become_their_json_text() {
        let map: BTreeMap<(i32, i32), &str> = [((1, 2), "a"), ((3, -4), "b")].into_iter().collect();
        let (out, flags) = ours(&map);
        assert_eq!(out, r#"{"[1,2]":"a","[3,-4]":"b"}"#);
        assert!(flags.non_string_keys);
        assert!(!flags.non_finite);

        #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
        struct Point {
            x: u8,
            label: &'static str,
        }
        let map: BTreeMap<Point, u8> = [(
            Point {
                x: 1,
                label: "\"q\"",
            },
            9,
        )]
        .into_iter()
        .collect();
        let (out, flags) = ours(&map);
        assert_eq!(out, r#"{"{\"x\":1,\"label\":\"\\\"q\\\"\"}":9}"#);
        assert!(flags.non_string_keys);

        let map: BTreeMap<Option<u8>, u8> = [(None, 1)].into_iter().collect();
        assert_eq!(ours(&map).0, r#"{"null":1}"#);
        let map: BTreeMap<Vec<u8>, u8> = [(vec![], 1), (vec![1], 2)].into_iter().collect();
        assert_eq!(ours(&map).0, r#"{"[]":1,"[1]":2}"#);
        let map: BTreeMap<(), u8> = [((), 1)].into_iter().collect();
        assert_eq!(ours(&map).0, r#"{"null":1}"#);

        // Keys are never an error, floats included.
        struct FloatKeys;
        impl Serialize for FloatKeys {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap as _;
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry(&1.5f64, "x")?;
                map.serialize_entry(&f64::NAN, "y")?;
                map.end()
            }
        }
        let (out, flags) = ours(&FloatKeys);
        assert_eq!(out, r#"{"1.5":"x","{\"_xray_non_finite\":\"NaN\"}":"y"}"#);
        assert!(flags.non_string_keys && flags.non_finite);
    }

    #[derive(Serialize)]
    struct Request {
        url: String,
        api_key: String,
        meta: Meta,
    }

    #[derive(Serialize)]
    struct Meta {
        attempt: u8,
        headers: HashMap<String, String>,
    }

    #[test]
    fn secrets_are_redacted_without_serializing_them() {
        let mut headers = HashMap::new();
        headers.insert("Authorization".to_owned(), "Bearer abc".to_owned());
        let request = Request {
            url: "https://x".into(),
            api_key: "sk-123".into(),
            meta: Meta {
                attempt: 2,
                headers,
            },
        };
        let (out, flags) = ours(&request);
        // The headers map is the third level: Request > Meta > map.
        assert_eq!(
            out,
            r#"{"url":"https://x","api_key":"[redacted]","meta":{"attempt":2,"headers":{"Authorization":"[redacted]"}}}"#
        );
        assert!(flags.redacted);
        assert!(!out.contains("sk-123") && !out.contains("Bearer"));

        /// Fails the test if it is ever serialized.
        struct Untouchable;
        impl Serialize for Untouchable {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                panic!("a redacted value was serialized");
            }
        }
        #[derive(Serialize)]
        enum Login {
            Password {
                user: &'static str,
                password: Untouchable,
            },
        }
        let (out, _) = ours(&Login::Password {
            user: "u",
            password: Untouchable,
        });
        assert_eq!(out, r#"{"Password":{"user":"u","password":"[redacted]"}}"#);

        let map: BTreeMap<&str, Untouchable> =
            [("session_cookie", Untouchable)].into_iter().collect();
        assert_eq!(ours(&map).0, r#"{"session_cookie":"[redacted]"}"#);

        // A unit variant is written as a string key, so it is checked too.
        #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
        enum Header {
            Authorization,
            Accept,
        }
        let map: BTreeMap<Header, &str> =
            [(Header::Authorization, "Basic x"), (Header::Accept, "*/*")]
                .into_iter()
                .collect();
        assert_eq!(
            ours(&map).0,
            r#"{"Authorization":"[redacted]","Accept":"*/*"}"#
        );

        // Near misses stay.
        let map: BTreeMap<&str, u32> = [("prompt_tokens", 5)].into_iter().collect();
        same_as_serde_json(&map);
    }

    #[test]
    fn size_limit_stops_early() {
        let big = "x".repeat(1 << 20);
        let limit = 64 * 1024;
        let (result, out, flags) = write_with(&big, 128, limit);
        assert_eq!(result, Err(TooLarge));
        assert!(flags.truncated);
        assert!(out.len() <= limit);
        assert!(
            out.capacity() < 256 * 1024,
            "capacity {} suggests the whole string was copied",
            out.capacity()
        );
        assert!(out.starts_with("\"xxx"));

        // A long sequence stops at the limit too (no full pass over it).
        let many = vec![12_345u32; 1 << 20];
        let (result, out, _) = write_with(&many, 128, limit);
        assert_eq!(result, Err(TooLarge));
        assert!(out.len() <= limit && out.capacity() < 256 * 1024);

        // The limit counts what is already in the output.
        let redactor = Redactor::default();
        let opts = JsonOptions {
            max_depth: 8,
            redactor: &redactor,
            limit: 10,
        };
        let mut out = String::from("1234567");
        let mut flags = Flags::default();
        assert_eq!(
            write_json(&mut out, &"ab", &opts, &mut flags),
            Err(TooLarge)
        );
        let mut out = String::from("123456");
        assert_eq!(write_json(&mut out, &"ab", &opts, &mut flags), Ok(()));
        assert_eq!(out, "123456\"ab\"");

        // Numbers are cut at the limit too, never written past it.
        for (value, prefix) in [(123_456i64, "123"), (-98_765, "-98")] {
            let (result, out, _) = write_with(&value, 8, 3);
            assert_eq!(result, Err(TooLarge));
            assert_eq!(out, prefix);
        }
        let (result, out, _) = write_with(&0.123_456_f64, 8, 3);
        assert_eq!(result, Err(TooLarge));
        assert_eq!(out, "0.1");
        let (result, out, _) = write_with(&u128::MAX, 8, 5);
        assert_eq!(result, Err(TooLarge));
        assert_eq!(out, "34028");

        // Multi-byte text is never cut inside a character.
        let (result, out, _) = write_with(&"é".repeat(100), 8, 20);
        assert_eq!(result, Err(TooLarge));
        assert!(out.len() <= 20);

        // Separators, closing brackets and field names are written without
        // a check of their own, yet a value never ends past the limit...
        #[derive(Serialize)]
        struct One {
            field: u8,
        }
        let one = One { field: 1 };
        assert_eq!(write_with(&one, 8, 11).1, "{\"field\":1}");
        for limit in 0..11 {
            let (result, out, flags) = write_with(&one, 8, limit);
            assert_eq!(result, Err(TooLarge), "limit {limit}");
            assert!(flags.truncated);
            assert!(out.len() <= limit, "{out:?} is over {limit}");
        }
        // ... nor runs on through a long sequence of empty containers.
        #[derive(Serialize)]
        struct Empty {}
        let empties: Vec<Empty> = (0..1 << 20).map(|_| Empty {}).collect();
        let (result, out, _) = write_with(&empties, 128, limit);
        assert_eq!(result, Err(TooLarge));
        assert!(out.len() <= limit && out.capacity() < 256 * 1024);
        let nested: Vec<Vec<Vec<u8>>> = vec![vec![vec![]; 4]; 1 << 18];
        let (result, out, _) = write_with(&nested, 128, limit);
        assert_eq!(result, Err(TooLarge));
        assert!(out.len() <= limit && out.capacity() < 256 * 1024);
    }

    /// Fails with a custom error after writing part of itself.
    struct Failing;
    impl Serialize for Failing {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error as _, SerializeSeq as _};
            let mut seq = s.serialize_seq(None)?;
            seq.serialize_element(&1)?;
            seq.serialize_element(&f64::NAN)?;
            Err(S::Error::custom("lock \"poisoned\""))
        }
    }

    #[test]
    fn serialize_errors_replace_only_their_value() {
        #[derive(Serialize)]
        struct Holder {
            a: u8,
            b: Failing,
            c: Vec<Failing>,
            d: u8,
        }
        let (out, flags) = ours(&Holder {
            a: 1,
            b: Failing,
            c: vec![Failing],
            d: 4,
        });
        let marker = r#"{"_xray_serialize_error":"lock \"poisoned\""}"#;
        assert_eq!(
            out,
            format!(r#"{{"a":1,"b":{marker},"c":[{marker}],"d":4}}"#)
        );
        // The NaN written before the failure was discarded with its flag.
        assert!(!flags.non_finite);

        let (out, _) = ours(&Failing);
        assert_eq!(out, marker);

        let map: BTreeMap<u8, Failing> = [(1, Failing)].into_iter().collect();
        assert_eq!(ours(&map).0, format!(r#"{{"1":{marker}}}"#));

        // Even a failing map key is not an error.
        struct FailingKey;
        impl Serialize for FailingKey {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap as _;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry(&Failing, &2)?;
                map.end()
            }
        }
        let (out, flags) = ours(&FailingKey);
        assert_eq!(
            out,
            r#"{"{\"_xray_serialize_error\":\"lock \\\"poisoned\\\"\"}":2}"#
        );
        assert!(flags.non_string_keys);
    }

    #[test]
    fn too_large_cannot_be_hidden_by_a_serialize_impl() {
        /// Turns every error into a custom one, as a careless impl might.
        struct Masking(String);
        impl Serialize for Masking {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::Error as _;
                s.serialize_str(&self.0)
                    .map_err(|e| S::Error::custom(format!("masked: {e}")))
            }
        }
        let values = vec![Masking("y".repeat(100)), Masking("z".into())];
        let (result, _, flags) = write_with(&values, 8, 50);
        assert_eq!(result, Err(TooLarge));
        assert!(flags.truncated);
    }

    #[test]
    fn debug_text_is_one_redacted_string_literal() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Credentials {
            user: String,
            password: String,
            port: u16,
        }
        let creds = Credentials {
            user: "bob \"the\" builder".into(),
            password: "hunter2, really".into(),
            port: 22,
        };
        let redactor = Redactor::default();
        let opts = JsonOptions {
            max_depth: 8,
            redactor: &redactor,
            limit: BIG,
        };
        let mut out = String::new();
        let mut flags = Flags::default();
        assert_eq!(write_debug(&mut out, &creds, &opts, &mut flags), Ok(()));
        let text: String = serde_json::from_str(&out).unwrap();
        assert_eq!(
            text,
            r#"Credentials { user: "bob \"the\" builder", password: "[redacted]", port: 22 }"#
        );
        assert!(flags.redacted);
        assert!(!out.contains("hunter2"));

        let mut out = String::new();
        let mut flags = Flags::default();
        assert_eq!(
            write_debug(&mut out, "tab\there", &opts, &mut flags),
            Ok(())
        );
        assert_eq!(out, serde_json::to_string("\"tab\\there\"").unwrap());
        assert!(!flags.any());
    }

    #[test]
    fn debug_output_is_cut_off_at_the_limit() {
        /// Would print forever if nothing stopped it.
        struct Endless;
        impl std::fmt::Debug for Endless {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Endless { password: \"")?;
                loop {
                    f.write_str("secret secret secret ")?;
                }
            }
        }
        let redactor = Redactor::default();
        let opts = JsonOptions {
            max_depth: 8,
            redactor: &redactor,
            limit: 4096,
        };
        let mut out = String::new();
        let mut flags = Flags::default();
        assert_eq!(
            write_debug(&mut out, &Endless, &opts, &mut flags),
            Err(TooLarge)
        );
        assert!(flags.truncated && flags.redacted);
        assert!(out.len() <= 4096);
        // What is left for a preview is redacted already.
        assert!(!out.contains("secret"), "{out}");
    }

    #[test]
    fn failing_debug_impl_is_flagged() {
        struct Broken;
        impl std::fmt::Debug for Broken {
            fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                Err(std::fmt::Error)
            }
        }
        let redactor = Redactor::default();
        let opts = JsonOptions {
            max_depth: 8,
            redactor: &redactor,
            limit: BIG,
        };
        let mut out = String::new();
        let mut flags = Flags::default();
        assert_eq!(write_debug(&mut out, &Broken, &opts, &mut flags), Ok(()));
        assert_eq!(
            out,
            r#"{"_xray_serialize_error":"Debug implementation returned an error"}"#
        );
    }

    #[test]
    fn truncated_marker() {
        let mut out = String::new();
        write_truncated(&mut out, 65_536, "{\"a\":\"x\ny\"");
        assert_eq!(
            out,
            r#"{"_xray_truncated":true,"limit":65536,"preview":"{\"a\":\"x\ny\""}"#
        );
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["preview"], "{\"a\":\"x\ny\"");

        let mut out = String::new();
        let source = "é".repeat(300);
        write_truncated(&mut out, 1, &source);
        let value: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(value["preview"].as_str().unwrap().chars().count(), 256);
        assert_eq!(value["limit"], 1);
    }

    #[test]
    fn flags_helpers() {
        let mut flags = Flags::default();
        assert!(!flags.any());
        assert_eq!(flags.to_json_array(), "[]");
        flags.merge(Flags {
            redacted: true,
            ..Flags::default()
        });
        flags.merge(Flags {
            non_finite: true,
            ..Flags::default()
        });
        assert!(flags.any());
        assert_eq!(flags.to_json_array(), r#"["non_finite","redacted"]"#);
        let all = Flags {
            non_finite: true,
            depth_limited: true,
            non_string_keys: true,
            redacted: true,
            truncated: true,
        };
        assert_eq!(
            all.to_json_array(),
            r#"["non_finite","depth_limited","non_string_keys","redacted","truncated"]"#
        );
    }
}
