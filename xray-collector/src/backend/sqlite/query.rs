//! [`QueryStore`] for the embedded store ([`SqliteStore`]).
//!
//! Every query runs on the store's connection on a blocking thread (see
//! [`SqliteStore`]); user input is always a bound parameter. Ids are stored
//! as lowercase hyphenated UUID text, whose byte order is the order of the
//! UUIDs, so keyset pagination compares them as text. Reads that take
//! several statements (`execution`, `stats`) run in one read transaction,
//! so they see one snapshot of the store. `executions` clamps its page size
//! to 1..=1000; `search` with a limit of 0 finds nothing.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rusqlite::types::{Type, Value as SqlValue};
use rusqlite::{params, params_from_iter, Connection, Row};
use serde_json::Value;
use uuid::Uuid;

use crate::backend::sqlite::SqliteStore;
use crate::backend::{QueryStore, StoreError};
use crate::query::rollup::{self, Bucket};
use crate::query::{
    cut_page, CandidateEntry, DecisionRow, ExecutionDetail, ExecutionFilter, ExecutionHead,
    ExecutionPage, ExecutionSummary, LlmTotals, ModelTokens, ReasoningJob, SearchHit, Stats,
    StepDetail, StepFilter, StepOutline, StepPage, StepScope, StepStats, TraceContext, UsageRow,
    WhyEntry, MAX_CANDIDATE_ENTRIES, MAX_STEP_PAGE, SEARCH_NEWEST,
};

/// The largest page `executions` returns, whatever the filter asks.
const MAX_PAGE: usize = 1000;

/// The step's reasoning and its [`WITH_JOB`] job's columns, in
/// [`reasoning_at`]'s order.
macro_rules! reasoning_columns {
    () => {
        "steps.reasoning, j.status, j.method, j.attempts, j.error, j.completed_at_us, \
         j.model, j.prompt_tokens, j.completion_tokens, j.cost_usd"
    };
}

/// [`WITH_JOB`], for SQL put together with `concat!`.
macro_rules! with_job {
    () => {
        "LEFT JOIN reasoning_jobs j ON j.step_id = steps.id"
    };
}

