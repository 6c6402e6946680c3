DROP TABLE xray.reasoning_jobs;
ALTER TABLE xray.steps DROP COLUMN reasoning;
