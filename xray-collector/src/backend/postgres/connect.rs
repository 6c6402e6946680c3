//! Opening a connection: URL parsing, TLS, and keeping passwords out of
//! every message.
//!
//! # TLS
//!
//! `sslmode` follows libpq:
//!
//! - `disable`: plain TCP.
//! - `prefer` (the default): TLS when the server offers it, else plain TCP.
//! - `require`: TLS or no connection. As in libpq, the server certificate is
//!   not verified: the traffic is encrypted, which is what a managed
//!   database with its provider's private CA needs to work out of the box.
//! - `verify-ca` / `verify-full`: TLS with the server certificate verified
//!   against the Mozilla roots (`webpki-roots`) and the host name (both are
//!   treated as `verify-full`). tokio-postgres does not know these two
//!   values, so the URL it parses says `require` and the verifying TLS
//!   client is chosen here.
//!
//! When a TLS handshake fails under `prefer`, one more attempt is made
//! without TLS (what libpq does); if both fail, the error names both reasons.
//!
//! # Passwords
//!
//! [`redact_url`] replaces the password in a URL (`user:***@`, a
//! `password=` query parameter, or a `password=` key-value pair) with
//! `***`. Every error text this backend produces goes through a
//! [`Redactor`], which also removes the password wherever else it might
//! appear (raw, percent-encoded or decoded).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::classify::describe;
use crate::backend::StoreError;

/// How long to wait for the TCP connection (per attempt) when the URL does
/// not say (`connect_timeout`): long enough for a slow network, short
/// enough that the shipper's backoff stays in charge.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long sent data may stay unacknowledged before the kernel gives up
/// on the connection, when the URL does not say: without it a write on a
/// connection to a vanished host would hang for the kernel's ~15 minutes.
const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);

/// Replaces the password in a PostgreSQL connection string with `***`.
///
/// Understands the URL form (`postgres://user:secret@host/db`, and a
/// `password=` query parameter) and the key-value form
/// (`host=h password='secret'`). Everything else is kept as written.
///
/// ```
/// use xray_collector::backend::postgres::redact_url;
/// assert_eq!(
///     redact_url("postgres://xray:s3cret@db:5432/xray?sslmode=require"),
///     "postgres://xray:***@db:5432/xray?sslmode=require",
/// );
/// assert_eq!(redact_url("host=db password=s3cret"), "host=db password=***");
/// ```
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    let mut spans = password_spans(url);
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    for span in spans {
        out.replace_range(span, "***");
    }
    out
}

/// Where the password is written in `url`, as byte ranges (empty when
/// there is none). Mirrors how tokio-postgres reads a connection string,
/// so that what it takes for the password is what gets hidden.
fn password_spans(url: &str) -> Vec<Range<usize>> {
    let rest_at = ["postgres://", "postgresql://"]
        .iter()
        .find(|p| url.starts_with(*p))
        .map(|p| p.len());
    match rest_at {
        Some(start) => url_password_spans(url, start),
        None => key_value_password_spans(url),
    }
}

fn url_password_spans(url: &str, start: usize) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let rest = &url[start..];
    // tokio-postgres takes everything up to the first '@' as `user[:password]`.
    let mut after_creds = start;
    if let Some(at) = rest.find('@') {
        let creds = &rest[..at];
        if let Some(colon) = creds.find(':') {
            spans.push(start + colon + 1..start + at);
        }
        after_creds = start + at + 1;
    }
    if let Some(q) = url[after_creds..].find('?') {
        let mut pos = after_creds + q + 1;
        for pair in url[pos..].split('&') {
            if let Some(eq) = pair.find('=') {
                if percent_decode(&pair[..eq]) == b"password" {
                    spans.push(pos + eq + 1..pos + pair.len());
                }
            }
            pos += pair.len() + 1;
        }
    }
    spans.retain(|s| !s.is_empty());
    spans
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

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Removes a connection's password from any text before it leaves the
/// backend (error messages, logs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    /// Every spelling of the password, longest first.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the password of `url` (and of its parsed form, when
    /// it parses).
    pub(crate) fn for_url(url: &str, parsed: Option<&Config>) -> Redactor {
        let mut secrets = Vec::new();
        for span in password_spans(url) {
            let raw = &url[span];
            secrets.push(raw.to_string());
            secrets.push(String::from_utf8_lossy(&percent_decode(raw)).into_owned());
            // Key-value values may carry backslash escapes.
            secrets.push(
                raw.replace("\\\\", "\u{0}")
                    .replace('\\', "")
                    .replace('\u{0}', "\\"),
            );
        }
        if let Some(password) = parsed.and_then(Config::get_password) {
            secrets.push(String::from_utf8_lossy(password).into_owned());
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every spelling of the password replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
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
            StoreError::Other(t) => StoreError::Other(self.scrub(&t)),
        }
    }
}

/// What is needed to (re)open the connection: the parsed URL, the TLS
/// connector, and the URL's redacted form for messages.
pub(crate) struct Target {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    /// The URL with its password hidden, for error messages.
    pub(crate) shown: String,
    /// Hides the password in any text.
    pub(crate) redactor: Redactor,
}

