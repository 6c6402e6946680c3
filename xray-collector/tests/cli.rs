//! The query commands through the real binary: `--json` documents, plain
//! text when piped, and bad input as a one-line error with a non-zero exit
//! (2 for a usage error, 1 for a failure), never a panic.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::outbox::{outbox_rows, write_steps};
use support::target::Target;

fn collector(target: &Target) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("XRAY_COLLECTOR_FAULT").env("NO_COLOR", "1");
    target.configure(&mut cmd);
    cmd
}

fn run(target: &Target, args: &[&str]) -> Output {
    collector(target).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// Ships 3 executions (outputs 0, 1, 2) into the target.
fn populate(target: &Target, outbox: &Path) {
    write_steps(outbox, 0, 3);
    let mut cmd = collector(target);
    let out = cmd
        .args(["run", "--once", "--outbox"])
        .arg(outbox)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("xray-collector: ") || err.starts_with("error: "),
        "{err}"
    );
    assert!(err.contains(needle), "expected {needle:?} in {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn every_command_answers_json_and_refuses_bad_input(target: Target) {
    let dir = tempfile::tempdir().unwrap();
    populate(&target, &dir.path().join("outbox.db"));

    let page = json(&run(&target, &["executions", "--json", "--limit", "2"]));
    assert_eq!(page["executions"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a cursor after a full page")
        .to_owned();
    let rest = json(&run(
        &target,
        &["executions", "--json", "--limit", "2", "--cursor", &cursor],
    ));
    assert_eq!(rest["executions"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let text = stdout(&run(&target, &["executions", "--limit", "2"]));
    assert!(
        text.contains(&format!("next page: --cursor {cursor}")),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no colour when piped: {text:?}");

    let latest = json(&run(&target, &["show", "latest", "--json"]));
    let id = latest["id"].as_str().unwrap().to_owned();
    assert_eq!(latest["steps"][0]["name"], "pick");
    let tree = stdout(&run(&target, &["show", &id]));
    assert!(tree.contains("└─ pick [filter] ok"), "{tree}");
    assert!(
        tree.contains("decisions: 2 candidates: 1 accepted, 1 rejected by price"),
        "{tree}"
    );
    let full = stdout(&run(&target, &["show", &id, "--full"]));
    assert!(
        full.contains("too dear"),
        "--full lists each decision: {full}"
    );

    let why = json(&run(&target, &["why", &id, "d2", "--json"]));
    assert_eq!(why["decisions"][0]["filter"], "price");
    assert_eq!(why["decisions"][0]["accepted"], false);
    let why_text = stdout(&run(&target, &["why", &id, "d2"]));
    assert!(
        why_text.contains("pick rejected by price: too dear"),
        "{why_text}"
    );

    let found = json(&run(&target, &["search", "pick", "--json"]));
    assert_eq!(found["hits"].as_array().unwrap().len(), 3);
    let stats = json(&run(&target, &["stats", "--json", "--since", "1h"]));
    assert_eq!(stats["steps"][0]["name"], "pick");
    assert_eq!(stats["steps"][0]["count"], 3);
    assert_eq!(stats["models"][0]["prompt_tokens"], 30);

    // Bad input, command by command.
    assert_one_line_error(
        &run(&target, &["executions", "--since", "yesterday"]),
        2,
        "--since: invalid time",
    );
    assert_one_line_error(
        &run(&target, &["executions", "--until", "2026-13-01T00:00:00Z"]),
        2,
        "invalid time",
    );
    assert_one_line_error(
        &run(&target, &["executions", "--cursor", "garbage"]),
        2,
        "--cursor: invalid cursor \"garbage\"",
    );
    assert_one_line_error(&run(&target, &["executions", "--limit", "0"]), 2, "--limit");
    assert_one_line_error(
        &run(&target, &["executions", "--status", "weird"]),
        2,
        "--status",
    );
    assert_one_line_error(
        &run(&target, &["show", "not-a-uuid"]),
        2,
        "invalid execution id",
    );
    assert_one_line_error(
        &run(&target, &["show", "01a1fc8e-2d94-7345-9a71-dd660b44daf3"]),
        1,
        "no execution 01a1fc8e-2d94-7345-9a71-dd660b44daf3",
    );
    assert_one_line_error(
        &run(&target, &["why", "nope", "d2"]),
        2,
        "invalid execution id",
    );
    assert_one_line_error(
        &run(
            &target,
            &["why", "01a1fc8e-2d94-7345-9a71-dd660b44daf3", "d2"],
        ),
        1,
        "no execution",
    );
    assert_one_line_error(&run(&target, &["search", "  "]), 2, "search text is empty");
    assert_one_line_error(
        &run(&target, &["stats", "--since", "5 parsecs"]),
        2,
        "invalid time",
    );
    assert_one_line_error(
        &run(&target, &["show"]),
        2,
        "required arguments were not provided: <EXECUTION>",
    );
}

#[test]
fn every_command_answers_json_and_refuses_bad_input_on_the_embedded_store() {
    every_command_answers_json_and_refuses_bad_input(Target::embedded());
}

#[test]
fn every_command_answers_json_and_refuses_bad_input_on_postgresql() {
    every_command_answers_json_and_refuses_bad_input(Target::postgres());
}

#[test]
fn an_empty_store_answers_with_nothing_and_latest_is_a_clear_error() {
    let target = Target::embedded();
    let made = run(&target, &["migrate", "up"]);
    assert!(made.status.success(), "{}", stderr(&made));
    let page = json(&run(&target, &["executions", "--json"]));
    assert_eq!(page["executions"].as_array().unwrap().len(), 0);
    assert_eq!(stdout(&run(&target, &["executions"])), "no executions\n");
    assert_one_line_error(
        &run(&target, &["show", "latest"]),
        1,
        "no executions recorded yet",
    );
}

#[test]
fn an_unreachable_database_is_a_one_line_error_without_the_password() {
    let target = Target::embedded();
    for args in [
        &["executions"][..],
        &["show", "latest"],
        &["why", "latest", "x"],
        &["search", "x"],
        &["stats"],
    ] {
        let out = collector(&target)
            .args(args)
            .env(
                "DATABASE_URL",
                "postgres://xray:S3cret-pw@127.0.0.1:1/xray?connect_timeout=2",
            )
            .output()
            .unwrap();
        assert_one_line_error(&out, 1, "cannot use postgres://xray:***@127.0.0.1:1/xray");
        assert!(!stderr(&out).contains("S3cret-pw"));
    }
}

#[test]
fn a_database_url_given_as_a_flag_is_scrubbed_from_json_log_lines() {
    let target = Target::embedded();
    let url = "postgres://xray:Fl4g-S3cret@127.0.0.1:1/xray?connect_timeout=2";
    for args in [
        &["executions", "--database-url", url][..],
        &[
            "--database-url",
            url,
            "--log-format",
            "json",
            "show",
            "latest",
        ],
        &[
            "migrate",
            "status",
            "--log-format",
            "json",
            "--database-url",
            url,
        ],
    ] {
        let out = collector(&target).args(args).output().unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("Fl4g-S3cret"), "{err}");
        assert!(err.contains("xray:***@127.0.0.1:1"), "{err}");
        if args.contains(&"json") {
            for line in err.lines() {
                let event: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
                assert_eq!(event["level"], "ERROR", "{line}");
            }
        }
    }
}

/// The reading commands, and the ones that write, each pointed at a store.
const EVERY_STORE_COMMAND: &[&[&str]] = &[
    &["executions"],
    &["show", "latest"],
    &["why", "latest", "x"],
    &["search", "x"],
    &["stats"],
    &["migrate", "status"],
    &["migrate", "up"],
    &["run", "--once", "--no-migrate"],
    &["run", "--once"],
];

fn with_store(store: &Path, args: &[&str], outbox: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("XRAY_COLLECTOR_FAULT")
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .env("XRAY_OUTBOX", outbox)
        .args(args)
        .arg("--store")
        .arg(store);
    cmd.output().unwrap()
}

/// The bytes of each file.
fn contents(files: &[&Path]) -> Vec<Vec<u8>> {
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[test]
fn a_foreign_sqlite_file_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let outbox_dir = tempfile::tempdir().unwrap();
    let outbox = outbox_dir.path().join("outbox.db");
    write_steps(&outbox, 0, 1);
    let waiting = outbox_rows(&outbox);
    let app = dir.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&app).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO users (name) VALUES ('ada'), ('grace');",
        )
        .unwrap();
    }
    let stamped = dir.path().join("stamped.db");
    {
        let conn = rusqlite::Connection::open(&stamped).unwrap();
        conn.execute_batch("PRAGMA application_id = 1234; CREATE TABLE t (x);")
            .unwrap();
    }
    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "not a database at all, but long enough to look at: ".repeat(10),
    )
    .unwrap();
    let foreign_outbox = dir.path().join("outbox.db");
    write_steps(&foreign_outbox, 0, 1);
    let files = [app.as_path(), &stamped, &text, &foreign_outbox];
    let before = contents(&files);
    for (file, why) in [
        (&app, "it holds tables of something else: users"),
        (&stamped, "its application_id is 0x4d2"),
        (&text, "not an SQLite database"),
        (&foreign_outbox, "it is an X-Ray outbox"),
    ] {
        for args in EVERY_STORE_COMMAND {
            let out = with_store(file, args, &outbox);
            let name = file.display().to_string();
            assert_one_line_error(&out, 1, &format!("{name} is not an X-Ray store ({why}"));
            assert!(
                stderr(&out).contains("nothing in it was changed"),
                "{}",
                stderr(&out)
            );
            assert!(
                contents(&files) == before,
                "{args:?} on {name} changed a file"
            );
            // Not switched to WAL: SQLite would have made these.
            for suffix in ["-wal", "-shm"] {
                let mut side = app.clone().into_os_string();
                side.push(suffix);
                assert!(!Path::new(&side).exists(), "{args:?} on {name}: {side:?}");
            }
        }
    }
    assert_eq!(
        outbox_rows(&outbox),
        waiting,
        "nothing was shipped anywhere"
    );
}

#[test]
fn reading_a_missing_store_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("typo/xray.db");
    for args in &EVERY_STORE_COMMAND[..5] {
        for json in [false, true] {
            let mut args = args.to_vec();
            if json {
                args.push("--json");
            }
            let out = with_store(&store, &args, &dir.path().join("outbox.db"));
            assert_one_line_error(
                &out,
                1,
                &format!(
                    "no store at {}: nothing was shipped there yet",
                    store.display()
                ),
            );
            assert!(!store.parent().unwrap().exists(), "{args:?} created it");
        }
    }
}

#[test]
fn a_store_from_before_application_ids_opens_and_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    write_steps(&outbox, 0, 2);
    let store = dir.path().join("xray.db");
    let shipped = with_store(&store, &["run", "--once"], &outbox);
    assert!(shipped.status.success(), "{}", stderr(&shipped));
    let application_id = || -> i64 {
        rusqlite::Connection::open(&store)
            .unwrap()
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        application_id(),
        xray_collector::backend::sqlite::APPLICATION_ID
    );
    // As stores were before: the same tables, no application id.
    rusqlite::Connection::open(&store)
        .unwrap()
        .execute_batch("PRAGMA application_id = 0")
        .unwrap();
    let listed = with_store(&store, &["executions", "--json"], &outbox);
    let page = json(&listed);
    assert_eq!(page["executions"].as_array().unwrap().len(), 2);
    assert_eq!(
        application_id(),
        xray_collector::backend::sqlite::APPLICATION_ID
    );
}