impl QueryStore for SqliteStore {
    async fn executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| executions(conn, &filter)).await
    }

    async fn existing_executions(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT id FROM executions WHERE id = ?1")?;
            let mut found = HashSet::new();
            for id in &ids {
                if let Some(row) = stmt.query([id])?.next()? {
                    found.insert(uuid_at(row, 0)?);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn latest_execution(&self, project: Option<&str>) -> Result<Option<Uuid>, StoreError> {
        let project = project.map(str::to_owned);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM executions
                 WHERE ?1 IS NULL OR project = ?1
                 ORDER BY started_at_us DESC, id DESC
                 LIMIT 1",
            )?;
            let mut rows = stmt.query(params![project])?;
            rows.next()?.map(|r| uuid_at(r, 0)).transpose()
        })
        .await
    }

    async fn execution(&self, id: Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        self.read(move |conn| execution(conn, id)).await
    }

    async fn execution_head(&self, id: Uuid) -> Result<Option<ExecutionHead>, StoreError> {
        self.read(move |conn| head(conn, id)).await
    }

    async fn execution_llm(&self, id: Uuid) -> Result<LlmTotals, StoreError> {
        self.read(move |conn| execution_llm(conn, id)).await
    }

    async fn steps(&self, filter: &StepFilter) -> Result<StepPage, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| steps(conn, &filter)).await
    }

    async fn step_details(
        &self,
        execution: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<StepDetail>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.read(move |conn| step_details(conn, execution, &ids))
            .await
    }

    async fn candidate(
        &self,
        candidate_id: &str,
        except: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<CandidateEntry>, StoreError> {
        let candidate_id = candidate_id.to_owned();
        self.read(move |conn| candidate(conn, &candidate_id, except, limit))
            .await
    }

    async fn why(&self, execution: Uuid, candidate: &str) -> Result<Vec<WhyEntry>, StoreError> {
        let candidate = candidate.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(concat!(
                "SELECT steps.id, steps.name, steps.started_at_us,
                        d.candidate_id, d.accepted, d.filter, d.reason, d.score, ",
                reasoning_columns!(),
                " FROM decisions d JOIN steps ON steps.id = d.step_id ",
                with_job!(),
                " WHERE d.execution_id = ?1 AND steps.execution_id = ?1 AND d.candidate_id = ?2
                 ORDER BY steps.started_at_us, steps.id, d.ordinal"
            ))?;
            let rows = stmt.query_map(params![execution.to_string(), candidate], |r| {
                let (reasoning, reasoning_job) = reasoning_at(r, 8)?;
                Ok(WhyEntry {
                    step_id: uuid_at(r, 0)?,
                    step_name: r.get(1)?,
                    started_at_us: r.get(2)?,
                    decision: decision_at(r, 3)?,
                    reasoning,
                    reasoning_job,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn search(
        &self,
        text: &str,
        limit: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<SearchHit>, StoreError> {
        if text.trim().is_empty() {
            return Err(StoreError::Config("search text is empty".into()));
        }
        let Some(query) = fts_words(text) else {
            // Only punctuation: no word any step could contain.
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            // Past the deadline, SQLite's progress handler stops the
            // statement (`SQLITE_INTERRUPT`, read as a timeout) rather than
            // letting it hold the store's one connection.
            if let Some(timeout) = timeout {
                let end = Instant::now() + timeout;
                conn.progress_handler(PROGRESS_EVERY, Some(move || Instant::now() >= end))?;
            }
            let hits = search(conn, &query, limit);
            if timeout.is_some() {
                conn.progress_handler(0, None::<fn() -> bool>)?;
            }
            hits
        })
        .await
    }

    async fn stats(&self, since_us: Option<i64>, name: Option<&str>) -> Result<Stats, StoreError> {
        let name = name.map(str::to_owned);
        self.read(move |conn| {
            let tx = conn.transaction()?;
            let steps = step_stats(&tx, since_us, name.as_deref())?;
            let models = model_tokens(&tx, since_us, name.as_deref())?;
            tx.commit()?;
            Ok(Stats { steps, models })
        })
        .await
    }
}

/// A page of executions: the filters as `WHERE` clauses over bound
/// parameters, then one row more than the page to know whether another
/// page follows.
fn executions(conn: &Connection, filter: &ExecutionFilter) -> rusqlite::Result<ExecutionPage> {
    let limit = filter.limit.clamp(1, MAX_PAGE);
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<SqlValue> = Vec::new();
    // Parameters are numbered, so a value used twice is bound once.
    let mut bind = |value: SqlValue| {
        values.push(value);
        format!("?{}", values.len())
    };
    if let Some(project) = &filter.project {
        conditions.push(format!(
            "e.project = {}",
            bind(SqlValue::Text(project.clone()))
        ));
    }
    if let Some(name) = &filter.name {
        conditions.push(format!("e.name = {}", bind(SqlValue::Text(name.clone()))));
    }
    if let Some(status) = &filter.status {
        conditions.push(format!(
            "e.status = {}",
            bind(SqlValue::Text(status.clone()))
        ));
    }
    if let Some(since) = filter.since_us {
        conditions.push(format!(
            "e.started_at_us >= {}",
            bind(SqlValue::Integer(since))
        ));
    }
    if let Some(until) = filter.until_us {
        conditions.push(format!(
            "e.started_at_us < {}",
            bind(SqlValue::Integer(until))
        ));
    }
    if let Some(after) = filter.after {
        let at = bind(SqlValue::Integer(after.started_at_us));
        let id = bind(SqlValue::Text(after.id.to_string()));
        conditions.push(format!(
            "(e.started_at_us < {at} OR (e.started_at_us = {at} AND e.id < {id}))"
        ));
    }
    let fetch = bind(SqlValue::Integer(
        i64::try_from(limit + 1).unwrap_or(i64::MAX),
    ));
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT e.id, e.project, e.name, e.status, e.started_at_us, e.ended_at_us,
                (SELECT count(*) FROM steps s WHERE s.execution_id = e.id)
         FROM executions e
         {where_clause}
         ORDER BY e.started_at_us DESC, e.id DESC
         LIMIT {fetch}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut executions = stmt
        .query_map(params_from_iter(values), summary_at)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next_cursor = cut_page(&mut executions, limit, |e| (e.started_at_us, e.id));
    Ok(ExecutionPage {
        executions,
        next_cursor,
    })
}

/// The execution's own row, without its steps.
fn head(conn: &Connection, id: Uuid) -> rusqlite::Result<Option<ExecutionHead>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.id, e.project, e.name, e.status, e.started_at_us, e.ended_at_us,
                (SELECT count(*) FROM steps s WHERE s.execution_id = e.id),
                e.metadata, e.outcome, e.error, e.trace_id, e.parent_span_id
         FROM executions e WHERE e.id = ?1",
    )?;
    let mut rows = stmt.query(params![id.to_string()])?;
    rows.next()?
        .map(|r| {
            Ok(ExecutionHead {
                summary: summary_at(r)?,
                metadata: json_at(r, 7)?,
                outcome: json_at(r, 8)?,
                error: r.get(9)?,
                trace: TraceContext {
                    trace_id: r.get(10)?,
                    parent_span_id: r.get(11)?,
                },
            })
        })
        .transpose()
}

/// The columns [`step_at`] reads, of `steps` and of [`WITH_JOB`]'s `j`.
const STEP_COLUMNS: &str = concat!(
    "steps.id, steps.parent_id, steps.name, steps.kind, steps.status,
     steps.input, steps.output, steps.error, steps.attributes,
     steps.started_at_us, steps.duration_us, ",
    reasoning_columns!()
);

/// The step's reasoning job, when it has one (one per step).
const WITH_JOB: &str = with_job!();

fn step_at(r: &Row<'_>) -> rusqlite::Result<StepDetail> {
    let (reasoning, reasoning_job) = reasoning_at(r, 11)?;
    Ok(StepDetail {
        id: uuid_at(r, 0)?,
        parent_id: optional_uuid_at(r, 1)?,
        name: r.get(2)?,
        kind: r.get(3)?,
        status: r.get(4)?,
        input: json_at(r, 5)?,
        output: json_at(r, 6)?,
        error: r.get(7)?,
        attributes: json_at(r, 8)?,
        started_at_us: r.get(9)?,
        duration_us: r.get(10)?,
        decisions: Vec::new(),
        llm_usage: Vec::new(),
        reasoning,
        reasoning_job,
    })
}

/// The [`reasoning_columns!`] of a row, from column `at`: the step's
/// reasoning, and its job when it has one.
fn reasoning_at(
    r: &Row<'_>,
    at: usize,
) -> rusqlite::Result<(Option<String>, Option<ReasoningJob>)> {
    let job = match r.get::<_, Option<String>>(at + 1)? {
        Some(status) => Some(ReasoningJob {
            status,
            method: r.get(at + 2)?,
            attempts: r.get(at + 3)?,
            error: r.get(at + 4)?,
            completed_at_us: r.get(at + 5)?,
            model: r.get(at + 6)?,
            prompt_tokens: r.get(at + 7)?,
            completion_tokens: r.get(at + 8)?,
            cost_usd: r.get(at + 9)?,
        }),
        None => None,
    };
    Ok((r.get(at)?, job))
}

/// Fills in the decisions and usage of `steps` from two queries over one
/// bound parameter, each returning rows that start with the step id, in
/// ordinal order per step.
fn attach_decisions_and_usage(
    conn: &Connection,
    steps: &mut [StepDetail],
    decisions_sql: &str,
    usage_sql: &str,
    param: &str,
) -> rusqlite::Result<()> {
    let position: HashMap<Uuid, usize> = steps.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let mut stmt = conn.prepare_cached(decisions_sql)?;
    let mut rows = stmt.query(params![param])?;
    while let Some(r) = rows.next()? {
        if let Some(&i) = position.get(&uuid_at(r, 0)?) {
            steps[i].decisions.push(decision_at(r, 1)?);
        }
    }
    let mut stmt = conn.prepare_cached(usage_sql)?;
    let mut rows = stmt.query(params![param])?;
    while let Some(r) = rows.next()? {
        if let Some(&i) = position.get(&uuid_at(r, 0)?) {
            steps[i].llm_usage.push(UsageRow {
                model: r.get(1)?,
                prompt_tokens: r.get(2)?,
                completion_tokens: r.get(3)?,
                cost_usd: r.get(4)?,
            });
        }
    }
    Ok(())
}

/// An execution, its steps in start order, and their decisions and usage
/// in ordinal order, from one snapshot.
fn execution(conn: &mut Connection, id: Uuid) -> rusqlite::Result<Option<ExecutionDetail>> {
    let tx = conn.transaction()?;
    let Some(head) = head(&tx, id)? else {
        return Ok(None);
    };
    let id_text = id.to_string();
    let mut steps: Vec<StepDetail> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {STEP_COLUMNS} FROM steps {WITH_JOB} WHERE steps.execution_id = ?1
             ORDER BY steps.started_at_us, steps.id"
        ))?;
        let rows = stmt.query_map(params![id_text], step_at)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    attach_decisions_and_usage(
        &tx,
        &mut steps,
        "SELECT d.step_id, d.candidate_id, d.accepted, d.filter, d.reason, d.score
         FROM decisions d JOIN steps s ON s.id = d.step_id
         WHERE s.execution_id = ?1
         ORDER BY d.step_id, d.ordinal",
        "SELECT u.step_id, u.model, u.prompt_tokens, u.completion_tokens, u.cost_usd
         FROM llm_usage u JOIN steps s ON s.id = u.step_id
         WHERE s.execution_id = ?1
         ORDER BY u.step_id, u.ordinal",
        &id_text,
    )?;
    let llm = execution_llm(&tx, id)?;
    tx.commit()?;
    Ok(Some(head.with_steps(llm, steps)))
}

/// An execution's LLM calls per model, by model, in one aggregate reached
/// through the steps' `(execution_id, …)` index and `llm_usage`'s primary
/// key (`llm_usage` has no index on `execution_id`). A model's cost is the
/// sum of its calls' costs only when every call has one.
fn execution_llm(conn: &Connection, id: Uuid) -> rusqlite::Result<LlmTotals> {
    let mut stmt = conn.prepare_cached(
        "SELECT u.model, count(*), sum(u.prompt_tokens), sum(u.completion_tokens),
                CASE WHEN count(u.cost_usd) = count(*) THEN sum(u.cost_usd) END
         FROM steps s JOIN llm_usage u ON u.step_id = s.id
         WHERE s.execution_id = ?1
         GROUP BY u.model
         ORDER BY u.model",
    )?;
    let models = stmt
        .query_map(params![id.to_string()], model_tokens_at)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(LlmTotals::of(models))
}

/// The progress handler's period, in virtual machine instructions: a
/// check of the clock every few microseconds of work.
const PROGRESS_EVERY: std::os::raw::c_int = 1_000;

/// Steps matching the FTS5 query, best first. The newest
/// [`SEARCH_NEWEST`] matches (`?3`, newest by the order steps were stored
/// in) are ranked in the index alone; only those that can make the page —
/// scored at least as well as the `?2`-th best, ties included — are joined
/// to their steps and executions for the full order (score, then newest,
/// then id), as on PostgreSQL.
fn search(conn: &Connection, query: &str, limit: i64) -> rusqlite::Result<Vec<SearchHit>> {
    let mut stmt = conn.prepare_cached(
        "WITH ranked AS MATERIALIZED (
             SELECT rowid, bm25(steps_fts) AS score FROM steps_fts WHERE steps_fts MATCH ?1
             ORDER BY rowid DESC LIMIT ?3),
         cut AS (SELECT score FROM ranked ORDER BY score LIMIT 1 OFFSET ?2 - 1)
         SELECT s.execution_id, e.name, s.id, s.name, s.status, s.started_at_us, r.score
         FROM ranked r
         JOIN steps s ON s.fts_rowid = r.rowid
         JOIN executions e ON e.id = s.execution_id
         WHERE r.score <= coalesce((SELECT score FROM cut), 9e999)
         ORDER BY r.score, s.started_at_us DESC, s.id
         LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![query, limit, SEARCH_NEWEST], |r| {
        Ok(SearchHit {
            execution_id: uuid_at(r, 0)?,
            execution_name: r.get(1)?,
            step_id: uuid_at(r, 2)?,
            step_name: r.get(3)?,
            status: r.get(4)?,
            started_at_us: r.get(5)?,
            // bm25 is lower-is-better (negative for matches).
            rank: -r.get::<_, f64>(6)?,
        })
    })?;
    rows.collect()
}

