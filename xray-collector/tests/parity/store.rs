//! Writing ([`Store`]): idempotent upserts, the start/end rule,
//! placeholders, rejected records, dead letters and cascades.

use serde_json::{json, Value};
use uuid::Uuid;
use xray_collector::backend::storable::MAX_KEY_BYTES;
use xray_collector::backend::{DeadLetter, Migrations, QueryStore, Store, StoreError};
use xray_collector::model::ShipRecord;

use crate::backend::Backend;
use crate::support::records::{
    decision, execution, filter_step, new_id, step, usage, EXECUTION_TOOK_US, MS, T0,
};

on_both_backends!(
    migrated: writing_the_same_records_twice_changes_nothing,
    a_start_arriving_after_the_end_does_not_regress_the_row,
    an_end_keeps_what_only_the_start_carried,
    a_step_before_its_execution_gets_a_placeholder_that_the_execution_replaces,
    a_record_the_schema_refuses_is_rejected_with_its_whole_batch,
    dead_letters_are_stored_once_by_outbox_and_seq_even_with_nul_characters,
    dead_letters_of_two_outbox_files_at_one_path_with_one_seq_are_both_kept,
    deleting_an_execution_deletes_its_steps_decisions_usage_and_search_hits,
    a_large_batch_is_written_in_one_go,
    values_postgresql_cannot_hold_are_stored_in_one_flagged_form_on_both_backends,
    trace_and_span_ids_are_stored_derived_or_as_the_trace_continued,
    a_steps_reasoning_is_kept_when_it_is_shipped_again_without_one,
    llm_usage_is_priced_when_written_and_an_unknown_model_has_no_cost,
);

on_both_backends!(unmigrated: writing_before_migrating_is_a_schema_error_not_a_rejection);
on_both_backends!(migrated: rows_stored_before_trace_context_get_their_derived_ids_from_its_migration);

// Drift: the embedded store's schema has `CHECK (length(name) > 0)` on
// executions and steps; PostgreSQL's 0001 migration has no such check, and
// adding one needs a migration of its own (0001 is checksummed).
on_the_embedded_store_until_postgres_matches!(migrated: a_record_with_an_empty_name_is_rejected);

/// A refusal by a CHECK constraint: rejected, not retried, and worded as
/// the database words it.
fn assert_refused_by_a_check(db: &Backend, err: &StoreError) {
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert!(!err.is_retriable());
    assert!(err.to_string().contains(db.check_violation()), "{err}");
}

async fn writing_the_same_records_twice_changes_nothing(db: Backend) {
    let (e, s1, s2) = (new_id(), new_id(), new_id());
    let batch = [
        execution(e).running().seq(1).record(),
        filter_step(s1, e).running().seq(2).record(),
        filter_step(s2, e).running().seq(3).record(),
        filter_step(s1, e).seq(4).record(),
        filter_step(s2, e).status("error").seq(5).record(),
        execution(e).seq(6).record(),
    ];
    db.store.write(&batch).await.unwrap();
    db.store
        .dead_letter(&[DeadLetter {
            outbox_id: Uuid::from_u128(7),
            outbox: "/tmp/outbox.db".into(),
            seq: 7,
            record: json!({"bad": true}),
            reason: "refused".into(),
        }])
        .await
        .unwrap();
    let first = db.snapshot().await;
    for (table, rows) in [
        ("executions", 1),
        ("steps", 2),
        ("decisions", 4),
        ("llm_usage", 2),
        ("dead_letters", 1),
    ] {
        assert_eq!(db.count(table).await, rows, "{table}");
    }

    db.store.write(&batch).await.unwrap();
    for record in &batch {
        db.store.write(std::slice::from_ref(record)).await.unwrap();
    }
    assert_eq!(db.snapshot().await, first);
    // Timestamps are exact to the microsecond.
    assert_eq!(db.stored_step_start_us(s1).await, T0 + MS);
}

