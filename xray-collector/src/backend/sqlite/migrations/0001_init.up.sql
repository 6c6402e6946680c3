-- The embedded store: the tables of the PostgreSQL schema `xray`, in SQLite.
--
-- Ids are hyphenated UUID text, JSON is text (checked with json_valid),
-- timestamps are INTEGER microseconds since the Unix epoch. Tables are
-- STRICT so a value of the wrong type is refused rather than stored as
-- something else.

CREATE TABLE executions (
    id            TEXT    NOT NULL PRIMARY KEY,
    project       TEXT    NOT NULL,
    name          TEXT    NOT NULL CHECK (length(name) > 0),
    status        TEXT    NOT NULL CHECK (status IN ('running', 'ok', 'error')),
    -- 1 while the row only stands in for an execution whose own row has not
    -- arrived yet (created for a step that came first); the real row, start
    -- or end, replaces it.
    placeholder   INTEGER NOT NULL DEFAULT 0 CHECK (placeholder IN (0, 1)),
    metadata      TEXT    CHECK (metadata IS NULL OR json_valid(metadata)),
    outcome       TEXT    CHECK (outcome IS NULL OR json_valid(outcome)),
    error         TEXT,
    started_at_us INTEGER NOT NULL,
    ended_at_us   INTEGER
) STRICT;

CREATE INDEX executions_by_project ON executions (project, started_at_us DESC, id DESC);
CREATE INDEX executions_by_name ON executions (name, started_at_us);
CREATE INDEX executions_by_status ON executions (status, started_at_us);

CREATE TABLE steps (
    -- An alias of the rowid, so it survives VACUUM: steps_fts refers to it.
    fts_rowid     INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    execution_id  TEXT    NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    -- No foreign key: a child's row may arrive before its parent's.
    parent_id     TEXT,
    name          TEXT    NOT NULL CHECK (length(name) > 0),
    kind          TEXT,
    status        TEXT    NOT NULL
                  CHECK (status IN ('running', 'ok', 'error', 'panicked', 'cancelled')),
    input         TEXT    CHECK (input IS NULL OR json_valid(input)),
    output        TEXT    CHECK (output IS NULL OR json_valid(output)),
    error         TEXT,
    attributes    TEXT    CHECK (attributes IS NULL OR json_valid(attributes)),
    started_at_us INTEGER NOT NULL,
    duration_us   INTEGER
) STRICT;

CREATE INDEX steps_by_execution ON steps (execution_id, started_at_us);
CREATE INDEX steps_by_name ON steps (name, started_at_us);
CREATE INDEX steps_by_status ON steps (status);

CREATE TABLE decisions (
    step_id       TEXT    NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    ordinal       INTEGER NOT NULL,
    execution_id  TEXT    NOT NULL,
    candidate_id  TEXT    NOT NULL,
    accepted      INTEGER CHECK (accepted IN (0, 1)),
    filter        TEXT,
    reason        TEXT,
    score         REAL,
    PRIMARY KEY (step_id, ordinal)
) STRICT, WITHOUT ROWID;

CREATE INDEX decisions_by_candidate ON decisions (execution_id, candidate_id);

CREATE TABLE llm_usage (
    step_id           TEXT    NOT NULL REFERENCES steps (id) ON DELETE CASCADE,
    ordinal           INTEGER NOT NULL,
    execution_id      TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    PRIMARY KEY (step_id, ordinal)
) STRICT, WITHOUT ROWID;

CREATE INDEX llm_usage_by_model ON llm_usage (model);

CREATE TABLE dead_letters (
    outbox        TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    record        TEXT    NOT NULL CHECK (json_valid(record)),
    reason        TEXT    NOT NULL,
    created_at_us INTEGER NOT NULL,
    PRIMARY KEY (outbox, seq)
) STRICT;

-- Full-text search over steps: an external-content FTS5 table (the text
-- lives once, in `steps`; the index refers to rows by `steps.fts_rowid`),
-- kept current by the triggers below. Porter stemming, like PostgreSQL's
-- `english` text search configuration. Rank with bm25(steps_fts).
CREATE VIRTUAL TABLE steps_fts USING fts5 (
    name, input, output, error,
    content = 'steps',
    content_rowid = 'fts_rowid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER steps_fts_after_insert AFTER INSERT ON steps BEGIN
    INSERT INTO steps_fts (rowid, name, input, output, error)
    VALUES (new.fts_rowid, new.name, new.input, new.output, new.error);
END;

-- An external-content index forgets a row by being told the values it
-- indexed, which are the row's old values.
CREATE TRIGGER steps_fts_after_delete AFTER DELETE ON steps BEGIN
    INSERT INTO steps_fts (steps_fts, rowid, name, input, output, error)
    VALUES ('delete', old.fts_rowid, old.name, old.input, old.output, old.error);
END;

-- Re-shipping a step rewrites its row with the same values: leave the
-- index alone then.
CREATE TRIGGER steps_fts_after_update AFTER UPDATE OF name, input, output, error ON steps
WHEN old.name IS NOT new.name OR old.input IS NOT new.input
  OR old.output IS NOT new.output OR old.error IS NOT new.error
BEGIN
    INSERT INTO steps_fts (steps_fts, rowid, name, input, output, error)
    VALUES ('delete', old.fts_rowid, old.name, old.input, old.output, old.error);
    INSERT INTO steps_fts (rowid, name, input, output, error)
    VALUES (new.fts_rowid, new.name, new.input, new.output, new.error);
END;
