//! The HTTP API (`serve`) on both backends: every route, its status codes,
//! bad input (400 with a JSON error), unknown ids (404), the read token
//! (401), and the headers every answer carries. Requests go through the
//! server's real router; the slow-client deadline through a real socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use xray_collector::backend::Store;
use xray_collector::serve::{self, AppState, ReadToken, SEARCH_TIMEOUT};

use crate::backend::Backend;
use crate::support::records::{decision, execution, filter_step, id, step, T0};

on_both_backends!(
    migrated: every_route_answers_json_and_pages_large_executions,
    bad_input_is_a_400_and_unknown_ids_a_404,
    the_read_token_is_needed_on_the_api_but_not_on_healthz,
    pages_carry_the_security_policy_and_login_goes_only_to_this_site,
);

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/json",
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// A JSON error with this status; its message.
    fn error(&self, status: StatusCode) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        body["error"].as_str().expect("{\"error\": …}").to_owned()
    }
}

async fn app(db: &Backend, token: Option<&str>) -> axum::Router {
    serve::router(Arc::new(AppState {
        store: db.another_store().await,
        token: token.map(ReadToken::new),
        search_timeout: SEARCH_TIMEOUT,
    }))
}

async fn send(app: &axum::Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(app: &axum::Router, uri: &str) -> Answer {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

/// Execution 1: `pipeline` with three children (one a filter with
/// decisions and an LLM call of `gpt-x`, priced at 2 $ / 10 $ per million
/// tokens), 30 more top-level steps; execution 2 decides on `c1` too. Its
/// filter and failed steps are explained by the rules reasoner.
async fn data(db: &Backend) {
    let mut prices = xray_collector::cost::built_in();
    prices.push(xray_collector::cost::ModelPrice {
        model: "gpt-x".into(),
        prompt_per_million: 2.0,
        completion_per_million: 10.0,
        source: "test".into(),
    });
    db.store.set_model_prices(&prices).await.unwrap();
    let exec = id(1);
    let mut records = vec![
        execution(exec).name("pick").record(),
        step(id(10), exec).name("pipeline").at(T0 + 1).record(),
        filter_step(id(11), exec)
            .name("price_filter")
            .parent(id(10))
            .at(T0 + 2)
            .input(json!({"html": "<script>alert(1)</script>"}))
            .record(),
        step(id(12), exec)
            .name("rank")
            .parent(id(10))
            .at(T0 + 3)
            .record(),
        step(id(13), exec)
            .name("fails")
            .parent(id(10))
            .at(T0 + 4)
            .failed("timed out talking to search")
            .record(),
        execution(id(2)).name("other").at(T0 + 100).record(),
        step(id(20), id(2))
            .name("price_filter")
            .at(T0 + 101)
            .decisions(vec![decision("c1", Some(true), "cheap now")])
            .record(),
    ];
    for n in 0..30u128 {
        records.push(
            step(id(100 + n), exec)
                .name("later")
                .at(T0 + 10 + n as i64)
                .record(),
        );
    }
    db.store.write(&records).await.unwrap();
    xray_collector::indexing::catch_up(&db.store).await.unwrap();
    xray_collector::reasoning::catch_up(&db.store)
        .await
        .unwrap();
}

async fn every_route_answers_json_and_pages_large_executions(db: Backend) {
    data(&db).await;
    let app = app(&db, None).await;
    let e1 = id(1).to_string();

    let list = get(&app, "/api/v1/executions?limit=1").await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    assert_eq!(list["executions"][0]["id"], json!(id(2).to_string()));
    let next = list["next_cursor"].as_str().expect("a second page");
    let second = get(&app, &format!("/api/v1/executions?limit=1&cursor={next}"))
        .await
        .json();
    assert_eq!(second["executions"][0]["id"], json!(e1));
    assert_eq!(second["next_cursor"], Value::Null);
    let filtered = get(
        &app,
        "/api/v1/executions?name=pick&status=ok&since=2023-01-01T00:00:00Z",
    )
    .await
    .json();
    assert_eq!(filtered["executions"].as_array().unwrap().len(), 1);

    // The execution with its first steps, and where the rest are.
    let one = get(&app, &format!("/api/v1/executions/{e1}?limit=10"))
        .await
        .json();
    assert_eq!(one["execution"]["name"], "pick");
    assert_eq!(one["execution"]["steps"], 34);
    assert_eq!(one["execution"]["metadata"], json!({"sku": "A-1"}));
    // Its LLM calls per model and their cost: (120 × 2 + 30 × 10) / 1e6.
    let gpt_x = json!({
        "model": "gpt-x", "calls": 1, "prompt_tokens": 120, "completion_tokens": 30,
        "cost_usd": 0.00054,
    });
    assert_eq!(
        one["execution"]["llm"],
        json!({
            "models": [gpt_x], "calls": 1, "prompt_tokens": 120, "completion_tokens": 30,
            "cost_usd": 0.00054,
        })
    );
    assert_eq!(one["steps"].as_array().unwrap().len(), 10);
    assert_eq!(one["steps"][0]["name"], "pipeline");
    assert_eq!(one["steps"][0]["children"], 3);
    assert_eq!(one["steps"][1]["decisions"], 2);
    assert_eq!(one["steps"][3]["has_error"], true);
    assert!(
        one["steps"][0].get("input").is_none(),
        "values come per step"
    );
    // Following `next` walks every step once.
    let mut seen = one["steps"].as_array().unwrap().len();
    let mut next = one["next"].as_str().map(str::to_owned);
    while let Some(path) = next {
        let page = get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        let page = page.json();
        seen += page["steps"].as_array().unwrap().len();
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 34);
    let latest = get(&app, "/api/v1/executions/latest?limit=1").await.json();
    assert_eq!(latest["execution"]["id"], json!(id(2).to_string()));

    let roots = get(
        &app,
        &format!("/api/v1/executions/{e1}/steps?parent=root&limit=5000"),
    )
    .await
    .json();
    assert_eq!(roots["steps"].as_array().unwrap().len(), 31);
    let children = get(
        &app,
        &format!("/api/v1/executions/{e1}/steps?parent={}", id(10)),
    )
    .await
    .json();
    let names: Vec<&str> = children["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["price_filter", "rank", "fails"]);

    let detail = get(&app, &format!("/api/v1/executions/{e1}/steps/{}", id(11)))
        .await
        .json();
    assert_eq!(
        detail["input"],
        json!({"html": "<script>alert(1)</script>"})
    );
    assert_eq!(detail["decisions"][0]["candidate_id"], "c1");
    assert_eq!(detail["llm_usage"][0]["model"], "gpt-x");
    assert_eq!(detail["llm_usage"][0]["cost_usd"], 0.00054);
    assert!(
        detail["reasoning"]
            .as_str()
            .is_some_and(|r| r.starts_with("2 candidates: 1 kept")),
        "{detail}"
    );
    assert_eq!(detail["reasoning_job"]["status"], "completed", "{detail}");
    assert_eq!(detail["reasoning_job"]["method"], "rules");
    assert_eq!(detail["reasoning_job"]["attempts"], 1);
    assert!(detail["reasoning_job"]["completed_at_us"].is_i64());
    let plain = get(&app, &format!("/api/v1/executions/{e1}/steps/{}", id(12)))
        .await
        .json();
    assert_eq!(plain["name"], "rank");
    assert!(
        plain["reasoning"].is_null() && plain["reasoning_job"].is_null(),
        "a step with nothing to explain has neither: {plain}"
    );

    let why = get(&app, &format!("/api/v1/executions/{e1}/why/c1"))
        .await
        .json();
    assert_eq!(why["entries"][0]["reason"], "too expensive");
    assert_eq!(why["entries"][0]["accepted"], false);
    // The step's reasoning and its job, as its own answer has them.
    assert_eq!(why["entries"][0]["step_id"], json!(id(11).to_string()));
    assert_eq!(why["entries"][0]["reasoning"], detail["reasoning"], "{why}");
    assert_eq!(
        why["entries"][0]["reasoning_job"], detail["reasoning_job"],
        "{why}"
    );
    assert_eq!(why["entries"][0]["reasoning_job"]["status"], "completed");
    assert_eq!(
        why["elsewhere"][0]["execution_id"],
        json!(id(2).to_string())
    );
    assert_eq!(why["elsewhere"][0]["reason"], "cheap now");
    let nobody = get(&app, &format!("/api/v1/executions/{e1}/why/zzz")).await;
    assert_eq!(
        nobody.status,
        StatusCode::OK,
        "an unknown candidate has an empty path"
    );
    assert_eq!(nobody.json()["entries"], json!([]));
    let anywhere = get(&app, "/api/v1/candidates/c1?limit=10").await.json();
    assert_eq!(anywhere["entries"].as_array().unwrap().len(), 2);

    let hits = get(&app, "/api/v1/search?q=search&limit=5").await.json();
    assert_eq!(hits["hits"][0]["step_id"], json!(id(13).to_string()));
    let stats = get(&app, "/api/v1/stats?name=price_filter").await.json();
    assert_eq!(stats["steps"][0]["name"], "price_filter");
    assert_eq!(stats["steps"][0]["count"], 2);
    assert_eq!(stats["models"][0]["model"], "gpt-x");
    assert_eq!(stats["models"][0]["cost_usd"], 0.00054);
}

async fn bad_input_is_a_400_and_unknown_ids_a_404(db: Backend) {
    data(&db).await;
    let app = app(&db, None).await;
    let e1 = id(1).to_string();
    for uri in [
        "/api/v1/executions?limit=0".to_owned(),
        "/api/v1/executions?limit=1001".to_owned(),
        "/api/v1/executions?limit=-1".to_owned(),
        "/api/v1/executions?limit=ten".to_owned(),
        "/api/v1/executions?cursor=garbage".to_owned(),
        "/api/v1/executions?status=sideways".to_owned(),
        "/api/v1/executions?since=yesterday".to_owned(),
        "/api/v1/executions?until=2026-02-31T00:00:00Z".to_owned(),
        "/api/v1/executions?colour=red".to_owned(),
        "/api/v1/executions?limit=1&limit=2".to_owned(),
        "/api/v1/executions/not-a-uuid".to_owned(),
        format!("/api/v1/executions/{e1}?limit=5001"),
        format!("/api/v1/executions/{e1}/steps?parent=nobody"),
        format!("/api/v1/executions/{e1}/steps?cursor=1.2"),
        format!("/api/v1/executions/{e1}/steps/%FF"),
        format!("/api/v1/executions/{e1}/steps/{}?x=1", id(11)),
        "/api/v1/candidates/c1?limit=501".to_owned(),
        "/api/v1/search".to_owned(),
        "/api/v1/search?q=%20%20".to_owned(),
        "/api/v1/search?q=a&limit=201".to_owned(),
        "/api/v1/stats?since=%00".to_owned(),
    ] {
        let answer = get(&app, &uri).await;
        let message = answer.error(StatusCode::BAD_REQUEST);
        assert!(!message.is_empty(), "{uri}");
    }
    let message = get(&app, "/api/v1/executions?limit=0")
        .await
        .error(StatusCode::BAD_REQUEST);
    assert!(message.contains("1 to 1000"), "{message}");

    let unknown = id(404);
    for uri in [
        format!("/api/v1/executions/{unknown}"),
        format!("/api/v1/executions/{unknown}/steps"),
        format!("/api/v1/executions/{unknown}/steps/{}", id(11)),
        format!("/api/v1/executions/{e1}/steps/{unknown}"),
        format!("/api/v1/executions/{e1}/steps/{}", id(20)),
        format!("/api/v1/executions/{e1}/steps?parent={unknown}"),
        format!("/api/v1/executions/{unknown}/why/c1"),
        "/api/v1/nothing".to_owned(),
        "/api/v2/executions".to_owned(),
        "/api".to_owned(),
    ] {
        get(&app, &uri).await.error(StatusCode::NOT_FOUND);
    }
    // Another method is refused in JSON too.
    let post = send(
        &app,
        Request::post("/api/v1/executions")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    post.error(StatusCode::METHOD_NOT_ALLOWED);
}

async fn the_read_token_is_needed_on_the_api_but_not_on_healthz(db: Backend) {
    data(&db).await;
    let app = app(&db, Some("s3cret")).await;
    for uri in ["/api/v1/executions", "/api/v1/stats", "/api/v1/nothing"] {
        let message = get(&app, uri).await.error(StatusCode::UNAUTHORIZED);
        assert!(message.contains("Bearer"), "{message}");
    }
    let with = |value: &str, name| {
        Request::get("/api/v1/executions")
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    for (value, name) in [
        ("Bearer wrong", header::AUTHORIZATION),
        ("s3cret", header::AUTHORIZATION),
        ("Basic s3cret", header::AUTHORIZATION),
        ("xray_token=wrong", header::COOKIE),
        ("other=s3cret", header::COOKIE),
    ] {
        send(&app, with(value, name))
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
    for (value, name) in [
        ("Bearer s3cret", header::AUTHORIZATION),
        ("a=1; xray_token=s3cret", header::COOKIE),
    ] {
        let answer = send(&app, with(value, name)).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json()["executions"].as_array().unwrap().len(), 2);
    }
    let health = get(&app, "/healthz").await;
    assert_eq!(
        (health.status, health.body.as_slice()),
        (StatusCode::OK, &b"ok\n"[..])
    );

    // The login form: a wrong token goes back to the form, the right one
    // sets the cookie and goes on.
    let login = |token: &str, next: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}&next={next}")))
            .unwrap()
    };
    let wrong = send(&app, login("nope", "%2Fstats")).await;
    assert_eq!(wrong.status, StatusCode::SEE_OTHER);
    assert_eq!(
        wrong.headers[header::LOCATION],
        "/login?error=1&next=%2Fstats"
    );
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let right = send(&app, login("s3cret", "%2Fstats")).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(right.headers[header::LOCATION], "/stats");
    let cookie = right.headers[header::SET_COOKIE].to_str().unwrap();
    assert_eq!(
        cookie,
        "xray_token=s3cret; HttpOnly; SameSite=Strict; Path=/"
    );
}

async fn pages_carry_the_security_policy_and_login_goes_only_to_this_site(db: Backend) {
    data(&db).await;
    let app = app(&db, None).await;
    for uri in [
        "/",
        "/executions",
        &format!("/executions/{}", id(1)),
        &format!("/executions/{}/steps/{}", id(1), id(11)),
        &format!("/executions/{}/why/c1", id(1)),
        "/candidates/c1",
        "/search?q=x",
        "/stats",
        "/login",
        "/assets/app.js",
        "/assets/app.css",
        "/api/v1/executions",
        "/no/such/page",
    ] {
        let answer = get(&app, uri).await;
        let csp = answer.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"), "{uri}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{uri}: {csp}");
        assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let page = get(&app, "/executions").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains(r#"<script src="/assets/app.js""#));
    assert!(!html.contains("<script>"), "no inline script");
    assert_eq!(
        get(&app, "/no/such/page").await.status,
        StatusCode::NOT_FOUND
    );
    let js = get(&app, "/assets/app.js").await;
    assert!(js.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let script = String::from_utf8(js.body).unwrap();
    for forbidden in [
        ".innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!script.contains(forbidden), "app.js uses {forbidden}");
    }
    // Without a token set, the login form just goes on, and never to another site.
    let login = send(
        &app,
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("token=x&next=%2F%2Fevil.example%2F"))
            .unwrap(),
    )
    .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(login.headers[header::LOCATION], "/");
}

/// A client that never finishes its headers is cut off.
#[tokio::test]
async fn a_client_that_sends_its_headers_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let db = Backend::migrated(crate::backend::Kind::Embedded).await;
    let router = app(&db, None).await;
    let (listener, addr) = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    tokio::spawn(serve::serve(listener, router, std::future::pending()));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // Well past the header deadline: the server must have closed by then.
    let read = tokio::time::timeout(
        serve::HEADER_TIMEOUT + Duration::from_secs(20),
        stream.read_to_end(&mut buf),
    )
    .await;
    assert!(
        read.is_ok(),
        "the connection was still open after the header deadline"
    );
    // And a whole request on a new connection is answered.
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