async fn a_start_arriving_after_the_end_does_not_regress_the_row(db: Backend) {
    let (e, s) = (new_id(), new_id());
    db.store
        .write(&[
            execution(e).status("error").seq(10).record(),
            filter_step(s, e).seq(11).record(),
        ])
        .await
        .unwrap();
    // In a later batch, and in the same batch after the end.
    db.store
        .write(&[
            filter_step(s, e).running().seq(2).record(),
            execution(e).running().seq(1).record(),
        ])
        .await
        .unwrap();
    db.store
        .write(&[
            filter_step(s, e).seq(11).record(),
            filter_step(s, e).running().seq(2).record(),
            execution(e).running().seq(1).record(),
        ])
        .await
        .unwrap();

    let detail = db.store.execution(e).await.unwrap().expect("stored");
    assert_eq!(
        (detail.summary.name.as_str(), detail.summary.status.as_str()),
        ("pick_competitor", "error")
    );
    assert!(!db.is_placeholder(e).await);
    assert_eq!(
        detail.summary.ended_at_us,
        Some(T0 + EXECUTION_TOOK_US),
        "the execution keeps its end"
    );
    assert_eq!(detail.error.as_deref(), Some("it broke"));
    let [stored] = &detail.steps[..] else {
        panic!("one step expected: {:?}", detail.steps);
    };
    assert_eq!(
        (stored.status.as_str(), stored.duration_us),
        ("ok", Some(2_500))
    );
    assert_eq!(
        stored.output,
        Some(json!({"kept": ["c2"], "note": "walrus"}))
    );
    assert_eq!(stored.decisions.len(), 2);
}

async fn an_end_keeps_what_only_the_start_carried(db: Backend) {
    let (e, s) = (new_id(), new_id());
    let input = json!({"candidates": ["c1"]});
    db.store
        .write(&[
            execution(e).running().seq(1).record(),
            step(s, e).input(input.clone()).running().seq(2).record(),
        ])
        .await
        .unwrap();
    db.store
        .write(&[
            step(s, e).seq(3).record(),
            execution(e).metadata(None).seq(4).record(),
        ])
        .await
        .unwrap();
    let detail = db.store.execution(e).await.unwrap().expect("stored");
    assert_eq!(detail.metadata, Some(json!({"sku": "A-1"})));
    assert_eq!(detail.steps[0].input, Some(input));
}

async fn a_step_before_its_execution_gets_a_placeholder_that_the_execution_replaces(db: Backend) {
    let summary = |id: Uuid| {
        let store = &db.store;
        async move {
            let s = store.execution(id).await.unwrap().expect("stored").summary;
            (s.name, s.status)
        }
    };
    let named = |name: &str, status: &str| (name.to_owned(), status.to_owned());

    // Replaced by the execution's start, then its end.
    let (e, s) = (new_id(), new_id());
    db.store
        .write(&[filter_step(s, e).project("blog").seq(7).record()])
        .await
        .unwrap();
    let placeholder = db.store.execution(e).await.unwrap().expect("a placeholder");
    assert_eq!(
        (
            placeholder.summary.name.as_str(),
            placeholder.summary.status.as_str(),
            placeholder.summary.project.as_str()
        ),
        ("(unknown)", "running", "blog"),
        "a placeholder is running, in the step's project"
    );
    assert!(db.is_placeholder(e).await);

    db.store
        .write(&[execution(e).running().seq(8).record()])
        .await
        .unwrap();
    let started = db.store.execution(e).await.unwrap().expect("stored");
    assert_eq!(
        (
            started.summary.name.as_str(),
            started.summary.status.as_str(),
            started.summary.project.as_str()
        ),
        ("pick_competitor", "running", "shop")
    );
    assert!(!db.is_placeholder(e).await);
    assert_eq!(started.metadata, Some(json!({"sku": "A-1"})));

    // Later steps of the known execution, finished or not, leave it alone.
    db.store
        .write(&[
            step(new_id(), e).seq(9).record(),
            step(new_id(), e).running().seq(10).record(),
        ])
        .await
        .unwrap();
    assert_eq!(summary(e).await, named("pick_competitor", "running"));
    db.store
        .write(&[execution(e).seq(11).record()])
        .await
        .unwrap();
    assert_eq!(summary(e).await, named("pick_competitor", "ok"));
    // A step after the end neither renames nor reopens it.
    db.store
        .write(&[step(new_id(), e).running().seq(12).record()])
        .await
        .unwrap();
    assert_eq!(summary(e).await, named("pick_competitor", "ok"));

    // Replaced directly by the end.
    let (e2, s2) = (new_id(), new_id());
    db.store
        .write(&[step(s2, e2).seq(1).record()])
        .await
        .unwrap();
    db.store
        .write(&[execution(e2).seq(2).record()])
        .await
        .unwrap();
    let ended = db.store.execution(e2).await.unwrap().expect("stored");
    assert_eq!(
        (ended.summary.name.as_str(), ended.summary.status.as_str()),
        ("pick_competitor", "ok")
    );
    assert!(!db.is_placeholder(e2).await);
    assert_eq!(ended.summary.ended_at_us, Some(T0 + EXECUTION_TOOK_US));
    db.store
        .write(&[step(new_id(), e2).running().seq(3).record()])
        .await
        .unwrap();
    assert_eq!(summary(e2).await, named("pick_competitor", "ok"));
    assert_eq!(db.count("executions").await, 2);
}

