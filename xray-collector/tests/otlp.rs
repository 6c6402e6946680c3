//! The OTLP sink against a real OTLP receiver (Arize Phoenix, from PyPI;
//! nginx in front where a receiver must refuse): every mapped attribute,
//! parents, trace ids, a continued trace, decisions and errors; a receiver
//! stopped while the daemon runs; answers 413 and 400. Through the real
//! `xray-collector` binary and outboxes written by the real SDK.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::otlp::{Nginx, Phoenix};
use support::outbox::{metric, outbox_rows, write_steps};
use support::target::Target;
use tracing_subscriber::layer::SubscriberExt;

const PARENT: &str = "00f067aa0ba902b7";

/// One receiver for the tests that do not stop it (each uses projects of
/// its own).
fn phoenix() -> &'static Phoenix {
    static SHARED: OnceLock<Phoenix> = OnceLock::new();
    SHARED.get_or_init(Phoenix::start)
}

fn collector() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    for var in [
        "DATABASE_URL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

fn run_once(target: &Target, outbox: &Path, endpoint: &str) -> Output {
    let mut cmd = collector();
    cmd.args(["run", "--once", "--otlp-endpoint", endpoint])
        .arg("--outbox")
        .arg(outbox);
    target.configure(&mut cmd);
    cmd.output().expect("run the collector")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[xray::step(kind = "llm")]
fn generate_keywords(product: &str) -> Vec<String> {
    xray::llm_usage("gpt-4o-mini", 120, 30);
    xray::llm_usage("gpt-4o-mini", 80, 20);
    vec![product.to_owned(), "durable".to_owned()]
}

#[xray::step(kind = "retrieval")]
fn search(keywords: &[String]) -> Result<Vec<(String, f64)>, String> {
    if keywords.is_empty() {
        return Err("search backend timed out".into());
    }
    Ok(vec![("B07X".into(), 79.99), ("B08Y".into(), 39.5)])
}

#[xray::step(kind = "filter")]
fn filter_by_price(candidates: &[(String, f64)], max: f64) -> Vec<String> {
    let mut kept = Vec::new();
    for (asin, price) in candidates {
        if *price > max {
            xray::reject(asin, "price", format!("{price} > {max}"));
        } else {
            xray::accept(asin, "price", "within budget");
            kept.push(asin.clone());
        }
    }
    score_each(&kept);
    kept
}

#[xray::step]
fn score_each(kept: &[String]) {
    for (i, asin) in kept.iter().enumerate() {
        xray::score(asin, 0.5 + i as f64 / 10.0);
    }
}

/// An execution continuing the trace of a `traceparent` header, in
/// project `project`: six spans (the execution, five steps), one of them
/// failed. Returns the trace id, new each time (Phoenix files a trace
/// under the project it first saw it in).
fn write_pipeline(outbox: &Path, project: &str) -> String {
    let trace = format!("{:032x}", fastrand::u128(1..));
    recording(outbox, project, || {
        xray::execution("competitor_selection")
            .metadata("seller_asin", "B00SELLER")
            .traceparent(format!("00-{trace}-{PARENT}-01"))
            .run(|| {
                let keywords = generate_keywords("trail bottle");
                let found = search(&keywords).unwrap();
                let _ = search(&[]);
                filter_by_price(&found, 50.0)
            });
    });
    trace
}

/// Runs `f` recording into `outbox` as project `project`, then flushes.
fn recording(outbox: &Path, project: &str, f: impl FnOnce()) {
    let (layer, guard) = xray::Config::default()
        .outbox(outbox)
        .project(project)
        .build()
        .expect("build");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, f);
    guard.flush().expect("flush");
}

fn by_name<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn one<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found = by_name(spans, name);
    assert_eq!(found.len(), 1, "one span {name} expected: {spans:#?}");
    found[0]
}

