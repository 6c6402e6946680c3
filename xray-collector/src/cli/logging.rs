//! The collector's own log: `tracing` events from the library and the
//! commands, written to stderr by `tracing-subscriber` as text or as one
//! JSON object per line (`--log-format`, `XRAY_LOG_FORMAT`), filtered by
//! `RUST_LOG` (default `info`). Every line passes through the database
//! URL's [`Redactor`] on its way out, so no password reaches the log
//! whatever an event carries.

use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;
use xray_collector::backend::postgres::Redactor;

use super::UsageError;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber. A malformed `RUST_LOG` is a usage error.
pub fn init(format: LogFormat, redactor: Redactor) -> Result<(), UsageError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::builder()
            .parse(&spec)
            .map_err(|e| UsageError(format!("RUST_LOG: invalid filter {spec:?}: {e}")))?,
        _ => EnvFilter::new("info"),
    };
    let writer = ScrubbedStderr(Arc::new(redactor));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    let installed = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    installed.map_err(|e| UsageError(format!("cannot install the log: {e}")))
}

/// Makes writers to stderr that scrub each event before writing it.
#[derive(Clone)]
struct ScrubbedStderr(Arc<Redactor>);

impl<'a> MakeWriter<'a> for ScrubbedStderr {
    type Writer = ScrubbedLine;

    fn make_writer(&'a self) -> ScrubbedLine {
        ScrubbedLine(Arc::clone(&self.0))
    }
}

/// One event's writer. `tracing-subscriber` formats an event whole and
/// hands it over in one `write_all`, so each `write` sees whole lines.
struct ScrubbedLine(Arc<Redactor>);

impl Write for ScrubbedLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = self.0.scrub(&String::from_utf8_lossy(buf));
        io::stderr().lock().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
