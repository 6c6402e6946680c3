//! What the LLM reasoner works on and what it reports: a job taken from
//! the store ([`LlmJob`], the step as the prompt needs it) and how its
//! call ended ([`LlmOutcome`]). Plain data: the backends read and write
//! it ([`crate::backend::Reasoning`]), [`crate::reasoning`] drives it.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::model::{Decision, StepStatus};

/// A step as a reasoner is told about it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepToExplain {
    /// Its name.
    pub name: String,
    /// Its kind (`llm`, `filter`, …), if given.
    pub kind: Option<String>,
    /// How it ended.
    pub status: StepStatus,
    /// Its input, as stored (redacted when captured).
    pub input: Option<Value>,
    /// Its output, as stored.
    pub output: Option<Value>,
    /// Its error text.
    pub error: Option<String>,
    /// How long it took (µs).
    pub duration_us: Option<i64>,
    /// Its decisions, in the order taken.
    pub decisions: Vec<Decision>,
    /// What is written now (the rules text), if anything.
    pub reasoning: Option<String>,
}

/// A job the LLM reasoner holds: the step and how many calls were made for
/// it since it was last queued.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmJob {
    /// The job's id (the step's).
    pub id: Uuid,
    /// Calls made for it before this one.
    pub attempts: u32,
    /// The step.
    pub step: StepToExplain,
}

/// How an LLM job ended this time.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmOutcome {
    /// The model answered: its text replaces the rules text.
    Explained {
        /// The explanation.
        text: String,
        /// The model that answered (as the server named it).
        model: String,
        /// Prompt tokens the server counted, if it said.
        prompt_tokens: Option<i64>,
        /// Completion tokens the server counted, if it said.
        completion_tokens: Option<i64>,
    },
    /// The call failed in a way that may pass: the job is due again after
    /// `after`, its error kept meanwhile.
    Retry {
        /// What went wrong.
        error: String,
        /// When to try again, from now.
        after: Duration,
    },
    /// The job failed for good (a refusal, or too many attempts): the
    /// rules text stays.
    Failed {
        /// What went wrong, last.
        error: String,
    },
}

/// The LLM jobs not done yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LlmBacklog {
    /// Jobs waiting for a call (due or not).
    pub pending: u64,
    /// Jobs a collector holds now.
    pub processing: u64,
    /// How long until the next pending job is due (zero: one is due now).
    pub next_due_in: Option<Duration>,
}
