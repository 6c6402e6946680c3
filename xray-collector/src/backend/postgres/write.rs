//! Writing a batch: one transaction, one statement per table.
//!
//! # Why `UNNEST` of array parameters
//!
//! Each table gets one `INSERT … SELECT … FROM UNNEST($1::uuid[], …)
//! ON CONFLICT …` whose parameters are whole columns, sent in binary. A
//! batch of 5,000 steps is then five prepared statements (prepared once
//! per connection), five round trips and one commit, and the upsert logic
//! stays in plain SQL. Binary `COPY` into a temporary staging table
//! followed by `INSERT … SELECT … ON CONFLICT` moves rows somewhat faster
//! per row, but costs extra round trips per table (the `COPY` itself, then
//! the `INSERT`, then emptying the staging table) and needs the staging
//! tables per session; for batches of a few thousand small rows the
//! array form is as fast or faster, and simpler. Rows are sorted by key so
//! that two collectors writing overlapping batches lock rows in the same
//! order (no deadlocks between them).
//!
//! # Order and rules (see the module docs of [`super`])
//!
//! placeholder executions for steps whose execution the batch does not
//! carry (`DO NOTHING`) → executions (upsert) → decisions (`DO NOTHING`,
//! keyed by `(step_id, ordinal)`) → steps (upsert, noting each written step
//! for the search indexer; the stats rollups' statement trigger) → LLM
//! usage (`DO NOTHING`; the model rollups' trigger).
//!
//! # Order and locks: two batches written at once
//!
//! The shipper writes two consecutive batches side by side, on two
//! connections ([`super::WRITE_CONNECTIONS`]), so two of these
//! transactions often touch the same rows: a step started in one batch
//! and ended in the next, an execution started in one and continued in
//! the next. Rows are sorted by key in every statement, so two
//! transactions take the rows of one statement in the same order; the
//! order of the statements does the rest:
//!
//! - placeholders come first because `DO NOTHING` takes no lock but waits
//!   for a row another transaction is writing: were they after the
//!   executions, batch N (starting execution P, carrying steps of Q) and
//!   batch N+1 (ending Q, carrying steps of P) would each wait for the
//!   other's execution row — a deadlock, broken by PostgreSQL only after a
//!   second (`deadlock_timeout`);
//! - the decisions (no foreign key since migration 7) come before the
//!   steps, and the LLM usage after them, so that the rollup rows the
//!   steps' trigger updates — shared by every batch of the same hour and
//!   step name — stay locked only from the end of the steps' statement to
//!   the commit, and the second transaction waits for them only that
//!   long.
//!
//! The bench counts deadlocks (`pg_stat_database.deadlocks`) and must see
//! none.

use std::collections::HashMap;

use serde_json::Value;
use tokio_postgres::{Client, Statement};
use uuid::Uuid;

use crate::backend::storable::{self, fix_json, without_nul};
use crate::backend::DeadLetter;
use crate::model::{merge_by_id, ExecutionRow, ShipRecord, StepRow, TraceId};
use xray_outbox::trace;

/// An execution row, start or end. A `start` never overwrites an `end`
/// (the `WHERE`); any row replaces a placeholder (which is always
/// `running`). Optional values a later row lacks are kept.
const UPSERT_EXECUTIONS: &str = concat!(
    "INSERT INTO xray.executions AS e
        (id, project, name, status, metadata, outcome, error, started_at, ended_at, placeholder,
         updated_at, trace_id, parent_span_id)
     SELECT t.id, t.project, t.name, t.status, t.metadata, t.outcome, t.error, ",
    ts!("t.started_us"),
    ", ",
    ts!("t.ended_us"),
    ", false, now(), t.trace_id, t.parent_span_id
     FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                 $7::text[], $8::int8[], $9::int8[], $10::text[], $11::text[])
          AS t(id, project, name, status, metadata, outcome, error, started_us, ended_us,
               trace_id, parent_span_id)
     ON CONFLICT (id) DO UPDATE SET
        project = EXCLUDED.project,
        name = EXCLUDED.name,
        status = EXCLUDED.status,
        metadata = coalesce(EXCLUDED.metadata, e.metadata),
        outcome = coalesce(EXCLUDED.outcome, e.outcome),
        error = coalesce(EXCLUDED.error, e.error),
        started_at = EXCLUDED.started_at,
        ended_at = coalesce(EXCLUDED.ended_at, e.ended_at),
        placeholder = false,
        updated_at = now(),
        trace_id = EXCLUDED.trace_id,
        parent_span_id = EXCLUDED.parent_span_id
     WHERE e.status = 'running' OR EXCLUDED.status <> 'running'"
);

