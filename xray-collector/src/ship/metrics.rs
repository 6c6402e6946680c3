//! What the daemon reports about itself: the counters, gauges and the
//! batch write latency histogram behind `/metrics` (OpenMetrics text, by
//! `prometheus-client`), and the health behind `/healthz`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The `outbox` label of the per-outbox gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutboxLabel {
    outbox: String,
}

/// The shipper's state, read by the HTTP endpoints.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    shipped_rows: Counter,
    shipped_batches: Counter,
    retries: Counter,
    dead_letters: Counter,
    backlog_rows: Family<OutboxLabel, Gauge>,
    backlog_age: Family<OutboxLabel, Gauge<f64, AtomicU64>>,
    last_success: Gauge<f64, AtomicU64>,
    up: Gauge,
    batch_write: Histogram,
    search_indexed: Counter,
    search_failures: Counter,
    search_current: Gauge<f64, AtomicU64>,
    otlp: OtlpCounters,
    reasoning: ReasoningCounters,
    /// The shipper's rounds come full.
    shipping_behind: AtomicBool,
    state: Mutex<State>,
}

/// The OTLP sink's counts.
#[derive(Debug, Default)]
struct OtlpCounters {
    exported: Counter,
    rejected: Counter,
    dead_lettered: Counter,
    dropped: Counter,
    retries: Counter,
}

/// The reasoners' counts.
#[derive(Debug, Default)]
struct ReasoningCounters {
    rules: Counter,
    llm_explained: Counter,
    llm_retries: Counter,
    llm_failed: Counter,
    llm_prompt_tokens: Counter,
    llm_completion_tokens: Counter,
}

#[derive(Debug, Default)]
struct State {
    backend_problem: Option<String>,
    outbox_problems: BTreeMap<String, String>,
    /// Per outbox: the commit time of the oldest waiting row (the age
    /// gauge is computed from it when scraped).
    oldest: BTreeMap<String, Option<i64>>,
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("xray_collector");
        let shipped_rows = Counter::default();
        let shipped_batches = Counter::default();
        let retries = Counter::default();
        let dead_letters = Counter::default();
        let backlog_rows = Family::<OutboxLabel, Gauge>::default();
        let backlog_age = Family::<OutboxLabel, Gauge<f64, AtomicU64>>::default();
        let last_success = Gauge::<f64, AtomicU64>::default();
        let up = Gauge::default();
        // 1 ms to ~65 s.
        let batch_write = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let search_indexed = Counter::default();
        let search_failures = Counter::default();
        let search_current = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "shipped_rows",
            "Outbox rows committed to the backend",
            shipped_rows.clone(),
        );
        registry.register(
            "shipped_batches",
            "Batches committed to the backend",
            shipped_batches.clone(),
        );
        registry.register(
            "retries",
            "Backend operations retried after a retriable error",
            retries.clone(),
        );
        registry.register(
            "dead_letters",
            "Rows moved to the dead-letter table",
            dead_letters.clone(),
        );
        registry.register(
            "outbox_backlog_rows",
            "Rows waiting in the outbox",
            backlog_rows.clone(),
        );
        registry.register(
            "outbox_backlog_age_seconds",
            "Age of the oldest waiting row",
            backlog_age.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "When a batch was last committed (Unix time)",
            last_success.clone(),
        );
        registry.register("up", "1 when healthy, 0 when degraded", up.clone());
        registry.register(
            "batch_write_seconds",
            "Time to write one batch into the backend (successful writes)",
            batch_write.clone(),
        );
        registry.register(
            "search_indexed",
            "Noted steps the search indexer took (a step written twice counts twice)",
            search_indexed.clone(),
        );
        registry.register(
            "search_index_failures",
            "Times the search indexer failed (and tried again later)",
            search_failures.clone(),
        );
        registry.register(
            "search_current_timestamp_seconds",
            "When the search index was last found current, nothing noted left (Unix time)",
            search_current.clone(),
        );
        let otlp = OtlpCounters::default();
        for (name, help, counter) in [
            ("otlp_spans_exported", "Spans the OTLP receiver accepted", &otlp.exported),
            ("otlp_spans_rejected", "Spans the OTLP receiver accepted the request of but rejected (partial success)", &otlp.rejected),
            ("otlp_spans_dead_lettered", "Spans the OTLP receiver refused for good, moved to the dead-letter table", &otlp.dead_lettered),
            ("otlp_spans_dropped", "Spans given up while the OTLP receiver was unavailable and the outbox over the sink's backlog limit", &otlp.dropped),
            ("otlp_retries", "OTLP requests retried (receiver down, 429, 5xx)", &otlp.retries),
        ] {
            registry.register(name, help, counter.clone());
        }
        let reasoning = ReasoningCounters::default();
        for (name, help, counter) in [
            ("reasoning_rules_jobs", "Steps whose rules text the reasoner wrote", &reasoning.rules),
            ("reasoning_llm_explained", "Steps the LLM reasoner explained", &reasoning.llm_explained),
            ("reasoning_llm_retries", "LLM reasoner calls that failed and will be tried again (429, 5xx, timeouts, malformed answers)", &reasoning.llm_retries),
            ("reasoning_llm_failed", "Reasoning jobs the LLM reasoner gave up on (their rules text stays)", &reasoning.llm_failed),
            ("reasoning_llm_prompt_tokens", "Prompt tokens the LLM reasoner's calls used", &reasoning.llm_prompt_tokens),
            ("reasoning_llm_completion_tokens", "Completion tokens the LLM reasoner's calls used", &reasoning.llm_completion_tokens),
        ] {
            registry.register(name, help, counter.clone());
        }
        Metrics {
            registry,
            otlp,
            reasoning,
            shipped_rows,
            shipped_batches,
            retries,
            dead_letters,
            backlog_rows,
            backlog_age,
            last_success,
            up,
            batch_write,
            search_indexed,
            search_failures,
            search_current,
            shipping_behind: AtomicBool::new(false),
            state: Mutex::default(),
        }
    }
}

