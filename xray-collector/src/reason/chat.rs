//! An OpenAI-compatible chat-completions client (`POST
//! {XRAY_LLM_BASE_URL}/chat/completions`, as OpenAI, Ollama, vLLM and
//! llama.cpp's server answer it): one call per step, its answer
//! classified.
//!
//! - `200` with a non-empty `choices[0].message.content`: the explanation,
//!   with the `usage` token counts when the server gives them.
//! - May pass later ([`ChatError::Transient`]): 408, 409, 425, 429 and
//!   5xx (with the server's `Retry-After`), a timeout, a broken
//!   connection, and an answer that is not such a body (malformed JSON, no
//!   choice, empty content) — servers under load send those too.
//! - Will not ([`ChatError::Refused`]): the other 4xx — a wrong key (401,
//!   403), base URL or model (404), a request the server will not take.
//!
//! The key goes in the `Authorization` header, marked sensitive; no error
//! text carries it (a server echoing it back is scrubbed), nor a password
//! in the base URL.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::config::LlmConfig;

/// The most of an answer kept as a step's reasoning.
pub const MAX_ANSWER_BYTES: usize = 4_000;
/// The most tokens the model is asked to answer in.
const MAX_TOKENS: u32 = 300;

/// What the model said.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The explanation (trimmed, at most [`MAX_ANSWER_BYTES`]).
    pub text: String,
    /// The model that answered, as the server names it (else the one asked).
    pub model: String,
    /// Prompt tokens, if the server counted them.
    pub prompt_tokens: Option<i64>,
    /// Completion tokens, if the server counted them.
    pub completion_tokens: Option<i64>,
}

/// Why a call gave no explanation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChatError {
    /// Trying again later may succeed.
    #[error("{reason}")]
    Transient {
        /// What happened.
        reason: String,
        /// When to try again, if the server said (`Retry-After`).
        after: Option<Duration>,
    },
    /// Trying again will fail the same way.
    #[error("{reason}")]
    Refused {
        /// What happened, and what to check.
        reason: String,
    },
}

/// Calls one chat-completions endpoint.
#[derive(Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    config: Arc<LlmConfig>,
}

impl ChatClient {
    /// A client for `config` ([`crate::outbound::client`], with its timeout).
    pub fn new(config: LlmConfig) -> Result<ChatClient, String> {
        Ok(ChatClient {
            http: crate::outbound::client(config.timeout, "LLM")?,
            config: Arc::new(config),
        })
    }

    /// Its settings.
    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Asks the model once with `messages` (role, content).
    pub async fn complete(&self, messages: &[(&str, String)]) -> Result<Answer, ChatError> {
        let body = json!({
            "model": self.config.model,
            "messages": messages
                .iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect::<Vec<_>>(),
            "temperature": 0,
            "max_tokens": MAX_TOKENS,
            "stream": false,
        });
        let mut post = self
            .http
            .post(self.config.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        if let Some(key) = &self.config.api_key {
            if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.expose())) {
                value.set_sensitive(true);
                post = post.header(AUTHORIZATION, value);
            }
        }
        let answer = match post.send().await {
            Ok(response) => {
                let status = response.status();
                let after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(crate::outbound::retry_after);
                match response.bytes().await {
                    Ok(body) => classify(status, after, &body, &self.config.model),
                    Err(e) => Err(self.failed(&e)),
                }
            }
            Err(e) => Err(self.failed(&e)),
        };
        answer.map_err(|e| self.scrubbed(e))
    }

    /// A request that got no whole answer: transient.
    fn failed(&self, e: &reqwest::Error) -> ChatError {
        let reason = if e.is_timeout() {
            format!("no answer within {:?}", self.config.timeout)
        } else {
            crate::error_text::with_causes(&WithoutUrl(e))
        };
        ChatError::Transient {
            reason,
            after: None,
        }
    }

    /// `e` with the key, should a server have echoed it, taken out.
    fn scrubbed(&self, e: ChatError) -> ChatError {
        let Some(key) = self.config.api_key.as_ref().map(|k| k.expose()) else {
            return e;
        };
        if key.is_empty() {
            return e;
        }
        match e {
            ChatError::Transient { reason, after } => ChatError::Transient {
                reason: reason.replace(key, "[redacted]"),
                after,
            },
            ChatError::Refused { reason } => ChatError::Refused {
                reason: reason.replace(key, "[redacted]"),
            },
        }
    }
}

/// A reqwest error shown without its URL (which may carry a password).
struct WithoutUrl<'a>(&'a reqwest::Error);

impl std::fmt::Display for WithoutUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        match self.0.url() {
            Some(url) => f.write_str(&text.replace(&format!(" ({url})"), "")),
            None => f.write_str(&text),
        }
    }
}

impl std::fmt::Debug for WithoutUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for WithoutUrl<'_> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(self.0)
    }
}

