//! The shipping guarantees against the embedded store, through the real
//! `xray-collector` binary and outboxes written by the real SDK.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::outbox::{
    count, outbox_rows, spawn_writer_child, write_steps, writer_child_main, StoreCounts,
    WRITER_ROLE,
};

fn collector() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("XRAY_COLLECTOR_FAULT");
    cmd
}

fn run_once(store: &Path, outboxes: &[&Path], extra: &[&str]) -> Output {
    let mut cmd = collector();
    cmd.arg("run").arg("--once").env("XRAY_STORE", store);
    for o in outboxes {
        cmd.arg("--outbox").arg(o);
    }
    cmd.args(extra).output().expect("run the collector")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let store = dir.path().join("store/xray.db");
    (dir, outbox, store)
}

#[test]
fn run_once_ships_everything_and_empties_the_outbox() {
    let (_dir, outbox, store) = dirs();
    write_steps(&outbox, 0, 300);
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&store), StoreCounts::for_steps(300));
    assert_eq!(outbox_rows(&outbox), 0, "shipped rows must be deleted");
    // Shipping again (nothing left) changes nothing.
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success());
    assert_eq!(count(&store), StoreCounts::for_steps(300));
}

#[test]
fn a_crash_between_commit_and_delete_reships_without_duplicates() {
    let (_dir, outbox, store) = dirs();
    write_steps(&outbox, 0, 500);
    let before = outbox_rows(&outbox);
    let out = collector()
        .args(["run", "--once", "--batch-rows", "100", "--outbox"])
        .arg(&outbox)
        .env("XRAY_STORE", &store)
        .env("XRAY_COLLECTOR_FAULT", "crash-after-commit:2")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault must abort the collector");
    let shipped = count(&store);
    assert!(
        shipped.steps > 0,
        "two batches were committed before the crash"
    );
    assert_eq!(
        outbox_rows(&outbox),
        before - 100,
        "the second batch's rows were not deleted"
    );
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&store), StoreCounts::for_steps(500));
    assert_eq!(outbox_rows(&outbox), 0);
}

