//! Versioned schema migrations, shared by both backends.
//!
//! Each backend has its own list of migrations (`store/<backend>/migrations/
//! NNNN_name.up.sql` and `.down.sql`, compiled in). Applying follows the
//! order that keeps several collectors starting at once safe:
//!
//! 1. take the backend's migration lock (PostgreSQL: an advisory lock;
//!    SQLite: an exclusive transaction);
//! 2. make sure `schema_migrations(version, name, checksum, applied_at)` exists;
//! 3. refuse a database that has a version this binary does not know
//!    ("newer than this collector") or whose applied migration's checksum
//!    differs from ours ("edited after it was applied") — with a message
//!    that says what to do;
//! 4. apply the pending ones in order, each in its own transaction with its
//!    `schema_migrations` row;
//! 5. release the lock.

use sha2::{Digest, Sha256};

/// One migration: its up and down SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version, strictly increasing from 1.
    pub version: i64,
    /// Short name (the file name without version and suffix).
    pub name: &'static str,
    /// SQL that applies it.
    pub up: &'static str,
    /// SQL that reverts it.
    pub down: &'static str,
}

impl Migration {
    /// Hex SHA-256 of the up SQL: what `schema_migrations.checksum` holds.
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.up.as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A migration recorded as applied in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its version.
    pub version: i64,
    /// Its name when applied.
    pub name: String,
    /// Its checksum when applied.
    pub checksum: String,
}

/// Errors from migrating.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database has migrations this binary does not know.
    #[error(
        "the database schema is at version {found}, newer than this collector knows (up to {known}); \
         upgrade xray-collector, or run `xray-collector migrate down` with the newer binary"
    )]
    NewerSchema {
        /// Highest version applied in the database.
        found: i64,
        /// Highest version this binary knows.
        known: i64,
    },
    /// An applied migration differs from the one in this binary.
    #[error(
        "migration {version} ({name}) was changed after it was applied (checksum {applied} in the \
         database, {ours} in this binary); restore the original migration, or revert it with the \
         binary that applied it"
    )]
    Edited {
        /// Its version.
        version: i64,
        /// Its name.
        name: String,
        /// Checksum in the database.
        applied: String,
        /// Checksum in this binary.
        ours: String,
    },
    /// The backend failed.
    #[error("migration failed: {0}")]
    Backend(String),
}

/// What `migrate status` reports for one known migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    /// Version.
    pub version: i64,
    /// Name.
    pub name: &'static str,
    /// Whether it is applied.
    pub applied: bool,
}

/// Checks the applied list against the known migrations (step 3 above).
pub fn verify(known: &[Migration], applied: &[Applied]) -> Result<(), MigrateError> {
    let highest_known = known.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newest) = applied.iter().map(|a| a.version).max() {
        if newest > highest_known {
            return Err(MigrateError::NewerSchema {
                found: newest,
                known: highest_known,
            });
        }
    }
    for a in applied {
        if let Some(m) = known.iter().find(|m| m.version == a.version) {
            let ours = m.checksum();
            if ours != a.checksum {
                return Err(MigrateError::Edited {
                    version: a.version,
                    name: a.name.clone(),
                    applied: a.checksum.clone(),
                    ours,
                });
            }
        }
    }
    Ok(())
}

/// The migrations still to apply, in order.
pub fn pending<'a>(known: &'a [Migration], applied: &[Applied]) -> Vec<&'a Migration> {
    let mut out: Vec<&Migration> = known
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .collect();
    out.sort_by_key(|m| m.version);
    out
}

/// The `n` most recent applied migrations to revert, newest first.
pub fn to_revert<'a>(known: &'a [Migration], applied: &[Applied], n: usize) -> Vec<&'a Migration> {
    let mut versions: Vec<i64> = applied.iter().map(|a| a.version).collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions
        .into_iter()
        .take(n)
        .filter_map(|v| known.iter().find(|m| m.version == v))
        .collect()
}

/// Every known migration with whether it is applied.
pub fn status(known: &[Migration], applied: &[Applied]) -> Vec<MigrationStatus> {
    let mut out: Vec<MigrationStatus> = known
        .iter()
        .map(|m| MigrationStatus {
            version: m.version,
            name: m.name,
            applied: applied.iter().any(|a| a.version == m.version),
        })
        .collect();
    out.sort_by_key(|s| s.version);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Migration] = &[
        Migration {
            version: 1,
            name: "init",
            up: "create table a (x int);",
            down: "drop table a;",
        },
        Migration {
            version: 2,
            name: "more",
            up: "create table b (x int);",
            down: "drop table b;",
        },
    ];

    fn applied(version: i64) -> Applied {
        let m = KNOWN.iter().find(|m| m.version == version).unwrap();
        Applied {
            version,
            name: m.name.into(),
            checksum: m.checksum(),
        }
    }

    #[test]
    fn pending_and_revert_follow_version_order() {
        assert_eq!(
            pending(KNOWN, &[])
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(
            pending(KNOWN, &[applied(1)])
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>(),
            [2]
        );
        let both = [applied(1), applied(2)];
        assert_eq!(
            to_revert(KNOWN, &both, 1)
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(
            to_revert(KNOWN, &both, 5)
                .iter()
                .map(|m| m.version)
                .collect::<Vec<_>>(),
            [2, 1]
        );
    }

    #[test]
    fn a_newer_schema_is_refused_with_both_versions() {
        let newer = Applied {
            version: 3,
            name: "future".into(),
            checksum: "x".into(),
        };
        let err = verify(KNOWN, &[applied(1), newer]).unwrap_err();
        assert!(matches!(
            err,
            MigrateError::NewerSchema { found: 3, known: 2 }
        ));
        assert!(err.to_string().contains("upgrade xray-collector"));
    }

    #[test]
    fn an_edited_migration_is_refused() {
        let mut edited = applied(1);
        edited.checksum = "0".repeat(64);
        let err = verify(KNOWN, &[edited]).unwrap_err();
        assert!(
            matches!(err, MigrateError::Edited { version: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn checksums_are_sha256_hex() {
        assert_eq!(KNOWN[0].checksum().len(), 64);
        assert_ne!(KNOWN[0].checksum(), KNOWN[1].checksum());
    }
}
