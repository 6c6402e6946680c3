//! The `rules` reasoner: a step's decisions and failure in words, offline
//! and deterministic — what a person reads before the raw JSON.
//!
//! - The funnel: `10 candidates: 4 kept; rejected 6 — 4 by price (79.99 >
//!   max 45, 120 > max 45, …), 2 by rating (3.1 < 4)`; `all kept` / `none
//!   kept` when so. A candidate decided on more than once counts by its
//!   last decision with a verdict.
//! - Scores: `scored 3: B01 ranked first (0.976), then B09 (0.632), B06
//!   (0.62)` (highest first; a reason given with the top score follows it).
//! - The failure: `failed: <the error's first line>` (`panicked:`,
//!   `cancelled:`), with the rest of its chain counted.

use std::collections::BTreeMap;

use crate::model::{Decision, StepStatus};

/// How many reasons of one filter, and how many runners-up, are quoted.
const QUOTED: usize = 3;

/// The explanation of a step with `status`, `error` and `decisions`;
/// `None` when there is nothing to explain (no decision, no failure).
pub fn explain(status: StepStatus, error: Option<&str>, decisions: &[Decision]) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(failure) = failure(status, error) {
        parts.push(failure);
    }
    if let Some(funnel) = funnel(decisions) {
        parts.push(funnel);
    }
    if let Some(scores) = scores(decisions) {
        parts.push(scores);
    }
    (!parts.is_empty()).then(|| parts.join(". "))
}

fn failure(status: StepStatus, error: Option<&str>) -> Option<String> {
    let word = match status {
        StepStatus::Error => "failed",
        StepStatus::Panicked => "panicked",
        StepStatus::Cancelled => "cancelled",
        StepStatus::Ok | StepStatus::Running => return None,
    };
    let Some(error) = error.map(str::trim).filter(|e| !e.is_empty()) else {
        return Some(format!("{word} (no error text)"));
    };
    let mut lines = error.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or(error);
    // The SDK's own prefixes ("panicked: …") are not repeated.
    let first = first
        .strip_prefix(&format!("{word}: "))
        .unwrap_or(first)
        .to_owned();
    let more = lines.count();
    Some(if more > 0 {
        format!("{word}: {first} (and {more} more lines of cause)")
    } else {
        format!("{word}: {first}")
    })
}

/// Kept and rejected, by filter.
fn funnel(decisions: &[Decision]) -> Option<String> {
    // The last verdict per candidate, in the order candidates first came.
    let mut order: Vec<&str> = Vec::new();
    let mut last: BTreeMap<&str, &Decision> = BTreeMap::new();
    for d in decisions.iter().filter(|d| d.accepted.is_some()) {
        if !last.contains_key(d.candidate_id.as_str()) {
            order.push(&d.candidate_id);
        }
        last.insert(&d.candidate_id, d);
    }
    if order.is_empty() {
        return None;
    }
    let total = order.len();
    let kept = order
        .iter()
        .filter(|c| last[*c].accepted == Some(true))
        .count();
    // Rejections by filter, in the order each filter first rejected.
    let mut filters: Vec<(&str, Vec<&str>)> = Vec::new();
    for c in &order {
        let d = last[c];
        if d.accepted == Some(false) {
            let filter = d.filter.as_deref().unwrap_or("(no filter)");
            let reason = d.reason.as_deref().unwrap_or(c);
            match filters.iter_mut().find(|(f, _)| *f == filter) {
                Some((_, reasons)) => reasons.push(reason),
                None => filters.push((filter, vec![reason])),
            }
        }
    }
    let candidates = if total == 1 {
        "candidate"
    } else {
        "candidates"
    };
    let head = match kept {
        k if k == total => format!("{total} {candidates}: all kept"),
        0 => format!("{total} {candidates}: none kept"),
        k => format!("{total} {candidates}: {k} kept"),
    };
    if filters.is_empty() {
        return Some(head);
    }
    let by: Vec<String> = filters
        .iter()
        .map(|(filter, reasons)| {
            let mut quoted: Vec<&str> = reasons.iter().take(QUOTED).copied().collect();
            if reasons.len() > QUOTED {
                quoted.push("…");
            }
            format!("{} by {filter} ({})", reasons.len(), quoted.join(", "))
        })
        .collect();
    let rejected = total - kept;
    Some(if filters.len() == 1 {
        format!("{head}; rejected {}", by[0])
    } else {
        format!("{head}; rejected {rejected} — {}", by.join(", "))
    })
}

/// What the scores ranked first.
fn scores(decisions: &[Decision]) -> Option<String> {
    let mut scored: Vec<(&str, f64, Option<&str>)> = decisions
        .iter()
        .filter_map(|d| Some((d.candidate_id.as_str(), d.score?, d.reason.as_deref())))
        .filter(|(_, s, _)| s.is_finite())
        .collect();
    if scored.is_empty() {
        return None;
    }
    // Highest first; ties keep their order.
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (first, score, why) = scored[0];
    let mut text = format!(
        "scored {}: {first} ranked first ({})",
        scored.len(),
        number(score)
    );
    if let Some(why) = why {
        text.push_str(&format!(": {why}"));
    }
    let runners: Vec<String> = scored
        .iter()
        .skip(1)
        .take(QUOTED)
        .map(|(c, s, _)| format!("{c} ({})", number(*s)))
        .collect();
    if !runners.is_empty() {
        text.push_str(&format!(", then {}", runners.join(", ")));
        if scored.len() > 1 + QUOTED {
            text.push_str(", …");
        }
    }
    Some(text)
}

