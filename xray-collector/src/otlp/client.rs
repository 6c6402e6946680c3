//! OTLP/HTTP protobuf: one POST per request, gzip unless the receiver
//! refuses it, and the answer classified as the OTLP specification says
//! (retry 429/502/503/504 and network failures, honouring `Retry-After`;
//! 413 means split; other 4xx will never succeed).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;

use super::config::OtlpConfig;

const PROTOBUF: &str = "application/x-protobuf";

/// What became of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// Accepted.
    Accepted {
        /// Spans of it the receiver refused all the same (a partial success).
        rejected: i64,
        /// Why, as the receiver says.
        message: String,
    },
    /// Not now: try again.
    Retry {
        /// When, if the receiver said (`Retry-After`).
        after: Option<Duration>,
        /// What went wrong.
        reason: String,
    },
    /// 413: the request is too large for the receiver; split it.
    TooLarge,
    /// Refused for good (400 and the other 4xx but those that say the
    /// settings are wrong: 401, 403, 404, 405, 407 are retried).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The status and the start of the receiver's answer.
        reason: String,
    },
}

/// Sends OTLP requests to one endpoint.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    config: Arc<OtlpConfig>,
    /// Cleared when the receiver refuses gzip (415).
    gzip: Arc<AtomicBool>,
}

impl Client {
    /// A client for `config`'s endpoint ([`crate::outbound::client`]).
    pub fn new(config: OtlpConfig) -> Result<Client, String> {
        let http = crate::outbound::client(config.timeout, "OTLP")?;
        Ok(Client {
            http,
            config: Arc::new(config),
            gzip: Arc::new(AtomicBool::new(true)),
        })
    }

    /// The endpoint spans go to, as it may be logged: without a password
    /// it may carry.
    pub fn endpoint(&self) -> String {
        self.config.endpoint_shown()
    }

    /// Sends `request` once.
    pub async fn send(&self, request: &ExportTraceServiceRequest) -> Sent {
        let body = request.encode_to_vec();
        let gzip = self.gzip.load(Ordering::Relaxed);
        let (body, encoding) = if gzip {
            match compress(&body) {
                Ok(compressed) => (compressed, Some("gzip")),
                Err(_) => (body, None),
            }
        } else {
            (body, None)
        };
        let mut post = self
            .http
            .post(self.config.endpoint.clone())
            .headers(self.config.headers.clone())
            .header(CONTENT_TYPE, PROTOBUF)
            .body(body);
        if let Some(encoding) = encoding {
            post = post.header(CONTENT_ENCODING, encoding);
        }
        let response = match post.send().await {
            Ok(r) => r,
            Err(e) => {
                return Sent::Retry {
                    after: None,
                    reason: crate::error_text::with_causes(&e),
                }
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(crate::outbound::retry_after);
        let is_protobuf = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(PROTOBUF));
        let body = response.bytes().await.unwrap_or_default();
        classify(status, retry_after, is_protobuf, &body, || {
            // 415 to a gzipped body: the receiver does not take gzip.
            if encoding.is_some() && status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                self.gzip.store(false, Ordering::Relaxed);
                true
            } else {
                false
            }
        })
    }
}

/// The answer's meaning. `gzip_refused` is asked on a 415 and says
/// whether dropping gzip may help (then: retry at once).
fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    is_protobuf: bool,
    body: &[u8],
    gzip_refused: impl FnOnce() -> bool,
) -> Sent {
    if status.is_success() {
        let partial = if is_protobuf {
            ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
        } else {
            None
        };
        return match partial {
            Some(p) if p.rejected_spans > 0 => Sent::Accepted {
                rejected: p.rejected_spans,
                message: p.error_message,
            },
            _ => Sent::Accepted {
                rejected: 0,
                message: String::new(),
            },
        };
    }
    let reason = format!(
        "HTTP {}: {}",
        status.as_u16(),
        crate::outbound::excerpt(body)
    );
    match status {
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE
        | StatusCode::GATEWAY_TIMEOUT => Sent::Retry {
            after: retry_after,
            reason,
        },
        StatusCode::PAYLOAD_TOO_LARGE => Sent::TooLarge,
        // Not the spans' fault but the sink's settings (a wrong key,
        // endpoint or proxy): dead-lettering every span would empty the
        // outbox into the dead-letter table. Retried with backoff, as an
        // outage is, until the settings are fixed (or the backlog limit
        // gives the spans up, counted).
        StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND
        | StatusCode::METHOD_NOT_ALLOWED
        | StatusCode::PROXY_AUTHENTICATION_REQUIRED => Sent::Retry {
            after: retry_after,
            reason: format!("{reason} (check the OTLP endpoint and its headers)"),
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE if gzip_refused() => Sent::Retry {
            after: Some(Duration::ZERO),
            reason: format!("{reason} (sending without gzip from now on)"),
        },
        s if s.is_client_error() => Sent::Refused {
            status: s.as_u16(),
            reason,
        },
        _ => Sent::Retry {
            after: retry_after,
            reason,
        },
    }
}

fn compress(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;

    use super::*;

    fn answer(status: u16, body: &[u8]) -> Sent {
        classify(
            StatusCode::from_u16(status).unwrap(),
            Some(Duration::from_secs(7)),
            true,
            body,
            || false,
        )
    }

    #[test]
    fn answers_are_classified_as_the_specification_says() {
        assert_eq!(
            answer(200, b""),
            Sent::Accepted {
                rejected: 0,
                message: String::new()
            }
        );
        let partial = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "spans too old".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            answer(200, &partial),
            Sent::Accepted {
                rejected: 3,
                message: "spans too old".into()
            }
        );
        for status in [429, 502, 503, 504] {
            assert!(
                matches!(answer(status, b"busy"), Sent::Retry { after: Some(d), .. } if d == Duration::from_secs(7)),
                "{status}"
            );
        }
        assert!(matches!(answer(500, b""), Sent::Retry { .. }));
        assert_eq!(answer(413, b""), Sent::TooLarge);
        assert_eq!(
            answer(400, b"bad span\n"),
            Sent::Refused {
                status: 400,
                reason: "HTTP 400: bad span".into()
            }
        );
        // Wrong settings, not bad spans: retried, never dead-lettered.
        for status in [401, 403, 404, 405, 407] {
            assert!(
                matches!(answer(status, b""), Sent::Retry { ref reason, .. } if reason.contains("check the OTLP endpoint")),
                "{status}"
            );
        }
        assert!(matches!(
            answer(422, b""),
            Sent::Refused { status: 422, .. }
        ));
        // 415 to gzip: retried at once without it.
        assert!(matches!(
            classify(StatusCode::UNSUPPORTED_MEDIA_TYPE, None, false, b"", || true),
            Sent::Retry { after: Some(d), .. } if d.is_zero()
        ));
        assert!(matches!(
            answer(415, b""),
            Sent::Refused { status: 415, .. }
        ));
    }
}
