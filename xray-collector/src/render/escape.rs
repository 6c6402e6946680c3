//! Captured text on a terminal: the one place that decides what of it may
//! reach the reader's terminal as is.
//!
//! Step names, inputs, outputs, errors, decision reasons and ids come from
//! the traced program, and through it from its users and its LLMs: hostile
//! text. A terminal acts on some characters instead of showing them — an
//! escape sequence (`ESC ] 0 ; … BEL` retitles the window, `ESC [ 2 J`
//! clears the screen), a carriage return or backspace that overwrites what
//! was printed, a C1 control (`U+009B` is a one-character `ESC [`) — and
//! bidirectional overrides reorder what follows them. Every human rendering
//! passes captured text through [`escape`], which spells each such
//! character out (`\x1b`, `\r`, `\u{9b}`, `\u{202e}`); everything else,
//! non-ASCII letters included, is shown as it is. `--json` output is
//! escaped by JSON itself.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every character a terminal would act on spelt out:
/// C0 controls and DEL as `\n`, `\r`, `\t` or `\xNN`; C1 controls, the
/// bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069) and the line and paragraph separators (U+2028, U+2029)
/// as `\u{NNNN}`. Borrows when there is nothing to escape. Escaping
/// twice changes nothing more: the result holds no such character.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if acts_on_terminal(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The lines of `text`, each [escaped](escape): for text shown on several
/// lines (`show --full`), whose line breaks (`\n`, or `\r\n`) stay breaks.
pub fn escape_lines(text: &str) -> impl Iterator<Item = Cow<'_, str>> {
    text.split('\n')
        .map(|line| escape(line.strip_suffix('\r').unwrap_or(line)))
}

/// Controls (C0, DEL, C1: Unicode's `Cc`), the bidirectional formatting
/// characters that reorder text, and the separators some terminals break
/// lines at: what [`escape`] spells out.
pub(crate) fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_are_spelt_out() {
        assert_eq!(
            escape("\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            "\\x1b]0;pwned\\x07\\x1b[2J"
        );
        assert_eq!(
            escape("a\r\nb\tc\u{8}\u{7f}\0"),
            "a\\r\\nb\\tc\\x08\\x7f\\x00"
        );
        assert_eq!(escape("\u{9b}31m\u{85}"), "\\u{9b}31m\\u{85}");
        assert_eq!(
            escape("\u{202e}txt.exe\u{2066}\u{2069}\u{202a}\u{2028}"),
            "\\u{202e}txt.exe\\u{2066}\\u{2069}\\u{202a}\\u{2028}"
        );
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in [
            "",
            "laptop stand",
            "Größe ≤ 50 €",
            "日本語",
            "emoji 🎉",
            "a\\x1b",
        ] {
            assert!(
                matches!(escape(text), Cow::Borrowed(t) if t == text),
                "{text}"
            );
        }
    }

    #[test]
    fn escaping_twice_changes_nothing_more() {
        let once = escape("\u{1b}[31m\u{202e}x\u{9b}").into_owned();
        assert_eq!(escape(&once), once);
    }

    #[test]
    fn lines_stay_lines_and_each_is_escaped() {
        let lines: Vec<_> = escape_lines("first\u{1b}[2J\r\nsecond\rx\nthird").collect();
        assert_eq!(lines, ["first\\x1b[2J", "second\\rx", "third"]);
    }
}
