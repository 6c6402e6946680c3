//! Shared support for the collector's integration tests.
//!
//! Each test binary includes this with `mod support;` and uses a part of
//! it, so unused items are expected.
#![allow(dead_code)]

/// `on_both_backends!(test_name, scenario)`: a module `test_name` with the
/// tests `embedded` and `postgres`, each running `scenario(target)` on a
/// fresh [`target::Target`] of that backend (`Target` must be in scope).
// Not every test binary that includes the support uses it.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[test]
            fn embedded() {
                super::$body(super::Target::embedded());
            }
            #[test]
            fn postgres() {
                super::$body(super::Target::postgres());
            }
        }
    };
}

pub mod big;
pub mod chat;
pub mod otlp;
pub mod outbox;
pub mod pg;
pub mod records;
pub mod target;
