-- The LLM reasoner, as on PostgreSQL: when a job's LLM call is due (or,
-- while a collector holds it, when that claim runs out), and what the
-- call used and cost.
ALTER TABLE reasoning_jobs ADD COLUMN next_attempt_at_us INTEGER;
ALTER TABLE reasoning_jobs ADD COLUMN model TEXT;
ALTER TABLE reasoning_jobs ADD COLUMN prompt_tokens INTEGER CHECK (prompt_tokens >= 0);
ALTER TABLE reasoning_jobs ADD COLUMN completion_tokens INTEGER CHECK (completion_tokens >= 0);
ALTER TABLE reasoning_jobs ADD COLUMN cost_usd REAL;

CREATE INDEX reasoning_jobs_llm_due ON reasoning_jobs (next_attempt_at_us)
    WHERE status IN ('pending', 'processing') AND next_attempt_at_us IS NOT NULL;
CREATE INDEX reasoning_jobs_rules_due ON reasoning_jobs (created_at_us)
    WHERE status = 'pending' AND next_attempt_at_us IS NULL;
