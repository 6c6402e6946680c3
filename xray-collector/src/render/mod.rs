//! Human output of the query commands: trees, tables and previews, with
//! colour only when asked (the CLI asks when stdout is a terminal).
//!
//! Every captured string — names, kinds, statuses, ids, errors, values,
//! filters, reasons, models, projects — reaches the text through
//! [`escape`] (see `escape.rs` for what is spelt out and why):
//! styled text is escaped by [`Style`] itself, the rest where it is
//! written. `--json` documents are written by [`to_json`] (or, for `show`,
//! streamed by [`ExecutionJson`]), which leaves those characters to JSON
//! escapes.
//!
//! A tree of steps is drawn from its shape alone ([`StepTree`], see
//! `tree.rs`) one step at a time ([`TreeLines`]), so that `show` can read a
//! large execution's values in batches and never hold them all.

mod escape;
mod json;
mod tree;

pub use escape::{escape, escape_lines};
pub use json::{to_json, ExecutionJson};
pub use tree::{Hidden, StepTree, TreeCut, Visit, Walk, Within};

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use anstyle::AnsiColor;
use serde_json::Value;
use uuid::Uuid;

use crate::backend::{PruneFilter, Pruned};
use crate::query::{
    format_time, DecisionRow, ExecutionDetail, ExecutionHead, ExecutionPage, ExecutionSummary,
    LlmTotals, ReasoningJob, SearchHit, Stats, StepDetail, TraceContext, WhyEntry,
};

/// Whether to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours on.
    pub colour: bool,
}

impl Style {
    /// `text`, escaped, in `style` when colour is on.
    fn paint(&self, style: anstyle::Style, text: &str) -> String {
        let text = escape(text);
        if self.colour {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.into_owned()
        }
    }

    fn status(&self, status: &str) -> String {
        let colour = match status {
            "ok" => AnsiColor::Green,
            "error" | "panicked" => AnsiColor::Red,
            "running" => AnsiColor::Yellow,
            "cancelled" => AnsiColor::Magenta,
            _ => return escape(status).into_owned(),
        };
        self.paint(colour.on_default(), status)
    }

    fn dim(&self, text: &str) -> String {
        self.paint(anstyle::Style::new().dimmed(), text)
    }

    fn bold(&self, text: &str) -> String {
        self.paint(anstyle::Style::new().bold(), text)
    }
}

/// `850 µs`, `12.3 ms`, `1.52 s`, `2m 03s`.
pub fn human_duration(us: i64) -> String {
    let us = us.max(0);
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.1} ms", us as f64 / 1e3),
        1_000_000..=59_999_999 => format!("{:.2} s", us as f64 / 1e6),
        _ => format!("{}m {:02}s", us / 60_000_000, us / 1_000_000 % 60),
    }
}

/// A value on one line, cut to `width` characters with `…`, then
/// [escaped](escape) (so an escape is never cut in two).
pub fn preview(value: &Value, width: usize) -> String {
    let text = match value {
        Value::String(s) => s.replace(['\n', '\r'], " "),
        other => other.to_string(),
    };
    if text.chars().count() <= width {
        escape(&text).into_owned()
    } else {
        let cut: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{}…", escape(&cut))
    }
}

fn short(id: &Uuid) -> String {
    id.hyphenated().to_string()
}

/// The `executions` listing.
pub fn executions(page: &ExecutionPage, style: Style) -> String {
    let mut out = String::new();
    if page.executions.is_empty() {
        out.push_str("no executions\n");
    }
    for e in &page.executions {
        let duration = e
            .ended_at_us
            .map(|end| human_duration(end - e.started_at_us))
            .unwrap_or_else(|| "—".to_owned());
        let _ = writeln!(
            out,
            "{}  {}  {:<9} {:>9}  {:>4} steps  {} {}",
            short(&e.id),
            style.dim(&format_time(e.started_at_us)),
            style.status(&e.status),
            duration,
            e.steps,
            style.bold(&e.name),
            style.dim(&format!("[{}]", e.project)),
        );
    }
    if let Some(cursor) = &page.next_cursor {
        let _ = writeln!(out, "next page: --cursor {}", cursor.encode());
    }
    out
}

