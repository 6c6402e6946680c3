//! The shipping guarantees, through the real `xray-collector` binary and
//! outboxes written by the real SDK, against both backends: every scenario
//! runs once on the embedded store and once on a real PostgreSQL.

#[macro_use]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::outbox::{
    metric, outbox_rows, spawn_writer_child, write_steps, writer_child_main, StoreCounts,
    WRITER_ROLE,
};
use support::target::Target;

/// Declares a module `<name>` with tests `embedded` and `postgres`, each
/// running `body(target)`.
fn collector() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("XRAY_COLLECTOR_FAULT");
    cmd
}

fn run_once(target: &Target, outboxes: &[&Path], extra: &[&str]) -> Output {
    let mut cmd = collector();
    cmd.arg("run").arg("--once");
    target.configure(&mut cmd);
    for o in outboxes {
        cmd.arg("--outbox").arg(o);
    }
    cmd.args(extra).output().expect("run the collector")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn dirs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    (dir, outbox)
}

on_both_backends!(
    run_once_ships_everything_and_empties_the_outbox,
    ships_everything
);
fn ships_everything(store: Target) {
    let (_dir, outbox) = dirs();
    write_steps(&outbox, 0, 300);
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(store.counts(), StoreCounts::for_steps(300));
    assert_eq!(outbox_rows(&outbox), 0, "shipped rows must be deleted");
    // Shipping again (nothing left) changes nothing.
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success());
    assert_eq!(store.counts(), StoreCounts::for_steps(300));
}

on_both_backends!(
    a_crash_between_commit_and_delete_reships_without_duplicates,
    crash_between_commit_and_delete
);
fn crash_between_commit_and_delete(store: Target) {
    let (_dir, outbox) = dirs();
    write_steps(&outbox, 0, 500);
    let before = outbox_rows(&outbox);
    let mut cmd = collector();
    cmd.args(["run", "--once", "--batch-rows", "100", "--outbox"])
        .arg(&outbox);
    store.configure(&mut cmd);
    // Batch 3 is the first of PostgreSQL's second round (two batches are
    // written at once there) and the embedded store's third: on both, the
    // first 200 rows are shipped and deleted, the next are committed and
    // not deleted.
    let out = cmd
        .env("XRAY_COLLECTOR_FAULT", "crash-after-commit:3")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the fault must abort the collector");
    let shipped = store.counts();
    assert!(
        shipped.steps > 0,
        "three batches were committed before the crash"
    );
    assert_eq!(
        outbox_rows(&outbox),
        before - 200,
        "the committed rows of the crashed round were not deleted"
    );
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(store.counts(), StoreCounts::for_steps(500));
    assert_eq!(outbox_rows(&outbox), 0);
}

on_both_backends!(
    a_row_the_store_rejects_is_dead_lettered_and_the_rows_behind_it_ship,
    poison_row
);
fn poison_row(store: Target) {
    let (_dir, outbox) = dirs();
    write_steps(&outbox, 0, 50);
    store.append_poison_row(&outbox); // refused by the backend
    support::outbox::append_raw_step(&outbox, "garbled", "ok", "{not json"); // unreadable row
    write_steps(&outbox, 50, 50);
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        store.counts(),
        StoreCounts {
            dead_letters: 2,
            ..StoreCounts::for_steps(100)
        }
    );
    assert_eq!(outbox_rows(&outbox), 0);
    let reasons = store.dead_letter_reasons();
    assert!(
        reasons.iter().any(|r| r.contains("not valid JSON")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("rejected")),
        "{reasons:?}"
    );
}

