//! The read token: `Authorization: Bearer TOKEN` on the API, or the
//! `xray_token` cookie the login form sets (`HttpOnly`, `SameSite=Strict`).
//!
//! Tokens are compared in constant time: both sides are hashed (SHA-256)
//! first, so neither the length nor the first differing byte of the token
//! shows in how long a refusal takes.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

/// The name of the cookie that carries the token in a browser.
pub const COOKIE: &str = "xray_token";

/// The token every API request must carry, kept only as its hash.
#[derive(Clone)]
pub struct ReadToken {
    hash: [u8; 32],
}

impl std::fmt::Debug for ReadToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadToken(…)")
    }
}

fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl ReadToken {
    /// The token to require.
    pub fn new(token: &str) -> ReadToken {
        ReadToken { hash: hash(token) }
    }

    /// Whether `offered` is the token, in time independent of both.
    pub fn matches(&self, offered: &str) -> bool {
        let offered = hash(offered);
        let difference = self
            .hash
            .iter()
            .zip(offered.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }

    /// Whether the request carries the token, as a bearer token or in the
    /// login cookie.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|t| self.matches(t.trim()));
        bearer || cookie_values(headers).any(|t| self.matches(&t))
    }
}

/// The values of every `xray_token` cookie sent.
fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
}

/// The `Set-Cookie` value that keeps `token` in the browser.
pub fn set_cookie(token: &str) -> String {
    let value = percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC);
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_token_itself_matches() {
        let token = ReadToken::new("s3cret");
        assert!(token.matches("s3cret"));
        for wrong in ["", "s3cre", "s3cret ", "S3CRET", "s3cret\0"] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn the_token_is_found_as_a_bearer_or_in_the_cookie() {
        let token = ReadToken::new("a b;c=d");
        let mut headers = HeaderMap::new();
        assert!(!token.allows(&headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a b;c=d"),
        );
        assert!(token.allows(&headers));
        let mut headers = HeaderMap::new();
        let cookie = set_cookie("a b;c=d");
        let pair = cookie.split(';').next().unwrap().to_owned();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).unwrap(),
        );
        assert!(token.allows(&headers));
        headers.insert(header::COOKIE, HeaderValue::from_static("xray_token=nope"));
        assert!(!token.allows(&headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic a b;c=d"),
        );
        assert!(!token.allows(&headers));
    }
}