/// "10 candidates: 4 accepted, 6 rejected (5 by price, 1 by rating)".
pub fn decision_summary(step: &StepDetail) -> Option<String> {
    if step.decisions.is_empty() {
        return None;
    }
    let candidates: BTreeSet<&str> = step
        .decisions
        .iter()
        .map(|d| d.candidate_id.as_str())
        .collect();
    let accepted: BTreeSet<&str> = step
        .decisions
        .iter()
        .filter(|d| d.accepted == Some(true))
        .map(|d| d.candidate_id.as_str())
        .collect();
    let mut rejected_by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for d in step.decisions.iter().filter(|d| d.accepted == Some(false)) {
        rejected_by
            .entry(d.filter.as_deref().unwrap_or("?"))
            .or_default()
            .insert(d.candidate_id.as_str());
    }
    let rejected: BTreeSet<&str> = rejected_by.values().flatten().copied().collect();
    let scored = step.decisions.iter().filter(|d| d.score.is_some()).count();
    let mut parts = vec![format!("{} accepted", accepted.len())];
    if !rejected.is_empty() {
        let by: Vec<String> = rejected_by
            .iter()
            .map(|(f, c)| format!("{} by {}", c.len(), escape(f)))
            .collect();
        parts.push(
            if let [(filter, _)] = rejected_by.iter().collect::<Vec<_>>()[..] {
                format!("{} rejected by {}", rejected.len(), escape(filter))
            } else {
                format!("{} rejected ({})", rejected.len(), by.join(", "))
            },
        );
    }
    if scored > 0 {
        parts.push(format!("{scored} scored"));
    }
    Some(format!(
        "{} candidates: {}",
        candidates.len(),
        parts.join(", ")
    ))
}

/// The `show` tree of an execution read whole: its [header](execution_header)
/// and every step, depth first. `show` itself reads large executions in
/// pieces and draws them with the same [`TreeLines`].
pub fn execution_tree(e: &ExecutionDetail, full: bool, style: Style) -> String {
    let mut out = String::new();
    write_header(
        &mut out,
        &e.summary,
        e.metadata.as_ref(),
        e.error.as_deref(),
        &e.trace,
        full,
        style,
    );
    out.push_str(&llm_lines(&e.llm, style));
    let tree = StepTree::new(e.steps.iter().map(|st| (st.id, st.parent_id)));
    let mut lines = TreeLines::new(full, style);
    for visit in tree.walk() {
        lines.write(&mut out, visit, &e.steps[visit.index]);
    }
    out.push_str(&tree_footer(
        e.steps.len(),
        Hidden::default(),
        TreeCut::default(),
    ));
    out
}

/// The first lines of `show`: name, id, status, duration, start, project,
/// then the metadata and the error if any. ([`llm_lines`] follow them.)
pub fn execution_header(head: &ExecutionHead, full: bool, style: Style) -> String {
    let mut out = String::new();
    write_header(
        &mut out,
        &head.summary,
        head.metadata.as_ref(),
        head.error.as_deref(),
        &head.trace,
        full,
        style,
    );
    out
}

fn write_header(
    out: &mut String,
    s: &ExecutionSummary,
    metadata: Option<&Value>,
    error: Option<&str>,
    trace: &TraceContext,
    full: bool,
    style: Style,
) {
    let duration = s
        .ended_at_us
        .map(|end| human_duration(end - s.started_at_us))
        .unwrap_or_else(|| "still running".to_owned());
    let _ = writeln!(
        out,
        "{} {} {}  {}  {}",
        style.bold(&s.name),
        style.dim(&short(&s.id)),
        style.status(&s.status),
        duration,
        style.dim(&format!(
            "{} · project {}",
            format_time(s.started_at_us),
            s.project
        )),
    );
    if let Some(m) = metadata.filter(|m| m.as_object().is_some_and(|o| !o.is_empty())) {
        let _ = writeln!(out, "  metadata: {}", indent(&value_text(m, full), ""));
    }
    // A trace of its own is its id (shown above); a continued one is named.
    if let (Some(trace_id), Some(parent)) = (&trace.trace_id, &trace.parent_span_id) {
        let _ = writeln!(
            out,
            "  trace: {}  {}",
            escape(trace_id),
            style.dim(&format!("continues span {}", escape(parent)))
        );
    }
    if let Some(err) = error {
        let _ = writeln!(
            out,
            "  {} {}",
            style.paint(AnsiColor::Red.on_default(), "error:"),
            indent(err, "")
        );
    }
}

