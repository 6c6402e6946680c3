//! Outboxes written by the real SDK, and reading the embedded store back.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use tracing_subscriber::layer::SubscriberExt;

/// Env var that turns a re-executed test binary into an outbox writer.
pub const WRITER_ROLE: &str = "XRAY_TEST_WRITER";

#[xray::step(kind = "filter")]
fn pick(value: u64) -> u64 {
    xray::accept(format!("c{value}"), "all", "kept");
    xray::reject(format!("d{value}"), "price", "too dear");
    xray::llm_usage("test-model", 10, 2);
    value
}

/// Writes `n` executions of one step each, whose outputs are
/// `start..start + n`, each with 2 decisions and 1 LLM usage; flushed.
pub fn write_steps(outbox: &Path, start: u64, n: u64) {
    write_steps_in_batches(outbox, start, n, n.max(1));
}

fn write_steps_in_batches(outbox: &Path, start: u64, n: u64, per_flush: u64) {
    let (layer, guard) = xray::Config::default()
        .outbox(outbox)
        .when_full(xray::WhenFull::Block)
        .build()
        .expect("build");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        for v in start..start + n {
            xray::execution("ship-test").run(|| pick(v));
            if (v - start + 1) % per_flush == 0 {
                guard.flush().expect("flush");
            }
        }
    });
    guard.flush().expect("flush");
    let stats = guard.stats();
    assert_eq!(
        (stats.captured, stats.written, stats.dropped),
        (n, n, 0),
        "{stats:?}"
    );
}

/// Re-runs the current test binary as a writer of `n` steps from `start`.
pub fn spawn_writer_child(test_name: &str, outbox: &Path, start: u64, n: u64) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(WRITER_ROLE, format!("{start}:{n}"))
        .env("XRAY_TEST_WRITER_OUTBOX", outbox)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// The body of a writer child: small flushed batches, so that shipping and
/// writing interleave.
pub fn writer_child_main() {
    let role = std::env::var(WRITER_ROLE).unwrap();
    let (start, n) = role.split_once(':').unwrap();
    let outbox = std::env::var("XRAY_TEST_WRITER_OUTBOX").unwrap();
    write_steps_in_batches(
        Path::new(&outbox),
        start.parse().unwrap(),
        n.parse().unwrap(),
        20,
    );
}

/// Rows waiting in an outbox.
pub fn outbox_rows(outbox: &Path) -> u64 {
    let conn = rusqlite::Connection::open(outbox).unwrap();
    conn.query_row("SELECT count(*) FROM xray_outbox", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap() as u64
}

/// Appends a hand-made step `end` row (for rows the SDK would never
/// write), through the format's own insert statement; columns not given
/// are NULL.
pub fn append_raw_step(outbox: &Path, name: &str, status: &str, input: &str) {
    append_raw_step_at(outbox, name, status, input, 1_700_000_000_000_000);
}

/// [`append_raw_step`], started at `started_at_us`.
pub fn append_raw_step_at(
    outbox: &Path,
    name: &str,
    status: &str,
    input: &str,
    started_at_us: i64,
) {
    append_raw_step_in(outbox, "default", name, status, input, started_at_us);
}

/// [`append_raw_step_at`] in project `project`.
pub fn append_raw_step_in(
    outbox: &Path,
    project: &str,
    name: &str,
    status: &str,
    input: &str,
    started_at_us: i64,
) {
    use rusqlite::types::Value;
    use xray_outbox::{Column, Phase, RecordType};
    let conn = rusqlite::Connection::open(outbox).unwrap();
    let mut insert = conn.prepare(xray_outbox::insert_sql()).unwrap();
    let new_id = || uuid::Uuid::from_u128(fastrand::u128(..)).to_string();
    let values: [(Column, Value); 12] = [
        (
            Column::RecordType,
            RecordType::Step.as_str().to_owned().into(),
        ),
        (Column::Phase, Phase::End.as_str().to_owned().into()),
        (Column::Id, new_id().into()),
        (Column::ExecutionId, new_id().into()),
        (Column::Project, project.to_owned().into()),
        (Column::Name, name.to_owned().into()),
        (Column::Status, status.to_owned().into()),
        (Column::Input, input.to_owned().into()),
        (Column::StartedAtUs, started_at_us.into()),
        (Column::DurationUs, 5i64.into()),
        (Column::Pid, 1i64.into()),
        (Column::WrittenAtUs, 1_700_000_000_000_000i64.into()),
    ];
    for (column, value) in values {
        insert
            .raw_bind_parameter(column.parameter().unwrap(), value)
            .unwrap();
    }
    insert.raw_execute().unwrap();
}

/// Row counts of the embedded store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreCounts {
    pub executions: i64,
    pub steps: i64,
    pub decisions: i64,
    pub llm_usage: i64,
    pub dead_letters: i64,
}

impl StoreCounts {
    /// What `n` steps written by [`write_steps`] become.
    pub fn for_steps(n: i64) -> StoreCounts {
        StoreCounts {
            executions: n,
            steps: n,
            decisions: 2 * n,
            llm_usage: n,
            dead_letters: 0,
        }
    }
}

/// Counts every table of the embedded store (zeros before it exists).
pub fn count(store: &Path) -> StoreCounts {
    if !store.exists() {
        return StoreCounts::default();
    }
    let conn = rusqlite::Connection::open(store).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    let n = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap_or(0)
    };
    StoreCounts {
        executions: n("executions"),
        steps: n("steps"),
        decisions: n("decisions"),
        llm_usage: n("llm_usage"),
        dead_letters: n("dead_letters"),
    }
}

/// The reasons in the embedded store's dead-letter table.
pub fn dead_letter_reasons(store: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(store).unwrap();
    let mut stmt = conn
        .prepare("SELECT reason FROM dead_letters ORDER BY seq")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// A plain HTTP/1.1 GET; returns the whole response.
/// The value of metric `name` in an OpenMetrics text; panics when absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
}

pub fn http_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
