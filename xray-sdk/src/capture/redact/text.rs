//! Redaction of free text: `Debug` output, error messages and their
//! `source()` chains, panic messages, decision reasons, `xray::reason` text,
//! event messages and the text of `tracing` fields.
//!
//! The value after a secret key is replaced in each of these forms (the key
//! matched as everywhere, by [`Redactor::is_secret`]):
//!
//! | form | example | becomes |
//! |---|---|---|
//! | Debug field, prose | `password: hunter2`, `password:hunter2` | `password: [redacted]` |
//! | quoted key (JSON, maps) | `"token": "abc"`, `\"token\":\"abc\"`, `'token': 'abc'` | `"token": "[redacted]"` |
//! | assignment, query string, logfmt, CLI | `token=abc`, `?api_key=abc&x=1`, `--password=abc`, `pwd = abc`, `token => abc` | `token=[redacted]` |
//! | tuple or struct variant | `ApiKey("sk-1")`, `Credentials { user: "u" }` | `ApiKey("[redacted]")`, `Credentials { [redacted] }` |
//!
//! and, whatever the key, in these:
//!
//! | form | example | becomes |
//! |---|---|---|
//! | HTTP credentials | `Bearer eyJhbGci…`, `Basic dXNlcjpwYXNz` | `Bearer [redacted]` |
//! | password in a URL | `postgres://u:p@ss@db/x` | `postgres://u:[redacted]@db/x` |
//!
//! A value runs to the end of a quoted string or balanced `()`/`[]`/`{}`
//! group, or else: after `:` up to the next `,` or line break (or the
//! closing quote or bracket around it), after `=` up to the next space,
//! `&`, `;`, `,`, quote or closing bracket. Redacting too much is preferred
//! to too little, so prose such as `token: expired` loses its last word.
//!
//! An HTTP credential is a word of base64/token characters after `Bearer`,
//! `bearer`, `BEARER`, `Basic` or `BASIC` and a space; all-lowercase words
//! shorter than 20 letters are left (`Basic plan`, `Bearer tokens`): real
//! credentials mix cases or digits, or are long.
//!
//! This is a heuristic over text, not a parser: a secret printed with no key
//! in one of these forms (a tuple struct `Creds("u", "p")`, a bare string)
//! is not found, and text that merely looks like a secret field is redacted.
//! Typed values captured through `Serialize` are redacted exactly; this
//! narrows what text can leak.

use super::{Redactor, REDACTED_TEXT};

impl Redactor {
    /// The text with every secret it recognises replaced (see the module
    /// docs), or `None` when there was nothing to replace, so the caller
    /// keeps the original without copying it.
    pub(crate) fn redact_text(&self, text: &str) -> Option<String> {
        if self.is_empty() || text.is_empty() {
            return None;
        }
        let bytes = text.as_bytes();
        let mut edit = Edit::new(text);
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'\\' {
                // An escape of Debug or JSON text: `\"` is not a quote. A
                // non-ASCII escaped character is skipped by the word rule.
                i += if bytes.get(i + 1).is_some_and(u8::is_ascii) {
                    2
                } else {
                    1
                };
                continue;
            }
            if b == b':' && bytes[i + 1..].starts_with(b"//") {
                i = url_password(&mut edit, bytes, i).unwrap_or(i + 1);
                continue;
            }
            if !is_word_byte(b) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_word_byte(bytes[i]) {
                i += 1;
            }
            // A run starting with a digit is a number (`1e5`, `12:30`).
            if b.is_ascii_digit() {
                continue;
            }
            let Some(word) = text.get(start..i) else {
                continue;
            };
            if let Some(next) = self.after_word(&mut edit, bytes, word, i) {
                i = next;
            }
        }
        edit.finish()
    }

    /// Redacts what follows the word `word` (ending at `end`) when it is a
    /// secret key followed by its value, or an HTTP scheme followed by a
    /// credential. Returns where scanning resumes when it redacted.
    fn after_word(
        &self,
        edit: &mut Edit<'_>,
        bytes: &[u8],
        word: &str,
        end: usize,
    ) -> Option<usize> {
        if matches!(word, "Bearer" | "bearer" | "BEARER" | "Basic" | "BASIC") {
            return credential(edit, bytes, end);
        }
        let (form, value_start) = separator(bytes, end)?;
        if !self.is_secret(word) {
            return None;
        }
        let value_end = match form {
            Form::Colon => colon_value_end(bytes, value_start),
            Form::Equals => equals_value_end(bytes, value_start),
            Form::Group => {
                // An unclosed group (cut text) runs to the end.
                let (close, inner_end) = match group_end(bytes, value_start) {
                    Some(after) => (after, after - 1),
                    None => (bytes.len(), bytes.len()),
                };
                let (s, e) = trim(bytes, value_start + 1, inner_end);
                edit.replace_value(bytes, s, e);
                return Some(close);
            }
        };
        let (s, e) = trim(bytes, value_start, value_end);
        edit.replace_value(bytes, s, e);
        Some(value_end.max(end))
    }
}

