//! Minimal reads: counts and full-text search. The query commands
//! (`executions`, `show`, `why`, `stats`) build on the same connection.

use rusqlite::{params, Connection};
use uuid::Uuid;

use super::{classify, SqliteStore};
use crate::store::StoreError;

/// Search results returned at most by [`SqliteStore::search_step_ids`].
const SEARCH_LIMIT: i64 = 100;

impl SqliteStore {
    /// How many steps the store holds.
    pub async fn count_steps(&self) -> Result<i64, StoreError> {
        self.read(|conn| conn.query_row("SELECT count(*) FROM steps", [], |r| r.get(0)))
            .await
    }

    /// How many executions the store holds (placeholders included).
    pub async fn count_executions(&self) -> Result<i64, StoreError> {
        self.read(|conn| conn.query_row("SELECT count(*) FROM executions", [], |r| r.get(0)))
            .await
    }

    /// Steps whose name, input, output or error contain every word of
    /// `text` (stemmed, case- and accent-insensitive), best match first,
    /// with their bm25 rank (lower is better), at most 100.
    ///
    /// `text` is taken as plain words, not FTS5 query syntax: each
    /// whitespace-separated word is quoted, so `a-b` or `"` cannot make the
    /// query invalid. Blank text finds nothing.
    pub async fn search_step_ids(&self, text: &str) -> Result<Vec<(Uuid, f64)>, StoreError> {
        let Some(query) = fts_query(text) else {
            return Ok(Vec::new());
        };
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT steps.id, bm25(steps_fts) AS rank
                 FROM steps_fts JOIN steps ON steps.fts_rowid = steps_fts.rowid
                 WHERE steps_fts MATCH ?1
                 ORDER BY rank, steps.id
                 LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![query, SEARCH_LIMIT], |r| {
                let id: String = r.get(0)?;
                let id = Uuid::parse_str(&id).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        0,
                        rusqlite::types::Type::Text,
                        e.into(),
                    )
                })?;
                Ok((id, r.get::<_, f64>(1)?))
            })?;
            rows.collect()
        })
        .await
    }

    /// Runs `query` with the connection on a blocking thread, its errors
    /// classified.
    pub(crate) async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.with_connection(query)
            .await
            .map_err(super::worker_failed)?
            .map_err(|e| classify(&e))
    }
}

/// `text` as an FTS5 query of quoted words (implicitly AND-ed), or `None`
/// when it has no words.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn search_text_becomes_quoted_words() {
        assert_eq!(
            fts_query("  red  shoe-box "),
            Some(r#""red" "shoe-box""#.to_owned())
        );
        assert_eq!(
            fts_query(r#"say "hi""#),
            Some(r#""say" """hi""""#.to_owned())
        );
        assert_eq!(fts_query(" \t"), None);
    }
}
