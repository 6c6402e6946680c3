-- Reasoning (DESIGN.md, "Reasoning, import, retention"): each step that
-- has decisions or failed gets a short explanation in steps.reasoning,
-- tracked in reasoning_jobs (pending → processing → completed | failed,
-- with attempts and the last error), one job per step.
ALTER TABLE xray.steps ADD COLUMN reasoning text;

CREATE TABLE xray.reasoning_jobs (
    id           uuid        PRIMARY KEY,
    execution_id uuid        NOT NULL REFERENCES xray.executions (id) ON DELETE CASCADE,
    step_id      uuid        NOT NULL UNIQUE REFERENCES xray.steps (id) ON DELETE CASCADE,
    status       text        NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    method       text        NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz
);

-- The queue: jobs still to do, oldest first.
CREATE INDEX reasoning_jobs_to_do ON xray.reasoning_jobs (created_at)
    WHERE status IN ('pending', 'processing');
CREATE INDEX reasoning_jobs_by_execution ON xray.reasoning_jobs (execution_id);
