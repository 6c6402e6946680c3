//! Keeping a database URL's password out of every message.
//!
//! [`redact_url`] shows a connection string with its password replaced by
//! `***`: the URL form (`postgres://user:secret@host/db`, and a `password`
//! query parameter) is parsed with the `url` crate — a URL it cannot parse
//! is shown as `postgres://***`, never half-hidden — and the libpq
//! key-value form (`host=h password='secret'`), which no URL parser reads,
//! by hand. A [`Redactor`] removes the password from any other text (server
//! errors, logs), in every spelling it may take there: as written,
//! percent-decoded, unescaped, JSON-escaped.

use std::ops::Range;

use percent_encoding::percent_decode_str;
use tokio_postgres::Config;
use url::{Position, Url};

use crate::backend::StoreError;

/// What a password is replaced with.
const HIDDEN: &str = "***";

/// Replaces the password in a PostgreSQL connection string with `***`.
///
/// ```
/// use xray_collector::backend::postgres::redact_url;
/// assert_eq!(
///     redact_url("postgres://xray:s3cret@db:5432/xray?sslmode=require"),
///     "postgres://xray:***@db:5432/xray?sslmode=require",
/// );
/// assert_eq!(
///     redact_url("postgres://xray@db/xray?password=s3cret&sslmode=require"),
///     "postgres://xray@db/xray?password=***&sslmode=require",
/// );
/// assert_eq!(redact_url("host=db password=s3cret"), "host=db password=***");
/// ```
pub fn redact_url(url: &str) -> String {
    match url_scheme(url) {
        Some(_) => match Url::parse(url) {
            Ok(parsed) => redact_parsed(url, parsed),
            Err(_) => redact_unparsed(url),
        },
        None => hide(url, key_value_password_spans(url)),
    }
}

/// `postgres` or `postgresql` when `text` is written in the URL form.
fn url_scheme(text: &str) -> Option<&'static str> {
    ["postgresql", "postgres"].into_iter().find(|s| {
        text.len() > s.len() + 3
            && text[..s.len()].eq_ignore_ascii_case(s)
            && text[s.len()..].starts_with("://")
    })
}

/// A URL the `url` crate parsed: shown as written when it holds no
/// password, else re-serialized with the password replaced.
fn redact_parsed(text: &str, mut url: Url) -> String {
    let in_query = url.query_pairs().any(|(k, _)| k == "password");
    if url.password().is_none() && !in_query {
        return text.to_owned();
    }
    if url.password().is_some() && url.set_password(Some(HIDDEN)).is_err() {
        return format!("{}://{HIDDEN}", url.scheme());
    }
    // The query's values are hidden in the serialized text (setting them
    // through the query serializer would percent-encode `***`).
    let spans = match url.query() {
        Some(query) => query_password_spans(query, url[..Position::BeforeQuery].len()),
        None => Vec::new(),
    };
    hide(url.as_str(), spans)
}

/// A URL the `url` crate refuses (a bad port, say) still reaches error
/// messages: hide what stands between `user:` and the last `@` of the
/// authority (so a password containing `@` is hidden whole), and every
/// `password` query value.
fn redact_unparsed(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let query_at = text[start..].find('?').map_or(text.len(), |q| start + q);
    let mut spans: Vec<Range<usize>> = Vec::new();
    if let Some(at) = text[start..query_at].rfind('@').map(|a| start + a) {
        if let Some(colon) = text[start..at].find(':').map(|c| start + c) {
            spans.push(colon + 1..at);
        }
    }
    if query_at < text.len() {
        spans.extend(query_password_spans(&text[query_at + 1..], query_at + 1));
    }
    hide(text, spans)
}

/// Where the values of `password` parameters stand in `query` (the text
/// after `?`, itself at `offset` in the whole string), as byte ranges of
/// the whole string. A fragment (`#…`) ends the query.
fn query_password_spans(query: &str, offset: usize) -> Vec<Range<usize>> {
    let query = query.split('#').next().unwrap_or_default();
    let mut spans = Vec::new();
    let mut pos = offset;
    for pair in query.split('&') {
        if let Some((k, _)) = pair.split_once('=') {
            if decode(k) == "password" {
                spans.push(pos + k.len() + 1..pos + pair.len());
            }
        }
        pos += pair.len() + 1;
    }
    spans
}

/// `text` with each (non-empty) span replaced by `***`.
fn hide(text: &str, mut spans: Vec<Range<usize>>) -> String {
    let mut out = text.to_owned();
    spans.retain(|s| !s.is_empty());
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    for span in spans {
        out.replace_range(span, HIDDEN);
    }
    out
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Every spelling of the password written in `text` (a connection string).
fn passwords_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    if url_scheme(text).is_some() {
        if let Ok(url) = Url::parse(text) {
            if let Some(p) = url.password() {
                found.push(p.to_owned());
                found.push(decode(p));
            }
            for (k, v) in url.query_pairs() {
                if k == "password" {
                    found.push(v.into_owned());
                }
            }
            // As written in the query, too (the pairs above are decoded).
            if let Some(query_at) = text.find('?') {
                for span in query_password_spans(&text[query_at + 1..], query_at + 1) {
                    found.push(text[span].to_owned());
                }
            }
        }
    } else {
        for span in key_value_password_spans(text) {
            let raw = &text[span];
            found.push(raw.to_string());
            // Key-value values may carry backslash escapes.
            found.push(
                raw.replace("\\\\", "\u{0}")
                    .replace('\\', "")
                    .replace('\u{0}', "\\"),
            );
        }
    }
    found
}

