//! The outbox file: bad paths and bad files give clear errors from `init`/
//! `build`; a process killed with SIGKILL leaves everything it flushed, with
//! unfinished steps visible as running; several processes share one file.

mod support;

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

const CHILD_ROLE: &str = "XRAY_TEST_CHILD_ROLE";
const CHILD_OUTBOX: &str = "XRAY_TEST_CHILD_OUTBOX";

fn build_error(config: xray::Config) -> String {
    match config.build() {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_outbox_directory_that_cannot_be_created_is_a_clear_error() {
    // /proc refuses new directories even to root, so this holds for any user.
    let err = build_error(xray::Config::default().outbox("/proc/xray-test/outbox.db"));
    assert!(err.contains("/proc/xray-test/outbox.db"), "{err}");
    assert!(err.contains("cannot create the directory"), "{err}");
}

#[test]
fn an_outbox_under_a_regular_file_is_a_clear_error() {
    let (dir, _) = support::outbox();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = build_error(xray::Config::default().outbox(file.join("outbox.db")));
    assert!(err.contains("not-a-dir/outbox.db"), "{err}");
}

#[test]
fn a_file_that_is_not_sqlite_is_a_clear_error_and_is_left_alone() {
    let (_dir, path) = support::outbox();
    std::fs::write(
        &path,
        b"this is not a database, just some bytes that happen to be here",
    )
    .unwrap();
    let err = build_error(xray::Config::default().outbox(&path));
    assert!(err.contains("outbox.db"), "{err}");
    assert!(err.to_lowercase().contains("not a database"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"this is not a database, just some bytes that happen to be here"
    );
}

#[test]
fn another_sqlite_database_is_refused() {
    let (_dir, path) = support::outbox();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE mine (x)")
        .unwrap();
    let err = build_error(xray::Config::default().outbox(&path));
    assert!(err.contains("not an X-Ray outbox"), "{err}");
}

#[test]
fn an_outbox_of_a_future_format_version_is_refused_with_both_versions() {
    let (_dir, path) = support::outbox();
    drop(xray::Config::default().outbox(&path).build().unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 7")
        .unwrap();
    match xray::Config::default().outbox(&path).build() {
        Err(xray::Error::OutboxVersion {
            found: 7,
            supported: 2,
            ..
        }) => {}
        other => panic!("expected OutboxVersion, got {other:?}"),
    }
}

/// The DDL of format version 1: version 2 less the columns it added.
fn schema_v1() -> String {
    let v1 = xray::outbox::SCHEMA
        .replace(
            "    written_at_us INTEGER NOT NULL,\n",
            "    written_at_us INTEGER NOT NULL\n",
        )
        .replace("    trace_id      TEXT,\n", "")
        .replace("    parent_span_id TEXT\n", "");
    assert!(
        !v1.contains("trace_id") && !v1.contains("parent_span_id"),
        "{v1}"
    );
    v1
}

#[test]
fn an_outbox_of_format_version_1_is_upgraded_in_place_keeping_its_rows() {
    let (_dir, path) = support::outbox();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&schema_v1()).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO xray_outbox_meta (key, value) VALUES ('format_version', '1');
             INSERT INTO xray_outbox (record_type, phase, id, execution_id, project, name, status,
                                      started_at_us, pid, written_at_us)
             VALUES ('execution', 'start', '0190a8c4-0000-7000-8000-000000000001',
                     '0190a8c4-0000-7000-8000-000000000001', 'old', 'before_upgrade', 'running', 1, 1, 1);
             PRAGMA application_id = {}; PRAGMA user_version = 1;",
            xray::outbox::APPLICATION_ID
        ))
        .unwrap();
    }
    let (layer, guard) = xray::Config::default()
        .outbox(&path)
        .project("new")
        .build()
        .unwrap();
    let subscriber =
        tracing_subscriber::layer::SubscriberExt::with(tracing_subscriber::registry(), layer);
    tracing::subscriber::with_default(subscriber, || {
        xray::execution("after_upgrade")
            .traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .run(|| {});
    });
    guard.flush().unwrap();
    drop(guard);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    let meta: String = conn
        .query_row(
            "SELECT value FROM xray_outbox_meta WHERE key = 'format_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(meta, "2");
    let rows: Vec<(String, Option<String>, Option<String>)> = conn
        .prepare("SELECT name, trace_id, parent_span_id FROM xray_outbox ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            ("before_upgrade".to_owned(), None, None),
            (
                "after_upgrade".to_owned(),
                Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned()),
                Some("00f067aa0ba902b7".to_owned())
            ),
        ]
    );
}

