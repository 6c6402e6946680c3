//! The query commands through the real binary: `--json` documents, plain
//! text when piped, and bad input as a one-line error with a non-zero exit
//! (2 for a usage error, 1 for a failure), never a panic.

#[macro_use]
mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::outbox::{outbox_rows, write_steps};
use support::records::{self, execution, filter_step, step, T0};
use support::target::Target;
use uuid::Uuid;
use xray_collector::backend::{AnyStore, Migrations, QueryStore, Store};
use xray_collector::model::ShipRecord;

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
    // `run --once` explained the step: `why` carries and prints its
    // reasoning as `show` does.
    let reasoning = latest["steps"][0]["reasoning"]
        .as_str()
        .expect("run --once explains a step with decisions");
    assert_eq!(why["decisions"][0]["reasoning"], reasoning, "{why}");
    assert_eq!(why["decisions"][0]["reasoning_job"]["status"], "completed");
    assert_eq!(why["decisions"][0]["reasoning_job"]["method"], "rules");
    assert!(
        why_text.contains(&format!(
            "too dear\n     why: {}\n",
            reasoning.lines().next().unwrap()
        )),
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
    for bad in ["0d", "yesterday", "-3d", "30", "2026-11-01T00:00:00Z"] {
        assert_one_line_error(
            &run(&target, &["prune", &format!("--older-than={bad}")]),
            2,
            "invalid duration",
        );
    }
    assert_one_line_error(&run(&target, &["prune"]), 2, "--older-than");
    let dry = json(&run(
        &target,
        &["prune", "--older-than", "30d", "--dry-run", "--json"],
    ));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["executions"], 0, "everything is newer: {dry}");
    assert!(dry["started_before"].is_string(), "{dry}");
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
    &["prune", "--older-than", "30d"],
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
    for args in &EVERY_STORE_COMMAND[..6] {
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

/// Opens the target's store as the collector does.
async fn open_store(target: &Target) -> AnyStore {
    match target {
        Target::Embedded { path, .. } => AnyStore::sqlite(path).await,
        Target::Postgres { db, .. } => AnyStore::postgres(&db.url).await,
    }
    .unwrap()
}

/// Writes `records` straight into the target's store (migrated first).
fn seed(target: &Target, records: &[ShipRecord]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = open_store(target).await;
        store.migrate_up().await.unwrap();
        for batch in records.chunks(5000) {
            store.write(batch).await.unwrap();
        }
    });
}

/// An execution of three top-level steps `r0..r2`, each with two children
/// `c00..c21`, each with two children `g000..g211` (21 steps), started
/// level by level, so that start order is not tree order; `g000` carries a
/// payload of every kind.
fn seed_three_levels(target: &Target) -> Uuid {
    let exec = records::new_id();
    let mut steps = Vec::new();
    let mut at = T0 + 1_000;
    let mut next_at = || {
        at += 10;
        at
    };
    let roots: Vec<(String, Uuid)> = (0..3)
        .map(|i| (format!("r{i}"), records::new_id()))
        .collect();
    for (name, id) in &roots {
        steps.push(step(*id, exec).name(name).at(next_at()).record());
    }
    let mut children = Vec::new();
    for (name, parent) in &roots {
        for j in 0..2 {
            let child = (format!("c{}{j}", &name[1..]), records::new_id());
            steps.push(
                step(child.1, exec)
                    .name(&child.0)
                    .parent(*parent)
                    .at(next_at())
                    .record(),
            );
            children.push(child);
        }
    }
    for (name, parent) in &children {
        for k in 0..2 {
            let id = records::new_id();
            let grandchild = if name == "c00" && k == 0 {
                filter_step(id, exec)
            } else {
                step(id, exec)
            };
            steps.push(
                grandchild
                    .name(&format!("g{}{k}", &name[1..]))
                    .parent(*parent)
                    .at(next_at())
                    .record(),
            );
        }
    }
    let mut all = vec![execution(exec).record()];
    all.extend(steps);
    seed(target, &all);
    exec
}

