//! Shared support for the collector's integration tests.
//!
//! Each test binary includes this with `mod support;` and uses a part of
//! it, so unused items are expected.
#![allow(dead_code)]

pub mod outbox;
pub mod pg;
pub mod records;
pub mod target;
