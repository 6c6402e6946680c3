//! Every line of the CLI block of the contract (`../shared/DESIGN.md`, "The
//! collector and the backend") run as written, with real values, on both
//! backends. The backend is given as flags — after the subcommand's own
//! words, as the contract writes `migrate up --database-url URL`, and once
//! before them — with nothing in the environment to fall back on.
//!
//! Lines of commands that later work adds (`import`, `reason`,
//! `run --otlp-endpoint`) join this test with the commands.

#[macro_use]
mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::otlp::Phoenix;
use support::outbox::write_steps;
use support::target::Target;

/// The OTLP receiver `run --otlp-endpoint` sends to (one for both backends).
fn receiver() -> &'static Phoenix {
    static RECEIVER: std::sync::OnceLock<Phoenix> = std::sync::OnceLock::new();
    RECEIVER.get_or_init(Phoenix::start)
}

/// `xray-collector <args>` in `dir`, with no backend, outbox or log
/// settings in the environment.
fn collector(dir: &Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xray-collector"))
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("XRAY_STORE")
        .env_remove("XRAY_OUTBOX")
        .env_remove("XRAY_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .env_remove("XRAY_COLLECTOR_FAULT")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .expect("run the collector")
}

/// `words` followed by the backend flags.
fn line(words: &[&str], target: &Target) -> Vec<String> {
    let mut args: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
    args.extend(target.flags());
    args
}

fn ok(out: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn json(out: Output, what: &str) -> serde_json::Value {
    let text = ok(out, what);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

on_both_backends!(every_cli_line_of_the_contract_works_as_written, contract);
fn contract(target: Target) {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let run = |words: &[&str]| collector(cwd, &line(words, &target));

    // xray-collector migrate [up | down [N] [--yes] | status] [--database-url URL]
    let status = ok(run(&["migrate", "status"]), "migrate status");
    assert!(status.contains("pending"), "{status}");
    let up = ok(run(&["migrate", "up"]), "migrate up");
    assert!(up.contains("applied 1"), "{up}");

    let refused = run(&["migrate", "down"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "down without --yes: {err}");
    assert!(err.contains("--yes"), "{err}");
    let status = ok(run(&["migrate", "status"]), "migrate status");
    assert!(
        status.contains("applied") && !status.contains("pending"),
        "nothing was reverted: {status}"
    );
    let down = ok(
        run(&["migrate", "down", "1", "--yes"]),
        "migrate down 1 --yes",
    );
    // The newest migration only.
    let newest = xray_collector::backend::sqlite::MIGRATIONS.len();
    assert_eq!(down.trim(), format!("reverted {newest}"), "{down}");
    let mut before: Vec<String> = target.flags();
    before.extend(["migrate".into(), "status".into()]);
    let status = ok(collector(cwd, &before), "--database-url URL migrate status");
    assert!(status.contains("pending"), "{status}");
    ok(run(&["migrate", "up"]), "migrate up");

    // xray-collector run [--outbox PATH]… [--database-url URL] [--once] [--listen 127.0.0.1:9464]
    //                    [--otlp-endpoint URL] [--retention 30d] [--log-format text|json]
    let (a, b) = (cwd.join("a/outbox.db"), cwd.join("b/outbox.db"));
    std::fs::create_dir_all(a.parent().unwrap()).unwrap();
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    write_steps(&a, 0, 3);
    write_steps(&b, 3, 2);
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let shipped = run(&[
        "run",
        "--outbox",
        &a,
        "--outbox",
        &b,
        "--once",
        "--listen",
        "127.0.0.1:0",
        "--otlp-endpoint",
        &receiver().endpoint(),
        "--retention",
        "30d",
        "--log-format",
        "json",
    ]);
    let log = String::from_utf8_lossy(&shipped.stderr).into_owned();
    assert!(shipped.status.success(), "run: {log}");
    assert!(!log.trim().is_empty(), "run logs what it did");
    let mut exported = None;
    for l in log.lines() {
        let event: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"));
        assert!(event["level"].is_string(), "{l}");
        exported = exported.or(event["spans"].as_u64());
    }
    assert_eq!(target.counts().steps, 5, "{log}");
    // The OTLP receiver took all of them: five executions, five steps.
    assert_eq!(exported, Some(10), "{log}");

    // xray-collector executions [--project P] [--name N] [--status S]
    //                           [--since 1h] [--limit N] [--cursor C] [--json]
    let filters = [
        "executions",
        "--project",
        "default",
        "--name",
        "ship-test",
        "--status",
        "ok",
        "--since",
        "1h",
        "--limit",
        "2",
    ];
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut words = filters.to_vec();
        if let Some(c) = &cursor {
            words.extend(["--cursor", c.as_str()]);
        }
        words.push("--json");
        let page = json(run(&words), "executions");
        for e in page["executions"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");

    // xray-collector show <execution-id | latest> [--json]
    let id = seen[0].clone();
    let shown = json(run(&["show", &id, "--json"]), "show <id>");
    assert_eq!(shown["id"], id.as_str());
    assert_eq!(shown["steps"][0]["name"], "pick");
    let latest = json(run(&["show", "latest", "--json"]), "show latest");
    assert_eq!(latest["id"], id.as_str(), "the newest is listed first");

    // xray-collector why <execution-id> <candidate-id> [--json]
    let output = shown["steps"][0]["output"].as_u64().unwrap();
    let candidate = format!("d{output}");
    let why = json(run(&["why", &id, &candidate, "--json"]), "why");
    assert_eq!(why["decisions"][0]["filter"], "price");
    assert_eq!(why["decisions"][0]["accepted"], false);

    // xray-collector search <text> [--json]
    let found = json(run(&["search", "pick", "--json"]), "search");
    assert_eq!(found["hits"].as_array().unwrap().len(), 5);

    // xray-collector stats [--since …] [--name …] [--json]
    let stats = json(
        run(&["stats", "--since", "1h", "--name", "pick", "--json"]),
        "stats",
    );
    assert_eq!(stats["steps"][0]["name"], "pick");
    assert_eq!(stats["steps"][0]["count"], 5);

    // xray-collector serve [--listen 127.0.0.1:7373] [--read-token TOKEN]
    let help = ok(run(&["serve", "--help"]), "serve --help");
    assert!(
        help.contains("127.0.0.1:7373"),
        "the default address: {help}"
    );
    let refused = run(&["serve", "--listen", "0.0.0.0:0"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "non-loopback without a token: {err}"
    );
    assert!(err.contains("--read-token"), "{err}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_xray-collector"))
        .current_dir(cwd)
        .env_remove("DATABASE_URL")
        .env_remove("XRAY_STORE")
        .env_remove("XRAY_READ_TOKEN")
        .args(line(
            &["serve", "--listen", "127.0.0.1:0", "--read-token", "TOKEN"],
            &target,
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start serve");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let address = first
        .trim()
        .strip_prefix("serving http://")
        .unwrap_or_else(|| panic!("serve prints its address first: {first:?}"))
        .to_owned();
    let without = http_get(&address, "/api/v1/executions", None);
    let with = http_get(&address, "/api/v1/executions?limit=10", Some("TOKEN"));
    let _ = server.kill();
    let _ = server.wait();
    assert!(without.starts_with("HTTP/1.1 401"), "{without}");
    assert!(with.starts_with("HTTP/1.1 200"), "{with}");
    let body = with.split("\r\n\r\n").nth(1).unwrap_or_default();
    let page: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(page["executions"].as_array().unwrap().len(), 5, "{body}");

    // xray-collector reason [--execution ID] [--retry-failed]
    // (`run --once` explained the five steps, each with decisions.)
    let nothing = ok(run(&["reason"]), "reason");
    assert_eq!(nothing.trim(), "explained 0 steps (0 of them again)");
    let page: serde_json::Value = serde_json::from_str(&ok(
        run(&["executions", "--limit", "1", "--json"]),
        "executions --json",
    ))
    .unwrap();
    let id = page["executions"][0]["id"].as_str().unwrap().to_owned();
    let again = ok(run(&["reason", "--execution", &id]), "reason --execution");
    assert_eq!(again.trim(), "explained 1 steps (1 of them again)");
    let failed = ok(
        run(&["reason", "--execution", &id, "--retry-failed"]),
        "reason --execution --retry-failed",
    );
    assert_eq!(failed.trim(), "explained 0 steps (0 of them again)");

    // xray-collector prune --older-than 30d [--project P] [--dry-run]
    let kept = ok(
        run(&[
            "prune",
            "--older-than",
            "30d",
            "--project",
            "default",
            "--dry-run",
        ]),
        "prune --dry-run",
    );
    assert!(kept.starts_with("would prune 0 executions"), "{kept}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let dry = ok(
        run(&[
            "prune",
            "--older-than",
            "1s",
            "--project",
            "default",
            "--dry-run",
        ]),
        "prune --dry-run",
    );
    assert!(dry.starts_with("would prune 5 executions"), "{dry}");
    assert!(dry.contains("5 steps"), "{dry}");
    assert_eq!(target.counts().executions, 5, "a dry run changes nothing");
    let other = ok(
        run(&["prune", "--older-than", "1s", "--project", "elsewhere"]),
        "prune --project",
    );
    assert!(other.starts_with("pruned 0 executions"), "{other}");
    let pruned = ok(
        run(&["prune", "--older-than", "1s", "--project", "default"]),
        "prune",
    );
    assert!(pruned.starts_with("pruned 5 executions"), "{pruned}");
    let left = target.counts();
    assert_eq!(
        (left.executions, left.steps, left.decisions),
        (0, 0, 0),
        "{pruned}"
    );

    // xray-collector import <file.json> [--project P] [--dry-run]
    let file = cwd.join("xray-data.json");
    std::fs::write(
        &file,
        r#"[{"executionId": "seed-1", "startedAt": "2025-01-02T10:00:00Z",
             "completedAt": "2025-01-02T10:00:01Z", "steps": [{"name": "rank", "durationMs": 5}]}]"#,
    )
    .unwrap();
    let file = file.display().to_string();
    let dry = ok(
        run(&["import", &file, "--project", "seed", "--dry-run"]),
        "import --dry-run",
    );
    assert!(dry.contains("would import 1 executions (1 steps)"), "{dry}");
    assert_eq!(target.counts().executions, 0, "a dry run changes nothing");
    let imported = ok(run(&["import", &file, "--project", "seed"]), "import");
    assert!(
        imported.contains("imported 1 executions (1 steps)"),
        "{imported}"
    );
    assert_eq!(target.counts().steps, 1);
}

/// One HTTP/1.1 GET over a plain socket: the whole answer as text.
fn http_get(address: &str, path: &str, token: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect to serve");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The subcommands and options of the CLI block of `../shared/DESIGN.md`,
/// a line (with its continuation lines) each.
fn design_cli_lines() -> Vec<(String, Vec<String>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/DESIGN.md");
    let design = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the contract lives in ../shared beside the repository)",
            path.display()
        )
    });
    let section = design
        .split("## The collector and the backend (contract)")
        .nth(1)
        .expect("the collector's contract section");
    let block = section.split("```").nth(1).expect("its CLI block");
    let mut lines: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let options = words
            .iter()
            .flat_map(|w| w.split('|'))
            .map(|w| w.trim_matches(|c: char| "[]…".contains(c)))
            .filter(|w| w.starts_with("--"))
            .map(str::to_owned);
        match words.first() {
            Some(&"xray-collector") => lines.push((words[1].to_owned(), options.collect())),
            Some(_) => lines.last_mut().expect("a first line").1.extend(options),
            None => {}
        }
    }
    lines
}

/// What later issues add, and which: not runnable yet, so not in
/// [`contract`]. Each is checked to be absent still, so that building one
/// makes this test say to add its line above.
const NOT_BUILT_YET: &[(&str, &str, &str)] = &[];

/// What [`contract`] runs, per subcommand.
const RUN_ABOVE: &[(&str, &[&str])] = &[
    (
        "run",
        &[
            "--outbox",
            "--database-url",
            "--once",
            "--listen",
            "--otlp-endpoint",
            "--retention",
            "--log-format",
        ],
    ),
    ("migrate", &["--yes", "--database-url"]),
    (
        "executions",
        &[
            "--project",
            "--name",
            "--status",
            "--since",
            "--limit",
            "--cursor",
            "--json",
        ],
    ),
    ("show", &["--json"]),
    ("why", &["--json"]),
    ("search", &["--json"]),
    ("stats", &["--since", "--name", "--json"]),
    ("serve", &["--listen", "--read-token"]),
    ("prune", &["--older-than", "--project", "--dry-run"]),
    ("import", &["--project", "--dry-run"]),
    ("reason", &["--execution", "--retry-failed"]),
];

#[test]
fn the_contract_test_runs_every_cli_line_of_the_design_that_exists() {
    let dir = tempfile::tempdir().unwrap();
    for (command, options) in design_cli_lines() {
        let pending: Vec<&(&str, &str, &str)> =
            NOT_BUILT_YET.iter().filter(|p| p.0 == command).collect();
        let help = collector(dir.path(), &[command.clone(), "--help".into()]);
        if let Some((_, _, issue)) = pending.iter().find(|p| p.1.is_empty()) {
            assert!(
                !help.status.success(),
                "`{command}` exists now ({issue}): add its DESIGN.md line to `contract`"
            );
            continue;
        }
        let mut help = ok(help, &format!("{command} --help"));
        if command == "migrate" {
            // `--yes` belongs to `migrate down`.
            let down = ["migrate", "down", "--help"].map(String::from);
            help.push_str(&ok(collector(dir.path(), &down), "migrate down --help"));
        }
        let covered = RUN_ABOVE
            .iter()
            .find(|(c, _)| *c == command)
            .unwrap_or_else(|| {
                panic!("DESIGN.md has `xray-collector {command}`: run it in `contract`")
            })
            .1;
        for option in options {
            if let Some((_, _, issue)) = pending.iter().find(|p| p.1 == option) {
                assert!(
                    !help.contains(&option),
                    "`{command} {option}` exists now ({issue}): run it in `contract`"
                );
                continue;
            }
            assert!(
                covered.contains(&option.as_str()),
                "DESIGN.md has `{command} … {option}`: run it in `contract`"
            );
            assert!(help.contains(&option), "`{command} --help` lacks {option}");
        }
    }
}
