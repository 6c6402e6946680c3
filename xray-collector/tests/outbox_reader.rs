//! The outbox reader against real outbox files, written by the real SDK
//! and then doctored: the file's identity, and what the reader makes of
//! rows and files no SDK writes.

mod support;

use rusqlite::Connection;
use support::outbox::{append_raw_step, write_steps};
use xray_collector::outbox::{OutboxReader, MAX_ROW_BYTES};

fn outbox_id_in(path: &std::path::Path) -> Option<String> {
    Connection::open(path)
        .unwrap()
        .query_row(xray_outbox::SELECT_OUTBOX_ID, [], |r| r.get(0))
        .ok()
}

#[test]
fn the_reader_knows_the_identity_the_sdk_gave_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    write_steps(&path, 0, 1);
    let written = outbox_id_in(&path).expect("the SDK writes an id at creation");
    let reader = OutboxReader::open(&path).unwrap();
    assert_eq!(reader.id().to_string(), written);
    assert_eq!(reader.id().get_version_num(), 4);
    drop(reader);
    // Writing again keeps it.
    write_steps(&path, 1, 1);
    assert_eq!(outbox_id_in(&path).as_deref(), Some(written.as_str()));
}

#[test]
fn an_outbox_of_an_older_sdk_without_an_identity_gets_one_that_stays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    write_steps(&path, 0, 1);
    Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM xray_outbox_meta WHERE key = 'outbox_id'", [])
        .unwrap();
    let first = OutboxReader::open(&path).unwrap().id();
    assert_eq!(outbox_id_in(&path), Some(first.to_string()));
    assert_eq!(OutboxReader::open(&path).unwrap().id(), first);
    // The SDK, opening it afterwards, keeps the collector's id.
    write_steps(&path, 1, 1);
    assert_eq!(OutboxReader::open(&path).unwrap().id(), first);
}

#[test]
fn two_outbox_files_have_two_identities() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    write_steps(&a, 0, 1);
    write_steps(&b, 0, 1);
    assert_ne!(
        OutboxReader::open(&a).unwrap().id(),
        OutboxReader::open(&b).unwrap().id()
    );
}

/// A JSON string input of `bytes` bytes.
fn big_input(bytes: usize) -> String {
    format!("\"{}\"", "x".repeat(bytes - 2))
}

#[test]
fn a_row_over_the_limit_is_handed_back_as_a_problem_without_being_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    write_steps(&path, 0, 10);
    append_raw_step(&path, "huge", "ok", &big_input(40_000_000));
    write_steps(&path, 10, 10);
    let total: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM xray_outbox", [], |r| r.get(0))
        .unwrap();

    let reader = OutboxReader::open(&path).unwrap();
    let batch = reader.read_batch(10_000, 8 << 20).unwrap();
    assert_eq!(batch.records.len() + batch.problems.len(), total as usize);
    let [problem] = &batch.problems[..] else {
        panic!("one problem expected: {:?}", batch.problems);
    };
    assert!(
        problem
            .reason
            .contains("over the 16777216 bytes an outbox row may have"),
        "{}",
        problem.reason
    );
    assert_eq!(problem.raw["name"], "huge", "small columns are read");
    assert!(problem.raw["input"].is_null(), "the big one is not");
    // What the batch loaded: every normal row whole, the big one's small
    // columns only — far below the 40 MB it holds.
    assert!(batch.bytes < 1 << 20, "{} bytes loaded", batch.bytes);
    assert_eq!(MAX_ROW_BYTES, 16 << 20);
}