/// How a key is tied to its value.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Form {
    /// `key: value`, `"key": value`
    Colon,
    /// `key=value`, `key = value`, `key => value`
    Equals,
    /// `Key(…)`, `Key { … }`: the value is the group opening at the
    /// returned index.
    Group,
}

/// When the text after a word (from `pos`) ties it to a value: the form and
/// where the value starts.
fn separator(bytes: &[u8], pos: usize) -> Option<(Form, usize)> {
    let mut j = pos;
    // The closing quote of a quoted key: `"key"`, `\"key\"`, `'key'`.
    let quoted = if bytes.get(j) == Some(&b'"') || bytes.get(j) == Some(&b'\'') {
        j += 1;
        true
    } else if bytes[j..].starts_with(b"\\\"") {
        j += 2;
        true
    } else {
        false
    };
    if !quoted {
        match bytes.get(j) {
            Some(b'(') => return Some((Form::Group, j)),
            Some(b'{') => return Some((Form::Group, j)),
            Some(b' ') if bytes.get(j + 1) == Some(&b'{') => return Some((Form::Group, j + 1)),
            _ => {}
        }
    }
    let before = j;
    j = skip_blanks(bytes, j);
    let form = match bytes.get(j)? {
        // No blank before a colon, and not a path (`std::io`) or a URL.
        b':' if j == before => {
            if matches!(bytes.get(j + 1), Some(b':' | b'/')) {
                return None;
            }
            j += 1;
            Form::Colon
        }
        b'=' => match bytes.get(j + 1) {
            Some(b'=') => return None,
            Some(b'>') => {
                j += 2;
                Form::Equals
            }
            _ => {
                j += 1;
                Form::Equals
            }
        },
        _ => return None,
    };
    let start = skip_blanks(bytes, j);
    (start < bytes.len()).then_some((form, start))
}

/// Index of the first byte from `j` that is not a space or a tab.
fn skip_blanks(bytes: &[u8], mut j: usize) -> usize {
    while matches!(bytes.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    j
}

/// `bytes[start..end]` without surrounding ASCII whitespace.
fn trim(bytes: &[u8], mut start: usize, mut end: usize) -> (usize, usize) {
    end = end.min(bytes.len());
    while start < end && bytes[start].is_ascii_whitespace() {
        start += 1;
    }
    while end > start && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    (start, end)
}

/// End of a value that starts with a quote (`"…"`, `\"…\"`, `'…'`), if it
/// does.
fn quoted_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => Some(skip_string(bytes, start)),
        b'\\' if bytes.get(start + 1) == Some(&b'"') => Some(escaped_string_end(bytes, start)),
        b'\'' => {
            Some(skip_char_literal(bytes, start).unwrap_or_else(|| single_quoted_end(bytes, start)))
        }
        _ => None,
    }
}

/// End of the value after `key:` starting at `start`.
fn colon_value_end(bytes: &[u8], start: usize) -> usize {
    if let Some(end) = quoted_end(bytes, start) {
        return end;
    }
    let mut depth = 0usize;
    let mut j = start;
    while j < bytes.len() {
        match bytes[j] {
            // A quote in a bare value closes the string the value is in.
            b'"' if depth == 0 => break,
            b'"' => j = skip_string(bytes, j),
            b'\\' if depth == 0 && bytes.get(j + 1) == Some(&b'"') => break,
            b'\\' => j += 2,
            b'\'' => j = skip_char_literal(bytes, j).unwrap_or(j + 1),
            b'(' | b'[' | b'{' => {
                depth += 1;
                j += 1;
            }
            b')' | b']' | b'}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                j += 1;
            }
            // A line break outside any group ends a value in hand-written
            // `key: value` lines; pretty Debug output never breaks a value
            // outside its brackets.
            b',' | b'\n' | b'\r' if depth == 0 => break,
            _ => j += 1,
        }
    }
    j.min(bytes.len())
}

