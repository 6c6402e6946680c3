//! `import FILE [--project P] [--dry-run]` through the real binary on both
//! backends: good, already-present and broken entries, ids derived so that
//! a second import changes nothing, reasoning and project kept, a dry run
//! that writes nothing, a file that is not JSON.

#[macro_use]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::target::Target;

/// `xray-collector <words>` on `target`.
fn cli(target: &Target, words: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("DATABASE_URL").args(words);
    target.configure(&mut cmd);
    cmd.output().expect("run the collector")
}

fn import(target: &Target, file: &Path, extra: &[&str]) -> Output {
    let mut words = vec!["import", file.to_str().unwrap()];
    words.extend(extra);
    cli(target, &words)
}

/// `show <id> --json` on `target`.
fn shown(target: &Target, id: &str) -> serde_json::Value {
    serde_json::from_slice(&cli(target, &["show", id, "--json"]).stdout).unwrap()
}

/// [`SEED_ERA`] in a file of its own.
fn seed_era_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("xray-data.json");
    std::fs::write(&file, SEED_ERA).unwrap();
    (dir, file)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two good entries (one with a non-UUID id, steps, reasoning, an error;
/// one with a UUID id and times in ms), four broken ones.
const SEED_ERA: &str = r#"{"executions": [
 {"executionId": "exec-1", "projectId": "movies", "metadata": {"user": "u1"},
  "finalOutcome": {"picked": "Heat"},
  "startedAt": "2025-01-02T10:00:00Z", "completedAt": "2025-01-02T10:00:05Z",
  "steps": [{"name": "generate_keywords", "input": {"q": "crime"}, "output": ["heat"],
             "durationMs": 120, "reasoning": "picked crime keywords"},
            {"name": "search", "error": "timeout", "durationMs": 2000}]},
 {"executionId": "0190a8c4-0000-7000-8000-000000000042", "startedAt": 1735812000000,
  "completedAt": 1735812000100, "steps": []},
 {"executionId": "exec-3", "steps": []},
 {"executionId": "exec-4", "startedAt": "yesterday", "steps": []},
 "not an object",
 {"executionId": "exec-6", "startedAt": "2025-01-02T10:00:00Z", "steps": [{"input": 1}]}
], "version": 2}"#;