fn key_value_password_spans(s: &str) -> Vec<Range<usize>> {
    let bytes = s.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[key_start..i];
        i = skip_ws(i);
        if i >= bytes.len() || bytes[i] != b'=' {
            // Not `key=value`: tokio-postgres will refuse it; nothing to hide.
            continue;
        }
        i = skip_ws(i + 1);
        let (value_start, value_end);
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            value_start = i;
            while i < bytes.len() && bytes[i] != b'\'' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            value_end = i.min(bytes.len());
            i = (i + 1).min(bytes.len());
        } else {
            value_start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = i.min(bytes.len());
            value_end = i;
        }
        if key == "password" && value_end > value_start {
            spans.push(value_start..value_end);
        }
    }
    spans
}

/// Removes a connection's password from any text before it leaves the
/// collector (error messages, logs).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Every spelling of the password, longest first.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the password of the connection string `url`: as
    /// written there, decoded, as tokio-postgres reads it, and each of
    /// those JSON-escaped (for JSON log lines).
    pub fn for_url(url: &str) -> Redactor {
        let mut secrets = passwords_in(url);
        if let Some(password) = url
            .parse::<Config>()
            .ok()
            .as_ref()
            .and_then(Config::get_password)
        {
            secrets.push(String::from_utf8_lossy(password).into_owned());
        }
        let escaped: Vec<String> = secrets
            .iter()
            .filter_map(|s| serde_json::to_string(s).ok())
            .map(|quoted| quoted[1..quoted.len() - 1].to_owned())
            .collect();
        secrets.extend(escaped);
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every spelling of the password replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), HIDDEN);
            }
        }
        out
    }

    /// The same error with its text scrubbed.
    pub(crate) fn error(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Unavailable(t) => StoreError::Unavailable(self.scrub(&t)),
            StoreError::Rejected(t) => StoreError::Rejected(self.scrub(&t)),
            StoreError::Schema(t) => StoreError::Schema(self.scrub(&t)),
            StoreError::Config(t) => StoreError::Config(self.scrub(&t)),
            StoreError::TimedOut(t) => StoreError::TimedOut(self.scrub(&t)),
            StoreError::Other(t) => StoreError::Other(self.scrub(&t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_in_the_user_info_is_hidden() {
        assert_eq!(
            redact_url("postgres://xray:s3cr%40t@db.example:5432/xray?sslmode=require"),
            "postgres://xray:***@db.example:5432/xray?sslmode=require"
        );
        assert_eq!(redact_url("postgresql://u:p@h/d"), "postgresql://u:***@h/d");
    }

    #[test]
    fn a_url_without_password_is_unchanged() {
        for url in [
            "postgres://xray@db/xray",
            "postgres://db/xray",
            "postgres://u:@h/d",
            "host=db user=x",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn a_password_query_parameter_is_hidden() {
        assert_eq!(
            redact_url("postgres://db/xray?user=u&password=hunter2&sslmode=disable"),
            "postgres://db/xray?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("postgres://u:a@db/x?password=b"),
            "postgres://u:***@db/x?password=***"
        );
    }

    #[test]
    fn a_key_value_password_is_hidden_quoted_or_not() {
        assert_eq!(
            redact_url("host=db password=hunter2 user=u"),
            "host=db password=*** user=u"
        );
        assert_eq!(
            redact_url("host=db password = 'two words\\' quote' user=u"),
            "host=db password = '***' user=u"
        );
        assert_eq!(redact_url("password=x"), "password=***");
    }

    #[test]
    fn the_redactor_hides_every_spelling_of_the_password() {
        let url = "postgres://u:p%40ss%2Fword@h/d";
        let r = Redactor::for_url(url);
        assert_eq!(
            r.scrub("raw p%40ss%2Fword, decoded p@ss/word"),
            "raw ***, decoded ***"
        );
        let kv = "host=h password='it\\'s'";
        let r = Redactor::for_url(kv);
        assert_eq!(r.scrub("it's here"), "*** here");
    }

    #[test]
    fn a_password_containing_an_at_sign_is_hidden_whole() {
        let url = "postgres://u:p@ss@host/db";
        let shown = redact_url(url);
        assert!(!shown.contains("ss@"), "{shown}");
        assert!(shown.contains("u:***@host"), "{shown}");
        assert_eq!(
            redact_url("postgres://u:p@ss@h:notaport/d"),
            "postgres://u:***@h:notaport/d"
        );
    }

    #[test]
    fn the_redactor_hides_json_escaped_spellings_too() {
        let r = Redactor::for_url(r#"postgres://u:a"b\c@h/d"#);
        let line = serde_json::json!({ "message": r#"login a"b\c failed"# }).to_string();
        assert!(!r.scrub(&line).contains("b\\"), "{}", r.scrub(&line));
        assert_eq!(r.scrub(&line), r#"{"message":"login *** failed"}"#);
    }
}