/// The lines of `show` under the header about the execution's LLM calls:
/// one per model, then the total when there is more than one model
/// (nothing without a call):
///
/// ```text
///   llm: gpt-4o-mini 3 calls, 2 400 prompt + 120 completion tokens, $0.0004
///   llm: house-model 1 call, 900 prompt + 40 completion tokens, no price
///   llm total: 4 calls, 3 300 prompt + 160 completion tokens, cost unknown (a model has no price)
/// ```
pub fn llm_lines(llm: &LlmTotals, style: Style) -> String {
    let mut out = String::new();
    for m in &llm.models {
        let _ = writeln!(
            out,
            "  {} {} {}, {}, {}",
            style.dim("llm:"),
            escape(&m.model),
            calls(m.calls),
            tokens(m.prompt_tokens, m.completion_tokens),
            cost(m.cost_usd)
        );
    }
    if llm.models.len() > 1 {
        let _ = writeln!(
            out,
            "  {} {}, {}, {}",
            style.dim("llm total:"),
            calls(llm.calls),
            tokens(llm.prompt_tokens, llm.completion_tokens),
            match llm.cost_usd {
                Some(usd) => dollars(usd),
                None => "cost unknown (a model has no price)".to_owned(),
            }
        );
    }
    out
}

fn calls(n: i64) -> String {
    format!(
        "{} {}",
        group_digits(n),
        if n == 1 { "call" } else { "calls" }
    )
}

/// `2 400 prompt + 120 completion tokens`.
fn tokens(prompt: i64, completion: i64) -> String {
    format!(
        "{} prompt + {} completion tokens",
        group_digits(prompt),
        group_digits(completion)
    )
}

/// `$0.0004`, or `no price` for a cost that is not known.
fn cost(usd: Option<f64>) -> String {
    usd.map(dollars).unwrap_or_else(|| "no price".to_owned())
}

/// US dollars to four decimals (a hundredth of a cent), or to two
/// significant digits below that — a small model's call costs millionths
/// (`$0.000046`), never a `$0.0000` that reads as free. As the web UI
/// shows them.
fn dollars(usd: f64) -> String {
    if usd > 0.0 && usd < 1e-4 {
        let decimals = (-usd.log10()).ceil() as usize + 1;
        format!("${usd:.decimals$}", decimals = decimals.min(20))
    } else {
        format!("${usd:.4}")
    }
}

