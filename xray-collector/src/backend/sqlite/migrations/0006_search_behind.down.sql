CREATE INDEX steps_by_status ON steps (status);

-- What was noted and not yet indexed is indexed now, as the triggers did.
DELETE FROM steps_fts WHERE rowid IN (SELECT fts_rowid FROM search_pending WHERE replaces = 1);
INSERT INTO steps_fts (rowid, name, input, output, error)
SELECT fts_rowid, name,
       (SELECT group_concat(value, ' ') FROM json_tree(steps.input) WHERE type = 'text'),
       (SELECT group_concat(value, ' ') FROM json_tree(steps.output) WHERE type = 'text'),
       error
FROM steps WHERE fts_rowid IN (SELECT fts_rowid FROM search_pending);

DROP TRIGGER steps_search_note_update;
DROP TRIGGER steps_search_note_insert;
DROP TABLE search_pending;

CREATE TRIGGER steps_fts_after_insert AFTER INSERT ON steps BEGIN
    INSERT INTO steps_fts (rowid, name, input, output, error)
    VALUES (new.fts_rowid, new.name,
            (SELECT group_concat(value, ' ') FROM json_tree(new.input) WHERE type = 'text'),
            (SELECT group_concat(value, ' ') FROM json_tree(new.output) WHERE type = 'text'),
            new.error);
END;

CREATE TRIGGER steps_fts_after_update AFTER UPDATE OF name, input, output, error ON steps
WHEN old.name IS NOT new.name OR old.input IS NOT new.input
  OR old.output IS NOT new.output OR old.error IS NOT new.error
BEGIN
    DELETE FROM steps_fts WHERE rowid = old.fts_rowid;
    INSERT INTO steps_fts (rowid, name, input, output, error)
    VALUES (new.fts_rowid, new.name,
            (SELECT group_concat(value, ' ') FROM json_tree(new.input) WHERE type = 'text'),
            (SELECT group_concat(value, ' ') FROM json_tree(new.output) WHERE type = 'text'),
            new.error);
END;
