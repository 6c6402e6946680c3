DROP INDEX reasoning_jobs_rules_due;
DROP INDEX reasoning_jobs_llm_due;
ALTER TABLE reasoning_jobs DROP COLUMN next_attempt_at_us;
ALTER TABLE reasoning_jobs DROP COLUMN model;
ALTER TABLE reasoning_jobs DROP COLUMN prompt_tokens;
ALTER TABLE reasoning_jobs DROP COLUMN completion_tokens;
ALTER TABLE reasoning_jobs DROP COLUMN cost_usd;
