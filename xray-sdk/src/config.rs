//! Configuration: the contract's environment variables and builder methods,
//! and the settings a running pipeline reads from them ([`RuntimeConfig`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::capture::Redactor;
use crate::error::Error;

/// What a step does when the capture queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenFull {
    /// Drop the record and count it in [`crate::Stats::dropped`] (default):
    /// the application never waits for X-Ray.
    #[default]
    Drop,
    /// Wait for room, at most [`Config::block_timeout`]; then drop and count.
    Block,
}

impl std::str::FromStr for WhenFull {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "drop" => Ok(WhenFull::Drop),
            "block" => Ok(WhenFull::Block),
            other => Err(format!("expected `drop` or `block`, got `{other}`")),
        }
    }
}

/// The settings the capture side reads on the hot path, taken once from a
/// [`Config`] when its pipeline starts.
pub(crate) struct RuntimeConfig {
    pub project: Arc<str>,
    pub sample_rate: f64,
    pub max_payload_bytes: usize,
    pub redactor: Arc<Redactor>,
}

impl RuntimeConfig {
    pub fn of(config: &Config) -> RuntimeConfig {
        RuntimeConfig {
            project: Arc::from(config.project.as_str()),
            sample_rate: config.sample_rate,
            max_payload_bytes: config.max_payload_bytes,
            redactor: Arc::new(Redactor::new(config.redact_keys.iter())),
        }
    }
}

/// X-Ray's configuration. [`Config::from_env`] reads the contract's
/// environment variables; the builder methods, named after them, override.
///
/// | variable | builder | default |
/// |---|---|---|
/// | `XRAY_OUTBOX` | [`outbox`](Config::outbox) | `.xray/outbox.db` |
/// | `XRAY_PROJECT` | [`project`](Config::project) | `default` |
/// | `XRAY_DISABLED` | [`disabled`](Config::disabled) | `false` |
/// | `XRAY_SAMPLE_RATE` | [`sample_rate`](Config::sample_rate) | `1` (every execution) |
/// | `XRAY_MAX_PAYLOAD_BYTES` | [`max_payload_bytes`](Config::max_payload_bytes) | `65536` |
/// | `XRAY_QUEUE_CAPACITY` | [`queue_capacity`](Config::queue_capacity) | `65536` records |
/// | `XRAY_FLUSH_INTERVAL_MS` | [`flush_interval`](Config::flush_interval) | `50` |
/// | `XRAY_WHEN_FULL` | [`when_full`](Config::when_full) | `drop` |
/// | `XRAY_OUTBOX_MAX_BYTES` | [`outbox_max_bytes`](Config::outbox_max_bytes) | `1 GiB` |
///
/// A malformed value is not noticed here but reported by [`Config::init`] or
/// [`Config::build`] as [`Error::Config`], naming the variable.
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) outbox: PathBuf,
    pub(crate) project: String,
    pub(crate) disabled: bool,
    pub(crate) sample_rate: f64,
    pub(crate) max_payload_bytes: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) when_full: WhenFull,
    pub(crate) outbox_max_bytes: u64,
    pub(crate) block_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) redact_keys: Vec<String>,
    /// The first malformed environment variable met by `from_env`.
    pub(crate) env_error: Option<Error>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            outbox: PathBuf::from(".xray/outbox.db"),
            project: "default".to_owned(),
            disabled: false,
            sample_rate: 1.0,
            max_payload_bytes: 64 * 1024,
            queue_capacity: 65_536,
            flush_interval: Duration::from_millis(50),
            when_full: WhenFull::Drop,
            outbox_max_bytes: 1 << 30,
            block_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(5),
            redact_keys: Redactor::default_keys()
                .iter()
                .map(|k| (*k).to_owned())
                .collect(),
            env_error: None,
        }
    }
}

