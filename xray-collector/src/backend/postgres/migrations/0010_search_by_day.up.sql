-- The search index partitioned by the day (UTC) a step started.
--
-- A search ranks the newest 10 000 matches of its words, looked for in
-- windows of start time (the last hour, day, week, month, year, then
-- older). In one table every window's query visited the pages of the
-- word's matches all over the table; partitioned by day, a window's query
-- only reads the partitions of its days (BENCHMARKS.md, issue 12).
--
-- A day's partition is made by xray.step_search_day when the indexer
-- first meets a step of that day, for days from ten years back to a week
-- ahead of the server's date; steps outside that range (a clock far off)
-- are kept in the default partition, and moved out of it into their day's
-- partition when that day comes into range.

ALTER TABLE xray.step_search RENAME TO step_search_before_days;
ALTER INDEX xray.step_search_pkey RENAME TO step_search_before_days_pkey;
ALTER INDEX xray.step_search_search RENAME TO step_search_before_days_search;
ALTER INDEX xray.step_search_newest RENAME TO step_search_before_days_newest;

-- No foreign key to xray.steps: deleting a step would look for its entry
-- in every partition. delete_step_children (below) deletes a deleted
-- step's entry from its day's partition.
-- Its key and indexes are made after the existing entries are copied in
-- (below): built whole, per partition, rather than grown entry by entry.
CREATE TABLE xray.step_search (
    step_id    uuid        NOT NULL,
    search     tsvector    NOT NULL,
    started_at timestamptz NOT NULL
) PARTITION BY RANGE (started_at);
CREATE TABLE xray.step_search_other PARTITION OF xray.step_search DEFAULT;

-- The partition of `day` (UTC), made if it is missing and `day` is within
-- ten years before and a week after `today`; the rows of that day kept in
-- the default partition move into it. Called by the indexer, under its
-- advisory lock, for each day of a batch before the batch is written.
CREATE FUNCTION xray.step_search_day(day date, today date DEFAULT current_date) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'step_search_' || to_char(day, 'YYYYMMDD');
    low timestamptz := day::timestamp AT TIME ZONE 'UTC';
    high timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    moved xray.step_search[];
BEGIN
    IF day < today - 3653 OR day > today + 7 OR to_regclass('xray.' || part) IS NOT NULL THEN
        RETURN;
    END IF;
    WITH m AS (
        DELETE FROM xray.step_search_other WHERE started_at >= low AND started_at < high
        RETURNING step_id, search, started_at)
    SELECT array_agg(ROW(m.step_id, m.search, m.started_at)::xray.step_search) INTO moved FROM m;
    -- Made, then attached: CREATE TABLE … PARTITION OF would lock the
    -- whole index against searches (ACCESS EXCLUSIVE on the parent);
    -- ATTACH takes SHARE UPDATE EXCLUSIVE on it (and ACCESS EXCLUSIVE on
    -- the default partition, emptied of that day above), so searches
    -- and indexing go on.
    EXECUTE format('CREATE TABLE xray.%I (LIKE xray.step_search)', part);
    EXECUTE format('ALTER TABLE xray.step_search ATTACH PARTITION xray.%I FOR VALUES FROM (%L) TO (%L)',
                   part, low, high);
    IF moved IS NOT NULL THEN
        INSERT INTO xray.step_search SELECT * FROM unnest(moved);
    END IF;
END
$$;

SELECT xray.step_search_day(d)
FROM (SELECT DISTINCT (started_at AT TIME ZONE 'UTC')::date AS d FROM xray.step_search_before_days) days;
INSERT INTO xray.step_search (step_id, search, started_at)
SELECT step_id, search, started_at FROM xray.step_search_before_days;
DROP TABLE xray.step_search_before_days;
SET LOCAL maintenance_work_mem = '256MB';
ALTER TABLE xray.step_search ADD PRIMARY KEY (step_id, started_at);
CREATE INDEX step_search_search ON xray.step_search USING gin (search);
CREATE INDEX step_search_newest ON xray.step_search (started_at DESC);

-- A deleted step's search entry goes with it, looked for in the partition
-- of its day only (one statement per day the deleted steps started on).
CREATE OR REPLACE FUNCTION xray.delete_step_children() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    day date;
BEGIN
    DELETE FROM xray.decisions d USING gone g WHERE d.step_id = g.id;
    PERFORM xray.take_out_models(array_agg(ROW(g.name, g.started_at, u.model, u.prompt_tokens, u.completion_tokens)::xray.model_use))
    FROM gone g JOIN xray.llm_usage u ON u.step_id = g.id;
    DELETE FROM xray.llm_usage u USING gone g WHERE u.step_id = g.id;
    FOR day IN SELECT DISTINCT (g.started_at AT TIME ZONE 'UTC')::date FROM gone g LOOP
        DELETE FROM xray.step_search x
        WHERE x.started_at >= day::timestamp AT TIME ZONE 'UTC'
          AND x.started_at < (day + 1)::timestamp AT TIME ZONE 'UTC'
          AND x.step_id IN (SELECT g.id FROM gone g
                            WHERE (g.started_at AT TIME ZONE 'UTC')::date = day);
    END LOOP;
    RETURN NULL;
END
$$;