/// Some steps of an execution, whole, from one snapshot. The ids travel
/// as one JSON array parameter (`json_each`), however many there are, and
/// drive the query (`CROSS JOIN` keeps them the outer loop): each is one
/// look-up by id, where `id IN (…)` let SQLite scan every step of the
/// execution instead, once per call — quadratic for `show`, which reads a
/// large execution a batch of ids at a time.
fn step_details(
    conn: &mut Connection,
    execution: Uuid,
    ids: &[Uuid],
) -> rusqlite::Result<Vec<StepDetail>> {
    let ids_json = serde_json::to_string(&ids.iter().map(Uuid::to_string).collect::<Vec<_>>())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    let tx = conn.transaction()?;
    let mut steps: Vec<StepDetail> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {STEP_COLUMNS}
             FROM (SELECT DISTINCT value FROM json_each(?2)) AS wanted
             CROSS JOIN steps ON steps.id = wanted.value
             {WITH_JOB}
             WHERE steps.execution_id = ?1
             ORDER BY steps.started_at_us, steps.id"
        ))?;
        let rows = stmt.query_map(params![execution.to_string(), ids_json], step_at)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let found_json =
        serde_json::to_string(&steps.iter().map(|s| s.id.to_string()).collect::<Vec<_>>())
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    attach_decisions_and_usage(
        &tx,
        &mut steps,
        "SELECT step_id, candidate_id, accepted, filter, reason, score
         FROM decisions WHERE step_id IN (SELECT value FROM json_each(?1))
         ORDER BY step_id, ordinal",
        "SELECT step_id, model, prompt_tokens, completion_tokens, cost_usd
         FROM llm_usage WHERE step_id IN (SELECT value FROM json_each(?1))
         ORDER BY step_id, ordinal",
        &found_json,
    )?;
    tx.commit()?;
    Ok(steps)
}