/// End of the value after `key=` starting at `start`.
fn equals_value_end(bytes: &[u8], start: usize) -> usize {
    if let Some(end) = quoted_end(bytes, start) {
        return end;
    }
    if bytes[start..].starts_with(REDACTED_TEXT.as_bytes()) {
        return start + REDACTED_TEXT.len();
    }
    let mut j = start;
    while j < bytes.len()
        && !bytes[j].is_ascii_whitespace()
        && !matches!(
            bytes[j],
            b'&' | b';' | b',' | b'"' | b'\'' | b'\\' | b')' | b']' | b'}' | b'<' | b'>'
        )
    {
        j += 1;
    }
    j
}

/// Index just after the group opening at `open` (a `(`, `[` or `{`), or
/// `None` when the text ends before it closes.
fn group_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = open;
    while j < bytes.len() {
        match bytes[j] {
            b'"' => j = skip_string(bytes, j),
            b'\\' => j += 2,
            b'\'' => j = skip_char_literal(bytes, j).unwrap_or(j + 1),
            b'(' | b'[' | b'{' => {
                depth += 1;
                j += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                j += 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => j += 1,
        }
    }
    None
}

/// Redacts the credential after an HTTP scheme word ending at `end`.
fn credential(edit: &mut Edit<'_>, bytes: &[u8], end: usize) -> Option<usize> {
    if !matches!(bytes.get(end), Some(b' ' | b'\t')) {
        return None;
    }
    let start = skip_blanks(bytes, end);
    let mut j = start;
    while j < bytes.len()
        && (bytes[j].is_ascii_alphanumeric()
            || matches!(bytes[j], b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
    {
        j += 1;
    }
    while bytes.get(j) == Some(&b'=') {
        j += 1;
    }
    let token = &bytes[start..j];
    let prose = token.iter().all(u8::is_ascii_lowercase) && token.len() < 20;
    // `Bearer Bearer x`: the credential is after the second one.
    let scheme = matches!(token, b"Bearer" | b"BEARER" | b"Basic" | b"BASIC");
    if token.is_empty() || prose || scheme {
        return None;
    }
    edit.replace_value(bytes, start, j);
    Some(j)
}

/// Redacts the password of the URL whose `://` starts at `colon`:
/// everything between the first `:` after `//` and the last `@` before the
/// URL ends (at a space, quote or angle bracket), so a password holding `@`
/// or `/` goes whole.
fn url_password(edit: &mut Edit<'_>, bytes: &[u8], colon: usize) -> Option<usize> {
    let from = colon + 3;
    let mut end = from;
    while end < bytes.len()
        && !bytes[end].is_ascii_whitespace()
        && !matches!(bytes[end], b'"' | b'\'' | b'<' | b'>' | b'\\')
    {
        end += 1;
    }
    let at = from + bytes[from..end].iter().rposition(|&b| b == b'@')?;
    let user_colon = from + bytes[from..at].iter().position(|&b| b == b':')?;
    let start = user_colon + 1;
    if start == at {
        return None;
    }
    edit.replace_value(bytes, start, at);
    Some(at)
}

/// Bytes of a word: a key, an HTTP scheme, a number. `-` and `.` count, as
/// in `X-Api-Key` and `db.password`; non-ASCII bytes too, so that a Unicode
/// identifier is one word, not a word-like suffix.
#[inline]
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') || b >= 0x80
}

/// Index just after the string literal opening at `start` (which holds `"`),
/// or the text length when it is unterminated.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
    bytes.len()
}