#[test]
fn a_pipelines_trace_reaches_the_receiver_with_every_mapped_attribute() {
    let phoenix = phoenix();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let trace = write_pipeline(&outbox, "mapping");
    let store = Target::embedded();
    let out = run_once(&store, &outbox, &phoenix.endpoint());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exported 6 spans over OTLP"),
        "{}",
        stderr(&out)
    );
    // Both sinks have everything: the outbox is empty.
    assert_eq!(outbox_rows(&outbox), 0);
    assert_eq!(store.counts().steps, 5);
    let spans = phoenix.wait_for_spans("mapping", 6, Duration::from_secs(120));
    assert_eq!(spans.len(), 6, "{spans:#?}");

    // One trace, the caller's; the execution's parent is the caller's span.
    for span in &spans {
        assert_eq!(span["context"]["trace_id"], trace.as_str(), "{span:#}");
    }
    let root = one(&spans, "competitor_selection");
    assert_eq!(root["parent_id"], PARENT);
    let root_span = root["context"]["span_id"].as_str().unwrap();
    let execution_id = root["attributes"]["xray.execution_id"].as_str().unwrap();
    assert_eq!(root_span, &execution_id.replace('-', "")[16..]);
    assert_eq!(root["attributes"]["metadata.seller_asin"], "B00SELLER");
    assert_eq!(root["span_kind"], "CHAIN");
    // A top-level step failed: so did the execution.
    assert_eq!(root["status_code"], "ERROR");
    assert_eq!(root["attributes"]["xray.status"], "error");

    // The LLM step: kinds, input and output, token counts.
    let llm = one(&spans, "generate_keywords");
    assert_eq!(llm["parent_id"], root_span);
    assert_eq!(llm["span_kind"], "LLM");
    let a = &llm["attributes"];
    assert_eq!(a["xray.kind"], "llm");
    assert_eq!(a["xray.status"], "ok");
    assert_eq!(a["input.mime_type"], "application/json");
    let input: Value = serde_json::from_str(a["input.value"].as_str().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({"product": "trail bottle"}));
    let output: Value = serde_json::from_str(a["output.value"].as_str().unwrap()).unwrap();
    assert_eq!(output, serde_json::json!(["trail bottle", "durable"]));
    assert_eq!(a["output.mime_type"], "application/json");
    assert_eq!(a["gen_ai.request.model"], "gpt-4o-mini");
    assert_eq!(a["llm.model_name"], "gpt-4o-mini");
    assert_eq!(a["gen_ai.usage.input_tokens"], 200);
    assert_eq!(a["gen_ai.usage.output_tokens"], 50);
    assert_eq!(a["llm.token_count.prompt"], 200);
    assert_eq!(a["llm.token_count.completion"], 50);
    assert_eq!(a["llm.token_count.total"], 250);
    let step_id = a["xray.step_id"].as_str().unwrap();
    assert_eq!(llm["context"]["span_id"], &step_id.replace('-', "")[16..]);

    // The failed search: status ERROR with its text.
    let searches = by_name(&spans, "search");
    assert_eq!(searches.len(), 2);
    let failed: Vec<_> = searches
        .iter()
        .filter(|s| s["status_code"] == "ERROR")
        .collect();
    assert_eq!(failed.len(), 1, "{searches:#?}");
    assert_eq!(failed[0]["status_message"], "search backend timed out");
    assert_eq!(failed[0]["span_kind"], "RETRIEVER");
    assert_eq!(failed[0]["attributes"]["xray.status"], "error");

    // Decisions as events; nesting under the step that called.
    let filter = one(&spans, "filter_by_price");
    let events = filter["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    for e in events {
        assert_eq!(e["name"], "xray.decision");
    }
    let rejected = events
        .iter()
        .find(|e| e["attributes"]["candidate_id"] == "B07X")
        .unwrap();
    assert_eq!(rejected["attributes"]["accepted"], false);
    assert_eq!(rejected["attributes"]["filter"], "price");
    assert_eq!(rejected["attributes"]["reason"], "79.99 > 50");
    let kept = events
        .iter()
        .find(|e| e["attributes"]["candidate_id"] == "B08Y")
        .unwrap();
    assert_eq!(kept["attributes"]["accepted"], true);
    let scored = one(&spans, "score_each");
    assert_eq!(scored["parent_id"], filter["context"]["span_id"]);
    let score = &scored["events"][0]["attributes"];
    assert_eq!(score["candidate_id"], "B08Y");
    assert_eq!(score["score"], 0.5);
    assert!(score.get("accepted").is_none(), "{score:#}");
    assert_eq!(filter["span_kind"], "CHAIN");
}