/// A stand-in for an execution a step refers to, in case the execution's
/// own start row was lost or is still to come.
const INSERT_PLACEHOLDERS: &str = concat!(
    "INSERT INTO xray.executions (id, project, name, status, started_at, placeholder, trace_id)
     SELECT t.id, t.project, '(unknown)', 'running', ",
    ts!("t.started_us"),
    ", true, t.trace_id
     FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[])
          AS t(id, project, started_us, trace_id)
     ON CONFLICT (id) DO NOTHING"
);

/// A step row, start or end; same rule as executions. Each step written
/// (not one left alone by the rule) is noted for the search indexer
/// ([`super::search_index`]), in the same transaction.
const UPSERT_STEPS: &str = concat!(
    "WITH written AS (
     INSERT INTO xray.steps AS s
        (id, execution_id, parent_id, name, kind, status, input, output, error, attributes,
         started_at, duration_us, updated_at, reasoning)
     SELECT t.id, t.execution_id, t.parent_id, t.name, t.kind, t.status, t.input, t.output,
            t.error, t.attributes, ",
    ts!("t.started_us"),
    ", t.duration_us, now(), t.reasoning
     FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                 $7::jsonb[], $8::jsonb[], $9::text[], $10::jsonb[], $11::int8[], $12::int8[],
                 $13::text[])
          AS t(id, execution_id, parent_id, name, kind, status, input, output, error, attributes,
               started_us, duration_us, reasoning)
     ON CONFLICT (id) DO UPDATE SET
        parent_id = coalesce(EXCLUDED.parent_id, s.parent_id),
        name = EXCLUDED.name,
        kind = coalesce(EXCLUDED.kind, s.kind),
        status = EXCLUDED.status,
        input = coalesce(EXCLUDED.input, s.input),
        output = coalesce(EXCLUDED.output, s.output),
        error = coalesce(EXCLUDED.error, s.error),
        attributes = coalesce(EXCLUDED.attributes, s.attributes),
        started_at = EXCLUDED.started_at,
        duration_us = coalesce(EXCLUDED.duration_us, s.duration_us),
        updated_at = now(),
        reasoning = coalesce(EXCLUDED.reasoning, s.reasoning)
     WHERE s.status = 'running' OR EXCLUDED.status <> 'running'
     RETURNING s.id)
     INSERT INTO xray.search_pending (step_id) SELECT id FROM written"
);

const INSERT_DECISIONS: &str = "INSERT INTO xray.decisions
        (execution_id, step_id, ordinal, candidate_id, accepted, filter, reason, score)
     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int4[], $4::text[], $5::bool[], $6::text[],
                          $7::text[], $8::float8[])
     ON CONFLICT (step_id, ordinal) DO NOTHING";

/// Token counts arrive as 64-bit, already clamped into `integer`'s range
/// ([`storable`]); the cast would refuse (as `Rejected`) a count that does
/// not fit rather than wrap it.
const INSERT_LLM_USAGE: &str = "INSERT INTO xray.llm_usage
        (execution_id, step_id, ordinal, model, prompt_tokens, completion_tokens, cost_usd)
     SELECT t.execution_id, t.step_id, t.ordinal, t.model, t.prompt::int4, t.completion::int4,
            (t.prompt * p.prompt_usd_per_million + t.completion * p.completion_usd_per_million)
                / 1000000
     FROM UNNEST($1::uuid[], $2::uuid[], $3::int4[], $4::text[], $5::int8[], $6::int8[])
          AS t(execution_id, step_id, ordinal, model, prompt, completion)
     LEFT JOIN xray.model_prices p ON p.model = t.model
     ON CONFLICT (step_id, ordinal) DO NOTHING";

