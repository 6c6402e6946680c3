//! Reading traces back: the queries behind `executions`, `show`, `why`,
//! `search` and `stats`, answered by both backends ([`QueryStore`]).
//!
//! Times are microseconds since the Unix epoch throughout, as in the
//! outbox. Pagination is keyset pagination on `(started_at, id)`, newest
//! first: a [`Cursor`] names the last row of a page, so pages stay stable
//! while new executions arrive.

pub mod rollup;
mod time;

pub use time::{format_time, parse_duration, parse_time};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Filters of `executions`.
#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Only this project.
    pub project: Option<String>,
    /// Only executions of this name.
    pub name: Option<String>,
    /// Only this status (`running | ok | error`).
    pub status: Option<String>,
    /// Started at or after (µs).
    pub since_us: Option<i64>,
    /// Started before (µs).
    pub until_us: Option<i64>,
    /// Page size (1..=1000).
    pub limit: usize,
    /// Continue after this row.
    pub after: Option<Cursor>,
}

/// The position after which the next page starts: the last row's start
/// time and id. Printed and parsed as an opaque token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `started_at` of the last row shown (µs).
    pub started_at_us: i64,
    /// `id` of the last row shown.
    pub id: Uuid,
}

impl Cursor {
    /// The opaque form: `<µs in hex, with a `-` when negative>.<uuid in hex>`,
    /// e.g. `19a5d3c4e1b20.01a1fcd92d947345…` or `-f4240.…` for a start
    /// before 1970. Every `i64` has exactly one spelling.
    pub fn encode(&self) -> String {
        let sign = if self.started_at_us < 0 { "-" } else { "" };
        format!(
            "{sign}{:x}.{}",
            self.started_at_us.unsigned_abs(),
            self.id.simple()
        )
    }

    /// Parses what [`Cursor::encode`] printed, and only that: any other
    /// spelling (upper case, a `+`, leading zeros, a hyphenated id) is
    /// refused, so a cursor is never silently read as another position.
    pub fn decode(text: &str) -> Result<Cursor, String> {
        let bad =
            || format!("invalid cursor {text:?}: pass the value printed after the previous page");
        let (ts, id) = text.split_once('.').ok_or_else(bad)?;
        let (negative, digits) = match ts.strip_prefix('-') {
            Some(digits) => (true, digits),
            None => (false, ts),
        };
        let magnitude = u64::from_str_radix(digits, 16).map_err(|_| bad())?;
        let started_at_us = if negative {
            0i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(magnitude).ok()
        }
        .ok_or_else(bad)?;
        let cursor = Cursor {
            started_at_us,
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        };
        if cursor.encode() != text {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// One execution in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionSummary {
    /// Id.
    pub id: Uuid,
    /// Project.
    pub project: String,
    /// Name.
    pub name: String,
    /// `running | ok | error`.
    pub status: String,
    /// Start (µs since the epoch).
    pub started_at_us: i64,
    /// End (µs), if finished.
    pub ended_at_us: Option<i64>,
    /// Steps recorded.
    pub steps: i64,
}

/// A page of executions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionPage {
    /// The executions.
    pub executions: Vec<ExecutionSummary>,
    /// Where the next page starts; `None` on the last page.
    #[serde(serialize_with = "cursor_text")]
    pub next_cursor: Option<Cursor>,
}

fn cursor_text<S: serde::Serializer>(c: &Option<Cursor>, s: S) -> Result<S::Ok, S::Error> {
    match c {
        Some(c) => s.serialize_some(&c.encode()),
        None => s.serialize_none(),
    }
}

/// A decision, as stored (the shipped form is the stored form).
pub use crate::model::Decision as DecisionRow;
/// One LLM call of a step, as stored: its tokens and what they cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// Model.
    pub model: String,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// US dollars, priced when the row was written (`llm_usage.cost_usd`);
    /// `None` when the model had no price then.
    pub cost_usd: Option<f64>,
}

/// A step's reasoning job (`reasoning_jobs`, one per step): where its
/// explanation stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasoningJob {
    /// `pending | processing | completed | failed`.
    pub status: String,
    /// The reasoner that took it last (`rules`, `llm`).
    pub method: String,
    /// Attempts made.
    pub attempts: i64,
    /// The last attempt's error, when it failed.
    pub error: Option<String>,
    /// When it completed (µs).
    pub completed_at_us: Option<i64>,
    /// The model the LLM reasoner asked, once it answered.
    pub model: Option<String>,
    /// The prompt tokens that call used, if the server counted them.
    pub prompt_tokens: Option<i64>,
    /// Its completion tokens.
    pub completion_tokens: Option<i64>,
    /// What it cost (USD) at the model's price; `None` without a price.
    pub cost_usd: Option<f64>,
}

