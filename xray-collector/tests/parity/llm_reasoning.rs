//! The LLM reasoner (`XRAY_REASONER=llm`) on both backends, against a
//! local server speaking the real chat-completions protocol
//! ([`ChatServer`]): the rules text first, the model's in its place with
//! its tokens and cost; 429 with `Retry-After`, 500 until the job fails
//! (the rules text kept) and `--retry-failed`, a timeout and malformed
//! answers retried, a refusal failing at once without the key anywhere;
//! jobs held by one collector never taken by another.

use std::time::Duration;

use uuid::Uuid;
use xray_collector::backend::{AfterRules, QueryStore, Reasoning, Store};
use xray_collector::reason::config::Reasoner;
use xray_collector::reasoning::{self, Explained, LlmSummary, Reasoners};
use xray_collector::{cost, indexing};

use crate::backend::Backend;
use crate::support::chat::{ChatServer, Reply, USAGE};
use crate::support::records::{execution, filter_step, id, step};

on_both_backends!(
    migrated: the_llm_text_replaces_the_rules_text_with_its_tokens_and_cost,
    a_job_that_keeps_failing_ends_failed_with_the_rules_text_kept_until_retried,
    a_429_is_waited_out_as_long_as_retry_after_says,
    a_timeout_and_malformed_answers_are_tried_again,
    a_refused_call_fails_the_job_at_once_and_the_key_is_nowhere,
    jobs_left_for_the_llm_are_completed_by_the_rules_when_switched_back,
    a_held_job_is_not_taken_again_until_its_claim_runs_out,
    no_more_calls_are_in_flight_than_the_concurrency_allows
);

const KEY: &str = "sk-test-0123456789abcdef";
const MODEL: &str = "gpt-4o-mini";
const RULES_TEXT: &str =
    "2 candidates: 1 kept; rejected 1 by price (too expensive). scored 1: c2 ranked first (0.9)";

