//! A local chat-completions server for the LLM reasoner's tests: an LLM
//! API cannot exist offline, so this one speaks its real protocol (`POST
//! /v1/chat/completions`, OpenAI's request and answer shapes) and answers
//! from a script — an explanation with usage, a status with `Retry-After`,
//! a slow answer, a malformed body — recording every request it gets.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// Prompt and completion tokens every explanation reports.
pub const USAGE: (i64, i64) = (100, 20);

/// One answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200` with a completion: `"<prefix> <step name>"`, usage [`USAGE`].
    Explain(&'static str),
    /// This status, with this `Retry-After` if any, and an error body
    /// (a 401's body echoes the `Authorization` header it got, as careless
    /// servers do).
    Status(u16, Option<&'static str>),
    /// An explanation after this long.
    Slow(Duration),
    /// `200` with this body as it is.
    Raw(&'static str),
}

/// A request the server got.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// Its `Authorization` header.
    pub authorization: Option<String>,
    /// Its JSON body.
    pub body: Value,
}

impl Seen {
    /// The user message's text.
    pub fn prompt(&self) -> &str {
        self.body["messages"][1]["content"].as_str().unwrap_or("")
    }
}

#[derive(Default)]
struct Script {
    next: VecDeque<Reply>,
    otherwise: Option<Reply>,
    seen: Vec<Seen>,
    /// Requests being answered now, and the most there were at once.
    in_flight: usize,
    most_at_once: usize,
}

/// The server (on a thread of its own, so that async tests can drop
/// it), stopped when dropped.
pub struct ChatServer {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ChatServer {
    /// A server answering `otherwise` once the scripted replies are used.
    pub fn start(otherwise: Reply) -> ChatServer {
        let script = Arc::new(Mutex::new(Script {
            otherwise: Some(otherwise),
            ..Script::default()
        }));
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(script.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound, addr) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                bound.send(listener.local_addr().unwrap()).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        ChatServer {
            addr: addr.recv().unwrap(),
            script,
            _stop: stop,
        }
    }

    /// The base URL, as `XRAY_LLM_BASE_URL` takes it.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Answers these first, in order.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().next.extend(replies);
    }

    /// Answers `reply` once the scripted ones are used.
    pub fn otherwise(&self, reply: Reply) {
        self.script.lock().unwrap().otherwise = Some(reply);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.script.lock().unwrap().seen.clone()
    }

    /// The most requests it was answering at once.
    pub fn most_at_once(&self) -> usize {
        self.script.lock().unwrap().most_at_once
    }
}

async fn complete(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return error(400, "invalid JSON body", None);
    };
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let reply = {
        let mut script = script.lock().unwrap();
        script.seen.push(Seen {
            at: Instant::now(),
            authorization: authorization.clone(),
            body: body.clone(),
        });
        let otherwise = script.otherwise.clone();
        script.in_flight += 1;
        script.most_at_once = script.most_at_once.max(script.in_flight);
        script.next.pop_front().or(otherwise).unwrap()
    };
    let response = answer(reply, &body, authorization).await;
    script.lock().unwrap().in_flight -= 1;
    response
}

async fn answer(reply: Reply, body: &Value, authorization: Option<String>) -> Response {
    match reply {
        Reply::Explain(prefix) => completion(body, prefix),
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            completion(body, "slow")
        }
        Reply::Status(401, _) => {
            let given = authorization.unwrap_or_default();
            error(401, &format!("Incorrect API key provided: {given}"), None)
        }
        Reply::Status(status, retry_after) => error(status, "try again later", retry_after),
        Reply::Raw(text) => {
            (StatusCode::OK, [("content-type", "application/json")], text).into_response()
        }
    }
}

/// A chat completion as OpenAI's API answers it.
fn completion(request: &Value, prefix: &str) -> Response {
    let prompt = request["messages"][1]["content"].as_str().unwrap_or("");
    let step = prompt
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Step: "))
        .and_then(|l| l.split(" (kind").next())
        .unwrap_or("?");
    let answer = json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_765_000_000,
        "model": request["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("{prefix} {step}")},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": USAGE.0,
            "completion_tokens": USAGE.1,
            "total_tokens": USAGE.0 + USAGE.1
        }
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// An error as OpenAI's API answers one.
fn error(status: u16, message: &str, retry_after: Option<&'static str>) -> Response {
    let body = json!({"error": {"message": message, "type": "server_error", "code": status}});
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Some(after) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}
