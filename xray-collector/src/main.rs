//! `xray-collector`: ships X-Ray outboxes to PostgreSQL or the embedded
//! store, and reads traces back.
//!
//! Not built yet: shipping, migrations and the query commands arrive with
//! their own issues. Until then the binary says so instead of pretending.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "xray-collector {}: shipping and query commands are not implemented yet.\n\
         The SDK writes its outbox (XRAY_OUTBOX, default .xray/outbox.db); its format is\n\
         documented in xray-sdk/src/outbox/mod.rs.",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
