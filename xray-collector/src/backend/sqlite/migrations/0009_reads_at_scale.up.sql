-- `stats --since` reads the finished steps before its window's first whole
-- day (query/rollup.rs) by name and start: with their duration and status in
-- the index, without a look-up of each step's row (228 000 steps of the last
-- day: 0.6 s from the rows at 10 million steps, BENCHMARKS.md issue 12).
DROP INDEX steps_by_name;
CREATE INDEX steps_by_name ON steps (name, started_at_us, duration_us, status);
