//! `--json` documents that are safe on a terminal too: JSON escapes the C0
//! controls itself, and this writes the other characters a terminal acts
//! on ([`escape`](super::escape)'s list: DEL, C1 controls, bidirectional
//! overrides) as `\uNNNN` escapes as well. The document stays exact: a
//! JSON reader gets back the very same strings.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

use super::escape::acts_on_terminal;
use crate::query::{ExecutionHead, LlmTotals, StepDetail};

/// `value` as pretty-printed JSON holding no character a terminal acts on.
pub fn to_json(value: &impl Serialize) -> serde_json::Result<String> {
    // Only UTF-8 text and ASCII escapes were written.
    Ok(String::from_utf8(to_json_bytes(value)?)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

fn to_json_bytes(value: &impl Serialize) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, TerminalSafe(PrettyFormatter::new()));
    value.serialize(&mut ser)?;
    Ok(out)
}

/// The `show --json` document written as its steps are read: the bytes
/// [`to_json`] (and a newline) would write for the
/// [`ExecutionDetail`](crate::query::ExecutionDetail)
/// of `head`, its LLM totals and those steps, without holding them all.
///
/// A step is serialized alone, then indented to its place in the array:
/// a pretty-printed document's line breaks are all between tokens (JSON
/// strings spell theirs `\n`), so indenting after each one is exact.
#[derive(Debug)]
pub struct ExecutionJson<W: io::Write> {
    out: W,
    /// No step written yet.
    empty: bool,
}

impl<W: io::Write> ExecutionJson<W> {
    /// Writes the execution's fields and LLM totals and opens its `steps`.
    pub fn begin(
        mut out: W,
        head: &ExecutionHead,
        llm: &LlmTotals,
    ) -> io::Result<ExecutionJson<W>> {
        // The whole document with no steps, cut before its empty array:
        // the fields as `ExecutionDetail` writes them (`step_count`).
        let empty = to_json_bytes(&head.clone().with_steps(llm.clone(), Vec::new()))?;
        let fields = empty.strip_suffix(b" []\n}").ok_or_else(|| {
            io::Error::other("an execution with no steps did not end with its empty array")
        })?;
        out.write_all(fields)?;
        out.write_all(b" [")?;
        Ok(ExecutionJson { out, empty: true })
    }

    /// Writes the next step of the array.
    pub fn step(&mut self, step: &StepDetail) -> io::Result<()> {
        let text = to_json_bytes(step)?;
        self.out
            .write_all(if self.empty { b"\n    " } else { b",\n    " })?;
        self.empty = false;
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                self.out.write_all(b"\n    ")?;
            }
            self.out.write_all(line)?;
        }
        Ok(())
    }

    /// Closes the array and the document (with a newline); the writer.
    pub fn finish(mut self) -> io::Result<W> {
        if !self.empty {
            self.out.write_all(b"\n  ")?;
        }
        self.out.write_all(b"]\n}\n")?;
        Ok(self.out)
    }
}

/// Formatter methods that only lay the document out, left to
/// [`PrettyFormatter`] (`name(first)` for those taking `first: bool`).
macro_rules! forward_to_pretty {
    ($($method:ident $(($first:ident))?),+ $(,)?) => {
        $(
            fn $method<W: ?Sized + io::Write>(
                &mut self,
                writer: &mut W,
                $($first: bool)?
            ) -> io::Result<()> {
                self.0.$method(writer, $($first)?)
            }
        )+
    };
}

/// [`PrettyFormatter`], with the string fragments escaped.
struct TerminalSafe<'a>(PrettyFormatter<'a>);