/// Index just after the escaped string `\"…\"` opening at `start`, or the
/// text length when it is unterminated.
fn escaped_string_end(bytes: &[u8], start: usize) -> usize {
    let mut j = start + 2;
    while j < bytes.len() {
        if bytes[j] == b'\\' {
            if bytes.get(j + 1) == Some(&b'"') {
                return j + 2;
            }
            j += 2;
        } else {
            j += 1;
        }
    }
    bytes.len()
}

/// Index just after the single-quoted string opening at `start`: the next
/// `'` on the same line, or the line's end when there is none.
fn single_quoted_end(bytes: &[u8], start: usize) -> usize {
    let mut j = start + 1;
    while j < bytes.len() && bytes[j] != b'\n' {
        match bytes[j] {
            b'\\' => j += 2,
            b'\'' => return j + 1,
            _ => j += 1,
        }
    }
    j.min(bytes.len())
}

/// Index just after the char literal opening at `start` (which holds `'`), or
/// `None` when the quote does not open one (e.g. an apostrophe in prose).
fn skip_char_literal(bytes: &[u8], start: usize) -> Option<usize> {
    let first = *bytes.get(start + 1)?;
    if first == b'\\' {
        // Longest escape Debug prints for a char is `\u{10ffff}`.
        let limit = (start + 13).min(bytes.len());
        let close = (start + 3..limit).find(|&j| bytes[j] == b'\'')?;
        return Some(close + 1);
    }
    let width = utf8_width(first)?;
    let close = start + 1 + width;
    (bytes.get(close) == Some(&b'\'')).then_some(close + 1)
}

/// Length of the UTF-8 sequence that starts with `lead`, if it is a lead byte.
fn utf8_width(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7f => Some(1),
        0xc0..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf7 => Some(4),
        _ => None,
    }
}

/// The redacted copy of a text, built only once something is replaced.
struct Edit<'t> {
    text: &'t str,
    out: Option<String>,
    /// Bytes of `text` before this index are in `out`.
    copied: usize,
}

impl<'t> Edit<'t> {
    fn new(text: &'t str) -> Self {
        Edit {
            text,
            out: None,
            copied: 0,
        }
    }

