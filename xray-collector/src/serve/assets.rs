//! The web UI: one HTML shell for every page (the script routes on the
//! path), its script and style sheet, embedded in the binary — no build
//! step, no Node toolchain — and the login form's handler.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::auth::set_cookie;
use super::AppState;

const INDEX: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const APP_CSS: &str = include_str!("ui/app.css");

/// The paths of the UI's pages; the script draws each from the API.
const PAGES: &[&str] = &[
    "/",
    "/executions",
    "/executions/{id}",
    "/executions/{id}/steps/{step}",
    "/executions/{id}/why/{candidate}",
    "/candidates/{candidate}",
    "/search",
    "/stats",
    "/login",
];

/// The UI's routes.
pub fn router() -> Router<Arc<AppState>> {
    let mut router = Router::new()
        .route(
            "/assets/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/assets/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .route("/login", post(login));
    for page in PAGES {
        router = router.route(page, get(shell));
    }
    router
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The page shell.
pub async fn shell() -> Response {
    html(StatusCode::OK)
}

/// The shell with a status (the script says what is missing).
pub fn html(status: StatusCode) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

/// Where to go after logging in: a path of this site, never another site
/// (`//host`, `/\host` or a scheme would leave it).
fn local_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.starts_with("/login")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if local {
        next
    } else {
        "/"
    }
}

/// `POST /login`: the right token sets the cookie and goes on to `next`;
/// a wrong one goes back to the form, saying so.
async fn login(State(app): State<Arc<AppState>>, Form(form): Form<LoginForm>) -> Response {
    let next = local_path(&form.next);
    let Some(token) = &app.token else {
        return redirect(next, None);
    };
    if token.matches(&form.token) {
        redirect(next, Some(set_cookie(&form.token)))
    } else {
        tracing::warn!("a login with a wrong read token");
        let back = format!(
            "/login?error=1&next={}",
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
        );
        redirect(&back, None)
    }
}

fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_owned())]).into_response();
    if let Some(cookie) = cookie.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::local_path;

    #[test]
    fn login_only_goes_on_to_a_path_of_this_site() {
        for ok in ["/", "/executions/x?y=1", "/search?q=%2F%2Fevil"] {
            assert_eq!(local_path(ok), ok);
        }
        for bad in [
            "",
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/login?next=/",
            "/ok\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(local_path(bad), "/", "{bad:?}");
        }
    }
}
