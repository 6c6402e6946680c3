//! `migrate [up | down [N] --yes | status]`.

use std::process::ExitCode;

use clap::Subcommand;
use xray_collector::backend::Migrations;

use super::{open, Backend, Missing, UsageError};

#[derive(Subcommand, Debug, Clone, Copy)]
pub(super) enum MigrateAction {
    /// Apply every pending migration (the default).
    Up,
    /// Revert the last N applied migrations (default 1).
    Down {
        /// How many.
        #[arg(default_value_t = 1)]
        n: usize,
        /// Really drop what those migrations created (without it, nothing
        /// is changed).
        #[arg(long)]
        yes: bool,
    },
    /// List migrations and whether each is applied.
    Status,
}

pub(super) async fn migrate(
    action: Option<MigrateAction>,
    backend: &Backend,
) -> anyhow::Result<ExitCode> {
    if let Some(MigrateAction::Down { n, yes: false }) = action {
        // Refused before the backend is even opened: nothing changes.
        return Err(UsageError(format!(
            "migrate down drops the tables of the last {n} migration(s) and \
             everything in them: pass --yes to do it"
        ))
        .into());
    }
    let store = open(backend, Missing::Create).await?;
    match action.unwrap_or(MigrateAction::Up) {
        MigrateAction::Up => {
            let applied = store.migrate_up().await?;
            if applied.is_empty() {
                println!("schema is up to date");
            }
            for v in applied {
                println!("applied {v}");
            }
        }
        MigrateAction::Down { n, .. } => {
            for v in store.migrate_down(n).await? {
                println!("reverted {v}");
            }
        }
        MigrateAction::Status => {
            for m in store.migrate_status().await? {
                println!(
                    "{:>4} {:<24} {}",
                    m.version,
                    m.name,
                    if m.applied { "applied" } else { "pending" }
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
