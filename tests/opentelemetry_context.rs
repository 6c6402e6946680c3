//! X-Ray beside OpenTelemetry in one `tracing` subscriber (the SDK's
//! `opentelemetry` feature, with the real `tracing-opentelemetry` layer and
//! OpenTelemetry SDK): an execution started inside an OpenTelemetry span
//! continues that span's trace, so both views of one request link up.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::prelude::*;

#[xray::step]
fn rank(n: u32) -> u32 {
    n + 1
}

#[test]
fn an_execution_inside_an_opentelemetry_span_continues_its_trace() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let (xray_layer, guard) = xray::Config::default().outbox(&outbox).build().unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
        .with(xray_layer);
    let (otel_trace, otel_span, header, own_trace) =
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("http_request");
            let (otel_trace, otel_span) = {
                let context = request.context();
                let span = context.span();
                let span_context = span.span_context();
                assert!(span_context.is_valid());
                (span_context.trace_id(), span_context.span_id())
            };
            let header = request.in_scope(|| {
                xray::execution("inside_otel").run(|| {
                    rank(1);
                    xray::traceparent()
                })
            });
            // Outside any OpenTelemetry span: a trace of its own.
            let own = xray::execution("outside_otel").run(xray::traceparent);
            (otel_trace, otel_span, header, own)
        });
    guard.flush().unwrap();
    let conn = rusqlite::Connection::open(&outbox).unwrap();
    let rows: Vec<(String, String, Option<String>, Option<String>)> = conn
        .prepare(
            "SELECT record_type, name, trace_id, parent_span_id FROM xray_outbox
             WHERE phase = 'end' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let trace = otel_trace.to_string();
    let parent = otel_span.to_string();
    let by_name = |name: &str| {
        rows.iter()
            .find(|r| r.1 == name)
            .unwrap_or_else(|| panic!("{name}: {rows:?}"))
    };
    assert_eq!(
        by_name("inside_otel"),
        &(
            "execution".into(),
            "inside_otel".into(),
            Some(trace.clone()),
            Some(parent)
        ),
    );
    assert_eq!(by_name("rank").2.as_deref(), Some(trace.as_str()));
    assert_eq!(
        by_name("outside_otel"),
        &("execution".into(), "outside_otel".into(), None, None)
    );
    let header = header.expect("a header inside the execution");
    assert!(header.starts_with(&format!("00-{trace}-")), "{header}");
    let own = own_trace.expect("a header");
    assert!(!own.contains(&trace), "{own}");
}
