//! W3C trace context, as X-Ray derives, stores and exchanges it.
//!
//! Every execution has a **trace id** (16 bytes) and every execution and
//! step a **span id** (8 bytes). By default both come from the record's
//! UUID: the trace id is the execution's UUID bytes, a span id the last 8
//! bytes of the step's (or execution's) UUID. An execution that continues
//! a remote trace (a `traceparent` header, an OpenTelemetry span) takes
//! that trace's id and records the remote span as its parent; its span id
//! stays derived. Ids are written as lowercase hex everywhere (outbox,
//! database columns, headers).
//!
//! In the outbox (format version 2) the `trace_id` column is NULL when the
//! trace id is the derived one, so only continued traces pay for it; it is
//! set on the execution's rows and on every row of its steps.
//! `parent_span_id` is set on an execution's rows when its parent is
//! remote.

/// A trace id: 16 bytes, never all zero.
pub type TraceId = [u8; 16];

/// A span id: 8 bytes, never all zero.
pub type SpanId = [u8; 8];

/// The trace id derived from an execution's UUID bytes.
pub fn derived_trace_id(execution_uuid: [u8; 16]) -> TraceId {
    execution_uuid
}

/// The span id derived from a step's or execution's UUID bytes: its last 8
/// bytes (the random part of X-Ray's time-ordered UUIDs).
pub fn derived_span_id(uuid: [u8; 16]) -> SpanId {
    let mut span = [0; 8];
    span.copy_from_slice(&uuid[8..]);
    span
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// The bytes of `text`, exactly `N * 2` lowercase hex digits, not all
/// zero (the W3C rules for trace and span ids); `None` otherwise.
pub fn parse_id<const N: usize>(text: &str) -> Option<[u8; N]> {
    parse_id_allow_zero(text).filter(|id| *id != [0; N])
}

fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// The `traceparent` header naming `span` of `trace`, sampled:
/// `00-<trace>-<span>-01`.
pub fn format_traceparent(trace: &TraceId, span: &SpanId) -> String {
    format!("00-{}-{}-01", hex(trace), hex(span))
}

/// The trace id and parent span id of a W3C `traceparent` header, or
/// `None` when it is malformed: a version other than two lowercase hex
/// digits, version `ff`, a version `00` header of other than 55
/// characters, ids that are not lowercase hex of the right length or are
/// all zero, flags that are not two hex digits. A header of a later
/// version is read by its first four fields, as the recommendation says
/// (it may carry more after a `-`). Surrounding spaces and tabs are
/// ignored.
pub fn parse_traceparent(header: &str) -> Option<(TraceId, SpanId)> {
    let header = header.trim_matches([' ', '\t']);
    let version: [u8; 1] = parse_id_allow_zero(header.get(..2)?)?;
    let fixed = header.get(..55)?;
    match version[0] {
        0xff => return None,
        0x00 if header.len() != 55 => return None,
        0x00 => {}
        // A later version: 55 characters, then nothing or `-` and more.
        _ if header.len() > 55 && !header[55..].starts_with('-') => return None,
        _ => {}
    }
    let mut fields = fixed.split('-');
    let (_, trace, span, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    if fields.next().is_some() {
        return None;
    }
    parse_id_allow_zero::<1>(flags)?;
    Some((parse_id(trace)?, parse_id(span)?))
}

/// As [`parse_id`], zero allowed (versions and flags).
fn parse_id_allow_zero<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = (lower_hex_digit(pair[0])? << 4) | lower_hex_digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn a_valid_header_gives_its_trace_and_parent() {
        let (trace, span) = parse_traceparent(&format!("00-{TRACE}-{SPAN}-01")).unwrap();
        assert_eq!(hex(&trace), TRACE);
        assert_eq!(hex(&span), SPAN);
        // Not sampled is still a trace to continue.
        assert!(parse_traceparent(&format!("00-{TRACE}-{SPAN}-00")).is_some());
        assert!(parse_traceparent(&format!("  00-{TRACE}-{SPAN}-01\t")).is_some());
    }

    #[test]
    fn malformed_headers_are_refused() {
        let upper = TRACE.to_uppercase();
        for bad in [
            String::new(),
            "garbage".to_owned(),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{upper}-{SPAN}-01"),
            format!("0-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-1"),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{TRACE}-{SPAN}-0g"),
            format!("00-{}-{SPAN}-01", &TRACE[1..]),
            format!("00_{TRACE}_{SPAN}_01"),
            format!("zz-{TRACE}-{SPAN}-01"),
            format!("01-{TRACE}-{SPAN}-01x"),
            format!("00-{TRACE}-{SPAN}-01é"),
        ] {
            assert_eq!(parse_traceparent(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        assert!(parse_traceparent(&format!("01-{TRACE}-{SPAN}-01")).is_some());
        assert!(parse_traceparent(&format!("cc-{TRACE}-{SPAN}-01-what-follows")).is_some());
    }

    #[test]
    fn formatting_and_parsing_agree() {
        let trace = parse_id::<16>(TRACE).unwrap();
        let span = parse_id::<8>(SPAN).unwrap();
        let header = format_traceparent(&trace, &span);
        assert_eq!(header, format!("00-{TRACE}-{SPAN}-01"));
        assert_eq!(parse_traceparent(&header), Some((trace, span)));
    }

    #[test]
    fn ids_derive_from_uuid_bytes() {
        let uuid: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
        assert_eq!(
            hex(&derived_trace_id(uuid)),
            "0102030405060708090a0b0c0d0e0f10"
        );
        assert_eq!(hex(&derived_span_id(uuid)), "090a0b0c0d0e0f10");
    }
}
