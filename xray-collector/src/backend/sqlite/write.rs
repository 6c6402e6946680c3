//! Writing a batch: one transaction of idempotent upserts (see the module
//! docs of [`super`] for the guarantees).

use std::collections::HashSet;

use rusqlite::{params, Connection, TransactionBehavior};
use uuid::Uuid;

use super::migrations::now_us;
use crate::backend::DeadLetter;
use crate::model::{ExecutionRow, ShipRecord, StepRow};

/// Upserts an execution. The real row, start or end, replaces a
/// placeholder (whose status is `running`); otherwise a `running` row
/// never replaces a finished one. Fields the incoming row lacks keep what
/// the stored row has (an end without metadata keeps the start's).
const UPSERT_EXECUTION: &str = "
INSERT INTO executions
    (id, project, name, status, placeholder, metadata, outcome, error, started_at_us, ended_at_us)
VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8, ?9)
ON CONFLICT (id) DO UPDATE SET
    project       = excluded.project,
    name          = excluded.name,
    status        = excluded.status,
    placeholder   = 0,
    metadata      = coalesce(excluded.metadata, executions.metadata),
    outcome       = coalesce(excluded.outcome, executions.outcome),
    error         = coalesce(excluded.error, executions.error),
    started_at_us = excluded.started_at_us,
    ended_at_us   = coalesce(excluded.ended_at_us, executions.ended_at_us)
WHERE executions.placeholder = 1
   OR executions.status = 'running'
   OR excluded.status <> 'running'";

/// Stands in for an execution whose row has not arrived; never touches an
/// existing row.
const INSERT_PLACEHOLDER_EXECUTION: &str = "
INSERT INTO executions (id, project, name, status, placeholder, started_at_us)
VALUES (?1, ?2, '(unknown)', 'running', 1, ?3)
ON CONFLICT (id) DO NOTHING";

/// Upserts a batch's steps, given as one JSON array of rows (`[id,
/// execution_id, parent_id, name, kind, status, input, output, error,
/// attributes, started_at_us, duration_us]`, JSON values as their text):
/// one statement for the whole batch (row by row, statement overhead and,
/// while the search index was fed by triggers, FTS5 flushing its pending
/// terms at every statement were most of a batch's time: BENCHMARKS.md,
/// issue 12); triggers note each written step for the search indexer
/// (`search_index.rs`). A `running` row never replaces a finished one. (`WHERE true` tells the
/// parser the `ON CONFLICT` belongs to the insert, not to a join.)
const UPSERT_STEPS: &str = "
INSERT INTO steps
    (id, execution_id, parent_id, name, kind, status, input, output, error, attributes,
     started_at_us, duration_us)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
       value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, value ->> 11
FROM json_each(?1)
WHERE true
ON CONFLICT (id) DO UPDATE SET
    execution_id  = excluded.execution_id,
    parent_id     = coalesce(excluded.parent_id, steps.parent_id),
    name          = excluded.name,
    kind          = coalesce(excluded.kind, steps.kind),
    status        = excluded.status,
    input         = coalesce(excluded.input, steps.input),
    output        = coalesce(excluded.output, steps.output),
    error         = coalesce(excluded.error, steps.error),
    attributes    = coalesce(excluded.attributes, steps.attributes),
    started_at_us = excluded.started_at_us,
    duration_us   = coalesce(excluded.duration_us, steps.duration_us)
WHERE steps.status = 'running' OR excluded.status <> 'running'";

/// Inserts a batch's decisions, given as one JSON array of rows
/// (`[step_id, ordinal, execution_id, candidate_id, accepted, filter,
/// reason, score]`), in one statement like the steps.
const INSERT_DECISIONS: &str = "
INSERT INTO decisions
    (step_id, ordinal, execution_id, candidate_id, accepted, filter, reason, score)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
       value ->> 6, value ->> 7
FROM json_each(?1)
WHERE true
ON CONFLICT DO NOTHING";

const INSERT_LLM_USAGE: &str = "
INSERT INTO llm_usage
    (step_id, ordinal, execution_id, model, prompt_tokens, completion_tokens)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT DO NOTHING";

const INSERT_DEAD_LETTER: &str = "
INSERT INTO dead_letters (outbox_id, outbox, seq, record, reason, created_at_us)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT DO NOTHING";

