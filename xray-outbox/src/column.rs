//! The columns of `xray_outbox`, and the statements built from them.

use std::sync::OnceLock;

/// Defines [`Column`] from one list of variants and column names, in
/// table order.
macro_rules! columns {
    ($($(#[$doc:meta])* $variant:ident => $name:literal),+ $(,)?) => {
        /// A column of `xray_outbox`, in table order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Column {
            $($(#[$doc])* $variant),+
        }

        impl Column {
            /// Every column, in table order (`seq` first).
            pub const ALL: &'static [Column] = &[$(Column::$variant),+];

            /// The column's name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Column::$variant => $name),+
                }
            }
        }
    };
}

columns! {
    /// `INTEGER PRIMARY KEY AUTOINCREMENT`: the record's place in the file.
    Seq => "seq",
    /// [`RecordType`](crate::RecordType).
    RecordType => "record_type",
    /// [`Phase`](crate::Phase).
    Phase => "phase",
    /// The step's or execution's UUID, as text.
    Id => "id",
    /// The execution's UUID (an execution's own `id`).
    ExecutionId => "execution_id",
    /// The enclosing step's UUID, or NULL.
    ParentId => "parent_id",
    /// The execution's project.
    Project => "project",
    /// The step's or execution's name.
    Name => "name",
    /// The step's kind, or NULL.
    Kind => "kind",
    /// [`StepStatus`](crate::StepStatus) or [`ExecutionStatus`](crate::ExecutionStatus).
    Status => "status",
    /// The step's arguments, JSON text.
    Input => "input",
    /// The step's return value, JSON text.
    Output => "output",
    /// Error text.
    Error => "error",
    /// The step's attributes, a JSON object (`_xray_flags` lists capture flags).
    Attributes => "attributes",
    /// The execution's metadata, a JSON object.
    Metadata => "metadata",
    /// The execution's outcome, JSON.
    Outcome => "outcome",
    /// A JSON array of [`Decision`](crate::Decision).
    Decisions => "decisions",
    /// A JSON array of [`LlmUsage`](crate::LlmUsage).
    LlmUsage => "llm_usage",
    /// Start, µs since the Unix epoch.
    StartedAtUs => "started_at_us",
    /// End, µs since the Unix epoch, or NULL.
    EndedAtUs => "ended_at_us",
    /// Duration in µs, or NULL.
    DurationUs => "duration_us",
    /// The writing process.
    Pid => "pid",
    /// When the row was committed, µs since the Unix epoch.
    WrittenAtUs => "written_at_us",
    /// The trace id, lowercase hex; NULL when derived ([`crate::trace`]).
    TraceId => "trace_id",
    /// An execution's remote parent span id, lowercase hex, or NULL.
    ParentSpanId => "parent_span_id",
}

impl Column {
    /// The columns a writer supplies (all but `seq`), in the order of the
    /// parameters of [`insert_sql`].
    pub fn written() -> &'static [Column] {
        &Column::ALL[1..]
    }

    /// The 1-based parameter of this column in [`insert_sql`]; `None` for
    /// `seq`, which SQLite assigns.
    pub fn parameter(self) -> Option<usize> {
        Column::written()
            .iter()
            .position(|c| *c == self)
            .map(|i| i + 1)
    }
}

/// `INSERT INTO xray_outbox (…every written column…) VALUES (?1, …)`.
pub fn insert_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let names: Vec<&str> = Column::written().iter().map(|c| c.name()).collect();
        let params: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            crate::TABLE,
            names.join(", "),
            params.join(", ")
        )
    })
}

/// Columns at most this long (bytes) are read even from a row over the
/// reader's row limit, so that what is dead-lettered in its place still
/// says what the row was (its ids, name, status, times).
pub const SMALL_COLUMN_BYTES: usize = 1024;

/// `SELECT …every column…, row_bytes FROM xray_outbox WHERE seq > ?2
/// ORDER BY seq LIMIT ?1`: the oldest rows after a sequence number, each
/// with `row_bytes`, its size in bytes over every column
/// (`octet_length`, which SQLite answers from the record header without
/// reading the value). A row of more than `?3` bytes comes back with only
/// its columns of at most [`SMALL_COLUMN_BYTES`] (the others NULL): a
/// reader can bound what a row costs it before the row is loaded.
pub fn select_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let size: Vec<String> = Column::ALL
            .iter()
            .map(|c| format!("coalesce(octet_length({}), 0)", c.name()))
            .collect();
        let bounded: Vec<String> = Column::ALL
            .iter()
            .map(|c| {
                let name = c.name();
                format!(
                    "CASE WHEN row_bytes <= ?3 OR coalesce(octet_length({name}), 0) <= {SMALL_COLUMN_BYTES} \
                     THEN {name} END AS {name}"
                )
            })
            .collect();
        format!(
            "SELECT {}, row_bytes FROM (SELECT *, {} AS row_bytes FROM {} \
             WHERE seq > ?2 ORDER BY seq LIMIT ?1)",
            bounded.join(", "),
            size.join(" + "),
            crate::TABLE
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_declares_exactly_the_columns_in_order() {
        let table = crate::SCHEMA
            .split("CREATE TABLE IF NOT EXISTS xray_outbox (")
            .nth(1)
            .expect("the records table");
        let declared: Vec<&str> = table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(')'))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        let names: Vec<&str> = Column::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(declared, names);
    }

    #[test]
    fn insert_parameters_follow_the_written_columns() {
        assert_eq!(Column::Seq.parameter(), None);
        assert_eq!(Column::RecordType.parameter(), Some(1));
        assert_eq!(Column::WrittenAtUs.parameter(), Some(22));
        assert_eq!(Column::ParentSpanId.parameter(), Some(24));
        let sql = insert_sql();
        assert!(
            sql.starts_with("INSERT INTO xray_outbox (record_type, phase, id,"),
            "{sql}"
        );
        assert!(sql.ends_with("?23, ?24)"), "{sql}");
        assert!(!sql.contains("seq"), "{sql}");
    }
}
