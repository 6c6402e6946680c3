//! Reading traces back: the queries behind `executions`, `show`, `why`,
//! `search` and `stats`, answered by both backends ([`QueryStore`]).
//!
//! Times are microseconds since the Unix epoch throughout, as in the
//! outbox. Pagination is keyset pagination on `(started_at, id)`, newest
//! first: a [`Cursor`] names the last row of a page, so pages stay stable
//! while new executions arrive.

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
    /// The opaque form: `<µs in hex>-<uuid in hex>`.
    pub fn encode(&self) -> String {
        format!("{:x}.{}", self.started_at_us, self.id.simple())
    }

    /// Parses what [`Cursor::encode`] printed.
    pub fn decode(text: &str) -> Result<Cursor, String> {
        let bad =
            || format!("invalid cursor {text:?}: pass the value printed after the previous page");
        let (ts, id) = text.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            started_at_us: i64::from_str_radix(ts, 16).map_err(|_| bad())?,
            id: Uuid::parse_str(id).map_err(|_| bad())?,
        })
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
/// LLM usage, as stored.
pub use crate::model::LlmUsage as UsageRow;

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
}

/// An execution with all its steps (in start order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExecutionDetail {
    /// The execution.
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    /// Metadata JSON.
    pub metadata: Option<Value>,
    /// Outcome JSON.
    pub outcome: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its steps, ordered by start time.
    pub steps: Vec<StepDetail>,
}

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

/// Tokens per model (`stats`).
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
}

/// What `stats` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Per step name, by name.
    pub steps: Vec<StepStats>,
    /// Per model, by model.
    pub models: Vec<ModelTokens>,
}

/// Parses `--since`/`--until`: `30s`, `30m`, `2h`, `7d` (before now), or an
/// RFC 3339 time (`2026-11-21T10:00:00Z`, `…+02:00`). Returns µs since the epoch.
pub fn parse_time(text: &str, now_us: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!("invalid time {text:?}: use a duration like 30m, 2h or 7d, or an RFC 3339 time like 2026-11-21T10:00:00Z")
    };
    if let Some(unit) = t.chars().last().filter(|c| c.is_ascii_alphabetic()) {
        let number = &t[..t.len() - 1];
        if let Ok(n) = number.parse::<u64>() {
            let seconds = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 7 * 86_400,
                _ => return Err(bad()),
            };
            let us = n.checked_mul(seconds * 1_000_000).ok_or_else(bad)?;
            return Ok(now_us - i64::try_from(us).map_err(|_| bad())?);
        }
    }
    parse_rfc3339(t).ok_or_else(bad)
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` → µs since the epoch.
fn parse_rfc3339(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &t[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        let padded = format!("{:0<6}", &digits[..digits.len().min(6)]);
        micros = padded.parse().ok()?;
        rest = &frac[digits.len()..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(seconds * 1_000_000 + micros)
}

/// Formats µs since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_time(us: i64) -> String {
    let seconds = us.div_euclid(1_000_000);
    let millis = us.rem_euclid(1_000_000) / 1000;
    let days = seconds.div_euclid(86_400);
    let sod = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times_parse() {
        let now = 1_800_000_000_000_000;
        assert_eq!(parse_time("30m", now), Ok(now - 1_800_000_000));
        assert_eq!(parse_time("2h", now), Ok(now - 7_200_000_000));
        assert_eq!(parse_time("7d", now), Ok(now - 604_800_000_000));
        assert_eq!(parse_time("1970-01-01T00:00:00Z", now), Ok(0));
        assert_eq!(
            parse_time("2026-11-21T10:00:00.5+02:00", now),
            Ok(1_795_248_000_500_000)
        );
        for bad in [
            "",
            "yesterday",
            "5y",
            "2026-13-01T00:00:00Z",
            "2026-11-21",
            "-3h",
            "99999999999999999999d",
        ] {
            let err = parse_time(bad, now).unwrap_err();
            assert!(err.contains("invalid time"), "{bad}: {err}");
        }
    }

    #[test]
    fn times_format_and_parse_back() {
        for us in [0, 1_795_248_000_500_000, 951_782_400_000_000] {
            assert_eq!(parse_time(&format_time(us), 0), Ok(us - us % 1000));
        }
        assert_eq!(format_time(951_782_400_000_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            started_at_us: 1_795_248_000_500_000,
            id: Uuid::from_u128(7),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        for bad in [
            "",
            "abc",
            "zz.00000000000000000000000000000007",
            "1.not-a-uuid",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