on_both_backends!(
    a_row_a_users_trigger_refuses_is_dead_lettered_with_its_reason_and_the_rest_ship,
    trigger_refusal
);
fn trigger_refusal(store: Target) {
    let mut migrate = collector();
    migrate.args(["migrate", "up"]);
    store.configure(&mut migrate);
    let out = migrate.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    store.refuse_steps_named("poison", "the trigger refuses poison");

    let (_dir, outbox) = dirs();
    write_steps(&outbox, 0, 40);
    support::outbox::append_raw_step(&outbox, "poison", "ok", "{\"x\":1}");
    write_steps(&outbox, 40, 40);
    let out = run_once(&store, &[&outbox], &["--batch-rows", "500"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        store.counts(),
        StoreCounts {
            dead_letters: 1,
            // The poison step's execution is known only as a placeholder,
            // written with the step and gone with it.
            ..StoreCounts::for_steps(80)
        }
    );
    assert_eq!(store.outputs(), (0..80).collect::<Vec<u64>>());
    assert_eq!(outbox_rows(&outbox), 0);
    let reasons = store.dead_letter_reasons();
    let [reason] = &reasons[..] else {
        panic!("one dead letter expected: {reasons:?}");
    };
    assert!(reason.contains("the trigger refuses poison"), "{reason}");
}

on_both_backends!(
    a_poison_row_of_an_outbox_made_again_at_the_same_path_is_dead_lettered_beside_the_first,
    outbox_made_again
);
fn outbox_made_again(store: Target) {
    let (_dir, outbox) = dirs();
    for round in 0..2 {
        write_steps(&outbox, 10 * round, 3);
        store.append_poison_row(&outbox);
        let out = run_once(&store, &[&outbox], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(outbox_rows(&outbox), 0);
        // Deleted and created again: sequence numbers start over.
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", outbox.display()));
        }
    }
    assert_eq!(
        store.counts(),
        StoreCounts {
            dead_letters: 2,
            ..StoreCounts::for_steps(6)
        }
    );
}

on_both_backends!(
    a_40_mb_row_between_normal_rows_is_dead_lettered_with_its_size_and_the_others_ship,
    oversize_row
);
fn oversize_row(store: Target) {
    let (_dir, outbox) = dirs();
    write_steps(&outbox, 0, 20);
    let huge = format!("\"{}\"", "x".repeat(40_000_000));
    support::outbox::append_raw_step(&outbox, "huge", "ok", &huge);
    write_steps(&outbox, 20, 20);
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        store.counts(),
        StoreCounts {
            dead_letters: 1,
            ..StoreCounts::for_steps(40)
        }
    );
    assert_eq!(outbox_rows(&outbox), 0);
    let reasons = store.dead_letter_reasons();
    assert!(
        reasons[0].contains("the row is 4000")
            && reasons[0].contains("bytes an outbox row may have"),
        "{reasons:?}"
    );
}

