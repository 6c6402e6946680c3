//! Which PostgreSQL errors are worth retrying.
//!
//! The shipper retries [`StoreError::Unavailable`] forever with backoff and
//! bisects a batch that fails with [`StoreError::Rejected`] to dead-letter
//! the record at fault, so getting this wrong either blocks the outbox
//! (a data error retried forever) or loses rows (an outage dead-lettered).
//! The rule: anything about the connection or the server's momentary state
//! is retriable; anything about the values sent is not; a missing table or
//! permission is [`StoreError::Schema`] — neither retrying the batch nor
//! dead-lettering its records helps, an operator must act.
//!
//! A SQLSTATE of no class known to be transient — a user's trigger raising
//! `P0001`, an internal error `XX000`, anything PostgreSQL adds later — is
//! treated as the data's fault ([`Verdict::Reject`]): the shipper bisects
//! the batch down to the row that fails and dead-letters it with the
//! server's message, so one row can never stall an outbox. The cost of
//! being wrong is bounded: a transient error misread this way moves rows
//! to the dead-letter table with their reason, where they are kept whole;
//! retrying an error that is really the data's would block the outbox
//! forever.

use tokio_postgres::error::DbError;

use crate::backend::StoreError;

/// What to do about an error, by its SQLSTATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Try again later ([`StoreError::Unavailable`]).
    Retry,
    /// The data is at fault ([`StoreError::Rejected`]).
    Reject,
    /// The schema or the grants are not usable ([`StoreError::Schema`]).
    Schema,
}

/// The verdict for a SQLSTATE (five characters, e.g. `23505`).
pub(crate) fn verdict(sqlstate: &str) -> Verdict {
    match sqlstate {
        // Serialization failure, deadlock: the transaction may succeed if run again.
        "40001" | "40P01" => Verdict::Retry,
        // A deferred constraint failing at commit: the data.
        "40002" => Verdict::Reject,
        // Admin shutdown, crash shutdown, cannot connect now; query canceled
        // (statement_timeout, pg_cancel_backend); lock not available.
        "57P01" | "57P02" | "57P03" | "57P04" | "57P05" | "57014" | "55P03" | "55006" => {
            Verdict::Retry
        }
        // undefined table / column / function / object, schema missing,
        // permission denied: the schema is not (yet) one we can use.
        "42P01" | "42703" | "42883" | "42704" | "3F000" | "42501" => Verdict::Schema,
        _ => match sqlstate.get(..2).unwrap_or(sqlstate) {
            // Connection exception; insufficient resources (disk full, out of
            // memory, too many connections); system error (I/O);
            // transaction rollback; operator intervention.
            "08" | "53" | "58" | "40" | "57" => Verdict::Retry,
            // Data exception (bad value, out of range); integrity
            // constraint violation; program limit exceeded (value too
            // large); syntax error or access rule violation; feature not
            // supported; cardinality violation; and every class not known
            // to be transient (a trigger's `RAISE`, `P0001`; internal
            // errors; codes added later): bisected to the row and
            // dead-lettered (see the module docs).
            _ => Verdict::Reject,
        },
    }
}

/// Classifies an error from tokio-postgres for the shipper: retriable
/// ([`StoreError::Unavailable`], [`StoreError::Schema`]) or the data's
/// fault ([`StoreError::Rejected`]).
///
/// Errors without a SQLSTATE come from the connection (I/O, closed, TLS,
/// timeout) and are [`StoreError::Unavailable`], except a parameter that
/// could not be encoded, which is the data's fault. The text is not yet
/// scrubbed of the password: the store does that before returning it.
pub fn classify(e: &tokio_postgres::Error) -> StoreError {
    let text = describe(e);
    match e.code() {
        // A statement stopped by its `statement_timeout` (or cancelled):
        // retriable, and the connection is still good.
        Some(code) if *code == tokio_postgres::error::SqlState::QUERY_CANCELED => {
            StoreError::TimedOut(text)
        }
        Some(code) => match verdict(code.code()) {
            Verdict::Retry => StoreError::Unavailable(text),
            Verdict::Reject => StoreError::Rejected(text),
            Verdict::Schema => StoreError::Schema(format!(
                "{text} (is the schema migrated? run `xray-collector migrate up`; \
                 the user also needs rights on schema xray)"
            )),
        },
        None if e.to_string().starts_with("error serializing parameter") => {
            StoreError::Rejected(text)
        }
        None => StoreError::Unavailable(text),
    }
}

/// A one-line description of an error, with the server's message, SQLSTATE,
/// detail and hint when it has them (tokio-postgres's own `Display` only
/// says "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return describe_db(db);
    }
    crate::error_text::with_causes(e)
}

fn describe_db(db: &DbError) -> String {
    let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" (detail: {detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!(" (hint: {hint})"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_transient_server_states_are_retried() {
        for code in [
            "08000", "08006", "08001", "57P01", "57P02", "57P03", "53100", "53200", "53300",
            "40001", "40P01", "57014", "58030", "55P03",
        ] {
            assert_eq!(verdict(code), Verdict::Retry, "{code}");
        }
    }

    #[test]
    fn bad_values_are_rejected() {
        for code in [
            "22P05", "22021", "22003", "22P02", "23505", "23503", "23514", "23502", "54000",
            "54001", "42601", "42804", "40002", "21000", "0A000",
        ] {
            assert_eq!(verdict(code), Verdict::Reject, "{code}");
        }
    }

    #[test]
    fn a_missing_table_or_permission_is_a_schema_problem() {
        for code in ["42P01", "42703", "42883", "3F000", "42501"] {
            assert_eq!(verdict(code), Verdict::Schema, "{code}");
        }
    }

    #[test]
    fn unknown_classes_are_bisected_to_the_row_not_retried_forever() {
        for code in [
            "XX000", "P0001", "P0004", "25P02", "F0000", "38000", "ZZ999", "X",
        ] {
            assert_eq!(verdict(code), Verdict::Reject, "{code}");
        }
    }
}