const INSERT_DEAD_LETTERS: &str =
    "INSERT INTO xray.dead_letters (outbox_id, outbox, seq, record, reason)
     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::jsonb[], $5::text[])
     ON CONFLICT (outbox_id, seq) DO NOTHING";

/// The write statements, prepared once per connection.
pub(crate) struct Statements {
    executions: Statement,
    placeholders: Statement,
    steps: Statement,
    decisions: Statement,
    llm_usage: Statement,
    dead_letters: Statement,
}

impl Statements {
    /// Prepares them (fails with an undefined-table error before `migrate up`).
    pub(crate) async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            executions: client.prepare(UPSERT_EXECUTIONS).await?,
            placeholders: client.prepare(INSERT_PLACEHOLDERS).await?,
            steps: client.prepare(UPSERT_STEPS).await?,
            decisions: client.prepare(INSERT_DECISIONS).await?,
            llm_usage: client.prepare(INSERT_LLM_USAGE).await?,
            dead_letters: client.prepare(INSERT_DEAD_LETTERS).await?,
        })
    }
}

/// Writes `records` in one transaction (see the module docs for the order).
pub(crate) async fn write_batch(
    client: &mut Client,
    st: &Statements,
    records: &[ShipRecord],
) -> Result<(), tokio_postgres::Error> {
    let storable: Vec<_> = merge_by_id(records)
        .into_iter()
        .map(storable::record)
        .collect();
    let mut executions: Vec<&ExecutionRow> = Vec::new();
    let mut steps: Vec<&StepRow> = Vec::new();
    for r in &storable {
        match &**r {
            ShipRecord::Execution(e) => executions.push(e),
            ShipRecord::Step(s) => steps.push(s),
        }
    }
    if executions.is_empty() && steps.is_empty() {
        return Ok(());
    }
    executions.sort_by_key(|e| e.id);
    steps.sort_by_key(|s| s.id);

    let tx = client.transaction().await?;
    // Placeholders before executions: see "Order and locks" in the module docs.
    let p = PlaceholderColumns::from(&steps, &executions);
    if !p.id.is_empty() {
        tx.execute(
            &st.placeholders,
            &[&p.id, &p.project, &p.started_us, &p.trace_id],
        )
        .await?;
    }
    if !executions.is_empty() {
        let c = ExecutionColumns::from(&executions);
        tx.execute(
            &st.executions,
            &[
                &c.id,
                &c.project,
                &c.name,
                &c.status,
                &c.metadata,
                &c.outcome,
                &c.error,
                &c.started_us,
                &c.ended_us,
                &c.trace_id,
                &c.parent_span_id,
            ],
        )
        .await?;
    }
    if !steps.is_empty() {
        let d = DecisionColumns::from(&steps);
        if !d.step_id.is_empty() {
            tx.execute(
                &st.decisions,
                &[
                    &d.execution_id,
                    &d.step_id,
                    &d.ordinal,
                    &d.candidate_id,
                    &d.accepted,
                    &d.filter,
                    &d.reason,
                    &d.score,
                ],
            )
            .await?;
        }
        let c = StepColumns::from(&steps);
        tx.execute(
            &st.steps,
            &[
                &c.id,
                &c.execution_id,
                &c.parent_id,
                &c.name,
                &c.kind,
                &c.status,
                &c.input,
                &c.output,
                &c.error,
                &c.attributes,
                &c.started_us,
                &c.duration_us,
                &c.reasoning,
            ],
        )
        .await?;
        let u = UsageColumns::from(&steps);
        if !u.step_id.is_empty() {
            tx.execute(
                &st.llm_usage,
                &[
                    &u.execution_id,
                    &u.step_id,
                    &u.ordinal,
                    &u.model,
                    &u.prompt,
                    &u.completion,
                ],
            )
            .await?;
        }
    }
    tx.commit().await
}

