//! `xray-collector`: ships X-Ray outboxes to PostgreSQL (with a database
//! URL) or the embedded SQLite store (without), manages the schema, and
//! reads traces back. The command line lives in [`cli`].

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