#[test]
fn a_row_the_store_rejects_is_dead_lettered_and_the_rows_behind_it_ship() {
    let (_dir, outbox, store) = dirs();
    write_steps(&outbox, 0, 50);
    support::outbox::append_raw_step(&outbox, "", "ok", "{\"x\":1}"); // empty name: refused by the store
    support::outbox::append_raw_step(&outbox, "garbled", "ok", "{not json"); // unreadable row
    write_steps(&outbox, 50, 50);
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        count(&store),
        StoreCounts {
            dead_letters: 2,
            ..StoreCounts::for_steps(100)
        }
    );
    assert_eq!(outbox_rows(&outbox), 0);
    let reasons = support::outbox::dead_letter_reasons(&store);
    assert!(
        reasons.iter().any(|r| r.contains("not valid JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("rejected")),
        "{reasons:?}"
    );
}

#[test]
fn unreadable_outboxes_are_named_and_the_others_keep_shipping() {
    let (dir, outbox, store) = dirs();
    write_steps(&outbox, 0, 20);
    let future = dir.path().join("future.db");
    write_steps(&future, 0, 1);
    rusqlite::Connection::open(&future)
        .unwrap()
        .execute_batch("PRAGMA user_version = 9")
        .unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let out = run_once(&store, &[&future, &garbage, &outbox], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("future.db") && err.contains("format version 9"),
        "{err}"
    );
    assert!(err.contains("garbage.db"), "{err}");
    assert_eq!(count(&store), StoreCounts::for_steps(20));
    assert_eq!(
        std::fs::read(&garbage).unwrap(),
        vec![0x5a; 8192],
        "a bad file is left alone"
    );
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn daemon(store: &Path, outbox: &Path, extra: &[&str]) -> Child {
    collector()
        .arg("run")
        .arg("--outbox")
        .arg(outbox)
        .args(extra)
        .env("XRAY_STORE", store)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

#[test]
fn the_daemon_waits_for_an_outbox_that_does_not_exist_yet_and_stops_cleanly_on_sigterm() {
    let (_dir, outbox, store) = dirs();
    let mut child = daemon(&store, &outbox, &[]);
    std::thread::sleep(Duration::from_millis(300));
    write_steps(&outbox, 0, 40);
    wait_until("the steps to arrive", Duration::from_secs(30), || {
        count(&store).steps == 40
    });
    let status = sigterm(&mut child);
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    assert_eq!(count(&store), StoreCounts::for_steps(40));
}

#[test]
fn two_collectors_on_one_outbox_ship_every_step_exactly_once() {
    let (_dir, outbox, store) = dirs();
    write_steps(&outbox, 0, 1);
    let mut a = daemon(&store, &outbox, &["--batch-rows", "37"]);
    let mut b = daemon(&store, &outbox, &["--batch-rows", "53"]);
    for round in 0..10 {
        write_steps(&outbox, 1 + round * 100, 100);
    }
    wait_until("every step to arrive", Duration::from_secs(60), || {
        count(&store).steps == 1001
    });
    assert!(sigterm(&mut a).success());
    assert!(sigterm(&mut b).success());
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success());
    assert_eq!(count(&store), StoreCounts::for_steps(1001));
}

#[test]
fn sigkill_repeatedly_while_several_processes_write_loses_and_duplicates_nothing() {
    if std::env::var(WRITER_ROLE).is_ok() {
        return writer_child_main();
    }
    let (_dir, outbox, store) = dirs();
    let name = "sigkill_repeatedly_while_several_processes_write_loses_and_duplicates_nothing";
    let writers: Vec<Child> = (0..3)
        .map(|i| spawn_writer_child(name, &outbox, i * 100_000, 400))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut kills = 0;
    let mut writers = writers;
    while writers.iter_mut().any(|w| w.try_wait().unwrap().is_none()) || kills < 5 {
        assert!(Instant::now() < deadline, "writers did not finish");
        let mut child = daemon(&store, &outbox, &["--batch-rows", "64"]);
        std::thread::sleep(Duration::from_millis(150 + fastrand::u64(0..200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    for w in &mut writers {
        assert!(w.wait().unwrap().success());
    }
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        count(&store),
        StoreCounts::for_steps(1200),
        "after {kills} kills"
    );
    support::outbox::assert_each_step_once(
        &store,
        (0..3).flat_map(|i| (i * 100_000)..(i * 100_000 + 400)),
    );
}

#[test]
fn healthz_and_metrics_report_the_daemon_state() {
    let (_dir, outbox, store) = dirs();
    write_steps(&outbox, 0, 25);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut child = daemon(&store, &outbox, &["--listen", &addr]);
    wait_until("the steps to arrive", Duration::from_secs(30), || {
        count(&store).steps == 25
    });
    let health = support::outbox::http_get(&addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
    let metrics = support::outbox::http_get(&addr, "/metrics");
    for name in [
        "xray_collector_shipped_rows_total",
        "xray_collector_shipped_batches_total",
        "xray_collector_retries_total 0",
        "xray_collector_dead_letters_total 0",
        "xray_collector_outbox_backlog_rows{",
        "xray_collector_outbox_backlog_age_seconds{",
        "xray_collector_last_success_timestamp_seconds",
        "xray_collector_up 1",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(sigterm(&mut child).success());
}

#[test]
fn bad_arguments_are_one_line_errors_not_panics() {
    let out = collector()
        .args(["run", "--batch-rows", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!stderr(&out).contains("panicked"));
    let out = collector()
        .args(["run", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = collector().args(["migrate", "sideways"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = collector()
        .args(["migrate", "status"])
        .env("XRAY_STORE", file.join("store.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("xray-collector: cannot open the store"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
