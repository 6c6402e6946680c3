-- On PostgreSQL, version 7 replaces the row-by-row foreign-key checks of
-- decisions and LLM calls (a third of a shipped batch's time there) by a
-- statement-level trigger. SQLite checks a foreign key with one index
-- look-up in the same process, which measured as nothing (BENCHMARKS.md,
-- issue 12), so the embedded store keeps its keys: this version changes
-- nothing here, and keeps the two schemas' versions meaning the same.
SELECT 1;
