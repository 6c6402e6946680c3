//! Which SQLite failures are worth retrying.

use rusqlite::ffi::ErrorCode;

use crate::backend::StoreError;

/// Turns a SQLite error into a [`StoreError`], deciding whether retrying
/// may help.
///
/// - Another connection holding a lock (`SQLITE_BUSY`, `SQLITE_LOCKED`), I/O
///   failures, a full disk, a file that cannot be opened or is read-only,
///   and a corrupt file are [`StoreError::Unavailable`]: the records are
///   fine, the store is not, so the shipper keeps them and retries.
/// - A constraint (`CHECK`, `NOT NULL`, foreign key, a `STRICT` column's
///   type), a value too big (`SQLITE_TOOBIG`), a type mismatch, or a value
///   that cannot be bound are [`StoreError::Rejected`]: the same records
///   will fail the same way, so the shipper dead-letters them.
/// - A missing table (`no such table`, before `migrate up`) is
///   [`StoreError::Schema`], as on PostgreSQL: retriable, since
///   dead-lettering good records because the store is not ready would lose
///   them, and the message says to migrate.
/// - A statement stopped by its deadline is [`StoreError::TimedOut`].
/// - Anything else is [`StoreError::Other`], retriable.
pub fn classify(e: &rusqlite::Error) -> StoreError {
    let message = e.to_string();
    match e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::NoLargeFileSupport
            | ErrorCode::OutOfMemory
            | ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase => StoreError::Unavailable(message),
            ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch => {
                StoreError::Rejected(message)
            }
            // A statement stopped by its deadline (the progress handler).
            ErrorCode::OperationInterrupted => StoreError::TimedOut(message),
            _ if message.contains("no such table") => StoreError::Schema(format!(
                "{message} (the embedded store has no schema yet: run `xray-collector migrate up`)"
            )),
            _ => StoreError::Other(message),
        },
        rusqlite::Error::ToSqlConversionFailure(_) => StoreError::Rejected(message),
        _ => StoreError::Other(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn a_locked_or_failing_store_is_retried() {
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_IOERR_FSYNC,
            ffi::SQLITE_FULL,
            ffi::SQLITE_CANTOPEN,
        ] {
            let err = classify(&failure(code));
            assert!(
                matches!(err, StoreError::Unavailable(_)),
                "code {code}: {err:?}"
            );
            assert!(err.is_retriable());
        }
    }

    #[test]
    fn a_value_the_schema_refuses_is_rejected_not_retried() {
        for code in [
            ffi::SQLITE_CONSTRAINT_CHECK,
            ffi::SQLITE_CONSTRAINT_NOTNULL,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
            ffi::SQLITE_CONSTRAINT_DATATYPE,
            ffi::SQLITE_TOOBIG,
            ffi::SQLITE_MISMATCH,
        ] {
            let err = classify(&failure(code));
            assert!(
                matches!(err, StoreError::Rejected(_)),
                "code {code}: {err:?}"
            );
            assert!(!err.is_retriable());
        }
    }

    #[test]
    fn a_check_constraint_from_a_real_database_is_rejected() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (doc TEXT CHECK (json_valid(doc))) STRICT;")
            .unwrap();
        let e = conn
            .execute("INSERT INTO t VALUES ('{not json')", [])
            .unwrap_err();
        assert!(matches!(classify(&e), StoreError::Rejected(_)), "{e}");
    }

    #[test]
    fn a_missing_table_is_a_schema_error_retried_rather_than_dead_lettered() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let e = conn
            .execute("INSERT INTO steps (id) VALUES ('x')", [])
            .unwrap_err();
        let err = classify(&e);
        assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
        assert!(err.is_retriable());
        assert!(err.to_string().contains("migrate up"), "{err}");
    }
}