impl Metrics {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn batch_committed(&self, rows: u64) {
        self.shipped_rows.inc_by(rows);
        self.shipped_batches.inc();
        self.last_success.set(now_us() as f64 / 1e6);
    }

    pub(crate) fn otlp_exported(&self, spans: u64) {
        self.otlp.exported.inc_by(spans);
    }

    pub(crate) fn otlp_rejected(&self, spans: u64) {
        self.otlp.rejected.inc_by(spans);
    }

    pub(crate) fn otlp_dead_lettered(&self, spans: u64) {
        self.otlp.dead_lettered.inc_by(spans);
    }

    pub(crate) fn otlp_dropped(&self, spans: u64) {
        self.otlp.dropped.inc_by(spans);
    }

    pub(crate) fn otlp_retry(&self) {
        self.otlp.retries.inc();
    }

    /// The rules reasoner wrote the text of `jobs` steps.
    pub(crate) fn reasoned_by_rules(&self, jobs: u64) {
        self.reasoning.rules.inc_by(jobs);
    }

    /// An LLM reasoner's pass: steps explained, calls to try again, jobs
    /// given up, and the tokens the calls used.
    pub(crate) fn reasoned_by_llm(
        &self,
        explained: u64,
        retries: u64,
        failed: u64,
        (prompt_tokens, completion_tokens): (u64, u64),
    ) {
        let r = &self.reasoning;
        r.llm_explained.inc_by(explained);
        r.llm_retries.inc_by(retries);
        r.llm_failed.inc_by(failed);
        r.llm_prompt_tokens.inc_by(prompt_tokens);
        r.llm_completion_tokens.inc_by(completion_tokens);
    }

    /// The search indexer caught up, taking `notes` notes on the way.
    pub(crate) fn search_caught_up(&self, notes: u64) {
        self.search_indexed.inc_by(notes);
        self.search_current.set(now_us() as f64 / 1e6);
    }

    /// Whether the shipper's rounds come full (set after each round), i.e.
    /// an outbox holds more than it can take at once and shipping is going
    /// as fast as it can; the search indexer then leaves it the machine for a while
    /// ([`crate::indexing::keep`]).
    pub fn shipping_behind(&self) -> bool {
        self.shipping_behind.load(Ordering::Relaxed)
    }

    pub(crate) fn set_shipping_behind(&self, behind: bool) {
        self.shipping_behind.store(behind, Ordering::Relaxed);
    }

    /// The search indexer failed (it tries again later).
    pub(crate) fn search_failed(&self) {
        self.search_failures.inc();
    }

    pub(crate) fn batch_written(&self, took: Duration) {
        self.batch_write.observe(took.as_secs_f64());
    }

    pub(crate) fn backend_ok(&self) {
        self.state().backend_problem = None;
    }

    /// Records why the backend cannot be used (shown by `/healthz`).
    pub fn set_backend_problem(&self, reason: String) {
        self.state().backend_problem = Some(reason);
    }

    pub(crate) fn backend_failed(&self, reason: String) {
        self.retries.inc();
        self.state().backend_problem = Some(reason);
    }

    pub(crate) fn dead_lettered(&self, n: u64) {
        self.dead_letters.inc_by(n);
    }

    pub(crate) fn set_outbox_problem(&self, outbox: &str, reason: String) {
        self.state()
            .outbox_problems
            .insert(outbox.to_owned(), reason);
    }

    pub(crate) fn clear_outbox_problem(&self, outbox: &str) {
        self.state().outbox_problems.remove(outbox);
    }

    pub(crate) fn set_backlog(&self, outbox: &str, rows: u64, oldest_us: Option<i64>) {
        let label = OutboxLabel {
            outbox: outbox.to_owned(),
        };
        self.backlog_rows
            .get_or_create(&label)
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
        self.state().oldest.insert(label.outbox, oldest_us);
    }

    /// `None` when healthy, else why the collector is degraded.
    pub fn degraded(&self) -> Option<String> {
        let state = self.state();
        let mut reasons: Vec<String> = Vec::new();
        if let Some(p) = &state.backend_problem {
            reasons.push(p.clone());
        }
        reasons.extend(state.outbox_problems.values().cloned());
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Rows shipped so far.
    pub fn shipped_rows(&self) -> u64 {
        self.shipped_rows.get()
    }

    /// The OpenMetrics text exposition of every metric, with the gauges
    /// that depend on the time of the scrape brought up to date.
    pub fn prometheus(&self) -> String {
        let now = now_us();
        for (outbox, oldest) in &self.state().oldest {
            let age = oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1e6);
            self.backlog_age
                .get_or_create(&OutboxLabel {
                    outbox: outbox.clone(),
                })
                .set(age);
        }
        self.up.set(i64::from(self.degraded().is_none()));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Metrics::prometheus`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
