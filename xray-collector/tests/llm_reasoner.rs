//! The LLM reasoner through the real binary (`XRAY_REASONER=llm` and the
//! `XRAY_LLM_*` variables), with outboxes written by the real SDK and a
//! local server speaking the real chat-completions protocol: `run --once`
//! and the daemon explain what they ship with the model, the key is never
//! printed or stored, `reason` exits 1 when the model gave up on a job
//! and `reason --retry-failed` runs it again, malformed settings are
//! usage errors naming the variable. The store's side of every answer is
//! in `parity/llm_reasoning.rs`, on both backends.

#[macro_use]
mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::chat::{ChatServer, Reply};
use support::outbox::{metric, write_steps};
use support::target::Target;

const KEY: &str = "sk-cli-test-9f8e7d6c5b4a";

/// The collector with the LLM reasoner pointed at `server`.
fn collector(target: &Target, server: &ChatServer, vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xray-collector"));
    cmd.env_remove("DATABASE_URL")
        .env("XRAY_REASONER", "llm")
        .env("XRAY_LLM_BASE_URL", server.base_url())
        .env("XRAY_LLM_MODEL", "gpt-4o-mini")
        .env("XRAY_LLM_API_KEY", KEY)
        .envs(vars.iter().copied());
    target.configure(&mut cmd);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Steps whose reasoning is the model's (the server's answers start with
/// `prefix`).
fn explained_by(target: &Target, prefix: &str) -> i64 {
    target.query_i64(
        &format!("SELECT count(*) FROM steps WHERE reasoning LIKE '{prefix} %'"),
        &format!("SELECT count(*)::bigint FROM xray.steps WHERE reasoning LIKE '{prefix} %'"),
    )[0]
}

fn assert_no_key(what: &str, bytes: &[u8]) {
    let shown = text(bytes);
    assert!(!shown.contains(KEY), "the key is in {what}");
}

on_both_backends!(
    run_once_explains_what_it_ships_with_the_model_and_never_prints_or_stores_the_key,
    run_once_with_the_model
);
fn run_once_with_the_model(store: Target) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    write_steps(&outbox, 0, 10);
    let server = ChatServer::start(Reply::Explain("Model"));
    let out = collector(&store, &server, &[("RUST_LOG", "debug")])
        .args(["run", "--once", "--outbox"])
        .arg(&outbox)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(explained_by(&store, "Model"), 10, "{}", text(&out.stderr));
    assert_eq!(server.seen().len(), 10);
    assert!(server
        .seen()
        .iter()
        .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {KEY}"))));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("steps are explained by the rules, then by the LLM"),
        "{stderr}"
    );
    assert!(stderr.contains("llm_explained=10"), "{stderr}");
    assert_no_key("stdout", &out.stdout);
    assert_no_key("the debug log", &out.stderr);
    assert_no_key("the store", &store.dump());
}

