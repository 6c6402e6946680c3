//! `import FILE`: the earlier X-Ray's JSON data into the store
//! ([`legacy`] has the shape and the mapping).
//!
//! The file — an array of executions, or `{"executions": [...]}` — is read
//! as a stream, one entry at a time (a file of 100 000 executions costs
//! the memory of a batch, not of the file). Each entry that cannot be
//! imported (not the shape, a bad time, refused by the store) is reported
//! with its index and reason while the others are imported; an entry whose
//! execution is already in the store is counted as such and left alone, so
//! a second import changes nothing.

pub mod legacy;

use std::fmt;
use std::path::Path;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::backend::{QueryStore, Store, StoreError};
use crate::model::ShipRecord;
use legacy::LegacyExecution;

/// Executions written per transaction.
const BATCH: usize = 200;

/// What an import did (or, dry, would do).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Entries read.
    pub entries: u64,
    /// Executions imported.
    pub imported: u64,
    /// Their steps.
    pub steps: u64,
    /// Entries whose execution was already in the store.
    pub already_present: u64,
    /// Entries refused: index in the file, and why.
    pub refused: Vec<(u64, String)>,
}

/// Why an import stopped before the end of the file.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read, or is not JSON of the expected outline.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// The store failed (not a refusal of an entry).
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Imports `path` into `store`; `project` for entries that name none.
/// `progress` is called every 10 000 entries with the count so far.
pub async fn import<S: Store + QueryStore>(
    store: &S,
    path: &Path,
    project: &str,
    dry_run: bool,
    mut progress: impl FnMut(u64),
) -> Result<ImportSummary, ImportError> {
    let file = std::fs::File::open(path).map_err(|e| ImportError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    // Parsed on a thread of its own, handed over a bounded channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(BATCH);
    let shown = path.display().to_string();
    let reader = tokio::task::spawn_blocking(move || {
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
        let entries = Entries { tx: &tx };
        entries.deserialize(&mut de).and_then(|()| de.end())
    });
    let mut summary = ImportSummary::default();
    let mut batch: Vec<(u64, Vec<ShipRecord>)> = Vec::new();
    let mut in_batch = std::collections::HashSet::new();
    while let Some(entry) = rx.recv().await {
        let index = summary.entries;
        summary.entries += 1;
        if summary.entries % 10_000 == 0 {
            progress(summary.entries);
        }
        let records = serde_json::from_value::<LegacyExecution>(entry)
            .map_err(|e| e.to_string())
            .and_then(|e| e.records(project));
        let records = match records {
            Ok(r) => r,
            Err(reason) => {
                summary.refused.push((index, reason));
                continue;
            }
        };
        if !in_batch.insert(records[0].id()) {
            // The same execution earlier in this batch.
            summary.already_present += 1;
            continue;
        }
        batch.push((index, records));
        if batch.len() >= BATCH {
            in_batch.clear();
            let full = std::mem::take(&mut batch);
            write(
                store,
                absent(store, full, &mut summary).await?,
                dry_run,
                &mut summary,
            )
            .await?;
        }
    }
    let rest = absent(store, batch, &mut summary).await?;
    write(store, rest, dry_run, &mut summary).await?;
    match reader.await {
        Ok(Ok(())) => Ok(summary),
        Ok(Err(e)) => Err(ImportError::File {
            path: shown,
            reason: format!(
                "not the earlier X-Ray's JSON (an array of executions, or {{\"executions\": [...]}}): {e} \
                 ({} entries before it were read, {} of them imported)",
                summary.entries, summary.imported
            ),
        }),
        Err(e) => Err(ImportError::File {
            path: shown,
            reason: e.to_string(),
        }),
    }
}

/// The entries of `batch` whose execution is not in the store yet (looked
/// up in one query); the others are counted as already present.
async fn absent<S: QueryStore>(
    store: &S,
    batch: Vec<(u64, Vec<ShipRecord>)>,
    summary: &mut ImportSummary,
) -> Result<Vec<(u64, Vec<ShipRecord>)>, StoreError> {
    if batch.is_empty() {
        return Ok(batch);
    }
    let ids: Vec<uuid::Uuid> = batch.iter().map(|(_, r)| r[0].id()).collect();
    let present = store.existing_executions(&ids).await?;
    let before = batch.len();
    let batch: Vec<_> = batch
        .into_iter()
        .filter(|(_, r)| !present.contains(&r[0].id()))
        .collect();
    summary.already_present += (before - batch.len()) as u64;
    Ok(batch)
}

/// Writes a batch of entries in one transaction; when the store refuses
/// it, each entry alone, so that only the refused ones are reported.
async fn write<S: Store>(
    store: &S,
    batch: Vec<(u64, Vec<ShipRecord>)>,
    dry_run: bool,
    summary: &mut ImportSummary,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let count = |b: &[(u64, Vec<ShipRecord>)]| {
        (
            b.len() as u64,
            b.iter().map(|(_, r)| r.len() as u64 - 1).sum::<u64>(),
        )
    };
    if dry_run {
        let (n, steps) = count(&batch);
        summary.imported += n;
        summary.steps += steps;
        return Ok(());
    }
    let all: Vec<ShipRecord> = batch.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
    match store.write(&all).await {
        Ok(()) => {
            let (n, steps) = count(&batch);
            summary.imported += n;
            summary.steps += steps;
            Ok(())
        }
        Err(StoreError::Rejected(_)) => {
            for (index, records) in batch {
                match store.write(&records).await {
                    Ok(()) => {
                        summary.imported += 1;
                        summary.steps += records.len() as u64 - 1;
                    }
                    Err(StoreError::Rejected(reason)) => {
                        summary
                            .refused
                            .push((index, format!("refused by the store: {reason}")));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The top level: an array of entries, or an object with one.
struct Entries<'a> {
    tx: &'a tokio::sync::mpsc::Sender<Value>,
}

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of executions, or an object with \"executions\"")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<Value>()? {
            if self.tx.blocking_send(entry).is_err() {
                // The importer stopped (a store failure): stop reading.
                return Ok(());
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut found = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "executions" && !found {
                found = true;
                map.next_value_seed(Entries { tx: self.tx })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !found {
            return Err(serde::de::Error::custom("no \"executions\" array"));
        }
        Ok(())
    }
}