impl Config {
    /// The defaults, overridden by the `XRAY_*` environment variables.
    pub fn from_env() -> Config {
        Config::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Like [`Config::from_env`] with a custom source of variables (for tests
    /// and for programs that keep their settings elsewhere).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Config {
        let mut config = Config::default();
        let mut first_error = None;
        let mut note = |e: Error| {
            first_error.get_or_insert(e);
        };
        if let Some(v) = lookup("XRAY_OUTBOX") {
            if v.trim().is_empty() {
                note(bad("XRAY_OUTBOX", &v, "expected a file path"));
            } else {
                config.outbox = PathBuf::from(v);
            }
        }
        if let Some(v) = lookup("XRAY_PROJECT") {
            if v.trim().is_empty() {
                note(bad("XRAY_PROJECT", &v, "expected a non-empty project name"));
            } else {
                config.project = v;
            }
        }
        if let Some(v) = lookup("XRAY_DISABLED") {
            match parse_bool(&v) {
                Some(b) => config.disabled = b,
                None => note(bad(
                    "XRAY_DISABLED",
                    &v,
                    "expected 1/0, true/false, yes/no or on/off",
                )),
            }
        }
        if let Some(v) = lookup("XRAY_SAMPLE_RATE") {
            match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => config.sample_rate = r,
                _ => note(bad("XRAY_SAMPLE_RATE", &v, "expected a number from 0 to 1")),
            }
        }
        if let Some(v) = lookup("XRAY_MAX_PAYLOAD_BYTES") {
            match parse_count(&v) {
                Some(n) if n >= 256 => config.max_payload_bytes = n as usize,
                _ => note(bad(
                    "XRAY_MAX_PAYLOAD_BYTES",
                    &v,
                    "expected a whole number of bytes, at least 256",
                )),
            }
        }
        if let Some(v) = lookup("XRAY_QUEUE_CAPACITY") {
            match parse_count(&v) {
                Some(n) if n >= 1 => config.queue_capacity = n as usize,
                _ => note(bad(
                    "XRAY_QUEUE_CAPACITY",
                    &v,
                    "expected a whole number of records, at least 1",
                )),
            }
        }
        if let Some(v) = lookup("XRAY_FLUSH_INTERVAL_MS") {
            match parse_count(&v) {
                Some(n) if (1..=60_000).contains(&n) => {
                    config.flush_interval = Duration::from_millis(n)
                }
                _ => note(bad(
                    "XRAY_FLUSH_INTERVAL_MS",
                    &v,
                    "expected milliseconds from 1 to 60000",
                )),
            }
        }
        if let Some(v) = lookup("XRAY_WHEN_FULL") {
            match v.parse::<WhenFull>() {
                Ok(w) => config.when_full = w,
                Err(why) => note(bad("XRAY_WHEN_FULL", &v, &why)),
            }
        }
        if let Some(v) = lookup("XRAY_OUTBOX_MAX_BYTES") {
            match parse_count(&v) {
                Some(n) if n >= 64 * 1024 => config.outbox_max_bytes = n,
                _ => note(bad(
                    "XRAY_OUTBOX_MAX_BYTES",
                    &v,
                    "expected a whole number of bytes, at least 65536",
                )),
            }
        }
        config.env_error = first_error;
        config
    }

    /// The outbox file (`XRAY_OUTBOX`).
    pub fn outbox(mut self, path: impl Into<PathBuf>) -> Self {
        self.outbox = path.into();
        self
    }

    /// The project every execution belongs to (`XRAY_PROJECT`).
    pub fn project(mut self, name: impl Into<String>) -> Self {
        self.project = name.into();
        self
    }

    /// Turns X-Ray off: `init`/`build` succeed and nothing is recorded (`XRAY_DISABLED`).
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// The share of executions recorded, from 0 (none) to 1 (all), decided
    /// once per execution (`XRAY_SAMPLE_RATE`). Out-of-range values are an
    /// error from `init`/`build`.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = rate;
        self
    }

    /// The largest JSON payload (one input object, one output) kept whole;
    /// larger ones are stored truncated and flagged (`XRAY_MAX_PAYLOAD_BYTES`).
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        self.max_payload_bytes = bytes;
        self
    }

    /// How many records may wait for the writer (`XRAY_QUEUE_CAPACITY`).
    pub fn queue_capacity(mut self, records: usize) -> Self {
        self.queue_capacity = records;
        self
    }

    /// The longest a record waits in the queue before the writer commits it
    /// (`XRAY_FLUSH_INTERVAL_MS`).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// What happens when the queue is full (`XRAY_WHEN_FULL`).
    pub fn when_full(mut self, policy: WhenFull) -> Self {
        self.when_full = policy;
        self
    }

    /// The size the outbox file may reach; past it new records are dropped
    /// and counted until the collector frees room (`XRAY_OUTBOX_MAX_BYTES`).
    pub fn outbox_max_bytes(mut self, bytes: u64) -> Self {
        self.outbox_max_bytes = bytes;
        self
    }

    /// With [`WhenFull::Block`], the longest a step waits for room (default 1 s).
    pub fn block_timeout(mut self, timeout: Duration) -> Self {
        self.block_timeout = timeout;
        self
    }

    /// The longest dropping the [`crate::Guard`] waits for the queue to be
    /// written out (default 5 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Adds keys to the redaction list (argument names and JSON keys whose
    /// values are replaced by `"[redacted]"`).
    pub fn redact_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.redact_keys.extend(keys.into_iter().map(Into::into));
        self
    }

    /// Checks every setting, reporting the first problem.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if let Some(e) = &self.env_error {
            return Err(e.clone());
        }
        let check = |ok: bool, variable: &'static str, value: String, expected: &str| {
            if ok {
                Ok(())
            } else {
                Err(bad(variable, &value, expected))
            }
        };
        check(
            !self.outbox.as_os_str().is_empty(),
            "XRAY_OUTBOX",
            String::new(),
            "expected a file path",
        )?;
        check(
            !self.project.trim().is_empty(),
            "XRAY_PROJECT",
            self.project.clone(),
            "expected a non-empty project name",
        )?;
        check(
            (0.0..=1.0).contains(&self.sample_rate),
            "XRAY_SAMPLE_RATE",
            self.sample_rate.to_string(),
            "expected a number from 0 to 1",
        )?;
        check(
            self.max_payload_bytes >= 256,
            "XRAY_MAX_PAYLOAD_BYTES",
            self.max_payload_bytes.to_string(),
            "expected at least 256",
        )?;
        check(
            self.queue_capacity >= 1,
            "XRAY_QUEUE_CAPACITY",
            self.queue_capacity.to_string(),
            "expected at least 1",
        )?;
        check(
            !self.flush_interval.is_zero() && self.flush_interval <= Duration::from_secs(60),
            "XRAY_FLUSH_INTERVAL_MS",
            self.flush_interval.as_millis().to_string(),
            "expected milliseconds from 1 to 60000",
        )?;
        check(
            self.outbox_max_bytes >= 64 * 1024,
            "XRAY_OUTBOX_MAX_BYTES",
            self.outbox_max_bytes.to_string(),
            "expected at least 65536",
        )?;
        Ok(())
    }
}

