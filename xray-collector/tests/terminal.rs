//! Captured text is hostile, and the person reading a trace must not be
//! attacked through it: a real program records terminal escape sequences,
//! C1 controls and bidirectional overrides in every field it can reach,
//! the real binary ships them to each backend, and every reading command's
//! text output — plain and coloured — carries none of them raw, while
//! `--json` carries them exactly, as JSON escapes.

#[macro_use]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::target::Target;
use tracing_subscriber::layer::SubscriberExt;

/// Retitles the window, clears the screen, moves the cursor with a C1 CSI,
/// overwrites with a carriage return and a backspace, rings the bell,
/// reverses the text after it. "pwned" makes it findable by search.
const HOSTILE: &str =
    "pwned\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[31m\u{9b}1;1H\r\u{8}\t\u{7f}\u{85}\u{202e}gpj.exe\u{2066}x\u{2069}";

/// Hostile, on several lines (an error's `source()` chain).
const HOSTILE_LINES: &str =
    "pwned first\u{1b}[2J\ncaused by: \u{1b}]0;x\u{7}\r\ncaused by: \u{202e}end";

#[derive(Debug)]
struct HostileError;

impl std::fmt::Display for HostileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(HOSTILE_LINES)
    }
}

impl std::error::Error for HostileError {}

#[xray::step(
    name = "answer\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}\u{202e}",
    kind = "llm\u{1b}[5m\u{202d}"
)]
fn answer(query: &str) -> String {
    xray::reject(HOSTILE, HOSTILE, HOSTILE);
    xray::accept("kept\u{1b}[8m", "price\u{9b}", "fine\u{202e}");
    xray::score(HOSTILE, 0.5);
    xray::attr("note", HOSTILE);
    xray::llm_usage(HOSTILE, 10, 2);
    format!("{query} {HOSTILE}")
}

#[xray::step(name = "fails\u{1b}[2J")]
fn fails(_query: &str) -> Result<u32, HostileError> {
    Err(HostileError)
}

/// Records one execution with hostile text in every field the SDK takes,
/// and one that panics with a hostile message.
fn record_hostile_run(outbox: &Path) {
    let (layer, guard) = xray::Config::default()
        .outbox(outbox)
        .project(HOSTILE)
        .build()
        .expect("build");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        xray::execution(HOSTILE)
            .metadata("query\u{1b}[2J", HOSTILE)
            .run(|| {
                answer(HOSTILE);
                let _ = fails(HOSTILE);
            });
        let panicked = std::panic::catch_unwind(|| {
            xray::execution("panics").run(|| panic!("{HOSTILE_LINES}"));
        });
        assert!(panicked.is_err());
    });
    guard.flush().expect("flush");
}

fn collector(target: &Target) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("XRAY_COLLECTOR_FAULT")
        .env_remove("CLICOLOR_FORCE")
        .env("NO_COLOR", "1");
    target.configure(&mut cmd);
    cmd
}

fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const NONE: [char; 0] = [];

/// What a terminal would act on: a C0 control other than the line feed
/// (ESC included), DEL, a C1 control, a bidirectional override or isolate.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