/// One step of an execution, whole.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepDetail {
    /// Id.
    pub id: Uuid,
    /// Enclosing step.
    pub parent_id: Option<Uuid>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Option<String>,
    /// Status.
    pub status: String,
    /// Input JSON.
    pub input: Option<Value>,
    /// Output JSON.
    pub output: Option<Value>,
    /// Error text.
    pub error: Option<String>,
    /// Attributes JSON.
    pub attributes: Option<Value>,
    /// Start (µs).
    pub started_at_us: i64,
    /// Duration (µs), if finished.
    pub duration_us: Option<i64>,
    /// Decisions, in order.
    pub decisions: Vec<DecisionRow>,
    /// LLM usage, in order.
    pub llm_usage: Vec<UsageRow>,
    /// Its explanation (`steps.reasoning`), once written.
    pub reasoning: Option<String>,
    /// Its reasoning job, when it has one (a step with decisions or a
    /// failure): the explanation may still be coming, or have failed while
    /// an earlier text stays in `reasoning`.
    pub reasoning_job: Option<ReasoningJob>,
}

/// An execution with all its steps (in start order). As JSON (`show
/// --json`) the execution's count of steps is `step_count`, beside the
/// `steps` themselves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionDetail {
    /// The execution.
    #[serde(flatten, serialize_with = "summary_with_step_count")]
    pub summary: ExecutionSummary,
    /// Metadata JSON.
    pub metadata: Option<Value>,
    /// Outcome JSON.
    pub outcome: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its W3C trace.
    #[serde(flatten)]
    pub trace: TraceContext,
    /// Its LLM calls, per model, and what they cost.
    pub llm: LlmTotals,
    /// Its steps, ordered by start time.
    pub steps: Vec<StepDetail>,
}

/// An execution's W3C trace context (lowercase hex): its trace id — its
/// own UUID unless it continues a caller's trace — and the caller's span,
/// when it continues one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TraceContext {
    /// The trace id (`None` only for a row the database has none for).
    pub trace_id: Option<String>,
    /// The remote parent span.
    pub parent_span_id: Option<String>,
}

/// An execution's fields with its count of steps named `step_count`, so
/// that it does not collide with the array of steps next to it.
fn summary_with_step_count<S: serde::Serializer>(
    summary: &ExecutionSummary,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Fields<'a> {
        id: &'a Uuid,
        project: &'a str,
        name: &'a str,
        status: &'a str,
        started_at_us: i64,
        ended_at_us: Option<i64>,
        step_count: i64,
    }
    Fields {
        id: &summary.id,
        project: &summary.project,
        name: &summary.name,
        status: &summary.status,
        started_at_us: summary.started_at_us,
        ended_at_us: summary.ended_at_us,
        step_count: summary.steps,
    }
    .serialize(serializer)
}

/// An execution without its steps: what a page about it shows first,
/// however many steps it has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionHead {
    /// The execution.
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    /// Metadata JSON.
    pub metadata: Option<Value>,
    /// Outcome JSON.
    pub outcome: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its W3C trace.
    #[serde(flatten)]
    pub trace: TraceContext,
}

impl ExecutionHead {
    /// The execution whole, with its LLM totals and these steps (in start
    /// order).
    pub fn with_steps(self, llm: LlmTotals, steps: Vec<StepDetail>) -> ExecutionDetail {
        ExecutionDetail {
            summary: self.summary,
            metadata: self.metadata,
            outcome: self.outcome,
            error: self.error,
            trace: self.trace,
            llm,
            steps,
        }
    }
}

/// The largest page of steps [`QueryStore::steps`](crate::backend::QueryStore::steps) returns.
pub const MAX_STEP_PAGE: usize = 5000;

/// Which steps of an execution a [`StepFilter`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepScope {
    /// Every step, whatever its depth.
    All,
    /// The top-level steps: no parent, or a parent that is not a step of
    /// this execution (it never arrived).
    Roots,
    /// The direct children of this step.
    ChildrenOf(Uuid),
}

/// A page of one execution's steps, in start order (`started_at, id`
/// ascending): the cursor is the last step of the previous page.
#[derive(Debug, Clone)]
pub struct StepFilter {
    /// The execution.
    pub execution: Uuid,
    /// Which of its steps.
    pub scope: StepScope,
    /// Page size (1..=[`MAX_STEP_PAGE`]).
    pub limit: usize,
    /// Continue after this step.
    pub after: Option<Cursor>,
}