#[test]
fn the_row_size_counts_bytes_over_every_column_not_characters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    write_steps(&path, 0, 1);
    let reader = OutboxReader::open(&path).unwrap();
    let small = reader.read_batch(10_000, usize::MAX).unwrap().bytes;
    reader.delete_through(i64::MAX).unwrap();
    // 1,000 characters of 3 bytes each, in a JSON string.
    append_raw_step(&path, "wide", "ok", &format!("\"{}\"", "€".repeat(1_000)));
    let batch = reader.read_batch(10_000, usize::MAX).unwrap();
    assert_eq!(batch.records.len(), 1);
    assert!(batch.bytes >= 3_002, "{} bytes", batch.bytes);
    // A limit just under the row's size refuses it.
    let reader = reader.with_max_row_bytes(batch.bytes - 1);
    let again = reader.read_batch(10_000, usize::MAX).unwrap();
    assert_eq!((again.records.len(), again.problems.len()), (0, 1));
    assert!(small > 0);
}

#[test]
fn an_outbox_of_format_version_1_is_upgraded_and_its_rows_read_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let v1 = xray_outbox::SCHEMA
        .replace(
            "    written_at_us INTEGER NOT NULL,\n",
            "    written_at_us INTEGER NOT NULL\n",
        )
        .replace("    trace_id      TEXT,\n", "")
        .replace("    parent_span_id TEXT\n", "");
    assert!(!v1.contains("trace_id"), "{v1}");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&v1).unwrap();
    conn.execute_batch(&format!(
        "INSERT INTO xray_outbox_meta (key, value) VALUES ('format_version', '1'),
             ('outbox_id', '6d2b2f8e-9f1c-4a57-8a43-0b8c4f1e2d3a');
         INSERT INTO xray_outbox (record_type, phase, id, execution_id, project, name, status,
                                  started_at_us, pid, written_at_us)
         VALUES ('execution', 'start', '0190a8c4-0000-7000-8000-000000000001',
                 '0190a8c4-0000-7000-8000-000000000001', 'old', 'from_v1', 'running', 1, 1, 1);
         PRAGMA application_id = {}; PRAGMA user_version = 1;",
        xray_outbox::APPLICATION_ID
    ))
    .unwrap();
    drop(conn);
    let reader = OutboxReader::open(&path).unwrap();
    let batch = reader.read_batch(100, usize::MAX).unwrap();
    assert!(batch.problems.is_empty(), "{:?}", batch.problems);
    let [xray_collector::model::ShipRecord::Execution(e)] = &batch.records[..] else {
        panic!("one execution expected: {:?}", batch.records);
    };
    assert_eq!(
        (e.name.as_str(), e.trace_id, e.parent_span_id),
        ("from_v1", None, None)
    );
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, xray_outbox::FORMAT_VERSION);
    // Opened again (now version 2), nothing more to do.
    assert_eq!(OutboxReader::open(&path).unwrap().id(), reader.id());
}

#[test]
fn a_trace_id_that_is_not_lowercase_hex_makes_its_row_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    write_steps(&path, 0, 3);
    let conn = Connection::open(&path).unwrap();
    let rows = conn
        .execute(
            "UPDATE xray_outbox SET trace_id = '4BF92F3577B34DA6A3CE929D0E0E4736'
             WHERE seq = (SELECT max(seq) FROM xray_outbox WHERE record_type = 'step')",
            [],
        )
        .unwrap();
    assert_eq!(rows, 1);
    conn.execute(
        "UPDATE xray_outbox SET parent_span_id = '0000000000000000'
         WHERE seq = (SELECT min(seq) FROM xray_outbox WHERE record_type = 'execution')",
        [],
    )
    .unwrap();
    // A step's parent_span_id is not read (only an execution has a remote
    // parent): set on a step row, it would change nothing.
    conn.execute(
        "UPDATE xray_outbox SET parent_span_id = 'not hex'
         WHERE seq = (SELECT min(seq) FROM xray_outbox WHERE record_type = 'step')",
        [],
    )
    .unwrap();
    let batch = OutboxReader::open(&path)
        .unwrap()
        .read_batch(100, usize::MAX)
        .unwrap();
    let mut reasons: Vec<&str> = batch.problems.iter().map(|p| p.reason.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "parent_span_id \"0000000000000000\" is not 16 lowercase hex digits (not all zero)",
            "trace_id \"4BF92F3577B34DA6A3CE929D0E0E4736\" is not 32 lowercase hex digits (not all zero)",
        ]
    );
    assert!(!batch.records.is_empty(), "the other rows are read");
}

