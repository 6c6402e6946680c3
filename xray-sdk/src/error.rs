//! The SDK's one error type: what can go wrong setting X-Ray up or flushing
//! it (capturing itself never fails), and whether trying again may help.

use std::path::PathBuf;
use std::time::Duration;

/// Errors from setting X-Ray up or flushing it. Capturing never fails.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is malformed; `variable` is the environment variable it
    /// comes from (or that its builder method stands for).
    #[error("{variable}: {message}")]
    Config {
        /// The environment variable, e.g. `XRAY_SAMPLE_RATE`.
        variable: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The outbox file cannot be created, opened or used.
    #[error("cannot use the outbox {}: {message}", path.display())]
    Outbox {
        /// The outbox file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The outbox was written by an SDK with another format version.
    #[error(
        "the outbox {} has format version {found}, but this SDK writes version {supported}; \
         let the collector drain it and remove it, or set XRAY_OUTBOX to another file",
        path.display()
    )]
    OutboxVersion {
        /// The outbox file.
        path: PathBuf,
        /// The version found in the file.
        found: i64,
        /// The version this SDK writes.
        supported: i64,
    },
    /// [`Config::init`](crate::Config::init) found a global `tracing` subscriber already set.
    #[error(
        "a global tracing subscriber is already installed; use xray::Config::build() \
         and add the returned layer to that subscriber instead"
    )]
    AlreadyInitialized,
    /// A flush did not complete in time (the outbox may be locked by another
    /// process, or the disk slow); nothing is lost yet, records stay queued.
    #[error("the outbox writer did not confirm the flush within {0:?}")]
    FlushTimeout(Duration),
    /// The writer thread is gone (X-Ray was shut down).
    #[error("the outbox writer has stopped")]
    WriterStopped,
}

impl Error {
    /// Whether trying the same operation again may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::FlushTimeout(_) | Error::Outbox { .. })
    }
}