/// A step without its values: enough to draw it in a tree or a waterfall.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepOutline {
    /// Id.
    pub id: Uuid,
    /// Enclosing step.
    pub parent_id: Option<Uuid>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Option<String>,
    /// Status.
    pub status: String,
    /// Start (µs).
    pub started_at_us: i64,
    /// Duration (µs), if finished.
    pub duration_us: Option<i64>,
    /// Direct children recorded.
    pub children: i64,
    /// Decisions recorded.
    pub decisions: i64,
    /// Whether it has an error text.
    pub has_error: bool,
}

/// A page of steps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepPage {
    /// The steps, in start order.
    pub steps: Vec<StepOutline>,
    /// Where the next page starts; `None` on the last page.
    #[serde(serialize_with = "cursor_text")]
    pub next_cursor: Option<Cursor>,
}

impl StepPage {
    /// Trims a page fetched with one row more than `limit` to `limit`,
    /// with the cursor of its last row when a row was cut.
    pub fn from_fetched(mut steps: Vec<StepOutline>, limit: usize) -> StepPage {
        let next_cursor = cut_page(&mut steps, limit, |s| (s.started_at_us, s.id));
        StepPage { steps, next_cursor }
    }
}

/// Trims rows fetched with one more than `limit` to `limit`; the cursor
/// (`(started_at_us, id)` of the last row kept) when a row was cut, so
/// the next page starts after it.
pub fn cut_page<T>(
    rows: &mut Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> (i64, Uuid),
) -> Option<Cursor> {
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(|row| {
        let (started_at_us, id) = key(row);
        Cursor { started_at_us, id }
    })
}

/// One decision about a candidate, anywhere (`candidate`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateEntry {
    /// The execution.
    pub execution_id: Uuid,
    /// Its name.
    pub execution_name: String,
    /// The step.
    pub step_id: Uuid,
    /// Its name.
    pub step_name: String,
    /// Its start (µs).
    pub started_at_us: i64,
    /// The decision.
    #[serde(flatten)]
    pub decision: DecisionRow,
}

/// The largest number of entries [`QueryStore::candidate`](crate::backend::QueryStore::candidate) returns.
pub const MAX_CANDIDATE_ENTRIES: usize = 500;

/// How many of the newest matching steps `search` ranks: a word found in
/// millions of steps costs the ranking of these, not of every match. A
/// word rarer than this is ranked over all its matches.
pub const SEARCH_NEWEST: i64 = 10_000;

/// One step where a candidate was decided on (`why`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WhyEntry {
    /// The step.
    pub step_id: Uuid,
    /// Its name.
    pub step_name: String,
    /// Its start (µs).
    pub started_at_us: i64,
    /// The decision.
    #[serde(flatten)]
    pub decision: DecisionRow,
    /// The step's explanation (`steps.reasoning`), once written: the same
    /// on every entry of one step.
    pub reasoning: Option<String>,
    /// The step's reasoning job, when it has one, as in
    /// [`StepDetail::reasoning_job`].
    pub reasoning_job: Option<ReasoningJob>,
}

/// A full-text match (`search`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// The execution.
    pub execution_id: Uuid,
    /// Its name.
    pub execution_name: String,
    /// The matching step.
    pub step_id: Uuid,
    /// Its name.
    pub step_name: String,
    /// Its status.
    pub status: String,
    /// Its start (µs).
    pub started_at_us: i64,
    /// Relevance, higher is better (backend-specific scale).
    pub rank: f64,
}

/// Per step name (`stats`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStats {
    /// Step name.
    pub name: String,
    /// Finished steps.
    pub count: i64,
    /// Of those, not `ok`.
    pub errors: i64,
    /// Median duration (µs).
    pub p50_us: i64,
    /// 95th percentile duration (µs).
    pub p95_us: i64,
    /// Longest (µs).
    pub max_us: i64,
}

/// LLM calls, tokens and cost of one model: over a window (`stats`) or
/// in one execution ([`LlmTotals`]).
///
/// What `cost_usd` is depends on where it comes from. In `stats`, whose
/// figures come from rollups that keep tokens and not cost, it is the
/// summed tokens priced at the **current** prices (`model_prices`, as the
/// collector last wrote them), not what the calls cost when they were
/// made; `None` when the model has no price now. In an execution, it is
/// the sum of its calls' own costs (priced when written); `None` when
/// any of those calls has none — a model without a price has no cost,
/// never a partial one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelTokens {
    /// Model.
    pub model: String,
    /// Calls recorded.
    pub calls: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Completion tokens.
    pub completion_tokens: i64,
    /// US dollars (see above); `None`: no price.
    pub cost_usd: Option<f64>,
}

