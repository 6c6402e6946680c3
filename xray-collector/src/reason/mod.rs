//! Explaining steps (DESIGN.md, "Reasoning"): the reasoners that turn a
//! step's decisions and failure into a short text a person reads first.
//! `rules` ([`rules`]) is the offline default and always writes first;
//! `llm` ([`chat`], told what [`prompt`] says) replaces its text when the
//! model answers. [`config`] reads which one runs; [`job`] is what they
//! work on. The jobs are driven by [`crate::reasoning`].

pub mod chat;
pub mod config;
pub mod job;
pub mod prompt;
pub mod rules;
