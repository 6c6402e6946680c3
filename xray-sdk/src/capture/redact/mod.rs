//! Secret detection for argument names, JSON keys, struct fields and enum
//! variants ([`Redactor::is_secret`]), and the redactor of free text built on
//! it ([`text`]).
//!
//! Matching is deliberately loose about spelling (`api_key`, `X-Api-Key` and
//! `apiKey` are the same thing to a human reading a log) but strict about word
//! endings, so `access_token` is a secret while `prompt_tokens` (an LLM usage
//! counter that X-Ray itself records) is not.

mod text;

/// The replacement written in place of a secret value, as JSON text.
pub(crate) const REDACTED_JSON: &str = "\"[redacted]\"";

/// The replacement written in place of a secret in free text when the
/// secret was not a quoted string.
pub(crate) const REDACTED_TEXT: &str = "[redacted]";

/// Decides which keys name secrets and removes their values from free text.
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

    /// The default redaction list: the capture contract's (`password`,
    /// `passwd`, `secret`, `token`, `api_key`, `apikey`, `authorization`,
    /// `cookie`) and what real code also names its secrets. Entries match as
    /// suffixes, so `token` covers `access_token` and `refresh_token`,
    /// `access_key` covers `aws_secret_access_key`, `secret` covers
    /// `client_secret`.
    pub(crate) fn default_keys() -> &'static [&'static str] {
        &[
            "password",
            "passwd",
            "pwd",
            "passphrase",
            "secret",
            "secret_key",
            "token",
            "api_key",
            "apikey",
            "access_key",
            "private_key",
            "signing_key",
            "authorization",
            "auth",
            "credential",
            "credentials",
            "cookie",
            "jwt",
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

    /// Whether no key is secret (an empty list): free text is then kept as is.
    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keys_hold_the_contract_list() {
        let contract = [
            "password",
            "passwd",
            "secret",
            "token",
            "api_key",
            "apikey",
            "authorization",
            "cookie",
        ];
        for key in contract {
            assert!(Redactor::default_keys().contains(&key), "{key}");
        }
    }

    #[test]
    fn default_keys_cover_what_real_code_names_secrets() {
        let r = Redactor::default();
        for key in [
            "private_key",
            "secret_key",
            "passphrase",
            "credentials",
            "credential",
            "pwd",
            "aws_secret_access_key",
            "AWS_ACCESS_KEY",
            "ssh_private_key",
            "refresh_token",
            "id_token",
            "jwt",
            "basic_auth",
            "oauth",
            "set-cookie",
            "signing_key",
        ] {
            assert!(r.is_secret(key), "{key} should be secret");
        }
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
        assert_eq!(none.redact_text("A { password: 1 }"), None);
    }
}
