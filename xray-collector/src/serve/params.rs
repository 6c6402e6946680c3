//! Query parameters, parsed strictly: an unknown or repeated parameter, a
//! value that is not what it should be, or a page size out of range is a
//! 400 that says which and why — never silently ignored or clamped.

use std::collections::HashMap;

use uuid::Uuid;

use super::error::ApiError;
use crate::query::{parse_time, Cursor};

/// The parameters of one request.
pub struct Params {
    values: HashMap<String, String>,
}

impl Params {
    /// Parses a raw query string, accepting only `allowed` names.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Params, ApiError> {
        let mut values = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                return Err(ApiError::bad_request(if allowed.is_empty() {
                    format!("unknown parameter {name:?}: this path takes none")
                } else {
                    format!(
                        "unknown parameter {name:?}: this path takes {}",
                        allowed.join(", ")
                    )
                }));
            }
            if values
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(ApiError::bad_request(format!(
                    "parameter {name:?} is given twice"
                )));
            }
        }
        Ok(Params { values })
    }

    /// A text parameter; empty counts as absent.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// A page size in `1..=max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(text) = self.text("limit") else {
            return Ok(default);
        };
        match text.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "invalid limit {text:?}: a whole number from 1 to {max}"
            ))),
        }
    }

    /// A cursor printed by a previous page.
    pub fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        self.text("cursor")
            .map(|c| Cursor::decode(c).map_err(ApiError::bad_request))
            .transpose()
    }

    /// A time (`30m`, `7d`, RFC 3339), in µs since the epoch.
    pub fn time(&self, name: &str, now_us: i64) -> Result<Option<i64>, ApiError> {
        self.text(name)
            .map(|t| {
                parse_time(t, now_us).map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
            })
            .transpose()
    }
}

/// An id in a path.
pub fn uuid(what: &str, text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::bad_request(format!("invalid {what} {text:?}: not a UUID")))
}
