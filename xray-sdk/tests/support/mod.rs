//! Reading an outbox back in tests: rows as written, and steps merged by id
//! the way a collector merges them (the `end` row wins over the `start`).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use serde_json::Value;

/// One outbox row.
#[derive(Debug, Clone)]
pub struct Row {
    pub seq: i64,
    pub record_type: String,
    pub phase: String,
    pub id: String,
    pub execution_id: String,
    pub parent_id: Option<String>,
    pub project: String,
    pub name: String,
    pub kind: Option<String>,
    pub status: String,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub attributes: Option<Value>,
    pub metadata: Option<Value>,
    pub outcome: Option<Value>,
    pub decisions: Option<Value>,
    pub llm_usage: Option<Value>,
    pub started_at_us: i64,
    pub duration_us: Option<i64>,
    pub pid: i64,
    pub trace_id: Option<String>,
    pub parent_span_id: Option<String>,
}

fn json(text: Option<String>) -> Option<Value> {
    text.map(|t| {
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("outbox holds invalid JSON {t:?}: {e}"))
    })
}

/// Every row of the outbox, in `seq` order, read by column name.
pub fn rows(path: &Path) -> Vec<Row> {
    let conn = Connection::open(path).expect("open outbox");
    let mut stmt = conn
        .prepare("SELECT * FROM xray_outbox ORDER BY seq")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                seq: r.get("seq")?,
                record_type: r.get("record_type")?,
                phase: r.get("phase")?,
                id: r.get("id")?,
                execution_id: r.get("execution_id")?,
                parent_id: r.get("parent_id")?,
                project: r.get("project")?,
                name: r.get("name")?,
                kind: r.get("kind")?,
                status: r.get("status")?,
                input: json(r.get("input")?),
                output: json(r.get("output")?),
                error: r.get("error")?,
                attributes: json(r.get("attributes")?),
                metadata: json(r.get("metadata")?),
                outcome: json(r.get("outcome")?),
                decisions: json(r.get("decisions")?),
                llm_usage: json(r.get("llm_usage")?),
                started_at_us: r.get("started_at_us")?,
                duration_us: r.get("duration_us")?,
                pid: r.get("pid")?,
                trace_id: r.get("trace_id")?,
                parent_span_id: r.get("parent_span_id")?,
            })
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

/// Rows merged by `(record_type, id)`, the latest `seq` winning.
pub fn merged(path: &Path, record_type: &str) -> Vec<Row> {
    let mut by_id: BTreeMap<String, Row> = BTreeMap::new();
    for row in rows(path)
        .into_iter()
        .filter(|r| r.record_type == record_type)
    {
        match by_id.get(&row.id) {
            Some(existing) if existing.phase == "end" && row.phase == "start" => {}
            _ => {
                by_id.insert(row.id.clone(), row);
            }
        }
    }
    let mut v: Vec<Row> = by_id.into_values().collect();
    v.sort_by_key(|r| r.seq);
    v
}

pub fn steps(path: &Path) -> Vec<Row> {
    merged(path, "step")
}

pub fn executions(path: &Path) -> Vec<Row> {
    merged(path, "execution")
}

/// The single merged step called `name`; panics unless exactly one.
pub fn step(path: &Path, name: &str) -> Row {
    let found: Vec<Row> = steps(path).into_iter().filter(|s| s.name == name).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one step {name:?}, found {found:#?}"
    );
    found.into_iter().next().unwrap()
}

/// The single merged execution called `name`; panics unless exactly one.
pub fn execution(path: &Path, name: &str) -> Row {
    let found: Vec<Row> = executions(path)
        .into_iter()
        .filter(|e| e.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one execution {name:?}, found {found:#?}"
    );
    found.into_iter().next().unwrap()
}

/// A fresh outbox path in its own temporary directory.
pub fn outbox() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("outbox.db");
    (dir, path)
}

/// Runs `f` with X-Ray recording into `path` on this thread only, then
/// flushes; returns what `f` returned and the pipeline's stats.
pub fn capture<R>(config: xray::Config, f: impl FnOnce() -> R) -> (R, xray::Stats) {
    use tracing_subscriber::layer::SubscriberExt;
    let (layer, guard) = config.build().expect("build");
    let subscriber = tracing_subscriber::registry().with(layer);
    let value = tracing::subscriber::with_default(subscriber, f);
    guard.flush().expect("flush");
    let stats = guard.stats();
    (value, stats)
}

/// The raw bytes of the outbox and its WAL file, to prove a secret never
/// reached the disk in any form.
pub fn raw_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    bytes.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    assert!(!bytes.is_empty(), "no outbox at {}", path.display());
    bytes
}
