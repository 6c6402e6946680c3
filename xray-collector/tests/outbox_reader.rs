//! The outbox reader against real outbox files, written by the real SDK
//! and then doctored: the file's identity, and what the reader makes of
//! rows and files no SDK writes.

mod support;

use rusqlite::Connection;
use support::outbox::write_steps;
use xray_collector::outbox::OutboxReader;

fn outbox_id_in(path: &std::path::Path) -> Option<String> {
    Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT value FROM xray_outbox_meta WHERE key = 'outbox_id'",
            [],
            |r| r.get(0),
        )
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
