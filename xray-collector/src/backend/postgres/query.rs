//! [`QueryStore`] for the PostgreSQL backend.
//!
//! Every value from the caller is a bind parameter; the SQL text only ever
//! varies by which fixed conditions are present. Times cross the boundary
//! as µs since the epoch, both ways exactly: in through
//! `'epoch' + µs * interval '1 microsecond'`, out through whole seconds
//! plus the microsecond field (never through a `double`, which cannot hold
//! today's µs exactly).
//!
//! Reads made of several queries (`execution`, `stats`) run in one
//! read-only `REPEATABLE READ` transaction, so they see one snapshot.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Row, Transaction};
use uuid::Uuid;

use crate::backend::postgres::PostgresStore;
use crate::backend::{QueryStore, StoreError};
use crate::query::rollup::{self, Bucket};
use crate::query::{
    cut_page, CandidateEntry, DecisionRow, ExecutionDetail, ExecutionFilter, ExecutionHead,
    ExecutionPage, ExecutionSummary, LlmTotals, ModelTokens, ReasoningJob, SearchHit, Stats,
    StepDetail, StepFilter, StepOutline, StepPage, StepScope, TraceContext, UsageRow, WhyEntry,
    MAX_CANDIDATE_ENTRIES, MAX_STEP_PAGE, SEARCH_NEWEST,
};

/// A `timestamptz` column as exact µs since the epoch (`NULL` stays
/// `NULL`). Whole seconds are exact even where `extract` returns a
/// `double` (before PostgreSQL 14); the microsecond field is below 60·10⁶.
macro_rules! us {
    ($col:literal) => {
        concat!(
            "(floor(extract(epoch FROM date_trunc('second', ",
            $col,
            ")))::bigint * 1000000 + extract(microseconds FROM ",
            $col,
            ")::bigint % 1000000)"
        )
    };
}

/// The instants a `timestamptz` can hold, in µs since the Unix epoch:
/// from 4714-11-24 BC up to (not including) 294277-01-01. A cursor may
/// name any `i64`; one outside this range is answered without asking the
/// server to build a timestamp it cannot hold.
const TIMESTAMPTZ_US: std::ops::Range<i64> = -210_866_803_200_000_000..9_222_424_646_400_000_000;

/// µs since the epoch (a `bigint` parameter) as a `timestamptz`, exactly.
fn ts(param: &str) -> String {
    format!(ts!("{}::bigint"), param)
}

/// Bind parameters collected while a query's conditions are chosen.
#[derive(Default)]
struct Params {
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Params {
    /// Adds a value; returns its placeholder (`$n`).
    fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// Page sizes outside 1..=1000 are brought into it.
const MAX_PAGE: usize = 1000;

/// Columns of an [`ExecutionSummary`], in [`summary`]'s order.
const SUMMARY_COLUMNS: &str = concat!(
    "e.id, e.project, e.name, e.status, ",
    us!("e.started_at"),
    ", ",
    us!("e.ended_at"),
    ", (SELECT count(*) FROM xray.steps s WHERE s.execution_id = e.id)"
);

fn summary(row: &Row) -> ExecutionSummary {
    ExecutionSummary {
        id: row.get(0),
        project: row.get(1),
        name: row.get(2),
        status: row.get(3),
        started_at_us: row.get(4),
        ended_at_us: row.get(5),
        steps: row.get(6),
    }
}

pub(super) fn decision(row: &Row, first: usize) -> DecisionRow {
    DecisionRow {
        candidate_id: row.get(first),
        accepted: row.get(first + 1),
        filter: row.get(first + 2),
        reason: row.get(first + 3),
        score: row.get(first + 4),
    }
}

async fn read_only(client: &mut Client) -> Result<Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .read_only(true)
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await
}

async fn executions(
    client: &Client,
    filter: ExecutionFilter,
) -> Result<ExecutionPage, tokio_postgres::Error> {
    let limit = filter.limit.clamp(1, MAX_PAGE);
    let mut p = Params::default();
    let mut conditions = Vec::new();
    if let Some(project) = filter.project {
        conditions.push(format!("e.project = {}", p.push(project)));
    }
    if let Some(name) = filter.name {
        conditions.push(format!("e.name = {}", p.push(name)));
    }
    if let Some(status) = filter.status {
        conditions.push(format!("e.status = {}", p.push(status)));
    }
    if let Some(since) = filter.since_us {
        conditions.push(format!("e.started_at >= {}", ts(&p.push(since))));
    }
    if let Some(until) = filter.until_us {
        conditions.push(format!("e.started_at < {}", ts(&p.push(until))));
    }
    if let Some(after) = filter.after {
        if after.started_at_us < TIMESTAMPTZ_US.start {
            // Nothing stored can have started before it.
            return Ok(ExecutionPage {
                executions: Vec::new(),
                next_cursor: None,
            });
        }
        // Past the range every stored row is before it: no condition.
        if after.started_at_us < TIMESTAMPTZ_US.end {
            let t = ts(&p.push(after.started_at_us));
            let id = p.push(after.id);
            conditions.push(format!("(e.started_at, e.id) < ({t}, {id}::uuid)"));
        }
    }
    let fetch = p.push(limit as i64 + 1);
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM xray.executions e {where_clause} \
         ORDER BY e.started_at DESC, e.id DESC LIMIT {fetch}::bigint"
    );
    let rows = client.query(&sql, &p.refs()).await?;
    let mut executions: Vec<ExecutionSummary> = rows.iter().map(summary).collect();
    let next_cursor = cut_page(&mut executions, limit, |e| (e.started_at_us, e.id));
    Ok(ExecutionPage {
        executions,
        next_cursor,
    })
}

