-- The search index moves off the shipping path (BENCHMARKS.md, issue 12:
-- building each step's tsvector and GIN entries inside the shipping
-- transaction was most of a shipped step's cost). The shipping transaction
-- now only notes a written step's id in xray.search_pending (a heap insert,
-- no index); the collector's indexer turns pending steps into rows of
-- xray.step_search in batches behind the shipper (`run` keeps it current;
-- `run --once` returns when it has caught up).
CREATE TABLE xray.step_search (
    step_id uuid     PRIMARY KEY REFERENCES xray.steps (id) ON DELETE CASCADE,
    search  tsvector NOT NULL
);
INSERT INTO xray.step_search (step_id, search) SELECT id, search FROM xray.steps;
CREATE INDEX step_search_search ON xray.step_search USING gin (search);

DROP INDEX xray.steps_search;
ALTER TABLE xray.steps DROP COLUMN search;

-- Steps written since the indexer last ran; a step may be listed more than
-- once (its start, then its end). No key: the indexer takes rows by ctid.
CREATE TABLE xray.search_pending (step_id uuid NOT NULL);

-- A b-tree on a status that is 'ok' for almost every step: no read uses it,
-- and it cost a sixth of a bare copy's time.
DROP INDEX xray.steps_status;