/// The LLM reasoner against `server`, with these variables too.
fn llm(server: &ChatServer, vars: &[(&str, &str)]) -> Reasoners {
    let base = server.base_url();
    let mut all = vec![
        ("XRAY_REASONER", "llm"),
        ("XRAY_LLM_BASE_URL", base.as_str()),
        ("XRAY_LLM_MODEL", MODEL),
        ("XRAY_LLM_API_KEY", KEY),
    ];
    all.extend_from_slice(vars);
    let reasoner = Reasoner::resolve(|name| {
        all.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .unwrap();
    Reasoners::new(reasoner).unwrap()
}

/// An execution with a filter step (id 1) and, with `failed`, a step that
/// failed (id 2), shipped and indexed; the built-in prices in the store.
async fn shipped(db: &Backend, failed: bool) -> Uuid {
    db.store.set_model_prices(&cost::built_in()).await.unwrap();
    let e = id(100);
    let mut records = vec![execution(e).record(), filter_step(id(1), e).at(1).record()];
    if failed {
        records.push(
            step(id(2), e)
                .name("search")
                .status("error")
                .error("search timed out")
                .at(2)
                .record(),
        );
    }
    db.store.write(&records).await.unwrap();
    indexing::catch_up(&db.store).await.unwrap();
    e
}

async fn reasoning_of(db: &Backend, execution: Uuid) -> Vec<Option<String>> {
    let detail = db.store.execution(execution).await.unwrap().unwrap();
    detail.steps.into_iter().map(|s| s.reasoning).collect()
}

fn completed_by_llm(attempts: u32) -> String {
    format!("completed llm {attempts} {MODEL} {} {} -", USAGE.0, USAGE.1)
}

async fn the_llm_text_replaces_the_rules_text_with_its_tokens_and_cost(db: Backend) {
    let e = shipped(&db, true).await;
    let server = ChatServer::start(Reply::Explain("Because"));
    let reasoners = llm(&server, &[]);

    let done = reasoners.catch_up(&db.store).await.unwrap();
    assert_eq!(
        done,
        Explained {
            by_rules: 2,
            llm: LlmSummary {
                explained: 2,
                prompt_tokens: 2 * USAGE.0 as u64,
                completion_tokens: 2 * USAGE.1 as u64,
                ..LlmSummary::default()
            },
        }
    );
    assert_eq!(
        reasoning_of(&db, e).await,
        [
            Some("Because filter_candidates".to_owned()),
            Some("Because search".to_owned())
        ]
    );
    assert_eq!(
        db.llm_jobs().await,
        [completed_by_llm(1), completed_by_llm(1)]
    );
    // gpt-4o-mini at the built-in $0.15 / $0.60 per million tokens.
    let expected = (USAGE.0 as f64 * 0.15 + USAGE.1 as f64 * 0.60) / 1e6;
    for cost in db.llm_job_costs().await {
        let cost = cost.expect("a priced model has a cost");
        assert!((cost - expected).abs() < 1e-12, "{cost} vs {expected}");
    }
    // Read back with the step, as show, the API and the UI have it.
    let step = &db.store.execution(e).await.unwrap().unwrap().steps[0];
    let job = step.reasoning_job.as_ref().unwrap();
    assert_eq!(
        (
            job.status.as_str(),
            job.method.as_str(),
            job.model.as_deref()
        ),
        ("completed", "llm", Some(MODEL))
    );
    assert_eq!(
        (job.prompt_tokens, job.completion_tokens),
        (Some(USAGE.0), Some(USAGE.1))
    );
    assert!((job.cost_usd.unwrap() - expected).abs() < 1e-12, "{job:?}");

    // What the model was told: the step, the rules text written first,
    // the key in the header.
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for request in &seen {
        assert_eq!(
            request.authorization.as_deref(),
            Some(&*format!("Bearer {KEY}"))
        );
        assert_eq!(request.body["model"], MODEL);
        assert_eq!(request.body["messages"][0]["role"], "system");
        assert_eq!(request.body["messages"][1]["role"], "user");
    }
    let mut prompts: Vec<&str> = seen.iter().map(|r| r.prompt()).collect();
    prompts.sort();
    assert!(prompts[0].starts_with("Step: filter_candidates (kind: filter)\nStatus: ok"));
    assert!(
        prompts[0].contains(&format!("Summary by rules: {RULES_TEXT}")),
        "{}",
        prompts[0]
    );
    assert!(
        prompts[0].contains("- c1 rejected by price: too expensive"),
        "{}",
        prompts[0]
    );
    assert!(prompts[1].starts_with("Step: search\nStatus: error"));
    assert!(
        prompts[1].contains("Error: search timed out"),
        "{}",
        prompts[1]
    );

    // Nothing is left to do, nothing is asked again.
    assert_eq!(
        reasoners.catch_up(&db.store).await.unwrap(),
        Explained::default()
    );
    assert_eq!(server.seen().len(), 2);
}

async fn a_job_that_keeps_failing_ends_failed_with_the_rules_text_kept_until_retried(db: Backend) {
    let e = shipped(&db, false).await;
    let server = ChatServer::start(Reply::Status(500, None));
    let reasoners = llm(&server, &[("XRAY_LLM_MAX_ATTEMPTS", "3")]);

    let done = reasoners.catch_up(&db.store).await.unwrap();
    assert_eq!(
        done.llm,
        LlmSummary {
            retried: 2,
            failed: 1,
            ..LlmSummary::default()
        }
    );
    assert_eq!(server.seen().len(), 3, "three attempts, then no more");
    let jobs = db.llm_jobs().await;
    assert!(
        jobs[0].starts_with("failed rules 3 - -1 -1 HTTP 500: ")
            && jobs[0].ends_with("(gave up after 3 attempts)"),
        "{jobs:?}"
    );
    assert_eq!(reasoning_of(&db, e).await, [Some(RULES_TEXT.to_owned())]);

    // `reason --retry-failed`, the server well again.
    server.otherwise(Reply::Explain("Now"));
    assert_eq!(db.store.requeue_reasoning(None, true).await.unwrap(), 1);
    let again = reasoners.catch_up(&db.store).await.unwrap();
    assert_eq!((again.by_rules, again.llm.explained), (1, 1));
    assert_eq!(
        reasoning_of(&db, e).await,
        [Some("Now filter_candidates".to_owned())]
    );
    assert_eq!(db.llm_jobs().await, [completed_by_llm(1)]);
}

async fn a_429_is_waited_out_as_long_as_retry_after_says(db: Backend) {
    let e = shipped(&db, false).await;
    let server = ChatServer::start(Reply::Explain("Later"));
    server.then([Reply::Status(429, Some("2"))]);
    let reasoners = llm(&server, &[]);

    let done = reasoners.catch_up(&db.store).await.unwrap();
    assert_eq!((done.llm.explained, done.llm.retried), (1, 1));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    // Not sooner than the server asked (a little slack for the store's
    // clock and the server's being read at different moments).
    assert!(waited >= Duration::from_millis(1_950), "{waited:?}");
    assert_eq!(
        reasoning_of(&db, e).await,
        [Some("Later filter_candidates".to_owned())]
    );
    assert_eq!(db.llm_jobs().await, [completed_by_llm(2)]);
}

async fn a_timeout_and_malformed_answers_are_tried_again(db: Backend) {
    let e = shipped(&db, false).await;
    let server = ChatServer::start(Reply::Explain("Finally"));
    server.then([
        Reply::Slow(Duration::from_secs(4)),
        Reply::Raw("<html>bad gateway</html>"),
        Reply::Raw(r#"{"choices": []}"#),
    ]);
    let reasoners = llm(&server, &[("XRAY_LLM_TIMEOUT", "1s")]);

    let done = reasoners.catch_up(&db.store).await.unwrap();
    assert_eq!((done.llm.explained, done.llm.retried), (1, 3));
    assert_eq!(server.seen().len(), 4);
    assert_eq!(
        reasoning_of(&db, e).await,
        [Some("Finally filter_candidates".to_owned())]
    );
    assert_eq!(db.llm_jobs().await, [completed_by_llm(4)]);
}

async fn a_refused_call_fails_the_job_at_once_and_the_key_is_nowhere(db: Backend) {
    let e = shipped(&db, false).await;
    // The server echoes the key it got in its 401 answer.
    let server = ChatServer::start(Reply::Status(401, None));
    let reasoners = llm(&server, &[]);

    let done = reasoners.catch_up(&db.store).await.unwrap();
    assert_eq!(done.llm.failed, 1);
    assert_eq!(server.seen().len(), 1, "a refusal is not retried");
    let jobs = db.llm_jobs().await;
    assert!(
        jobs[0].starts_with("failed rules 1 - -1 -1 HTTP 401: ")
            && jobs[0].contains("[redacted]")
            && jobs[0].ends_with("(check XRAY_LLM_API_KEY)"),
        "{jobs:?}"
    );
    assert_eq!(reasoning_of(&db, e).await, [Some(RULES_TEXT.to_owned())]);
    let everything = format!("{:?} {:?}", db.snapshot().await, db.llm_jobs().await);
    assert!(!everything.contains(KEY), "the key was stored");
    assert!(
        !everything.contains("0123456789abcdef"),
        "part of the key was stored"
    );
}

async fn jobs_left_for_the_llm_are_completed_by_the_rules_when_switched_back(db: Backend) {
    let e = shipped(&db, true).await;
    assert_eq!(
        reasoning::rules_pass(&db.store, AfterRules::AwaitLlm)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        db.llm_jobs().await,
        ["pending rules 0 - -1 -1 -", "pending rules 0 - -1 -1 -"]
    );
    let backlog = db.store.llm_backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.processing), (2, 0));
    assert!(backlog
        .next_due_in
        .is_some_and(|d| d <= Duration::from_secs(1)));
    assert_eq!(reasoning_of(&db, e).await[0].as_deref(), Some(RULES_TEXT));

    assert_eq!(reasoning::catch_up(&db.store).await.unwrap(), 2);
    assert_eq!(
        db.llm_jobs().await,
        ["completed rules 1 - -1 -1 -", "completed rules 1 - -1 -1 -"]
    );
    assert_eq!(db.store.llm_backlog().await.unwrap().pending, 0);
}

async fn a_held_job_is_not_taken_again_until_its_claim_runs_out(db: Backend) {
    let e = id(100);
    let mut records = vec![execution(e).record()];
    records.extend((1..=10).map(|i| filter_step(id(i), e).at(i as i64).record()));
    db.store.write(&records).await.unwrap();
    indexing::catch_up(&db.store).await.unwrap();
    reasoning::rules_pass(&db.store, AfterRules::AwaitLlm)
        .await
        .unwrap();

    // Two collectors at once: each job to one of them.
    let other = db.another_store().await;
    let hold = Duration::from_secs(600);
    let (a, b) = tokio::join!(
        db.store.take_llm_jobs(6, hold),
        other.take_llm_jobs(6, hold)
    );
    let mut taken: Vec<Uuid> = a.unwrap().iter().chain(&b.unwrap()).map(|j| j.id).collect();
    assert_eq!(taken.len(), 10, "{taken:?}");
    taken.sort();
    taken.dedup();
    assert_eq!(taken.len(), 10, "a job was taken twice");
    assert!(db.store.take_llm_jobs(10, hold).await.unwrap().is_empty());
    let backlog = db.store.llm_backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.processing), (0, 10));

    // A claim that ran out (its collector died) is taken again, with the
    // step as the prompt needs it.
    let jobs = db.store.take_llm_jobs(3, Duration::ZERO).await;
    assert!(jobs.unwrap().is_empty(), "held for ten minutes");
    db.execute(db.either(
        "UPDATE reasoning_jobs SET next_attempt_at_us = 0",
        "UPDATE {xray}reasoning_jobs SET next_attempt_at = now() - interval '1 second'",
    ))
    .await;
    let again = db.store.take_llm_jobs(3, hold).await.unwrap();
    assert_eq!(again.len(), 3);
    let job = &again[0];
    assert_eq!(job.attempts, 0);
    assert_eq!(job.step.name, "filter_candidates");
    assert_eq!(job.step.decisions.len(), 2);
    assert_eq!(job.step.reasoning.as_deref(), Some(RULES_TEXT));
    assert!(job.step.input.is_some() && job.step.output.is_some());
}

async fn no_more_calls_are_in_flight_than_the_concurrency_allows(db: Backend) {
    let e = id(100);
    let mut records = vec![execution(e).record()];
    records.extend((1..=6).map(|i| filter_step(id(i), e).at(i as i64).record()));
    db.store.write(&records).await.unwrap();
    indexing::catch_up(&db.store).await.unwrap();
    let server = ChatServer::start(Reply::Slow(Duration::from_millis(300)));
    let reasoners = llm(&server, &[("XRAY_LLM_CONCURRENCY", "2")]);

    let done = reasoners.catch_up(&db.store).await.unwrap();
    assert_eq!(done.llm.explained, 6);
    assert_eq!(server.most_at_once(), 2, "two calls at once, never more");
    assert!(reasoning_of(&db, e)
        .await
        .iter()
        .all(|text| text.as_deref() == Some("slow filter_candidates")));
}