/// A new outbox holding the start of step `name` of `project`, started
/// `ago_us` ago, whose end never came.
fn with_a_running_step(project: &str, name: &str, ago_us: i64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    write_steps(&outbox, 0, 0); // (makes the file)
    support::outbox::append_raw_step_in(
        &outbox,
        project,
        name,
        "running",
        "{}",
        jiff::Timestamp::now().as_microsecond() - ago_us,
    );
    (dir, outbox)
}

#[test]
fn a_running_step_waits_for_its_end_and_what_is_exported_again_the_receiver_keeps_once() {
    let phoenix = phoenix();
    // A start whose end has not come, started now: held, not exported,
    // and its row kept for the next run.
    let (_dir, outbox) = with_a_running_step("waiting", "still_running", 0);
    write_pipeline(&outbox, "waiting");
    let written = outbox_rows(&outbox);
    let store = Target::embedded();
    let out = run_once(&store, &outbox, &phoenix.endpoint());
    assert!(out.status.success(), "{}", stderr(&out));
    let spans = phoenix.wait_for_spans("waiting", 6, Duration::from_secs(120));
    assert!(by_name(&spans, "still_running").is_empty());
    // The sink's progress stops before the held start: its row and those
    // after it stay (the database has them all).
    assert_eq!(outbox_rows(&outbox), written);
    assert_eq!(store.counts().steps, 6);
    // The next run reads them again (at least once); Phoenix keeps one
    // span per span id.
    let again = run_once(&store, &outbox, &phoenix.endpoint());
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("exported 6 spans over OTLP"),
        "{}",
        stderr(&again)
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(phoenix.spans("waiting").len(), 6);
}

#[test]
fn a_step_that_never_ended_is_exported_unfinished_after_the_bound() {
    let phoenix = phoenix();
    // Started an hour ago, never ended (its process died).
    let project = "unfinished";
    let (_dir, outbox) = with_a_running_step(project, "died_midway", 3_600_000_000);
    let store = Target::embedded();
    let out = run_once(&store, &outbox, &phoenix.endpoint());
    assert!(out.status.success(), "{}", stderr(&out));
    let spans = phoenix.wait_for_spans(project, 1, Duration::from_secs(120));
    let span = one(&spans, "died_midway");
    assert_eq!(span["attributes"]["xray.unfinished"], true);
    assert_eq!(span["attributes"]["xray.status"], "running");
    assert_eq!(span["status_code"], "UNSET");
    assert_eq!(outbox_rows(&outbox), 0);
}

