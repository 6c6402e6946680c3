//! Text under a size limit: appending to the output without passing the
//! limit (or filling up to it, for the preview), JSON string escaping
//! exactly as `serde_json` escapes, and integers in decimal. The serializers
//! build on these; none of them knows about values.

use std::fmt;

/// The output reached the size limit; the value was not written completely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge;

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("captured value exceeds the payload size limit")
    }
}

impl std::error::Error for TooLarge {}

/// Appends `s`, or fills `out` up to `limit` (on a char boundary) and fails.
///
/// Filling rather than stopping short keeps as much as possible for the
/// caller's preview at the cost of at most `limit` bytes of copying.
#[inline]
pub(super) fn push_limited(out: &mut String, limit: usize, s: &str) -> Result<(), TooLarge> {
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
pub(super) fn push_ascii_limited(
    out: &mut String,
    limit: usize,
    ascii: &[u8],
) -> Result<(), TooLarge> {
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
pub(crate) fn floor_char_boundary(s: &str, index: usize) -> usize {
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
pub(super) static ESCAPE: [u8; 256] = {
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
pub(super) fn first_escape(bytes: &[u8]) -> Option<usize> {
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
pub(super) fn push_str_literal(out: &mut String, limit: usize, s: &str) -> Result<(), TooLarge> {
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
pub(super) fn push_escaped(out: &mut String, limit: usize, s: &str) -> Result<(), TooLarge> {
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
pub(super) fn usize_to_u64(v: usize) -> u64 {
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
pub(super) fn push_integer(
    out: &mut String,
    limit: usize,
    v: u64,
    negative: bool,
) -> Result<(), TooLarge> {
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
pub(super) struct Digits {
    buf: [u8; 40],
    start: usize,
}

impl Digits {
    pub(super) fn i128(v: i128) -> Self {
        let mut d = Digits::u128(v.unsigned_abs());
        if v < 0 {
            d.start -= 1;
            d.buf[d.start] = b'-';
        }
        d
    }

    pub(super) fn u128(mut v: u128) -> Self {
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

    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// `fmt::Write` into a buffer that refuses to grow past `budget` bytes, so a
/// huge `Debug` output is abandoned early instead of being produced in full.
pub(crate) struct BoundedWriter {
    pub buf: String,
    pub budget: usize,
    pub overflow: bool,
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
