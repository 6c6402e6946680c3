//! Secret detection for argument names, JSON keys and struct fields, plus a
//! best-effort redactor for `{:?}` text.
//!
//! Matching is deliberately loose about spelling (`api_key`, `X-Api-Key` and
//! `apiKey` are the same thing to a human reading a log) but strict about word
//! endings, so `access_token` is a secret while `prompt_tokens` (an LLM usage
//! counter that X-Ray itself records) is not.

/// The replacement written in place of a secret value, as JSON text.
pub(crate) const REDACTED_JSON: &str = "\"[redacted]\"";

/// Decides which keys name secrets and removes their values from Debug text.
///
/// A key is secret when its normalised form (ASCII-lowercased, with `_`, `-`
/// and `.` removed) equals or ends with the normalised form of a list entry.
#[derive(Debug, Clone)]
pub(crate) struct Redactor {
    /// Normalised, non-empty, de-duplicated entries, grouped by last byte.
    buckets: Vec<Vec<Box<[u8]>>>,
    /// For each byte, 1 + the index of the bucket of entries ending with it
    /// (0: none). A key is only compared with entries that end like it.
    bucket_of_last: [u16; 256],
    /// One bit per pair of last two (normalised) bytes that some entry ends
    /// with; an entry of one byte sets every pair ending with it. Keys whose
    /// last byte matches a bucket (`asin` and `token` both end in `n`) are
    /// nearly all rejected by this second lookup instead of by comparing.
    last_pairs: Box<[u64; 1024]>,
}

/// The bit of [`Redactor::last_pairs`] for the pair `(before, last)`.
#[inline]
fn pair_bit(before: u8, last: u8) -> (usize, u64) {
    let pair = usize::from(before) << 8 | usize::from(last);
    (pair / 64, 1u64 << (pair % 64))
}

impl Redactor {
    /// Builds a redactor from a list of key names (matched after normalising).
    ///
    /// Entries that normalise to nothing (e.g. `"_"`) are ignored: they would
    /// otherwise match every key.
    pub(crate) fn new(keys: impl IntoIterator<Item = impl AsRef<str>>) -> Redactor {
        let mut buckets: Vec<Vec<Box<[u8]>>> = Vec::new();
        let mut bucket_of_last = [0u16; 256];
        let mut last_pairs = Box::new([0u64; 1024]);
        for key in keys {
            let normalised: Vec<u8> = key
                .as_ref()
                .bytes()
                .filter(|&b| !is_separator(b))
                .map(|b| b.to_ascii_lowercase())
                .collect();
            let Some(&last) = normalised.last() else {
                continue;
            };
            let befores = match normalised.len() {
                1 => 0..=u8::MAX,
                n => normalised[n - 2]..=normalised[n - 2],
            };
            for before in befores {
                let (word, bit) = pair_bit(before, last);
                last_pairs[word] |= bit;
            }
            let slot = &mut bucket_of_last[usize::from(last)];
            if *slot == 0 {
                buckets.push(Vec::new());
                // At most 256 distinct last bytes, so this always fits.
                *slot = u16::try_from(buckets.len()).unwrap_or(u16::MAX);
            }
            let Some(bucket) = buckets.get_mut(usize::from(*slot) - 1) else {
                continue;
            };
            if !bucket.iter().any(|e| **e == *normalised) {
                bucket.push(normalised.into_boxed_slice());
            }
        }
        Redactor {
            buckets,
            bucket_of_last,
            last_pairs,
        }
    }

