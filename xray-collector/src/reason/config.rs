//! Which reasoner runs, from the environment (DESIGN.md, "Reasoning"):
//!
//! - `XRAY_REASONER`: `rules` (default), `llm` or `off`.
//! - For `llm`: `XRAY_LLM_BASE_URL` (an OpenAI-compatible API's base, e.g.
//!   `http://127.0.0.1:11434/v1`; `/chat/completions` is added unless the
//!   URL already ends with it) and `XRAY_LLM_MODEL`, both required;
//!   `XRAY_LLM_API_KEY`, sent as `Authorization: Bearer …` when set (a
//!   local server may need none), never stored, printed or logged.
//! - Tuning, each optional: `XRAY_LLM_TIMEOUT` (one call, `30s`, `2m`;
//!   default 60 s), `XRAY_LLM_MAX_ATTEMPTS` (calls per job before it ends
//!   `failed`, default 5), `XRAY_LLM_CONCURRENCY` (calls at once, default
//!   4), `XRAY_LLM_RATE_LIMIT` (most calls started per minute; default no
//!   limit beyond the concurrency).
//!
//! A malformed or missing value is an error naming the variable.

use std::fmt;
use std::time::Duration;

use url::Url;

/// Which reasoner explains the queued steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Reasoner {
    /// The offline rules reasoner alone.
    Rules,
    /// The rules text first, then an LLM's in its place when it answers.
    Llm(LlmConfig),
    /// Nothing is explained: jobs stay pending (a later `reason`, or a
    /// collector with a reasoner, explains them).
    Off,
}

/// An API key: shown as `[redacted]` by `Debug`, so that no log of a
/// config can carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// The key, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The LLM reasoner's settings (`Debug` shows neither the key nor a
/// password in the URL).
#[derive(Clone, PartialEq)]
pub struct LlmConfig {
    /// Where chat completions are POSTed (`…/chat/completions`).
    pub endpoint: Url,
    /// The model asked.
    pub model: String,
    /// The key, if the server needs one.
    pub api_key: Option<ApiKey>,
    /// Most time one call may take.
    pub timeout: Duration,
    /// Calls per job (since it was last queued) before it ends `failed`.
    pub max_attempts: u32,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Most calls started per minute, if limited.
    pub per_minute: Option<u32>,
}

impl fmt::Debug for LlmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmConfig")
            .field("endpoint", &self.endpoint_shown())
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("concurrency", &self.concurrency)
            .field("per_minute", &self.per_minute)
            .finish()
    }
}

impl LlmConfig {
    /// The endpoint as it may be logged: a password in it masked.
    pub fn endpoint_shown(&self) -> String {
        crate::outbound::url_shown(&self.endpoint)
    }
}

/// Defaults of the tuning variables.
const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_ATTEMPTS: u32 = 5;
const CONCURRENCY: usize = 4;

impl Reasoner {
    /// The reasoner the environment (`env`) asks for.
    pub fn resolve(env: impl Fn(&str) -> Option<String>) -> Result<Reasoner, String> {
        let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        match env("XRAY_REASONER").as_deref().map(str::trim) {
            None | Some("rules") => Ok(Reasoner::Rules),
            Some("off") => Ok(Reasoner::Off),
            Some("llm") => LlmConfig::resolve(env).map(Reasoner::Llm),
            Some(other) => Err(format!(
                "XRAY_REASONER={other:?}: use rules (the default), llm or off"
            )),
        }
    }

    /// Its name, as jobs and logs give it.
    pub fn name(&self) -> &'static str {
        match self {
            Reasoner::Rules => "rules",
            Reasoner::Llm(_) => "llm",
            Reasoner::Off => "off",
        }
    }
}