/// `text` without the colour sequences the renderer itself writes
/// (`ESC [ <digits and ;> m`), which must be all the ESCs it holds.
fn without_colour(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\u{1b}[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let params = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        if after[params..].starts_with('m') {
            rest = &after[params + 1..];
        } else {
            // Not a colour: keep it, for the check to find.
            out.push_str("\u{1b}[");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

on_both_backends!(
    hostile_captured_text_reaches_no_terminal_raw,
    hostile_text_is_escaped
);
fn hostile_text_is_escaped(target: Target) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    record_hostile_run(&outbox);
    ok(
        collector(&target)
            .args(["run", "--once", "--outbox"])
            .arg(&outbox)
            .output()
            .unwrap(),
        "run --once",
    );
    let page: serde_json::Value = serde_json::from_slice(&ok(
        collector(&target)
            .args(["executions", "--json"])
            .output()
            .unwrap(),
        "executions --json",
    ))
    .unwrap();
    let hostile_id = page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == HOSTILE)
        .expect("the hostile execution")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let commands: Vec<Vec<&str>> = vec![
        vec!["executions"],
        vec!["executions", "--name", HOSTILE],
        vec!["show", &hostile_id],
        vec!["show", &hostile_id, "--full"],
        vec!["show", "latest", "--full"],
        vec!["why", &hostile_id, HOSTILE],
        vec!["why", &hostile_id, "kept\u{1b}[8m"],
        vec!["why", &hostile_id, "unknown\u{1b}[2J\u{202e}"],
        vec!["search", "pwned"],
        vec!["search", "nothing\u{1b}[2J\u{9b}\u{202e}matches"],
        vec!["stats"],
    ];
    for args in &commands {
        let what = format!("{args:?}");
        let plain = String::from_utf8(ok(collector(&target).args(args).output().unwrap(), &what))
            .expect("UTF-8");
        assert_eq!(raw_controls(&plain), NONE, "{what}:\n{plain}");
        assert!(!plain.is_empty(), "{what}");

        let coloured = collector(&target)
            .env_remove("NO_COLOR")
            .env("CLICOLOR_FORCE", "1")
            .args(args)
            .output()
            .unwrap();
        let coloured = String::from_utf8(ok(coloured, &what)).expect("UTF-8");
        assert_eq!(
            raw_controls(&without_colour(&coloured)),
            NONE,
            "{what}, coloured:\n{coloured:?}"
        );
    }

    // What the reader sees is what was captured, spelt out.
    let tree = String::from_utf8(ok(
        collector(&target)
            .args(["show", &hostile_id, "--full"])
            .output()
            .unwrap(),
        "show --full",
    ))
    .unwrap();
    for spelt in [
        "answer\\x1b]0;owned\\x07\\x1b[2J\\u{9b}\\u{202e}",
        "[llm\\x1b[5m\\u{202d}]",
        "pwned first\\x1b[2J",
        "caused by: \\x1b]0;x\\x07",
        "caused by: \\u{202e}end",
        "rejected by pwned\\x1b]0;owned\\x07",
        "\\r\\x08\\t\\x7f\\u{85}\\u{202e}gpj.exe\\u{2066}x\\u{2069}",
    ] {
        assert!(tree.contains(spelt), "{spelt:?} in:\n{tree}");
    }

    // --json keeps every value exact, as JSON escapes: no raw control.
    for args in [
        vec!["executions", "--json"],
        vec!["show", &hostile_id, "--json"],
        vec!["why", &hostile_id, HOSTILE, "--json"],
        vec!["search", "pwned", "--json"],
        vec!["stats", "--json"],
    ] {
        let what = format!("{args:?}");
        let text = String::from_utf8(ok(collector(&target).args(&args).output().unwrap(), &what))
            .expect("UTF-8");
        assert_eq!(raw_controls(&text), NONE, "{what}:\n{text}");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert!(
            doc.to_string()
                .contains(&serde_json::to_string(HOSTILE).unwrap()[1..20]),
            "{what}: the value survives"
        );
    }
    let detail: serde_json::Value = serde_json::from_slice(&ok(
        collector(&target)
            .args(["show", &hostile_id, "--json"])
            .output()
            .unwrap(),
        "show --json",
    ))
    .unwrap();
    assert_eq!(detail["name"], HOSTILE);
    assert_eq!(detail["project"], HOSTILE);
    assert_eq!(detail["metadata"]["query\u{1b}[2J"], HOSTILE);
    let answer = &detail["steps"][0];
    assert_eq!(answer["decisions"][0]["candidate_id"], HOSTILE);
    assert_eq!(answer["decisions"][0]["reason"], HOSTILE);
    assert_eq!(answer["llm_usage"][0]["model"], HOSTILE);
}
