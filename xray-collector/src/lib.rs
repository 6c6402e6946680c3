//! # xray-collector
//!
//! Moves what the X-Ray SDK captured — rows in local SQLite *outboxes* —
//! into a backend people query: PostgreSQL (schema `xray`) when a database
//! URL is given, else an embedded SQLite store with the same tables and the
//! same query features.
//!
//! Delivery is at-least-once from the outbox and **exactly once in effect**
//! in the backend: a batch is written in one transaction of idempotent
//! upserts keyed by ids, and only then deleted from the outbox, so a crash
//! between the commit and the delete re-ships harmlessly. See [`ship`] for
//! the shipping loop's invariants, [`outbox`] for reading, [`backend`] for
//! the backends.

#![warn(missing_docs)]

pub mod backend;
pub mod cost;
mod error_text;
pub mod http;
pub mod import;
pub mod indexing;
pub mod migrate;
pub mod model;
pub mod otlp;
mod outbound;
pub mod outbox;
pub mod query;
pub mod reason;
pub mod reasoning;
pub mod render;
pub mod retention;
pub mod serve;
pub mod ship;