    /// The default redaction list of the capture contract.
    pub(crate) fn default_keys() -> &'static [&'static str] {
        &[
            "password",
            "passwd",
            "secret",
            "token",
            "api_key",
            "apikey",
            "authorization",
            "cookie",
        ]
    }

    /// Whether `key` names a secret.
    ///
    /// Compares from the end of the key, normalising on the fly, so it never
    /// allocates whatever the key's length: it runs for every argument name,
    /// struct field and map key that is captured. The common case, a key
    /// ending in two ordinary bytes that no entry ends with, is decided
    /// inline by one table lookup.
    #[inline]
    pub(crate) fn is_secret(&self, key: &str) -> bool {
        if let [.., before, last] = key.as_bytes() {
            if !is_separator(*before) && !is_separator(*last) {
                let (word, bit) = pair_bit(before.to_ascii_lowercase(), last.to_ascii_lowercase());
                if self.last_pairs[word] & bit == 0 {
                    return false;
                }
            }
        }
        self.is_secret_slow(key)
    }

    /// [`Redactor::is_secret`] past the inline test.
    #[inline(never)]
    fn is_secret_slow(&self, key: &str) -> bool {
        let bytes = key.as_bytes();
        let mut end = bytes.len();
        while end > 0 && is_separator(bytes[end - 1]) {
            end -= 1;
        }
        if end == 0 {
            return false;
        }
        let last = bytes[end - 1].to_ascii_lowercase();
        let slot = usize::from(self.bucket_of_last[usize::from(last)]);
        if slot == 0 {
            return false;
        }
        // The byte before the last one (separators skipped): a key of one
        // byte has none and goes straight to the comparison.
        if let Some(&before) = bytes[..end - 1].iter().rev().find(|&&b| !is_separator(b)) {
            let (word, bit) = pair_bit(before.to_ascii_lowercase(), last);
            if self.last_pairs[word] & bit == 0 {
                return false;
            }
        }
        let key = &bytes[..end];
        self.buckets
            .get(slot - 1)
            .is_some_and(|bucket| bucket.iter().any(|entry| ends_with_normalised(key, entry)))
    }

    /// Best-effort redaction of Rust `{:?}` / `{:#?}` output.
    ///
    /// Replaces the value of every `ident: value` (the struct-field form of
    /// `derive(Debug)`) and every `"key": value` (the map form) whose key is
    /// secret with `"[redacted]"`. A value runs to the end of a balanced
    /// `()`/`[]`/`{}` group or quoted string, or up to the next `,`, `}`, `)`
    /// or `]` (or line break) at its own nesting level.
    ///
    /// This is a heuristic over text, not a parser of Rust values: a hand-written
    /// `Debug` impl can print a secret in a shape it does not recognise (e.g. a
    /// tuple struct, or a secret inside a string such as embedded JSON), and
    /// it can redact text that merely looks like a secret field. Typed values
    /// captured through `Serialize` are redacted exactly; this only narrows
    /// what Debug text can leak.
    ///
    /// Returns `None` when nothing was redacted, so the caller keeps the
    /// original text without copying it.
    pub(crate) fn redact_debug_text(&self, text: &str) -> Option<String> {
        if self.buckets.is_empty() {
            return None;
        }
        let bytes = text.as_bytes();
        let mut redacted: Option<String> = None;
        // Bytes of `text` before this index are already in `redacted`.
        let mut copied = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            // (key start, key end, index just after the key) when a key ends here.
            let key_span = if b == b'"' {
                let after = skip_string(bytes, i);
                // An unterminated string ends the text: no key can follow it.
                let terminated = after > i + 1 && bytes[after - 1] == b'"';
                let span = terminated.then_some((i + 1, after - 1, after));
                i = after;
                span
            } else if b == b'\'' {
                i = skip_char_literal(bytes, i).unwrap_or(i + 1);
                None
            } else if is_word_byte(b) {
                let start = i;
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                // A run starting with a digit is a number such as `1e5`.
                (!b.is_ascii_digit()).then_some((start, i, i))
            } else {
                i += 1;
                None
            };
            let Some((key_start, key_end, after_key)) = key_span else {
                continue;
            };
            let quoted_key = b == b'"';
            let Some(value_start) = value_start_after_colon(bytes, after_key, quoted_key) else {
                continue;
            };
            let Some(key) = text.get(key_start..key_end) else {
                continue;
            };
            if !self.is_secret(key) {
                continue;
            }
            let value_end = value_end(bytes, value_start);
            let (Some(before), Some(value)) = (
                text.get(copied..value_start),
                text.get(value_start..value_end),
            ) else {
                continue;
            };
            i = value_end;
            if value.is_empty() || value == REDACTED_JSON {
                continue;
            }
            let out = redacted.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(before);
            out.push_str(REDACTED_JSON);
            copied = value_end;
        }
        let mut out = redacted?;
        out.push_str(text.get(copied..).unwrap_or_default());
        Some(out)
    }
}

impl Default for Redactor {
    /// A redactor for [`Redactor::default_keys`].
    fn default() -> Self {
        Redactor::new(Redactor::default_keys())
    }
}

/// Characters ignored when comparing keys (`api_key` = `api-key` = `api.key`).
#[inline]
fn is_separator(b: u8) -> bool {
    matches!(b, b'_' | b'-' | b'.')
}

/// Whether `key` (raw bytes, already without trailing separators) ends with
/// the normalised `entry`, ignoring separators and ASCII case in `key`.
#[inline]
fn ends_with_normalised(key: &[u8], entry: &[u8]) -> bool {
    let mut k = key.len();
    for &want in entry.iter().rev() {
        loop {
            if k == 0 {
                return false;
            }
            k -= 1;
            let got = key[k];
            if !is_separator(got) {
                if got.to_ascii_lowercase() != want {
                    return false;
                }
                break;
            }
        }
    }
    // Separators and UTF-8 lead bytes are never continuation bytes, so a
    // match always starts on a character boundary of `key`.
    true
}