on_both_backends!(
    unreadable_outboxes_are_named_and_the_others_keep_shipping,
    unreadable_outboxes
);
fn unreadable_outboxes(store: Target) {
    let (dir, outbox) = dirs();
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
    assert_eq!(store.counts(), StoreCounts::for_steps(20));
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

fn daemon(target: &Target, outbox: &Path, extra: &[&str]) -> Child {
    let mut cmd = collector();
    cmd.arg("run").arg("--outbox").arg(outbox).args(extra);
    target.configure(&mut cmd);
    cmd.stderr(Stdio::null()).spawn().unwrap()
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait().unwrap()
}

on_both_backends!(
    the_daemon_waits_for_an_outbox_that_does_not_exist_yet_and_stops_cleanly_on_sigterm,
    waits_for_outbox
);
fn waits_for_outbox(store: Target) {
    let (_dir, outbox) = dirs();
    let mut child = daemon(&store, &outbox, &[]);
    std::thread::sleep(Duration::from_millis(300));
    write_steps(&outbox, 0, 40);
    wait_until("the steps to arrive", Duration::from_secs(30), || {
        store.counts().steps == 40
    });
    let status = sigterm(&mut child);
    assert!(status.success(), "SIGTERM must exit 0, got {status}");
    assert_eq!(store.counts(), StoreCounts::for_steps(40));
}

/// How many steps `search <word>` finds (up to 100); 0 while the store
/// cannot be read yet (the daemon has not created it).
fn search_hits(target: &Target, word: &str) -> usize {
    let mut cmd = collector();
    cmd.args(["search", word, "--limit", "100", "--json"]);
    target.configure(&mut cmd);
    let out = cmd.output().unwrap();
    if !out.status.success() {
        return 0;
    }
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    found["hits"].as_array().unwrap().len()
}

on_both_backends!(
    the_daemon_makes_what_it_ships_searchable_while_it_runs,
    searchable_while_running
);
fn searchable_while_running(store: Target) {
    let (_dir, outbox) = dirs();
    let mut child = daemon(&store, &outbox, &[]);
    write_steps(&outbox, 0, 40);
    wait_until(
        "the steps to be found by search",
        Duration::from_secs(30),
        || search_hits(&store, "pick") == 40,
    );
    // More while it runs: indexed behind the shipper again.
    write_steps(&outbox, 40, 30);
    wait_until(
        "the later steps to be found",
        Duration::from_secs(30),
        || search_hits(&store, "pick") == 70,
    );
    assert!(sigterm(&mut child).success());
}

/// Steps of `target` with an explanation (`steps.reasoning`).
fn explained(target: &Target) -> i64 {
    target.query_i64(
        "SELECT count(*) FROM steps WHERE reasoning IS NOT NULL",
        "SELECT count(*)::bigint FROM xray.steps WHERE reasoning IS NOT NULL",
    )[0]
}

on_both_backends!(
    the_daemon_explains_the_steps_it_ships_while_it_runs,
    explained_while_running
);
fn explained_while_running(store: Target) {
    let (_dir, outbox) = dirs();
    let mut child = daemon(&store, &outbox, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let shipped = Instant::now();
    write_steps(&outbox, 0, 40);
    // Each step has decisions: each is explained, with no command run.
    wait_until("the steps to be explained", Duration::from_secs(30), || {
        explained(&store) == 40
    });
    eprintln!(
        "40 steps explained {:?} after they were written",
        shipped.elapsed()
    );
    assert!(sigterm(&mut child).success());
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success());
    assert_eq!(explained(&store), 40, "nothing explained twice or lost");
}

on_both_backends!(
    two_collectors_on_one_outbox_ship_every_step_exactly_once,
    two_collectors
);
fn two_collectors(store: Target) {
    let (_dir, outbox) = dirs();
    write_steps(&outbox, 0, 1);
    let mut a = daemon(&store, &outbox, &["--batch-rows", "37"]);
    let mut b = daemon(&store, &outbox, &["--batch-rows", "53"]);
    for round in 0..10 {
        write_steps(&outbox, 1 + round * 100, 100);
    }
    wait_until("every step to arrive", Duration::from_secs(60), || {
        store.counts().steps == 1001
    });
    assert!(sigterm(&mut a).success());
    assert!(sigterm(&mut b).success());
    let out = run_once(&store, &[&outbox], &[]);
    assert!(out.status.success());
    assert_eq!(store.counts(), StoreCounts::for_steps(1001));
}

#[test]
fn writer_child() {
    // Not a test of its own: the body of the writer processes that the
    // SIGKILL scenario re-executes this binary as; a no-op otherwise.
    if std::env::var(WRITER_ROLE).is_ok() {
        writer_child_main();
    }
}

on_both_backends!(
    sigkill_repeatedly_while_several_processes_write_loses_and_duplicates_nothing,
    sigkill_repeatedly
);
fn sigkill_repeatedly(store: Target) {
    let (_dir, outbox) = dirs();
    let name = "writer_child";
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
        store.counts(),
        StoreCounts::for_steps(1200),
        "after {kills} kills"
    );
    let mut want: Vec<u64> = (0..3)
        .flat_map(|i| (i * 100_000)..(i * 100_000 + 400))
        .collect();
    want.sort_unstable();
    assert_eq!(store.outputs(), want, "each step exactly once");
}