/// Stores refused records in one transaction, idempotent by `(outbox_id, seq)`.
///
/// PostgreSQL cannot store a NUL character in `text` or `jsonb` — often the
/// very reason the record was refused — so NULs are replaced by U+FFFD
/// here: a dead letter itself must never be refused.
pub(crate) async fn write_dead_letters(
    client: &mut Client,
    st: &Statements,
    letters: &[DeadLetter],
) -> Result<(), tokio_postgres::Error> {
    if letters.is_empty() {
        return Ok(());
    }
    let outbox_id: Vec<Uuid> = letters.iter().map(|l| l.outbox_id).collect();
    let outbox: Vec<String> = letters.iter().map(|l| without_nul(&l.outbox)).collect();
    let seq: Vec<i64> = letters.iter().map(|l| l.seq).collect();
    let record: Vec<Value> = letters
        .iter()
        .map(|l| {
            let mut record = l.record.clone();
            fix_json(&mut record);
            record
        })
        .collect();
    let reason: Vec<String> = letters.iter().map(|l| without_nul(&l.reason)).collect();
    let tx = client.transaction().await?;
    tx.execute(
        &st.dead_letters,
        &[&outbox_id, &outbox, &seq, &record, &reason],
    )
    .await?;
    tx.commit().await
}

/// Executions as columns, for `UPSERT_EXECUTIONS`.
struct ExecutionColumns<'a> {
    id: Vec<Uuid>,
    project: Vec<&'a str>,
    name: Vec<&'a str>,
    status: Vec<&'a str>,
    metadata: Vec<Option<&'a Value>>,
    outcome: Vec<Option<&'a Value>>,
    error: Vec<Option<&'a str>>,
    started_us: Vec<i64>,
    ended_us: Vec<Option<i64>>,
    trace_id: Vec<String>,
    parent_span_id: Vec<Option<String>>,
}

impl<'a> ExecutionColumns<'a> {
    fn from(rows: &[&'a ExecutionRow]) -> Self {
        ExecutionColumns {
            id: rows.iter().map(|e| e.id).collect(),
            project: rows.iter().map(|e| e.project.as_str()).collect(),
            name: rows.iter().map(|e| e.name.as_str()).collect(),
            status: rows.iter().map(|e| e.status.as_str()).collect(),
            metadata: rows.iter().map(|e| e.metadata.as_ref()).collect(),
            outcome: rows.iter().map(|e| e.outcome.as_ref()).collect(),
            error: rows.iter().map(|e| e.error.as_deref()).collect(),
            started_us: rows.iter().map(|e| e.started_at_us).collect(),
            ended_us: rows.iter().map(|e| e.ended_at_us).collect(),
            trace_id: rows.iter().map(|e| trace::hex(&e.trace_id())).collect(),
            parent_span_id: rows
                .iter()
                .map(|e| e.parent_span_id.map(|p| trace::hex(&p)))
                .collect(),
        }
    }
}

/// One placeholder per execution the batch's steps refer to and the batch
/// itself does not carry, starting at its earliest step.
struct PlaceholderColumns<'a> {
    id: Vec<Uuid>,
    project: Vec<&'a str>,
    started_us: Vec<i64>,
    /// Its steps' trace (each step's row carries its execution's).
    trace_id: Vec<String>,
}

