//! OTLP export throughput: the collector's OTLP sink against the
//! OpenTelemetry SDK's own OTLP/HTTP exporter (`opentelemetry-otlp`,
//! protobuf, gzip, behind the SDK's `BatchSpanProcessor`) sending the same
//! spans, in the same run, to the same receiver: nginx answering 200 to
//! `/v1/traces` after reading the body (a real server that costs almost
//! nothing, so what is measured is each exporter's own work).
//!
//! The spans are the realistic workload of the ship bench (the SDK benches'
//! 393-byte `Query` input, three decisions each, nested 100 per batch
//! step), recorded by the SDK into an outbox. The sink reads the outbox,
//! maps, encodes, gzips, sends and records its progress, deleting what it
//! sent (as `run --otlp-endpoint` does with no other sink). The peer is
//! given the very spans the mapping makes (name, times, attributes, events,
//! status) through the OpenTelemetry API — built before the clock starts —
//! and is timed from the first span started to the end of `force_flush`.
//!
//! `cargo bench -p xray-collector --bench otlp` (`XRAY_BENCH_STEPS`,
//! default 50 000). Needs nginx (`apt-get install nginx-light`).

#[path = "../tests/support/otlp.rs"]
#[allow(dead_code)]
mod otlp_support;

/// The SDK benches' workload.
#[path = "../../xray-sdk/benches/workload/mod.rs"]
mod workload;

#[path = "support/pipeline.rs"]
mod pipeline;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{Span as _, SpanBuilder, Status, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use xray_collector::backend::sqlite::SqliteStore;
use xray_collector::otlp::mapping::{self, Export};
use xray_collector::otlp::{OtlpConfig, OtlpSink};
use xray_collector::outbox::OutboxReader;
use xray_collector::ship::Metrics;

/// One span as the OpenTelemetry API takes it.
struct PeerSpan {
    name: String,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
    events: Vec<opentelemetry::trace::Event>,
    status: Status,
}

fn value(v: &any_value::Value) -> Value {
    match v {
        any_value::Value::StringValue(s) => Value::from(s.clone()),
        any_value::Value::IntValue(i) => Value::from(*i),
        any_value::Value::DoubleValue(d) => Value::from(*d),
        any_value::Value::BoolValue(b) => Value::from(*b),
        other => Value::from(format!("{other:?}")),
    }
}

fn attributes(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> Vec<KeyValue> {
    kvs.iter()
        .filter_map(|kv| {
            let v = kv.value.as_ref()?.value.as_ref()?;
            Some(KeyValue::new(kv.key.clone(), value(v)))
        })
        .collect()
}

fn at(nanos: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// Every record of `outbox`, as the mapping makes them spans.
fn peer_spans(outbox: &std::path::Path) -> Vec<PeerSpan> {
    let reader = OutboxReader::open(outbox).unwrap();
    let mut after = 0;
    let mut out = Vec::new();
    loop {
        let batch = reader.read_batch_after(after, 5000, usize::MAX).unwrap();
        if batch.is_empty() {
            return out;
        }
        after = batch.last_seq;
        let exports: Vec<Export<'_>> = batch
            .records
            .iter()
            .filter(|r| !r.is_running())
            .map(|record| Export {
                record,
                unfinished: false,
            })
            .collect();
        let request = mapping::request(&exports, 0);
        for span in request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            let status = match span.status.as_ref() {
                Some(s) if s.code == StatusCode::Error as i32 => Status::error(s.message.clone()),
                Some(s) if s.code == StatusCode::Ok as i32 => Status::Ok,
                _ => Status::Unset,
            };
            out.push(PeerSpan {
                name: span.name.clone(),
                start: at(span.start_time_unix_nano),
                end: at(span.end_time_unix_nano),
                attributes: attributes(&span.attributes),
                events: span
                    .events
                    .iter()
                    .map(|e| {
                        opentelemetry::trace::Event::new(
                            e.name.clone(),
                            at(e.time_unix_nano),
                            attributes(&e.attributes),
                            0,
                        )
                    })
                    .collect(),
                status,
            });
        }
    }
}

fn main() {
    let Some(asked) = pipeline::steps_asked(50_000) else {
        return;
    };
    let receiver = otlp_support::Nginx::start(
        "unused",
        "location = /v1/traces { client_max_body_size 64m; return 200; }",
    );
    let endpoint = format!("{}/v1/traces", receiver.url());
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let steps = pipeline::write_outbox(&outbox, asked, true);
    let copy = dir.path().join("copy.db");
    rusqlite::Connection::open(&outbox)
        .unwrap()
        .execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
        .unwrap();
    let spans = peer_spans(&copy);
    let n = spans.len();
    eprintln!("{steps} realistic steps recorded: {n} spans to export");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The collector's OTLP sink.
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    rt.block_on(xray_collector::backend::Migrations::migrate_up(&store))
        .unwrap();
    let config = OtlpConfig::resolve(Some(&endpoint), |_| None)
        .unwrap()
        .unwrap();
    let metrics = Arc::new(Metrics::default());
    let sink = OtlpSink::new(
        config,
        vec![outbox.clone()],
        Vec::new(),
        Arc::new(store),
        metrics,
        true,
    )
    .unwrap();
    let (_never, stop) = tokio::sync::watch::channel(false);
    let t = Instant::now();
    let exported = rt.block_on(sink.run(stop));
    let sink_time = t.elapsed();
    assert_eq!(exported as usize, n, "every span accepted");

    // The OpenTelemetry SDK's exporter, the same spans.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint.clone())
        .with_compression(opentelemetry_otlp::Compression::Gzip)
        .build()
        .unwrap();
    let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                // Room for every span (a full queue drops), the sink's batch size.
                .with_max_queue_size(n + 1)
                .with_max_export_batch_size(1000)
                .build(),
        )
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("bench");
    let t = Instant::now();
    for s in spans {
        let mut span = tracer.build(
            SpanBuilder::from_name(s.name)
                .with_start_time(s.start)
                .with_attributes(s.attributes)
                .with_events(s.events),
        );
        span.set_status(s.status);
        span.end_with_timestamp(s.end);
    }
    provider.force_flush().unwrap();
    let peer_time = t.elapsed();
    provider.shutdown().unwrap();
    let requests = receiver.statuses();
    assert!(
        requests.iter().all(|s| *s == 200),
        "the receiver refused some: {requests:?}"
    );

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("spans: {n} ({steps} realistic steps and their execution), to nginx answering 200");
    println!(
        "xray-collector OTLP sink:          {:>9.0} spans/s ({sink_time:.2?}; reads the outbox, maps, gzips, sends, records progress)",
        rate(sink_time)
    );
    println!(
        "opentelemetry-otlp (batch, gzip):  {:>9.0} spans/s ({peer_time:.2?}; span creation through force_flush)",
        rate(peer_time)
    );
    println!(
        "ratio sink / opentelemetry-otlp: {:.2}; requests received: {}",
        rate(sink_time) / rate(peer_time),
        requests.len()
    );
}