/// Bytes that can be part of an identifier in Debug output. Non-ASCII bytes
/// count so that a Unicode identifier is one word, not a word-like suffix.
#[inline]
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
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

/// When `pos` holds a key/value separator, the index where the value starts.
///
/// Debug prints `: `; after a bare identifier the space is required so that
/// paths (`std::io`) and URLs (`http://`) are not taken for fields, while a
/// quoted key may also be followed by a bare `:` (JSON printed by hand).
fn value_start_after_colon(bytes: &[u8], pos: usize, quoted_key: bool) -> Option<usize> {
    if bytes.get(pos) != Some(&b':') {
        return None;
    }
    let next = *bytes.get(pos + 1)?;
    if !quoted_key && !next.is_ascii_whitespace() {
        return None;
    }
    let mut j = pos + 1;
    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
        j += 1;
    }
    (j < bytes.len()).then_some(j)
}

/// Index where the value starting at `start` ends (exclusive, trailing
/// whitespace excluded).
fn value_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut j = start;
    while j < bytes.len() {
        match bytes[j] {
            b'"' => j = skip_string(bytes, j),
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
            b',' | b'\n' if depth == 0 => break,
            _ => j += 1,
        }
    }
    let mut end = j.min(bytes.len());
    while end > start && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keys_are_the_contract_list() {
        assert_eq!(
            Redactor::default_keys(),
            &[
                "password",
                "passwd",
                "secret",
                "token",
                "api_key",
                "apikey",
                "authorization",
                "cookie"
            ]
        );
    }

    #[test]
    fn secret_keys_match_by_suffix_after_normalising() {
        let r = Redactor::default();
        for key in [
            "api_key",
            "apiKey",
            "X-Api-Key",
            "x.api.key",
            "access_token",
            "github_token",
            "Authorization",
            "AUTHORIZATION",
            "session_cookie",
            "db_password",
            "passwd",
            "client_secret",
            "token",
            "token_",
            "Token-",
        ] {
            assert!(r.is_secret(key), "{key} should be secret");
        }
    }

    #[test]
    fn ordinary_keys_are_not_secret() {
        let r = Redactor::default();
        for key in [
            "prompt_tokens",
            "completion_tokens",
            "tokens_used",
            "token_count",
            "name",
            "",
            "_",
            "--",
            "price",
            "description",
            "secretary",
            "ключ",
        ] {
            assert!(!r.is_secret(key), "{key} should not be secret");
        }
    }

    #[test]
    fn long_and_unicode_keys_do_not_break_matching() {
        let r = Redactor::default();
        let long = format!("{}_password", "x".repeat(500));
        assert!(r.is_secret(&long));
        assert!(!r.is_secret(&"y".repeat(500)));
        assert!(r.is_secret("пароль_password"));
        assert!(!r.is_secret("passwordé"));
    }

    /// The definition, without the filters: normalise both and compare.
    fn is_secret_by_definition(entries: &[&str], key: &str) -> bool {
        let normalise = |s: &str| -> Vec<u8> {
            s.bytes()
                .filter(|&b| !is_separator(b))
                .map(|b| b.to_ascii_lowercase())
                .collect()
        };
        let key = normalise(key);
        entries
            .iter()
            .map(|e| normalise(e))
            .any(|e| !e.is_empty() && key.ends_with(&e))
    }

    #[test]
    fn the_last_byte_filters_agree_with_the_definition() {
        // One-byte entries, entries sharing last bytes, separators and case
        // around the last two bytes: every key of up to three bytes over an
        // alphabet that hits each filter, plus some longer ones.
        let entries = ["q", "token", "Api_Key", "xn", "n-n", "é"];
        let r = Redactor::new(entries);
        let alphabet = [
            "", "a", "N", "n", "o", "q", "Q", "x", "y", "k", "_", "-", "é", "e",
        ];
        let mut keys = Vec::new();
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    keys.push(format!("{a}{b}{c}"));
                }
            }
        }
        keys.extend(
            [
                "access_token",
                "TOKEN",
                "to_ken",
                "api-key",
                "monkey",
                "pkey",
                "asin",
                "_q_",
                "cafén",
            ]
            .map(String::from),
        );
        for key in &keys {
            assert_eq!(
                r.is_secret(key),
                is_secret_by_definition(&entries, key),
                "{key:?}"
            );
        }
    }

    #[test]
    fn custom_lists_are_normalised_too() {
        let r = Redactor::new(["Private-Key", "_", ""]);
        assert!(r.is_secret("ssh_private_key"));
        assert!(r.is_secret("privatekey"));
        assert!(!r.is_secret("password"));
        assert!(!r.is_secret("anything"));
        let none = Redactor::new(Vec::<String>::new());
        assert!(!none.is_secret("password"));
        assert_eq!(none.redact_debug_text("A { password: 1 }"), None);
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
        let r = Redactor::default();
        let text = format!("{:?}", sample());
        let got = r.redact_debug_text(&text).expect("something to redact");
        assert_eq!(
            got,
            r#"Outer { name: "a, {b} \"c\" }", api_key: "[redacted]", inner: Inner { token: "[redacted]", label: "keep, me" }, list: [1, 2], secret: "[redacted]", letter: '}' }"#
        );
    }

    #[test]
    fn redacts_pretty_debug_of_nested_structs() {
        let r = Redactor::default();
        let text = format!("{:#?}", sample());
        let got = r.redact_debug_text(&text).expect("something to redact");
        let expected = r#"Outer {
    name: "a, {b} \"c\" }",
    api_key: "[redacted]",
    inner: Inner {
        token: "[redacted]",
        label: "keep, me",
    },
    list: [
        1,
        2,
    ],
    secret: "[redacted]",
    letter: '}',
}"#;
        assert_eq!(got, expected);
    }

    #[test]
    fn redacts_map_entries_with_secret_string_keys() {
        let r = Redactor::default();
        let mut map = std::collections::BTreeMap::new();
        map.insert("Authorization", "Bearer abc, def");
        map.insert("accept", "json");
        map.insert("x-api-key", "{k}");
        let text = format!("{map:?}");
        assert_eq!(
            r.redact_debug_text(&text).as_deref(),
            Some(r#"{"Authorization": "[redacted]", "accept": "json", "x-api-key": "[redacted]"}"#)
        );
    }

    #[test]
    fn nothing_to_redact_returns_none() {
        let r = Redactor::default();
        for text in [
            "Product { asin: \"B0\", price: 12.5, prompt_tokens: 7 }",
            "std::io::Error: token",
            "\"password\"",
            "password",
            "don't: panic",
            "",
            "Wrapper(\"token: x\")",
            "Err(\"unterminated",
        ] {
            assert_eq!(r.redact_debug_text(text), None, "{text}");
        }
    }

    #[test]
    fn value_extends_over_balanced_groups_and_escapes() {
        let r = Redactor::default();
        let text = r#"S { token: Some(Tok { raw: "a\"), ]", parts: [(1, ')')] }), next: 1 }"#;
        assert_eq!(
            r.redact_debug_text(text).as_deref(),
            Some(r#"S { token: "[redacted]", next: 1 }"#)
        );
    }

    #[test]
    fn value_at_end_of_text_or_line() {
        let r = Redactor::default();
        assert_eq!(
            r.redact_debug_text("password: hunter2").as_deref(),
            Some("password: \"[redacted]\"")
        );
        assert_eq!(
            r.redact_debug_text("user: bob\ntoken: abc def\nhost: h")
                .as_deref(),
            Some("user: bob\ntoken: \"[redacted]\"\nhost: h")
        );
        // Truncated Debug text still loses the secret it started.
        assert_eq!(
            r.redact_debug_text("A { password: \"hun").as_deref(),
            Some("A { password: \"[redacted]\"")
        );
    }

    #[test]
    fn quoted_keys_may_omit_the_space() {
        let r = Redactor::default();
        assert_eq!(
            r.redact_debug_text(r#"{"token":"abc","n":1}"#).as_deref(),
            Some(r#"{"token":"[redacted]","n":1}"#)
        );
        // Bare identifiers need it: these are a path and a URL.
        assert_eq!(r.redact_debug_text("token::parse token:x"), None);
    }

    #[test]
    fn empty_values_are_left_alone() {
        let r = Redactor::default();
        assert_eq!(r.redact_debug_text("A { password: }"), None);
        assert_eq!(r.redact_debug_text("A { password:  , b: 1 }"), None);
    }

    #[test]
    fn every_prefix_of_debug_text_is_handled() {
        // Debug output cut at the size limit must still not leak, nor panic.
        let r = Redactor::default();
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
                let redacted = r.redact_debug_text(prefix);
                let shown = redacted.as_deref().unwrap_or(prefix);
                assert!(!shown.contains("SECRET"), "{shown}");
            }
        }
    }

    #[test]
    fn already_redacted_value_is_not_a_change() {
        let r = Redactor::default();
        assert_eq!(r.redact_debug_text("A { token: \"[redacted]\" }"), None);
    }

    #[test]
    fn unicode_text_around_secrets_is_preserved() {
        let r = Redactor::default();
        assert_eq!(
            r.redact_debug_text("Ünï { grüße: \"😀\", cookie: \"🍪\", é: 'é' }")
                .as_deref(),
            Some("Ünï { grüße: \"😀\", cookie: \"[redacted]\", é: 'é' }")
        );
    }
}
