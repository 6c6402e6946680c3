//! Counters and gauges behind `/metrics` and `/healthz`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// The shipper's state, read by the HTTP endpoints.
#[derive(Debug, Default)]
pub struct Metrics {
    shipped_rows: AtomicU64,
    shipped_batches: AtomicU64,
    retries: AtomicU64,
    dead_letters: AtomicU64,
    last_success_us: AtomicI64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    backend_problem: Option<String>,
    outbox_problems: BTreeMap<String, String>,
    /// Per outbox: rows waiting and the commit time of the oldest.
    backlog: BTreeMap<String, (u64, Option<i64>)>,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl Metrics {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn batch_committed(&self, rows: u64) {
        self.shipped_rows.fetch_add(rows, Ordering::Relaxed);
        self.shipped_batches.fetch_add(1, Ordering::Relaxed);
        self.last_success_us.store(now_us(), Ordering::Relaxed);
    }

    pub(crate) fn backend_ok(&self) {
        self.state().backend_problem = None;
    }

    /// Records why the backend cannot be used (shown by `/healthz`).
    pub fn set_backend_problem(&self, reason: String) {
        self.state().backend_problem = Some(reason);
    }

    pub(crate) fn backend_failed(&self, reason: String) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.state().backend_problem = Some(reason);
    }

    pub(crate) fn dead_lettered(&self, n: u64) {
        self.dead_letters.fetch_add(n, Ordering::Relaxed);
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
        self.state()
            .backlog
            .insert(outbox.to_owned(), (rows, oldest_us));
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
        self.shipped_rows.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition of every metric.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "xray_collector_shipped_rows_total",
            "Outbox rows committed to the backend.",
            self.shipped_rows.load(Ordering::Relaxed),
        );
        counter(
            "xray_collector_shipped_batches_total",
            "Batches committed to the backend.",
            self.shipped_batches.load(Ordering::Relaxed),
        );
        counter(
            "xray_collector_retries_total",
            "Backend operations retried after a retriable error.",
            self.retries.load(Ordering::Relaxed),
        );
        counter(
            "xray_collector_dead_letters_total",
            "Rows moved to the dead-letter table.",
            self.dead_letters.load(Ordering::Relaxed),
        );
        let state = self.state();
        let now = now_us();
        let _ = writeln!(
            out,
            "# HELP xray_collector_outbox_backlog_rows Rows waiting in the outbox.\n# TYPE xray_collector_outbox_backlog_rows gauge"
        );
        for (outbox, (rows, _)) in &state.backlog {
            let _ = writeln!(
                out,
                "xray_collector_outbox_backlog_rows{{outbox=\"{}\"}} {rows}",
                escape(outbox)
            );
        }
        let _ = writeln!(
            out,
            "# HELP xray_collector_outbox_backlog_age_seconds Age of the oldest waiting row.\n# TYPE xray_collector_outbox_backlog_age_seconds gauge"
        );
        for (outbox, (_, oldest)) in &state.backlog {
            let age = oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1e6);
            let _ = writeln!(
                out,
                "xray_collector_outbox_backlog_age_seconds{{outbox=\"{}\"}} {age}",
                escape(outbox)
            );
        }
        let last = self.last_success_us.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP xray_collector_last_success_timestamp_seconds When a batch was last committed (Unix time).\n# TYPE xray_collector_last_success_timestamp_seconds gauge\nxray_collector_last_success_timestamp_seconds {}",
            last as f64 / 1e6
        );
        drop(state);
        let _ = writeln!(
            out,
            "# HELP xray_collector_up 1 when healthy, 0 when degraded.\n# TYPE xray_collector_up gauge\nxray_collector_up {}",
            u8::from(self.degraded().is_none())
        );
        out
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
