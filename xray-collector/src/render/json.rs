//! `--json` documents that are safe on a terminal too: JSON escapes the C0
//! controls itself, and this writes the other characters a terminal acts
//! on ([`escape`](super::escape)'s list: DEL, C1 controls, bidirectional
//! overrides) as `\uNNNN` escapes as well. The document stays exact: a
//! JSON reader gets back the very same strings.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use super::escape::acts_on_terminal;

/// `value` as pretty-printed JSON holding no character a terminal acts on.
pub fn to_json(value: &impl Serialize) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, TerminalSafe(PrettyFormatter::new()));
    value.serialize(&mut ser)?;
    // Only UTF-8 text and ASCII escapes were written.
    Ok(String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// Formatter methods that only lay the document out, left to
/// [`PrettyFormatter`] (`name(first)` for those taking `first: bool`).
macro_rules! forward_to_pretty {
    ($($method:ident $(($first:ident))?),+ $(,)?) => {
        $(
            fn $method<W: ?Sized + io::Write>(
                &mut self,
                writer: &mut W,
                $($first: bool)?
            ) -> io::Result<()> {
                self.0.$method(writer, $($first)?)
            }
        )+
    };
}

/// [`PrettyFormatter`], with the string fragments escaped.
struct TerminalSafe<'a>(PrettyFormatter<'a>);

impl Formatter for TerminalSafe<'_> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if acts_on_terminal(c) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                // Every such character is in the Basic Multilingual Plane.
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    forward_to_pretty! {
        begin_array, end_array, begin_array_value(first), end_array_value,
        begin_object, end_object, begin_object_key(first), begin_object_value,
        end_object_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_terminal_control_is_a_json_escape_and_the_value_survives() {
        let hostile = "a\u{1b}[2J\u{7}\u{7f}\u{9b}\u{202e}\u{2066}é\n";
        let value = serde_json::json!({ hostile: [hostile, 1, null] });
        let text = to_json(&value).unwrap();
        assert!(
            !text.chars().any(|c| acts_on_terminal(c) && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains(r"a\u001b[2J\u0007\u007f\u009b\u202e\u2066é\n"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        assert_eq!(
            to_json(&serde_json::json!({"a": [1]})).unwrap(),
            serde_json::to_string_pretty(&serde_json::json!({"a": [1]})).unwrap()
        );
    }
}
