//! Where and how the OTLP sink sends: `run --otlp-endpoint URL` or the
//! standard OpenTelemetry exporter variables.
//!
//! - Endpoint: `--otlp-endpoint` (a URL without a path gets `/v1/traces`),
//!   else `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is), else
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`. None of them: no sink.
//! - Headers: `OTEL_EXPORTER_OTLP_HEADERS`, then
//!   `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (same keys win), `key=value` pairs
//!   separated by commas, values percent-decoded. Their values are never
//!   printed (they carry API keys).
//! - Timeout of one request: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else
//!   `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), default 10 s.
//!
//! A malformed value is an error naming the variable.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

/// The OTLP sink's settings.
#[derive(Clone)]
pub struct OtlpConfig {
    /// Where spans are POSTed (`…/v1/traces`).
    pub endpoint: Url,
    /// Sent with every request.
    pub headers: HeaderMap,
    /// Most time one request may take.
    pub timeout: Duration,
    /// Most spans in one request.
    pub batch_spans: usize,
    /// A span whose start is older than this without an end is exported
    /// unfinished (flagged), so a crashed process's work still shows.
    pub unfinished_after: Duration,
    /// Rows the sink may have left to export in an outbox before it gives
    /// up the oldest it cannot send (counted as dropped), so that a
    /// receiver that is down does not keep the outbox from being emptied
    /// for the database.
    pub max_backlog_rows: u64,
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The header values are secrets: names only.
        let names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint_shown())
            .field("headers", &names)
            .field("timeout", &self.timeout)
            .field("batch_spans", &self.batch_spans)
            .field("unfinished_after", &self.unfinished_after)
            .field("max_backlog_rows", &self.max_backlog_rows)
            .finish()
    }
}

impl OtlpConfig {
    /// The endpoint as it may be logged or printed: a password in it
    /// masked.
    pub fn endpoint_shown(&self) -> String {
        crate::outbound::url_shown(&self.endpoint)
    }

    /// The sink's settings from `--otlp-endpoint` (`flag`) and the
    /// environment (`env`), or `None` when no endpoint is given anywhere.
    pub fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<OtlpConfig>, String> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let endpoint = if let Some(url) = flag {
            let mut url = parse_url("--otlp-endpoint", url)?;
            if url.path() == "/" || url.path().is_empty() {
                url.set_path("/v1/traces");
            }
            url
        } else if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            parse_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?
        } else if let Some(url) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
            let mut url = parse_url("OTEL_EXPORTER_OTLP_ENDPOINT", &url)?;
            let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
            url.set_path(&path);
            url
        } else {
            return Ok(None);
        };
        let mut headers = HeaderMap::new();
        for name in [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ] {
            if let Some(value) = env(name) {
                for (k, v) in parse_headers(name, &value)? {
                    headers.insert(k, v);
                }
            }
        }
        let timeout = match env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
            .map(|v| ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", v))
            .or_else(|| {
                env("OTEL_EXPORTER_OTLP_TIMEOUT").map(|v| ("OTEL_EXPORTER_OTLP_TIMEOUT", v))
            }) {
            Some((name, v)) => match v.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(format!(
                        "{name}={v:?}: expected a number of milliseconds above 0"
                    ))
                }
            },
            None => Duration::from_secs(10),
        };
        Ok(Some(OtlpConfig {
            endpoint,
            headers,
            timeout,
            batch_spans: 1000,
            unfinished_after: Duration::from_secs(300),
            max_backlog_rows: 1_000_000,
        }))
    }
}

fn parse_url(name: &str, value: &str) -> Result<Url, String> {
    let url =
        Url::parse(value.trim()).map_err(|e| format!("{name}={value:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!(
            "{name}={value:?}: OTLP/HTTP needs an http or https URL, not {other}"
        )),
    }
}

/// `key=value,key2=value2` (values percent-encoded), as the
/// OpenTelemetry specification defines the headers variables.
fn parse_headers(name: &str, value: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut out = Vec::new();
    for (i, pair) in value.split(',').map(str::trim).enumerate() {
        if pair.is_empty() {
            continue;
        }
        let Some((key, v)) = pair.split_once('=') else {
            // Not shown: a value with a comma in it ends up here, and
            // values are secrets.
            return Err(format!(
                "{name}: pair {} is not key=value (pairs are separated by commas)",
                i + 1
            ));
        };
        let key = HeaderName::from_bytes(key.trim().as_bytes())
            .map_err(|_| format!("{name}: {:?} is not a header name", key.trim()))?;
        let decoded = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| format!("{name}: the value of {key} is not UTF-8 once decoded"))?;
        let v = HeaderValue::from_str(&decoded)
            .map_err(|_| format!("{name}: the value of {key} cannot be a header value"))?;
        out.push((key, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<Option<OtlpConfig>, String> {
        OtlpConfig::resolve(flag, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_endpoint_comes_from_the_flag_then_the_standard_variables() {
        assert!(resolve(None, &[]).unwrap().is_none());
        let flag = resolve(Some("http://127.0.0.1:6006"), &[])
            .unwrap()
            .unwrap();
        assert_eq!(flag.endpoint.as_str(), "http://127.0.0.1:6006/v1/traces");
        let as_is = resolve(Some("http://h:1/custom/path"), &[])
            .unwrap()
            .unwrap();
        assert_eq!(as_is.endpoint.as_str(), "http://h:1/custom/path");
        let traces = resolve(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t.example/x"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://g.example"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(traces.endpoint.as_str(), "https://t.example/x");
        let generic = resolve(
            None,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://g.example/otlp/")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            generic.endpoint.as_str(),
            "https://g.example/otlp/v1/traces"
        );
        assert_eq!(generic.timeout, Duration::from_secs(10));
    }

    #[test]
    fn headers_are_decoded_and_the_traces_ones_win() {
        let c = resolve(
            Some("http://h:1"),
            &[
                ("OTEL_EXPORTER_OTLP_HEADERS", "api_key=s%3Dcret, x-team=a"),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-team=b"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.headers["api_key"], "s=cret");
        assert_eq!(c.headers["x-team"], "b");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        let shown = format!("{c:?}");
        assert!(
            shown.contains("api_key") && !shown.contains("cret"),
            "{shown}"
        );
    }

    #[test]
    fn malformed_values_name_their_variable_and_never_show_a_secret() {
        for (flag, vars, expected) in [
            (Some("not a url"), vec![], "--otlp-endpoint"),
            (Some("ftp://h/x"), vec![], "http or https"),
            (
                None,
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "::")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            (
                Some("http://h"),
                vec![("OTEL_EXPORTER_OTLP_HEADERS", "bad header=x")],
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            (
                Some("http://h"),
                vec![("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ),
        ] {
            let err = resolve(flag, &vars).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        let err = resolve(
            Some("http://h"),
            &[("OTEL_EXPORTER_OTLP_HEADERS", "api_key=ok,s3cr3tvalue")],
        )
        .unwrap_err();
        assert!(err.contains("pair 2 is not key=value"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
        let err = resolve(
            Some("http://h"),
            &[("OTEL_EXPORTER_OTLP_HEADERS", "api_key=s3cr3t\u{7f}")],
        )
        .unwrap_err();
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}
