//! Outgoing HTTP, shared by the OTLP sink and the LLM reasoner: one way to
//! build a client (TLS by rustls with the Mozilla roots, the `ring`
//! provider chosen explicitly, as for PostgreSQL), and one reading of what
//! servers say when they refuse (`Retry-After`, the body's first words).

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;

/// The longest wait a `Retry-After` is taken at.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A client whose requests give up after `timeout`; `what` names it in an
/// error.
pub fn client(timeout: Duration, what: &str) -> Result<reqwest::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        })
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .user_agent(concat!("xray-collector/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the {what} client: {e}"))
}

/// `url` as it may be logged or printed: a password in it masked.
pub fn url_shown(url: &url::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// `Retry-After`, in seconds or as an HTTP date (a date past is now), at
/// most [`MAX_RETRY_AFTER`]; `None` when it is neither.
pub fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    let wait = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = jiff::fmt::rfc2822::parse(text).ok()?.timestamp();
            let left = at.as_millisecond() - jiff::Timestamp::now().as_millisecond();
            Duration::from_millis(u64::try_from(left).unwrap_or(0))
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The start of an answer's body as one line of text (servers explain
/// refusals there, as text or JSON), control characters left out.
pub fn excerpt(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(&body[..body.len().min(300)])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if text.trim().is_empty() {
        "(no body)".to_owned()
    } else {
        text.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_or_as_a_date() {
        assert_eq!(
            retry_after(&HeaderValue::from_static("12")),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            retry_after(&HeaderValue::from_static("99999999")),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            retry_after(&HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let header = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .unwrap();
        let wait = retry_after(&HeaderValue::from_str(&header).unwrap()).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{header}: {wait:?}"
        );
        assert_eq!(retry_after(&HeaderValue::from_static("soon")), None);
        assert_eq!(retry_after(&HeaderValue::from_static("-3")), None);
    }

    #[test]
    fn an_excerpt_is_one_bounded_line() {
        assert_eq!(excerpt(b""), "(no body)");
        assert_eq!(excerpt(b"  bad\nrequest\x1b[31m "), "badrequest[31m");
        assert_eq!(excerpt(&[b'x'; 1000]).len(), 300);
    }
}