    /// Replaces the value `bytes[start..end]` by the marker, keeping its
    /// quotes: `"[redacted]"` for a quoted string, `[redacted]` otherwise.
    /// An empty value, or one that already is the marker, is left alone.
    fn replace_value(&mut self, bytes: &[u8], start: usize, end: usize) {
        let value = &bytes[start..end.min(bytes.len()).max(start)];
        let quote: &str = if value.starts_with(b"\\\"") {
            "\\\""
        } else if value.first() == Some(&b'"') {
            "\""
        } else if value.first() == Some(&b'\'') {
            "'"
        } else {
            ""
        };
        let opened = value.strip_prefix(quote.as_bytes()).unwrap_or(value);
        // A value that opens a single quote it does not close gets no
        // closing one: `'` + the next character + `'` would read as a char
        // literal (`password('"")'` would become `password('[redacted]')'`,
        // whose `')'` swallows the group's end when redacted again). A
        // double quote is closed, as a cut string's would be.
        let closed = quote != "'" || opened.ends_with(b"'");
        let inner = opened.strip_suffix(quote.as_bytes()).unwrap_or(opened);
        if value.is_empty() || inner == REDACTED_TEXT.as_bytes() {
            return;
        }
        let (Some(before), true) = (
            self.text.get(self.copied..start),
            self.text.is_char_boundary(end),
        ) else {
            return;
        };
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.text.len()));
        out.push_str(before);
        out.push_str(quote);
        out.push_str(REDACTED_TEXT);
        if closed {
            out.push_str(quote);
        }
        self.copied = end;
    }

    fn finish(self) -> Option<String> {
        let mut out = self.out?;
        out.push_str(self.text.get(self.copied..).unwrap_or_default());
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Redactor;

    fn redact(text: &str) -> Option<String> {
        Redactor::default().redact_text(text)
    }

    /// The text after redaction (the original when nothing changed).
    fn shown(text: &str) -> String {
        redact(text).unwrap_or_else(|| text.to_owned())
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Inner {
        token: Option<String>,
        label: &'static str,
    }

    #[derive(Debug)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        api_key: String,
        inner: Inner,
        list: Vec<u32>,
        secret: Inner,
        letter: char,
    }

    fn sample() -> Outer {
        Outer {
            name: "a, {b} \"c\" }".to_owned(),
            api_key: "k-1, \"x\" }) ".to_owned(),
            inner: Inner {
                token: Some("t, }".to_owned()),
                label: "keep, me",
            },
            list: vec![1, 2],
            secret: Inner {
                token: None,
                label: "gone",
            },
            letter: '}',
        }
    }

    #[test]
    fn redacts_compact_debug_of_nested_structs() {
        let text = format!("{:?}", sample());
        assert_eq!(
            redact(&text).expect("something to redact"),
            r#"Outer { name: "a, {b} \"c\" }", api_key: "[redacted]", inner: Inner { token: [redacted], label: "keep, me" }, list: [1, 2], secret: [redacted], letter: '}' }"#
        );
    }

    #[test]
    fn redacts_pretty_debug_of_nested_structs() {
        let text = format!("{:#?}", sample());
        let expected = r#"Outer {
    name: "a, {b} \"c\" }",
    api_key: "[redacted]",
    inner: Inner {
        token: [redacted],
        label: "keep, me",
    },
    list: [
        1,
        2,
    ],
    secret: [redacted],
    letter: '}',
}"#;
        assert_eq!(redact(&text).expect("something to redact"), expected);
    }

    #[test]
    fn redacts_map_entries_with_secret_string_keys() {
        let mut map = std::collections::BTreeMap::new();
        map.insert("Authorization", "Bearer abc, def");
        map.insert("accept", "json");
        map.insert("x-api-key", "{k}");
        let text = format!("{map:?}");
        assert_eq!(
            redact(&text).as_deref(),
            Some(r#"{"Authorization": "[redacted]", "accept": "json", "x-api-key": "[redacted]"}"#)
        );
    }

    #[test]
    fn nothing_to_redact_returns_none() {
        for text in [
            "Product { asin: \"B0\", price: 12.5, prompt_tokens: 7 }",
            "std::io::Error: token",
            "\"password\"",
            "password",
            "[\"password\", \"token\"]",
            "don't: panic",
            "",
            "Err(\"unterminated",
            "token::parse and http://host/path?q=1",
            "the token expired at 12:30, retry",
            "Basic plan rejected: 79.99 > 50",
            "Bearer tokens expire",
            "a == b, token == x",
            "see https://example.com/a@b",
            "postgres://user@host/db",
        ] {
            assert_eq!(redact(text), None, "{text}");
        }
    }

    #[test]
    fn free_text_forms() {
        for (text, want) in [
            ("password: hunter2", "password: [redacted]"),
            ("password:hunter2", "password:[redacted]"),
            (
                "login failed: password=hunter2 user=bob",
                "login failed: password=[redacted] user=bob",
            ),
            (
                "GET /v1?user=u&api_key=abc123&x=1",
                "GET /v1?user=u&api_key=[redacted]&x=1",
            ),
            (
                "run --password=s3cr3t --verbose",
                "run --password=[redacted] --verbose",
            ),
            ("pwd = hunter2; next", "pwd = [redacted]; next"),
            ("token => 'abc def', x", "token => '[redacted]', x"),
            (
                "{'token': 'abc', 'n': 1}",
                "{'token': '[redacted]', 'n': 1}",
            ),
            (
                r#"{"token":"abc","n":1}"#,
                r#"{"token":"[redacted]","n":1}"#,
            ),
            (r#"{"token": "abc"}"#, r#"{"token": "[redacted]"}"#),
            (
                r#""{\"token\": \"abc\"}""#,
                r#""{\"token\": \"[redacted]\"}""#,
            ),
            (
                "Authorization: Bearer eyJhbGciOi.x.y\nnext",
                "Authorization: [redacted]\nnext",
            ),
            (
                "sent Bearer eyJhbGciOiJIUzI1NiJ9.e30.x to api",
                "sent Bearer [redacted] to api",
            ),
            (
                "header Basic dXNlcjpwYXNz= rejected",
                "header Basic [redacted] rejected",
            ),
            (
                "with bearer abcdefghijklmnopqrstuvwxyz",
                "with bearer [redacted]",
            ),
            (
                "cannot connect to postgres://u:p@ss@db:5432/x",
                "cannot connect to postgres://u:[redacted]@db:5432/x",
            ),
            ("redis://:hunter2@cache", "redis://:[redacted]@cache"),
            ("ApiKey(\"sk-1\")", "ApiKey(\"[redacted]\")"),
            ("Some(Token(\"t\"))", "Some(Token(\"[redacted]\"))"),
            (
                "Credentials { user: \"u\", pass: \"p\" }",
                "Credentials { [redacted] }",
            ),
            ("Wrapper(\"token: x\")", "Wrapper(\"token: [redacted]\")"),
            ("db.password=x", "db.password=[redacted]"),
            ("X-Api-Key: abc", "X-Api-Key: [redacted]"),
        ] {
            assert_eq!(shown(text), want, "{text}");
        }
    }

    #[test]
    fn value_extends_over_balanced_groups_and_escapes() {
        let text = r#"S { token: Some(Tok { raw: "a\"), ]", parts: [(1, ')')] }), next: 1 }"#;
        assert_eq!(
            redact(text).as_deref(),
            Some(r#"S { token: [redacted], next: 1 }"#)
        );
    }

    #[test]
    fn value_at_end_of_text_or_line() {
        assert_eq!(
            redact("user: bob\ntoken: abc def\nhost: h").as_deref(),
            Some("user: bob\ntoken: [redacted]\nhost: h")
        );
        // Truncated Debug text still loses the secret it started.
        assert_eq!(
            redact("A { password: \"hun").as_deref(),
            Some("A { password: \"[redacted]\"")
        );
    }

    #[test]
    fn empty_and_already_redacted_values_are_left_alone() {
        for text in [
            "A { password: }",
            "A { password:  , b: 1 }",
            "password=",
            "A { token: \"[redacted]\" }",
            "token=[redacted]&x=1",
            "Bearer [redacted]",
            "postgres://u:[redacted]@h",
        ] {
            assert_eq!(redact(text), None, "{text}");
        }
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        for text in [
            format!("{:?}", sample()),
            format!("{:#?}", sample()),
            "password=a token: b Bearer Zm9vYmFy postgres://u:p@h ApiKey(\"k\")".to_owned(),
            // A single quote opened in a group and never closed: no closing
            // quote is added, which would read as the char literal `')'`.
            "password('\"\")'".to_owned(),
        ] {
            let once = shown(&text);
            assert_eq!(redact(&once), None, "{once}");
        }
        assert_eq!(shown("password('\"\")'"), "password('[redacted])'");
    }

    #[test]
    fn every_prefix_of_debug_text_is_handled() {
        // Debug output cut at the size limit must still not leak, nor panic.
        let value = Outer {
            name: "n".to_owned(),
            api_key: "SECRET-A, }".to_owned(),
            inner: Inner {
                token: Some("SECRET-B".to_owned()),
                label: "l",
            },
            list: vec![],
            secret: Inner {
                token: None,
                label: "SECRET-C",
            },
            letter: '\'',
        };
        for text in [format!("{value:?}"), format!("{value:#?}")] {
            for (cut, _) in text.char_indices() {
                let prefix = &text[..cut];
                let shown = shown(prefix);
                assert!(!shown.contains("SECRET"), "{shown}");
            }
        }
    }

    #[test]
    fn unicode_text_around_secrets_is_preserved() {
        assert_eq!(
            redact("Ünï { grüße: \"😀\", cookie: \"🍪\", é: 'é' }").as_deref(),
            Some("Ünï { grüße: \"😀\", cookie: \"[redacted]\", é: 'é' }")
        );
        assert_eq!(
            redact("\\é token=ü€ \\").as_deref(),
            Some("\\é token=[redacted] \\")
        );
    }

    #[test]
    fn an_empty_list_redacts_nothing() {
        let none = Redactor::new(Vec::<String>::new());
        assert_eq!(none.redact_text("A { password: 1 }"), None);
    }

    mod properties {
        use proptest::prelude::*;

        use super::shown;

        /// A secret key as real code spells it: a list entry, maybe with a
        /// prefix, in some case and separator style.
        fn secret_key() -> impl Strategy<Value = String> {
            let entries = prop::sample::select(vec![
                "password",
                "passwd",
                "pwd",
                "secret",
                "token",
                "api_key",
                "apiKey",
                "X-Api-Key",
                "access_token",
                "client_secret",
                "private_key",
                "aws_secret_access_key",
                "Authorization",
                "cookie",
                "credentials",
                "passphrase",
            ]);
            let prefix = prop::sample::select(vec!["", "db_", "user.", "--", "x-"]);
            (prefix, entries, any::<bool>()).prop_map(|(p, e, upper)| {
                let key = format!("{p}{e}");
                if upper {
                    key.to_uppercase()
                } else {
                    key
                }
            })
        }

        /// A secret value: starts with `S3CR3T` (so it cannot be mistaken
        /// for the surrounding text) and holds characters that are not
        /// delimiters of the form it is written in.
        fn secret_value() -> impl Strategy<Value = String> {
            "[A-Za-z0-9!@#$%^*_+./:?~-]{1,24}".prop_map(|tail| format!("S3CR3T{tail}"))
        }

        /// An HTTP credential: token68 characters (RFC 7235).
        fn credential() -> impl Strategy<Value = String> {
            "[A-Za-z0-9._~+/-]{1,40}={0,2}".prop_map(|tail| format!("S3CR3T{tail}"))
        }

        /// Ordinary words and punctuation, free of secret keys, HTTP
        /// schemes and URLs.
        fn plain_text() -> impl Strategy<Value = String> {
            let word = prop::sample::select(vec![
                "price",
                "filter",
                "rejected",
                "candidate",
                "B07X",
                "79.99",
                ">",
                "50",
                "name:",
                "asin=B0",
                "query",
                "(",
                ")",
                "{",
                "}",
                "[",
                "]",
                ",",
                "\"",
                "'",
                "\n",
                "é",
                "prompt_tokens:",
                "12",
                "score=0.5",
                "std::io",
                "ok",
                "Basic plan",
                "Bearer tokens",
                "=",
                ":",
                "\\",
                "&",
                ";",
                "monkey:",
                "authority=",
                "secretary:",
                "://",
            ]);
            prop::collection::vec(word, 0..24).prop_map(|words| words.join(" "))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn no_secret_value_survives_in_any_form(
                key in secret_key(),
                value in secret_value(),
                token in credential(),
                form in 0usize..9,
                before in plain_text(),
                after in plain_text(),
            ) {
                let written = match form {
                    0 => format!("{key}: {value}"),
                    1 => format!("{key}={value}"),
                    2 => format!("\"{key}\": \"{value}\""),
                    3 => format!("\"{key}\":\"{value}\""),
                    4 => format!("Bearer {token}"),
                    5 => format!("Basic {token}"),
                    6 => format!("{key} = \"{value}\""),
                    7 => format!("S {{ {key}: \"{value}\" }}"),
                    _ => format!("postgres://user:{value}@db/x"),
                };
                let text = format!("{before} {written} {after}");
                let out = shown(&text);
                let secret = if form == 4 || form == 5 { &token } else { &value };
                prop_assert!(!out.contains(secret.as_str()), "{text:?} -> {out:?}");
                prop_assert!(!out.contains("S3CR3T"), "{text:?} -> {out:?}");
            }

            #[test]
            fn plain_text_without_secrets_is_unchanged(text in plain_text()) {
                prop_assert_eq!(shown(&text), text);
            }

            #[test]
            fn structured_garbage_is_handled_without_panicking(
                parts in prop::collection::vec(prop::sample::select(vec![
                    "password", "Token", "Bearer ", "Basic ", "://", "@", ":", "=", "=>",
                    "\"", "\\\"", "\\", "'", "(", ")", "{", " {", "}", "[", "]", ",",
                    "\n", " ", "&", "?", "é", "x", "9", "[redacted]", "\"[redacted]\"",
                ]), 0..40),
            ) {
                let text: String = parts.concat();
                let once = shown(&text);
                prop_assert_eq!(shown(&once), once.clone());
            }

            #[test]
            fn any_text_is_handled_without_panicking(text in "\\PC{0,200}") {
                let once = shown(&text);
                // Redacting is idempotent: what it left has nothing more.
                prop_assert_eq!(shown(&once), once.clone());
            }
        }
    }
}