async fn latest_execution(
    client: &Client,
    project: Option<String>,
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    let row = match project {
        Some(project) => {
            client
                .query_opt(
                    "SELECT id FROM xray.executions WHERE project = $1 \
                     ORDER BY started_at DESC, id DESC LIMIT 1",
                    &[&project],
                )
                .await?
        }
        None => {
            client
                .query_opt(
                    "SELECT id FROM xray.executions ORDER BY started_at DESC, id DESC LIMIT 1",
                    &[],
                )
                .await?
        }
    };
    Ok(row.map(|r| r.get(0)))
}

const EXECUTION: &str = concat!(
    "SELECT e.id, e.project, e.name, e.status, ",
    us!("e.started_at"),
    ", ",
    us!("e.ended_at"),
    ", (SELECT count(*) FROM xray.steps s WHERE s.execution_id = e.id), \
     e.metadata, e.outcome, e.error, e.trace_id, e.parent_span_id \
     FROM xray.executions e WHERE e.id = $1"
);

/// The step's (`s`) reasoning and its reasoning job's (`j`) columns, in
/// [`reasoning`]'s order.
macro_rules! reasoning_columns {
    () => {
        concat!(
            "s.reasoning, j.status, j.method, j.attempts, j.error, ",
            us!("j.completed_at"),
            ", j.model, j.prompt_tokens, j.completion_tokens, j.cost_usd"
        )
    };
}

/// The step's (`s`) reasoning job as `j`: one per step, when it has one.
macro_rules! with_job {
    () => {
        " LEFT JOIN xray.reasoning_jobs j ON j.step_id = s.id "
    };
}

/// The columns [`step_detail`] reads: the step (`s`) and its reasoning
/// job (`j`, one per step, when it has one).
macro_rules! step_columns {
    () => {
        concat!(
            "SELECT s.id, s.parent_id, s.name, s.kind, s.status, s.input, s.output, s.error, \
                    s.attributes, ",
            us!("s.started_at"),
            ", s.duration_us, ",
            reasoning_columns!(),
            " FROM xray.steps s",
            with_job!()
        )
    };
}

const STEPS: &str = concat!(
    step_columns!(),
    "WHERE s.execution_id = $1 ORDER BY s.started_at, s.id"
);

const DECISIONS: &str = "SELECT step_id, candidate_id, accepted, filter, reason, score \
     FROM xray.decisions WHERE execution_id = $1 ORDER BY step_id, ordinal";

/// Through the steps: `llm_usage` has no index on `execution_id`.
const USAGE: &str = "SELECT u.step_id, u.model, u.prompt_tokens, u.completion_tokens, u.cost_usd \
     FROM xray.steps s JOIN xray.llm_usage u ON u.step_id = s.id \
     WHERE s.execution_id = $1 ORDER BY u.step_id, u.ordinal";

