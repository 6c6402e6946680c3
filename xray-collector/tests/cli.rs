//! The query commands through the real binary: `--json` documents, plain
//! text when piped, and bad input as a one-line error with a non-zero exit
//! (2 for a usage error, 1 for a failure), never a panic.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::outbox::write_steps;
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