/// `1234567` as `1 234 567`: token counts run into millions.
fn group_digits(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The last line of `show`: that there are no steps, or how many steps
/// `cut` left out (nothing when it left none).
pub fn tree_footer(steps: usize, hidden: Hidden, cut: TreeCut) -> String {
    if steps == 0 {
        return "  (no steps recorded)\n".to_owned();
    }
    let mut by = Vec::new();
    if let (Some(depth), 1..) = (cut.depth, hidden.by_depth) {
        by.push(format!("--depth {depth}"));
    }
    if let (Some(limit), 1..) = (cut.limit, hidden.by_limit) {
        by.push(format!("--limit {limit}"));
    }
    match hidden.total() {
        0 => String::new(),
        n => format!(
            "… {n} more {} not shown ({})\n",
            if n == 1 { "step" } else { "steps" },
            by.join(", ")
        ),
    }
}

/// Draws the steps of a tree one at a time, in the order of a
/// [walk](StepTree::walk): each step's lines, indented under its parent's.
/// Holds only the current indentation, so steps can arrive in batches.
#[derive(Debug, Clone)]
pub struct TreeLines {
    full: bool,
    style: Style,
    /// The indentation of the last step's children.
    prefix: String,
    /// Where in `prefix` each level's indentation ends.
    ends: Vec<usize>,
}

impl TreeLines {
    /// Whole values (`full`) or previews, in `style`.
    pub fn new(full: bool, style: Style) -> TreeLines {
        TreeLines {
            full,
            style,
            prefix: String::new(),
            ends: Vec::new(),
        }
    }

    /// Passes `visit` without drawing it (a step that vanished between two
    /// reads): its children are still indented under it.
    pub fn skip(&mut self, visit: Visit) {
        self.enter(visit);
    }

    /// Moves to `visit`: `prefix` becomes the indentation of its children;
    /// returns where the indentation of its own line ends in it. Every
    /// step before it in the walk was entered, so its ancestors'
    /// indentations are in `ends`.
    fn enter(&mut self, visit: Visit) -> usize {
        self.ends.truncate(visit.depth.saturating_sub(1));
        self.prefix.truncate(self.ends.last().copied().unwrap_or(0));
        let at = self.prefix.len();
        self.prefix.push_str(if visit.last { "   " } else { "│  " });
        self.ends.push(self.prefix.len());
        at
    }

    /// Appends the lines of `step`, met as `visit`, to `out`.
    pub fn write(&mut self, out: &mut String, visit: Visit, step: &StepDetail) {
        let at = self.enter(visit);
        let prefix = &self.prefix[..at];
        let inner = self.prefix.as_str();
        let (full, style) = (self.full, self.style);
        let branch = if visit.last { "└─ " } else { "├─ " };
        let kind = step
            .kind
            .as_deref()
            .map(|k| format!(" [{k}]"))
            .unwrap_or_default();
        let duration = step
            .duration_us
            .map(human_duration)
            .unwrap_or_else(|| "—".to_owned());
        let _ = writeln!(
            out,
            "{prefix}{branch}{}{} {} {}",
            style.bold(&step.name),
            style.dim(&kind),
            style.status(&step.status),
            duration
        );
        let value = |v: &Value| value_text(v, full);
        if let Some(i) = &step.input {
            let _ = writeln!(
                out,
                "{inner}   {} {}",
                style.dim("in: "),
                indent(&value(i), inner)
            );
        }
        if let Some(o) = &step.output {
            let _ = writeln!(
                out,
                "{inner}   {} {}",
                style.dim("out:"),
                indent(&value(o), inner)
            );
        }
        if let Some(err) = &step.error {
            let text = if full {
                err.clone()
            } else {
                preview(&Value::String(err.clone()), 160)
            };
            let _ = writeln!(
                out,
                "{inner}   {} {}",
                style.paint(AnsiColor::Red.on_default(), "error:"),
                indent(&text, inner)
            );
        }
        if let Some(summary) = decision_summary(step) {
            let _ = writeln!(out, "{inner}   {} {summary}", style.dim("decisions:"));
        }
        why_lines(
            out,
            inner,
            step.reasoning.as_deref(),
            step.reasoning_job.as_ref(),
            style,
        );
        if full {
            for d in &step.decisions {
                let _ = writeln!(
                    out,
                    "{inner}     {} {}",
                    escape(&d.candidate_id),
                    decision_line(d, style)
                );
            }
            if let Some(a) = &step.attributes {
                let _ = writeln!(
                    out,
                    "{inner}   {} {}",
                    style.dim("attributes:"),
                    indent(&value(a), inner)
                );
            }
        }
        for u in &step.llm_usage {
            let _ = writeln!(
                out,
                "{inner}   {} {} {}, {}",
                style.dim("llm:"),
                escape(&u.model),
                tokens(u.prompt_tokens, u.completion_tokens),
                cost(u.cost_usd)
            );
        }
    }
}

/// A step's `why:` lines, under it at `prefix` (the indentation of its
/// other lines less three): its reasoning, then its job's line when it has
/// one ([`job_line`]). `show` and `why` both print them.
fn why_lines(
    out: &mut String,
    prefix: &str,
    reasoning: Option<&str>,
    job: Option<&ReasoningJob>,
    style: Style,
) {
    for line in [
        reasoning.map(Cow::Borrowed),
        job.and_then(job_line).map(Cow::Owned),
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(
            out,
            "{prefix}   {} {}",
            style.dim("why:"),
            indent(&line, prefix)
        );
    }
}

/// What `show` says of a reasoning job beside its text: `pending`,
/// `processing`, `failed after 3 attempts: <error>`; of a completed one,
/// only which model wrote the text and what that cost (`by gpt-4o-mini
/// (100 prompt + 20 completion tokens, $0.000027)`), nothing for the rules.
/// Unescaped: the caller indents it, which escapes.
fn job_line(job: &ReasoningJob) -> Option<String> {
    match job.status.as_str() {
        // The LLM's text: which model wrote it, and what that cost.
        "completed" => job.model.as_ref().map(|model| {
            let used = match (job.prompt_tokens, job.completion_tokens) {
                (Some(p), Some(c)) => format!("{}, ", tokens(p, c)),
                _ => String::new(),
            };
            format!("by {model} ({used}{})", cost(job.cost_usd))
        }),
        "failed" => {
            let attempts = format!(
                "failed after {} {}",
                job.attempts,
                if job.attempts == 1 {
                    "attempt"
                } else {
                    "attempts"
                }
            );
            Some(match &job.error {
                Some(error) => format!("{attempts}: {error}"),
                None => attempts,
            })
        }
        other => Some(other.to_owned()),
    }
}

/// A value whole and pretty-printed (`--full`), else its one-line preview.
fn value_text(v: &Value, full: bool) -> String {
    if full {
        serde_json::to_string_pretty(v).unwrap_or_default()
    } else {
        preview(v, 100)
    }
}

/// "rejected by price: 79.99 > 50", "scored (score 0.976)".
fn decision_line(d: &DecisionRow, style: Style) -> String {
    let verdict = match d.accepted {
        Some(true) => style.paint(AnsiColor::Green.on_default(), "accepted"),
        Some(false) => style.paint(AnsiColor::Red.on_default(), "rejected"),
        None => "scored".to_owned(),
    };
    let filter = d
        .filter
        .as_deref()
        .map(|f| format!(" by {}", escape(f)))
        .unwrap_or_default();
    let reason = d
        .reason
        .as_deref()
        .map(|r| format!(": {}", escape(r)))
        .unwrap_or_default();
    let score = d
        .score
        .map(|s| format!(" (score {})", score(s)))
        .unwrap_or_default();
    format!("{verdict}{filter}{reason}{score}")
}

/// A score to 4 decimals: scores often arrive from `f32` and would print
/// their binary noise (`0.975999994277954`).
fn score(value: f64) -> String {
    let rounded = (value * 10_000.0).round() / 10_000.0;
    format!("{rounded}")
}

/// `text` [escaped line by line](escape_lines), its lines after the first
/// indented under `prefix`.
fn indent(text: &str, prefix: &str) -> String {
    let mut lines = escape_lines(text);
    let mut out = lines.next().unwrap_or_default().into_owned();
    for line in lines {
        let _ = write!(out, "\n{prefix}        {line}");
    }
    out
}

/// The `why` path of a candidate.
pub fn why(execution: &Uuid, candidate: &str, entries: &[WhyEntry], style: Style) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        let _ = writeln!(
            out,
            "no decision about {} in execution {}",
            escape(candidate),
            short(execution)
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{} in execution {}:",
        style.bold(candidate),
        short(execution)
    );
    for (i, w) in entries.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {} {}",
            style.bold(&w.step_name),
            decision_line(&w.decision, style)
        );
        // A step's reasoning once, under the last of its decisions (they
        // come together, in order).
        if entries.get(i + 1).map(|next| next.step_id) != Some(w.step_id) {
            why_lines(
                &mut out,
                "  ",
                w.reasoning.as_deref(),
                w.reasoning_job.as_ref(),
                style,
            );
        }
    }
    let last_verdict = entries.iter().rev().find_map(|w| w.decision.accepted);
    let _ = writeln!(
        out,
        "  → {}",
        match last_verdict {
            Some(true) => "kept by the last step that decided on it",
            Some(false) => "dropped",
            None => "only scored",
        }
    );
    out
}