const SOME_STEPS: &str = concat!(
    step_columns!(),
    "WHERE s.execution_id = $1 AND s.id = ANY($2) ORDER BY s.started_at, s.id"
);

const SOME_DECISIONS: &str = "SELECT step_id, candidate_id, accepted, filter, reason, score \
     FROM xray.decisions WHERE step_id = ANY($1) ORDER BY step_id, ordinal";

const SOME_USAGE: &str = "SELECT step_id, model, prompt_tokens, completion_tokens, cost_usd \
     FROM xray.llm_usage WHERE step_id = ANY($1) ORDER BY step_id, ordinal";

/// An execution's LLM calls per model (the [`ModelTokens`] columns): one
/// aggregate, reached through the steps' `(execution_id, …)` index and
/// `llm_usage`'s primary key (`llm_usage` has no index on
/// `execution_id`). A model's cost is the sum of its calls' costs only
/// when every call has one.
const EXECUTION_LLM: &str = "SELECT u.model, count(*), sum(u.prompt_tokens)::int8, \
            sum(u.completion_tokens)::int8, \
            CASE WHEN count(u.cost_usd) = count(*) THEN sum(u.cost_usd) END \
     FROM xray.steps s JOIN xray.llm_usage u ON u.step_id = s.id \
     WHERE s.execution_id = $1 \
     GROUP BY u.model ORDER BY u.model COLLATE \"C\"";

fn model_tokens(r: &Row) -> ModelTokens {
    ModelTokens {
        model: r.get(0),
        calls: r.get(1),
        prompt_tokens: r.get(2),
        completion_tokens: r.get(3),
        cost_usd: r.get(4),
    }
}

async fn execution_llm(
    client: &impl tokio_postgres::GenericClient,
    id: Uuid,
) -> Result<LlmTotals, tokio_postgres::Error> {
    let rows = client.query(EXECUTION_LLM, &[&id]).await?;
    Ok(LlmTotals::of(rows.iter().map(model_tokens).collect()))
}

fn head(row: &Row) -> ExecutionHead {
    ExecutionHead {
        summary: summary(row),
        metadata: row.get(7),
        outcome: row.get(8),
        error: row.get(9),
        trace: TraceContext {
            trace_id: row.get(10),
            parent_span_id: row.get(11),
        },
    }
}

/// A row of [`step_columns!`], with the decisions and usage found for it.
fn step_detail(
    r: &Row,
    decisions: &mut HashMap<Uuid, Vec<DecisionRow>>,
    usage: &mut HashMap<Uuid, Vec<UsageRow>>,
) -> StepDetail {
    let id: Uuid = r.get(0);
    let (reasoning, reasoning_job) = reasoning(r, 11);
    StepDetail {
        id,
        parent_id: r.get(1),
        name: r.get(2),
        kind: r.get(3),
        status: r.get(4),
        input: r.get(5),
        output: r.get(6),
        error: r.get(7),
        attributes: r.get(8),
        started_at_us: r.get(9),
        duration_us: r.get(10),
        decisions: decisions.remove(&id).unwrap_or_default(),
        llm_usage: usage.remove(&id).unwrap_or_default(),
        reasoning,
        reasoning_job,
    }
}

/// The [`reasoning_columns!`] of a row, from column `first`: the step's
/// reasoning, and its job when it has one.
fn reasoning(r: &Row, first: usize) -> (Option<String>, Option<ReasoningJob>) {
    let job = r
        .get::<_, Option<String>>(first + 1)
        .map(|status| ReasoningJob {
            status,
            method: r.get(first + 2),
            attempts: i64::from(r.get::<_, i32>(first + 3)),
            error: r.get(first + 4),
            completed_at_us: r.get(first + 5),
            model: r.get(first + 6),
            prompt_tokens: r.get::<_, Option<i32>>(first + 7).map(i64::from),
            completion_tokens: r.get::<_, Option<i32>>(first + 8).map(i64::from),
            cost_usd: r.get(first + 9),
        });
    (r.get(first), job)
}