on_both_backends!(
    healthz_and_metrics_report_the_daemon_state,
    healthz_and_metrics
);
fn healthz_and_metrics(store: Target) {
    let (_dir, outbox) = dirs();
    write_steps(&outbox, 0, 25);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut child = daemon(&store, &outbox, &["--listen", &addr]);
    wait_until("the steps to arrive", Duration::from_secs(30), || {
        store.counts().steps == 25
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
        "xray_collector_batch_write_seconds_bucket{le=",
        "xray_collector_batch_write_seconds_count",
        "xray_collector_search_index_failures_total 0",
        "xray_collector_search_current_timestamp_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    // The indexer took the 25 steps' notes (their starts' too, if those
    // shipped in an earlier batch) and found the index current.
    wait_until(
        "the indexer to count the steps",
        Duration::from_secs(30),
        || {
            let metrics = support::outbox::http_get(&addr, "/metrics");
            metric(&metrics, "xray_collector_search_indexed_total") >= 25.0
                && metric(&metrics, "xray_collector_search_current_timestamp_seconds") > 0.0
        },
    );
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
        err.starts_with("xray-collector: cannot use the store"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn postgres_stopped_and_restarted_while_the_daemon_runs_loses_nothing_and_health_says_degraded() {
    // A cluster of its own: stopping the shared one would cut off the other tests.
    let cluster = support::pg::LocalCluster::start_new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(cluster.fresh_database());
    let (_dir, outbox) = dirs();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut child = collector()
        .args(["run", "--listen", &addr, "--outbox"])
        .arg(&outbox)
        .env("DATABASE_URL", &db.url)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let steps = || -> i64 {
        rt.block_on(async {
            let client = db.client().await;
            client
                .query_one("SELECT count(*)::bigint FROM xray.steps", &[])
                .await
                .map(|r| r.get(0))
                .unwrap_or(0)
        })
    };
    write_steps(&outbox, 0, 100);
    wait_until("the first steps", Duration::from_secs(30), || {
        steps() == 100
    });

    cluster.stop();
    write_steps(&outbox, 100, 100);
    wait_until("/healthz to say degraded", Duration::from_secs(30), || {
        support::outbox::http_get(&addr, "/healthz").starts_with("HTTP/1.1 503")
    });
    let health = support::outbox::http_get(&addr, "/healthz");
    assert!(health.contains("degraded: backend unavailable"), "{health}");
    assert!(!health.contains(cluster.password()), "{health}");
    assert!(
        outbox_rows(&outbox) > 0,
        "nothing may be deleted while the backend is down"
    );

    cluster.start();
    wait_until(
        "the steps written during the outage",
        Duration::from_secs(60),
        || steps() == 200,
    );
    wait_until("/healthz to recover", Duration::from_secs(30), || {
        support::outbox::http_get(&addr, "/healthz").starts_with("HTTP/1.1 200")
    });
    let metrics = support::outbox::http_get(&addr, "/metrics");
    let retries: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("xray_collector_retries_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("retries counter");
    assert!(retries > 0, "{metrics}");
    assert!(sigterm(&mut child).success());
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        !err.contains(cluster.password()),
        "a password reached the log:\n{err}"
    );
    let mut outputs = Target::outputs_of(&rt, &db);
    outputs.dedup();
    assert_eq!(
        outputs,
        (0..200).collect::<Vec<u64>>(),
        "each step exactly once"
    );
}

#[test]
fn a_wrong_password_is_a_clear_error_that_never_prints_the_password() {
    // A cluster of its own, whose password we know is not this one.
    let cluster = support::pg::LocalCluster::start_new();
    let url = format!(
        "postgres://postgres:Wr0ng-Secret-42@127.0.0.1:{}/postgres",
        cluster.port()
    );
    for args in [&["migrate", "status"][..], &["run", "--once"][..]] {
        let out = collector()
            .args(args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("password authentication failed"), "{err}");
        assert!(err.contains("postgres:***@127.0.0.1"), "{err}");
        assert!(!err.contains("Wr0ng-Secret-42"), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
}

on_both_backends!(migrate_commands_go_up_down_and_up_again_twice, migrate_cli);
fn migrate_cli(store: Target) {
    let migrate = |args: &[&str]| {
        let mut cmd = collector();
        cmd.arg("migrate").args(args);
        store.configure(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "migrate {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(migrate(&["status"]).contains("pending"));
    for _ in 0..2 {
        assert!(migrate(&["up"]).contains("applied 1"));
        let status = migrate(&["status"]);
        assert!(
            status.contains("applied") && !status.contains("pending"),
            "{status}"
        );
        assert!(
            migrate(&[]).contains("schema is up to date"),
            "`migrate` alone means up"
        );
        let all = xray_collector::backend::sqlite::MIGRATIONS
            .len()
            .to_string();
        assert!(migrate(&["down", &all, "--yes"]).contains("reverted 1"));
        assert!(migrate(&["status"]).contains("pending"));
    }
    assert!(migrate(&["up"]).contains("applied 1"));
    // The schema works after all that: a run ships into it.
    let (_dir, outbox) = dirs();
    write_steps(&outbox, 0, 10);
    let out = run_once(&store, &[&outbox], &["--no-migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(store.counts(), StoreCounts::for_steps(10));
}
