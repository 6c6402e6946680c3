//! Writing a batch: one transaction of idempotent upserts (see the module
//! docs of [`super`] for the guarantees).

use std::collections::HashSet;

use rusqlite::{params, Connection, TransactionBehavior};

use super::migrations::now_us;
use crate::backend::storable;
use crate::backend::DeadLetter;
use crate::model::{merge_by_id, Decision, ExecutionRow, LlmUsage, ShipRecord, StepRow, TraceId};
use xray_outbox::trace;

/// Upserts an execution. The real row, start or end, replaces a
/// placeholder (whose status is `running`); otherwise a `running` row
/// never replaces a finished one. Fields the incoming row lacks keep what
/// the stored row has (an end without metadata keeps the start's).
const UPSERT_EXECUTION: &str = "
INSERT INTO executions
    (id, project, name, status, placeholder, metadata, outcome, error, started_at_us, ended_at_us,
     trace_id, parent_span_id)
VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT (id) DO UPDATE SET
    project       = excluded.project,
    name          = excluded.name,
    status        = excluded.status,
    placeholder   = 0,
    metadata      = coalesce(excluded.metadata, executions.metadata),
    outcome       = coalesce(excluded.outcome, executions.outcome),
    error         = coalesce(excluded.error, executions.error),
    started_at_us = excluded.started_at_us,
    ended_at_us   = coalesce(excluded.ended_at_us, executions.ended_at_us),
    trace_id      = excluded.trace_id,
    parent_span_id = excluded.parent_span_id
WHERE executions.placeholder = 1
   OR executions.status = 'running'
   OR excluded.status <> 'running'";

/// Stands in for an execution whose row has not arrived; never touches an
/// existing row.
const INSERT_PLACEHOLDER_EXECUTION: &str = "
INSERT INTO executions (id, project, name, status, placeholder, started_at_us, trace_id)
VALUES (?1, ?2, '(unknown)', 'running', 1, ?3, ?4)
ON CONFLICT (id) DO NOTHING";

/// Upserts a step. A `running` row never replaces a finished one. Each
/// step written is noted for the search indexer by triggers
/// (`search_index.rs`) and counted in the rollups by others.
const UPSERT_STEP: &str = "
INSERT INTO steps
    (id, execution_id, parent_id, name, kind, status, input, output, error, attributes,
     started_at_us, duration_us, reasoning)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
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
    duration_us   = coalesce(excluded.duration_us, steps.duration_us),
    reasoning     = coalesce(excluded.reasoning, steps.reasoning)
WHERE steps.status = 'running' OR excluded.status <> 'running'";

/// Inserts a step's decision (keyed by step and ordinal).
const INSERT_DECISION: &str = "
INSERT INTO decisions
    (step_id, ordinal, execution_id, candidate_id, accepted, filter, reason, score)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT DO NOTHING";

const INSERT_LLM_USAGE: &str = "
INSERT INTO llm_usage
    (step_id, ordinal, execution_id, model, prompt_tokens, completion_tokens, cost_usd)
VALUES (?1, ?2, ?3, ?4, ?5, ?6,
        (SELECT (?5 * prompt_usd_per_million + ?6 * completion_usd_per_million) / 1000000.0
         FROM model_prices WHERE model = ?4))
ON CONFLICT DO NOTHING";

const INSERT_DEAD_LETTER: &str = "
INSERT INTO dead_letters (outbox_id, outbox, seq, record, reason, created_at_us)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT DO NOTHING";

/// A batch as its statements bind it: ids and JSON as text, every value
/// owned, so that it is built on the caller's thread (from the shipper's
/// records, without copying their JSON trees) and moved to the store's
/// connection thread.
pub(super) struct Batch {
    executions: Vec<ExecutionValues>,
    steps: Vec<StepValues>,
}

struct ExecutionValues {
    id: String,
    project: String,
    name: String,
    status: &'static str,
    metadata: Option<String>,
    outcome: Option<String>,
    error: Option<String>,
    started_at_us: i64,
    ended_at_us: Option<i64>,
    trace_id: String,
    parent_span_id: Option<String>,
}

struct StepValues {
    id: String,
    execution_id: String,
    parent_id: Option<String>,
    project: String,
    name: String,
    kind: Option<String>,
    status: &'static str,
    input: Option<String>,
    output: Option<String>,
    error: Option<String>,
    attributes: Option<String>,
    started_at_us: i64,
    duration_us: Option<i64>,
    decisions: Vec<Decision>,
    llm_usage: Vec<LlmUsage>,
    /// Its execution's trace (for a placeholder of the execution).
    trace_id: TraceId,
    reasoning: Option<String>,
}