/// Rows of a decisions query and a usage query, by step.
#[allow(clippy::type_complexity)]
fn by_step(
    decision_rows: &[Row],
    usage_rows: &[Row],
) -> (
    HashMap<Uuid, Vec<DecisionRow>>,
    HashMap<Uuid, Vec<UsageRow>>,
) {
    let mut decisions: HashMap<Uuid, Vec<DecisionRow>> = HashMap::new();
    for r in decision_rows {
        decisions.entry(r.get(0)).or_default().push(decision(r, 1));
    }
    let mut usage: HashMap<Uuid, Vec<UsageRow>> = HashMap::new();
    for r in usage_rows {
        usage.entry(r.get(0)).or_default().push(UsageRow {
            model: r.get(1),
            prompt_tokens: i64::from(r.get::<_, i32>(2)),
            completion_tokens: i64::from(r.get::<_, i32>(3)),
            cost_usd: r.get(4),
        });
    }
    (decisions, usage)
}

async fn execution(
    client: &mut Client,
    id: Uuid,
) -> Result<Option<ExecutionDetail>, tokio_postgres::Error> {
    let tx = read_only(client).await?;
    let Some(row) = tx.query_opt(EXECUTION, &[&id]).await? else {
        return Ok(None);
    };
    let steps = tx.query(STEPS, &[&id]).await?;
    let (mut decisions, mut usage) = by_step(
        &tx.query(DECISIONS, &[&id]).await?,
        &tx.query(USAGE, &[&id]).await?,
    );
    let llm = execution_llm(&tx, id).await?;
    tx.commit().await?;
    let steps = steps
        .iter()
        .map(|r| step_detail(r, &mut decisions, &mut usage))
        .collect();
    let head = head(&row);
    Ok(Some(head.with_steps(llm, steps)))
}

async fn step_details(
    client: &mut Client,
    execution: Uuid,
    ids: Vec<Uuid>,
) -> Result<Vec<StepDetail>, tokio_postgres::Error> {
    let tx = read_only(client).await?;
    let steps = tx.query(SOME_STEPS, &[&execution, &ids]).await?;
    let found: Vec<Uuid> = steps.iter().map(|r| r.get(0)).collect();
    let (mut decisions, mut usage) = by_step(
        &tx.query(SOME_DECISIONS, &[&found]).await?,
        &tx.query(SOME_USAGE, &[&found]).await?,
    );
    tx.commit().await?;
    Ok(steps
        .iter()
        .map(|r| step_detail(r, &mut decisions, &mut usage))
        .collect())
}

async fn steps(client: &Client, filter: StepFilter) -> Result<StepPage, tokio_postgres::Error> {
    let limit = filter.limit.clamp(1, MAX_STEP_PAGE);
    let mut p = Params::default();
    let execution = p.push(filter.execution);
    let mut conditions = vec![format!("s.execution_id = {execution}")];
    match filter.scope {
        StepScope::All => {}
        StepScope::Roots => conditions.push(format!(
            "(s.parent_id IS NULL OR NOT EXISTS (\
                 SELECT 1 FROM xray.steps p WHERE p.id = s.parent_id AND p.execution_id = {execution}))"
        )),
        StepScope::ChildrenOf(parent) => {
            conditions.push(format!("s.parent_id = {}", p.push(parent)));
        }
    }
    if let Some(after) = filter.after {
        if after.started_at_us >= TIMESTAMPTZ_US.end {
            // Nothing stored can have started after it.
            return Ok(StepPage::from_fetched(Vec::new(), limit));
        }
        // Before the range every stored row is after it: no condition.
        if after.started_at_us >= TIMESTAMPTZ_US.start {
            let t = ts(&p.push(after.started_at_us));
            let id = p.push(after.id);
            conditions.push(format!("(s.started_at, s.id) > ({t}, {id}::uuid)"));
        }
    }
    let fetch = p.push(limit as i64 + 1);
    let sql = format!(
        "SELECT s.id, s.parent_id, s.name, s.kind, s.status, {}, s.duration_us, \
                (SELECT count(*) FROM xray.steps c \
                 WHERE c.execution_id = s.execution_id AND c.parent_id = s.id), \
                (SELECT count(*) FROM xray.decisions d WHERE d.step_id = s.id), \
                s.error IS NOT NULL \
         FROM xray.steps s WHERE {} \
         ORDER BY s.started_at, s.id LIMIT {fetch}::bigint",
        us!("s.started_at"),
        conditions.join(" AND ")
    );
    let rows = client.query(&sql, &p.refs()).await?;
    let steps = rows
        .iter()
        .map(|r| StepOutline {
            id: r.get(0),
            parent_id: r.get(1),
            name: r.get(2),
            kind: r.get(3),
            status: r.get(4),
            started_at_us: r.get(5),
            duration_us: r.get(6),
            children: r.get(7),
            decisions: r.get(8),
            has_error: r.get(9),
        })
        .collect();
    Ok(StepPage::from_fetched(steps, limit))
}

