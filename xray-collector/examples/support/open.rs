//! Opening the store an example writes into (included by path by the
//! examples that fill stores).

use std::path::Path;

use anyhow::Context;
use xray_collector::backend::{AnyStore, Migrations};

/// PostgreSQL at `database_url` if given, else the embedded store at
/// `store` (its directory created), migrated up.
pub async fn migrated_store(store: &Path, database_url: Option<&str>) -> anyhow::Result<AnyStore> {
    let opened = match database_url {
        Some(url) => AnyStore::postgres(url).await.context("cannot connect")?,
        None => {
            if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            AnyStore::sqlite(store)
                .await
                .with_context(|| format!("cannot open {}", store.display()))?
        }
    };
    opened
        .migrate_up()
        .await
        .context("cannot migrate the store")?;
    Ok(opened)
}