#[test]
fn malformed_environment_values_fail_init_naming_the_variable() {
    let config = xray::Config::from_lookup(|name| {
        (name == "XRAY_WHEN_FULL").then(|| "sometimes".to_owned())
    });
    let err = config.init().unwrap_err();
    assert!(
        matches!(
            err,
            xray::Error::Config {
                variable: "XRAY_WHEN_FULL",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\"sometimes\""), "{err}");
}

#[cfg(unix)]
#[test]
fn the_outbox_its_wal_files_and_its_new_directories_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _) = support::outbox();
    let path = dir.path().join("new/deeper/outbox.db");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let config = xray::Config::default().outbox(&path);
    let (layer, guard) = config.build().unwrap();
    let subscriber =
        tracing_subscriber::layer::SubscriberExt::with(tracing_subscriber::registry(), layer);
    tracing::subscriber::with_default(subscriber, || child_step(1));
    guard.flush().unwrap();
    // Checked while the writer holds the file open: the WAL files exist.
    for file in ["outbox.db", "outbox.db-wal", "outbox.db-shm"] {
        let p = path.with_file_name(file);
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    for new_dir in ["new", "new/deeper"] {
        assert_eq!(mode(&dir.path().join(new_dir)), 0o700, "{new_dir}");
    }
    drop(guard);
}

#[test]
fn reopening_an_outbox_keeps_its_rows_and_continues_the_sequence() {
    let (_dir, path) = support::outbox();
    for round in 0..2 {
        let (_, _) = support::capture(xray::Config::default().outbox(&path), || child_step(round));
    }
    let rows = support::rows(&path);
    assert_eq!(rows.len(), 4, "two steps, two implicit executions");
    assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[xray::step]
fn child_step(i: u32) -> u32 {
    i
}

#[xray::step]
fn never_returns(i: u32, guard: &xray::Guard) -> u32 {
    guard.flush().unwrap();
    println!("inside {i}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// The body of the child processes, selected by `CHILD_ROLE`.
fn child_main(role: &str, outbox: &Path) {
    let guard = xray::Config::default().outbox(outbox).init().unwrap();
    match role {
        "killed" => {
            xray::execution("before_kill").run(|| {
                for i in 0..100 {
                    child_step(i);
                }
            });
            guard.flush().unwrap();
            println!("flushed 100");
            xray::execution("killed_mid_run").run(|| never_returns(7, &guard));
        }
        "writer" => {
            let pid = std::process::id();
            for i in 0..500 {
                xray::execution("shared_file")
                    .metadata("pid", &pid)
                    .run(|| child_step(i));
            }
            guard.flush().unwrap();
            println!("done");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Re-runs this test binary as a child acting out `role`.
fn spawn_child(test_name: &str, role: &str, outbox: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .env(CHILD_OUTBOX, outbox)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The lines a child prints, read through one buffer for its whole life (a
/// buffer per wait could swallow the next line along with the one waited for).
fn lines(child: &mut Child) -> Lines<BufReader<ChildStdout>> {
    BufReader::new(child.stdout.take().expect("stdout is piped")).lines()
}

fn wait_for_line(lines: &mut Lines<BufReader<ChildStdout>>, wanted: &str) {
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(wanted) => return,
            Some(Ok(_)) => continue,
            other => panic!("child ended before printing {wanted:?}: {other:?}"),
        }
    }
}

#[test]
fn sigkill_keeps_everything_flushed_and_unfinished_steps_show_as_running() {
    if let Ok(role) = std::env::var(CHILD_ROLE) {
        return child_main(&role, Path::new(&std::env::var(CHILD_OUTBOX).unwrap()));
    }
    let (_dir, path) = support::outbox();
    let mut child = spawn_child(
        "sigkill_keeps_everything_flushed_and_unfinished_steps_show_as_running",
        "killed",
        &path,
    );
    let mut output = lines(&mut child);
    wait_for_line(&mut output, "flushed 100");
    wait_for_line(&mut output, "inside 7");
    // SIGKILL: no destructor, no flush on drop.
    child.kill().unwrap();
    child.wait().unwrap();

    let steps = support::steps(&path);
    let done: Vec<_> = steps.iter().filter(|s| s.name == "child_step").collect();
    assert_eq!(done.len(), 100);
    assert!(done.iter().all(|s| s.status == "ok"));
    let running = support::step(&path, "never_returns");
    assert_eq!(running.status, "running");
    assert_eq!(running.phase, "start");
    assert_eq!(running.input.as_ref().unwrap()["i"], 7);
    let status = |name: &str| support::execution(&path, name).status;
    assert_eq!(status("before_kill"), "ok");
    assert_eq!(status("killed_mid_run"), "running");
}

#[test]
fn several_processes_write_one_outbox_without_losing_or_reordering_rows() {
    if let Ok(role) = std::env::var(CHILD_ROLE) {
        return child_main(&role, Path::new(&std::env::var(CHILD_OUTBOX).unwrap()));
    }
    let (_dir, path) = support::outbox();
    let name = "several_processes_write_one_outbox_without_losing_or_reordering_rows";
    let mut children: Vec<Child> = (0..3).map(|_| spawn_child(name, "writer", &path)).collect();
    for child in &mut children {
        let mut output = lines(child);
        wait_for_line(&mut output, "done");
        // Read on until it exits: a closed pipe would fail its last prints.
        output.for_each(drop);
        assert!(child.wait().unwrap().success());
    }
    let rows = support::rows(&path);
    assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
    let steps = support::steps(&path);
    assert_eq!(steps.len(), 1500);
    let mut pids: Vec<i64> = steps.iter().map(|s| s.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3);
    for pid in pids {
        assert_eq!(steps.iter().filter(|s| s.pid == pid).count(), 500);
    }
}