const CANDIDATE: &str = concat!(
    "SELECT s.execution_id, e.name, s.id, s.name, ",
    us!("s.started_at"),
    ", d.candidate_id, d.accepted, d.filter, d.reason, d.score \
     FROM xray.decisions d \
     JOIN xray.steps s ON s.id = d.step_id \
     JOIN xray.executions e ON e.id = s.execution_id \
     WHERE d.candidate_id = $1 AND ($2::uuid IS NULL OR s.execution_id <> $2::uuid) \
     ORDER BY s.started_at DESC, s.id DESC, d.ordinal \
     LIMIT $3"
);

async fn candidate(
    client: &Client,
    candidate: String,
    except: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CandidateEntry>, tokio_postgres::Error> {
    let rows = client
        .query(CANDIDATE, &[&candidate, &except, &limit])
        .await?;
    Ok(rows
        .iter()
        .map(|r| CandidateEntry {
            execution_id: r.get(0),
            execution_name: r.get(1),
            step_id: r.get(2),
            step_name: r.get(3),
            started_at_us: r.get(4),
            decision: decision(r, 5),
        })
        .collect())
}

const WHY: &str = concat!(
    "SELECT d.step_id, s.name, ",
    us!("s.started_at"),
    ", d.candidate_id, d.accepted, d.filter, d.reason, d.score, ",
    reasoning_columns!(),
    " FROM xray.decisions d JOIN xray.steps s ON s.id = d.step_id",
    with_job!(),
    "WHERE d.execution_id = $1 AND d.candidate_id = $2 \
     ORDER BY s.started_at, s.id, d.ordinal"
);

async fn why(
    client: &Client,
    execution: Uuid,
    candidate: String,
) -> Result<Vec<WhyEntry>, tokio_postgres::Error> {
    let rows = client.query(WHY, &[&execution, &candidate]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (reasoning, reasoning_job) = reasoning(r, 8);
            WhyEntry {
                step_id: r.get(0),
                step_name: r.get(1),
                started_at_us: r.get(2),
                decision: decision(r, 3),
                reasoning,
                reasoning_job,
            }
        })
        .collect())
}

/// The matches of `$1` in a window of start times, newest first, at most
/// `$2`, with their rank. `xray.step_search` is partitioned by the day a
/// step started (migration 10), so a window's query reads only the
/// partitions of its days; in one table, every window visited the word's
/// matches all over it (BENCHMARKS.md, issue 12). The rank is computed
/// over the window's newest matches only.
macro_rules! newest_matches {
    ($window:expr) => {
        concat!(
            "SELECT m.step_id, ts_rank(m.search, plainto_tsquery('simple', $1))::float8 FROM ( \
                 SELECT x.step_id, x.search FROM xray.step_search x \
                 WHERE x.search @@ plainto_tsquery('simple', $1) AND ",
            $window,
            "    ORDER BY x.started_at DESC LIMIT $2) m"
        )
    };
}
// The bounds are `timestamptz` parameters, not microseconds turned into
// one in SQL: compared with a value, the partitions are pruned when the
// statement is planned (0.2 ms), while an expression of the parameter
// (`'epoch' + µs * interval`, only stable) leaves every partition to be
// planned and pruned when it runs (25 ms at 32 partitions, more with every
// day kept).
const NEWEST_SINCE: &str = newest_matches!("x.started_at >= $3::timestamptz");
const NEWEST_BETWEEN: &str =
    newest_matches!("x.started_at >= $3::timestamptz AND x.started_at < $4::timestamptz");
const NEWEST_BEFORE: &str = newest_matches!("x.started_at < $3::timestamptz");
const NEWEST_ANY: &str = newest_matches!("true");