async fn a_record_the_schema_refuses_is_rejected_with_its_whole_batch(db: Backend) {
    let e = new_id();
    let good = execution(e).running().record();
    let (refused, wording) = db.refused_step(new_id(), e);
    let err = db
        .store
        .write(&[good.clone(), refused])
        .await
        .expect_err("the schema refuses the step");
    assert!(matches!(err, StoreError::Rejected(_)), "{err:?}");
    assert!(!err.is_retriable());
    assert!(err.to_string().contains(wording), "{err}");
    // The batch is one transaction: the good record went with the bad one.
    assert!(db.snapshot().await.is_empty());

    // The store keeps working.
    db.store
        .write(&[good, filter_step(new_id(), e).record()])
        .await
        .unwrap();
    assert_eq!(db.count("executions").await, 1);
    assert_eq!(db.count("steps").await, 1);
}

async fn a_record_with_an_empty_name_is_rejected(db: Backend) {
    let e = new_id();
    let good = execution(e).running().record();
    for nameless in [
        execution(new_id()).name("").record(),
        step(new_id(), e).name("").record(),
    ] {
        let err = db
            .store
            .write(&[good.clone(), nameless])
            .await
            .expect_err("the CHECK constraint refuses a record without a name");
        assert_refused_by_a_check(&db, &err);
    }
    assert!(db.snapshot().await.is_empty());
}

async fn writing_before_migrating_is_a_schema_error_not_a_rejection(db: Backend) {
    let record = step(new_id(), new_id()).record();
    let err = db
        .store
        .write(std::slice::from_ref(&record))
        .await
        .unwrap_err();
    // Retried (the operator can migrate), never dead-lettered.
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    assert!(err.is_retriable());
    assert!(err.to_string().contains("migrate up"), "{err}");
    db.store.migrate_up().await.unwrap();
    db.store.write(&[record]).await.unwrap();
}

async fn dead_letters_are_stored_once_by_outbox_and_seq_even_with_nul_characters(db: Backend) {
    let letter = |seq: i64, record: Value, reason: &str| DeadLetter {
        outbox_id: Uuid::from_u128(1),
        outbox: "/var/xray/a.db".into(),
        seq,
        record,
        reason: reason.into(),
    };
    let refused = [
        letter(
            41,
            json!({"input": {"text": "bad\u{0}"}}),
            "unsupported Unicode escape \u{0}",
        ),
        letter(
            42,
            execution(Uuid::nil()).seq(42).record().to_json(),
            "CHECK constraint failed",
        ),
    ];
    db.store.dead_letter(&refused).await.unwrap();
    let first = db.snapshot().await;
    db.store.dead_letter(&refused).await.unwrap();
    assert_eq!(db.snapshot().await, first);
    // Refused again: the first reason stays.
    db.store
        .dead_letter(&[
            letter(41, json!({}), "again"),
            letter(42, json!({}), "again"),
        ])
        .await
        .unwrap();
    db.store
        .dead_letter(&[letter(43, json!({"id": 1}), "third")])
        .await
        .unwrap();

    let stored = db.dead_letters().await;
    let nul = db.stored_nul();
    let seen: Vec<(&str, i64, &str)> = stored
        .iter()
        .map(|l| (l.outbox.as_str(), l.seq, l.reason.as_str()))
        .collect();
    let escape_reason = format!("unsupported Unicode escape {nul}");
    assert_eq!(
        seen,
        [
            ("/var/xray/a.db", 41, escape_reason.as_str()),
            ("/var/xray/a.db", 42, "CHECK constraint failed"),
            ("/var/xray/a.db", 43, "third"),
        ]
    );
    assert_eq!(stored[0].record["input"]["text"], format!("bad{nul}"));
    assert_eq!(stored[1].record["record_type"], "execution");
    assert_eq!(stored[1].record["seq"], 42);
    assert_eq!(stored[2].record, json!({"id": 1}));
}