/// A page of an execution's step outlines in start order, one row more
/// than the page to know whether another follows.
fn steps(conn: &Connection, filter: &StepFilter) -> rusqlite::Result<StepPage> {
    let limit = filter.limit.clamp(1, MAX_STEP_PAGE);
    let mut values: Vec<SqlValue> = vec![SqlValue::Text(filter.execution.to_string())];
    let mut bind = |value: SqlValue| {
        values.push(value);
        format!("?{}", values.len())
    };
    let mut conditions = vec!["s.execution_id = ?1".to_owned()];
    match filter.scope {
        StepScope::All => {}
        StepScope::Roots => conditions.push(
            "(s.parent_id IS NULL OR NOT EXISTS (
                 SELECT 1 FROM steps p WHERE p.id = s.parent_id AND p.execution_id = ?1))"
                .to_owned(),
        ),
        StepScope::ChildrenOf(parent) => conditions.push(format!(
            "s.parent_id = {}",
            bind(SqlValue::Text(parent.to_string()))
        )),
    }
    if let Some(after) = filter.after {
        let at = bind(SqlValue::Integer(after.started_at_us));
        let id = bind(SqlValue::Text(after.id.to_string()));
        conditions.push(format!(
            "(s.started_at_us > {at} OR (s.started_at_us = {at} AND s.id > {id}))"
        ));
    }
    let fetch = bind(SqlValue::Integer(
        i64::try_from(limit + 1).unwrap_or(i64::MAX),
    ));
    let sql = format!(
        "SELECT s.id, s.parent_id, s.name, s.kind, s.status, s.started_at_us, s.duration_us,
                (SELECT count(*) FROM steps c
                 WHERE c.execution_id = s.execution_id AND c.parent_id = s.id),
                (SELECT count(*) FROM decisions d WHERE d.step_id = s.id),
                s.error IS NOT NULL
         FROM steps s
         WHERE {}
         ORDER BY s.started_at_us, s.id
         LIMIT {fetch}",
        conditions.join(" AND ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let steps = stmt
        .query_map(params_from_iter(values), |r| {
            Ok(StepOutline {
                id: uuid_at(r, 0)?,
                parent_id: optional_uuid_at(r, 1)?,
                name: r.get(2)?,
                kind: r.get(3)?,
                status: r.get(4)?,
                started_at_us: r.get(5)?,
                duration_us: r.get(6)?,
                children: r.get(7)?,
                decisions: r.get(8)?,
                has_error: r.get(9)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(StepPage::from_fetched(steps, limit))
}

/// Decisions about a candidate across executions, newest step first.
fn candidate(
    conn: &Connection,
    candidate: &str,
    except: Option<Uuid>,
    limit: usize,
) -> rusqlite::Result<Vec<CandidateEntry>> {
    let limit = i64::try_from(limit.clamp(1, MAX_CANDIDATE_ENTRIES)).unwrap_or(1);
    let mut stmt = conn.prepare_cached(
        "SELECT d.execution_id, e.name, s.id, s.name, s.started_at_us,
                d.candidate_id, d.accepted, d.filter, d.reason, d.score
         FROM decisions d
         JOIN steps s ON s.id = d.step_id
         JOIN executions e ON e.id = s.execution_id
         WHERE d.candidate_id = ?1 AND (?2 IS NULL OR s.execution_id <> ?2)
         ORDER BY s.started_at_us DESC, s.id DESC, d.ordinal
         LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        params![candidate, except.map(|e| e.to_string()), limit],
        |r| {
            Ok(CandidateEntry {
                execution_id: uuid_at(r, 0)?,
                execution_name: r.get(1)?,
                step_id: uuid_at(r, 2)?,
                step_name: r.get(3)?,
                started_at_us: r.get(4)?,
                decision: decision_at(r, 5)?,
            })
        },
    )?;
    rows.collect()
}

/// Stats per step name: the day rollups for the window's whole days, the
/// hour rollups for the whole hours before them, the finished steps before
/// those (see [`rollup::window`]).
fn step_stats(
    conn: &Connection,
    since_us: Option<i64>,
    name: Option<&str>,
) -> rusqlite::Result<Vec<StepStats>> {
    let w = rollup::window(since_us);
    let mut stmt = conn.prepare_cached(
        "WITH names AS (SELECT DISTINCT name FROM step_rollups
                        WHERE width = 'day' AND (?4 IS NULL OR name = ?4))
         SELECT name, bucket, sum(finished), sum(errors), max(max_us) FROM (
             SELECT name, bucket, finished, errors, max_us FROM step_rollups
             WHERE width = 'day' AND finished > 0 AND (?1 IS NULL OR start_us >= ?1)
               AND (?4 IS NULL OR name = ?4)
             UNION ALL
             SELECT name, bucket, finished, errors, max_us FROM step_rollups
             WHERE width = 'hour' AND finished > 0 AND ?2 IS NOT NULL
               AND name IN names AND start_us >= ?2 AND start_us < ?1
             UNION ALL
             SELECT name, bucket, count(*), sum(status <> 'ok'), max(duration_us)
             FROM finished_steps
             WHERE ?3 IS NOT NULL AND name IN names
               AND started_at_us >= ?3 AND started_at_us < ?2
             GROUP BY 1, 2)
         GROUP BY 1, 2",
    )?;
    let rows = stmt.query_map(
        params![w.whole_days_us, w.whole_hours_us, w.since_us, name],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                Bucket {
                    bucket: r.get(1)?,
                    count: r.get(2)?,
                    errors: r.get(3)?,
                    max_us: r.get(4)?,
                },
            ))
        },
    )?;
    Ok(rollup::stats_by_name(
        rows.collect::<rusqlite::Result<Vec<_>>>()?,
    ))
}

/// LLM calls and tokens per model, over the window `step_stats` reads,
/// and those tokens priced at the current prices (`model_prices`; the
/// rollups keep tokens, not cost): NULL for a model without a price.
fn model_tokens(
    conn: &Connection,
    since_us: Option<i64>,
    name: Option<&str>,
) -> rusqlite::Result<Vec<ModelTokens>> {
    let w = rollup::window(since_us);
    let mut stmt = conn.prepare_cached(
        "WITH names AS (SELECT DISTINCT name FROM model_rollups
                        WHERE width = 'day' AND (?4 IS NULL OR name = ?4))
         SELECT t.model, t.calls, t.prompt_tokens, t.completion_tokens,
                (t.prompt_tokens * p.prompt_usd_per_million
                 + t.completion_tokens * p.completion_usd_per_million) / 1000000.0
         FROM (
         SELECT model, sum(calls) AS calls, sum(prompt_tokens) AS prompt_tokens,
                sum(completion_tokens) AS completion_tokens FROM (
             SELECT model, calls, prompt_tokens, completion_tokens FROM model_rollups
             WHERE width = 'day' AND (?1 IS NULL OR start_us >= ?1) AND (?4 IS NULL OR name = ?4)
             UNION ALL
             SELECT model, calls, prompt_tokens, completion_tokens FROM model_rollups
             WHERE width = 'hour' AND ?2 IS NOT NULL
               AND name IN names AND start_us >= ?2 AND start_us < ?1
             UNION ALL
             SELECT u.model, 1, u.prompt_tokens, u.completion_tokens
             FROM steps s JOIN llm_usage u ON u.step_id = s.id
             WHERE ?3 IS NOT NULL AND s.name IN names
               AND s.started_at_us >= ?3 AND s.started_at_us < ?2)
         GROUP BY model
         HAVING sum(calls) > 0) t
         LEFT JOIN model_prices p ON p.model = t.model
         ORDER BY t.model",
    )?;
    let rows = stmt.query_map(
        params![w.whole_days_us, w.whole_hours_us, w.since_us, name],
        model_tokens_at,
    )?;
    rows.collect()
}

