-- `stats --since` reads the finished steps before its window's first whole
-- day (query/rollup.rs) by name and start: with their duration and status in
-- the index, an index-only scan (BENCHMARKS.md issue 12).
DROP INDEX xray.steps_name_started;
CREATE INDEX steps_name_started ON xray.steps (name, started_at) INCLUDE (duration_us, status);

-- Search ranks the newest matching steps (query/mod.rs `SEARCH_NEWEST`):
-- each indexed step carries its start, and an index finds the newest matches
-- of a common word without visiting every match.
ALTER TABLE xray.step_search ADD COLUMN started_at timestamptz;
UPDATE xray.step_search x SET started_at = s.started_at FROM xray.steps s WHERE s.id = x.step_id;
DELETE FROM xray.step_search WHERE started_at IS NULL;
ALTER TABLE xray.step_search ALTER COLUMN started_at SET NOT NULL;
CREATE INDEX step_search_newest ON xray.step_search (started_at DESC);