impl Target {
    /// Parses `url`. A URL that does not parse never will, so the error is
    /// not retriable: it is reported as [`StoreError::Config`], password hidden.
    pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
        let shown = redact_url(url);
        let (url_for_parser, verify) = take_verify_mode(url);
        let parsed = url_for_parser.parse::<Config>();
        let redactor = Redactor::for_url(url, parsed.as_ref().ok());
        let mut config = parsed.map_err(|e| {
            redactor.error(StoreError::Config(format!(
                "invalid database URL {shown}: {}",
                describe(&e)
            )))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(DEFAULT_TCP_USER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("xray-collector");
        }
        let tls = match config.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(tls_connector(verify).map_err(|e| redactor.error(e))?),
        };
        Ok(Target {
            config,
            tls,
            shown,
            redactor,
        })
    }

    /// Opens a connection and spawns its task on the current runtime.
    /// Every failure is [`StoreError::Unavailable`] (the server may come
    /// back, the password may be fixed) with the password hidden.
    pub(crate) async fn connect(&self) -> Result<Client, StoreError> {
        let fail = |why: String| {
            self.redactor.error(StoreError::Unavailable(format!(
                "cannot connect to {}: {why}",
                self.shown
            )))
        };
        // A refused login or a missing database stays so: report it rather
        // than retry it forever.
        let refused = |e: &tokio_postgres::Error| {
            let code = e.code().map(|c| c.code()).unwrap_or("");
            (code.starts_with("28") || code == "3D000").then(|| {
                self.redactor.error(StoreError::Config(format!(
                    "cannot connect to {}: {}",
                    self.shown,
                    describe(e)
                )))
            })
        };
        let Some(tls) = &self.tls else {
            return self
                .connect_plain()
                .await
                .map_err(|e| refused(&e).unwrap_or_else(|| fail(describe(&e))));
        };
        match self.config.connect(tls.clone()).await {
            Ok((client, connection)) => {
                spawn_connection(connection);
                Ok(client)
            }
            Err(tls_error)
                if self.config.get_ssl_mode() == SslMode::Prefer
                    && is_tls_handshake_failure(&tls_error) =>
            {
                self.connect_plain().await.map_err(|plain_error| {
                    if let Some(config_error) = refused(&plain_error) {
                        return config_error;
                    }
                    fail(format!(
                        "with TLS: {}; without TLS: {}",
                        describe(&tls_error),
                        describe(&plain_error)
                    ))
                })
            }
            Err(e) => Err(refused(&e).unwrap_or_else(|| fail(describe(&e)))),
        }
    }

    async fn connect_plain(&self) -> Result<Client, tokio_postgres::Error> {
        let mut config = self.config.clone();
        config.ssl_mode(SslMode::Disable);
        let (client, connection) = config.connect(NoTls).await?;
        spawn_connection(connection);
        Ok(client)
    }
}

/// Runs a connection's I/O until it ends. Its error, if any, is not lost:
/// the client's next request fails with it (as `closed`), which is where
/// the store classifies and reports it.
fn spawn_connection<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let _ = connection.await;
    });
}

/// Whether connecting failed in the TLS handshake itself (as opposed to
/// reaching the server, or authenticating). tokio-postgres does not expose
/// the error's kind; its text for this kind is fixed.
fn is_tls_handshake_failure(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none() && e.to_string() == "error performing TLS handshake"
}

/// `sslmode=verify-ca|verify-full` in `url` becomes `require` for
/// tokio-postgres (which knows only disable/prefer/require), with `true`
/// returned: the TLS client must then verify the server.
fn take_verify_mode(url: &str) -> (String, bool) {
    let mut out = url.to_string();
    let mut verify = false;
    for mode in ["sslmode=verify-full", "sslmode=verify-ca"] {
        if out.contains(mode) {
            out = out.replace(mode, "sslmode=require");
            verify = true;
        }
    }
    (out, verify)
}

/// A rustls client with the `ring` provider chosen explicitly (no
/// process-wide default needed): verifying servers against the Mozilla
/// roots when `verify`, else accepting any server certificate (libpq's
/// `require`/`prefer`) while still checking the handshake's signatures.
fn tls_connector(verify: bool) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Other(format!("cannot set up TLS: {e}")))?;
    let config = if verify {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's `sslmode=require`: encrypt, without checking who the server is.
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
        let r = Redactor::for_url(url, url.parse::<Config>().ok().as_ref());
        assert_eq!(
            r.scrub("raw p%40ss%2Fword, decoded p@ss/word"),
            "raw ***, decoded ***"
        );
        let kv = "host=h password='it\\'s'";
        let r = Redactor::for_url(kv, kv.parse::<Config>().ok().as_ref());
        assert_eq!(r.scrub("it's here"), "*** here");
    }

    #[test]
    fn an_unparsable_url_error_hides_the_password() {
        let err = Target::parse("postgres://u:hunter2@h:notaport/d")
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("u:***@h"), "{text}");
    }
}
