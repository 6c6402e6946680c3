//! Mistakes in `#[xray::step]` are compile errors that point at the
//! offending token. Each case is a file in `tests/ui/` with the expected
//! compiler output next to it (`.stderr`); regenerate those with
//! `TRYBUILD=overwrite cargo test -p xray-sdk --test ui` and read the diff.

#[test]
fn step_attribute_mistakes_are_compile_errors_at_the_offending_token() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
