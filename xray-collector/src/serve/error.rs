//! The API's errors: always `{"error": "…"}` with a status, never an HTML
//! page. What a backend error says is logged in full; the answer says only
//! what a reader of the API can act on.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::backend::StoreError;

/// An API error: a status and a one-line message.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the caller.
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404: no such thing.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 401: a read token is needed.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "a read token is needed: send Authorization: Bearer <token>".into(),
        }
    }

    /// 503: the request took too long.
    pub fn timed_out(what: &str) -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("{what} took too long and was stopped; narrow it down"),
        }
    }

    /// 500: a bug (a handler panicked).
    pub fn internal() -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "internal error (logged by the server)".into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "an API request failed in the backend");
        let (status, message) = match &e {
            StoreError::Schema(m) => (StatusCode::SERVICE_UNAVAILABLE, m.clone()),
            StoreError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the backend is unavailable; try again".to_owned(),
            ),
            StoreError::Config(m) => (StatusCode::BAD_REQUEST, m.clone()),
            StoreError::TimedOut(_) => return ApiError::timed_out("the query"),
            StoreError::Rejected(_) | StoreError::Other(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the backend failed (logged by the server)".to_owned(),
            ),
        };
        ApiError { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, json_body(&json!({ "error": self.message }))).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// A JSON body (serializing a `Value` cannot fail).
pub fn json_body(value: &serde_json::Value) -> String {
    let mut text = value.to_string();
    text.push('\n');
    text
}