/// The windows the newest matches are looked for in, by age from now
/// (µs), newest first; then everything older: an hour, a day, then
/// doubling to 512 days. Each window's query reads only the partitions
/// of its days and stops at what is still wanted, so a common word costs
/// a day or two of its matches and a rare one a dozen quick queries
/// (BENCHMARKS.md, issue 12; in one table, every window rebuilt the
/// word's whole bitmap and five coarse windows measured best).
const SEARCH_WINDOWS: [i64; 11] = {
    const DAY: i64 = 86_400_000_000;
    [
        DAY / 24,
        DAY,
        2 * DAY,
        4 * DAY,
        8 * DAY,
        16 * DAY,
        32 * DAY,
        64 * DAY,
        128 * DAY,
        256 * DAY,
        512 * DAY,
    ]
};

/// The steps `$2` (the newest [`SEARCH_NEWEST`] matches), ranked `$3`:
/// only those that can make the page — ranked at least as well as the
/// `$1`-th best, ties included — are joined to their steps and executions
/// for the full order (rank, then newest, then id).
const SEARCH: &str = concat!(
    "WITH ranked AS MATERIALIZED ( \
         SELECT * FROM unnest($2::uuid[], $3::float8[]) AS r(step_id, rank)), \
     cut AS (SELECT rank FROM ranked ORDER BY rank DESC LIMIT 1 OFFSET greatest($1::int8 - 1, 0)) \
     SELECT s.execution_id, e.name, s.id, s.name, s.status, ",
    us!("s.started_at"),
    ", r.rank \
     FROM ranked r JOIN xray.steps s ON s.id = r.step_id \
          JOIN xray.executions e ON e.id = s.execution_id \
     WHERE r.rank >= coalesce((SELECT rank FROM cut), '-Infinity'::float8) \
     ORDER BY r.rank DESC, s.started_at DESC, s.id \
     LIMIT $1"
);

/// In one read-only transaction: the newest matches, window by window
/// until there are [`SEARCH_NEWEST`] (or no older window), then their
/// ranking. The bitmaps get enough `work_mem` to stay exact (a lossy one
/// rechecks every row of its pages). With a `timeout`, each statement
/// runs under a `statement_timeout` of what is left of it, which the
/// server enforces (`57014`, read as [`StoreError::TimedOut`]).
async fn search(
    client: &mut Client,
    text: String,
    limit: i64,
    timeout: Option<Duration>,
) -> Result<Vec<SearchHit>, tokio_postgres::Error> {
    let tx = read_only(client).await?;
    tx.batch_execute("SET LOCAL work_mem = '64MB'").await?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let now = jiff::Timestamp::now().as_microsecond();
    let mut ids: Vec<Uuid> = Vec::new();
    let mut ranks: Vec<f64> = Vec::new();
    let mut seen: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    let mut newer_than: Option<i64> = None;
    // Each window's lower bound (None: no bound, the oldest window).
    let froms = SEARCH_WINDOWS
        .iter()
        .map(|age| Some(now.saturating_sub(*age)))
        .chain([None]);
    for from in froms {
        let left = SEARCH_NEWEST - ids.len() as i64;
        if left <= 0 {
            break;
        }
        time_left(&tx, deadline).await?;
        let rows = match (from.map(system_time), newer_than.map(system_time)) {
            (Some(from), None) => tx.query(NEWEST_SINCE, &[&text, &left, &from]).await?,
            (Some(from), Some(to)) => {
                tx.query(NEWEST_BETWEEN, &[&text, &left, &from, &to])
                    .await?
            }
            (None, Some(to)) => tx.query(NEWEST_BEFORE, &[&text, &left, &to]).await?,
            (None, None) => tx.query(NEWEST_ANY, &[&text, &left]).await?,
        };
        for row in &rows {
            // A step has one entry, in the partition of its start day; a
            // step whose start changed between its records could have
            // left one at the old day too: it counts once.
            let id: Uuid = row.get(0);
            if seen.insert(id) {
                ids.push(id);
                ranks.push(row.get(1));
            }
        }
        newer_than = from;
    }
    time_left(&tx, deadline).await?;
    let rows = tx.query(SEARCH, &[&limit, &ids, &ranks]).await?;
    tx.commit().await?;
    Ok(rows
        .iter()
        .map(|r| SearchHit {
            execution_id: r.get(0),
            execution_name: r.get(1),
            step_id: r.get(2),
            step_name: r.get(3),
            status: r.get(4),
            started_at_us: r.get(5),
            rank: r.get(6),
        })
        .collect())
}