on_both_backends!(
    the_daemon_replaces_the_rules_text_with_the_models_as_it_ships,
    daemon_with_the_model
);
fn daemon_with_the_model(store: Target) {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    let server = ChatServer::start(Reply::Explain("Model"));
    // The first call is told to come back in a moment: counted as a retry.
    server.then([Reply::Status(429, Some("0"))]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut child: Child = collector(&store, &server, &[])
        .args(["run", "--listen", &addr, "--outbox"])
        .arg(&outbox)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let written = Instant::now();
    write_steps(&outbox, 0, 40);
    let deadline = Duration::from_secs(60);
    while explained_by(&store, "Model") < 40 {
        assert!(
            written.elapsed() < deadline,
            "the model's text did not replace the rules' within {deadline:?}: {} of 40",
            explained_by(&store, "Model")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "40 steps explained by the model {:?} after they were written",
        written.elapsed()
    );
    // What the reasoners did, on /metrics (counted once a pass ends).
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let text = support::outbox::http_get(&addr, "/metrics");
        if metric(&text, "xray_collector_reasoning_llm_explained_total") == 40.0
            || Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (name, value) in [
        ("xray_collector_reasoning_rules_jobs_total", 40.0),
        ("xray_collector_reasoning_llm_explained_total", 40.0),
        ("xray_collector_reasoning_llm_retries_total", 1.0),
        ("xray_collector_reasoning_llm_failed_total", 0.0),
        ("xray_collector_reasoning_llm_prompt_tokens_total", 4000.0),
        (
            "xray_collector_reasoning_llm_completion_tokens_total",
            800.0,
        ),
    ] {
        assert_eq!(metric(&metrics, name), value, "{name} in\n{metrics}");
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    assert_eq!(
        server.seen().len(),
        41,
        "each step asked about once, one twice"
    );
}

fn reason(store: &Target, server: &ChatServer, words: &[&str]) -> Output {
    collector(store, server, &[("XRAY_LLM_MAX_ATTEMPTS", "2")])
        .arg("reason")
        .args(words)
        .output()
        .unwrap()
}

#[test]
fn reason_exits_1_when_the_model_gave_up_and_retry_failed_runs_those_jobs_again() {
    let store = Target::embedded();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.db");
    write_steps(&outbox, 0, 3);
    let server = ChatServer::start(Reply::Status(503, Some("0")));
    // Shipped without a reasoner asked for: the rules explain.
    let shipped = Command::new(env!("CARGO_BIN_EXE_xray-collector"))
        .env_remove("DATABASE_URL")
        .env_remove("XRAY_REASONER")
        .args(["run", "--once", "--outbox"])
        .arg(&outbox)
        .args(store.flags())
        .output()
        .unwrap();
    assert!(shipped.status.success(), "{}", text(&shipped.stderr));

    // Nothing waits: `reason` alone explains nothing.
    let out = reason(&store, &server, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "explained 0 steps (0 of them again)\n\
         the LLM explained 0 of them (0 failed; 0 prompt + 0 completion tokens)\n"
    );

    // The failed ones only: none yet.
    let out = reason(&store, &server, &["--retry-failed"]);
    assert_eq!(
        text(&out.stdout).lines().next(),
        Some("explained 0 steps (0 of them again)")
    );

    // An execution's steps anew, the server failing: the model gives up
    // after two attempts each, the rules text stays, exit 1.
    let execution = store.query_i64("SELECT count(*) FROM executions", "")[0];
    assert_eq!(execution, 3);
    let out = Command::new(env!("CARGO_BIN_EXE_xray-collector"))
        .args(["executions", "--json"])
        .args(store.flags())
        .output()
        .unwrap();
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let first = page["executions"][0]["id"].as_str().unwrap().to_owned();
    let out = reason(&store, &server, &["--execution", &first]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "explained 1 steps (1 of them again)\n\
         the LLM explained 0 of them (1 failed; 0 prompt + 0 completion tokens)\n"
    );
    assert_eq!(server.seen().len(), 2);
    assert_eq!(explained_by(&store, "Model"), 0);
    assert_eq!(
        store.query_i64(
            "SELECT count(*) FROM steps WHERE reasoning LIKE '2 candidates: 1 kept%'",
            ""
        )[0],
        3,
        "the rules text stays"
    );

    // The server well again: the failed job, and only it, runs again.
    server.otherwise(Reply::Explain("Model"));
    let out = reason(&store, &server, &["--retry-failed"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "explained 1 steps (1 of them again)\n\
         the LLM explained 1 of them (0 failed; 100 prompt + 20 completion tokens)\n"
    );
    assert_eq!(explained_by(&store, "Model"), 1);
    assert_no_key("the store", &store.dump());
}

#[test]
fn malformed_reasoner_settings_are_usage_errors_naming_the_variable() {
    let store = Target::embedded();
    let server = ChatServer::start(Reply::Explain("Model"));
    for (vars, named) in [
        (vec![("XRAY_REASONER", "gpt")], "XRAY_REASONER=\"gpt\""),
        (
            vec![("XRAY_LLM_BASE_URL", "")],
            "XRAY_REASONER=llm needs XRAY_LLM_BASE_URL",
        ),
        (
            vec![("XRAY_LLM_MODEL", " ")],
            "XRAY_REASONER=llm needs XRAY_LLM_MODEL",
        ),
        (vec![("XRAY_LLM_TIMEOUT", "forever")], "XRAY_LLM_TIMEOUT"),
        (
            vec![("XRAY_LLM_CONCURRENCY", "0")],
            "XRAY_LLM_CONCURRENCY=\"0\"",
        ),
    ] {
        for command in [&["run", "--once"][..], &["reason"][..]] {
            let out = collector(&store, &server, &vars)
                .args(command)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{vars:?} {command:?}");
            let stderr = text(&out.stderr);
            assert!(stderr.contains(named), "{vars:?} {command:?}: {stderr}");
            assert_no_key("the error", &out.stderr);
        }
    }
    let out = collector(&store, &server, &[("XRAY_REASONER", "off")])
        .arg("reason")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("XRAY_REASONER is off"));
    assert!(server.seen().is_empty());
    assert!(!Path::new(&store.flags()[1]).exists(), "nothing was opened");
}