fn bad(variable: &'static str, value: &str, expected: &str) -> Error {
    Error::Config {
        variable,
        message: format!("invalid value {value:?}: {expected}"),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

fn parse_count(v: &str) -> Option<u64> {
    v.trim().replace('_', "").parse::<u64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn every_variable_is_read() {
        let c = with(&[
            ("XRAY_OUTBOX", "/tmp/x.db"),
            ("XRAY_PROJECT", "shop"),
            ("XRAY_DISABLED", "yes"),
            ("XRAY_SAMPLE_RATE", "0.25"),
            ("XRAY_MAX_PAYLOAD_BYTES", "1024"),
            ("XRAY_QUEUE_CAPACITY", "10"),
            ("XRAY_FLUSH_INTERVAL_MS", "7"),
            ("XRAY_WHEN_FULL", "block"),
            ("XRAY_OUTBOX_MAX_BYTES", "1_000_000"),
        ]);
        assert!(c.validate().is_ok());
        assert_eq!(c.outbox, PathBuf::from("/tmp/x.db"));
        assert_eq!(c.project, "shop");
        assert!(c.disabled);
        assert_eq!(c.sample_rate, 0.25);
        assert_eq!(c.max_payload_bytes, 1024);
        assert_eq!(c.queue_capacity, 10);
        assert_eq!(c.flush_interval, Duration::from_millis(7));
        assert_eq!(c.when_full, WhenFull::Block);
        assert_eq!(c.outbox_max_bytes, 1_000_000);
    }

    #[test]
    fn each_malformed_variable_is_named_in_the_error() {
        for (var, value) in [
            ("XRAY_DISABLED", "maybe"),
            ("XRAY_SAMPLE_RATE", "1.5"),
            ("XRAY_SAMPLE_RATE", "NaN"),
            ("XRAY_SAMPLE_RATE", "half"),
            ("XRAY_MAX_PAYLOAD_BYTES", "-1"),
            ("XRAY_MAX_PAYLOAD_BYTES", "12"),
            ("XRAY_QUEUE_CAPACITY", "0"),
            ("XRAY_QUEUE_CAPACITY", "lots"),
            ("XRAY_FLUSH_INTERVAL_MS", "0"),
            ("XRAY_FLUSH_INTERVAL_MS", "1.5"),
            ("XRAY_WHEN_FULL", "panic"),
            ("XRAY_OUTBOX_MAX_BYTES", "10"),
            ("XRAY_OUTBOX", " "),
            ("XRAY_PROJECT", ""),
        ] {
            let err = with(&[(var, value)]).validate().unwrap_err();
            let text = err.to_string();
            assert!(text.contains(var), "{var}={value:?} gave {text}");
            assert!(
                text.contains(&format!("{value:?}")),
                "{var}={value:?} gave {text}"
            );
        }
    }

    #[test]
    fn builder_values_are_validated_too() {
        let err = Config::default().sample_rate(2.0).validate().unwrap_err();
        assert!(err.to_string().contains("XRAY_SAMPLE_RATE"));
        let err = Config::default().queue_capacity(0).validate().unwrap_err();
        assert!(err.to_string().contains("XRAY_QUEUE_CAPACITY"));
    }
}
