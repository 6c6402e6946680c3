//! The OTLP sink: what the collector ships to the database it also exports
//! as OTLP/HTTP protobuf spans to any OpenTelemetry receiver
//! (`run --otlp-endpoint`).

pub mod client;
pub mod config;
pub mod mapping;
pub mod sink;

pub use config::OtlpConfig;
pub use sink::{OtlpSink, SINK};
