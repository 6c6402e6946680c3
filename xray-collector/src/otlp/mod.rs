//! The OTLP sink: what the collector ships to the database it also exports
//! as OTLP/HTTP protobuf spans to any OpenTelemetry receiver
//! (`run --otlp-endpoint`).

pub mod mapping;