/// Columns 0..=4: model, calls, prompt and completion tokens, cost.
fn model_tokens_at(r: &Row<'_>) -> rusqlite::Result<ModelTokens> {
    Ok(ModelTokens {
        model: r.get(0)?,
        calls: r.get(1)?,
        prompt_tokens: r.get(2)?,
        completion_tokens: r.get(3)?,
        cost_usd: r.get(4)?,
    })
}

/// `text` as an FTS5 query: every whitespace-separated word quoted (so no
/// character is FTS5 syntax) and the words AND-ed. Words without a letter
/// or digit are left out: the tokenizer would make them empty phrases.
/// `None` when no word is left.
fn fts_words(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Columns 0..=6 of an execution query: id, project, name, status,
/// started_at_us, ended_at_us, step count.
fn summary_at(r: &Row<'_>) -> rusqlite::Result<ExecutionSummary> {
    Ok(ExecutionSummary {
        id: uuid_at(r, 0)?,
        project: r.get(1)?,
        name: r.get(2)?,
        status: r.get(3)?,
        started_at_us: r.get(4)?,
        ended_at_us: r.get(5)?,
        steps: r.get(6)?,
    })
}

/// Columns `at..at + 5`: candidate_id, accepted, filter, reason, score.
pub(super) fn decision_at(r: &Row<'_>, at: usize) -> rusqlite::Result<DecisionRow> {
    Ok(DecisionRow {
        candidate_id: r.get(at)?,
        accepted: r.get::<_, Option<i64>>(at + 1)?.map(|a| a != 0),
        filter: r.get(at + 2)?,
        reason: r.get(at + 3)?,
        score: r.get(at + 4)?,
    })
}

fn optional_uuid_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Option<Uuid>> {
    r.get::<_, Option<String>>(at)?
        .map(|p| parse_uuid(at, &p))
        .transpose()
}

fn uuid_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Uuid> {
    parse_uuid(at, &r.get::<_, String>(at)?)
}

fn parse_uuid(at: usize, text: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(at, Type::Text, e.into()))
}

pub(super) fn json_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Option<Value>> {
    r.get::<_, Option<String>>(at)?
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(at, Type::Text, e.into()))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::fts_words;

    #[test]
    fn search_words_are_quoted_and_punctuation_dropped() {
        assert_eq!(
            fts_words(r#" red "shoe NEAR( * "#),
            Some(r#""red" """shoe" "NEAR(""#.to_owned())
        );
        assert_eq!(fts_words(r#"* " ("#), None);
    }
}
