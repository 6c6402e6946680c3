DROP TRIGGER steps_fts_after_update;
DROP TRIGGER steps_fts_after_delete;
DROP TRIGGER steps_fts_after_insert;
DROP TABLE steps_fts;

CREATE VIRTUAL TABLE steps_fts USING fts5 (
    name, input, output, error,
    content = 'steps',
    content_rowid = 'fts_rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
INSERT INTO steps_fts (steps_fts) VALUES ('rebuild');

CREATE TRIGGER steps_fts_after_insert AFTER INSERT ON steps BEGIN
    INSERT INTO steps_fts (rowid, name, input, output, error)
    VALUES (new.fts_rowid, new.name, new.input, new.output, new.error);
END;

CREATE TRIGGER steps_fts_after_delete AFTER DELETE ON steps BEGIN
    INSERT INTO steps_fts (steps_fts, rowid, name, input, output, error)
    VALUES ('delete', old.fts_rowid, old.name, old.input, old.output, old.error);
END;

CREATE TRIGGER steps_fts_after_update AFTER UPDATE OF name, input, output, error ON steps
WHEN old.name IS NOT new.name OR old.input IS NOT new.input
  OR old.output IS NOT new.output OR old.error IS NOT new.error
BEGIN
    INSERT INTO steps_fts (steps_fts, rowid, name, input, output, error)
    VALUES ('delete', old.fts_rowid, old.name, old.input, old.output, old.error);
    INSERT INTO steps_fts (rowid, name, input, output, error)
    VALUES (new.fts_rowid, new.name, new.input, new.output, new.error);
END;
