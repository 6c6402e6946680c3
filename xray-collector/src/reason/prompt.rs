//! What the LLM reasoner tells the model about a step: its name, kind and
//! outcome, a bounded preview of its input and output, its decisions and
//! its error — all as stored, so redacted as everything else is (the SDK
//! redacts secrets before anything reaches the outbox) — and the rules
//! text, which the model is asked to improve on, not to contradict.
//!
//! Bounded whatever the step holds: values are cut to [`PREVIEW_BYTES`]
//! each, the error to [`ERROR_BYTES`], the decisions to [`DECISIONS`]
//! listed (the rest counted), so one huge step cannot make a huge request.

use std::fmt::Write;

use serde_json::Value;

use super::job::StepToExplain;

/// Bytes of input and of output shown.
pub const PREVIEW_BYTES: usize = 2_000;
/// Bytes of the error shown.
pub const ERROR_BYTES: usize = 1_000;
/// Decisions listed.
pub const DECISIONS: usize = 40;

/// The system message: what the model is for.
pub const SYSTEM: &str = "You explain one step of a data pipeline (LLM calls, search, \
filters, ranking) to the engineer debugging it. In at most three sentences of plain text, \
say what the step decided and why, naming the decisive candidates and values; if it failed, \
say how and where the error came from. Do not invent facts that are not in the step. No \
preamble, no lists, no markdown.";

/// The chat messages for `step`: the system message and the user's.
pub fn messages(step: &StepToExplain) -> [(&'static str, String); 2] {
    [("system", SYSTEM.to_owned()), ("user", describe(step))]
}

/// The step in words, as the user message carries it.
pub fn describe(step: &StepToExplain) -> String {
    let mut out = String::new();
    let _ = write!(out, "Step: {}", step.name);
    if let Some(kind) = &step.kind {
        let _ = write!(out, " (kind: {kind})");
    }
    let _ = write!(out, "\nStatus: {}", step.status);
    if let Some(us) = step.duration_us {
        let _ = write!(out, "\nDuration: {:.1} ms", us as f64 / 1000.0);
    }
    for (label, value) in [("Input", &step.input), ("Output", &step.output)] {
        if let Some(v) = value {
            let _ = write!(out, "\n{label}: {}", preview(v));
        }
    }
    if let Some(error) = &step.error {
        let _ = write!(out, "\nError: {}", cut(error, ERROR_BYTES));
    }
    if !step.decisions.is_empty() {
        let _ = write!(out, "\nDecisions ({} in all):", step.decisions.len());
        for d in step.decisions.iter().take(DECISIONS) {
            let verdict = match d.accepted {
                Some(true) => "accepted",
                Some(false) => "rejected",
                None => "scored",
            };
            let _ = write!(out, "\n- {} {verdict}", cut(&d.candidate_id, 200));
            if let Some(filter) = &d.filter {
                let _ = write!(out, " by {}", cut(filter, 200));
            }
            if let Some(reason) = &d.reason {
                let _ = write!(out, ": {}", cut(reason, 300));
            }
            if let Some(score) = d.score {
                let _ = write!(out, " (score {score})");
            }
        }
        if step.decisions.len() > DECISIONS {
            let _ = write!(out, "\n- … and {} more", step.decisions.len() - DECISIONS);
        }
    }
    if let Some(rules) = &step.reasoning {
        let _ = write!(out, "\nSummary by rules: {}", cut(rules, PREVIEW_BYTES));
    }
    out
}

/// A value's JSON text, cut to [`PREVIEW_BYTES`].
fn preview(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    cut(&text, PREVIEW_BYTES)
}

/// `text` whole if it fits in `limit` bytes, else its first bytes (on a
/// character boundary) and how long it was.
fn cut(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    format!("{}… ({} bytes in all)", prefix(text, limit), text.len())
}

/// The longest start of `text` of at most `limit` bytes that ends on a
/// character boundary.
pub(crate) fn prefix(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Decision, StepStatus};
    use serde_json::json;

    fn step() -> StepToExplain {
        StepToExplain {
            name: "filter_by_price".into(),
            kind: Some("filter".into()),
            status: StepStatus::Ok,
            input: Some(json!({"max_price": 50})),
            output: Some(json!(["B01"])),
            error: None,
            duration_us: Some(1_500),
            decisions: vec![
                Decision {
                    candidate_id: "B07X".into(),
                    accepted: Some(false),
                    filter: Some("price".into()),
                    reason: Some("79.99 > 50".into()),
                    score: None,
                },
                Decision {
                    candidate_id: "B01".into(),
                    accepted: Some(true),
                    filter: Some("price".into()),
                    reason: Some("within budget".into()),
                    score: Some(0.5),
                },
            ],
            reasoning: Some("2 candidates: 1 kept; rejected 1 by price (79.99 > 50)".into()),
        }
    }

    #[test]
    fn the_prompt_carries_the_step_its_decisions_and_the_rules_text() {
        let [(system_role, system), (user_role, user)] = messages(&step());
        assert_eq!((system_role, user_role), ("system", "user"));
        assert_eq!(system, SYSTEM);
        assert_eq!(
            user,
            "Step: filter_by_price (kind: filter)\nStatus: ok\nDuration: 1.5 ms\n\
             Input: {\"max_price\":50}\nOutput: [\"B01\"]\nDecisions (2 in all):\n\
             - B07X rejected by price: 79.99 > 50\n\
             - B01 accepted by price: within budget (score 0.5)\n\
             Summary by rules: 2 candidates: 1 kept; rejected 1 by price (79.99 > 50)"
        );
    }

    #[test]
    fn a_huge_step_makes_a_bounded_prompt() {
        let mut s = step();
        s.input = Some(json!("é".repeat(100_000)));
        s.output = Some(json!({"list": vec![1; 100_000]}));
        s.error = Some("x".repeat(50_000));
        s.status = StepStatus::Error;
        s.decisions = (0..10_000)
            .map(|i| Decision {
                candidate_id: format!("C{i}"),
                accepted: Some(i % 2 == 0),
                filter: Some("f".repeat(5_000)),
                reason: Some("r".repeat(5_000)),
                score: None,
            })
            .collect();
        let user = describe(&s);
        assert!(user.len() < 40_000, "{} bytes", user.len());
        assert!(user.contains("… (200000 bytes in all)"), "input not cut");
        assert!(user.contains("… and 9960 more"));
        assert!(user.contains("Status: error"));
    }
}
