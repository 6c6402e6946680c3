//! `xray-collector serve`: the JSON API ([`api`]) and the web UI
//! ([`assets`]) over one backend, with the request limits a server open
//! to captured, hostile data needs:
//!
//! - loopback by default, and a non-loopback address only with a read
//!   token ([`check_listen`]); the token on every API request ([`auth`]);
//! - a deadline for a request's headers (a client that sends them slowly
//!   is cut off), for every request, and for search;
//! - `Content-Security-Policy` without inline script on every answer, so
//!   captured text that got into markup could still not run;
//! - a handler that panics answers 500 (JSON under `/api`), the server
//!   goes on; an unknown `/api` path is a JSON 404.

mod api;
mod assets;
mod auth;
mod error;
mod params;

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use futures_util::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

pub use auth::ReadToken;
use error::ApiError;

use crate::backend::{AnyStore, QueryStore};

/// The policy every answer carries: scripts and styles only from this
/// server's own files, nothing inline, no frames, forms only to itself.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a search's statement may run (the backend stops it).
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How much longer a search may wait, for the connection, before its
/// answer is given up on.
pub const SEARCH_GRACE: Duration = Duration::from_secs(2);

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The backend read.
    pub store: AnyStore,
    /// The token required, if any.
    pub token: Option<ReadToken>,
    /// How long a search may take.
    pub search_timeout: Duration,
}

/// Refuses to serve a non-loopback address without a read token.
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
    if !addr.ip().is_loopback() && token.map_or(true, str::is_empty) {
        return Err(format!(
            "refusing to serve {addr} without a read token: anyone who can reach it could \
             read every captured input and output; pass --read-token TOKEN (or set \
             XRAY_READ_TOKEN), or listen on 127.0.0.1"
        ));
    }
    Ok(())
}

/// Every route: the API behind the token check, the UI, `/healthz`.
pub fn router(state: Arc<AppState>) -> Router {
    let unknown = || async { ApiError::not_found("no such API path; see /api/v1/executions") };
    let api = api::router()
        .route("/api", any(unknown))
        .route("/api/{*rest}", any(unknown))
        .method_not_allowed_fallback(|| async {
            ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "the API only answers GET".into(),
            }
        })
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .merge(api)
        .merge(assets::router())
        .route("/healthz", get(healthz))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .fallback(|| async { assets::html(StatusCode::NOT_FOUND) })
        .layer(middleware::from_fn(guard))
        .with_state(state)
}

/// The API needs the token (when one is set).
async fn require_token(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    match &app.token {
        Some(token) if !token.allows(request.headers()) => ApiError::unauthorized().into_response(),
        _ => next.run(request).await,
    }
}

/// Deadline, panics and the headers every answer carries.
async fn guard(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/api/");
    let answer = tokio::time::timeout(
        REQUEST_TIMEOUT,
        AssertUnwindSafe(next.run(request)).catch_unwind(),
    )
    .await;
    let mut response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => {
            tracing::error!("a request handler panicked");
            ApiError::internal().into_response()
        }
        Err(_) => ApiError::timed_out("the request").into_response(),
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if is_api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `ok`, or `degraded` when the backend does not answer: nothing more,
/// as it needs no token.
async fn healthz(State(app): State<Arc<AppState>>) -> Response {
    let answer =
        tokio::time::timeout(Duration::from_secs(5), app.store.latest_execution(None)).await;
    match answer {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "degraded\n").into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` completes: each
/// connection on its own task, with [`HEADER_TIMEOUT`] for its headers.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "a connection ended with an error");
            }
        });
    }
}

/// Binds `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}