/// The tree lines of a `show` (a branch, then the name), and its last line.
fn tree_lines(text: &str) -> (Vec<String>, String) {
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("├─ ") || l.contains("└─ "))
        .map(|l| l.split(" ok ").next().unwrap().to_owned())
        .collect();
    (lines, text.lines().last().unwrap_or_default().to_owned())
}

fn show_cuts_the_tree_at_a_depth_and_after_a_number_of_steps_and_says_so(target: Target) {
    let exec = seed_three_levels(&target);
    let id = exec.to_string();
    let show = |extra: &[&str]| {
        let mut args = vec!["show", id.as_str()];
        args.extend(extra);
        let out = run(&target, &args);
        assert!(out.status.success(), "{extra:?}: {}", stderr(&out));
        stdout(&out)
    };

    let whole = show(&[]);
    let (lines, last) = tree_lines(&whole);
    assert_eq!(lines.len(), 21, "{whole}");
    assert!(!whole.contains("not shown"), "{whole}");
    assert!(last.contains("└─ g211"), "{whole}");
    assert_eq!(show(&["--limit", "21"]), whole, "a limit that cuts nothing");
    assert_eq!(show(&["--depth", "3"]), whole, "a depth that cuts nothing");

    let (lines, last) = tree_lines(&show(&["--limit", "5"]));
    assert_eq!(
        lines,
        [
            "├─ r0",
            "│  ├─ c00",
            "│  │  ├─ g000 [filter]",
            "│  │  └─ g001",
            "│  └─ c01",
        ]
    );
    assert_eq!(last, "… 16 more steps not shown (--limit 5)");

    let (lines, last) = tree_lines(&show(&["--depth", "1"]));
    assert_eq!(lines, ["├─ r0", "├─ r1", "└─ r2"]);
    assert_eq!(last, "… 18 more steps not shown (--depth 1)");

    let (lines, last) = tree_lines(&show(&["--depth", "2", "--limit", "4"]));
    assert_eq!(lines, ["├─ r0", "│  ├─ c00", "│  └─ c01", "├─ r1"]);
    assert_eq!(last, "… 17 more steps not shown (--depth 2, --limit 4)");

    let (_, last) = tree_lines(&show(&["--limit", "20"]));
    assert_eq!(last, "… 1 more step not shown (--limit 20)");

    // --json: the same cut, the steps kept in start order.
    let names = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["show", id.as_str(), "--json"];
        args.extend(extra);
        json(&run(&target, &args))["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&["--limit", "5"]),
        ["r0", "c00", "c01", "g000", "g001"]
    );
    assert_eq!(names(&["--depth", "1"]), ["r0", "r1", "r2"]);
    assert_eq!(names(&["--depth", "3"]).len(), 21);
}

on_both_backends!(
    show_cuts,
    show_cuts_the_tree_at_a_depth_and_after_a_number_of_steps_and_says_so
);