/// The `search` results.
pub fn search(text: &str, hits: &[SearchHit], style: Style) -> String {
    let mut out = String::new();
    if hits.is_empty() {
        let _ = writeln!(out, "no step matches \"{}\"", escape(text));
    }
    for h in hits {
        let _ = writeln!(
            out,
            "{:>8.3}  {} {}  in {} {}  {}",
            h.rank,
            style.bold(&h.step_name),
            style.status(&h.status),
            escape(&h.execution_name),
            style.dim(&short(&h.execution_id)),
            style.dim(&format_time(h.started_at_us)),
        );
    }
    out
}

/// The `stats` tables.
pub fn stats(stats: &Stats, style: Style) -> String {
    let mut out = String::new();
    if stats.steps.is_empty() {
        out.push_str("no finished steps\n");
    } else {
        let names: Vec<Cow<str>> = stats.steps.iter().map(|s| escape(&s.name)).collect();
        let width = names
            .iter()
            .map(|name| name.chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "{}",
            style.bold(&format!(
                "{:<width$}  {:>7}  {:>7}  {:>10}  {:>10}  {:>10}",
                "step", "count", "errors", "p50", "p95", "max"
            ))
        );
        for (s, name) in stats.steps.iter().zip(&names) {
            let rate = if s.count > 0 {
                s.errors as f64 * 100.0 / s.count as f64
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "{:<width$}  {:>7}  {:>6.1}%  {:>10}  {:>10}  {:>10}",
                name,
                s.count,
                rate,
                human_duration(s.p50_us),
                human_duration(s.p95_us),
                human_duration(s.max_us),
            );
        }
    }
    if !stats.models.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            style.bold(&format!(
                "{:<24}  {:>7}  {:>12}  {:>12}  {:>10}",
                "model", "calls", "prompt", "completion", "cost"
            ))
        );
        for m in &stats.models {
            let _ = writeln!(
                out,
                "{:<24}  {:>7}  {:>12}  {:>12}  {:>10}",
                escape(&m.model),
                m.calls,
                m.prompt_tokens,
                m.completion_tokens,
                cost(m.cost_usd)
            );
        }
        let _ = writeln!(
            out,
            "{}",
            style.dim("cost: these tokens at the current prices, not what they cost when made")
        );
    }
    out
}