/// The answer's meaning.
fn classify(
    status: StatusCode,
    after: Option<Duration>,
    body: &[u8],
    asked: &str,
) -> Result<Answer, ChatError> {
    if status.is_success() {
        return read_answer(body, asked).map_err(|why| ChatError::Transient {
            reason: format!(
                "malformed answer ({why}): {}",
                crate::outbound::excerpt(body)
            ),
            after: None,
        });
    }
    let reason = format!(
        "HTTP {}: {}",
        status.as_u16(),
        crate::outbound::excerpt(body)
    );
    match status.as_u16() {
        408 | 409 | 425 | 429 | 500..=599 => Err(ChatError::Transient { reason, after }),
        401 | 403 => Err(ChatError::Refused {
            reason: format!("{reason} (check XRAY_LLM_API_KEY)"),
        }),
        404 => Err(ChatError::Refused {
            reason: format!("{reason} (check XRAY_LLM_BASE_URL and XRAY_LLM_MODEL)"),
        }),
        _ => Err(ChatError::Refused { reason }),
    }
}

/// A chat completion's text, model and usage; why not, if it is not one.
fn read_answer(body: &[u8], asked: &str) -> Result<Answer, &'static str> {
    let value: Value = serde_json::from_slice(body).map_err(|_| "not JSON")?;
    let content = value
        .pointer("/choices/0/message/content")
        .ok_or("no choices[0].message.content")?
        .as_str()
        .ok_or("the content is not text")?
        .trim();
    if content.is_empty() {
        return Err("the content is empty");
    }
    let tokens = |name: &str| {
        value
            .pointer(&format!("/usage/{name}"))
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0)
    };
    Ok(Answer {
        text: bounded(content),
        model: value
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
            .unwrap_or(asked)
            .to_owned(),
        prompt_tokens: tokens("prompt_tokens"),
        completion_tokens: tokens("completion_tokens"),
    })
}

/// `text` cut to [`MAX_ANSWER_BYTES`] on a character boundary, marked.
fn bounded(text: &str) -> String {
    if text.len() <= MAX_ANSWER_BYTES {
        return text.to_owned();
    }
    format!("{}…", super::prompt::prefix(text, MAX_ANSWER_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Result<Answer, ChatError> {
        classify(
            StatusCode::from_u16(status).unwrap(),
            Some(Duration::from_secs(3)),
            body.as_bytes(),
            "asked-model",
        )
    }

    #[test]
    fn a_completion_is_read_with_its_usage_and_model() {
        let body = r#"{"id":"c1","object":"chat.completion","model":"gpt-4o-mini-2024",
            "choices":[{"index":0,"message":{"role":"assistant","content":"  Kept B01.\n"},
            "finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":9,"total_tokens":129}}"#;
        assert_eq!(
            answer(200, body),
            Ok(Answer {
                text: "Kept B01.".into(),
                model: "gpt-4o-mini-2024".into(),
                prompt_tokens: Some(120),
                completion_tokens: Some(9),
            })
        );
        let bare = r#"{"choices":[{"message":{"content":"ok"}}]}"#;
        assert_eq!(
            answer(200, bare),
            Ok(Answer {
                text: "ok".into(),
                model: "asked-model".into(),
                prompt_tokens: None,
                completion_tokens: None,
            })
        );
        let long = format!(
            r#"{{"choices":[{{"message":{{"content":"{}"}}}}]}}"#,
            "é".repeat(3000)
        );
        let text = answer(200, &long).unwrap().text;
        assert!(text.len() <= MAX_ANSWER_BYTES + "…".len() && text.ends_with('…'));
    }

    #[test]
    fn malformed_answers_and_overload_may_pass_and_refusals_will_not() {
        for body in [
            "<html>gateway</html>",
            r#"{"choices":[]}"#,
            r#"{"choices":[{"message":{"content":"   "}}]}"#,
            r#"{"choices":[{"message":{"content":42}}]}"#,
        ] {
            assert!(
                matches!(answer(200, body), Err(ChatError::Transient { ref reason, after: None }) if reason.starts_with("malformed answer")),
                "{body}: {:?}",
                answer(200, body)
            );
        }
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                answer(status, "busy"),
                Err(ChatError::Transient {
                    reason: format!("HTTP {status}: busy"),
                    after: Some(Duration::from_secs(3)),
                })
            );
        }
        for (status, hint) in [
            (401, "XRAY_LLM_API_KEY"),
            (404, "XRAY_LLM_MODEL"),
            (400, "HTTP 400"),
        ] {
            match answer(status, r#"{"error":{"message":"no"}}"#) {
                Err(ChatError::Refused { reason }) => assert!(reason.contains(hint), "{reason}"),
                other => panic!("{status}: {other:?}"),
            }
        }
    }
}