fn daemon(target: &Target, outbox: &Path, endpoint: &str, listen: &str) -> Child {
    let mut cmd = collector();
    cmd.args([
        "run",
        "--otlp-endpoint",
        endpoint,
        "--listen",
        listen,
        "--outbox",
    ])
    .arg(outbox);
    target.configure(&mut cmd);
    cmd.stderr(Stdio::null()).spawn().unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_receiver_stopped_while_the_daemon_runs_holds_nothing_back_and_loses_nothing() {
    let mut phoenix = Phoenix::start();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let store = Target::embedded();
    let listen = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut child = daemon(&store, &outbox, &phoenix.endpoint(), &listen);
    write_steps(&outbox, 0, 20);
    phoenix.wait_for_spans("default", 40, Duration::from_secs(120));
    wait_until("the outbox to empty", Duration::from_secs(30), || {
        outbox_rows(&outbox) == 0
    });

    phoenix.stop();
    write_steps(&outbox, 20, 30);
    // The database keeps receiving; the rows stay for the receiver.
    wait_until(
        "the database to have all 50",
        Duration::from_secs(30),
        || store.counts().steps == 50,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(outbox_rows(&outbox) > 0, "rows the receiver lacks are kept");

    phoenix.start_again();
    let spans = phoenix.wait_for_spans("default", 100, Duration::from_secs(120));
    wait_until("the outbox to empty", Duration::from_secs(30), || {
        outbox_rows(&outbox) == 0
    });
    // The sink's own counts: every span exported, the outage retried.
    let metrics = support::outbox::http_get(&listen, "/metrics");
    assert!(
        metric(&metrics, "xray_collector_otlp_spans_exported_total") >= 100.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "xray_collector_otlp_retries_total") >= 1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "xray_collector_otlp_spans_dropped_total"),
        0.0
    );
    assert_eq!(
        metric(&metrics, "xray_collector_otlp_spans_dead_lettered_total"),
        0.0
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    // At least once: every step's span, each id at least once.
    let ids: std::collections::HashSet<&str> = spans
        .iter()
        .map(|s| s["context"]["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 100, "50 executions and 50 steps");
}

/// A step whose input no compression shrinks much: its span alone is over
/// the proxies' limits below.
#[xray::step]
fn huge(blob: &str) -> usize {
    blob.len()
}

fn write_with_one_huge_span(outbox: &Path, project: &str, normal: u64) {
    let mut rng = fastrand::Rng::with_seed(7);
    let blob: String = (0..40_000).map(|_| rng.alphanumeric()).collect();
    recording(outbox, project, || {
        xray::execution("with_huge").run(|| {
            for i in 0..normal {
                score_each(&[format!("c{i}")]);
            }
            huge(&blob);
        });
    });
}

#[test]
fn a_receiver_answering_413_and_400_gets_all_it_takes_and_the_rest_is_dead_lettered() {
    let phoenix = phoenix();
    // Real nginx in front of the receiver: requests over 16 KiB get 413
    // from one path; from the other, requests of 10 000 bytes or more get
    // 400 (as receivers that refuse large spans answer).
    let proxy = Nginx::start(
        &phoenix.address(),
        "location /small/ { client_max_body_size 16k; proxy_pass http://UPSTREAM/; }
         location /strict/ {
             if ($http_content_length ~ \"^[0-9]{5,}$\") { return 400 \"span too large\"; }
             proxy_pass http://UPSTREAM/;
         }",
    );
    for (path, project, status) in [("small", "limit413", 413), ("strict", "limit400", 400)] {
        let dir = tempfile::tempdir().unwrap();
        let outbox = dir.path().join("outbox.db");
        write_with_one_huge_span(&outbox, project, 600);
        let store = Target::embedded();
        let endpoint = format!("{}/{path}/v1/traces", proxy.url());
        let out = run_once(&store, &outbox, &endpoint);
        assert!(out.status.success(), "{}", stderr(&out));
        // Everything but the huge span: the execution and 600 steps.
        let spans = phoenix.wait_for_spans(project, 601, Duration::from_secs(120));
        assert_eq!(spans.len(), 601, "{project}");
        assert!(by_name(&spans, "huge").is_empty());
        // The huge one is dead-lettered with the receiver's reason; the
        // database has it all the same.
        let reasons = store.dead_letter_reasons();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("otlp: "), "{reasons:?}");
        assert!(reasons[0].contains(&status.to_string()), "{reasons:?}");
        assert_eq!(store.counts().steps, 601);
        assert_eq!(outbox_rows(&outbox), 0);
        assert!(proxy.statuses().contains(&status), "{:?}", proxy.statuses());
    }
}