on_both_backends!(
    a_seed_era_file_imports_twice_with_the_same_result_and_names_each_refused_entry,
    imports_twice
);
fn imports_twice(store: Target) {
    let (_dir, file) = seed_era_file();

    let first = import(&store, &file, &[]);
    assert_eq!(first.status.code(), Some(1), "an entry was refused");
    let text = stdout(&first);
    for line in [
        "entry 2 refused: missing field `startedAt`",
        "entry 3 refused: startedAt \"yesterday\" is not an RFC 3339 time",
        "entry 4 refused: invalid type: string \"not an object\"",
        "entry 5 refused: missing field `name`",
        "imported 2 executions (2 steps); 0 already present; 4 refused (of 6 entries)",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    let counts = store.counts();
    assert_eq!((counts.executions, counts.steps), (2, 2));
    let before = store.dump();

    let second = import(&store, &file, &[]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stdout(&second).contains("imported 0 executions (0 steps); 2 already present; 4 refused"),
        "{}",
        stdout(&second)
    );
    assert_eq!(store.dump(), before, "a second import changes nothing");

    // Project, durations, the error and the reasoning are kept; the UUID
    // id is kept as it is.
    let page: serde_json::Value = serde_json::from_slice(
        &cli(&store, &["executions", "--project", "movies", "--json"]).stdout,
    )
    .unwrap();
    let e = shown(&store, page["executions"][0]["id"].as_str().unwrap());
    assert_eq!(e["status"], "error", "{e:#}");
    assert_eq!(e["metadata"]["user"], "u1");
    assert_eq!(e["outcome"]["picked"], "Heat");
    let steps = e["steps"].as_array().unwrap();
    assert_eq!(steps[0]["name"], "generate_keywords");
    assert_eq!(steps[0]["duration_us"], 120_000);
    assert_eq!(steps[0]["reasoning"], "picked crime keywords");
    assert_eq!(steps[1]["error"], "timeout");
    assert_eq!(steps[1]["status"], "error");
    // The second starts where the first ended.
    assert_eq!(
        steps[1]["started_at_us"].as_i64().unwrap() - steps[0]["started_at_us"].as_i64().unwrap(),
        120_000
    );
    let kept = shown(&store, "0190a8c4-0000-7000-8000-000000000042");
    assert_eq!(kept["project"], "default");
    assert_eq!(kept["status"], "ok");
}

on_both_backends!(
    a_dry_run_counts_what_it_would_import_and_writes_nothing,
    dry_run
);
fn dry_run(store: Target) {
    let (_dir, file) = seed_era_file();
    let out = import(&store, &file, &["--dry-run", "--project", "seed"]);
    assert!(
        stdout(&out).contains("would import 2 executions (2 steps); 0 already present; 4 refused"),
        "{}",
        stdout(&out)
    );
    assert_eq!(store.counts().executions, 0);
}

on_both_backends!(
    a_clean_file_exits_0_and_a_file_that_is_not_json_is_a_clear_error,
    clean_and_garbage
);
fn clean_and_garbage(store: Target) {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.json");
    std::fs::write(
        &clean,
        r#"[{"executionId": 7, "startedAt": "2025-01-01T00:00:00Z", "steps": [{"name": "only"}]}]"#,
    )
    .unwrap();
    let out = import(&store, &clean, &["--project", "p"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("imported 1 executions (1 steps)"),
        "{}",
        stdout(&out)
    );
    let garbage = dir.path().join("garbage.json");
    std::fs::write(
        &garbage,
        "{\"executions\": [{\"executionId\": \"a\", \"startedAt\": 1}, {\"bro",
    )
    .unwrap();
    let out = import(&store, &garbage, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("garbage.json") && err.contains("not the earlier X-Ray's JSON"),
        "{err}"
    );
    let missing = import(&store, &dir.path().join("nope.json"), &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.json"));
}

#[test]
fn a_large_file_is_imported_as_a_stream_with_a_progress_line_every_10000_entries() {
    let store = Target::embedded();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("large.json");
    // 20 000 entries of two steps each, one refused in the middle, two
    // repeating an execution.
    let mut text = String::from("[");
    for i in 0..20_000 {
        if i > 0 {
            text.push(',');
        }
        if i == 12_345 {
            text.push_str(r#"{"executionId": "broken", "steps": []}"#);
            continue;
        }
        // Entry 3 repeats entry 2 (in the same batch), the last one entry 5
        // (written batches before).
        let execution = match i {
            3 => 2,
            19_999 => 5,
            i => i,
        };
        let entry = serde_json::json!({
            "executionId": format!("exec-{execution}"),
            "startedAt": format!("2025-01-02T10:{:02}:{:02}Z", (i / 60) % 60, i % 60),
            "steps": [
                {"name": "generate_keywords", "input": {"q": "a heist movie"}, "output": ["heist"],
                 "durationMs": 120, "reasoning": "picked from the query"},
                {"name": "search", "error": "timeout", "durationMs": 2000}
            ]
        });
        text.push_str(&entry.to_string());
    }
    text.push(']');
    std::fs::write(&file, text).unwrap();

    let out = import(&store, &file, &["--project", "bulk"]);
    assert_eq!(out.status.code(), Some(1), "one entry was refused");
    assert_eq!(
        stdout(&out),
        "entry 12345 refused: missing field `startedAt`\n\
         imported 19997 executions (39994 steps); 2 already present; 1 refused (of 20000 entries)\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in ["10000 entries read", "20000 entries read"] {
        assert!(stderr.contains(line), "{line:?} in {stderr}");
    }
    let counts = store.counts();
    assert_eq!((counts.executions, counts.steps), (19_997, 39_994));
}
