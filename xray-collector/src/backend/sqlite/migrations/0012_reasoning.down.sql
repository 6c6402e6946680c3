DROP TABLE reasoning_jobs;
ALTER TABLE steps DROP COLUMN reasoning;