/// One line saying what a prune did: `pruned 3 executions started before
/// 2026-11-02T10:00:00.000Z (project shop): 120 steps, 300 decisions, 4
/// LLM usage rows`, or `would prune …` for a dry run.
pub fn pruned(pruned: &Pruned, filter: &PruneFilter, dry_run: bool) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{} {} started before {}{}: {}, {}, {}",
        if dry_run { "would prune" } else { "pruned" },
        plural(pruned.executions, "execution", "executions"),
        format_time(filter.before_us),
        filter
            .project
            .as_deref()
            .map(|p| format!(" (project {})", escape(p)))
            .unwrap_or_default(),
        plural(pruned.steps, "step", "steps"),
        plural(pruned.decisions, "decision", "decisions"),
        plural(pruned.llm_usage, "LLM usage row", "LLM usage rows"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::ModelTokens;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(850), "850 µs");
        assert_eq!(human_duration(12_345), "12.3 ms");
        assert_eq!(human_duration(1_520_000), "1.52 s");
        assert_eq!(human_duration(123_000_000), "2m 03s");
    }

    #[test]
    fn previews_are_one_line_and_cut() {
        assert_eq!(preview(&Value::String("a\nb".into()), 10), "a b");
        let long = Value::String("x".repeat(200));
        let p = preview(&long, 20);
        assert_eq!(p.chars().count(), 20);
        assert!(p.ends_with('…'));
    }

    /// A step named `filter` that took 1 µs, with nothing else.
    fn finished_step() -> StepDetail {
        StepDetail {
            id: Uuid::from_u128(1),
            parent_id: None,
            name: "filter".into(),
            kind: None,
            status: "ok".into(),
            input: None,
            output: None,
            error: None,
            attributes: None,
            started_at_us: 0,
            duration_us: Some(1),
            decisions: vec![],
            llm_usage: vec![],
            reasoning: None,
            reasoning_job: None,
        }
    }

    fn decision(c: &str, accepted: Option<bool>, filter: &str) -> DecisionRow {
        DecisionRow {
            candidate_id: c.into(),
            accepted,
            filter: Some(filter.into()),
            reason: None,
            score: None,
        }
    }

    #[test]
    fn the_decision_summary_counts_candidates_and_rejections_by_filter() {
        let mut decisions: Vec<DecisionRow> = (0..4)
            .map(|i| decision(&format!("a{i}"), Some(true), "all"))
            .collect();
        decisions.extend((0..5).map(|i| decision(&format!("p{i}"), Some(false), "price")));
        decisions.push(decision("r0", Some(false), "rating"));
        let step = StepDetail {
            decisions,
            ..finished_step()
        };
        assert_eq!(
            decision_summary(&step).unwrap(),
            "10 candidates: 4 accepted, 6 rejected (5 by price, 1 by rating)"
        );
    }

    fn model(
        name: &str,
        calls: i64,
        prompt: i64,
        completion: i64,
        usd: Option<f64>,
    ) -> ModelTokens {
        ModelTokens {
            model: name.into(),
            calls,
            prompt_tokens: prompt,
            completion_tokens: completion,
            cost_usd: usd,
        }
    }

    const PLAIN: Style = Style { colour: false };

    #[test]
    fn show_prints_each_models_calls_tokens_and_cost_then_the_total() {
        let priced = LlmTotals::of(vec![
            model("gpt-4o", 1, 1_204, 96, Some(0.00397)),
            model("gpt-4o-mini", 3, 2_400, 120, Some(0.000432)),
        ]);
        assert_eq!(
            llm_lines(&priced, PLAIN),
            "  llm: gpt-4o 1 call, 1 204 prompt + 96 completion tokens, $0.0040\n\
             \x20 llm: gpt-4o-mini 3 calls, 2 400 prompt + 120 completion tokens, $0.0004\n\
             \x20 llm total: 4 calls, 3 604 prompt + 216 completion tokens, $0.0044\n"
        );
        let one_unknown = LlmTotals::of(vec![
            model("gpt-4o-mini", 2, 1_000_000, 0, Some(0.15)),
            model("house\u{1b}[2J", 1, 5, 5, None),
        ]);
        assert_eq!(
            llm_lines(&one_unknown, PLAIN),
            "  llm: gpt-4o-mini 2 calls, 1 000 000 prompt + 0 completion tokens, $0.1500\n\
             \x20 llm: house\\x1b[2J 1 call, 5 prompt + 5 completion tokens, no price\n\
             \x20 llm total: 3 calls, 1 000 005 prompt + 5 completion tokens, \
             cost unknown (a model has no price)\n"
        );
        // One model: its line is the total.
        let single = LlmTotals::of(vec![model("gpt-4o", 1, 10, 1, Some(0.1))]);
        assert_eq!(llm_lines(&single, PLAIN).lines().count(), 1);
        assert_eq!(llm_lines(&LlmTotals::of(vec![]), PLAIN), "");
    }

    fn step_with(reasoning: Option<&str>, job: Option<(&str, i64, Option<&str>)>) -> StepDetail {
        StepDetail {
            llm_usage: vec![
                crate::query::UsageRow {
                    model: "gpt-4o-mini".into(),
                    prompt_tokens: 2_400,
                    completion_tokens: 120,
                    cost_usd: Some(0.000432),
                },
                crate::query::UsageRow {
                    model: "house-model".into(),
                    prompt_tokens: 7,
                    completion_tokens: 1,
                    cost_usd: None,
                },
            ],
            reasoning: reasoning.map(str::to_owned),
            reasoning_job: job.map(|(status, attempts, error)| ReasoningJob {
                status: status.into(),
                method: "llm".into(),
                attempts,
                error: error.map(str::to_owned),
                completed_at_us: None,
                model: None,
                prompt_tokens: None,
                completion_tokens: None,
                cost_usd: None,
            }),
            ..finished_step()
        }
    }

    /// The lines `show` draws under a step's own line.
    fn step_lines(step: &StepDetail) -> Vec<String> {
        let mut out = String::new();
        let tree = StepTree::new([(step.id, None)]);
        let mut lines = TreeLines::new(false, PLAIN);
        for visit in tree.walk() {
            lines.write(&mut out, visit, step);
        }
        out.lines().skip(1).map(|l| l.trim().to_owned()).collect()
    }

    #[test]
    fn show_prints_the_reasoning_and_a_job_that_is_not_completed() {
        let usage = [
            "llm: gpt-4o-mini 2 400 prompt + 120 completion tokens, $0.0004",
            "llm: house-model 7 prompt + 1 completion tokens, no price",
        ];
        let completed = step_with(Some("3 candidates: 1 kept"), Some(("completed", 1, None)));
        let mut expected = vec!["why: 3 candidates: 1 kept"];
        expected.extend(usage);
        assert_eq!(step_lines(&completed), expected);

        let pending = step_with(None, Some(("pending", 0, None)));
        let mut expected = vec!["why: pending"];
        expected.extend(usage);
        assert_eq!(step_lines(&pending), expected);

        // The LLM's text: which model wrote it, and what that cost.
        let mut by_model = step_with(Some("B01 won on price."), Some(("completed", 1, None)));
        let job = by_model.reasoning_job.as_mut().unwrap();
        job.model = Some("gpt-4o-mini".into());
        (job.prompt_tokens, job.completion_tokens) = (Some(1_200), Some(40));
        job.cost_usd = Some(0.000204);
        let mut expected = vec![
            "why: B01 won on price.",
            "why: by gpt-4o-mini (1 200 prompt + 40 completion tokens, $0.0002)",
        ];
        expected.extend(usage);
        assert_eq!(step_lines(&by_model), expected);
        let job = by_model.reasoning_job.as_mut().unwrap();
        (job.prompt_tokens, job.cost_usd) = (None, None);
        assert_eq!(
            step_lines(&by_model)[1],
            "why: by gpt-4o-mini (no price)",
            "a server that counted no tokens"
        );

        // The rules text stays shown beside the failure of the LLM's.
        let failed = step_with(
            Some("3 candidates: 1 kept"),
            Some(("failed", 3, Some("429 Too Many Requests\u{1b}[2J"))),
        );
        let mut expected = vec![
            "why: 3 candidates: 1 kept",
            "why: failed after 3 attempts: 429 Too Many Requests\\x1b[2J",
        ];
        expected.extend(usage);
        assert_eq!(step_lines(&failed), expected);

        let once = step_with(None, Some(("failed", 1, None)));
        assert_eq!(step_lines(&once)[0], "why: failed after 1 attempt");
        assert_eq!(step_lines(&step_with(None, None)), usage);
    }

    fn why_entry(
        step: u128,
        name: &str,
        decision: DecisionRow,
        explained: &StepDetail,
    ) -> WhyEntry {
        WhyEntry {
            step_id: Uuid::from_u128(step),
            step_name: name.into(),
            started_at_us: 0,
            decision,
            reasoning: explained.reasoning.clone(),
            reasoning_job: explained.reasoning_job.clone(),
        }
    }

    #[test]
    fn why_prints_each_steps_reasoning_once_under_its_decisions_as_show_does() {
        let price = step_with(
            Some("3 candidates: 1 kept;\nrejected 2 by price"),
            Some(("completed", 1, None)),
        );
        let rank = step_with(
            Some("scored 1"),
            Some(("failed", 3, Some("HTTP 500: \u{1b}[2J<b>"))),
        );
        let pending = step_with(None, Some(("pending", 0, None)));
        let unexplained = step_with(None, None);
        let entries = [
            why_entry(1, "price", decision("c1", Some(true), "price"), &price),
            why_entry(1, "price", decision("c1", None, "score"), &price),
            why_entry(2, "rank", decision("c1", Some(true), "rank"), &rank),
            why_entry(3, "llm_check", decision("c1", Some(true), "llm"), &pending),
            why_entry(4, "late", decision("c1", Some(false), "late"), &unexplained),
        ];
        let text = why(&Uuid::from_u128(9), "c1", &entries, PLAIN);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            lines,
            [
                "  price accepted by price",
                "  price scored by score",
                "     why: 3 candidates: 1 kept;",
                "          rejected 2 by price",
                "  rank accepted by rank",
                "     why: scored 1",
                "     why: failed after 3 attempts: HTTP 500: \\x1b[2J<b>",
                "  llm_check accepted by llm",
                "     why: pending",
                "  late rejected by late",
                "  → dropped",
            ],
            "{text}"
        );
        // The same lines as `show` prints under the step.
        assert_eq!(step_lines(&rank)[..2], [&lines[5][5..], &lines[6][5..]]);
    }

    #[test]
    fn stats_print_the_cost_column_and_say_it_is_at_current_prices() {
        let table = Stats {
            steps: vec![],
            models: vec![
                model("gpt-4o-mini", 3, 2_400, 120, Some(0.000432)),
                model("nobody-knows", 1, 5, 5, None),
            ],
        };
        let text = stats(&table, PLAIN);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2..],
            [
                "model                       calls        prompt    completion        cost",
                "gpt-4o-mini                     3          2400           120     $0.0004",
                "nobody-knows                    1             5             5    no price",
                "cost: these tokens at the current prices, not what they cost when made",
            ],
            "{text}"
        );
    }

    #[test]
    fn small_costs_keep_two_significant_digits() {
        for (usd, text) in [
            (0.0, "$0.0000"),
            (0.00397, "$0.0040"),
            (1.35, "$1.3500"),
            (0.0001, "$0.0001"),
            (0.0000462, "$0.000046"),
            (0.00000099, "$0.00000099"),
        ] {
            assert_eq!(dollars(usd), text, "{usd}");
        }
    }

    #[test]
    fn digits_are_grouped_by_three() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1 000"),
            (1_234_567, "1 234 567"),
            (-12_345, "-12 345"),
            (i64::MIN, "-9 223 372 036 854 775 808"),
        ] {
            assert_eq!(group_digits(n), text);
        }
    }

    #[test]
    fn the_summary_counts_in_words() {
        let done = Pruned {
            executions: 1,
            steps: 2,
            decisions: 0,
            llm_usage: 1,
        };
        let filter = PruneFilter {
            before_us: 0,
            project: Some("shop".into()),
        };
        assert_eq!(
            pruned(&done, &filter, true),
            "would prune 1 execution started before 1970-01-01T00:00:00.000Z (project shop): \
             2 steps, 0 decisions, 1 LLM usage row"
        );
    }
}