impl Formatter for TerminalSafe<'_> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if acts_on_terminal(c) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                // Every such character is in the Basic Multilingual Plane.
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    forward_to_pretty! {
        begin_array, end_array, begin_array_value(first), end_array_value,
        begin_object, end_object, begin_object_key(first), begin_object_value,
        end_object_value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_terminal_control_is_a_json_escape_and_the_value_survives() {
        let hostile = "a\u{1b}[2J\u{7}\u{7f}\u{9b}\u{202e}\u{2066}é\n";
        let value = serde_json::json!({ hostile: [hostile, 1, null] });
        let text = to_json(&value).unwrap();
        assert!(
            !text.chars().any(|c| acts_on_terminal(c) && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains(r"a\u001b[2J\u0007\u007f\u009b\u202e\u2066é\n"),
            "{text}"
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
        assert_eq!(
            to_json(&serde_json::json!({"a": [1]})).unwrap(),
            serde_json::to_string_pretty(&serde_json::json!({"a": [1]})).unwrap()
        );
    }

    fn step(n: u128, parent: Option<u128>) -> StepDetail {
        StepDetail {
            id: uuid::Uuid::from_u128(n),
            parent_id: parent.map(uuid::Uuid::from_u128),
            name: format!("step\u{1b}[2J\n{n}"),
            kind: Some("llm".into()),
            status: "ok".into(),
            input: Some(serde_json::json!({"q": ["a\nb", {"deep": [1, 2, {}]}], "e": []})),
            output: None,
            error: Some("line 1\nline 2".into()),
            attributes: Some(serde_json::json!({})),
            started_at_us: n as i64,
            duration_us: Some(3),
            decisions: vec![crate::model::Decision {
                candidate_id: "c1".into(),
                accepted: Some(false),
                filter: Some("price".into()),
                reason: None,
                score: Some(0.5),
            }],
            llm_usage: vec![crate::query::UsageRow {
                model: "gpt-4o-mini".into(),
                prompt_tokens: 10,
                completion_tokens: 2,
                cost_usd: None,
            }],
            reasoning: Some("1 candidate: 0 kept".into()),
            reasoning_job: Some(crate::query::ReasoningJob {
                status: "failed".into(),
                method: "llm".into(),
                attempts: 3,
                error: Some("429\ntoo many".into()),
                completed_at_us: None,
                model: None,
                prompt_tokens: None,
                completion_tokens: None,
                cost_usd: None,
            }),
        }
    }

    #[test]
    fn the_streamed_show_document_is_the_whole_one_byte_for_byte() {
        use crate::query::{ExecutionDetail, ExecutionSummary, LlmTotals, ModelTokens};
        let summary = ExecutionSummary {
            id: uuid::Uuid::from_u128(9),
            project: "shop\u{202e}".into(),
            name: "pick".into(),
            status: "ok".into(),
            started_at_us: 1,
            ended_at_us: None,
            steps: 3,
        };
        let head = ExecutionHead {
            summary,
            metadata: Some(serde_json::json!({"sku": "A-1", "n": [1]})),
            outcome: None,
            error: Some("it\nbroke".into()),
            trace: crate::query::TraceContext {
                trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
                parent_span_id: Some("00f067aa0ba902b7".into()),
            },
        };
        let llm = LlmTotals::of(vec![ModelTokens {
            model: "gpt-4o-mini".into(),
            calls: 3,
            prompt_tokens: 30,
            completion_tokens: 6,
            cost_usd: Some(0.0000081),
        }]);
        for steps in [
            vec![],
            vec![step(1, None)],
            vec![step(1, None), step(2, Some(1)), step(3, Some(2))],
        ] {
            let whole = ExecutionDetail {
                summary: head.summary.clone(),
                metadata: head.metadata.clone(),
                outcome: head.outcome.clone(),
                error: head.error.clone(),
                trace: head.trace.clone(),
                llm: llm.clone(),
                steps: steps.clone(),
            };
            let mut json = ExecutionJson::begin(Vec::new(), &head, &llm).unwrap();
            for s in &steps {
                json.step(s).unwrap();
            }
            let streamed = String::from_utf8(json.finish().unwrap()).unwrap();
            assert_eq!(streamed, format!("{}\n", to_json(&whole).unwrap()));
            // One `steps` (the array), the count beside it under its own name.
            assert_eq!(streamed.matches("\"steps\"").count(), 1, "{streamed}");
            assert!(streamed.contains("\"step_count\": 3"), "{streamed}");
            let back: serde_json::Value = serde_json::from_str(&streamed).unwrap();
            assert_eq!(back["llm"]["models"][0]["calls"], 3, "{streamed}");
            assert_eq!(back["llm"]["cost_usd"], 0.0000081, "{streamed}");
            assert!(
                streamed.contains("\"trace_id\": \"4bf92f3577b34da6a3ce929d0e0e4736\"")
                    && streamed.contains("\"parent_span_id\": \"00f067aa0ba902b7\""),
                "{streamed}"
            );
        }
    }
}
