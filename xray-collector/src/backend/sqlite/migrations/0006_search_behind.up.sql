-- The search index moves off the shipping path (BENCHMARKS.md, issue 12, as
-- on PostgreSQL): writing a step only notes it in search_pending (a trigger,
-- one small row); the collector's indexer feeds noted steps to steps_fts in
-- batches behind the shipper. `replaces` is 1 when the step may already be
-- in the index (its row was updated), so the indexer removes it first.
CREATE TABLE search_pending (
    fts_rowid INTEGER NOT NULL,
    replaces  INTEGER NOT NULL
) STRICT;

DROP TRIGGER steps_fts_after_insert;
DROP TRIGGER steps_fts_after_update;

CREATE TRIGGER steps_search_note_insert AFTER INSERT ON steps BEGIN
    INSERT INTO search_pending (fts_rowid, replaces) VALUES (new.fts_rowid, 0);
END;

-- Re-shipping a step rewrites its row with the same values: no note then.
CREATE TRIGGER steps_search_note_update AFTER UPDATE OF name, input, output, error ON steps
WHEN old.name IS NOT new.name OR old.input IS NOT new.input
  OR old.output IS NOT new.output OR old.error IS NOT new.error
BEGIN
    INSERT INTO search_pending (fts_rowid, replaces) VALUES (new.fts_rowid, 1);
END;

-- steps_fts_after_delete stays: a deleted step leaves the index at once.

-- A b-tree on a status that is 'ok' for almost every step: no read uses it.
DROP INDEX steps_by_status;
