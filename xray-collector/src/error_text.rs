//! An error as one line of text, with its causes: drivers and clients
//! (tokio-postgres, reqwest) say little at the top ("db error", "error
//! sending request") and the reason below.

/// `error: cause: cause of the cause: …`.
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