/// An execution's LLM calls: per model, by model, and in total.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LlmTotals {
    /// Per model, by model name.
    pub models: Vec<ModelTokens>,
    /// Calls, all models.
    pub calls: i64,
    /// Prompt tokens, all models.
    pub prompt_tokens: i64,
    /// Completion tokens, all models.
    pub completion_tokens: i64,
    /// US dollars, all models; `None` when a model has no cost (never the
    /// sum of the priced ones only), `Some(0.0)` with no call at all.
    pub cost_usd: Option<f64>,
}

impl LlmTotals {
    /// The totals of these per-model rows.
    pub fn of(models: Vec<ModelTokens>) -> LlmTotals {
        LlmTotals {
            calls: models.iter().map(|m| m.calls).sum(),
            prompt_tokens: models.iter().map(|m| m.prompt_tokens).sum(),
            completion_tokens: models.iter().map(|m| m.completion_tokens).sum(),
            cost_usd: models.iter().map(|m| m.cost_usd).sum(),
            models,
        }
    }
}

/// What `stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Per step name, by name.
    pub steps: Vec<StepStats>,
    /// Per model, by model.
    pub models: Vec<ModelTokens>,
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        for started_at_us in [1_795_248_000_500_000, 0, -1, -1_000_000, i64::MIN, i64::MAX] {
            let c = Cursor {
                started_at_us,
                id: Uuid::from_u128(7),
            };
            assert_eq!(Cursor::decode(&c.encode()), Ok(c), "{}", c.encode());
        }
        assert_eq!(
            Cursor {
                started_at_us: -255,
                id: Uuid::from_u128(7)
            }
            .encode(),
            "-ff.00000000000000000000000000000007"
        );
        for bad in [
            "",
            "abc",
            "zz.00000000000000000000000000000007",
            "1.not-a-uuid",
            // {:x} of a negative number, as cursors were once printed.
            "ffffffffffffffff.00000000000000000000000000000007",
            "-8000000000000001.00000000000000000000000000000007",
            "8000000000000000.00000000000000000000000000000007",
            "+ff.00000000000000000000000000000007",
            "-0.00000000000000000000000000000007",
            "0ff.00000000000000000000000000000007",
            "FF.00000000000000000000000000000007",
            "ff.00000000-0000-0000-0000-000000000007",
            "ff.00000000000000000000000000000007.",
            "--ff.00000000000000000000000000000007",
            " ff.00000000000000000000000000000007",
        ] {
            let err = Cursor::decode(bad).unwrap_err();
            assert!(err.starts_with("invalid cursor"), "{bad}: {err}");
        }
    }

    fn model(name: &str, cost_usd: Option<f64>) -> ModelTokens {
        ModelTokens {
            model: name.into(),
            calls: 2,
            prompt_tokens: 100,
            completion_tokens: 10,
            cost_usd,
        }
    }

    #[test]
    fn an_executions_total_cost_is_unknown_when_a_model_has_none() {
        let priced = LlmTotals::of(vec![model("a", Some(0.25)), model("b", Some(0.5))]);
        assert_eq!(
            (priced.calls, priced.prompt_tokens, priced.completion_tokens),
            (4, 200, 20)
        );
        assert_eq!(priced.cost_usd, Some(0.75));
        let partly = LlmTotals::of(vec![model("a", Some(0.25)), model("b", None)]);
        assert_eq!(partly.cost_usd, None, "never the priced part alone");
        assert_eq!(partly.calls, 4);
        assert_eq!(
            LlmTotals::of(vec![]).cost_usd,
            Some(0.0),
            "no call costs nothing"
        );
    }

    proptest! {
        #[test]
        fn every_cursor_round_trips(started_at_us in any::<i64>(), id in any::<u128>()) {
            let c = Cursor { started_at_us, id: Uuid::from_u128(id) };
            prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn garbage_is_refused_or_is_a_cursor_spelt_exactly(text in "\\PC{0,60}|-?[0-9a-fA-F+-]{0,18}\\.[0-9a-f-]{30,40}") {
            // Whatever it is, decoding answers (never panics), and only a
            // text that is the canonical spelling of a cursor is accepted.
            match Cursor::decode(&text) {
                Ok(c) => prop_assert_eq!(c.encode(), text),
                Err(e) => prop_assert!(e.starts_with("invalid cursor"), "{}", e),
            }
        }
    }
}
