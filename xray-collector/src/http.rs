//! `--listen`: `/healthz` and `/metrics` for the daemon.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::ship::Metrics;

/// The routes: `/healthz` answers `200 ok`, or `503 degraded: <reason>`;
/// `/metrics` the OpenMetrics text format (which Prometheus reads).
pub fn router(metrics: Arc<Metrics>) -> Router {
    let health = metrics.clone();
    Router::new()
        .route(
            "/healthz",
            get(move || {
                let health = health.clone();
                async move {
                    match health.degraded() {
                        None => (StatusCode::OK, "ok\n".to_owned()),
                        Some(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("degraded: {reason}\n"),
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [("content-type", crate::ship::METRICS_CONTENT_TYPE)],
                        metrics.prometheus(),
                    )
                }
            }),
        )
}

/// Binds `addr` (an error here is reported before shipping starts) and
/// serves the routes until the runtime ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(metrics)).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });
    Ok(bound)
}
