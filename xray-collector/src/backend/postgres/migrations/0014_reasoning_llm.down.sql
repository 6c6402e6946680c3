DROP INDEX xray.reasoning_jobs_rules_due;
DROP INDEX xray.reasoning_jobs_llm_due;
ALTER TABLE xray.reasoning_jobs
    DROP COLUMN next_attempt_at,
    DROP COLUMN model,
    DROP COLUMN prompt_tokens,
    DROP COLUMN completion_tokens,
    DROP COLUMN cost_usd;