impl Batch {
    /// The values of `records`, merged (one per id,
    /// [`merge_by_id`]) and made storable ([`storable::record`]).
    pub(super) fn of(records: &[ShipRecord]) -> Batch {
        let mut batch = Batch {
            executions: Vec::new(),
            steps: Vec::new(),
        };
        for record in merge_by_id(records) {
            match &*storable::record(record) {
                ShipRecord::Execution(e) => batch.executions.push(ExecutionValues::of(e)),
                ShipRecord::Step(s) => batch.steps.push(StepValues::of(s)),
            }
        }
        batch
    }

    pub(super) fn is_empty(&self) -> bool {
        self.executions.is_empty() && self.steps.is_empty()
    }
}

impl ExecutionValues {
    fn of(e: &ExecutionRow) -> Self {
        ExecutionValues {
            id: e.id.to_string(),
            project: e.project.clone(),
            name: e.name.clone(),
            status: e.status.as_str(),
            metadata: json_text(e.metadata.as_ref()),
            outcome: json_text(e.outcome.as_ref()),
            error: e.error.clone(),
            started_at_us: e.started_at_us,
            ended_at_us: e.ended_at_us,
            trace_id: trace::hex(&e.trace_id()),
            parent_span_id: e.parent_span_id.map(|p| trace::hex(&p)),
        }
    }
}

impl StepValues {
    fn of(s: &StepRow) -> Self {
        StepValues {
            id: s.id.to_string(),
            execution_id: s.execution_id.to_string(),
            parent_id: s.parent_id.map(|p| p.to_string()),
            project: s.project.clone(),
            name: s.name.clone(),
            kind: s.kind.clone(),
            status: s.status.as_str(),
            input: json_text(s.input.as_ref()),
            output: json_text(s.output.as_ref()),
            error: s.error.clone(),
            attributes: json_text(s.attributes.as_ref()),
            started_at_us: s.started_at_us,
            duration_us: s.duration_us,
            decisions: s.decisions.clone(),
            llm_usage: s.llm_usage.clone(),
            trace_id: s.trace_id(),
            reasoning: s.reasoning.clone(),
        }
    }
}

/// Writes a batch in one transaction: executions, placeholders for the
/// executions its steps name and it does not carry, then each step with
/// its decisions and LLM usage, row by row (prepared statements; the
/// search index and the rollups are fed by triggers that cost no more
/// per row than per statement: BENCHMARKS.md, issue 12).
pub(super) fn write_batch(conn: &mut Connection, batch: &Batch) -> rusqlite::Result<()> {
    // IMMEDIATE takes the write lock up front (waiting up to the busy
    // timeout) instead of failing mid-transaction on a lock upgrade.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Executions written in this batch (or given a placeholder already)
    // need no placeholder for their steps.
    let mut known_executions: HashSet<&str> = HashSet::new();
    {
        let mut upsert = tx.prepare_cached(UPSERT_EXECUTION)?;
        for e in &batch.executions {
            upsert.execute(params![
                e.id,
                e.project,
                e.name,
                e.status,
                e.metadata,
                e.outcome,
                e.error,
                e.started_at_us,
                e.ended_at_us,
                e.trace_id,
                e.parent_span_id
            ])?;
            known_executions.insert(&e.id);
        }
        let mut placeholder = tx.prepare_cached(INSERT_PLACEHOLDER_EXECUTION)?;
        for s in &batch.steps {
            if known_executions.insert(&s.execution_id) {
                placeholder.execute(params![
                    s.execution_id,
                    s.project,
                    s.started_at_us,
                    trace::hex(&s.trace_id)
                ])?;
            }
        }
    }
    {
        let mut upsert = tx.prepare_cached(UPSERT_STEP)?;
        let mut decision = tx.prepare_cached(INSERT_DECISION)?;
        let mut usage = tx.prepare_cached(INSERT_LLM_USAGE)?;
        for s in &batch.steps {
            upsert.execute(params![
                s.id,
                s.execution_id,
                s.parent_id,
                s.name,
                s.kind,
                s.status,
                s.input,
                s.output,
                s.error,
                s.attributes,
                s.started_at_us,
                s.duration_us,
                s.reasoning
            ])?;
            for (ordinal, d) in (0_i64..).zip(&s.decisions) {
                decision.execute(params![
                    s.id,
                    ordinal,
                    s.execution_id,
                    d.candidate_id,
                    d.accepted,
                    d.filter,
                    d.reason,
                    d.score
                ])?;
            }
            for (ordinal, u) in (0_i64..).zip(&s.llm_usage) {
                usage.execute(params![
                    s.id,
                    ordinal,
                    s.execution_id,
                    u.model,
                    u.prompt_tokens,
                    u.completion_tokens
                ])?;
            }
        }
    }
    tx.commit()
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