impl LlmConfig {
    fn resolve(env: impl Fn(&str) -> Option<String>) -> Result<LlmConfig, String> {
        let required =
            |name: &str| env(name).ok_or_else(|| format!("XRAY_REASONER=llm needs {name}"));
        let base = required("XRAY_LLM_BASE_URL")?;
        let mut endpoint = Url::parse(base.trim()).map_err(|e| {
            format!("XRAY_LLM_BASE_URL: not a URL ({e}); e.g. http://127.0.0.1:11434/v1")
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.cannot_be_a_base() {
            return Err(format!(
                "XRAY_LLM_BASE_URL: use an http:// or https:// URL, not {:?}",
                endpoint.scheme()
            ));
        }
        if !endpoint
            .path()
            .trim_end_matches('/')
            .ends_with("/chat/completions")
        {
            let path = format!("{}/chat/completions", endpoint.path().trim_end_matches('/'));
            endpoint.set_path(&path);
        }
        let model = required("XRAY_LLM_MODEL")?.trim().to_owned();
        let timeout = match env("XRAY_LLM_TIMEOUT") {
            Some(t) => {
                let us = crate::query::parse_duration(&t)
                    .map_err(|e| format!("XRAY_LLM_TIMEOUT: {e}"))?;
                Duration::from_micros(u64::try_from(us).unwrap_or(0))
            }
            None => TIMEOUT,
        };
        Ok(LlmConfig {
            endpoint,
            model,
            api_key: env("XRAY_LLM_API_KEY").map(|k| ApiKey(k.trim().to_owned())),
            timeout,
            max_attempts: number(&env, "XRAY_LLM_MAX_ATTEMPTS", 1, 100)?.unwrap_or(MAX_ATTEMPTS),
            concurrency: number(&env, "XRAY_LLM_CONCURRENCY", 1, 256)?
                .map_or(CONCURRENCY, |n| n as usize),
            per_minute: number(&env, "XRAY_LLM_RATE_LIMIT", 1, 1_000_000)?,
        })
    }
}

/// A whole number from `min` to `max` in `name`, if set.
fn number(
    env: &impl Fn(&str) -> Option<String>,
    name: &str,
    min: u32,
    max: u32,
) -> Result<Option<u32>, String> {
    let Some(text) = env(name) else {
        return Ok(None);
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{name}={text:?}: use a whole number from {min} to {max}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Result<Reasoner, String> {
        Reasoner::resolve(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn llm(vars: &[(&str, &str)]) -> LlmConfig {
        let mut all = vec![("XRAY_REASONER", "llm")];
        all.extend_from_slice(vars);
        match resolve(&all) {
            Ok(Reasoner::Llm(config)) => config,
            other => panic!("{other:?}"),
        }
    }

    const BASE: [(&str, &str); 2] = [
        ("XRAY_LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
        ("XRAY_LLM_MODEL", "llama3.1"),
    ];

    #[test]
    fn rules_is_the_default_and_off_and_llm_are_chosen_by_name() {
        assert_eq!(resolve(&[]), Ok(Reasoner::Rules));
        assert_eq!(resolve(&[("XRAY_REASONER", " ")]), Ok(Reasoner::Rules));
        assert_eq!(resolve(&[("XRAY_REASONER", "off")]), Ok(Reasoner::Off));
        let err = resolve(&[("XRAY_REASONER", "gpt")]).unwrap_err();
        assert!(err.contains("XRAY_REASONER=\"gpt\""), "{err}");
        let config = llm(&BASE);
        assert_eq!(
            config.endpoint.as_str(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
        assert_eq!(config.model, "llama3.1");
        assert_eq!(config.api_key, None);
        assert_eq!(
            (
                config.timeout,
                config.max_attempts,
                config.concurrency,
                config.per_minute
            ),
            (TIMEOUT, MAX_ATTEMPTS, CONCURRENCY, None)
        );
    }

    #[test]
    fn the_endpoint_gets_chat_completions_once() {
        for (base, endpoint) in [
            ("http://h/v1/", "http://h/v1/chat/completions"),
            ("https://h", "https://h/chat/completions"),
            (
                "http://h/v1/chat/completions",
                "http://h/v1/chat/completions",
            ),
        ] {
            let config = llm(&[("XRAY_LLM_BASE_URL", base), ("XRAY_LLM_MODEL", "m")]);
            assert_eq!(config.endpoint.as_str(), endpoint, "{base}");
        }
    }

    #[test]
    fn llm_needs_a_base_url_and_a_model_and_refuses_garbage_naming_the_variable() {
        let only_model = [("XRAY_REASONER", "llm"), ("XRAY_LLM_MODEL", "m")];
        assert!(resolve(&only_model)
            .unwrap_err()
            .contains("XRAY_LLM_BASE_URL"));
        let only_url = [("XRAY_REASONER", "llm"), BASE[0]];
        assert!(resolve(&only_url).unwrap_err().contains("XRAY_LLM_MODEL"));
        for (name, value) in [
            ("XRAY_LLM_BASE_URL", "not a url"),
            ("XRAY_LLM_BASE_URL", "ftp://h/v1"),
            ("XRAY_LLM_TIMEOUT", "soon"),
            ("XRAY_LLM_MAX_ATTEMPTS", "0"),
            ("XRAY_LLM_CONCURRENCY", "-1"),
            ("XRAY_LLM_RATE_LIMIT", "lots"),
        ] {
            let mut vars = vec![("XRAY_REASONER", "llm")];
            vars.extend_from_slice(&BASE);
            vars.retain(|(k, _)| *k != name);
            vars.push((name, value));
            let err = resolve(&vars).unwrap_err();
            assert!(err.starts_with(name), "{name}={value}: {err}");
        }
    }

    #[test]
    fn the_tuning_is_read_and_the_key_never_shown() {
        let mut vars = BASE.to_vec();
        vars.extend([
            ("XRAY_LLM_API_KEY", "sk-secret-123"),
            ("XRAY_LLM_TIMEOUT", "30s"),
            ("XRAY_LLM_MAX_ATTEMPTS", "3"),
            ("XRAY_LLM_CONCURRENCY", "2"),
            ("XRAY_LLM_RATE_LIMIT", "120"),
            ("XRAY_LLM_BASE_URL", "https://u:pw@h/v1"),
        ]);
        vars.retain(|(k, v)| *k != "XRAY_LLM_BASE_URL" || v.starts_with("https"));
        let config = llm(&vars);
        assert_eq!(
            config.api_key.as_ref().map(ApiKey::expose),
            Some("sk-secret-123")
        );
        assert_eq!(
            (
                config.timeout,
                config.max_attempts,
                config.concurrency,
                config.per_minute
            ),
            (Duration::from_secs(30), 3, 2, Some(120))
        );
        let shown = format!("{config:?} {}", config.endpoint_shown());
        assert!(!shown.contains("sk-secret-123"), "{shown}");
        assert!(!shown.contains("pw@"), "{}", config.endpoint_shown());
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
