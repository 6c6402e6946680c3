-- The LLM reasoner (XRAY_REASONER=llm, DESIGN.md "Reasoning"). A job the
-- rules text has been written for waits for its LLM call until
-- next_attempt_at: set to now when the rules text is written, pushed back
-- after a failed call (backoff, or the server's Retry-After). While a
-- collector holds a job its status is 'processing' and next_attempt_at is
-- when that claim runs out, so a job whose collector died is taken again.
-- NULL: the rules text is still to be written. What the call used, and
-- what it cost at the prices in model_prices, is kept with the job.
ALTER TABLE xray.reasoning_jobs
    ADD COLUMN next_attempt_at   timestamptz,
    ADD COLUMN model             text,
    ADD COLUMN prompt_tokens     integer CHECK (prompt_tokens >= 0),
    ADD COLUMN completion_tokens integer CHECK (completion_tokens >= 0),
    ADD COLUMN cost_usd          double precision;

-- The LLM's queue: the jobs due first.
CREATE INDEX reasoning_jobs_llm_due ON xray.reasoning_jobs (next_attempt_at)
    WHERE status IN ('pending', 'processing') AND next_attempt_at IS NOT NULL;
-- The rules' queue when the LLM follows: jobs whose rules text is still to
-- be written (those waiting for the LLM are left out of the scan).
CREATE INDEX reasoning_jobs_rules_due ON xray.reasoning_jobs (created_at)
    WHERE status = 'pending' AND next_attempt_at IS NULL;