/// Microseconds since the Unix epoch as a time (a `timestamptz`
/// parameter), before the epoch as well as after.
fn system_time(us: i64) -> SystemTime {
    let offset = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        UNIX_EPOCH + offset
    } else {
        UNIX_EPOCH - offset
    }
}

/// Before each statement of a search with a deadline: a
/// `statement_timeout` of what is left, in whole milliseconds, at least
/// one (0 would mean no limit).
async fn time_left(
    tx: &Transaction<'_>,
    deadline: Option<Instant>,
) -> Result<(), tokio_postgres::Error> {
    if let Some(deadline) = deadline {
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .clamp(1, i32::MAX as u128);
        tx.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
            .await?;
    }
    Ok(())
}

/// Stats per step name: the day rollups for the window's whole days, the
/// hour rollups for the whole hours before them, the finished steps before
/// those (see [`rollup::window`]); `$1` whole days from (µs, NULL: all),
/// `$2` whole hours from, `$3` since (NULL: neither hours nor steps), `$4`
/// name or NULL.
const STEP_STATS: &str = concat!(
    "WITH names AS (SELECT ARRAY(SELECT DISTINCT name FROM xray.step_rollups \
                                 WHERE width = 'day' AND ($4::text IS NULL OR name = $4)) AS a) \
     SELECT name, bucket, sum(finished)::int8, sum(errors)::int8, max(max_us) FROM ( \
         SELECT name, bucket, finished, errors, max_us FROM xray.step_rollups \
         WHERE width = 'day' AND finished > 0 AND ($1::int8 IS NULL OR start >= ",
    ts!("$1"),
    ") AND ($4::text IS NULL OR name = $4) \
         UNION ALL \
         SELECT name, bucket, finished, errors, max_us FROM xray.step_rollups, names \
         WHERE width = 'hour' AND finished > 0 AND $2::int8 IS NOT NULL AND name = ANY (names.a) \
           AND start >= ",
    ts!("$2"),
    " AND start < ",
    ts!("$1"),
    " UNION ALL \
         SELECT name, xray.duration_bucket(duration_us), count(*), \
                count(*) FILTER (WHERE status <> 'ok'), max(duration_us) \
         FROM xray.steps, names \
         WHERE $3::int8 IS NOT NULL AND duration_us IS NOT NULL AND name = ANY (names.a) \
           AND started_at >= ",
    ts!("$3"),
    " AND started_at < ",
    ts!("$2"),
    " GROUP BY 1, 2) b \
     GROUP BY 1, 2"
);

/// LLM calls and tokens per model over the same window, and those tokens
/// priced at the current prices (`model_prices`; the rollups keep tokens,
/// not cost): NULL for a model without a price.
const MODEL_STATS: &str = concat!(
    "WITH names AS (SELECT ARRAY(SELECT DISTINCT name FROM xray.model_rollups \
                                 WHERE width = 'day' AND ($4::text IS NULL OR name = $4)) AS a) \
     SELECT t.model, t.calls, t.prompt_tokens, t.completion_tokens, \
            (t.prompt_tokens * p.prompt_usd_per_million \
             + t.completion_tokens * p.completion_usd_per_million) / 1000000 FROM ( \
     SELECT model, sum(calls)::int8 AS calls, sum(prompt_tokens)::int8 AS prompt_tokens, \
            sum(completion_tokens)::int8 AS completion_tokens FROM ( \
         SELECT model, calls, prompt_tokens, completion_tokens FROM xray.model_rollups \
         WHERE width = 'day' AND ($1::int8 IS NULL OR start >= ",
    ts!("$1"),
    ") AND ($4::text IS NULL OR name = $4) \
         UNION ALL \
         SELECT model, calls, prompt_tokens, completion_tokens FROM xray.model_rollups, names \
         WHERE width = 'hour' AND $2::int8 IS NOT NULL AND name = ANY (names.a) \
           AND start >= ",
    ts!("$2"),
    " AND start < ",
    ts!("$1"),
    " UNION ALL \
         SELECT u.model, 1, u.prompt_tokens, u.completion_tokens \
         FROM xray.steps s JOIN xray.llm_usage u ON u.step_id = s.id, names \
         WHERE $3::int8 IS NOT NULL AND s.name = ANY (names.a) AND s.started_at >= ",
    ts!("$3"),
    " AND s.started_at < ",
    ts!("$2"),
    ") m \
     GROUP BY model HAVING sum(calls) > 0) t \
     LEFT JOIN xray.model_prices p ON p.model = t.model \
     ORDER BY t.model COLLATE \"C\""
);

