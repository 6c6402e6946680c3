-- On PostgreSQL, version 10 partitions the search index by the day a step
-- started, so that a search's windows of start time read only their days.
-- FTS5 keeps each word's matches in rowid order and a search stops at the
-- 10 000th newest (BENCHMARKS.md, issue 12), so the embedded store needs
-- no such thing: this version changes nothing here, and keeps the two
-- schemas' versions meaning the same.
SELECT 1;
