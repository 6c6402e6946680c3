-- Search indexes what a person searches: the step's name and error and the
-- string values of its input and output, not the JSON's keys, numbers and
-- punctuation (as on PostgreSQL; BENCHMARKS.md, issue 12). The indexed
-- text is no longer the columns' own, so the index becomes contentless
-- (rows still found by `steps.fts_rowid`; `contentless_delete` lets a
-- step's row be forgotten by its rowid alone).
DROP TRIGGER steps_fts_after_update;
DROP TRIGGER steps_fts_after_delete;
DROP TRIGGER steps_fts_after_insert;
DROP TABLE steps_fts;

CREATE VIRTUAL TABLE steps_fts USING fts5 (
    name, input, output, error,
    content = '',
    contentless_delete = 1,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

INSERT INTO steps_fts (rowid, name, input, output, error)
SELECT fts_rowid, name,
       (SELECT group_concat(value, ' ') FROM json_tree(steps.input) WHERE type = 'text'),
       (SELECT group_concat(value, ' ') FROM json_tree(steps.output) WHERE type = 'text'),
       error
FROM steps;

CREATE TRIGGER steps_fts_after_insert AFTER INSERT ON steps BEGIN
    INSERT INTO steps_fts (rowid, name, input, output, error)
    VALUES (new.fts_rowid, new.name,
            (SELECT group_concat(value, ' ') FROM json_tree(new.input) WHERE type = 'text'),
            (SELECT group_concat(value, ' ') FROM json_tree(new.output) WHERE type = 'text'),
            new.error);
END;

CREATE TRIGGER steps_fts_after_delete AFTER DELETE ON steps BEGIN
    DELETE FROM steps_fts WHERE rowid = old.fts_rowid;
END;

-- Re-shipping a step rewrites its row with the same values: leave the
-- index alone then.
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