async fn deleting_an_execution_deletes_its_steps_decisions_usage_and_search_hits(db: Backend) {
    let (gone, kept, placeholder) = (new_id(), new_id(), new_id());
    db.store
        .write(&[
            execution(gone).record(),
            filter_step(new_id(), gone).record(),
            execution(kept).record(),
            filter_step(new_id(), kept).record(),
            filter_step(new_id(), placeholder).record(),
        ])
        .await
        .unwrap();
    xray_collector::indexing::catch_up(&db.store).await.unwrap();
    assert!(
        db.store
            .search("expensive", 100, None)
            .await
            .unwrap()
            .is_empty(),
        "decisions are not step text"
    );
    assert_eq!(db.store.search("walrus", 100, None).await.unwrap().len(), 3);

    db.execute(&format!(
        "DELETE FROM {{xray}}executions WHERE id = '{gone}'"
    ))
    .await;
    for (table, left) in [
        ("executions", 2),
        ("steps", 2),
        ("decisions", 4),
        ("llm_usage", 2),
    ] {
        assert_eq!(db.count(table).await, left, "{table}");
    }
    assert_eq!(db.store.search("walrus", 100, None).await.unwrap().len(), 2);
}

async fn a_large_batch_is_written_in_one_go(db: Backend) {
    let executions: Vec<Uuid> = (0..50).map(|_| new_id()).collect();
    let mut batch: Vec<ShipRecord> = executions
        .iter()
        .zip(0..)
        .map(|(&e, seq)| execution(e).seq(seq).record())
        .collect();
    batch.extend((0..5_000).map(|i: usize| {
        filter_step(new_id(), executions[i % executions.len()])
            .seq(100 + i as i64)
            .record()
    }));
    let started = std::time::Instant::now();
    db.store.write(&batch).await.unwrap();
    let took = started.elapsed();
    eprintln!("5,000 steps (10,000 decisions, 5,000 usage rows) in {took:?}");
    assert_eq!(db.count("steps").await, 5_000);
    assert_eq!(db.count("decisions").await, 10_000);
    assert_eq!(db.count("llm_usage").await, 5_000);
}

async fn values_postgresql_cannot_hold_are_stored_in_one_flagged_form_on_both_backends(
    db: Backend,
) {
    let (e, s, plain) = (new_id(), new_id(), new_id());
    let long_id = format!("B{}", "7".repeat(3 * MAX_KEY_BYTES));
    let long_name = "n".repeat(10_000);
    db.store
        .write(&[
            execution(e)
                .name("run\u{0}")
                .metadata(Some(
                    json!({"k\u{0}": "v\u{0}", "_xray_flags": ["redacted"]}),
                ))
                .record(),
            step(s, e)
                .name(&long_name)
                .failed("bad \u{0} text")
                .input(json!({"q": "a\u{0}b", "list": ["\u{0}"]}))
                .attributes(json!({"threshold": 0.5}))
                .decisions(vec![
                    decision(&long_id, Some(false), "reason \u{0}"),
                    decision("c2", Some(true), "fine"),
                ])
                .usage(vec![usage("gpt-x", i64::from(i32::MAX) + 1, -1 << 40)])
                .record(),
            filter_step(plain, e).record(),
        ])
        .await
        .expect("nothing in the batch is refused");

    let detail = db.store.execution(e).await.unwrap().expect("stored");
    assert_eq!(detail.summary.name, "run\u{FFFD}");
    assert_eq!(
        detail.metadata,
        Some(json!({"k\u{FFFD}": "v\u{FFFD}", "_xray_flags": ["redacted", "nul_replaced"]}))
    );
    let stored = detail.steps.iter().find(|x| x.id == s).expect("the step");
    let marker = format!("…[{} bytes]", long_name.len());
    assert_eq!(
        stored.name,
        format!("{}{marker}", &long_name[..MAX_KEY_BYTES])
    );
    assert_eq!(stored.error.as_deref(), Some("bad \u{FFFD} text"));
    assert_eq!(
        stored.input,
        Some(json!({"q": "a\u{FFFD}b", "list": ["\u{FFFD}"]}))
    );
    assert_eq!(
        stored.attributes,
        Some(json!({
            "threshold": 0.5,
            "_xray_flags": ["nul_replaced", "key_truncated", "tokens_clamped"]
        }))
    );
    let candidate = format!("{}…[{} bytes]", &long_id[..MAX_KEY_BYTES], long_id.len());
    assert_eq!(stored.decisions[0].candidate_id, candidate);
    assert_eq!(
        stored.decisions[0].reason.as_deref(),
        Some("reason \u{FFFD}")
    );
    assert_eq!(stored.decisions[1].candidate_id, "c2");
    assert_eq!(
        (
            stored.llm_usage[0].prompt_tokens,
            stored.llm_usage[0].completion_tokens
        ),
        (i64::from(i32::MAX), i64::from(i32::MIN))
    );
    // The truncated id is what `why` finds.
    assert_eq!(db.store.why(e, &candidate).await.unwrap().len(), 1);

    // A record that needs nothing is stored as it came, unflagged.
    let untouched = detail.steps.iter().find(|x| x.id == plain).unwrap();
    assert_eq!(untouched.attributes, Some(json!({"threshold": 0.5})));
    assert_eq!(db.count("dead_letters").await, 0);
}

