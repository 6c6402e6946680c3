//! One trace across two services: a `shop` service runs the competitor
//! pipeline and, in its `fetch_reviews` step, calls a `reviews` service over
//! HTTP (axum on one side, reqwest on the other) with the step's W3C
//! `traceparent` header (`xray::traceparent()`); the reviews service
//! continues that trace (`xray::execution(..).traceparent(header)`). Each
//! service is its own process with its own outbox and project; both
//! outboxes are shipped into one store, and both executions print with the
//! one trace id they share.
//!
//! Run it with `cargo run --example two_services` (the reviews service is
//! this same program, started again as a child process). With
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, both halves are exported over OTLP
//! too, and show as one trace there.

#[path = "support/trace.rs"]
mod trace;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

/// Set in the child process: it serves reviews.
const ROLE: &str = "XRAY_EXAMPLE_ROLE";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Review {
    stars: u8,
    text: String,
}

fn reviews_of(asin: &str) -> Vec<Review> {
    let texts = [
        (5, "sturdy, folds flat"),
        (2, "wobbles at full height"),
        (4, "good value"),
        (1, "arrived scratched"),
    ];
    texts
        .iter()
        .enumerate()
        .map(|(i, (stars, text))| Review {
            stars: *stars,
            text: format!("{asin} #{i}: {text}"),
        })
        .collect()
}

/// The reviews service's own step: it keeps the reviews worth reading.
#[xray::step(kind = "retrieval")]
async fn load_reviews(asin: String) -> Vec<Review> {
    let mut kept = Vec::new();
    for r in reviews_of(&asin) {
        if r.stars >= 3 {
            xray::accept(&r.text, "stars", format!("{} stars", r.stars));
            kept.push(r);
        } else {
            xray::reject(&r.text, "stars", format!("{} < 3 stars", r.stars));
        }
    }
    kept
}

/// `GET /reviews/{asin}`: an execution of its own, continuing the caller's
/// trace when the request carries a `traceparent`.
async fn serve_reviews(Path(asin): Path<String>, headers: HeaderMap) -> Json<Vec<Review>> {
    let mut execution = xray::execution("serve_reviews").metadata("asin", &asin);
    if let Some(parent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        execution = execution.traceparent(parent);
    }
    Json(execution.run_async(load_reviews(asin)).await)
}

/// The child: serves until its standard input closes (the parent is done).
fn reviews_service() -> Result<(), Box<dyn std::error::Error>> {
    let guard = xray::Config::from_env().project("reviews").init()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let app = axum::Router::new().route("/reviews/{asin}", axum::routing::get(serve_reviews));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?);
        let stop = tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    guard.flush()?;
    Ok(())
}

/// The shop's step that calls the reviews service, handing on its trace.
#[xray::step(kind = "tool", skip(client))]
async fn fetch_reviews(
    client: &reqwest::Client,
    base: &str,
    asin: &str,
) -> Result<Vec<Review>, String> {
    let mut request = client.get(format!("{base}/reviews/{asin}"));
    if let Some(header) = xray::traceparent() {
        request = request.header("traceparent", header);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    response.json().await.map_err(|e| e.to_string())
}

#[xray::step(kind = "rank")]
fn pick(asin: &str, reviews: &[Review]) -> String {
    let stars: u32 = reviews.iter().map(|r| u32::from(r.stars)).sum();
    xray::score(asin, f64::from(stars) / reviews.len().max(1) as f64);
    asin.to_owned()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os(ROLE).is_some() {
        return reviews_service();
    }
    // The reviews service: this program again, with an outbox of its own.
    let shop_outbox = trace::outbox_path();
    let reviews_outbox: PathBuf = shop_outbox.with_file_name("reviews-outbox.db");
    let mut child = Command::new(std::env::current_exe()?)
        .env(ROLE, "reviews")
        .env("XRAY_OUTBOX", &reviews_outbox)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut address = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut address)?;
    let base = format!("http://{}", address.trim());

    let guard = xray::Config::from_env().project("shop").init()?;
    // reqwest's rustls wants a crypto provider (the collector's TLS uses
    // ring too).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let rt = tokio::runtime::Runtime::new()?;
    let shop_execution = rt.block_on(
        xray::execution("competitor_selection")
            .metadata("seller_asin", "B00SELLER")
            .run_async(async {
                let asin = "B01STAND";
                let reviews = fetch_reviews(&client, &base, asin).await?;
                pick(asin, &reviews);
                Ok::<_, String>(xray::current_execution_id())
            }),
    )?;
    drop(child.stdin.take()); // the reviews service stops
    child.wait()?;
    let shop_execution = shop_execution.ok_or("X-Ray is disabled: nothing was recorded")?;
    trace::ship_and_show_all(
        &guard,
        &[shop_outbox, reviews_outbox],
        &shop_execution,
        "reviews",
    )
}