impl<'a> PlaceholderColumns<'a> {
    fn from(steps: &[&'a StepRow], executions: &[&ExecutionRow]) -> Self {
        let mut wanted: HashMap<Uuid, (&'a str, i64, TraceId)> = HashMap::new();
        for s in steps {
            if executions
                .binary_search_by_key(&s.execution_id, |e| e.id)
                .is_ok()
            {
                continue;
            }
            let entry = wanted.entry(s.execution_id).or_insert((
                s.project.as_str(),
                s.started_at_us,
                s.trace_id(),
            ));
            entry.1 = entry.1.min(s.started_at_us);
        }
        let mut rows: Vec<(Uuid, (&'a str, i64, TraceId))> = wanted.into_iter().collect();
        rows.sort_by_key(|r| r.0);
        PlaceholderColumns {
            id: rows.iter().map(|r| r.0).collect(),
            project: rows.iter().map(|r| r.1 .0).collect(),
            started_us: rows.iter().map(|r| r.1 .1).collect(),
            trace_id: rows.iter().map(|r| trace::hex(&r.1 .2)).collect(),
        }
    }
}

/// Steps as columns, for `UPSERT_STEPS`.
struct StepColumns<'a> {
    id: Vec<Uuid>,
    execution_id: Vec<Uuid>,
    parent_id: Vec<Option<Uuid>>,
    name: Vec<&'a str>,
    kind: Vec<Option<&'a str>>,
    status: Vec<&'a str>,
    input: Vec<Option<&'a Value>>,
    output: Vec<Option<&'a Value>>,
    error: Vec<Option<&'a str>>,
    attributes: Vec<Option<&'a Value>>,
    started_us: Vec<i64>,
    duration_us: Vec<Option<i64>>,
    reasoning: Vec<Option<&'a str>>,
}

impl<'a> StepColumns<'a> {
    fn from(rows: &[&'a StepRow]) -> Self {
        StepColumns {
            id: rows.iter().map(|s| s.id).collect(),
            execution_id: rows.iter().map(|s| s.execution_id).collect(),
            parent_id: rows.iter().map(|s| s.parent_id).collect(),
            name: rows.iter().map(|s| s.name.as_str()).collect(),
            kind: rows.iter().map(|s| s.kind.as_deref()).collect(),
            status: rows.iter().map(|s| s.status.as_str()).collect(),
            input: rows.iter().map(|s| s.input.as_ref()).collect(),
            output: rows.iter().map(|s| s.output.as_ref()).collect(),
            error: rows.iter().map(|s| s.error.as_deref()).collect(),
            attributes: rows.iter().map(|s| s.attributes.as_ref()).collect(),
            started_us: rows.iter().map(|s| s.started_at_us).collect(),
            duration_us: rows.iter().map(|s| s.duration_us).collect(),
            reasoning: rows.iter().map(|s| s.reasoning.as_deref()).collect(),
        }
    }
}

/// Every decision of the batch's steps, numbered within its step.
#[derive(Default)]
struct DecisionColumns<'a> {
    execution_id: Vec<Uuid>,
    step_id: Vec<Uuid>,
    ordinal: Vec<i32>,
    candidate_id: Vec<&'a str>,
    accepted: Vec<Option<bool>>,
    filter: Vec<Option<&'a str>>,
    reason: Vec<Option<&'a str>>,
    score: Vec<Option<f64>>,
}

impl<'a> DecisionColumns<'a> {
    fn from(steps: &[&'a StepRow]) -> Self {
        let mut c = DecisionColumns::default();
        for s in steps {
            for (i, d) in s.decisions.iter().enumerate() {
                c.execution_id.push(s.execution_id);
                c.step_id.push(s.id);
                c.ordinal.push(ordinal(i));
                c.candidate_id.push(&d.candidate_id);
                c.accepted.push(d.accepted);
                c.filter.push(d.filter.as_deref());
                c.reason.push(d.reason.as_deref());
                c.score.push(d.score);
            }
        }
        c
    }
}

/// Every LLM call of the batch's steps, numbered within its step.
#[derive(Default)]
struct UsageColumns<'a> {
    execution_id: Vec<Uuid>,
    step_id: Vec<Uuid>,
    ordinal: Vec<i32>,
    model: Vec<&'a str>,
    prompt: Vec<i64>,
    completion: Vec<i64>,
}

impl<'a> UsageColumns<'a> {
    fn from(steps: &[&'a StepRow]) -> Self {
        let mut c = UsageColumns::default();
        for s in steps {
            for (i, u) in s.llm_usage.iter().enumerate() {
                c.execution_id.push(s.execution_id);
                c.step_id.push(s.id);
                c.ordinal.push(ordinal(i));
                c.model.push(&u.model);
                c.prompt.push(u.prompt_tokens);
                c.completion.push(u.completion_tokens);
            }
        }
        c
    }
}

/// A position in a step's list as the `integer` column holds it. A step
/// with more than 2³¹ decisions cannot exist in memory, so saturating is
/// only a formality.
fn ordinal(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}