async fn stats(
    client: &mut Client,
    since_us: Option<i64>,
    name: Option<String>,
) -> Result<Stats, tokio_postgres::Error> {
    let w = rollup::window(since_us);
    let params: [&(dyn ToSql + Sync); 4] =
        [&w.whole_days_us, &w.whole_hours_us, &w.since_us, &name];
    let tx = read_only(client).await?;
    let buckets = tx.query(STEP_STATS, &params).await?;
    let steps = rollup::stats_by_name(buckets.iter().map(|r| {
        (
            r.get::<_, String>(0),
            Bucket {
                bucket: r.get(1),
                count: r.get(2),
                errors: r.get(3),
                max_us: r.get(4),
            },
        )
    }));
    let models = tx
        .query(MODEL_STATS, &params)
        .await?
        .iter()
        .map(model_tokens)
        .collect();
    tx.commit().await?;
    Ok(Stats { steps, models })
}

impl QueryStore for PostgresStore {
    async fn executions(&self, filter: &ExecutionFilter) -> Result<ExecutionPage, StoreError> {
        let filter = filter.clone();
        self.with_client(move |c| Box::pin(executions(c, filter)))
            .await
    }

    async fn latest_execution(&self, project: Option<&str>) -> Result<Option<Uuid>, StoreError> {
        let project = project.map(str::to_owned);
        self.with_client(move |c| Box::pin(latest_execution(c, project)))
            .await
    }

    async fn existing_executions(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, StoreError> {
        let ids = ids.to_vec();
        self.with_client(move |c| {
            Box::pin(async move {
                let rows = c
                    .query(
                        "SELECT id FROM xray.executions WHERE id = ANY ($1)",
                        &[&ids],
                    )
                    .await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
        .await
    }

    async fn execution(&self, id: Uuid) -> Result<Option<ExecutionDetail>, StoreError> {
        self.with_client(move |c| Box::pin(execution(c, id))).await
    }

    async fn execution_head(&self, id: Uuid) -> Result<Option<ExecutionHead>, StoreError> {
        self.with_client(move |c| {
            Box::pin(async move { Ok(c.query_opt(EXECUTION, &[&id]).await?.map(|r| head(&r))) })
        })
        .await
    }

    async fn execution_llm(&self, id: Uuid) -> Result<LlmTotals, StoreError> {
        self.with_client(move |c| Box::pin(async move { execution_llm(&*c, id).await }))
            .await
    }

    async fn steps(&self, filter: &StepFilter) -> Result<StepPage, StoreError> {
        let filter = filter.clone();
        self.with_client(move |c| Box::pin(steps(c, filter))).await
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
        self.with_client(move |c| Box::pin(step_details(c, execution, ids)))
            .await
    }

    async fn candidate(
        &self,
        candidate_id: &str,
        except: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<CandidateEntry>, StoreError> {
        let candidate_id = candidate_id.to_owned();
        let limit = limit.clamp(1, MAX_CANDIDATE_ENTRIES) as i64;
        self.with_client(move |c| Box::pin(candidate(c, candidate_id, except, limit)))
            .await
    }

    async fn why(&self, execution: Uuid, candidate: &str) -> Result<Vec<WhyEntry>, StoreError> {
        let candidate = candidate.to_owned();
        self.with_client(move |c| Box::pin(why(c, execution, candidate)))
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let text = text.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client(move |c| Box::pin(search(c, text, limit, timeout)))
            .await
    }

    async fn stats(&self, since_us: Option<i64>, name: Option<&str>) -> Result<Stats, StoreError> {
        let name = name.map(str::to_owned);
        self.with_client(move |c| Box::pin(stats(c, since_us, name)))
            .await
    }
}