mod properties {
    use proptest::prelude::*;
    use rusqlite::types::Value;
    use rusqlite::Connection;
    use xray_collector::outbox::OutboxReader;
    use xray_outbox::Column;

    use super::support::outbox::write_steps;

    /// A value for any column: what a doctored or corrupted file may hold.
    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            any::<f64>().prop_map(Value::Real),
            prop::sample::select(vec![
                "step",
                "execution",
                "start",
                "end",
                "ok",
                "error",
                "running",
                "{",
                "[1,2",
                "{\"a\":1}",
                "[{\"candidate_id\":1}]",
                "null",
                "\"x\"",
                "",
                "not-a-uuid",
                "0195c3a0-0000-7000-8000-000000000000",
                "NaN",
                "\u{0}",
                "é",
            ])
            .prop_map(|s| Value::Text(s.to_owned())),
            "\\PC{0,40}".prop_map(Value::Text),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Value::Blob),
        ]
    }

    /// A value the SDK could have written in `column`.
    fn plausible(column: Column) -> Value {
        let text = |s: &str| Value::Text(s.to_owned());
        match column.name() {
            "record_type" => text("step"),
            "phase" => text("end"),
            "id" | "execution_id" => text(&uuid::Uuid::from_u128(fastrand::u128(..)).to_string()),
            "status" => text("ok"),
            "project" | "name" => text("p"),
            "started_at_us" | "written_at_us" => Value::Integer(1_700_000_000_000_000),
            "duration_us" | "pid" => Value::Integer(1),
            _ => Value::Null,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random bytes as the outbox file (with or without SQLite's
        /// header): a clear error or an empty read, never a panic.
        #[test]
        fn random_bytes_are_an_error_not_a_panic(
            header in any::<bool>(),
            body in prop::collection::vec(any::<u8>(), 0..8192),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("outbox.db");
            let mut bytes = if header { b"SQLite format 3\0".to_vec() } else { Vec::new() };
            bytes.extend(body);
            std::fs::write(&path, &bytes).unwrap();
            match OutboxReader::open(&path) {
                Err(e) => prop_assert!(!e.to_string().is_empty()),
                Ok(reader) => {
                    if let Err(e) = reader.read_batch(100, 1 << 20) {
                        prop_assert!(!e.to_string().is_empty());
                    }
                }
            }
        }

        /// Rows of garbage in a real outbox (every column any type, any
        /// text): each row read is a record or a problem with a reason,
        /// none is skipped, and nothing panics.
        #[test]
        fn random_rows_are_records_or_problems(
            rows in prop::collection::vec(
                prop::collection::vec((any::<bool>(), any_value()), Column::written().len()),
                1..12,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("outbox.db");
            write_steps(&path, 0, 1);
            let conn = Connection::open(&path).unwrap();
            let mut insert = conn.prepare(xray_outbox::insert_sql()).unwrap();
            for row in rows {
                // Each column plausible, or (when its flag says so) garbage.
                for (column, (corrupt, garbage)) in Column::written().iter().zip(row) {
                    let value = if corrupt { garbage } else { plausible(*column) };
                    insert.raw_bind_parameter(column.parameter().unwrap(), value).unwrap();
                }
                // The file's own constraints refuse some garbage; the rest is in.
                let _ = insert.raw_execute();
            }
            drop(insert);
            let stored: usize = conn
                .query_row("SELECT count(*) FROM xray_outbox", [], |r| r.get::<_, i64>(0))
                .unwrap() as usize;
            drop(conn);
            let reader = OutboxReader::open(&path).unwrap();
            let batch = reader.read_batch(10_000, 64 << 20).unwrap();
            prop_assert_eq!(batch.records.len() + batch.problems.len(), stored);
            for problem in &batch.problems {
                prop_assert!(!problem.reason.is_empty());
            }
        }
    }
}