async fn dead_letters_of_two_outbox_files_at_one_path_with_one_seq_are_both_kept(db: Backend) {
    // Two hosts' `.xray/outbox.db`, or one file deleted and made again:
    // same path, same sequence numbers, different files.
    let letter = |outbox_id: u128, reason: &str| DeadLetter {
        outbox_id: Uuid::from_u128(outbox_id),
        outbox: ".xray/outbox.db".into(),
        seq: 5,
        record: json!({"from": outbox_id}),
        reason: reason.into(),
    };
    db.store
        .dead_letter(&[letter(1, "first file")])
        .await
        .unwrap();
    db.store
        .dead_letter(&[letter(2, "second file"), letter(1, "first again")])
        .await
        .unwrap();
    let stored = db.dead_letters().await;
    let seen: Vec<(Uuid, &str, i64, &str)> = stored
        .iter()
        .map(|l| (l.outbox_id, l.outbox.as_str(), l.seq, l.reason.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            (Uuid::from_u128(1), ".xray/outbox.db", 5, "first file"),
            (Uuid::from_u128(2), ".xray/outbox.db", 5, "second file"),
        ]
    );
}

/// Lowercase hex without hyphens of a UUID, and its last 16 digits.
fn hex_of(id: Uuid) -> (String, String) {
    let hex = id.simple().to_string();
    let span = hex[16..].to_owned();
    (hex, span)
}

async fn trace_and_span_ids_are_stored_derived_or_as_the_trace_continued(db: Backend) {
    let (own, continued, placeholder) = (new_id(), new_id(), new_id());
    let (s1, s2, s3) = (new_id(), new_id(), new_id());
    let trace: [u8; 16] = core::array::from_fn(|i| 0xa0 + i as u8);
    let parent: [u8; 8] = core::array::from_fn(|i| 0x10 + i as u8);
    let trace_hex = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf".to_owned();
    db.store
        .write(&[
            execution(own).running().seq(1).record(),
            step(s1, own).seq(2).record(),
            execution(continued)
                .continues(trace, parent)
                .seq(3)
                .record(),
            step(s2, continued).in_trace(trace).seq(4).record(),
            // Its execution's row is still to come: the placeholder takes
            // the step's trace.
            step(s3, placeholder).in_trace(trace).seq(5).record(),
        ])
        .await
        .unwrap();
    let (own_hex, own_span) = hex_of(own);
    assert_eq!(
        db.execution_trace(own).await,
        [Some(own_hex.clone()), None, Some(own_span)]
    );
    assert_eq!(
        db.execution_trace(continued).await,
        [
            Some(trace_hex.clone()),
            Some("1011121314151617".to_owned()),
            Some(hex_of(continued).1)
        ]
    );
    assert!(db.is_placeholder(placeholder).await);
    assert_eq!(
        db.execution_trace(placeholder).await[0],
        Some(trace_hex.clone())
    );
    for s in [s1, s2, s3] {
        assert_eq!(db.step_span(s).await, hex_of(s).1);
    }
    // The execution's own row replaces the placeholder, trace and all;
    // an end without a remote parent keeps none.
    db.store
        .write(&[execution(placeholder).seq(6).record()])
        .await
        .unwrap();
    let (placeholder_hex, placeholder_span) = hex_of(placeholder);
    assert_eq!(
        db.execution_trace(placeholder).await,
        [Some(placeholder_hex), None, Some(placeholder_span)]
    );
    // Shipped again, nothing changes.
    let before = db.snapshot().await;
    db.store
        .write(&[
            execution(continued)
                .continues(trace, parent)
                .seq(3)
                .record(),
            step(s2, continued).in_trace(trace).seq(4).record(),
        ])
        .await
        .unwrap();
    assert_eq!(db.snapshot().await, before);
}

