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
//! Every error text this backend produces goes through the URL's
//! [`Redactor`] (see `password.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::classify::describe;
use super::password::{redact_url, Redactor};
use crate::backend::StoreError;

/// How long to wait for the TCP connection (per attempt) when the URL does
/// not say (`connect_timeout`): long enough for a slow network, short
/// enough that the shipper's backoff stays in charge.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long sent data may stay unacknowledged before the kernel gives up
/// on the connection, when the URL does not say: without it a write on a
/// connection to a vanished host would hang for the kernel's ~15 minutes.
const DEFAULT_TCP_USER_TIMEOUT: Duration = Duration::from_secs(60);

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
        let redactor = Redactor::for_url(url);
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
    fn an_unparsable_url_error_hides_the_password() {
        let err = Target::parse("postgres://u:hunter2@h:notaport/d")
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("u:***@h"), "{text}");
    }
}
