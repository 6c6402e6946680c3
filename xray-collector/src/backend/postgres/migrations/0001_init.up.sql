-- X-Ray backend schema, version 1: the contract tables (DESIGN.md,
-- "The collector and the backend") plus the dead-letter table.
--
-- `xray.schema_migrations` is created by the migration runner before this
-- file runs, so `xray` may already exist.
CREATE SCHEMA IF NOT EXISTS xray;

CREATE TABLE xray.executions (
    id          uuid        PRIMARY KEY,
    project     text        NOT NULL,
    name        text        NOT NULL,
    status      text        NOT NULL CHECK (status IN ('running', 'ok', 'error')),
    metadata    jsonb,
    outcome     jsonb,
    error       text,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    -- True while the row only stands in for an execution whose own row has
    -- not arrived (a step referenced it first); its start or end replaces it.
    placeholder boolean     NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX executions_project_started ON xray.executions (project, started_at DESC, id DESC);
CREATE INDEX executions_name_started    ON xray.executions (name, started_at DESC);
CREATE INDEX executions_status_started  ON xray.executions (status, started_at DESC);

CREATE TABLE xray.steps (
    id           uuid        PRIMARY KEY,
    execution_id uuid        NOT NULL REFERENCES xray.executions (id) ON DELETE CASCADE,
    -- No foreign key: a child's row may arrive before its parent's.
    parent_id    uuid,
    name         text        NOT NULL,
    kind         text,
    status       text        NOT NULL
                 CHECK (status IN ('running', 'ok', 'error', 'panicked', 'cancelled')),
    input        jsonb,
    output       jsonb,
    error        text,
    attributes   jsonb,
    started_at   timestamptz NOT NULL,
    duration_us  bigint,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Full-text search over name, input, output and error, kept current by
    -- PostgreSQL itself. The text is cut at 250,000 characters (at most
    -- 1,000,000 bytes) so that a huge output cannot exceed tsvector's 1 MB
    -- limit and get its step refused; words past the cut are not searchable.
    search       tsvector GENERATED ALWAYS AS (
                     to_tsvector('simple'::regconfig, left(
                         coalesce(name, '') || ' ' || coalesce(error, '') || ' ' ||
                         coalesce(output::text, '') || ' ' || coalesce(input::text, ''),
                         250000))
                 ) STORED
);

CREATE INDEX steps_execution_started ON xray.steps (execution_id, started_at);
CREATE INDEX steps_name_started      ON xray.steps (name, started_at);
CREATE INDEX steps_status            ON xray.steps (status);
CREATE INDEX steps_search            ON xray.steps USING gin (search);

CREATE TABLE xray.decisions (
    execution_id uuid             NOT NULL,
    step_id      uuid             NOT NULL REFERENCES xray.steps (id) ON DELETE CASCADE,
    -- Position of the decision in its step's list: with step_id, the key
    -- that makes re-shipping a step's end change nothing.
    ordinal      integer          NOT NULL,
    candidate_id text             NOT NULL,
    accepted     boolean,
    filter       text,
    reason       text,
    score        double precision,
    PRIMARY KEY (step_id, ordinal)
);

CREATE INDEX decisions_execution_candidate ON xray.decisions (execution_id, candidate_id);

CREATE TABLE xray.llm_usage (
    execution_id      uuid    NOT NULL,
    step_id           uuid    NOT NULL REFERENCES xray.steps (id) ON DELETE CASCADE,
    ordinal           integer NOT NULL,
    model             text    NOT NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    PRIMARY KEY (step_id, ordinal)
);

CREATE INDEX llm_usage_model ON xray.llm_usage (model);

-- Records the backend refused, kept with the reason instead of blocking the
-- rows behind them.
CREATE TABLE xray.dead_letters (
    outbox     text        NOT NULL,
    seq        bigint      NOT NULL,
    record     jsonb       NOT NULL,
    reason     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (outbox, seq)
);