/// Writes already merged records (one per id) in one transaction:
/// executions, then steps, then decisions and LLM usage.
pub(super) fn write_batch(conn: &mut Connection, records: &[ShipRecord]) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front (waiting up to the busy
    // timeout) instead of failing mid-transaction on a lock upgrade.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;

    let executions = records.iter().filter_map(|r| match r {
        ShipRecord::Execution(e) => Some(e),
        ShipRecord::Step(_) => None,
    });
    let steps = || {
        records.iter().filter_map(|r| match r {
            ShipRecord::Step(s) => Some(s),
            ShipRecord::Execution(_) => None,
        })
    };

    // Executions written in this batch (or given a placeholder already)
    // need no placeholder for their steps.
    let mut known_executions: HashSet<Uuid> = HashSet::new();
    {
        let mut upsert = tx.prepare_cached(UPSERT_EXECUTION)?;
        for e in executions {
            upsert_execution(&mut upsert, e)?;
            known_executions.insert(e.id);
        }
    }
    {
        let mut placeholder = tx.prepare_cached(INSERT_PLACEHOLDER_EXECUTION)?;
        for s in steps() {
            if known_executions.insert(s.execution_id) {
                placeholder.execute(params![
                    s.execution_id.to_string(),
                    s.project,
                    s.started_at_us
                ])?;
            }
        }
        if steps().next().is_some() {
            tx.prepare_cached(UPSERT_STEPS)?
                .execute([step_rows(steps())?])?;
        }
    }
    {
        if steps().any(|s| !s.decisions.is_empty()) {
            tx.prepare_cached(INSERT_DECISIONS)?
                .execute([decision_rows(steps())?])?;
        }
        let mut usage = tx.prepare_cached(INSERT_LLM_USAGE)?;
        for s in steps() {
            if s.llm_usage.is_empty() {
                continue;
            }
            let step_id = s.id.to_string();
            let execution_id = s.execution_id.to_string();
            for (ordinal, u) in (0_i64..).zip(&s.llm_usage) {
                usage.execute(params![
                    step_id,
                    ordinal,
                    execution_id,
                    u.model,
                    u.prompt_tokens,
                    u.completion_tokens
                ])?;
            }
        }
    }
    tx.commit()
}

fn upsert_execution(
    stmt: &mut rusqlite::CachedStatement<'_>,
    e: &ExecutionRow,
) -> rusqlite::Result<()> {
    stmt.execute(params![
        e.id.to_string(),
        e.project,
        e.name,
        e.status.as_str(),
        json_text(e.metadata.as_ref()),
        json_text(e.outcome.as_ref()),
        e.error,
        e.started_at_us,
        e.ended_at_us
    ])?;
    Ok(())
}

/// The steps' decisions as the JSON array of rows [`INSERT_DECISIONS`]
/// reads.
fn decision_rows<'a>(steps: impl Iterator<Item = &'a StepRow>) -> rusqlite::Result<String> {
    let rows: Vec<_> = steps
        .flat_map(|s| {
            (0_i64..).zip(&s.decisions).map(move |(ordinal, d)| {
                (
                    s.id,
                    ordinal,
                    s.execution_id,
                    &d.candidate_id,
                    d.accepted,
                    &d.filter,
                    &d.reason,
                    d.score,
                )
            })
        })
        .collect();
    serde_json::to_string(&rows).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// The steps as the JSON array of rows [`UPSERT_STEPS`] reads.
fn step_rows<'a>(steps: impl Iterator<Item = &'a StepRow>) -> rusqlite::Result<String> {
    let rows: Vec<_> = steps
        .map(|s| {
            (
                s.id,
                s.execution_id,
                s.parent_id,
                &s.name,
                &s.kind,
                s.status.as_str(),
                json_text(s.input.as_ref()),
                json_text(s.output.as_ref()),
                &s.error,
                json_text(s.attributes.as_ref()),
                s.started_at_us,
                s.duration_us,
            )
        })
        .collect();
    serde_json::to_string(&rows).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Stores refused records, idempotent by `(outbox_id, seq)`.
pub(super) fn dead_letters(conn: &mut Connection, letters: &[DeadLetter]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut insert = tx.prepare_cached(INSERT_DEAD_LETTER)?;
        let now = now_us();
        for l in letters {
            insert.execute(params![
                l.outbox_id.to_string(),
                l.outbox,
                l.seq,
                l.record.to_string(),
                l.reason,
                now
            ])?;
        }
    }
    tx.commit()
}

/// JSON as the text stored in the JSON columns (a `serde_json::Value`
/// always serializes to valid JSON).
fn json_text(value: Option<&serde_json::Value>) -> Option<String> {
    value.map(serde_json::Value::to_string)
}
