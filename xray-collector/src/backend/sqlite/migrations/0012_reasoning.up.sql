-- Reasoning, as on PostgreSQL: steps.reasoning and one job per step.
ALTER TABLE steps ADD COLUMN reasoning TEXT;

CREATE TABLE reasoning_jobs (
    id              TEXT    NOT NULL PRIMARY KEY,
    execution_id    TEXT    NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step_id         TEXT    NOT NULL UNIQUE REFERENCES steps (id) ON DELETE CASCADE,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    method          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error           TEXT,
    created_at_us   INTEGER NOT NULL,
    completed_at_us INTEGER
) STRICT;

CREATE INDEX reasoning_jobs_to_do ON reasoning_jobs (created_at_us)
    WHERE status IN ('pending', 'processing');
CREATE INDEX reasoning_jobs_by_execution ON reasoning_jobs (execution_id);