fn show_json_is_the_whole_execution_document_byte_for_byte(target: Target) {
    let exec = seed_three_levels(&target);
    let out = run(&target, &["show", &exec.to_string(), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let whole = rt.block_on(async { open_store(&target).await.execution(exec).await.unwrap() });
    let expected = xray_collector::render::to_json(&whole.unwrap()).unwrap();
    assert_eq!(stdout(&out), format!("{expected}\n"));
    let doc = json(&out);
    assert_eq!(doc["steps"].as_array().unwrap().len(), 21);
    assert_eq!(doc["metadata"]["sku"], "A-1");
    let g000 = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "g000")
        .unwrap();
    assert_eq!(g000["decisions"][0]["candidate_id"], "c1");
    assert_eq!(g000["llm_usage"][0]["model"], "gpt-x");
}

on_both_backends!(
    show_json,
    show_json_is_the_whole_execution_document_byte_for_byte
);

#[test]
fn show_refuses_a_depth_or_limit_that_is_not_a_count_of_one_or_more() {
    let target = Target::embedded();
    let exec = seed_three_levels(&target);
    let id = exec.to_string();
    for flag in ["--depth", "--limit"] {
        for bad in ["0", "two", "1.5", ""] {
            assert_one_line_error(&run(&target, &["show", &id, flag, bad]), 2, flag);
        }
        assert_one_line_error(&run(&target, &["show", &id, flag]), 2, flag);
    }
}

/// Steps in the deep chain.
const CHAIN: usize = 20_000;

/// An execution whose steps `s0..` each run inside the one before.
fn seed_chain(target: &Target) -> Uuid {
    let exec = records::new_id();
    let mut all = vec![execution(exec).record()];
    let mut parent = None;
    for i in 0..CHAIN {
        let id = records::new_id();
        let mut s = step(id, exec)
            .name(&format!("s{i}"))
            .at(T0 + 1_000 + i as i64);
        if let Some(p) = parent {
            s = s.parent(p);
        }
        all.push(s.record());
        parent = Some(id);
    }
    seed(target, &all);
    exec
}

#[test]
fn a_chain_of_twenty_thousand_nested_steps_is_shown_without_overflowing_the_stack() {
    let target = Target::embedded();
    let id = seed_chain(&target).to_string();

    // The whole tree, read as it streams (its indentation alone is
    // hundreds of megabytes).
    let mut child = collector(&target)
        .args(["show", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut depth = 0;
    let mut last = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(at) = line.find("└─ ") {
            assert_eq!(at, 3 * depth, "step {depth} is indented under its parent");
            assert!(
                line[at..].starts_with(&format!("└─ s{depth} ok")),
                "{}",
                &line[at..]
            );
            depth += 1;
        }
        last = line;
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(depth, CHAIN);
    assert!(!last.contains("not shown"));

    let out = run(&target, &["show", &id, "--limit", "3"]);
    let (lines, last) = tree_lines(&stdout(&out));
    assert_eq!(lines, ["└─ s0", "   └─ s1", "      └─ s2"]);
    assert_eq!(
        last,
        format!("… {} more steps not shown (--limit 3)", CHAIN - 3)
    );

    let text = stdout(&run(&target, &["show", &id, "--depth", "2000"]));
    let (lines, last) = tree_lines(&text);
    assert_eq!(lines.len(), 2000);
    assert_eq!(lines[1999], format!("{}└─ s1999", " ".repeat(3 * 1999)));
    assert_eq!(
        last,
        format!("… {} more steps not shown (--depth 2000)", CHAIN - 2000)
    );

    let whole = json(&run(&target, &["show", &id, "--json"]));
    assert_eq!(whole["steps"].as_array().unwrap().len(), CHAIN);
    let walked = json(&run(&target, &["show", &id, "--json", "--depth", "20000"]));
    assert_eq!(
        walked, whole,
        "a cut that keeps everything keeps the document"
    );
}

on_both_backends!(
    run_with_retention_ships_then_prunes_what_is_older,
    retention_scenario
);
fn retention_scenario(target: Target) {
    // An execution from 2023 already stored, and new ones in the outbox.
    let old = records::new_id();
    seed(
        &target,
        &[
            execution(old).record(),
            filter_step(records::new_id(), old).record(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    write_steps(&outbox, 0, 3);
    let out = run(
        &target,
        &[
            "run",
            "--once",
            "--retention",
            "30d",
            "--outbox",
            outbox.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("pruned 1 execution started before"),
        "the prune is logged: {}",
        stderr(&out)
    );
    let left = json(&run(&target, &["executions", "--json"]));
    let ids: Vec<&str> = left["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "the shipped ones stay: {left}");
    assert!(!ids.contains(&old.to_string().as_str()), "{left}");
    let counts = target.counts();
    // Two decisions and one LLM call per shipped step; the old step's are gone.
    assert_eq!(
        (counts.steps, counts.decisions, counts.llm_usage),
        (3, 6, 3)
    );
}
