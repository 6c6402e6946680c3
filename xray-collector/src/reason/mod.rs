//! Explaining steps (DESIGN.md, "Reasoning"): the reasoners that turn a
//! step's decisions and failure into a short text a person reads first.
//! `rules` is the offline default; the jobs that run it after shipping,
//! and the LLM reasoner, are issue 14's next steps.

pub mod rules;