/// A score as a person reads it: at most 3 decimals, no trailing zeros.
fn number(x: f64) -> String {
    let text = format!("{x:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(candidate: &str, accepted: bool, filter: &str, reason: &str) -> Decision {
        Decision {
            candidate_id: candidate.into(),
            accepted: Some(accepted),
            filter: Some(filter.into()),
            reason: Some(reason.into()),
            score: None,
        }
    }

    fn score(candidate: &str, score: f64) -> Decision {
        Decision {
            candidate_id: candidate.into(),
            accepted: None,
            filter: None,
            reason: None,
            score: Some(score),
        }
    }

    fn ok(decisions: &[Decision]) -> Option<String> {
        explain(StepStatus::Ok, None, decisions)
    }

    #[test]
    fn nothing_to_explain_without_decisions_or_failure() {
        assert_eq!(ok(&[]), None);
        assert_eq!(explain(StepStatus::Running, None, &[]), None);
    }

    #[test]
    fn all_kept_and_none_kept() {
        let kept = [
            verdict("B01", true, "price", "within budget"),
            verdict("B02", true, "price", "within budget"),
        ];
        assert_eq!(ok(&kept).unwrap(), "2 candidates: all kept");
        let rejected = [
            verdict("B01", false, "price", "79.99 > max 45"),
            verdict("B02", false, "price", "120 > max 45"),
        ];
        assert_eq!(
            ok(&rejected).unwrap(),
            "2 candidates: none kept; rejected 2 by price (79.99 > max 45, 120 > max 45)"
        );
        assert_eq!(
            ok(&[verdict("B01", true, "price", "ok")]).unwrap(),
            "1 candidate: all kept"
        );
    }

    #[test]
    fn several_filters_each_with_their_reasons_quoted_up_to_three() {
        let mut d = vec![verdict("K1", true, "price", "within budget")];
        for (i, price) in ["79.99", "120", "99", "61"].iter().enumerate() {
            d.push(verdict(
                &format!("P{i}"),
                false,
                "price",
                &format!("{price} > max 45"),
            ));
        }
        d.push(verdict("R1", false, "rating", "3.1 < 4"));
        d.push(verdict("K2", true, "rating", "4.6"));
        assert_eq!(
            ok(&d).unwrap(),
            "7 candidates: 2 kept; rejected 5 — 4 by price (79.99 > max 45, 120 > max 45, \
             99 > max 45, …), 1 by rating (3.1 < 4)"
        );
    }

    #[test]
    fn a_candidate_decided_twice_counts_by_its_last_verdict() {
        let d = [
            verdict("B01", true, "price", "within budget"),
            verdict("B01", false, "rating", "3.1 < 4"),
            verdict("B02", true, "price", "within budget"),
        ];
        assert_eq!(
            ok(&d).unwrap(),
            "2 candidates: 1 kept; rejected 1 by rating (3.1 < 4)"
        );
    }

    #[test]
    fn scores_only_say_what_ranked_first() {
        let d = [
            score("B06", 0.62),
            score("B01", 0.976),
            score("B09", 0.632),
            score("B10", 0.1),
            score("B11", 0.05),
        ];
        assert_eq!(
            ok(&d).unwrap(),
            "scored 5: B01 ranked first (0.976), then B09 (0.632), B06 (0.62), B10 (0.1), …"
        );
        let mut why = score("B01", 2.0);
        why.reason = Some("highest relevance".into());
        assert_eq!(
            ok(&[why, score("B02", 1.0)]).unwrap(),
            "scored 2: B01 ranked first (2): highest relevance, then B02 (1)"
        );
        // A non-finite score is not ranked.
        assert_eq!(ok(&[score("B01", f64::NAN)]), None);
    }

    #[test]
    fn errors_say_how_the_step_ended_and_what_followed() {
        assert_eq!(
            explain(StepStatus::Error, Some("search backend timed out"), &[]).unwrap(),
            "failed: search backend timed out"
        );
        assert_eq!(
            explain(
                StepStatus::Error,
                Some("fetch failed\ncaused by: connection refused\ncaused by: os error 111"),
                &[]
            )
            .unwrap(),
            "failed: fetch failed (and 2 more lines of cause)"
        );
        assert_eq!(
            explain(
                StepStatus::Panicked,
                Some("panicked: index out of bounds"),
                &[]
            )
            .unwrap(),
            "panicked: index out of bounds"
        );
        assert_eq!(
            explain(StepStatus::Cancelled, None, &[]).unwrap(),
            "cancelled (no error text)"
        );
    }

    #[test]
    fn a_failure_with_decisions_says_both() {
        let d = [
            verdict("B01", true, "price", "within budget"),
            verdict("B02", false, "price", "79.99 > 50"),
            score("B01", 0.9),
        ];
        assert_eq!(
            explain(StepStatus::Error, Some("ranker crashed"), &d).unwrap(),
            "failed: ranker crashed. 2 candidates: 1 kept; rejected 1 by price (79.99 > 50). \
             scored 1: B01 ranked first (0.9)"
        );
    }
}