async fn rows_stored_before_trace_context_get_their_derived_ids_from_its_migration(db: Backend) {
    let (e, s) = (new_id(), new_id());
    db.store
        .write(&[execution(e).record(), step(s, e).record()])
        .await
        .unwrap();
    let trace_context = db
        .known_migrations()
        .iter()
        .find(|m| m.name == "trace_context")
        .expect("a trace context migration")
        .version;
    let newer = db
        .known_migrations()
        .iter()
        .filter(|m| m.version >= trace_context)
        .count();
    db.store.migrate_down(newer).await.unwrap();
    assert_eq!(db.count("steps").await, 1, "a down keeps the steps");
    db.store.migrate_up().await.unwrap();
    let (hex, span) = hex_of(e);
    assert_eq!(db.execution_trace(e).await, [Some(hex), None, Some(span)]);
    assert_eq!(db.step_span(s).await, hex_of(s).1);
}

async fn a_steps_reasoning_is_kept_when_it_is_shipped_again_without_one(db: Backend) {
    let (e, s) = (new_id(), new_id());
    db.store
        .write(&[
            execution(e).record(),
            filter_step(s, e).reasoning("2 candidates: 1 kept").record(),
        ])
        .await
        .unwrap();
    db.store.write(&[filter_step(s, e).record()]).await.unwrap();
    let detail = db.store.execution(e).await.unwrap().unwrap();
    assert_eq!(
        detail.steps[0].reasoning.as_deref(),
        Some("2 candidates: 1 kept")
    );
    // A new text replaces it.
    db.store
        .write(&[filter_step(s, e).reasoning("updated").record()])
        .await
        .unwrap();
    let detail = db.store.execution(e).await.unwrap().unwrap();
    assert_eq!(detail.steps[0].reasoning.as_deref(), Some("updated"));
}

async fn llm_usage_is_priced_when_written_and_an_unknown_model_has_no_cost(db: Backend) {
    use xray_collector::cost::{built_in, ModelPrice};
    let mut prices = built_in();
    prices.push(ModelPrice {
        model: "gpt-x".into(),
        prompt_per_million: 2.0,
        completion_per_million: 10.0,
        source: "test".into(),
    });
    db.store.set_model_prices(&prices).await.unwrap();
    let e = new_id();
    db.store
        .write(&[
            execution(e).record(),
            // gpt-x: 120 prompt, 30 completion tokens.
            filter_step(new_id(), e).record(),
            filter_step(new_id(), e)
                .usage(vec![usage("gpt-4o-mini", 1_000_000, 2_000_000)])
                .record(),
            filter_step(new_id(), e)
                .usage(vec![usage("nobody-knows-v9", 500, 500)])
                .record(),
        ])
        .await
        .unwrap();
    let costs = db.costs().await;
    assert_eq!(costs.len(), 3, "{costs:?}");
    let cost = |model: &str| costs.iter().find(|c| c.0 == model).unwrap().1;
    // (120 × 2 + 30 × 10) / 1e6
    assert!(
        (cost("gpt-x").unwrap() - 0.00054).abs() < 1e-12,
        "{costs:?}"
    );
    // 1 M × 0.15 + 2 M × 0.60
    assert!(
        (cost("gpt-4o-mini").unwrap() - 1.35).abs() < 1e-9,
        "{costs:?}"
    );
    assert_eq!(cost("nobody-knows-v9"), None, "never a guessed cost");
    // New prices apply to what is written from then on.
    db.store.set_model_prices(&built_in()).await.unwrap();
    db.store
        .write(&[filter_step(new_id(), e).record()])
        .await
        .unwrap();
    let unpriced = db
        .costs()
        .await
        .iter()
        .filter(|c| c.0 == "gpt-x" && c.1.is_none())
        .count();
    assert_eq!(unpriced, 1);
}
